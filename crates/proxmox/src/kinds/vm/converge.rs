//! The converge sequence of a VM: clone (never twice: re-observe before any retry), the
//! config rendered from the spec and written as a delta guarded by the config `digest`,
//! grow-only disk resizes, the power state; and delete (stop, destroy with its disks).

use std::collections::BTreeMap;

use cairn_core::Marker;
use proxmox_api::types::VmId;
use proxmox_api::types::bounded_integer::BoundedInteger;
use reqwest::Method;
use serde_json::Value;

use super::marker::{Trailer, join_description, marker_tag};
use super::observe::{observe_one, parse_nic, read_config};
use super::spec::{CloneFrom, PowerState, Vm};
use crate::api::{self, VmConfig};
use crate::client::{PveClient, PveError};
use crate::propstr;

/// Renders the desired config keys (everything but disks, clone, node, state).
/// `current` (the live config) keeps generated MACs of NICs whose MAC is not pinned.
pub fn desired_config(
    vm: &Vm,
    marker: &Marker,
    current: &VmConfig,
) -> BTreeMap<String, Option<String>> {
    let mut c: BTreeMap<String, Option<String>> = BTreeMap::new();
    c.insert("name".into(), Some(vm.name.clone()));
    c.insert("cores".into(), Some(vm.cores.to_string()));
    c.insert("sockets".into(), Some(vm.sockets.to_string()));
    c.insert("memory".into(), Some(vm.memory.to_string()));
    c.insert(
        "onboot".into(),
        Some(if vm.onboot { "1" } else { "0" }.into()),
    );
    let mut tags = vm.tags.clone();
    tags.push(marker_tag(&marker.stack));
    c.insert(
        "tags".into(),
        Some(propstr::normalize_tags(&tags.join(";"))),
    );
    let trailer = Trailer::new(vm.vmid, marker, vm.clone.clone());
    c.insert(
        "description".into(),
        Some(join_description(&vm.description, &trailer)),
    );
    for (slot, nic) in &vm.networks {
        let live = current.get(slot).map(parse_nic);
        let mac = nic
            .macaddr
            .clone()
            .or_else(|| live.as_ref().and_then(|l| l.macaddr.clone()));
        let model = nic.model.as_str();
        let mut s = match mac {
            Some(mac) => format!("{model}={mac}"),
            None => model.to_string(),
        };
        s.push_str(&format!(",bridge={}", nic.bridge));
        if let Some(t) = nic.tag.or_else(|| live.as_ref().and_then(|l| l.tag)) {
            s.push_str(&format!(",tag={t}"));
        }
        c.insert(slot.clone(), Some(s));
    }
    for k in current.keys() {
        if k.starts_with("net") && k[3..].parse::<u8>().is_ok() && !vm.networks.contains_key(k) {
            c.insert(k.to_string(), None);
        }
    }
    let ci = &vm.cloud_init;
    if let Some(u) = &ci.ciuser {
        c.insert("ciuser".into(), Some(u.clone()));
    }
    if ci.sshkeys.is_empty() {
        if current.contains_key("sshkeys") {
            c.insert("sshkeys".into(), None);
        }
    } else {
        let mut keys = ci.sshkeys.clone();
        keys.sort();
        c.insert(
            "sshkeys".into(),
            Some(propstr::encode_sshkeys(&keys.join("\n"))),
        );
    }
    for (slot, ip) in &ci.ipconfig {
        let mut s = format!("ip={}", ip.ip);
        if let Some(gw) = &ip.gw {
            s.push_str(&format!(",gw={gw}"));
        }
        c.insert(slot.clone(), Some(s));
    }
    for k in current.keys() {
        if k.starts_with("ipconfig") && !ci.ipconfig.contains_key(k) {
            c.insert(k.to_string(), None);
        }
    }
    if let Some(ns) = &ci.nameserver {
        c.insert("nameserver".into(), Some(ns.clone()));
    }
    if let Some(sd) = &ci.searchdomain {
        c.insert("searchdomain".into(), Some(sd.clone()));
    }
    c
}

/// The keys of `desired` whose value differs from the live config: `(set, delete)`.
pub fn config_delta(
    desired: &BTreeMap<String, Option<String>>,
    current: &VmConfig,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut set = Vec::new();
    let mut delete = Vec::new();
    for (k, v) in desired {
        let cur = current.get(k);
        match v {
            Some(v) => {
                let same = match (k.as_str(), cur) {
                    ("tags", Some(c)) => propstr::normalize_tags(c) == *v,
                    (n, Some(c)) if n.starts_with("net") => parse_nic(c) == parse_nic(v),
                    ("memory", Some(c)) => propstr::memory_mib(Some(c)).to_string() == *v,
                    (_, Some(c)) => c == v,
                    (_, None) => false,
                };
                if !same {
                    set.push((k.clone(), v.clone()));
                }
            }
            None if cur.is_some() => delete.push(k.clone()),
            None => {}
        }
    }
    (set, delete)
}

fn api_error(status: u16, message: String) -> PveError {
    PveError::Api {
        status,
        message,
        errors: None,
    }
}

async fn wait(client: &PveClient, node: &str, upid: &Value) -> Result<(), PveError> {
    match upid.as_str() {
        Some(u) => client.wait_task(node, u).await,
        None => Ok(()),
    }
}

/// The VMID of the clone source: given, or looked up by template name.
async fn resolve_template(client: &PveClient, clone: &CloneFrom) -> Result<u32, PveError> {
    if let Some(id) = clone.vmid.as_ref().and_then(|f| f.known()) {
        return Ok(*id);
    }
    let name = clone.name.clone().unwrap_or_default();
    api::vm_resources(client)
        .await?
        .iter()
        .find(|r| r.template && r.name.as_deref() == Some(name.as_str()))
        .map(|r| r.vmid)
        .ok_or_else(|| {
            api_error(
                404,
                format!("no template named '{name}' in /cluster/resources"),
            )
        })
}

fn vm_id(vmid: u32) -> Result<VmId, PveError> {
    VmId::new(i128::from(vmid)).map_err(|e| PveError::Decode(format!("vmid {vmid}: {e:?}")))
}

/// Clones the template into `spec.vmid`. Never clones twice: before every retry the
/// VMID is looked up, and an existing VM is taken over instead.
pub async fn clone_vm(
    client: &PveClient,
    spec: &Vm,
    clone: &CloneFrom,
    marker: &Marker,
) -> Result<(), PveError> {
    let source = resolve_template(client, clone).await?;
    let trailer = Trailer::new(spec.vmid, marker, Some(clone.clone()));
    let mut params = api::clone_params(vm_id(spec.vmid)?);
    params.name = Some(spec.name.clone());
    params.full = Some(clone.mode.is_full());
    params.description = Some(join_description(&spec.description, &trailer));
    let src = vm_id(source)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let res = proxmox_api::nodes::NodesClient::new(client.clone())
            .node(&spec.node)
            .qemu()
            .vmid(src)
            .clone()
            .post(params.clone())
            .await;
        match res {
            Ok(upid) => return client.wait_task(&spec.node, &upid).await,
            Err(e) if e.is_transient() && attempt < client.config().retries => {
                tracing::warn!(vmid = spec.vmid, error = %e, "clone request failed; re-observing before any retry");
                if observe_one(client, spec.vmid).await?.is_some() {
                    // The clone was accepted after all: wait for it instead of cloning again.
                    client.wait_unlocked(&spec.node, spec.vmid).await?;
                    return Ok(());
                }
                tokio::time::sleep(client.config().backoff).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates an empty VM with the spec's disks (for specs without a clone source), carrying
/// the whole marker (tag and description trailer) from the create call on, so an apply
/// killed right after it leaves a VM that is known to be this stack's.
pub async fn create_empty(client: &PveClient, spec: &Vm, marker: &Marker) -> Result<(), PveError> {
    let mut tags = spec.tags.clone();
    tags.push(marker_tag(&marker.stack));
    let trailer = Trailer::new(spec.vmid, marker, None);
    let mut params = vec![
        ("vmid".to_string(), spec.vmid.to_string()),
        ("name".into(), spec.name.clone()),
        ("tags".into(), propstr::normalize_tags(&tags.join(";"))),
        (
            "description".into(),
            join_description(&spec.description, &trailer),
        ),
    ];
    for (slot, size) in &spec.disks {
        let gib = propstr::parse_size(size).unwrap_or(0).div_ceil(1 << 30);
        params.push((slot.to_string(), format!("local-lvm:{gib}")));
    }
    let upid = client
        .request(Method::POST, &format!("/nodes/{}/qemu", spec.node), &params)
        .await?;
    wait(client, &spec.node, &upid).await
}

/// Brings the config, disks and power state of an existing VM to `spec`.
pub async fn converge(client: &PveClient, spec: &Vm, marker: &Marker) -> Result<(), PveError> {
    let node = &spec.node;
    let vmid = spec.vmid;
    let cur = VmConfig::from_value(&client.wait_unlocked(node, vmid).await?);
    write_config(client, spec, marker, &cur).await?;
    grow_disks(client, spec).await?;
    set_power(client, spec).await
}

/// Writes the config delta once, guarded by the digest of the config read before.
async fn write_config(
    client: &PveClient,
    spec: &Vm,
    marker: &Marker,
    cur: &VmConfig,
) -> Result<(), PveError> {
    let (node, vmid) = (&spec.node, spec.vmid);
    // The delta is computed once, from the config read here; a retry after a checksum
    // mismatch writes the same keys, and only if nobody else changed those keys.
    let desired = desired_config(spec, marker, cur);
    let (set, delete) = config_delta(&desired, cur);
    let mut digest = cur.get("digest").map(String::from);
    let mut attempts = 0;
    let path = format!("/nodes/{node}/qemu/{vmid}/config");
    while !set.is_empty() || !delete.is_empty() {
        attempts += 1;
        let mut params = set.clone();
        if !delete.is_empty() {
            params.push(("delete".into(), delete.join(",")));
        }
        if let Some(d) = &digest {
            params.push(("digest".into(), d.clone()));
        }
        match client.request(Method::PUT, &path, &params).await {
            Ok(_) => break,
            Err(e) if e.is_checksum_mismatch() && attempts < 3 => {
                // Someone changed the VM since we read it: re-observe; if they touched
                // a key we are about to write, stop instead of overwriting their change.
                let fresh = read_config(client, node, vmid).await?;
                let touched: Vec<&str> = set
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .chain(delete.iter().map(String::as_str))
                    .filter(|k| fresh.get(k) != cur.get(k))
                    .collect();
                if !touched.is_empty() {
                    return Err(api_error(
                        409,
                        format!(
                            "checksum mismatch: VM {vmid} changed outside cairn since it was read ({}); nothing was overwritten, re-run the plan",
                            touched.join(", ")
                        ),
                    ));
                }
                tracing::info!(
                    vmid,
                    "config changed concurrently in other keys; retrying with the new digest"
                );
                digest = fresh.get("digest").map(String::from);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Grows every declared disk that is smaller than declared; a shrink or a missing disk is
/// an error (the plan-time check refuses shrinks before anything is written).
async fn grow_disks(client: &PveClient, spec: &Vm) -> Result<(), PveError> {
    let (node, vmid) = (&spec.node, spec.vmid);
    let cfg = read_config(client, node, vmid).await?;
    for (slot, size) in &spec.disks {
        let slot = slot.to_string();
        let want = propstr::parse_size(size).unwrap_or(0);
        let have = cfg
            .get(&slot)
            .map(|v| propstr::parse(v, Some("file")))
            .and_then(|p| propstr::get(&p, "size").and_then(propstr::parse_size));
        match have {
            Some(h) if h > want => {
                return Err(api_error(
                    400,
                    format!(
                        "disk {slot} of VM {vmid} is {} and cannot shrink to {size}",
                        propstr::format_size(h)
                    ),
                ));
            }
            Some(h) if h == want => {}
            Some(_) => {
                let upid = client
                    .request(
                        Method::PUT,
                        &format!("/nodes/{node}/qemu/{vmid}/resize"),
                        &[("disk".into(), slot.clone()), ("size".into(), size.clone())],
                    )
                    .await?;
                wait(client, node, &upid).await?;
            }
            None => {
                return Err(api_error(
                    400,
                    format!(
                        "VM {vmid} has no disk {slot} to resize (adding disks is not supported)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Starts or shuts the VM down to match the spec's power state.
async fn set_power(client: &PveClient, spec: &Vm) -> Result<(), PveError> {
    let (node, vmid) = (&spec.node, spec.vmid);
    let running = api::vm_resources(client)
        .await?
        .into_iter()
        .find(|r| r.vmid == vmid)
        .is_some_and(|r| r.status.is_running());
    let want_running = spec.state == PowerState::Running;
    if want_running != running {
        let action = if want_running { "start" } else { "shutdown" };
        let upid = client
            .request(
                Method::POST,
                &format!("/nodes/{node}/qemu/{vmid}/status/{action}"),
                &[],
            )
            .await?;
        wait(client, node, &upid).await?;
    }
    Ok(())
}

/// Stops the VM if it runs, then destroys it with its disks. `vm` is the VM as read right
/// before the delete (the kit re-reads it and checks its marker). A VM that is already gone
/// counts as deleted.
pub async fn destroy(client: &PveClient, vm: &Vm) -> Result<(), PveError> {
    let (node, vmid) = (&vm.node, vm.vmid);
    let _permit = client.node_permit(node).await;
    if vm.state == PowerState::Running {
        let upid = client
            .request(
                Method::POST,
                &format!("/nodes/{node}/qemu/{vmid}/status/stop"),
                &[],
            )
            .await?;
        wait(client, node, &upid).await?;
    }
    let res = client
        .request(
            Method::DELETE,
            &format!("/nodes/{node}/qemu/{vmid}"),
            &[
                ("purge".into(), "1".into()),
                ("destroy-unreferenced-disks".into(), "1".into()),
            ],
        )
        .await;
    match res {
        Ok(upid) => wait(client, node, &upid).await,
        Err(e) if e.is_missing() => Ok(()),
        Err(e) => Err(e),
    }
}
