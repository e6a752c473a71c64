//! The `proxmox_vm` kind (a QEMU VM, usually cloned from a cloud-init template) and the
//! read-only `proxmox_template` lookup, plus the mapping between a spec and the Proxmox
//! config: rendering the desired config, and reading a config back into spec shape with
//! Proxmox's normalisations undone (tags, `sshkeys`, memory, pending values) so a second
//! diff after apply is empty.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use cairn_core::{AttrRef, Field, FieldError, Handle, Marker, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::propstr;

/// A QEMU virtual machine. Key: the VMID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vm {
    /// The VMID (the key).
    pub vmid: u32,
    /// The VM (host)name.
    pub name: String,
    /// The node it lives on (changing it replaces the VM).
    pub node: String,
    /// Where it is cloned from; `None` = not managed (e.g. an adopted hand-made VM).
    pub clone: Option<CloneFrom>,
    /// Cores per socket.
    pub cores: u32,
    /// Sockets.
    pub sockets: u32,
    /// Memory in MiB.
    pub memory: u64,
    /// Disks by slot (`scsi0`) → size in Proxmox units (`64G`, `3584M`); grow only.
    pub disks: BTreeMap<String, String>,
    /// NICs by slot (`net0`).
    pub networks: BTreeMap<String, Nic>,
    /// Cloud-init settings.
    pub cloud_init: CloudInit,
    /// Tags (lowercase; order does not matter).
    pub tags: Vec<String>,
    /// Free-text description.
    pub description: String,
    /// Start at host boot.
    pub onboot: bool,
    /// Desired power state.
    pub state: PowerState,
}

/// The clone source: a template by VMID (or a reference to a [`Template`]'s `vmid`) or by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloneFrom {
    /// Template VMID.
    pub vmid: Option<Field<u32>>,
    /// Template name (looked up at create time when `vmid` is absent).
    pub name: Option<String>,
    /// Full clone (`true`) or linked clone (`false`, the default for templates).
    pub full: bool,
}

/// A network device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nic {
    /// Model: `virtio`, `e1000`, …
    pub model: String,
    /// Bridge, e.g. `vmbr1`.
    pub bridge: String,
    /// VLAN tag; `None` = not managed.
    pub tag: Option<u16>,
    /// A pinned MAC; `None` = Proxmox picks one (then reported, never diffed).
    pub macaddr: Option<String>,
}

/// Cloud-init configuration. `None` fields are not managed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CloudInit {
    /// Default user.
    pub ciuser: Option<String>,
    /// Public SSH keys, one per entry.
    pub sshkeys: Vec<String>,
    /// IP configs by slot (`ipconfig0`).
    pub ipconfig: BTreeMap<String, IpConfig>,
    /// DNS servers (space-separated as Proxmox stores them).
    pub nameserver: Option<String>,
    /// DNS search domain.
    pub searchdomain: Option<String>,
}

/// One `ipconfigN`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `10.0.20.110/24` or `dhcp`.
    pub ip: String,
    /// Gateway.
    pub gw: Option<String>,
}

/// Power state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    /// Running.
    Running,
    /// Stopped.
    Stopped,
}

impl Vm {
    /// A VM cloned (linked) from a template, with defaults: 1 socket, `net0` virtio on
    /// `vmbr0`, running, onboot.
    pub fn cloned(vmid: u32, name: &str, node: &str, template: impl Into<Field<u32>>) -> Self {
        Vm {
            vmid,
            name: name.into(),
            node: node.into(),
            clone: Some(CloneFrom {
                vmid: Some(template.into()),
                name: None,
                full: false,
            }),
            cores: 1,
            sockets: 1,
            memory: 2048,
            disks: BTreeMap::new(),
            networks: BTreeMap::from([(
                "net0".to_string(),
                Nic {
                    model: "virtio".into(),
                    bridge: "vmbr0".into(),
                    tag: None,
                    macaddr: None,
                },
            )]),
            cloud_init: CloudInit::default(),
            tags: Vec::new(),
            description: String::new(),
            onboot: true,
            state: PowerState::Running,
        }
    }
}

/// Typed accessors for references to a VM (a trait: inherent impls on core's `Handle`
/// are not possible outside core).
pub trait VmRefs {
    /// The IPv4 address of `ipconfig0` (without prefix length).
    fn ipv4(&self) -> AttrRef<Ipv4Addr>;
    /// The VMID.
    fn vmid(&self) -> AttrRef<u32>;
    /// The MAC address of a NIC slot, e.g. `net0`.
    fn mac(&self, slot: &str) -> AttrRef<String>;
}

impl VmRefs for Handle<Vm> {
    fn ipv4(&self) -> AttrRef<Ipv4Addr> {
        self.attr("ipv4")
    }

    fn vmid(&self) -> AttrRef<u32> {
        self.attr("vmid")
    }

    fn mac(&self, slot: &str) -> AttrRef<String> {
        self.attr(&format!("networks.{slot}.macaddr"))
    }
}

impl Resource for Vm {
    const KIND: &'static str = "proxmox_vm";
    const PROVIDER: &'static str = "proxmox";

    fn key(&self) -> String {
        self.vmid.to_string()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["vmid", "node", "clone"],
            computed: &["ipv4"],
            sensitive: &[],
            keyed: &[],
            unordered: &["tags", "cloud_init.sshkeys"],
            restart: &["cores", "sockets", "memory", "cloud_init"],
            create_before_destroy: false,
            read_only: false,
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        if !(100..=999_999_999).contains(&self.vmid) {
            e.push(FieldError::new("vmid", "must be between 100 and 999999999"));
        }
        if !valid_dns_name(&self.name) {
            e.push(FieldError::new(
                "name",
                format!("'{}' is not a valid DNS name", self.name),
            ));
        }
        if self.cores == 0 {
            e.push(FieldError::new("cores", "must be at least 1"));
        }
        if self.sockets == 0 {
            e.push(FieldError::new("sockets", "must be at least 1"));
        }
        if self.memory < 16 {
            e.push(FieldError::new("memory", "must be at least 16 MiB"));
        }
        if let Some(c) = &self.clone
            && c.vmid.is_none() == c.name.is_none()
        {
            e.push(FieldError::new("clone", "give exactly one of vmid or name"));
        }
        for (slot, size) in &self.disks {
            if !propstr::is_disk_key(slot) {
                e.push(FieldError::new(
                    format!("disks.{slot}"),
                    "not a disk slot (scsiN, virtioN, sataN, ideN)",
                ));
            }
            match propstr::parse_size(size) {
                Some(b) if propstr::format_size(b) == *size => {}
                Some(b) => e.push(FieldError::new(
                    format!("disks.{slot}"),
                    format!(
                        "write the size as Proxmox reports it: {}",
                        propstr::format_size(b)
                    ),
                )),
                None => e.push(FieldError::new(
                    format!("disks.{slot}"),
                    format!("'{size}' is not a size like 64G"),
                )),
            }
        }
        for (slot, nic) in &self.networks {
            if !slot
                .strip_prefix("net")
                .is_some_and(|n| n.parse::<u8>().is_ok_and(|n| n < 32))
            {
                e.push(FieldError::new(
                    format!("networks.{slot}"),
                    "not a NIC slot (net0..net31)",
                ));
            }
            if !["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"].contains(&nic.model.as_str()) {
                e.push(FieldError::new(
                    format!("networks.{slot}.model"),
                    format!("unknown model '{}'", nic.model),
                ));
            }
            if let Some(t) = nic.tag
                && !(1..=4094).contains(&t)
            {
                e.push(FieldError::new(
                    format!("networks.{slot}.tag"),
                    "VLAN tag must be 1..4094",
                ));
            }
            if let Some(m) = &nic.macaddr
                && (m.len() != 17 || m.split(':').count() != 6 || *m != m.to_ascii_uppercase())
            {
                e.push(FieldError::new(
                    format!("networks.{slot}.macaddr"),
                    "write the MAC as AA:BB:CC:DD:EE:FF (uppercase)",
                ));
            }
        }
        for (slot, ip) in &self.cloud_init.ipconfig {
            if !slot
                .strip_prefix("ipconfig")
                .is_some_and(|n| n.parse::<u8>().is_ok_and(|n| n < 32))
            {
                e.push(FieldError::new(
                    format!("cloud_init.ipconfig.{slot}"),
                    "not an ipconfig slot (ipconfig0..ipconfig31)",
                ));
            }
            if ip.ip != "dhcp" && !ip.ip.contains('/') {
                e.push(FieldError::new(
                    format!("cloud_init.ipconfig.{slot}.ip"),
                    "write an address with prefix length, e.g. 10.0.20.110/24, or dhcp",
                ));
            }
        }
        for (i, k) in self.cloud_init.sshkeys.iter().enumerate() {
            if k.contains('\n') || k.trim() != k || k.is_empty() {
                e.push(FieldError::new(
                    format!("cloud_init.sshkeys[{i}]"),
                    "one key per entry, without surrounding whitespace",
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.tags {
            if !propstr::valid_tag(t) {
                e.push(FieldError::new(
                    "tags",
                    format!("'{t}' is not a valid Proxmox tag"),
                ));
            } else if *t != t.to_ascii_lowercase() {
                e.push(FieldError::new(
                    "tags",
                    format!(
                        "Proxmox stores tags lowercased: write '{}'",
                        t.to_ascii_lowercase()
                    ),
                ));
            } else if t.starts_with("cairn.") {
                e.push(FieldError::new(
                    "tags",
                    format!("'{t}': the prefix cairn. is reserved for the ownership marker"),
                ));
            } else if !seen.insert(t) {
                e.push(FieldError::new("tags", format!("duplicate tag '{t}'")));
            }
        }
        e
    }
}

/// A read-only lookup of a template by name: `vmid` and `node` are read from the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// The template's name.
    pub name: String,
    /// Its node (computed).
    pub node: Option<String>,
    /// Its VMID (computed).
    pub vmid: Option<u32>,
}

impl Template {
    /// Looks a template up by name.
    pub fn named(name: &str) -> Self {
        Template {
            name: name.into(),
            node: None,
            vmid: None,
        }
    }
}

/// Typed accessors for references to a template lookup.
pub trait TemplateRefs {
    /// The template's VMID.
    fn template_vmid(&self) -> AttrRef<u32>;
}

impl TemplateRefs for Handle<Template> {
    fn template_vmid(&self) -> AttrRef<u32> {
        self.attr("vmid")
    }
}

impl Resource for Template {
    const KIND: &'static str = "proxmox_template";
    const PROVIDER: &'static str = "proxmox";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            computed: &["vmid", "node"],
            read_only: true,
            ..Schema::default()
        }
    }
}

fn valid_dns_name(n: &str) -> bool {
    !n.is_empty()
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

// ---- ownership marker ----------------------------------------------------------------

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
    pub clone: Option<Value>,
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

// ---- spec → config -------------------------------------------------------------------

/// Renders the desired config keys (everything but disks, clone, node, state).
/// `current` (the live config) keeps generated MACs of NICs whose MAC is not pinned.
pub fn desired_config(
    vm: &Vm,
    marker: &Marker,
    current: &serde_json::Map<String, Value>,
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
    let trailer = Trailer {
        stack: marker.stack.clone(),
        fp: marker.fingerprint.clone(),
        clone: vm
            .clone
            .as_ref()
            .map(|cl| serde_json::to_value(cl).expect("clone serialises")),
    };
    c.insert(
        "description".into(),
        Some(join_description(&vm.description, &trailer)),
    );
    for (slot, nic) in &vm.networks {
        let mac = nic.macaddr.clone().or_else(|| {
            current
                .get(slot)
                .and_then(Value::as_str)
                .and_then(|v| parse_nic(v).macaddr)
        });
        let mut pairs = vec![(nic.model.clone(), mac.unwrap_or_default())];
        pairs.push(("bridge".into(), nic.bridge.clone()));
        if let Some(t) = nic.tag {
            pairs.push(("tag".into(), t.to_string()));
        } else if let Some(t) = current
            .get(slot)
            .and_then(Value::as_str)
            .and_then(|v| parse_nic(v).tag)
        {
            pairs.push(("tag".into(), t.to_string()));
        }
        let mut s = propstr::format(&pairs);
        if pairs[0].1.is_empty() {
            s = s.replacen(&format!("{}=,", nic.model), &format!("{},", nic.model), 1);
        }
        c.insert(slot.clone(), Some(s));
    }
    for k in current.keys() {
        if k.starts_with("net") && k[3..].parse::<u8>().is_ok() && !vm.networks.contains_key(k) {
            c.insert(k.clone(), None);
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
            c.insert(k.clone(), None);
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
    current: &serde_json::Map<String, Value>,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut set = Vec::new();
    let mut delete = Vec::new();
    for (k, v) in desired {
        let cur = current.get(k).map(value_str);
        match v {
            Some(v) => {
                let same = match (k.as_str(), &cur) {
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

fn value_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Parses `virtio=BC:24:11:…,bridge=vmbr1,tag=20` into a [`Nic`] (MAC always reported).
pub fn parse_nic(v: &str) -> Nic {
    let pairs = propstr::parse(v, None);
    let mut nic = Nic {
        model: String::new(),
        bridge: String::new(),
        tag: None,
        macaddr: None,
    };
    for (k, val) in pairs {
        match k.as_str() {
            "bridge" => nic.bridge = val,
            "tag" => nic.tag = val.parse().ok(),
            "model" => nic.model = val,
            "macaddr" => nic.macaddr = Some(val.to_ascii_uppercase()),
            m if ["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"].contains(&m) => {
                nic.model = m.to_string();
                if !val.is_empty() {
                    nic.macaddr = Some(val.to_ascii_uppercase());
                }
            }
            _ => {}
        }
    }
    nic
}

// ---- config → observed value ---------------------------------------------------------

/// What observe found for one VM: its spec-shaped value and the marker.
pub struct ObservedVm {
    /// Spec-shaped value (plus computed `ipv4`).
    pub value: Value,
    /// The owner, if cairn manages it.
    pub marker: Option<Marker>,
}

/// Reads a VM config (as `GET config` returns it, pending values included) and its
/// cluster-resources entry back into spec shape.
pub fn observed_from_config(vmid: u32, node: &str, status: &str, cfg: &Value) -> ObservedVm {
    let empty = serde_json::Map::new();
    let c = cfg.as_object().unwrap_or(&empty);
    let s = |k: &str| c.get(k).map(value_str);
    let n = |k: &str, d: u64| s(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(d);
    let mut tags = propstr::split_tags(&s("tags").unwrap_or_default());
    let marker_tags: Vec<String> = tags
        .iter()
        .filter(|t| t.starts_with(MARKER_TAG_PREFIX))
        .cloned()
        .collect();
    tags.retain(|t| !t.starts_with(MARKER_TAG_PREFIX));
    tags.sort();
    tags.dedup();
    let (description, trailer) = split_description(&s("description").unwrap_or_default());
    let mut disks = serde_json::Map::new();
    let mut networks = serde_json::Map::new();
    let mut ipconfig = serde_json::Map::new();
    let mut linked_base = None;
    for (k, v) in c {
        let v = value_str(v);
        if propstr::is_disk_key(k) && !v.contains("media=cdrom") {
            let pairs = propstr::parse(&v, Some("file"));
            if let Some(size) = propstr::get(&pairs, "size").and_then(propstr::parse_size) {
                disks.insert(k.clone(), json!(propstr::format_size(size)));
            }
            if let Some(f) = propstr::get(&pairs, "file")
                && let Some(base) = f.split(':').nth(1).and_then(|v| v.strip_prefix("base-"))
                && let Some((id, _)) = base.split_once('-')
                && f.contains('/')
            {
                linked_base = id.parse::<u32>().ok();
            }
        } else if k.starts_with("net") && k[3..].parse::<u8>().is_ok() {
            networks.insert(k.clone(), serde_json::to_value(parse_nic(&v)).expect("nic"));
        } else if k.starts_with("ipconfig") {
            let p = propstr::parse(&v, None);
            ipconfig.insert(
                k.clone(),
                json!({"ip": propstr::get(&p, "ip").unwrap_or_default(), "gw": propstr::get(&p, "gw")}),
            );
        }
    }
    let mut sshkeys: Vec<String> = s("sshkeys")
        .and_then(|k| propstr::decode_sshkeys(&k))
        .map(|k| {
            k.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    sshkeys.sort();
    let clone = trailer
        .as_ref()
        .and_then(|t| t.clone.clone())
        .or_else(|| linked_base.map(|b| json!({"vmid": b, "name": null, "full": false})))
        .unwrap_or(Value::Null);
    let ipv4 = ipconfig
        .get("ipconfig0")
        .and_then(|i| i["ip"].as_str())
        .and_then(|ip| ip.split('/').next())
        .filter(|ip| ip.parse::<Ipv4Addr>().is_ok())
        .map(|ip| json!(ip))
        .unwrap_or(Value::Null);
    let value = json!({
        "vmid": vmid,
        "name": s("name").unwrap_or_default(),
        "node": node,
        "clone": clone,
        "cores": n("cores", 1),
        "sockets": n("sockets", 1),
        "memory": propstr::memory_mib(s("memory").as_deref()),
        "disks": disks,
        "networks": networks,
        "cloud_init": {
            "ciuser": s("ciuser"),
            "sshkeys": sshkeys,
            "ipconfig": ipconfig,
            "nameserver": s("nameserver"),
            "searchdomain": s("searchdomain"),
        },
        "tags": tags,
        "description": description,
        "onboot": n("onboot", 0) == 1,
        "state": if status == "running" { "running" } else { "stopped" },
        "ipv4": ipv4,
    });
    let marker = match trailer {
        Some(t) => Some(Marker {
            stack: t.stack,
            fingerprint: t.fp,
        }),
        None => marker_tags.first().map(|t| Marker {
            stack: t[MARKER_TAG_PREFIX.len()..].to_string(),
            fingerprint: None,
        }),
    };
    ObservedVm { value, marker }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> Vm {
        let mut vm = Vm::cloned(205, "k8s-master-2", "pve", 9000);
        vm.cores = 8;
        vm.memory = 16384;
        vm.disks.insert("scsi0".into(), "64G".into());
        vm.networks.get_mut("net0").unwrap().bridge = "vmbr1".into();
        vm.networks.get_mut("net0").unwrap().tag = Some(20);
        vm.cloud_init.ciuser = Some("ubuntu".into());
        vm.cloud_init.sshkeys = vec!["ssh-ed25519 AAAA+x/y= ops@lab".into()];
        vm.cloud_init.ipconfig.insert(
            "ipconfig0".into(),
            IpConfig {
                ip: "10.0.20.110/24".into(),
                gw: Some("10.0.20.1".into()),
            },
        );
        vm.tags = vec!["k8s".into(), "master".into()];
        vm
    }

    #[test]
    fn rendered_config_read_back_equals_the_spec() {
        let vm = master();
        let marker = Marker {
            stack: "homelab-ha".into(),
            fingerprint: Some("abc".into()),
        };
        let cur = serde_json::Map::new();
        let cfg = desired_config(&vm, &marker, &cur);
        let mut live = serde_json::Map::new();
        for (k, v) in &cfg {
            live.insert(k.clone(), json!(v.clone().unwrap()));
        }
        live.insert(
            "net0".into(),
            json!("virtio=BC:24:11:00:00:01,bridge=vmbr1,tag=20"),
        );
        live.insert(
            "scsi0".into(),
            json!("local-lvm:base-9000-disk-0/vm-205-disk-0,size=64G"),
        );
        let obs = observed_from_config(205, "pve", "running", &Value::Object(live));
        assert_eq!(obs.marker, Some(marker));
        let desired = serde_json::to_value(&vm).unwrap();
        let diff = cairn_core::diff::diff(&desired, &obs.value, &Vm::schema(), &[]);
        assert!(diff.is_empty(), "{diff:#?}");
        assert_eq!(obs.value["ipv4"], "10.0.20.110");
    }

    #[test]
    fn uppercase_duplicate_and_reserved_tags_are_refused_naming_the_field() {
        let mut vm = master();
        vm.tags = vec!["K8s".into(), "x".into(), "x".into(), "cairn.other".into()];
        let errs = vm.validate();
        assert_eq!(
            errs.iter().filter(|e| e.field == "tags").count(),
            3,
            "{errs:?}"
        );
    }

    #[test]
    fn description_trailer_round_trips() {
        let t = Trailer {
            stack: "s".into(),
            fp: Some("f".into()),
            clone: None,
        };
        let d = join_description("hello\nworld", &t);
        assert_eq!(split_description(&d), ("hello\nworld".to_string(), Some(t)));
        assert_eq!(split_description("plain").1, None);
    }
}
