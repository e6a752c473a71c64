//! `hetzner_server`: a cloud server. Name and labels update in place; type changes via
//! `change_type` (stop, change, start); network attachments and firewalls via actions;
//! image, location, user_data, ssh_keys and placement group force a replace.
//!
//! `user_data` and `ssh_keys` are write-only in the API: cairn stores their digests in the
//! labels `cairn.dev/user-data` and `cairn.dev/ssh-keys` and compares those. An object that
//! carries no digest (made by hand, being adopted) is trusted to match.

use cairn_core::{AttrRef, Field, FieldError, Handle, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    KindOps, Labels, Ops, id_of, short_digest, split_labels, validate_labels, validate_name,
};
use crate::client::ApiError;

/// Label with the digest of the last written `user_data`.
pub const USER_DATA_LABEL: &str = "cairn.dev/user-data";
/// Label with the digest of the last written `ssh_keys`.
pub const SSH_KEYS_LABEL: &str = "cairn.dev/ssh-keys";

/// An attachment of a server to a private network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerNetwork {
    /// The network's id (usually a reference to a `Network`).
    pub network: Field<u64>,
    /// A fixed private IP; `None` lets the API choose.
    #[serde(default)]
    pub ip: Option<std::net::Ipv4Addr>,
}

/// Public networking of a server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerPublicNet {
    /// A pinned primary IPv4 (id of a `PrimaryIp`).
    pub ipv4: Option<Field<u64>>,
}

/// A server (`/servers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    /// Name (the key).
    pub name: String,
    /// Server type, e.g. `cax11`.
    pub server_type: String,
    /// Image name, e.g. `ubuntu-24.04`.
    pub image: String,
    /// Location, e.g. `fsn1`.
    pub location: String,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
    /// Cloud-init user data (sensitive, write-only).
    #[serde(default)]
    pub user_data: Option<String>,
    /// SSH key names (write-only).
    #[serde(default)]
    pub ssh_keys: Option<Vec<String>>,
    /// Private network attachments (keyed by network).
    #[serde(default)]
    pub networks: Option<Vec<ServerNetwork>>,
    /// Firewall ids applied directly to this server (use this or `Firewall::apply_to`).
    #[serde(default)]
    pub firewalls: Option<Vec<Field<u64>>>,
    /// Placement group id.
    #[serde(default)]
    pub placement_group: Option<Field<u64>>,
    /// Public networking (a pinned primary IP).
    #[serde(default)]
    pub public_net: Option<ServerPublicNet>,
}

impl Server {
    /// A server with the essentials; everything else unmanaged.
    pub fn new(name: &str, server_type: &str, image: &str, location: &str) -> Self {
        Server {
            name: name.into(),
            server_type: server_type.into(),
            image: image.into(),
            location: location.into(),
            labels: Labels::new(),
            user_data: None,
            ssh_keys: None,
            networks: None,
            firewalls: None,
            placement_group: None,
            public_net: None,
        }
    }
}

impl Resource for Server {
    const KIND: &'static str = "hetzner_server";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &[
                "image",
                "location",
                "user_data",
                "ssh_keys",
                "placement_group",
                "public_net",
            ],
            computed: &["id", "ipv4", "ipv6", "status"],
            sensitive: &["user_data"],
            // `networks` is positional, not keyed: the engine does not resolve references
            // inside keyed list keys yet, and `network` is usually a reference.
            unordered: &["ssh_keys", "firewalls"],
            restart: &["server_type"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = validate_name(&self.name);
        if !self
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            e.push(FieldError::new("name", "must be a valid hostname"));
        }
        e.extend(validate_labels(&self.labels));
        for (f, v) in [
            ("server_type", &self.server_type),
            ("image", &self.image),
            ("location", &self.location),
        ] {
            if v.is_empty() {
                e.push(FieldError::new(f, "is required"));
            }
        }
        if self.user_data.as_ref().is_some_and(|u| u.len() > 32 * 1024) {
            e.push(FieldError::new("user_data", "must be at most 32 KiB"));
        }
        e
    }
}

/// Typed attributes of a server.
pub trait ServerAttrs {
    /// The server's id.
    fn id(&self) -> AttrRef<u64>;
    /// Its public IPv4 address.
    fn ipv4(&self) -> AttrRef<std::net::Ipv4Addr>;
}

impl ServerAttrs for Handle<Server> {
    fn id(&self) -> AttrRef<u64> {
        self.attr("id")
    }
    fn ipv4(&self) -> AttrRef<std::net::Ipv4Addr> {
        self.attr("ipv4")
    }
}

fn write_only(d: &Value) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if !d["user_data"].is_null() {
        out.push((USER_DATA_LABEL, short_digest(&d["user_data"])));
    }
    if !d["ssh_keys"].is_null() {
        let mut k: Vec<String> = d["ssh_keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(String::from))
            .collect();
        k.sort();
        out.push((SSH_KEYS_LABEL, short_digest(&json!(k))));
    }
    out
}

fn observe(api: &Value, declared: Option<&Value>) -> Value {
    let (labels, _, own) = split_labels(&api["labels"]);
    let wo = |field: &str, label: &str| -> Value {
        let Some(d) = declared else {
            return Value::Null;
        };
        let want = write_only(d)
            .into_iter()
            .find(|(l, _)| *l == label)
            .map(|(_, v)| v);
        match (own.get(label).and_then(Value::as_str), want) {
            // No digest on record (adopted or made by hand): trusted to match.
            (None, _) => d[field].clone(),
            (Some(have), Some(want)) if have == want => d[field].clone(),
            (Some(have), _) => {
                if field == "ssh_keys" {
                    json!([format!("(written keys, digest {have})")])
                } else {
                    format!("(written value, digest {have})").into()
                }
            }
        }
    };
    let networks: Vec<Value> = api["private_net"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| json!({"network": p["network"], "ip": p["ip"]}))
        .collect();
    let fws: Vec<Value> = api["public_net"]["firewalls"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f["id"].clone())
        .collect();
    json!({
        "name": api["name"],
        "server_type": api["server_type"]["name"],
        "image": api["image"]["name"],
        "location": api["location"]["name"],
        "labels": labels,
        "user_data": wo("user_data", USER_DATA_LABEL),
        "ssh_keys": wo("ssh_keys", SSH_KEYS_LABEL),
        "networks": networks,
        "firewalls": fws,
        "placement_group": api["placement_group"]["id"],
        "public_net": {"ipv4": api["public_net"]["ipv4"]["id"]},
        "id": api["id"],
        "ipv4": api["public_net"]["ipv4"]["ip"],
        "ipv6": api["public_net"]["ipv6"]["ip"],
        "status": api["status"],
    })
}

async fn create(ops: &Ops<'_>, d: &Value, labels: Value) -> Result<u64, ApiError> {
    let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
    let mut req = hcloud::models::CreateServerRequest::new(s("image"), s("name"), s("server_type"));
    req.location = Some(s("location"));
    req.labels = serde_json::from_value(labels).ok();
    req.user_data = d["user_data"].as_str().map(String::from);
    req.ssh_keys = serde_json::from_value(d["ssh_keys"].clone()).ok();
    // Networks without a fixed IP go in the create call; fixed IPs are attached afterwards.
    let nets: Vec<i64> = d["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["ip"].is_null())
        .filter_map(|n| n["network"].as_i64())
        .collect();
    req.networks = (!nets.is_empty()).then_some(nets);
    let fws: Vec<hcloud::models::CreateServerRequestFirewalls> = d["firewalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .map(hcloud::models::CreateServerRequestFirewalls::new)
        .collect();
    req.firewalls = (!fws.is_empty()).then_some(fws);
    req.placement_group = d["placement_group"].as_i64();
    let mut body = serde_json::to_value(req).map_err(|e| ApiError::Config(e.to_string()))?;
    if let Some(ip) = d["public_net"]["ipv4"].as_u64() {
        body["public_net"] = json!({"enable_ipv4": true, "enable_ipv6": true, "ipv4": ip});
    }
    let v = ops.post("/servers", body).await?;
    Ok(id_of(&v["server"]))
}

async fn converge(ops: &Ops<'_>, cur: &Value, d: &Value, labels: Value) -> Result<(), ApiError> {
    let id = id_of(cur);
    let act = |a: &str| format!("/servers/{id}/actions/{a}");
    if cur["labels"] != labels || cur["name"] != d["name"] {
        ops.put(
            &format!("/servers/{id}"),
            json!({"name": d["name"], "labels": labels}),
        )
        .await?;
    }
    if cur["server_type"]["name"] != d["server_type"] {
        let was_running = cur["status"] != "off";
        if was_running {
            ops.post(&act("shutdown"), json!({})).await?;
        }
        ops.post(
            &act("change_type"),
            json!({"server_type": d["server_type"], "upgrade_disk": false}),
        )
        .await?;
        if was_running {
            ops.post(&act("poweron"), json!({})).await?;
        }
    }
    if let Some(want) = d["networks"].as_array() {
        let have: Vec<Value> = cur["private_net"].as_array().cloned().unwrap_or_default();
        for h in &have {
            let w = want.iter().find(|w| w["network"] == h["network"]);
            let wrong_ip = w.is_some_and(|w| !w["ip"].is_null() && w["ip"] != h["ip"]);
            if w.is_none() || wrong_ip {
                ops.post(
                    &act("detach_from_network"),
                    json!({"network": h["network"]}),
                )
                .await?;
            }
        }
        for w in want {
            let h = have.iter().find(|h| h["network"] == w["network"]);
            let wrong_ip = h.is_some_and(|h| !w["ip"].is_null() && w["ip"] != h["ip"]);
            if h.is_none() || wrong_ip {
                let mut body = json!({"network": w["network"]});
                if !w["ip"].is_null() {
                    body["ip"] = w["ip"].clone();
                }
                ops.post(&act("attach_to_network"), body).await?;
            }
        }
    }
    if let Some(want) = d["firewalls"].as_array() {
        let have: Vec<Value> = cur["public_net"]["firewalls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| f["id"].clone())
            .collect();
        let res = json!([{"type": "server", "server": {"id": id}}]);
        for h in &have {
            if !want.contains(h) {
                ops.post(
                    &format!("/firewalls/{h}/actions/remove_from_resources"),
                    json!({"remove_from": res}),
                )
                .await?;
            }
        }
        for w in want {
            if !have.contains(w) {
                ops.post(
                    &format!("/firewalls/{w}/actions/apply_to_resources"),
                    json!({"apply_to": res}),
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Operations for `hetzner_server`.
pub const OPS: KindOps = KindOps {
    collection: "servers",
    singular: "server",
    observe,
    extra_labels: write_only,
    create: |ops, d, labels| Box::pin(create(ops, d, labels)),
    converge: |ops, cur, d, labels| Box::pin(converge(ops, cur, d, labels)),
    delete: |ops, cur| {
        Box::pin(async move { ops.delete(&format!("/servers/{}", id_of(cur))).await })
    },
};
