//! The `proxmox_vm` spec a stack author writes: the VM, its clone source, NICs, disks and
//! cloud-init, its schema facts and its validation. The typed values in it (clone mode, NIC
//! model, disk slot and bus) live in [`super::values`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use cairn_core::{AttrRef, Field, FieldError, Handle, NodeRef, Resource, Schema};
use serde::{Deserialize, Serialize};

pub use super::values::{CloneMode, DiskBus, DiskSlot, NicModel, NotADiskSlot};
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
    pub disks: BTreeMap<DiskSlot, String>,
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

/// The clone source: a template by VMID (or a reference to a [`crate::Template`]'s `vmid`)
/// or by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloneFrom {
    /// Template VMID.
    pub vmid: Option<Field<u32>>,
    /// Template name (looked up at create time when `vmid` is absent).
    pub name: Option<String>,
    /// Full or linked clone; serialised as the API's `full` flag.
    #[serde(rename = "full")]
    pub mode: CloneMode,
}

/// A network device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nic {
    /// The device model.
    pub model: NicModel,
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

/// Desired power state.
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
                mode: CloneMode::Linked,
            }),
            cores: 1,
            sockets: 1,
            memory: 2048,
            disks: BTreeMap::new(),
            networks: BTreeMap::from([(
                "net0".to_string(),
                Nic {
                    model: NicModel::Virtio,
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
        AttrRef::new(self.address().clone(), "ipv4")
    }

    fn vmid(&self) -> AttrRef<u32> {
        AttrRef::new(self.address().clone(), "vmid")
    }

    fn mac(&self, slot: &str) -> AttrRef<String> {
        AttrRef::new(self.address().clone(), format!("networks.{slot}.macaddr"))
    }
}

/// The fields whose change Proxmox keeps pending until a running VM restarts.
pub const RESTART_FIELDS: [&str; 4] = ["cores", "sockets", "memory", "cloud_init"];

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
            restart: &RESTART_FIELDS,
            attributes: &["ipv4", "vmid", "networks.*.macaddr"],
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
        validate_disks(&self.disks, &mut e);
        validate_networks(&self.networks, &mut e);
        validate_cloud_init(&self.cloud_init, &mut e);
        validate_tags(&self.tags, &mut e);
        e
    }
}

fn validate_disks(disks: &BTreeMap<DiskSlot, String>, e: &mut Vec<FieldError>) {
    for (slot, size) in disks {
        if !slot.bus.is_data() {
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
}

fn validate_networks(networks: &BTreeMap<String, Nic>, e: &mut Vec<FieldError>) {
    for (slot, nic) in networks {
        if !slot
            .strip_prefix("net")
            .is_some_and(|n| n.parse::<u8>().is_ok_and(|n| n < 32))
        {
            e.push(FieldError::new(
                format!("networks.{slot}"),
                "not a NIC slot (net0..net31)",
            ));
        }
        if let NicModel::Other(m) = &nic.model {
            e.push(FieldError::new(
                format!("networks.{slot}.model"),
                format!("unknown model '{m}'"),
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
}

fn validate_cloud_init(ci: &CloudInit, e: &mut Vec<FieldError>) {
    for (slot, ip) in &ci.ipconfig {
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
    for (i, k) in ci.sshkeys.iter().enumerate() {
        if k.contains('\n') || k.trim() != k || k.is_empty() {
            e.push(FieldError::new(
                format!("cloud_init.sshkeys[{i}]"),
                "one key per entry, without surrounding whitespace",
            ));
        }
    }
}

fn validate_tags(tags: &[String], e: &mut Vec<FieldError>) {
    let mut seen = BTreeSet::new();
    for t in tags {
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
        } else if t.starts_with(super::marker::MARKER_TAG_PREFIX) {
            e.push(FieldError::new(
                "tags",
                format!("'{t}': the prefix cairn. is reserved for the ownership marker"),
            ));
        } else if !seen.insert(t) {
            e.push(FieldError::new("tags", format!("duplicate tag '{t}'")));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_serialise_with_the_api_spellings() {
        let mut vm = Vm::cloned(205, "m", "pve", 9000);
        vm.disks.insert(DiskSlot::scsi(0), "64G".into());
        let v = serde_json::to_value(&vm).unwrap();
        assert_eq!(
            v["clone"],
            serde_json::json!({"vmid": 9000, "name": null, "full": false})
        );
        assert_eq!(v["networks"]["net0"]["model"], "virtio");
        assert_eq!(v["disks"]["scsi0"], "64G");
        assert_eq!(v["state"], "running");
        let back: Vm = serde_json::from_value(v).unwrap();
        assert_eq!(back, vm);
    }

    #[test]
    fn disk_slots_parse_print_and_sort_like_config_keys() {
        let slots: Vec<DiskSlot> = ["scsi2", "scsi10", "ide0", "efidisk0"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut sorted = slots.clone();
        sorted.sort();
        let names: Vec<String> = sorted.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["efidisk0", "ide0", "scsi10", "scsi2"]);
        assert!("net0".parse::<DiskSlot>().is_err());
        assert!("scsi01".parse::<DiskSlot>().is_err());
    }

    #[test]
    fn unknown_nic_models_and_non_data_disks_are_refused_naming_the_field() {
        let mut vm = Vm::cloned(205, "m", "pve", 9000);
        vm.networks.get_mut("net0").unwrap().model = NicModel::from("ne2k_pci");
        vm.disks.insert("efidisk0".parse().unwrap(), "4M".into());
        let fields: Vec<String> = vm.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["disks.efidisk0", "networks.net0.model"]);
    }
}
