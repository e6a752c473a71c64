//! Observation of VMs: one `/cluster/resources` call, then bounded concurrent config reads
//! of the declared or owned VMs only, each config read back into spec shape with
//! Proxmox's normalisations undone (tags, `sshkeys`, memory, pending values), so a second
//! diff after apply is empty.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use cairn_core::Marker;
use cairn_core::kit::{Found, Query};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::marker::{MARKER_TAG_PREFIX, marker_tag, split_description};
use super::spec::{
    CloneFrom, CloneMode, CloudInit, DiskSlot, IpConfig, Nic, NicModel, PowerState, Vm,
};
use crate::api::{self, VmConfig, VmResource, VmStatus};
use crate::client::{PveClient, PveError};
use crate::propstr;

/// A VM as observed: the spec's shape plus the computed `ipv4` (of `ipconfig0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmObserved {
    /// Everything the spec declares, as read back.
    #[serde(flatten)]
    pub spec: Vm,
    /// The IPv4 address of `ipconfig0`, without prefix length.
    pub ipv4: Option<Ipv4Addr>,
}

/// Observes the VMs whose VMID is in `q.keys` or that carry `q.stack`'s marker tag.
pub async fn observe(client: &PveClient, q: Query<'_>) -> Result<Vec<Found<VmObserved>>, PveError> {
    let res = api::vm_resources(client).await?;
    let keys: BTreeSet<&str> = q.keys.iter().map(String::as_str).collect();
    let tag = marker_tag(q.stack);
    let wanted: Vec<VmResource> = res
        .into_iter()
        .filter(|r| !r.template)
        .filter(|r| {
            keys.contains(r.vmid.to_string().as_str())
                || r.tags
                    .as_deref()
                    .is_some_and(|t| propstr::split_tags(t).contains(&tag))
        })
        .collect();
    let reads = futures::stream::iter(wanted.into_iter().map(|r| async move {
        let cfg = read_config(client, &r.node, r.vmid).await;
        (r, cfg)
    }))
    .buffer_unordered(client.config().observe_concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    let mut out = Vec::new();
    for (r, cfg) in reads {
        let cfg = match cfg {
            Ok(c) => c,
            // Deleted between the list and the read: it no longer exists.
            Err(e) if e.is_missing() => continue,
            Err(e) => return Err(e),
        };
        out.push(found(&r, &cfg));
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Observes one VM by VMID (fresh resources + config); `None` if it does not exist.
pub async fn observe_one(
    client: &PveClient,
    vmid: u32,
) -> Result<Option<Found<VmObserved>>, PveError> {
    let res = api::vm_resources(client).await?;
    let Some(r) = res.into_iter().find(|r| r.vmid == vmid) else {
        return Ok(None);
    };
    let cfg = read_config(client, &r.node, vmid).await?;
    Ok(Some(found(&r, &cfg)))
}

/// `GET /nodes/{node}/qemu/{vmid}/config`.
pub async fn read_config(client: &PveClient, node: &str, vmid: u32) -> Result<VmConfig, PveError> {
    let data = client
        .get(&format!("/nodes/{node}/qemu/{vmid}/config"), &[])
        .await?;
    Ok(VmConfig::from_value(&data))
}

fn found(r: &VmResource, cfg: &VmConfig) -> Found<VmObserved> {
    let (value, marker) = observed_from_config(r.vmid, &r.node, r.status, cfg);
    Found::new(r.vmid.to_string(), value, marker)
}

/// Parses `virtio=BC:24:11:…,bridge=vmbr1,tag=20` into a [`Nic`] (MAC always reported).
pub fn parse_nic(v: &str) -> Nic {
    let mut nic = Nic {
        model: NicModel::Other(String::new()),
        bridge: String::new(),
        tag: None,
        macaddr: None,
    };
    for (k, val) in propstr::parse(v, None) {
        match k.as_str() {
            "bridge" => nic.bridge = val,
            "tag" => nic.tag = val.parse().ok(),
            "model" => nic.model = NicModel::from(val.as_str()),
            "macaddr" => nic.macaddr = Some(val.to_ascii_uppercase()),
            m => {
                if let Some(model) = NicModel::known(m) {
                    nic.model = model;
                    if !val.is_empty() {
                        nic.macaddr = Some(val.to_ascii_uppercase());
                    }
                }
            }
        }
    }
    nic
}

/// Reads a VM config (as `GET config` returns it, pending values included) and its
/// cluster-resources status back into spec shape, with the ownership marker.
pub fn observed_from_config(
    vmid: u32,
    node: &str,
    status: VmStatus,
    c: &VmConfig,
) -> (VmObserved, Option<Marker>) {
    let s = |k: &str| c.get(k).map(String::from);
    let n = |k: &str, d: u32| c.get(k).and_then(|v| v.parse::<u32>().ok()).unwrap_or(d);
    let mut tags = propstr::split_tags(c.get("tags").unwrap_or_default());
    let marker_tags: Vec<String> = tags
        .iter()
        .filter(|t| t.starts_with(MARKER_TAG_PREFIX))
        .cloned()
        .collect();
    tags.retain(|t| !t.starts_with(MARKER_TAG_PREFIX));
    tags.sort();
    tags.dedup();
    let (description, trailer) = split_description(c.get("description").unwrap_or_default());
    let mut disks = BTreeMap::new();
    let mut networks = BTreeMap::new();
    let mut ipconfig = BTreeMap::new();
    let mut linked_base = None;
    for (k, v) in c.iter() {
        if let Ok(slot) = k.parse::<DiskSlot>() {
            if v.contains("media=cdrom") {
                continue;
            }
            let pairs = propstr::parse(v, Some("file"));
            if let Some(size) = propstr::get(&pairs, "size").and_then(propstr::parse_size) {
                disks.insert(slot, propstr::format_size(size));
            }
            if let Some(f) = propstr::get(&pairs, "file")
                && let Some(base) = f.split(':').nth(1).and_then(|v| v.strip_prefix("base-"))
                && let Some((id, _)) = base.split_once('-')
                && f.contains('/')
            {
                linked_base = id.parse::<u32>().ok();
            }
        } else if k.starts_with("net") && k[3..].parse::<u8>().is_ok() {
            networks.insert(k.to_string(), parse_nic(v));
        } else if k.starts_with("ipconfig") {
            let p = propstr::parse(v, None);
            ipconfig.insert(
                k.to_string(),
                IpConfig {
                    ip: propstr::get(&p, "ip").unwrap_or_default().to_string(),
                    gw: propstr::get(&p, "gw").map(String::from),
                },
            );
        }
    }
    let mut sshkeys: Vec<String> = c
        .get("sshkeys")
        .and_then(propstr::decode_sshkeys)
        .map(|k| {
            k.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    sshkeys.sort();
    let clone = trailer.as_ref().and_then(|t| t.clone.clone()).or_else(|| {
        linked_base.map(|b| CloneFrom {
            vmid: Some(b.into()),
            name: None,
            mode: CloneMode::Linked,
        })
    });
    let ipv4 = ipconfig
        .get("ipconfig0")
        .and_then(|i| i.ip.split('/').next())
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
    let spec = Vm {
        vmid,
        name: s("name").unwrap_or_default(),
        node: node.to_string(),
        clone,
        cores: n("cores", 1),
        sockets: n("sockets", 1),
        memory: propstr::memory_mib(c.get("memory")),
        disks,
        networks,
        cloud_init: CloudInit {
            ciuser: s("ciuser"),
            sshkeys,
            ipconfig,
            nameserver: s("nameserver"),
            searchdomain: s("searchdomain"),
        },
        tags,
        description,
        onboot: n("onboot", 0) == 1,
        state: if status.is_running() {
            PowerState::Running
        } else {
            PowerState::Stopped
        },
    };
    let marker = match trailer {
        Some(t) => Some(t.marker_for(vmid)),
        // A tag alone records neither origin nor VMID: adopted, so at worst released.
        None => marker_tags
            .first()
            .map(|t| Marker::adopted(&t[MARKER_TAG_PREFIX.len()..], None)),
    };
    (VmObserved { spec, ipv4 }, marker)
}
