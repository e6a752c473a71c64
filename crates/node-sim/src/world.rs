//! Ready-made worlds: the hosts and cluster a stack's "before" state describes (the
//! homelab's kubeadm cluster, the hand-made Hetzner k3s cluster).

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

/// The Hetzner k3s cluster as it was made by hand: `k3s-mgr` (10.0.1.5) a single k3s server
/// tainted against workloads, `k3s-w1`/`k3s-w2` (10.0.1.6/7) agents joined to it, all
/// k3s [`K3S_VERSION`] with flannel on the private interface `enp7s0` and the node IP
/// their private address, installed with k3s's install script and one token.
#[derive(Debug)]
pub struct HetznerK3s {
    /// The hosts and the cluster.
    pub sim: NodeSim,
    /// The cluster `k3s-mgr` made.
    pub cluster: ClusterId,
    /// The join token the cluster was made with (a secret: the stack declares it as a
    /// sensitive value; it is never printed).
    pub token: String,
}

/// The k3s version the hand-made Hetzner cluster runs.
pub const K3S_VERSION: &str = "v1.34.4+k3s1";
/// The Hetzner servers' names and private addresses.
pub const K3S_SERVER: (&str, Ipv4Addr) = ("k3s-mgr", Ipv4Addr::new(10, 0, 1, 5));
/// The Hetzner agents' names and private addresses.
pub const K3S_AGENTS: [(&str, Ipv4Addr); 2] = [
    ("k3s-w1", Ipv4Addr::new(10, 0, 1, 6)),
    ("k3s-w2", Ipv4Addr::new(10, 0, 1, 7)),
];
/// The taint the hand-made server carries.
pub const K3S_SERVER_TAINT: &str = "node-role.kubernetes.io/control-plane:NoSchedule";
/// The private interface flannel uses.
pub const K3S_FLANNEL_IFACE: &str = "enp7s0";
/// The workload the Hetzner cluster runs: Deployment, app label and PodDisruptionBudget
/// `docfast` (2 replicas, one pod per worker at the start, `minAvailable` 1).
pub const DOCFAST: &str = "docfast";
/// The namespace of [`DOCFAST`].
pub const DOCFAST_NAMESPACE: &str = "docfast";

/// Starts the hand-made Hetzner k3s cluster's hosts (real sshds at their private addresses,
/// mapped by `map`) and installs k3s on them as a person did: the server first, then the
/// agents with `K3S_URL` and the token; the [`DOCFAST`] Deployment (a pod on each worker)
/// and its PodDisruptionBudget, and k3s's `kube-system/svclb-traefik-…` DaemonSet. Returns once the installs ran (see
/// [`HetznerK3s::wait_ready`]).
pub fn hetzner_k3s(map: AddrMap) -> io::Result<HetznerK3s> {
    let mut sim = NodeSim::new(map)?;
    let (cluster, token) = hetzner_k3s_on(&mut sim)?;
    Ok(HetznerK3s {
        sim,
        cluster,
        token,
    })
}

/// Like [`hetzner_k3s`], on the hosts of an existing simulator (e.g. next to the homelab's,
/// so both share one client key, known-hosts file and port map): the cluster and its join
/// token.
pub fn hetzner_k3s_on(sim: &mut NodeSim) -> io::Result<(ClusterId, String)> {
    let token = crate::pki::certificate_key()[..40].to_string();
    let (mgr, mgr_ip) = K3S_SERVER;
    sim.start_k3s_host(mgr, mgr_ip)?;
    let exec = format!(
        "server --node-taint {K3S_SERVER_TAINT} --flannel-iface {K3S_FLANNEL_IFACE} --node-ip {mgr_ip}"
    );
    sim.k3s_install(
        mgr,
        &[
            ("INSTALL_K3S_VERSION", K3S_VERSION),
            ("INSTALL_K3S_EXEC", &exec),
            ("K3S_TOKEN", &token),
        ],
    )?;
    let cluster = sim
        .k3s_cluster_of(mgr)
        .ok_or_else(|| io::Error::other("k3s-mgr made no cluster"))?;
    let url = format!("https://{mgr_ip}:6443");
    for (name, ip) in K3S_AGENTS {
        sim.start_k3s_host(name, ip)?;
        let exec = format!("agent --flannel-iface {K3S_FLANNEL_IFACE} --node-ip {ip}");
        sim.k3s_install(
            name,
            &[
                ("INSTALL_K3S_VERSION", K3S_VERSION),
                ("INSTALL_K3S_EXEC", &exec),
                ("K3S_URL", &url),
                ("K3S_TOKEN", &token),
            ],
        )?;
    }
    sim.seed_deployment(
        cluster,
        DOCFAST_NAMESPACE,
        DOCFAST,
        DOCFAST,
        2,
        &[K3S_AGENTS[0].0, K3S_AGENTS[1].0],
    );
    sim.seed_pdb(cluster, DOCFAST_NAMESPACE, DOCFAST, DOCFAST, 1);
    // k3s's ServiceLB runs a DaemonSet pod on every node for traefik's LoadBalancer
    // Service; a drain leaves those.
    sim.seed_daemonset(
        cluster,
        "kube-system",
        "svclb-traefik-6c3f1d2a",
        "svclb-traefik-6c3f1d2a",
    );
    Ok((cluster, token))
}

impl HetznerK3s {
    /// Waits (polling, up to `timeout`) until every Node is Ready and both [`DOCFAST`] pods
    /// are Ready; false on timeout.
    pub fn wait_ready(&self, timeout: std::time::Duration) -> bool {
        hetzner_k3s_ready(&self.sim, self.cluster, timeout)
    }
}

/// [`HetznerK3s::wait_ready`] for a cluster made by [`hetzner_k3s_on`].
pub fn hetzner_k3s_ready(sim: &NodeSim, cluster: ClusterId, timeout: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let nodes = sim.nodes(cluster);
        if nodes.len() == 3
            && nodes.iter().all(|n| n.ready)
            && sim.ready_replicas(cluster, DOCFAST_NAMESPACE, DOCFAST) == 2
        {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
}
