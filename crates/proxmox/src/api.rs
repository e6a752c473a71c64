//! Where the `proxmox-api` crate's generated types are used and where they are replaced.
//!
//! Used as is (over [`crate::client::PveClient`], which implements its `Client` trait):
//! `POST /nodes/{node}/qemu/{vmid}/clone` with `clone::PostParams`.
//!
//! Replaced, each with a test below that shows the defect:
//! - `/cluster/resources` items: the `type` field is a closed enum, so one entry of a type
//!   the crate does not know fails the whole list → [`VmResource`] read from JSON values.
//! - `/nodes/{node}/status`: `memory.available` is required, but only PVE 9 sends it →
//!   [`NodeMemory`] with `available` optional.
//! - Booleans: its bool deserializer accepts `0`/`1` but rejects JSON `true`/`false`
//!   (which proxies and other tools produce) → lenient reading here.
//! - VM config: property strings (`net0`, `ipconfig0`, `memory`) are untyped strings and
//!   `sshkeys` is not percent-encoded → `crate::vm` and `crate::propstr` do both.
//! - Its bundled reqwest client fails on `{"data": null}` (e.g. `PUT config`) → our client
//!   returns `null` as a value.

use proxmox_api::nodes::node::qemu::vmid::clone;
use proxmox_api::types::VmId;
use serde_json::Value;

use crate::client::{PveClient, PveError};

/// One `qemu` entry of `/cluster/resources?type=vm`.
#[derive(Debug, Clone, PartialEq)]
pub struct VmResource {
    /// VMID.
    pub vmid: u32,
    /// Node.
    pub node: String,
    /// Name (absent while a VM is being created).
    pub name: Option<String>,
    /// `running`, `stopped`, or `unknown` while being created.
    pub status: String,
    /// Whether it is a template.
    pub template: bool,
    /// Configured memory, bytes.
    pub maxmem: u64,
    /// Raw tag list.
    pub tags: Option<String>,
    /// Config lock, if any.
    pub lock: Option<String>,
}

fn lenient_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_u64() == Some(1),
        Value::String(s) => s == "1",
        _ => false,
    }
}

fn lenient_u64(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_f64().map(|f| f as u64))
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// Parses the `qemu` entries of a `/cluster/resources` answer; entries of any other type
/// (known or not) are skipped.
pub fn parse_vm_resources(data: &Value) -> Vec<VmResource> {
    data.as_array()
        .map(|items| {
            items
                .iter()
                .filter(|i| i["type"] == "qemu")
                .filter_map(|i| {
                    Some(VmResource {
                        vmid: lenient_u64(&i["vmid"])? as u32,
                        node: i["node"].as_str()?.to_string(),
                        name: i["name"].as_str().map(String::from),
                        status: i["status"].as_str().unwrap_or("unknown").to_string(),
                        template: lenient_bool(&i["template"]),
                        maxmem: lenient_u64(&i["maxmem"]).unwrap_or(0),
                        tags: i["tags"].as_str().map(String::from),
                        lock: i["lock"].as_str().map(String::from),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
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

/// Parses the `memory` object of a node status answer.
pub fn parse_node_memory(data: &Value) -> Option<NodeMemory> {
    let m = &data["memory"];
    Some(NodeMemory {
        total: lenient_u64(&m["total"])?,
        used: lenient_u64(&m["used"]).unwrap_or(0),
        available: lenient_u64(&m["available"]),
    })
}

/// `GET /nodes/{node}/status` → memory.
pub async fn node_memory(client: &PveClient, node: &str) -> Result<NodeMemory, PveError> {
    let data = client.get(&format!("/nodes/{node}/status"), &[]).await?;
    parse_node_memory(&data)
        .ok_or_else(|| PveError::Decode(format!("node {node} status has no memory.total")))
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
