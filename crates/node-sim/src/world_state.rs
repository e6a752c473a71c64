//! The state every part of the simulator shares: the clusters, each host's runtime state
//! (its units, whether its VM is up, what its kubelet last saw), the simulator clock and the
//! test hooks. One mutex, never held across an await.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use cairn_core::net::AddrMap;

use crate::cluster::{Cluster, NodeLive};

/// What all tasks of one simulator share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub map: AddrMap,
    /// The control socket the hosts' programs talk to.
    pub socket: PathBuf,
    world: Mutex<World>,
}

impl Shared {
    pub fn new(map: AddrMap, socket: PathBuf) -> Arc<Shared> {
        Arc::new(Shared {
            map,
            socket,
            world: Mutex::new(World {
                clusters: Vec::new(),
                hosts: BTreeMap::new(),
                clock_offset: Duration::ZERO,
                kubelet_restart_delay: Duration::from_secs(1),
                fail_next_join: BTreeSet::new(),
                fail_next_k3s_join: BTreeSet::new(),
                timing: Default::default(),
                rv: 1000,
            }),
        })
    }

    /// The state, locked.
    pub fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The simulated world.
#[derive(Debug)]
pub(crate) struct World {
    pub clusters: Vec<Cluster>,
    pub hosts: BTreeMap<String, HostRt>,
    pub clock_offset: Duration,
    pub kubelet_restart_delay: Duration,
    pub fail_next_join: BTreeSet<String>,
    /// Hosts whose next k3s start as a joining node fails as a wrong token would.
    pub fail_next_k3s_join: BTreeSet<String>,
    /// The workload model's delays.
    pub timing: crate::workload::Timing,
    pub rv: u64,
}

impl World {
    /// The simulator clock: wall time plus the settable offset.
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + self.clock_offset
    }

    /// A fresh resourceVersion.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// The cluster whose CA certificate is `ca_pem`.
    pub fn cluster_by_ca(&self, ca_pem: &str) -> Option<usize> {
        self.clusters
            .iter()
            .position(|c| c.ca.cert_pem.trim() == ca_pem.trim())
    }

    /// What the kubelet of the node's host reports now.
    pub fn live(&self, host: &str) -> NodeLive {
        self.hosts
            .get(host)
            .map(|h| h.live.clone())
            .unwrap_or(NodeLive {
                ready: false,
                reason: "NodeStatusUnknown".into(),
                message: "Kubelet stopped posting node status.".into(),
                since: self.now(),
                etcd_running: false,
            })
    }
}

/// One host's runtime state.
#[derive(Debug)]
pub(crate) struct HostRt {
    pub ip: Ipv4Addr,
    pub dir: PathBuf,
    /// The cluster it has joined (or was initialised in).
    pub cluster: Option<usize>,
    /// Whether the machine runs (its VM is up).
    pub up: bool,
    /// systemd units and whether they are active.
    pub units: BTreeMap<String, bool>,
    /// Until when a restarted kubelet is still starting (NotReady).
    pub restarting_until: Option<Instant>,
    /// When the kubelet unit last entered the active state (the host's wall clock, as
    /// systemd's `ActiveEnterTimestamp`).
    pub kubelet_started: SystemTime,
    /// How many times the kubelet process (re)started: a new process re-reads kubelet.conf.
    pub kubelet_starts: u64,
    pub live: NodeLive,
    pub apiserver_running: bool,
    pub apiserver_starts: u32,
    pub joins: u32,
    pub status_updates: u64,
    /// Set on a k3s host (no kubelet unit: k3s runs the kubelet itself).
    pub k3s: Option<crate::k3s::K3sRt>,
}

impl HostRt {
    pub fn new(ip: Ipv4Addr, dir: PathBuf, now: SystemTime) -> HostRt {
        HostRt {
            ip,
            dir,
            cluster: None,
            up: true,
            units: [
                ("kubelet".to_string(), true),
                ("containerd".to_string(), true),
            ]
            .into_iter()
            .collect(),
            restarting_until: None,
            kubelet_started: SystemTime::now(),
            kubelet_starts: 0,
            live: NodeLive {
                ready: false,
                reason: "KubeletNotReady".into(),
                message: "kubelet is starting".into(),
                since: now,
                etcd_running: false,
            },
            apiserver_running: false,
            apiserver_starts: 0,
            joins: 0,
            status_updates: 0,
            k3s: None,
        }
    }

    /// The host's `/etc/kubernetes` as seen from outside its namespace.
    pub fn etc_kubernetes(&self) -> PathBuf {
        self.dir.join("kubernetes")
    }

    /// Whether the kubelet unit is active.
    pub fn kubelet_active(&self) -> bool {
        self.units.get("kubelet").copied().unwrap_or(false)
    }
}

/// `rel` under `dir`, creating parents; keys get mode 0600.
pub(crate) fn write_file(dir: &Path, rel: &str, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = p.with_extension("cairn-sim-tmp");
    std::fs::write(&tmp, content)?;
    if rel.ends_with(".key") || rel.ends_with(".conf") {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(tmp, p)
}
