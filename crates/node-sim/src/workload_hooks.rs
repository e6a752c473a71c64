//! [`NodeSim`] methods for k3s clusters' etcd and workloads: seeding a Deployment and its
//! PodDisruptionBudget, and the test hooks that read or disturb them (replicas, etcd
//! health, cordoned nodes, a PDB's `minAvailable`, a failing join, a stopped k3s unit).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::workload::{DaemonSet, Deployment, Pdb, template_hash};
use crate::{ClusterId, NodeSim};

/// A workload pod as the simulator sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Its namespace.
    pub namespace: String,
    /// Its name (`<deployment>-<hash>-<suffix>`).
    pub name: String,
    /// Its Deployment.
    pub deployment: String,
    /// The node it is bound to (`None` while Pending).
    pub node: Option<String>,
    /// Whether its Ready condition is True.
    pub ready: bool,
    /// Whether it is Terminating (deleted, its kubelet has not stopped it yet).
    pub terminating: bool,
    /// Whether a DaemonSet owns it (`deployment` is then the DaemonSet's name).
    pub daemonset: bool,
}

impl NodeSim {
    /// Adds Deployment `ns/name` (label `app=<app>`, `replicas`, pods tolerating no taint)
    /// whose pods already run on `nodes` (one each, as a cluster made before the simulation
    /// has them; the rest are Pending until the scheduler places them). They are Ready once
    /// their nodes' kubelets have run them for the start delay.
    pub fn seed_deployment(
        &self,
        cluster: ClusterId,
        ns: &str,
        name: &str,
        app: &str,
        replicas: u32,
        nodes: &[&str],
    ) {
        let mut w = self.shared.lock();
        let now = w.now();
        let d = Deployment {
            replicas,
            labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            tolerations: Vec::new(),
            image: format!("ghcr.io/example/{app}:1.0"),
            hash: template_hash(ns, name),
            created: now,
        };
        w.clusters[cluster.0]
            .workloads
            .seed_deployment(ns, name, d, nodes, now);
    }

    /// Adds DaemonSet `ns/name` (label `app=<app>`, tolerating every taint): its
    /// controller keeps a pod on every Node, as k3s's `svclb-traefik` runs on each node.
    pub fn seed_daemonset(&self, cluster: ClusterId, ns: &str, name: &str, app: &str) {
        let mut w = self.shared.lock();
        w.clusters[cluster.0].workloads.daemonsets.insert(
            (ns.to_string(), name.to_string()),
            DaemonSet {
                labels: BTreeMap::from([("app".to_string(), app.to_string())]),
                image: "rancher/klipper-lb:v0.4.13".into(),
                hash: template_hash(ns, name),
            },
        );
    }

    /// Adds PodDisruptionBudget `ns/name` selecting `app=<app>` with `minAvailable`.
    pub fn seed_pdb(
        &self,
        cluster: ClusterId,
        ns: &str,
        name: &str,
        app: &str,
        min_available: u32,
    ) {
        let mut w = self.shared.lock();
        let now = w.now();
        w.clusters[cluster.0].workloads.pdbs.insert(
            (ns.to_string(), name.to_string()),
            Pdb {
                min_available,
                match_labels: BTreeMap::from([("app".to_string(), app.to_string())]),
                created: now,
            },
        );
    }

    /// Sets a PodDisruptionBudget's `minAvailable` (e.g. to the replicas, so no eviction is
    /// allowed).
    pub fn set_pdb_min_available(&self, cluster: ClusterId, ns: &str, name: &str, n: u32) {
        if let Some(b) = self.shared.lock().clusters[cluster.0]
            .workloads
            .pdbs
            .get_mut(&(ns.to_string(), name.to_string()))
        {
            b.min_available = n;
        }
    }

    /// How many pods of Deployment `ns/name` are Ready.
    pub fn ready_replicas(&self, cluster: ClusterId, ns: &str, name: &str) -> u32 {
        self.pods(cluster, ns)
            .iter()
            .filter(|p| p.deployment == name && !p.daemonset && p.ready)
            .count() as u32
    }

    /// The workload pods of namespace `ns` (Terminating ones too).
    pub fn pods(&self, cluster: ClusterId, ns: &str) -> Vec<PodView> {
        let w = self.shared.lock();
        w.clusters[cluster.0]
            .workloads
            .pods
            .iter()
            .filter(|((pns, _), _)| pns == ns)
            .map(|((pns, name), p)| PodView {
                namespace: pns.clone(),
                name: name.clone(),
                deployment: p.deployment.clone(),
                node: p.node.clone(),
                ready: p.ready,
                terminating: p.terminating.is_some(),
                daemonset: p.daemonset,
            })
            .collect()
    }

    /// `(healthy, members)` of a k3s cluster's embedded etcd (a member is healthy while its
    /// server's k3s process runs); `(0, 0)` while the datastore is SQLite.
    pub fn etcd_health(&self, cluster: ClusterId) -> (usize, usize) {
        crate::k3s::etcd_health(&self.shared.lock(), cluster.0)
    }

    /// The names of the k3s cluster's etcd members.
    pub fn k3s_etcd_members(&self, cluster: ClusterId) -> Vec<String> {
        self.shared.lock().clusters[cluster.0]
            .etcd
            .as_ref()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The cordoned (`spec.unschedulable`) Nodes.
    pub fn cordoned(&self, cluster: ClusterId) -> Vec<String> {
        self.shared.lock().clusters[cluster.0]
            .nodes
            .iter()
            .filter(|(_, n)| n.unschedulable)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Makes `host`'s next k3s start as a joining node (agent, or server with an empty data
    /// dir) fail as a wrong token would (401 on `/cacerts`).
    pub fn fail_next_k3s_join(&self, host: &str) {
        self.shared
            .lock()
            .fail_next_k3s_join
            .insert(host.to_string());
    }

    /// Stops `host`'s k3s unit (`systemctl stop k3s k3s-agent`): its node goes NotReady
    /// and, on a server, its etcd member is unhealthy.
    pub fn stop_k3s(&self, host: &str) {
        let mut w = self.shared.lock();
        let units = ["k3s".to_string(), "k3s-agent".to_string()];
        let present: Vec<String> = units
            .into_iter()
            .filter(|u| {
                w.hosts
                    .get(host)
                    .is_some_and(|h| h.dir.join(format!("systemd/{u}.service")).exists())
            })
            .collect();
        if !present.is_empty() {
            let _ = crate::k3s::systemctl(&mut w, host, "stop", &present);
        }
    }

    /// How long a scheduled pod's containers run before it is Ready (default 500 ms).
    pub fn set_pod_start_delay(&self, d: Duration) {
        self.shared.lock().timing.start_delay = d;
    }

    /// How long an evicted pod stays Terminating on a running kubelet (default 300 ms).
    pub fn set_pod_termination(&self, d: Duration) {
        self.shared.lock().timing.termination = d;
    }

    /// How long a node is NotReady before its pods are replaced elsewhere (default 5 s;
    /// Kubernetes' default is 300 s).
    pub fn set_pod_eviction_timeout(&self, d: Duration) {
        self.shared.lock().timing.eviction_timeout = d;
    }
}
