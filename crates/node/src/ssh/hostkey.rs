//! Host key trust: SHA-256 fingerprints as OpenSSH prints them, `ssh-keyscan` to learn what a
//! host presents, and known-hosts lookups through `ssh-keygen -F` (which understands hashed
//! entries). Used to pin a declared fingerprint and to name both sides of a mismatch.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::process::Command;

/// The OpenSSH SHA-256 fingerprint (`SHA256:…`, unpadded base64) of a public key blob given
/// in its base64 form (the second field of a known-hosts or `.pub` line).
pub fn fingerprint(blob_b64: &str) -> Option<String> {
    let blob = base64::engine::general_purpose::STANDARD
        .decode(blob_b64.trim())
        .ok()?;
    let digest = Sha256::digest(&blob);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

/// Normalises a declared fingerprint: accepts `SHA256:xxx` or bare `xxx`, trailing `=`.
pub fn normalise(fp: &str) -> String {
    let fp = fp.trim();
    let bare = fp
        .strip_prefix("SHA256:")
        .unwrap_or(fp)
        .trim_end_matches('=');
    format!("SHA256:{bare}")
}

/// One public host key: its type (`ssh-ed25519`) and base64 blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    /// The key type, e.g. `ssh-ed25519`.
    pub kind: String,
    /// The key blob, base64.
    pub blob: String,
}

impl HostKey {
    /// The key's SHA-256 fingerprint.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.blob).unwrap_or_else(|| "SHA256:(unreadable key)".into())
    }
}

/// The name OpenSSH looks a host up under in known-hosts files: `addr` for port 22,
/// `[addr]:port` otherwise.
pub fn known_hosts_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    }
}

/// Parses known-hosts lines (`names type blob [comment]`, optional `@marker`), skipping
/// comments, revoked keys and certificate authorities.
pub fn parse_known_hosts(text: &str) -> Vec<HostKey> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('@'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _names = f.next()?;
            Some(HostKey {
                kind: f.next()?.to_string(),
                blob: f.next()?.to_string(),
            })
        })
        .collect()
}

/// Asks the host at `target` for its public keys without authenticating (`ssh-keyscan`).
/// `target` has already passed the dialer.
pub async fn scan(target: SocketAddr, timeout: Duration) -> std::io::Result<Vec<HostKey>> {
    let out = Command::new("ssh-keyscan")
        .arg("-T")
        .arg(timeout.as_secs().max(1).to_string())
        .arg("-p")
        .arg(target.port().to_string())
        .arg("-t")
        .arg("ed25519,ecdsa,rsa")
        .arg(target.ip().to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    Ok(parse_known_hosts(&String::from_utf8_lossy(&out.stdout)))
}

/// The keys a known-hosts file holds for `name` (hashed entries included).
pub async fn known_keys(file: &Path, name: &str) -> std::io::Result<Vec<HostKey>> {
    let out = Command::new("ssh-keygen")
        .arg("-F")
        .arg(name)
        .arg("-f")
        .arg(file)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    Ok(parse_known_hosts(&String::from_utf8_lossy(&out.stdout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_openssh() {
        // `ssh-keygen -lf` of this key prints SHA256:G13h7TPnVl6GNbtnpSFJWjvAt0egipDpQ0jth0tLdJc.
        let blob = "AAAAC3NzaC1lZDI1NTE5AAAAIDTXXmjJtMzdwD3fI6Ljjwqi8pCM5dk2BjUPYLm0n7yF";
        let fp = fingerprint(blob).unwrap();
        assert_eq!(fp, "SHA256:G13h7TPnVl6GNbtnpSFJWjvAt0egipDpQ0jth0tLdJc");
        assert_eq!(normalise(&format!("{}=", &fp[7..])), fp);
    }

    #[test]
    fn known_hosts_names_follow_openssh() {
        assert_eq!(known_hosts_name("10.0.20.110", 22), "10.0.20.110");
        assert_eq!(known_hosts_name("10.0.20.110", 2222), "[10.0.20.110]:2222");
    }

    #[test]
    fn known_hosts_lines_skip_comments_and_markers() {
        let keys = parse_known_hosts(
            "# comment\n@revoked * ssh-ed25519 AAAA\n10.0.0.1,host ssh-ed25519 AAAAC3 me@x\n",
        );
        assert_eq!(
            keys,
            vec![HostKey {
                kind: "ssh-ed25519".into(),
                blob: "AAAAC3".into()
            }]
        );
    }
}
