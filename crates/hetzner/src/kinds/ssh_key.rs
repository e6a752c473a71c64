//! `hetzner_ssh_key`: an SSH public key. Changing the key replaces it; name and labels
//! update in place.

use cairn_core::{AttrRef, FieldError, Handle, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{KindOps, Labels, Ops, empty, id_of, split_labels, validate_labels, validate_name};

/// An SSH key (`/ssh_keys`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SshKey {
    /// Name (the key).
    pub name: String,
    /// OpenSSH public key; changing it forces a replace.
    pub public_key: String,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
}

impl Resource for SshKey {
    const KIND: &'static str = "hetzner_ssh_key";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["public_key"],
            computed: &["id", "fingerprint"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = validate_name(&self.name);
        let k = self.public_key.trim();
        if !(k.starts_with("ssh-") || k.starts_with("ecdsa-")) || k.split_whitespace().count() < 2 {
            e.push(FieldError::new(
                "public_key",
                "is not an OpenSSH public key",
            ));
        }
        e.extend(validate_labels(&self.labels));
        e
    }
}

/// Typed attributes of an SSH key.
pub trait SshKeyAttrs {
    /// The key's id.
    fn id(&self) -> AttrRef<u64>;
}

impl SshKeyAttrs for Handle<SshKey> {
    fn id(&self) -> AttrRef<u64> {
        self.attr("id")
    }
}

fn observe(api: &Value, _declared: Option<&Value>) -> Value {
    let (labels, _, _) = split_labels(&api["labels"]);
    json!({"name": api["name"], "public_key": api["public_key"], "labels": labels,
           "id": api["id"], "fingerprint": api["fingerprint"]})
}

/// Operations for `hetzner_ssh_key`.
pub const OPS: KindOps = KindOps {
    collection: "ssh_keys",
    singular: "ssh_key",
    observe,
    extra_labels: |_| Vec::new(),
    create: |ops: &Ops<'_>, d, labels| {
        Box::pin(async move {
            let mut req = hcloud::models::CreateSshKeyRequest::new(
                d["name"].as_str().unwrap_or_default().to_string(),
                d["public_key"].as_str().unwrap_or_default().to_string(),
            );
            req.labels = serde_json::from_value(labels).ok();
            let body = serde_json::to_value(req).unwrap_or_else(|_| empty());
            let v = ops.post("/ssh_keys", body).await?;
            Ok(id_of(&v["ssh_key"]))
        })
    },
    converge: |ops, cur, d, labels| {
        Box::pin(async move {
            if cur["labels"] != labels || cur["name"] != d["name"] {
                ops.put(
                    &format!("/ssh_keys/{}", id_of(cur)),
                    json!({"name": d["name"], "labels": labels}),
                )
                .await?;
            }
            Ok(())
        })
    },
    delete: |ops, cur| {
        Box::pin(async move { ops.delete(&format!("/ssh_keys/{}", id_of(cur))).await })
    },
};
