//! Keyed digests of write-only secret values (a server's user-data, its SSH keys) that a
//! provider stores on the object so a later plan can tell whether the value changed. A plain
//! digest there would let anyone who can read the object's labels test guesses offline; an
//! HMAC-SHA256 under a key that never leaves the machine (or the team) does not.
//!
//! The key is `$CAIRN_DIGEST_KEY` (shared by a team: at least 16 bytes), else the file
//! `digest-key` in cairn's state directory ([`crate::lock::state_dir`]), created with 32
//! random bytes and mode 0600 on first use. A stored label reads `h1-<key id>-<mac>`: the
//! key id is 8 hex digits of an HMAC of a fixed text under the key (it names the key without
//! revealing it), the MAC 48 hex digits (192 bits); 60 characters, within label limits such
//! as Hetzner's 63 alphanumerics, `-`, `_`, `.`.

use std::ffi::OsString;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The environment variable holding a team's shared digest key.
pub const DIGEST_KEY_ENV: &str = "CAIRN_DIGEST_KEY";
/// The key file's name in the state directory.
pub const KEY_FILE: &str = "digest-key";
/// The prefix (and format version) of a keyed label.
const PREFIX: &str = "h1";
/// Hex digits of the MAC kept in a label.
const MAC_HEX: usize = 48;
/// Hex digits of the key id.
const ID_HEX: usize = 8;
/// The shortest key accepted from the environment, in bytes.
const MIN_ENV_KEY: usize = 16;

/// Why no digest key could be had.
#[derive(Debug, thiserror::Error)]
pub enum DigestKeyError {
    /// `CAIRN_DIGEST_KEY` is set but too short to be a key.
    #[error(
        "{DIGEST_KEY_ENV} must hold at least {MIN_ENV_KEY} bytes (e.g. `openssl rand -hex 32`)"
    )]
    TooShort,
    /// No state directory for the key file.
    #[error(
        "no digest key: set {DIGEST_KEY_ENV}, or CAIRN_STATE_DIR / XDG_STATE_HOME / HOME for the key file"
    )]
    NoStateDir,
    /// The key file could not be read or created.
    #[error("digest key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key file holds no key.
    #[error(
        "digest key file {path} holds no key (expected 64 hex digits); remove it to make a new one"
    )]
    Malformed {
        /// The key file.
        path: String,
    },
}

/// A key for [`DigestKey::label`]; its bytes never appear in `Debug` output.
#[derive(Clone)]
pub struct DigestKey {
    key: Vec<u8>,
    id: String,
}

impl fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What a stored label says about a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelCheck {
    /// Made with this key, over this value.
    Same,
    /// Made with this key, over another value: the value changed.
    Differs,
    /// Made with another key (a teammate's machine): cannot tell.
    OtherKey {
        /// That key's id.
        key_id: String,
    },
    /// Not a keyed label (a plain digest from an older cairn, or anything else): cannot tell.
    Unkeyed,
}

impl DigestKey {
    /// A key from its secret bytes.
    pub fn new(secret: &[u8]) -> Self {
        let id = hex::encode(hmac(secret, b"cairn.dev/digest-key-id"))[..ID_HEX].to_string();
        DigestKey {
            key: secret.to_vec(),
            id,
        }
    }

    /// The key of this machine or team: `$CAIRN_DIGEST_KEY`, else the state directory's key
    /// file (made on first use, mode 0600).
    pub fn load() -> Result<Self, DigestKeyError> {
        Self::load_from(|k| std::env::var_os(k))
    }

    /// [`load`](Self::load) over a given environment.
    pub fn load_from(env: impl Fn(&str) -> Option<OsString>) -> Result<Self, DigestKeyError> {
        if let Some(v) = env(DIGEST_KEY_ENV).filter(|v| !v.is_empty()) {
            let bytes = v.into_encoded_bytes();
            if bytes.len() < MIN_ENV_KEY {
                return Err(DigestKeyError::TooShort);
            }
            return Ok(Self::new(&bytes));
        }
        let dir = crate::lock::state_dir_from(env).map_err(|_| DigestKeyError::NoStateDir)?;
        Self::from_file(&dir.join(KEY_FILE))
    }

    /// The key in `path`, made there (32 random bytes, hex, mode 0600) if there is none.
    pub fn from_file(path: &Path) -> Result<Self, DigestKeyError> {
        let io = |source| DigestKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        if !path.exists() {
            create_key_file(path).map_err(io)?;
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let secret = hex::decode(text.trim())
            .ok()
            .filter(|b| b.len() >= MIN_ENV_KEY)
            .ok_or_else(|| DigestKeyError::Malformed {
                path: path.display().to_string(),
            })?;
        Ok(Self::new(&secret))
    }

    /// The key's id (8 hex digits; reveals nothing of the key).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The label for `value` (hashed as its compact JSON text: pass a string or a sorted
    /// list, whose text does not depend on map ordering): `h1-<key id>-<48 hex MAC>`.
    pub fn label(&self, value: &Value) -> String {
        format!("{PREFIX}-{}-{}", self.id, self.mac(value))
    }

    /// What a stored label says about `value`.
    pub fn check(&self, label: &str, value: &Value) -> LabelCheck {
        let mut parts = label.splitn(3, '-');
        let (Some(PREFIX), Some(id), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
            return LabelCheck::Unkeyed;
        };
        if id.len() != ID_HEX || mac.len() != MAC_HEX {
            return LabelCheck::Unkeyed;
        }
        if id != self.id {
            return LabelCheck::OtherKey {
                key_id: id.to_string(),
            };
        }
        if constant_time_eq(mac.as_bytes(), self.mac(value).as_bytes()) {
            LabelCheck::Same
        } else {
            LabelCheck::Differs
        }
    }

    fn mac(&self, value: &Value) -> String {
        let text = serde_json::to_vec(value).expect("JSON values serialise");
        hex::encode(hmac(&self.key, &text))[..MAC_HEX].to_string()
    }
}

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes a new random key to `path` (owner-only), atomically: a concurrent first use of
/// another cairn process keeps whichever key landed first.
fn create_key_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    let tmp = PathBuf::from(format!("{}.{}.tmp", path.display(), std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(hex::encode(secret).as_bytes())?;
    f.sync_all()?;
    drop(f);
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hmac_matches_rfc4231_test_cases() {
        // Test case 2 and test case 6 (a key longer than the block).
        assert_eq!(
            hex::encode(hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn labels_fit_hetzner_and_tell_same_changed_other_key_and_unkeyed_apart() {
        let k = DigestKey::new(b"0123456789abcdef-team-key");
        let v = json!("#cloud-config\npassword: hunter2\n");
        let label = k.label(&v);
        assert!(label.len() <= 63, "{label}");
        assert!(label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert!(!label.contains("hunter2"));
        assert_eq!(k.check(&label, &v), LabelCheck::Same);
        assert_eq!(k.check(&label, &json!("other")), LabelCheck::Differs);
        let teammate = DigestKey::new(b"another-machine-key-0000");
        assert_eq!(
            teammate.check(&label, &v),
            LabelCheck::OtherKey {
                key_id: k.id().to_string()
            }
        );
        // A plain digest from before keyed labels.
        assert_eq!(k.check(&crate::plan::digest(&v), &v), LabelCheck::Unkeyed);
        assert!(!format!("{k:?}").contains("team-key"));
    }

    #[test]
    fn the_key_file_is_made_once_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let env = |k: &str| (k == "CAIRN_STATE_DIR").then(|| dir.path().as_os_str().to_owned());
        let a = DigestKey::load_from(env).unwrap();
        let b = DigestKey::load_from(env).unwrap();
        assert_eq!(a.id(), b.id());
        let file = dir.path().join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let v = json!("x");
        assert_eq!(a.check(&b.label(&v), &v), LabelCheck::Same);
    }

    #[test]
    fn the_environment_key_wins_and_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let env = |key: &'static str| {
            let d = dir.path().as_os_str().to_owned();
            move |k: &str| match k {
                "CAIRN_DIGEST_KEY" => Some(OsString::from(key)),
                "CAIRN_STATE_DIR" => Some(d.clone()),
                _ => None,
            }
        };
        let team = DigestKey::load_from(env("a-team-key-of-32-bytes-or-so-abc")).unwrap();
        assert_eq!(
            team.id(),
            DigestKey::new(b"a-team-key-of-32-bytes-or-so-abc").id()
        );
        assert!(
            !dir.path().join(KEY_FILE).exists(),
            "no key file when the env has one"
        );
        assert!(matches!(
            DigestKey::load_from(env("short")),
            Err(DigestKeyError::TooShort)
        ));
    }
}
