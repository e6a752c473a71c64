//! Where the `proxmox-api` crate's generated types are used and where they are replaced.
//!
//! Used as is (over [`crate::client::PveClient`], which implements its `Client` trait):
//! `POST /nodes/{node}/qemu/{vmid}/clone` with `clone::PostParams`.
//!
//! Replaced, each with a test below that shows the defect:
//! - `/cluster/resources` items: the `type` field is a closed enum, so one entry of a type
//!   the crate does not know fails the whole list → [`VmResource`], each field read leniently.
//! - `/nodes/{node}/status`: `memory.available` is required, but only PVE 9 sends it →
//!   [`NodeMemory`] with `available` optional.
//! - Booleans: its bool deserializer accepts `0`/`1` but rejects JSON `true`/`false`
//!   (which proxies and other tools produce) → lenient reading here.
//! - VM config: property strings (`net0`, `ipconfig0`, `memory`) are untyped strings and
//!   `sshkeys` is not percent-encoded → [`VmConfig`] holds the config as sent, and
//!   `crate::vm` and `crate::propstr` read and write the property strings.
//! - Its bundled reqwest client fails on `{"data": null}` (e.g. `PUT config`) → our client
//!   returns `null` as a value.

use std::fmt;

use proxmox_api::nodes::node::qemu::vmid::clone;
use proxmox_api::types::VmId;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::client::{PveClient, PveError};

/// A VM's runtime status as `/cluster/resources` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmStatus {
    /// Running.
    Running,
    /// Stopped.
    Stopped,
    /// Paused (suspended to RAM).
    Paused,
    /// Anything else, e.g. while a VM is being created.
    #[default]
    #[serde(other)]
    Unknown,
}

impl VmStatus {
    /// Whether the VM runs.
    pub fn is_running(self) -> bool {
        self == VmStatus::Running
    }
}

impl fmt::Display for VmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VmStatus::Running => "running",
            VmStatus::Stopped => "stopped",
            VmStatus::Paused => "paused",
            VmStatus::Unknown => "unknown",
        })
    }
}

/// One `qemu` entry of `/cluster/resources?type=vm`.
#[derive(Debug, Clone, PartialEq)]
pub struct VmResource {
    /// VMID.
    pub vmid: u32,
    /// Node.
    pub node: String,
    /// Name (absent while a VM is being created).
    pub name: Option<String>,
    /// Runtime status.
    pub status: VmStatus,
    /// Whether it is a template.
    pub template: bool,
    /// Configured memory, bytes.
    pub maxmem: u64,
    /// Raw tag list.
    pub tags: Option<String>,
    /// Config lock, if any.
    pub lock: Option<String>,
}

/// One `/cluster/resources` item as sent, every field read leniently (a field of an
/// unexpected JSON type reads as absent instead of failing the whole list).
#[derive(Deserialize)]
struct ResourceItem {
    #[serde(rename = "type", default, deserialize_with = "lenient_str")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    vmid: Option<u64>,
    #[serde(default, deserialize_with = "lenient_str")]
    node: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    template: bool,
    #[serde(default, deserialize_with = "lenient_u64")]
    maxmem: Option<u64>,
    #[serde(default, deserialize_with = "lenient_str")]
    tags: Option<String>,
    #[serde(default, deserialize_with = "lenient_str")]
    lock: Option<String>,
}

impl ResourceItem {
    fn into_vm(self) -> Option<VmResource> {
        if self.kind.as_deref() != Some("qemu") {
            return None;
        }
        Some(VmResource {
            // A VMID outside u32 is not a VM cairn can address: skipped, never truncated.
            vmid: u32::try_from(self.vmid?).ok()?,
            node: self.node?,
            name: self.name,
            status: self
                .status
                .map(|s| VmStatus::deserialize(Value::String(s)).unwrap_or_default())
                .unwrap_or_default(),
            template: self.template,
            maxmem: self.maxmem.unwrap_or(0),
            tags: self.tags,
            lock: self.lock,
        })
    }
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::Number(n) => n.as_u64() == Some(1),
        Value::String(s) => s == "1",
        _ => false,
    })
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(v.as_u64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
                .map(|f| f as u64)
        })
        .or_else(|| v.as_str().and_then(|s| s.parse().ok())))
}

fn lenient_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// Parses the `qemu` entries of a `/cluster/resources` answer; entries of any other type
/// (known or not) are skipped.
pub fn parse_vm_resources(data: &Value) -> Vec<VmResource> {
    Vec::<Value>::deserialize(data)
        .unwrap_or_default()
        .iter()
        .filter_map(|i| ResourceItem::deserialize(i).ok()?.into_vm())
        .collect()
}

/// `GET /cluster/resources?type=vm`, qemu entries only. One request.
pub async fn vm_resources(client: &PveClient) -> Result<Vec<VmResource>, PveError> {
    let data = client.get("/cluster/resources", &[("type", "vm")]).await?;
    Ok(parse_vm_resources(&data))
}

/// `memory` of `/nodes/{node}/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeMemory {
    /// Physical memory, bytes.
    pub total: u64,
    /// Used, bytes.
    pub used: u64,
    /// Available (PVE 9 only).
    pub available: Option<u64>,
}

#[derive(Deserialize)]
struct NodeStatus {
    #[serde(default)]
    memory: Option<MemoryItem>,
}

#[derive(Deserialize)]
struct MemoryItem {
    #[serde(default, deserialize_with = "lenient_u64")]
    total: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    used: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    available: Option<u64>,
}

/// Parses the `memory` object of a node status answer.
pub fn parse_node_memory(data: &Value) -> Option<NodeMemory> {
    let m = NodeStatus::deserialize(data).ok()?.memory?;
    Some(NodeMemory {
        total: m.total?,
        used: m.used.unwrap_or(0),
        available: m.available,
    })
}

/// `GET /nodes/{node}/status` → memory.
pub async fn node_memory(client: &PveClient, node: &str) -> Result<NodeMemory, PveError> {
    let data = client.get(&format!("/nodes/{node}/status"), &[]).await?;
    parse_node_memory(&data)
        .ok_or_else(|| PveError::Decode(format!("node {node} status has no memory.total")))
}

/// A VM config as `GET /nodes/{node}/qemu/{vmid}/config` returns it (pending values
/// included): keys in the order the API sent them, every value as its string form
/// (numbers as digits, `null` as empty), the way Proxmox stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmConfig(Vec<(String, String)>);

impl VmConfig {
    /// Reads a config answer; anything but an object is an empty config.
    pub fn from_value(data: &Value) -> VmConfig {
        VmConfig::deserialize(data).unwrap_or_default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The keys, in the API's order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// The entries, in the API's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl FromIterator<(String, String)> for VmConfig {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        VmConfig(iter.into_iter().collect())
    }
}

impl<'de> Deserialize<'de> for VmConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = VmConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a VM config object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<VmConfig, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    let v = match v {
                        Value::String(s) => s,
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    out.push((k, v));
                }
                Ok(VmConfig(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The crate's clone parameters for `newid` (its types are right for this call).
pub fn clone_params(newid: VmId) -> clone::PostParams {
    clone::PostParams::new(
        proxmox_api::types::bounded_integer::BoundedInteger::new(
            proxmox_api::types::bounded_integer::BoundedInteger::get(&newid),
        )
        .expect("a VmId is a valid newid"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crate_cluster_resources_reject_an_unknown_type_and_ours_skip_it() {
        let data = json!([
            {"id": "qemu/200", "type": "qemu", "vmid": 200, "node": "pve", "status": "running", "template": 0, "maxmem": 34359738368u64},
            {"id": "mapping/x", "type": "mapping", "node": "pve"}
        ]);
        let theirs: Result<Vec<proxmox_api::cluster::resources::GetOutputItems>, _> =
            serde_json::from_value(data.clone());
        assert!(theirs.is_err(), "the closed enum rejects type 'mapping'");
        let ours = parse_vm_resources(&data);
        assert_eq!(ours.len(), 1);
        assert_eq!(ours[0].maxmem, 32 << 30);
    }

    #[test]
    fn a_vmid_beyond_u32_is_skipped_never_truncated_and_statuses_are_typed() {
        let data = json!([
            {"type": "qemu", "vmid": 4_294_967_496u64, "node": "pve", "status": "running"},
            {"type": "qemu", "vmid": "201", "node": "pve", "status": "paused", "name": 7},
            {"type": "qemu", "vmid": 202, "node": "pve", "status": "migrating"}
        ]);
        let ours = parse_vm_resources(&data);
        let got: Vec<(u32, VmStatus, Option<String>)> = ours
            .into_iter()
            .map(|r| (r.vmid, r.status, r.name))
            .collect();
        assert_eq!(
            got,
            [
                (201, VmStatus::Paused, None),
                (202, VmStatus::Unknown, None)
            ]
        );
    }

    #[test]
    fn crate_node_status_requires_memory_available_which_pve8_omits() {
        let pve8 = json!({"memory": {"total": 286_683_250_688u64, "used": 1, "free": 2}});
        let theirs: Result<proxmox_api::nodes::node::status::MemoryGetOutputMemory, _> =
            serde_json::from_value(pve8["memory"].clone());
        assert!(theirs.is_err(), "available is required by the crate");
        let ours = parse_node_memory(&pve8).unwrap();
        assert_eq!(ours.total, 286_683_250_688);
        assert_eq!(ours.available, None);
    }

    #[test]
    fn crate_bool_rejects_json_true_and_ours_accepts_it() {
        let theirs: Result<proxmox_api::types::Bool, _> = serde_json::from_value(json!(true));
        assert!(theirs.is_err());
        let data = json!([{"type": "qemu", "vmid": 9000, "node": "pve", "template": true}]);
        assert!(parse_vm_resources(&data)[0].template);
    }

    #[test]
    fn crate_config_params_send_sshkeys_unencoded() {
        let p = proxmox_api::nodes::node::qemu::vmid::config::PutParams {
            sshkeys: Some("ssh-ed25519 AAAA+x me@host".into()),
            ..Default::default()
        };
        let pairs = crate::client::to_pairs(&p).unwrap();
        let sent = pairs.iter().find(|(k, _)| k == "sshkeys").unwrap();
        assert!(
            sent.1.contains(' '),
            "the crate passes the raw key, which Proxmox refuses"
        );
        assert!(!crate::propstr::is_urlencoded(&sent.1));
        assert!(crate::propstr::is_urlencoded(
            &crate::propstr::encode_sshkeys(&sent.1)
        ));
    }
}
