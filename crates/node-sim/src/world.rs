//! Ready-made worlds: the hosts and cluster a stack's "before" state describes.

use std::io;
use std::net::Ipv4Addr;

use cairn_core::net::AddrMap;

use crate::{ClusterConfigFields, ClusterId, NodeSim};

/// The homelab before the HA cutover: master `k8s-master` (10.0.20.100) initialised by
/// kubeadm without a controlPlaneEndpoint (its apiserver certificate lacks the VIP
/// 10.0.20.99), four workers `k8s-worker-1..4` (10.0.20.101–104; the fourth is bare metal)
/// whose kubelet.conf points at `https://10.0.20.100:6443`, one etcd member.
#[derive(Debug)]
pub struct Homelab {
    /// The hosts and the cluster.
    pub sim: NodeSim,
    /// The homelab's cluster.
    pub cluster: ClusterId,
}

/// The homelab master's name and address.
pub const MASTER: (&str, Ipv4Addr) = ("k8s-master", Ipv4Addr::new(10, 0, 20, 100));
/// The homelab workers' names and addresses (`k8s-worker-4` is bare metal).
pub const WORKERS: [(&str, Ipv4Addr); 4] = [
    ("k8s-worker-1", Ipv4Addr::new(10, 0, 20, 101)),
    ("k8s-worker-2", Ipv4Addr::new(10, 0, 20, 102)),
    ("k8s-worker-3", Ipv4Addr::new(10, 0, 20, 103)),
    ("k8s-worker-4", Ipv4Addr::new(10, 0, 20, 104)),
];

/// Starts the homelab's hosts (real sshds) and cluster. Returns at once; the kubelets
/// bring the master's apiserver up and the Nodes Ready within a moment (see
/// [`Homelab::wait_ready`]).
pub fn homelab(map: AddrMap) -> io::Result<Homelab> {
    let mut sim = NodeSim::new(map)?;
    let cluster = sim.add_cluster("homelab");
    sim.start_host(MASTER.0, MASTER.1)?;
    sim.kubeadm_init(cluster, MASTER.0, &ClusterConfigFields::default())?;
    let server = format!("https://{}:6443", MASTER.1);
    for (name, ip) in WORKERS {
        sim.start_host(name, ip)?;
        sim.seed_worker(cluster, name, &server)?;
    }
    Ok(Homelab { sim, cluster })
}

impl Homelab {
    /// Waits (polling, up to `timeout`) until every Node is Ready; false on timeout.
    pub fn wait_ready(&self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let nodes = self.sim.nodes(self.cluster);
            if !nodes.is_empty() && nodes.iter().all(|n| n.ready) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }
}
