//! `hetzner_zone`: a DNS zone in the Cloud API. Name and mode force a replace; TTL changes
//! via `change_ttl`; labels in place.

use cairn_core::{AttrRef, FieldError, Handle, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{KindOps, Labels, Ops, id_of, split_labels, validate_labels};

/// A DNS zone (`/zones`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    /// The domain (the key), e.g. `docfast.dev`.
    pub name: String,
    /// `primary` or `secondary`.
    pub mode: String,
    /// Default TTL.
    pub ttl: u32,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
}

impl Zone {
    /// A primary zone with TTL 3600.
    pub fn primary(name: &str) -> Self {
        Zone {
            name: name.into(),
            mode: "primary".into(),
            ttl: 3600,
            labels: Labels::new(),
        }
    }
}

/// Whether `n` is a lowercase domain name.
pub fn valid_domain(n: &str) -> bool {
    n.contains('.')
        && n.len() <= 253
        && n == n.to_lowercase()
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl Resource for Zone {
    const KIND: &'static str = "hetzner_zone";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["name", "mode"],
            computed: &["id"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        if !valid_domain(&self.name) {
            e.push(FieldError::new(
                "name",
                format!("{:?} is not a lowercase domain name", self.name),
            ));
        }
        if self.mode != "primary" && self.mode != "secondary" {
            e.push(FieldError::new("mode", "must be primary or secondary"));
        }
        if self.ttl < 60 {
            e.push(FieldError::new("ttl", "must be at least 60"));
        }
        e.extend(validate_labels(&self.labels));
        e
    }
}

/// Typed attributes of a zone.
pub trait ZoneAttrs {
    /// Its id.
    fn id(&self) -> AttrRef<u64>;
}

impl ZoneAttrs for Handle<Zone> {
    fn id(&self) -> AttrRef<u64> {
        self.attr("id")
    }
}

fn observe(api: &Value, _declared: Option<&Value>) -> Value {
    let (labels, _, _) = split_labels(&api["labels"]);
    json!({"name": api["name"], "mode": api["mode"], "ttl": api["ttl"], "labels": labels, "id": api["id"]})
}

/// Operations for `hetzner_zone`.
pub const OPS: KindOps = KindOps {
    collection: "zones",
    singular: "zone",
    observe,
    extra_labels: |_| Vec::new(),
    create: |ops: &Ops<'_>, d, labels| {
        Box::pin(async move {
            let body =
                json!({"name": d["name"], "mode": d["mode"], "ttl": d["ttl"], "labels": labels});
            let body = super::typed::<hcloud::models::CreateZoneRequest>(body)?;
            let v = ops.post("/zones", body).await?;
            Ok(id_of(&v["zone"]))
        })
    },
    converge: |ops, cur, d, labels| {
        Box::pin(async move {
            let id = id_of(cur);
            if cur["labels"] != labels {
                ops.put(&format!("/zones/{id}"), json!({"labels": labels}))
                    .await?;
            }
            if cur["ttl"] != d["ttl"] {
                ops.post(
                    &format!("/zones/{id}/actions/change_ttl"),
                    json!({"ttl": d["ttl"]}),
                )
                .await?;
            }
            Ok(())
        })
    },
    delete: |ops, cur| Box::pin(async move { ops.delete(&format!("/zones/{}", id_of(cur))).await }),
};
