//! The handlers behind the simulated `/api2/json` routes (see `routes.rs`): cluster, node,
//! qemu and task endpoints, and the checks they share.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use serde_json::{Value, json};

use super::Shared;
use super::http::{ApiError, Caller, Params};
use super::world::{self, GIB, VmState, World};
use crate::propstr;

pub(super) type ApiResult = Result<Value, ApiError>;

/// The decoded path segments after `/api2/json`, or `None` for a path outside the API.
pub(crate) fn segments(path: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix("/api2/json")?;
    Some(
        rest.split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            })
            .collect(),
    )
}

/// The error of a write that waited for a VM's config lock in vain.
pub(super) fn lock_timeout(vmid: &str) -> ApiError {
    ApiError::internal(format!(
        "can't lock file '/var/lock/qemu-server/lock-{vmid}.conf' - got timeout"
    ))
}

pub(super) fn ticket(shared: &Shared, method: &Method, p: &Params) -> ApiResult {
    if *method != Method::POST {
        return Err(ApiError::new(501, "not implemented"));
    }
    let user = p.get("username").cloned().unwrap_or_default();
    let user = if user.contains('@') {
        user
    } else {
        format!("{user}@{}", p.get("realm").map_or("pam", String::as_str))
    };
    if user != "root@pam" || p.get("password") != Some(&shared.password) {
        return Err(ApiError::new(401, "authentication failure"));
    }
    let n = shared.tickets.lock().expect("tickets").len() + 1;
    let stamp = world::now_unix();
    let ticket = format!("PVE:{user}:{stamp:08X}::c2ltdWxhdGVkLXRpY2tldC0{n:04}");
    let csrf = format!("{stamp:08X}:c2ltLWNzcmYt{n:04}");
    shared
        .tickets
        .lock()
        .expect("tickets")
        .insert(ticket.clone(), csrf.clone());
    Ok(json!({"username": user, "ticket": ticket, "CSRFPreventionToken": csrf, "cap": {}}))
}

pub(super) fn parse_vmid(s: &str, name: &str) -> Result<u32, ApiError> {
    let n: i64 = s
        .parse()
        .map_err(|_| ApiError::param(name, format!("type check ('integer') failed - got '{s}'")))?;
    if n < 100 {
        return Err(ApiError::param(
            name,
            "value must have a minimum value of 100",
        ));
    }
    if n > 999_999_999 {
        return Err(ApiError::param(
            name,
            "value must have a maximum value of 999999999",
        ));
    }
    Ok(n as u32)
}

fn missing_vm(node: &str, vmid: u32) -> ApiError {
    ApiError::internal(format!(
        "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
    ))
}

pub(super) fn get_vm<'a>(w: &'a World, node: &str, vmid: u32) -> Result<&'a VmState, ApiError> {
    w.vms
        .get(&vmid)
        .filter(|v| v.node == node)
        .ok_or_else(|| missing_vm(node, vmid))
}

fn get_vm_mut<'a>(w: &'a mut World, node: &str, vmid: u32) -> Result<&'a mut VmState, ApiError> {
    w.vms
        .get_mut(&vmid)
        .filter(|v| v.node == node)
        .ok_or_else(|| missing_vm(node, vmid))
}

fn check_lock(vm: &VmState, p: &Params) -> Result<(), ApiError> {
    match vm.config.get("lock") {
        Some(l) if p.get("skiplock").is_none_or(|s| s != "1") => {
            Err(ApiError::internal(format!("VM is locked ({l})")))
        }
        _ => Ok(()),
    }
}

fn bool_param(p: &Params, k: &str) -> Result<Option<bool>, ApiError> {
    match p.get(k).map(String::as_str) {
        None => Ok(None),
        Some("1" | "true" | "yes" | "on") => Ok(Some(true)),
        Some("0" | "false" | "no" | "off") => Ok(Some(false)),
        Some(v) => Err(ApiError::param(
            k,
            format!("type check ('boolean') failed - got '{v}'"),
        )),
    }
}

// ---- cluster and nodes -------------------------------------------------------------

pub(super) fn node_entry(w: &World, node: &str) -> Value {
    let n = &w.nodes[node];
    json!({
        "id": format!("node/{node}"), "type": "node", "node": node, "status": "online",
        "maxmem": n.memory_total, "mem": w.used(node), "maxcpu": n.cpus, "cpu": 0.12,
        "maxdisk": 100 * GIB, "disk": 20 * GIB, "uptime": 864000, "level": "",
    })
}

pub(super) fn cluster_resources(w: &World, ty: Option<&str>) -> ApiResult {
    if let Some(t) = ty
        && !["vm", "storage", "node", "sdn"].contains(&t)
    {
        return Err(ApiError::param(
            "type",
            format!(
                "value '{t}' does not have a value in the enumeration 'vm, storage, node, sdn'"
            ),
        ));
    }
    let mut out = Vec::new();
    if ty.is_none_or(|t| t == "node") {
        out.extend(w.nodes.keys().map(|n| node_entry(w, n)));
    }
    if ty.is_none_or(|t| t == "storage") {
        for n in w.nodes.keys() {
            out.push(json!({"id": format!("storage/{n}/local-lvm"), "type": "storage",
                "node": n, "storage": "local-lvm", "status": "available", "plugintype": "lvmthin",
                "content": "images,rootdir", "maxdisk": 2048 * GIB, "disk": 600 * GIB, "shared": 0}));
        }
    }
    if ty.is_none_or(|t| t == "vm") {
        for (id, vm) in &w.vms {
            out.push(vm_resource(*id, vm));
        }
    }
    Ok(Value::Array(out))
}

fn vm_resource(vmid: u32, vm: &VmState) -> Value {
    let cfg = &vm.config;
    let creating = cfg
        .get("lock")
        .is_some_and(|l| l == "clone" || l == "create");
    let cores: u64 = cfg.get("cores").and_then(|c| c.parse().ok()).unwrap_or(1);
    let sockets: u64 = cfg.get("sockets").and_then(|c| c.parse().ok()).unwrap_or(1);
    let mut v = json!({
        "id": format!("qemu/{vmid}"), "type": "qemu", "vmid": vmid, "node": vm.node,
        "status": if creating { "unknown" } else if vm.running { "running" } else { "stopped" },
        "template": u8::from(vm.is_template()),
        "maxcpu": cores * sockets, "maxmem": vm.memory_mib() << 20,
        "mem": if vm.running { (vm.memory_mib() << 20) / 2 } else { 0 },
        "maxdisk": vm.maxdisk(), "disk": 0, "cpu": 0, "uptime": if vm.running { 3600 } else { 0 },
        "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
    });
    if !creating && let Some(n) = cfg.get("name") {
        v["name"] = json!(n);
    }
    if let Some(t) = cfg.get("tags") {
        v["tags"] = json!(t);
    }
    if let Some(l) = cfg.get("lock") {
        v["lock"] = json!(l);
    }
    v
}

pub(super) fn nextid(w: &World, p: &Params) -> ApiResult {
    if let Some(v) = p.get("vmid") {
        let id = parse_vmid(v, "vmid")?;
        if w.vms.contains_key(&id) {
            return Err(ApiError::param("vmid", format!("VM {id} already exists")));
        }
        return Ok(json!(id.to_string()));
    }
    let id = (100..).find(|i| !w.vms.contains_key(i)).unwrap_or(100);
    Ok(json!(id.to_string()))
}

pub(super) fn node_status(w: &World, node: &str) -> Value {
    let n = &w.nodes[node];
    let used = w.used(node).min(n.memory_total);
    json!({
        "memory": {"total": n.memory_total, "used": used, "free": n.memory_total - used},
        "swap": {"total": 8 * GIB, "used": 0, "free": 8 * GIB},
        "rootfs": {"total": 100 * GIB, "used": 20 * GIB, "free": 80 * GIB, "avail": 75 * GIB},
        "cpu": 0.12, "wait": 0.0, "uptime": 864000,
        "cpuinfo": {"cpus": n.cpus, "cores": n.cpus / 2, "sockets": 1, "model": "Simulated CPU", "mhz": "3000.000", "hvm": "1", "flags": "", "user_hz": 100},
        "loadavg": ["0.50", "0.40", "0.30"],
        "kversion": "Linux 6.14.8-2-pve #1 SMP PREEMPT_DYNAMIC PMX 6.14.8-2 x86_64",
        "pveversion": "pve-manager/9.1.2/c0ffee01",
        "current-kernel": {"sysname": "Linux", "release": "6.14.8-2-pve", "machine": "x86_64", "version": "#1 SMP"},
        "boot-info": {"mode": "efi", "secureboot": 0},
        "ksm": {"shared": 0},
    })
}

// ---- VM config ---------------------------------------------------------------------

const INT_KEYS: &[&str] = &[
    "cores",
    "sockets",
    "onboot",
    "template",
    "balloon",
    "numa",
    "kvm",
    "acpi",
    "protection",
    "tablet",
    "cpuunits",
    "vcpus",
    "autostart",
    "vmid",
];
const BOOL_KEYS: &[&str] = &[
    "onboot",
    "template",
    "numa",
    "kvm",
    "acpi",
    "protection",
    "tablet",
    "autostart",
];
const STRING_KEYS: &[&str] = &[
    "name",
    "description",
    "ciuser",
    "cipassword",
    "nameserver",
    "searchdomain",
    "ostype",
    "boot",
    "scsihw",
    "vga",
    "cpu",
    "machine",
    "bios",
    "agent",
    "citype",
    "cicustom",
    "hotplug",
    "startup",
    "smbios1",
    "vmgenid",
    "sshkeys",
    "tags",
    "memory",
    "cores",
    "sockets",
    "balloon",
    "cpuunits",
    "vcpus",
    "onboot",
    "template",
    "numa",
    "kvm",
    "acpi",
    "protection",
    "tablet",
    "autostart",
    "ciupgrade",
    "rng0",
    "audio0",
];
const INDEXED_KEYS: &[(&str, u32)] = &[
    ("net", 31),
    ("scsi", 30),
    ("virtio", 15),
    ("sata", 5),
    ("ide", 3),
    ("ipconfig", 31),
    ("unused", 255),
    ("serial", 3),
    ("usb", 13),
    ("hostpci", 15),
    ("efidisk", 0),
    ("tpmstate", 0),
];
/// Keys that take effect at once on a running VM (hotplug default `network,disk,usb`).
fn hotpluggable(k: &str) -> bool {
    [
        "name",
        "description",
        "tags",
        "onboot",
        "protection",
        "lock",
        "startup",
    ]
    .contains(&k)
        || k.starts_with("net")
        || (world::is_disk_key(k) && k != "efidisk0")
        || k.starts_with("unused")
}

fn known_key(k: &str) -> bool {
    STRING_KEYS.contains(&k)
        || INDEXED_KEYS.iter().any(|(p, max)| {
            k.strip_prefix(p)
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n <= *max)
        })
}

const NIC_MODELS: &[&str] = &["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"];
const NIC_KEYS: &[&str] = &[
    "bridge",
    "firewall",
    "link_down",
    "mtu",
    "queues",
    "rate",
    "tag",
    "trunks",
];

fn canonical_net(w: &mut World, seed: u64, v: &str) -> Result<String, String> {
    let pairs = propstr::parse(v, None);
    let mut model = None;
    let mut mac = None;
    let mut rest = BTreeMap::new();
    for (k, val) in &pairs {
        if NIC_MODELS.contains(&k.as_str()) {
            model = Some(k.clone());
            if !val.is_empty() {
                mac = Some(val.to_ascii_uppercase());
            }
        } else if k == "model" {
            model = Some(val.clone());
        } else if k == "macaddr" {
            mac = Some(val.to_ascii_uppercase());
        } else if NIC_KEYS.contains(&k.as_str()) {
            if k == "tag" && !val.parse::<u16>().is_ok_and(|t| (1..=4094).contains(&t)) {
                return Err(format!("invalid format - tag: value '{val}' out of range"));
            }
            rest.insert(k.clone(), val.clone());
        } else {
            return Err(format!(
                "invalid format - {k}: property is not defined in schema"
            ));
        }
    }
    let model = model.ok_or("invalid format - missing property 'model'")?;
    if !NIC_MODELS.contains(&model.as_str()) {
        return Err(format!(
            "invalid format - model: value '{model}' does not have a value in the enumeration"
        ));
    }
    if let Some(m) = &mac
        && (m.len() != 17 || m.split(':').count() != 6)
    {
        return Err(format!(
            "invalid format - macaddr: value '{m}' is not a valid MAC address"
        ));
    }
    let mac = mac.unwrap_or_else(|| w.new_mac(seed));
    let mut out = vec![(model, mac)];
    for k in NIC_KEYS {
        if let Some(v) = rest.get(*k) {
            out.push((k.to_string(), v.clone()));
        }
    }
    Ok(propstr::format(&out))
}

/// Validates and normalises one config value; allocates disks given as `storage:SIZE`.
fn normalise_value(w: &mut World, vmid: u32, k: &str, v: &str) -> Result<String, String> {
    if BOOL_KEYS.contains(&k) {
        return match v {
            "1" | "true" | "yes" | "on" => Ok("1".into()),
            "0" | "false" | "no" | "off" => Ok("0".into()),
            _ => Err(format!("type check ('boolean') failed - got '{v}'")),
        };
    }
    if INT_KEYS.contains(&k) {
        let n: i64 = v
            .parse()
            .map_err(|_| format!("type check ('integer') failed - got '{v}'"))?;
        if ["cores", "sockets", "vcpus"].contains(&k) && n < 1 {
            return Err("value must have a minimum value of 1".into());
        }
        return Ok(n.to_string());
    }
    match k {
        "memory" => {
            let m = world::memory_mib(Some(v));
            let p = propstr::parse(v, Some("current"));
            let ok = propstr::get(&p, "current").is_some_and(|c| c.parse::<u64>().is_ok());
            if !ok || p.len() != 1 {
                return Err(format!(
                    "invalid format - value '{v}' does not look like a valid memory specification"
                ));
            }
            if m < 16 {
                return Err(
                    "invalid format - current: value must have a minimum value of 16".into(),
                );
            }
            Ok(m.to_string())
        }
        "tags" => {
            let tags = propstr::split_tags(v);
            if let Some(bad) = tags.iter().find(|t| !propstr::valid_tag(t)) {
                return Err(format!(
                    "invalid format - invalid characters in tag '{bad}'"
                ));
            }
            Ok(propstr::normalize_tags(v))
        }
        "sshkeys" => {
            if !propstr::is_urlencoded(v) {
                return Err("invalid format - invalid urlencoded string".into());
            }
            Ok(v.to_string())
        }
        "name" => {
            let ok = !v.is_empty()
                && v.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !l.starts_with('-')
                });
            if ok {
                Ok(v.to_string())
            } else {
                Err(format!(
                    "invalid format - value '{v}' does not look like a valid DNS name"
                ))
            }
        }
        _ if k.starts_with("net") => canonical_net(w, vmid as u64, v),
        _ if k.starts_with("ipconfig") => {
            for (key, val) in propstr::parse(v, None) {
                if !["ip", "gw", "ip6", "gw6"].contains(&key.as_str()) {
                    return Err(format!(
                        "invalid format - {key}: property is not defined in schema"
                    ));
                }
                if key == "ip" && val != "dhcp" && !val.contains('/') {
                    return Err(format!("invalid format - ip: value '{val}' is not a CIDR"));
                }
            }
            Ok(v.to_string())
        }
        _ if world::is_disk_key(k) => Ok(allocate_disk(w, vmid, k, v)),
        _ => Ok(v.to_string()),
    }
}

fn allocate_disk(w: &World, vmid: u32, k: &str, v: &str) -> String {
    let pairs = propstr::parse(v, Some("file"));
    let Some(file) = propstr::get(&pairs, "file") else {
        return v.to_string();
    };
    let Some((storage, vol)) = file.split_once(':') else {
        return v.to_string();
    };
    let opts: Vec<(String, String)> = pairs.iter().filter(|(k, _)| k != "file").cloned().collect();
    if vol == "cloudinit" {
        return format!("{storage}:vm-{vmid}-cloudinit,media=cdrom");
    }
    if let Ok(gib) = vol.parse::<u64>() {
        let n = w.vms.get(&vmid).map_or(0, |vm| {
            vm.config.keys().filter(|c| world::is_disk_key(c)).count()
        });
        let mut s = format!("{storage}:vm-{vmid}-disk-{n}");
        for (ok, ov) in opts.iter().filter(|(ok, _)| ok != "size") {
            s.push_str(&format!(",{ok}={ov}"));
        }
        let _ = k;
        return format!("{s},size={gib}G");
    }
    v.to_string()
}

/// Validates all config parameters; returns normalised values and keys to delete.
fn validate_config(
    w: &mut World,
    vmid: u32,
    p: &Params,
    extra: &[&str],
) -> Result<(BTreeMap<String, String>, Vec<String>), ApiError> {
    let mut errors = BTreeMap::new();
    let mut set = BTreeMap::new();
    let mut delete = Vec::new();
    for (k, v) in p {
        if ["node", "vmid", "digest", "skiplock", "background_delay"].contains(&k.as_str())
            || extra.contains(&k.as_str())
        {
            continue;
        }
        if k == "delete" {
            for d in v.split([',', ';', ' ']).filter(|d| !d.is_empty()) {
                if known_key(d) {
                    delete.push(d.to_string());
                } else {
                    errors.insert(
                        "delete".to_string(),
                        format!("invalid format - invalid configuration ID '{d}'"),
                    );
                }
            }
            continue;
        }
        if !known_key(k) {
            errors.insert(
                k.clone(),
                "property is not defined in schema and the schema does not allow additional properties".into(),
            );
            continue;
        }
        match normalise_value(w, vmid, k, v) {
            Ok(n) => {
                set.insert(k.clone(), n);
            }
            Err(e) => {
                errors.insert(k.clone(), e);
            }
        }
    }
    if let Some(d) = delete.iter().find(|d| set.contains_key(*d)) {
        errors.insert(
            d.clone(),
            format!("unable to delete parameter '{d}' - is also set"),
        );
    }
    if errors.is_empty() {
        Ok((set, delete))
    } else {
        Err(ApiError::params(errors))
    }
}

pub(super) fn config_json(vm: &VmState, current: bool) -> Value {
    let cfg = if current {
        vm.config.clone()
    } else {
        vm.effective()
    };
    let mut out = serde_json::Map::new();
    for (k, v) in cfg {
        let val = if INT_KEYS.contains(&k.as_str()) {
            v.parse::<i64>().map_or(json!(v), |n| json!(n))
        } else {
            json!(v)
        };
        out.insert(k, val);
    }
    out.insert("digest".into(), json!(vm.digest()));
    Value::Object(out)
}

pub(super) fn pending(vm: &VmState) -> Value {
    let mut keys: Vec<&String> = vm.config.keys().chain(vm.pending.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            let mut e = json!({"key": k});
            if let Some(v) = vm.config.get(k) {
                e["value"] = json!(v);
            }
            if let Some(v) = vm.pending.get(k) {
                e["pending"] = json!(v);
            }
            if vm.pending_delete.contains(k) {
                e["delete"] = json!(1);
            }
            e
        })
        .collect();
    out.extend(
        vm.pending_delete
            .iter()
            .filter(|k| !vm.config.contains_key(*k))
            .map(|k| json!({"key": k, "delete": 1})),
    );
    Value::Array(out)
}

pub(super) fn update_config(
    shared: &Arc<Shared>,
    w: &mut World,
    node: &str,
    vmid: u32,
    p: &Params,
    caller: &Caller,
    is_post: bool,
) -> ApiResult {
    for t in shared.take_tamper(vmid) {
        if let Some(vm) = w.vms.get_mut(&vmid) {
            shared.injected("tamper");
            vm.config.insert(t.key, t.value);
        }
    }
    let vm = get_vm(w, node, vmid)?;
    if let Some(d) = p.get("digest")
        && *d != vm.digest()
    {
        return Err(ApiError::internal(
            "detected modified configuration - checksum mismatch: file changed by other user? Try again.",
        ));
    }
    check_lock(vm, p)?;
    let (set, delete) = validate_config(w, vmid, p, &["revert"])?;
    let vm = get_vm_mut(w, node, vmid)?;
    let running = vm.running;
    for k in delete {
        if running && !hotpluggable(&k) {
            vm.pending.remove(&k);
            vm.pending_delete.insert(k);
        } else {
            vm.config.remove(&k);
            vm.pending.remove(&k);
        }
    }
    for (k, v) in set {
        if running && !hotpluggable(&k) {
            if vm.config.get(&k) == Some(&v) {
                vm.pending.remove(&k);
            } else {
                vm.pending.insert(k.clone(), v);
            }
            vm.pending_delete.remove(&k);
        } else {
            vm.pending.remove(&k);
            vm.config.insert(k, v);
        }
    }
    if is_post {
        let upid = w.start_task(node, "qmconfig", &vmid.to_string(), &caller.user);
        spawn_task(shared, upid.clone(), shared.task_duration, |_| {}, |_| {});
        Ok(json!(upid))
    } else {
        Ok(Value::Null)
    }
}

pub(super) fn vm_list_entry(vmid: u32, vm: &VmState) -> Value {
    let mut v = vm_resource(vmid, vm);
    let o = v.as_object_mut().expect("object");
    o.remove("id");
    o.remove("type");
    o.remove("node");
    o.insert("cpus".into(), o["maxcpu"].clone());
    v
}

pub(super) fn status_current(vmid: u32, vm: &VmState) -> Value {
    let mut v = vm_list_entry(vmid, vm);
    v["qmpstatus"] = json!(if vm.running { "running" } else { "stopped" });
    v["ha"] = json!({"managed": 0});
    if vm.config.contains_key("agent") {
        v["agent"] = json!(1);
    }
    v
}

// ---- tasks ---------------------------------------------------------------------------

/// Runs a task in the background: after `dur`, either applies `ok` and stops with `OK`,
/// or (when a task fault is configured) applies `fail` and stops with the fault's text.
fn spawn_task(
    shared: &Arc<Shared>,
    upid: String,
    dur: Duration,
    ok: impl FnOnce(&mut World) + Send + 'static,
    fail: impl FnOnce(&mut World) + Send + 'static,
) {
    let kind = upid.split(':').nth(5).unwrap_or_default().to_string();
    let failure = shared.take_task_fault(&kind);
    spawn_task_ending(shared, upid, dur, failure, ok, fail);
}

/// A task that ends after `dur`: in `failure` (its exit status) if given, else OK.
fn spawn_task_ending(
    shared: &Arc<Shared>,
    upid: String,
    dur: Duration,
    failure: Option<String>,
    ok: impl FnOnce(&mut World) + Send + 'static,
    fail: impl FnOnce(&mut World) + Send + 'static,
) {
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(dur).await;
        let mut w = shared.world.lock().expect("world");
        let status = match failure {
            None => {
                ok(&mut w);
                "OK".to_string()
            }
            Some(msg) => {
                fail(&mut w);
                msg
            }
        };
        if let Some(t) = w.tasks.get_mut(&upid) {
            if status == "OK" {
                t.log.push("TASK OK".into());
            } else {
                t.log.push(format!("TASK ERROR: {status}"));
            }
            t.exitstatus = Some(status);
        }
    });
}

pub(super) fn task_status(w: &World, upid: &str) -> ApiResult {
    let t = w
        .tasks
        .get(upid)
        .ok_or_else(|| ApiError::param("upid", "unable to parse worker upid"))?;
    let mut v = json!({
        "upid": upid, "node": t.node, "pid": t.pid, "pstart": t.pstart, "starttime": t.starttime,
        "type": t.kind, "id": t.id, "user": t.user,
        "status": if t.exitstatus.is_some() { "stopped" } else { "running" },
    });
    if let Some(e) = &t.exitstatus {
        v["exitstatus"] = json!(e);
    }
    Ok(v)
}

pub(super) fn task_log(w: &World, upid: &str, p: &Params) -> ApiResult {
    let t = w
        .tasks
        .get(upid)
        .ok_or_else(|| ApiError::param("upid", "unable to parse worker upid"))?;
    let start: usize = p.get("start").and_then(|s| s.parse().ok()).unwrap_or(0);
    let limit: usize = p.get("limit").and_then(|s| s.parse().ok()).unwrap_or(50);
    Ok(Value::Array(
        t.log
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, l)| json!({"n": i + 1, "t": l}))
            .collect(),
    ))
}

// ---- create, clone, resize, power, destroy -------------------------------------------

pub(super) fn create(
    shared: &Arc<Shared>,
    w: &mut World,
    node: &str,
    p: &Params,
    caller: &Caller,
) -> ApiResult {
    let vmid = parse_vmid(
        p.get("vmid")
            .ok_or_else(|| ApiError::param("vmid", "property is missing and it is not optional"))?,
        "vmid",
    )?;
    if let Some(existing) = w.vms.get(&vmid) {
        return Err(ApiError::internal(format!(
            "unable to create VM {vmid} - VM {vmid} already exists on node '{}'",
            existing.node
        )));
    }
    let start = bool_param(p, "start")?.unwrap_or(false);
    let (set, delete) = validate_config(
        w,
        vmid,
        p,
        &[
            "start",
            "pool",
            "storage",
            "unique",
            "archive",
            "force",
            "live-restore",
            "bwlimit",
        ],
    )?;
    if !delete.is_empty() {
        return Err(ApiError::param(
            "delete",
            "property is not defined in schema and the schema does not allow additional properties",
        ));
    }
    let mut config = set;
    config.insert("lock".into(), "create".into());
    w.vms.insert(
        vmid,
        VmState {
            node: node.to_string(),
            config,
            pending: BTreeMap::new(),
            pending_delete: Default::default(),
            running: false,
        },
    );
    let upid = w.start_task(node, "qmcreate", &vmid.to_string(), &caller.user);
    if let Some(t) = w.tasks.get_mut(&upid) {
        t.log.push(format!("create VM {vmid}"));
    }
    spawn_task(
        shared,
        upid.clone(),
        shared.clone_duration,
        move |w| {
            if let Some(vm) = w.vms.get_mut(&vmid) {
                vm.config.remove("lock");
                if start {
                    vm.running = true;
                }
            }
        },
        move |w| {
            w.vms.remove(&vmid);
        },
    );
    Ok(json!(upid))
}

pub(super) fn clone(
    shared: &Arc<Shared>,
    w: &mut World,
    node: &str,
    vmid: u32,
    p: &Params,
    caller: &Caller,
) -> ApiResult {
    let newid = parse_vmid(
        p.get("newid").ok_or_else(|| {
            ApiError::param("newid", "property is missing and it is not optional")
        })?,
        "newid",
    )?;
    let full = bool_param(p, "full")?;
    if let Some(name) = p.get("name")
        && normalise_value(w, newid, "name", name).is_err()
    {
        return Err(ApiError::param(
            "name",
            format!("invalid format - value '{name}' does not look like a valid DNS name"),
        ));
    }
    let src = get_vm(w, node, vmid)?.clone();
    if let Some(t) = p.get("target")
        && t != node
    {
        return Err(ApiError::internal(format!(
            "Can't clone to node '{t}': storage 'local-lvm' is not shared"
        )));
    }
    let linked = src.is_template() && !full.unwrap_or(false);
    if linked && p.contains_key("storage") {
        return Err(ApiError::param(
            "storage",
            "option 'storage' is only allowed with full clone",
        ));
    }
    if !src.is_template() && full == Some(false) {
        return Err(ApiError::param(
            "full",
            "linked clone only allowed for templates",
        ));
    }
    if w.task_running("qmclone", &vmid.to_string()) {
        return Err(lock_timeout(&vmid.to_string()));
    }
    if let Some(existing) = w.vms.get(&newid) {
        return Err(ApiError::internal(format!(
            "unable to create VM {newid}: config file already exists (VM {newid} on node '{}')",
            existing.node
        )));
    }
    if let Some(l) = src.config.get("lock") {
        return Err(ApiError::internal(format!("VM is locked ({l})")));
    }
    let mut config = BTreeMap::new();
    let mut log = vec![format!(
        "create {} clone of VM {vmid} ({})",
        if linked { "linked" } else { "full" },
        src.config.get("name").map_or("", String::as_str)
    )];
    for (k, v) in &src.config {
        // Like PVE, a clone copies the description and tags (cairn's marker with them);
        // only the name and an explicit `description` parameter differ.
        if ["template", "lock", "vmgenid", "name"].contains(&k.as_str()) {
            continue;
        }
        let nv = if k.starts_with("net") {
            let mut pairs = propstr::parse(v, None);
            if let Some(first) = pairs.first_mut() {
                first.1 = w.new_mac(newid as u64);
            }
            propstr::format(&pairs)
        } else if world::is_disk_key(k) && v.contains("cloudinit") {
            format!("local-lvm:vm-{newid}-cloudinit,media=cdrom")
        } else if world::is_disk_key(k) {
            let mut pairs = propstr::parse(v, Some("file"));
            if let Some(f) = pairs.iter_mut().find(|(k, _)| k == "file") {
                let (storage, vol) = f.1.split_once(':').unwrap_or(("local-lvm", f.1.as_str()));
                let disk_n = vol.rsplit('-').next().unwrap_or("0");
                f.1 = if linked {
                    format!("{storage}:{vol}/vm-{newid}-disk-{disk_n}")
                } else {
                    format!("{storage}:vm-{newid}-disk-{disk_n}")
                };
                log.push(format!(
                    "{} drive {k} ({})",
                    if linked { "link" } else { "copy" },
                    v.split(',').next().unwrap_or("")
                ));
            }
            render_disk(&pairs)
        } else {
            v.clone()
        };
        config.insert(k.clone(), nv);
    }
    if let Some(n) = p.get("name") {
        config.insert("name".into(), n.clone());
    } else {
        config.insert(
            "name".into(),
            format!(
                "Copy-of-VM-{}",
                src.config.get("name").map_or("", String::as_str)
            ),
        );
    }
    if let Some(d) = p.get("description") {
        config.insert("description".into(), d.clone());
    }
    config.insert("lock".into(), "clone".into());
    w.vms.insert(
        newid,
        VmState {
            node: node.to_string(),
            config,
            pending: BTreeMap::new(),
            pending_delete: Default::default(),
            running: false,
        },
    );
    let upid = w.start_task(node, "qmclone", &vmid.to_string(), &caller.user);
    if let Some(t) = w.tasks.get_mut(&upid) {
        t.log.extend(log);
    }
    spawn_task(
        shared,
        upid.clone(),
        shared.clone_duration,
        move |w| {
            if let Some(vm) = w.vms.get_mut(&newid) {
                vm.config.remove("lock");
            }
        },
        move |w| {
            w.vms.remove(&newid);
        },
    );
    Ok(json!(upid))
}

pub(super) fn resize(
    shared: &Arc<Shared>,
    w: &mut World,
    node: &str,
    vmid: u32,
    p: &Params,
    caller: &Caller,
) -> ApiResult {
    let vm = get_vm(w, node, vmid)?;
    if let Some(d) = p.get("digest")
        && *d != vm.digest()
    {
        return Err(ApiError::internal(
            "detected modified configuration - checksum mismatch: file changed by other user? Try again.",
        ));
    }
    check_lock(vm, p)?;
    let disk = p
        .get("disk")
        .ok_or_else(|| ApiError::param("disk", "property is missing and it is not optional"))?;
    let size = p
        .get("size")
        .ok_or_else(|| ApiError::param("size", "property is missing and it is not optional"))?;
    let value = vm
        .config
        .get(disk)
        .filter(|_| world::is_disk_key(disk))
        .ok_or_else(|| ApiError::internal(format!("disk '{disk}' does not exist")))?
        .clone();
    let cur = world::disk_size(&value).unwrap_or(0);
    let (rel, num) = match size.strip_prefix('+') {
        Some(n) => (true, n),
        None => (false, size.as_str()),
    };
    let bytes = propstr::parse_size(num).ok_or_else(|| {
        ApiError::param(
            "size",
            format!("value '{size}' does not match the regex pattern"),
        )
    })?;
    let new = if rel { cur + bytes } else { bytes };
    if new < cur {
        return Err(ApiError::internal("shrinking disks is not supported"));
    }
    let mut pairs = propstr::parse(&value, Some("file"));
    match pairs.iter_mut().find(|(k, _)| k == "size") {
        Some(s) => s.1 = propstr::format_size(new),
        None => pairs.push(("size".into(), propstr::format_size(new))),
    }
    let rendered = render_disk(&pairs);
    get_vm_mut(w, node, vmid)?
        .config
        .insert(disk.clone(), rendered);
    let upid = w.start_task(node, "resize", &vmid.to_string(), &caller.user);
    spawn_task(shared, upid.clone(), shared.task_duration, |_| {}, |_| {});
    Ok(json!(upid))
}

pub(super) fn power(
    shared: &Arc<Shared>,
    w: &mut World,
    node: &str,
    vmid: u32,
    action: &str,
    caller: &Caller,
) -> ApiResult {
    let vm = get_vm(w, node, vmid)?;
    check_lock(vm, &Params::new())?;
    if vm.is_template() && action == "start" {
        return Err(ApiError::internal(
            "you can't start a vm if it's a template",
        ));
    }
    let kind = match action {
        "start" => "qmstart",
        "stop" => "qmstop",
        _ => "qmshutdown",
    };
    let starting = action == "start";
    // What the host cannot give makes the start task fail, as QEMU would.
    let refused = if starting && !vm.running {
        start_refusal(w, node, vm)
    } else {
        None
    };
    let upid = w.start_task(node, kind, &vmid.to_string(), &caller.user);
    let failure = match refused {
        Some((log, status)) => {
            if let Some(t) = w.tasks.get_mut(&upid) {
                t.log.push(log);
            }
            Some(status)
        }
        None => shared.take_task_fault(kind),
    };
    spawn_task_ending(
        shared,
        upid.clone(),
        shared.task_duration,
        failure,
        move |w| {
            if let Some(vm) = w.vms.get_mut(&vmid) {
                if starting && !vm.running {
                    vm.apply_pending();
                }
                vm.running = starting;
            }
        },
        |_| {},
    );
    Ok(json!(upid))
}

/// Why the host cannot start `vm` (a task log line and the exit status), if it cannot: more
/// vCPUs than the node has (qemu-server's check), or more memory than the whole node has
/// (QEMU cannot allocate guest RAM).
fn start_refusal(w: &World, node: &str, vm: &VmState) -> Option<(String, String)> {
    let n = w.nodes.get(node)?;
    let mut after = vm.clone();
    after.apply_pending();
    let num = |k: &str| {
        after
            .config
            .get(k)
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1)
    };
    let vcpus = num("cores") * num("sockets");
    if vcpus > n.cpus {
        let msg = format!("MAX {} vcpus allowed per VM on this node", n.cpus);
        return Some((msg.clone(), msg));
    }
    // Linux overcommits guest RAM (Proxmox lets running VMs add up to more than the host
    // has), but refuses one allocation larger than the whole host.
    if after.memory_mib() << 20 > n.memory_total {
        return Some((
            "kvm: cannot set up guest memory 'pc.ram': Cannot allocate memory".into(),
            "start failed: QEMU exited with code 1".into(),
        ));
    }
    None
}

pub(super) fn destroy(
    shared: &Arc<Shared>,
    w: &mut World,
    node: &str,
    vmid: u32,
    caller: &Caller,
) -> ApiResult {
    let vm = get_vm(w, node, vmid)?;
    check_lock(vm, &Params::new())?;
    if vm.running {
        return Err(ApiError::internal(format!(
            "VM {vmid} is running - destroy failed"
        )));
    }
    get_vm_mut(w, node, vmid)?
        .config
        .insert("lock".into(), "destroyed".into());
    let upid = w.start_task(node, "qmdestroy", &vmid.to_string(), &caller.user);
    spawn_task(
        shared,
        upid.clone(),
        shared.task_duration,
        move |w| {
            w.vms.remove(&vmid);
        },
        move |w| {
            if let Some(vm) = w.vms.get_mut(&vmid) {
                vm.config.remove("lock");
            }
        },
    );
    Ok(json!(upid))
}

/// Renders disk pairs parsed with the `file` default key back into `file,opt=v,…`.
fn render_disk(pairs: &[(String, String)]) -> String {
    let mut out = pairs
        .iter()
        .find(|(k, _)| k == "file")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    for (k, v) in pairs.iter().filter(|(k, _)| k != "file") {
        out.push_str(&format!(",{k}={v}"));
    }
    out
}
