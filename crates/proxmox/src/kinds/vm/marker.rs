//! The ownership marker of a VM: a `cairn.<stack>` tag (visible in `/cluster/resources`,
//! so owned VMs are found by the one list call) plus a description trailer that records
//! the spec fingerprint and the clone source as declared.

use serde::{Deserialize, Serialize};

use cairn_core::{Marker, Origin};

use super::spec::CloneFrom;

/// The tag prefix that marks the owning stack (`cairn.<stack>`), visible in `/cluster/resources`.
pub const MARKER_TAG_PREFIX: &str = "cairn.";
/// The description line that carries the fingerprint and clone source.
pub const TRAILER_PREFIX: &str = "cairn-managed: ";

/// The marker tag for a stack (Proxmox tag charset, lowercase).
pub fn marker_tag(stack: &str) -> String {
    let s: String = stack
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_+.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{MARKER_TAG_PREFIX}{s}")
}

/// What the description trailer records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trailer {
    /// Stack name.
    pub stack: String,
    /// Spec fingerprint at the last apply.
    #[serde(default)]
    pub fp: Option<String>,
    /// The clone source as declared.
    #[serde(default)]
    pub clone: Option<CloneFrom>,
    /// Whether cairn created the VM or adopted it (absent on trailers written before this
    /// was recorded: read as adopted, so such a VM is released, never deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The VMID this trailer was written for. A clone or a backup restored to another VMID
    /// copies the description; a trailer whose VMID is not the VM's own owns nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmid: Option<u32>,
}

impl Trailer {
    /// The trailer for `vmid` carrying `marker`, declaring `clone` as its clone source.
    pub fn new(vmid: u32, marker: &Marker, clone: Option<CloneFrom>) -> Self {
        Trailer {
            stack: marker.stack.clone(),
            fp: marker.fingerprint.clone(),
            clone,
            origin: Some(marker.origin),
            vmid: Some(vmid),
        }
    }

    /// The marker this trailer gives VM `vmid`: copied when it was written for another VM.
    pub fn marker_for(&self, vmid: u32) -> Marker {
        Marker {
            stack: self.stack.clone(),
            fingerprint: self.fp.clone(),
            origin: self.origin.unwrap_or_default(),
            copied_from: self
                .vmid
                .filter(|&written_for| written_for != vmid)
                .map(|v| format!("VM {v}")),
        }
    }
}

/// Splits a description into the user's text and cairn's trailer.
pub fn split_description(d: &str) -> (String, Option<Trailer>) {
    if let Some(pos) = d.rfind(TRAILER_PREFIX)
        && (pos == 0 || d[..pos].ends_with('\n'))
    {
        let json = d[pos + TRAILER_PREFIX.len()..].trim();
        if let Ok(t) = serde_json::from_str::<Trailer>(json) {
            let text = d[..pos].trim_end_matches('\n').to_string();
            return (text, Some(t));
        }
    }
    (d.to_string(), None)
}

/// Appends the trailer to a description.
pub fn join_description(text: &str, trailer: &Trailer) -> String {
    let t = serde_json::to_string(trailer).expect("trailer serialises");
    if text.is_empty() {
        format!("{TRAILER_PREFIX}{t}")
    } else {
        format!("{text}\n\n{TRAILER_PREFIX}{t}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::vm::spec::CloneMode;

    #[test]
    fn description_trailer_round_trips() {
        let t = Trailer::new(205, &Marker::created("s", Some("f".into())), None);
        let d = join_description("hello\nworld", &t);
        assert_eq!(split_description(&d), ("hello\nworld".to_string(), Some(t)));
        assert_eq!(split_description("plain").1, None);
    }

    #[test]
    fn a_trailer_copied_to_another_vmid_owns_nothing() {
        let t = Trailer::new(205, &Marker::created("s", None), None);
        assert_eq!(t.marker_for(205), Marker::created("s", None));
        let copied = t.marker_for(207);
        assert_eq!(copied.copied_from.as_deref(), Some("VM 205"));
        assert!(!copied.owned_by("s"));
    }

    #[test]
    fn a_trailer_without_origin_reads_as_adopted() {
        let d = r#"cairn-managed: {"stack":"s","fp":null}"#;
        assert_eq!(
            split_description(d).1.unwrap().marker_for(1).origin,
            Origin::Adopted
        );
    }

    #[test]
    fn trailers_written_before_clone_mode_was_typed_still_read() {
        let d = r#"cairn-managed: {"stack":"s","fp":null,"clone":{"vmid":9000,"name":null,"full":false}}"#;
        let t = split_description(d).1.unwrap();
        let clone = t.clone.clone().unwrap();
        assert_eq!(clone.mode, CloneMode::Linked);
        assert_eq!(clone.vmid.and_then(|v| v.known().copied()), Some(9000));
        assert_eq!(join_description("", &t), d, "written back byte for byte");
    }
}
