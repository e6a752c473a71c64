//! `hetzner_primary_ip`: a public address a stack pins (assigned by pointing a server's
//! `public_net.ipv4` at it). Type and location force a replace; name, labels and
//! `auto_delete` update in place.

use cairn_core::{AttrRef, FieldError, Handle, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{KindOps, Labels, Ops, id_of, split_labels, validate_labels, validate_name};

/// A primary IP (`/primary_ips`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrimaryIp {
    /// Name (the key).
    pub name: String,
    /// `ipv4` or `ipv6`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Location, e.g. `fsn1`.
    pub location: String,
    /// Delete it together with the server it is assigned to.
    #[serde(default)]
    pub auto_delete: bool,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
}

impl Resource for PrimaryIp {
    const KIND: &'static str = "hetzner_primary_ip";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["type", "location"],
            computed: &["id", "ip", "assignee_id"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = validate_name(&self.name);
        if self.kind != "ipv4" && self.kind != "ipv6" {
            e.push(FieldError::new("type", "must be ipv4 or ipv6"));
        }
        e.extend(validate_labels(&self.labels));
        e
    }
}

/// Typed attributes of a primary IP.
pub trait PrimaryIpAttrs {
    /// Its id.
    fn id(&self) -> AttrRef<u64>;
    /// The address.
    fn ip(&self) -> AttrRef<String>;
}

impl PrimaryIpAttrs for Handle<PrimaryIp> {
    fn id(&self) -> AttrRef<u64> {
        self.attr("id")
    }
    fn ip(&self) -> AttrRef<String> {
        self.attr("ip")
    }
}

fn observe(api: &Value, _declared: Option<&Value>) -> Value {
    let (labels, _, _) = split_labels(&api["labels"]);
    let loc = if api["location"].is_object() {
        &api["location"]["name"]
    } else {
        &api["datacenter"]["location"]["name"]
    };
    json!({"name": api["name"], "type": api["type"], "location": loc, "auto_delete": api["auto_delete"],
           "labels": labels, "id": api["id"], "ip": api["ip"], "assignee_id": api["assignee_id"]})
}

/// Operations for `hetzner_primary_ip`.
pub const OPS: KindOps = KindOps {
    collection: "primary_ips",
    singular: "primary_ip",
    observe,
    extra_labels: |_| Vec::new(),
    create: |ops: &Ops<'_>, d, labels| {
        Box::pin(async move {
            let body = json!({"name": d["name"], "type": d["type"], "location": d["location"],
                              "assignee_type": "server", "auto_delete": d["auto_delete"], "labels": labels});
            let body = super::typed::<hcloud::models::CreatePrimaryIpRequest>(body)?;
            let v = ops.post("/primary_ips", body).await?;
            Ok(id_of(&v["primary_ip"]))
        })
    },
    converge: |ops, cur, d, labels| {
        Box::pin(async move {
            if cur["labels"] != labels
                || cur["name"] != d["name"]
                || cur["auto_delete"] != d["auto_delete"]
            {
                ops.put(
                    &format!("/primary_ips/{}", id_of(cur)),
                    json!({"name": d["name"], "labels": labels, "auto_delete": d["auto_delete"]}),
                )
                .await?;
            }
            Ok(())
        })
    },
    delete: |ops, cur| {
        Box::pin(async move {
            let id = id_of(cur);
            if !cur["assignee_id"].is_null() {
                ops.post(&format!("/primary_ips/{id}/actions/unassign"), json!({}))
                    .await?;
            }
            ops.delete(&format!("/primary_ips/{id}")).await
        })
    },
};
