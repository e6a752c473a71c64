//! The node provider's kinds, one file each, each a typed [`cairn_core::kit::Kind`] over the
//! provider's [`crate::NodeContext`], plus the helpers they share (keys, markers).

pub mod apiserver_cert;
pub mod control_plane_member;
pub mod k3s;
pub mod k3s_agent;
pub mod k3s_server;
pub mod kubeadm_config;
pub mod kubeconfig_server;

use std::collections::BTreeMap;

use cairn_core::{Marker, Origin};

/// Where markers of objects that are not files live on a cluster's kubeadm host (the
/// kubeadm configuration, control-plane members): one file per object.
pub const OWNERS_DIR: &str = "/etc/kubernetes/cairn-owners";

/// Writes `$2` plus a newline to `$1` atomically, creating its directory.
const WRITE_MARKER: &str = r#"set -eu
umask 022
mkdir -p -- "$(dirname -- "$1")"
printf '%s\n' "$2" > "$1.cairn-tmp.$$"
mv -f -- "$1.cairn-tmp.$$" "$1""#;

/// Writes the ownership marker file `path` on `host`.
pub(crate) async fn write_marker(
    ssh: &crate::ssh::Ssh,
    host: &str,
    path: &str,
    marker: &Marker,
) -> Result<(), crate::NodeError> {
    let cmd =
        crate::ssh::Cmd::root("sh").args(["-c", WRITE_MARKER, "sh", path, &marker_line(marker)]);
    ssh.run(host, &cmd).await.map(drop)
}

/// Reads a marker file's content as found by [`crate::files::read_files`].
pub(crate) fn marker_of(file: &crate::files::RemoteFile) -> Option<Marker> {
    match file {
        crate::files::RemoteFile::File(b) => parse_marker(&String::from_utf8_lossy(b)),
        _ => None,
    }
}

/// Splits a `host:path` key.
pub(crate) fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once(':')
        .filter(|(h, p)| !h.is_empty() && p.starts_with('/'))
}

/// Groups `host:path` keys by host, keeping each host's paths in order.
pub(crate) fn by_host(keys: &[String]) -> BTreeMap<&str, Vec<&str>> {
    let mut m: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (h, p) in keys.iter().filter_map(|k| split_key(k)) {
        m.entry(h).or_default().push(p);
    }
    m
}

/// The one-line ownership marker written beside a managed file (a file's marker is never
/// copied with it by cairn, so `copied_from` is not recorded).
pub(crate) fn marker_line(m: &Marker) -> String {
    format!(
        "stack={} fingerprint={} origin={}",
        m.stack,
        m.fingerprint.as_deref().unwrap_or("-"),
        m.origin.as_str()
    )
}

/// Reads a marker line written by [`marker_line`].
pub(crate) fn parse_marker(text: &str) -> Option<Marker> {
    let mut stack = None;
    let mut fingerprint = None;
    let mut origin = Origin::Adopted;
    for part in text.split_whitespace() {
        match part.split_once('=') {
            Some(("stack", s)) => stack = Some(s.to_string()),
            Some(("fingerprint", f)) if f != "-" => fingerprint = Some(f.to_string()),
            Some(("origin", o)) => origin = Origin::parse(o),
            _ => {}
        }
    }
    let mut m = Marker::adopted(stack?, fingerprint);
    m.origin = origin;
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let m = Marker::adopted("homelab-ha", Some("ab12".into()));
        assert_eq!(parse_marker(&marker_line(&m)), Some(m));
        let c = Marker::created("homelab-ha", None);
        assert_eq!(parse_marker(&marker_line(&c)), Some(c));
        assert_eq!(parse_marker("garbage"), None);
    }

    #[test]
    fn keys_are_host_and_absolute_path() {
        assert_eq!(split_key("w1:/etc/k.conf"), Some(("w1", "/etc/k.conf")));
        assert_eq!(split_key("w1:etc"), None);
        let keys = vec!["b:/x".to_string(), "a:/y".into(), "b:/z".into()];
        assert_eq!(by_host(&keys)["b"], vec!["/x", "/z"]);
    }
}
