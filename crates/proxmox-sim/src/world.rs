//! The simulator's world: nodes, VMs (current and pending config), tasks, and the homelab
//! fixture it is seeded with. Everything here is plain data behind one mutex; handlers in
//! `api.rs` mutate it and never hold the lock across an `await`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::propstr;

/// One GiB in bytes.
pub const GIB: u64 = 1 << 30;

/// A cluster node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Node {
    /// Physical memory in bytes.
    pub memory_total: u64,
    /// Logical CPUs.
    pub cpus: u32,
}

/// A VM as its config file would hold it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmState {
    /// The node it lives on.
    pub node: String,
    /// Current config (key → raw value, as in `/etc/pve/qemu-server/ID.conf`).
    pub config: BTreeMap<String, String>,
    /// Pending changes (applied at the next start).
    #[serde(default)]
    pub pending: BTreeMap<String, String>,
    /// Keys pending deletion.
    #[serde(default)]
    pub pending_delete: BTreeSet<String>,
    /// Whether the VM runs.
    pub running: bool,
}

impl VmState {
    /// The config digest (40 hex digits like Proxmox's SHA-1), over current + pending.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in &self.config {
            h.update(format!("{k}: {v}\n"));
        }
        h.update("[PENDING]\n");
        for (k, v) in &self.pending {
            h.update(format!("{k}: {v}\n"));
        }
        for k in &self.pending_delete {
            h.update(format!("delete: {k}\n"));
        }
        hex::encode(h.finalize())[..40].to_string()
    }

    /// The config with pending values overlaid (what `GET config` returns without `current=1`).
    pub fn effective(&self) -> BTreeMap<String, String> {
        let mut c = self.config.clone();
        for k in &self.pending_delete {
            c.remove(k);
        }
        c.extend(self.pending.clone());
        c
    }

    /// Configured memory in MiB.
    pub fn memory_mib(&self) -> u64 {
        memory_mib(self.config.get("memory").map(String::as_str))
    }

    /// Whether the VM is a template.
    pub fn is_template(&self) -> bool {
        self.config.get("template").is_some_and(|v| v == "1")
    }

    /// Applies pending changes to the current config (done at start).
    pub fn apply_pending(&mut self) {
        for k in std::mem::take(&mut self.pending_delete) {
            self.config.remove(&k);
        }
        let pending = std::mem::take(&mut self.pending);
        self.config.extend(pending);
    }

    /// Size in bytes of the boot disk (first scsi/virtio/sata/ide disk that is not a cloud-init drive).
    pub fn maxdisk(&self) -> u64 {
        self.config
            .iter()
            .filter(|(k, v)| is_disk_key(k) && !v.contains("cloudinit"))
            .filter_map(|(_, v)| disk_size(v))
            .next()
            .unwrap_or(0)
    }
}

pub use crate::propstr::{is_disk_key, memory_mib};

/// The `size=` of a disk property string, in bytes.
pub fn disk_size(v: &str) -> Option<u64> {
    let p = propstr::parse(v, Some("file"));
    propstr::get(&p, "size").and_then(propstr::parse_size)
}

/// State of one task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    /// Node it runs on.
    pub node: String,
    /// Type, e.g. `qmclone`.
    pub kind: String,
    /// The id field (a VMID).
    pub id: String,
    /// The user (token) that started it.
    pub user: String,
    /// PID (also part of the UPID).
    pub pid: u32,
    /// Process start ticks.
    pub pstart: u32,
    /// Start time, unix seconds.
    pub starttime: u64,
    /// `None` while running; the exit status once stopped.
    pub exitstatus: Option<String>,
    /// Log lines.
    pub log: Vec<String>,
}

/// Everything the simulator knows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct World {
    /// Nodes by name.
    pub nodes: BTreeMap<String, Node>,
    /// VMs by VMID.
    pub vms: BTreeMap<u32, VmState>,
    /// Tasks by UPID.
    pub tasks: BTreeMap<String, Task>,
    /// Next PID for tasks.
    pub next_pid: u32,
    /// Next MAC suffix for generated addresses.
    pub next_mac: u32,
}

impl World {
    /// A new random-looking but deterministic MAC in Proxmox's `BC:24:11` range.
    pub fn new_mac(&mut self, seed: u64) -> String {
        self.next_mac += 1;
        let x = (self.next_mac as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed;
        format!(
            "BC:24:11:{:02X}:{:02X}:{:02X}",
            (x >> 16) as u8,
            (x >> 8) as u8,
            x as u8
        )
    }

    /// Registers a running task and returns its UPID.
    pub fn start_task(&mut self, node: &str, kind: &str, id: &str, user: &str) -> String {
        self.next_pid += 1;
        let pid = 0x1000 + self.next_pid;
        let pstart = 0x0012_0000 + self.next_pid * 7;
        let starttime = now_unix();
        let upid =
            format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{user}:");
        self.tasks.insert(
            upid.clone(),
            Task {
                node: node.to_string(),
                kind: kind.to_string(),
                id: id.to_string(),
                user: user.to_string(),
                pid,
                pstart,
                starttime,
                exitstatus: None,
                log: Vec::new(),
            },
        );
        upid
    }

    /// Whether a task of `kind` on `id` is still running.
    pub fn task_running(&self, kind: &str, id: &str) -> bool {
        self.tasks
            .values()
            .any(|t| t.exitstatus.is_none() && t.kind == kind && t.id == id)
    }

    /// Configured memory of all non-template VMs on a node, bytes.
    pub fn committed(&self, node: &str) -> u64 {
        self.vms
            .values()
            .filter(|v| v.node == node && !v.is_template())
            .map(|v| v.memory_mib() << 20)
            .sum()
    }

    /// Memory of running VMs on a node, bytes.
    pub fn used(&self, node: &str) -> u64 {
        self.vms
            .values()
            .filter(|v| v.node == node && v.running)
            .map(|v| v.memory_mib() << 20)
            .sum::<u64>()
            + 3 * GIB
    }
}

/// Seconds since the epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn vm(node: &str, running: bool, pairs: &[(&str, String)]) -> VmState {
    VmState {
        node: node.to_string(),
        config: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        pending: BTreeMap::new(),
        pending_delete: BTreeSet::new(),
        running,
    }
}

impl World {
    /// The homelab: node `pve` with 267 GiB, master VM 200 (8 cores, 32 GiB, 10.0.20.100),
    /// workers 201–204, a storage VM and the cloud-init template 9000; 262 GiB configured
    /// on running VMs.
    pub fn homelab() -> World {
        let mut w = World::default();
        w.nodes.insert(
            "pve".into(),
            Node {
                memory_total: 267 * GIB,
                cpus: 48,
            },
        );
        let mut machine =
            |vmid: u32, name: &str, cores: u32, mem_gib: u64, ip: &str, disk: &str| {
                let mac = w.new_mac(vmid as u64);
                let cfg = vec![
                    ("name", name.to_string()),
                    ("cores", cores.to_string()),
                    ("sockets", "1".into()),
                    ("memory", (mem_gib * 1024).to_string()),
                    ("scsihw", "virtio-scsi-single".into()),
                    (
                        "scsi0",
                        format!("local-lvm:vm-{vmid}-disk-0,iothread=1,size={disk}"),
                    ),
                    ("ide2", format!("local-lvm:vm-{vmid}-cloudinit,media=cdrom")),
                    ("net0", format!("virtio={mac},bridge=vmbr1,tag=20")),
                    ("ipconfig0", format!("ip={ip}/24,gw=10.0.20.1")),
                    ("ciuser", "ubuntu".into()),
                    ("onboot", "1".into()),
                    ("tags", "k8s".into()),
                    ("boot", "order=scsi0".into()),
                    ("ostype", "l26".into()),
                ];
                (vmid, vm("pve", true, &cfg))
            };
        let fixture = [
            machine(200, "k8s-master", 8, 32, "10.0.20.100", "64G"),
            machine(201, "k8s-worker-1", 16, 64, "10.0.20.101", "200G"),
            machine(202, "k8s-worker-2", 16, 64, "10.0.20.102", "200G"),
            machine(203, "k8s-worker-3", 16, 64, "10.0.20.103", "200G"),
            machine(210, "nas", 4, 24, "10.0.20.10", "32G"),
            machine(211, "monitoring", 4, 14, "10.0.20.11", "100G"),
        ];
        w.vms.extend(fixture);
        let mac = w.new_mac(9000);
        w.vms.insert(
            9000,
            vm(
                "pve",
                false,
                &[
                    ("name", "ubuntu-2404-cloudinit".into()),
                    ("template", "1".into()),
                    ("cores", "2".into()),
                    ("sockets", "1".into()),
                    ("memory", "2048".into()),
                    ("scsihw", "virtio-scsi-single".into()),
                    (
                        "scsi0",
                        "local-lvm:base-9000-disk-0,iothread=1,size=3584M".into(),
                    ),
                    ("ide2", "local-lvm:vm-9000-cloudinit,media=cdrom".into()),
                    ("net0", format!("virtio={mac},bridge=vmbr1")),
                    ("boot", "order=scsi0".into()),
                    ("ostype", "l26".into()),
                    ("serial0", "socket".into()),
                    ("vga", "serial0".into()),
                ],
            ),
        );
        w
    }

    /// An empty node `pve` with the given memory and `n` plain VMs (for benchmarks).
    pub fn with_vms(n: u32, memory_total: u64) -> World {
        let mut w = World::homelab();
        w.nodes.get_mut("pve").expect("pve").memory_total = memory_total;
        for i in 0..n {
            let vmid = 1000 + i;
            let mac = w.new_mac(vmid as u64);
            w.vms.insert(
                vmid,
                vm(
                    "pve",
                    false,
                    &[
                        ("name", format!("bench-{i}")),
                        ("cores", "1".into()),
                        ("memory", "512".into()),
                        ("scsi0", format!("local-lvm:vm-{vmid}-disk-0,size=8G")),
                        ("net0", format!("virtio={mac},bridge=vmbr1")),
                    ],
                ),
            );
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homelab_commits_262_of_267_gib() {
        let w = World::homelab();
        assert_eq!(w.committed("pve"), 262 * GIB);
        assert_eq!(w.nodes["pve"].memory_total, 267 * GIB);
        assert!(w.vms[&9000].is_template());
        assert_eq!(w.vms[&200].memory_mib(), 32 * 1024);
    }
}
