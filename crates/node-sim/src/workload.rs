//! A cluster's workload: Deployments with their ReplicaSet's pods, DaemonSets (a pod on
//! every node, e.g. k3s's `svclb-traefik`), PodDisruptionBudgets, and the controllers that
//! act on them — the scheduler (a Pending pod goes to a Ready,
//! schedulable node whose `NoSchedule` taints it tolerates, the one with the fewest pods of
//! its Deployment), the ReplicaSet controller (a Deployment is topped up to its replicas;
//! pods of a deleted node, or of a node NotReady longer than the eviction timeout, are
//! replaced; an evicted pod is Terminating until its node's kubelet has stopped it), the
//! DaemonSet controller, and the kubelet's part (a scheduled pod runs once its node's
//! kubelet runs, and is Ready a start delay later, while its node is Ready).
//!
//! Nothing here runs by itself: the k3s loops call [`controllers`] from a server that runs
//! (with etcd quorum) and [`kubelet`] from each node's own k3s process.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::cluster::{Cluster, rfc3339, uid};

/// `(namespace, name)`.
pub(crate) type Key = (String, String);

/// A cluster's workload objects.
#[derive(Debug, Default)]
pub(crate) struct Workloads {
    pub deployments: BTreeMap<Key, Deployment>,
    pub daemonsets: BTreeMap<Key, DaemonSet>,
    pub pods: BTreeMap<Key, Pod>,
    pub pdbs: BTreeMap<Key, Pdb>,
    /// Pods made so far (names are derived from it).
    pub made: u64,
    /// Since when the node lifecycle controller has seen each NotReady node NotReady.
    pub not_ready_since: BTreeMap<String, SystemTime>,
}

/// A Deployment (its one ReplicaSet is implied: `<name>-<hash>`).
#[derive(Debug, Clone)]
pub(crate) struct Deployment {
    pub replicas: u32,
    /// Selector and pod template labels.
    pub labels: BTreeMap<String, String>,
    /// Taint keys its pods tolerate (effect `NoSchedule`).
    pub tolerations: Vec<String>,
    pub image: String,
    pub hash: String,
    pub created: SystemTime,
}

/// A DaemonSet whose pods tolerate every taint.
#[derive(Debug, Clone)]
pub(crate) struct DaemonSet {
    pub labels: BTreeMap<String, String>,
    pub image: String,
    pub hash: String,
}

/// A pod of a Deployment or a DaemonSet.
#[derive(Debug, Clone)]
pub(crate) struct Pod {
    /// Its controller's name: the Deployment, or the DaemonSet when `daemonset`.
    pub deployment: String,
    pub daemonset: bool,
    /// Set once deleted (evicted): when the deletion was asked for, and the end of its
    /// grace period. Its node's kubelet removes it once it has stopped it.
    pub terminating: Option<SystemTime>,
    pub node: Option<String>,
    pub created: SystemTime,
    /// When its node's kubelet started its containers, and when they pass their readiness
    /// probe (the start delay at the time they started).
    pub running_since: Option<(SystemTime, SystemTime)>,
    pub ready: bool,
}

/// A PodDisruptionBudget with `minAvailable`.
#[derive(Debug, Clone)]
pub(crate) struct Pdb {
    pub min_available: u32,
    pub match_labels: BTreeMap<String, String>,
    pub created: SystemTime,
}

/// What the workload controllers need to know about the cluster's nodes now.
#[derive(Debug, Clone)]
pub(crate) struct NodeState {
    pub ready: bool,
    pub unschedulable: bool,
    /// Keys of its `NoSchedule` taints.
    pub no_schedule: Vec<String>,
}

/// Timings of the workload model.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// From a pod's containers starting to it being Ready.
    pub start_delay: Duration,
    /// How long a node is NotReady before its pods are replaced.
    pub eviction_timeout: Duration,
    /// How long an evicted pod takes to stop on a running kubelet.
    pub termination: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            start_delay: Duration::from_millis(500),
            eviction_timeout: Duration::from_secs(5),
            termination: Duration::from_millis(300),
        }
    }
}

impl Workloads {
    /// The labels of a pod.
    fn pod_labels(&self, ns: &str, p: &Pod) -> BTreeMap<String, String> {
        if p.daemonset {
            let mut l = self
                .daemonsets
                .get(&(ns.to_string(), p.deployment.clone()))
                .map(|d| d.labels.clone())
                .unwrap_or_default();
            if let Some(d) = self.daemonsets.get(&(ns.to_string(), p.deployment.clone())) {
                l.insert("controller-revision-hash".into(), d.hash.clone());
                l.insert("pod-template-generation".into(), "1".into());
            }
            return l;
        }
        let mut l = self
            .deployments
            .get(&(ns.to_string(), p.deployment.clone()))
            .map(|d| d.labels.clone())
            .unwrap_or_default();
        if let Some(d) = self
            .deployments
            .get(&(ns.to_string(), p.deployment.clone()))
        {
            l.insert("pod-template-hash".into(), d.hash.clone());
        }
        l
    }

    /// The pods a PDB counts (not Terminating): `(name, ready)`.
    pub fn pdb_pods(&self, ns: &str, pdb: &Pdb) -> Vec<(String, bool)> {
        self.pods
            .iter()
            .filter(|((pns, _), p)| pns == ns && p.terminating.is_none())
            .filter(|((_, _), p)| {
                let l = self.pod_labels(ns, p);
                pdb.match_labels.iter().all(|(k, v)| l.get(k) == Some(v))
            })
            .map(|((_, n), p)| (n.clone(), p.ready))
            .collect()
    }

    /// `(expected, current healthy, desired healthy, disruptions allowed)` of a PDB.
    pub fn pdb_status(&self, ns: &str, pdb: &Pdb) -> (u32, u32, u32, u32) {
        let pods = self.pdb_pods(ns, pdb);
        let expected = pods.len() as u32;
        let healthy = pods.iter().filter(|(_, r)| *r).count() as u32;
        let desired = pdb.min_available;
        (expected, healthy, desired, healthy.saturating_sub(desired))
    }

    /// Evicts pod `ns/name` as the eviction subresource does: `Ok(())` when it is deleted
    /// (Terminating for `grace`, then its kubelet removes it; a pod already Terminating
    /// needs no budget), [`Evict::Budget`] when a PDB forbids it.
    pub fn evict(
        &mut self,
        ns: &str,
        name: &str,
        now: SystemTime,
        grace: Duration,
    ) -> Result<(), Evict> {
        let key = (ns.to_string(), name.to_string());
        let Some(pod) = self.pods.get(&key) else {
            return Err(Evict::NotFound);
        };
        if pod.terminating.is_some() {
            return Ok(());
        }
        let labels = self.pod_labels(ns, pod);
        let covering: Vec<(&Key, &Pdb)> = self
            .pdbs
            .iter()
            .filter(|((pns, _), b)| {
                pns == ns && b.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .collect();
        if covering.len() > 1 {
            return Err(Evict::Multiple);
        }
        if let Some(((_, pdb_name), pdb)) = covering.first() {
            let (_, healthy, desired, allowed) = self.pdb_status(ns, pdb);
            // A pod that is not Ready may go while the budget is met (IfHealthyBudget).
            let ok = if pod.ready {
                allowed > 0
            } else {
                healthy >= desired
            };
            if !ok {
                return Err(Evict::Budget {
                    pdb: pdb_name.clone(),
                    desired,
                    healthy,
                });
            }
        }
        if let Some(p) = self.pods.get_mut(&key) {
            p.terminating = Some(now + grace);
            p.ready = false;
        }
        Ok(())
    }

    /// A new pod of a Deployment (`<name>-<hash>-<suffix>`) or a DaemonSet
    /// (`<name>-<suffix>`, bound to its node).
    fn new_pod(
        &mut self,
        ns: &str,
        owner: &str,
        daemonset: bool,
        node: Option<String>,
        now: SystemTime,
    ) {
        let key = (ns.to_string(), owner.to_string());
        let hash = if daemonset {
            self.daemonsets.get(&key).map(|_| String::new())
        } else {
            self.deployments.get(&key).map(|d| d.hash.clone())
        };
        let Some(hash) = hash else {
            return;
        };
        self.made += 1;
        let suffix = pod_suffix(&format!("{ns}/{owner}/{}", self.made));
        let name = if daemonset {
            format!("{owner}-{suffix}")
        } else {
            format!("{owner}-{hash}-{suffix}")
        };
        self.pods.insert(
            (ns.to_string(), name),
            Pod {
                deployment: owner.to_string(),
                daemonset,
                terminating: None,
                node,
                created: now,
                running_since: None,
                ready: false,
            },
        );
    }

    /// Adds a Deployment whose pods are already placed on `nodes` (one each; the rest
    /// Pending), as a world that existed before the simulation started has them.
    pub fn seed_deployment(
        &mut self,
        ns: &str,
        name: &str,
        d: Deployment,
        nodes: &[&str],
        now: SystemTime,
    ) {
        let replicas = d.replicas as usize;
        self.deployments
            .insert((ns.to_string(), name.to_string()), d);
        for i in 0..replicas {
            self.new_pod(ns, name, false, nodes.get(i).map(|n| n.to_string()), now);
        }
    }
}

/// Why an eviction is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Evict {
    NotFound,
    Multiple,
    Budget {
        pdb: String,
        desired: u32,
        healthy: u32,
    },
}

/// Five characters of a pod name suffix, as a ReplicaSet's generated names have.
fn pod_suffix(seed: &str) -> String {
    use sha2::{Digest, Sha256};
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    Sha256::digest(seed.as_bytes())
        .iter()
        .take(5)
        .map(|b| ALPHA[*b as usize % ALPHA.len()] as char)
        .collect()
}

/// A pod-template hash for a Deployment.
pub(crate) fn template_hash(ns: &str, name: &str) -> String {
    let mut s = pod_suffix(&format!("template/{ns}/{name}"));
    s.push_str(&pod_suffix(&format!("template2/{ns}/{name}")));
    s
}

/// The control-plane controllers, run by a k3s server that runs with quorum: pod garbage
/// collection for deleted nodes, taint-based eviction from nodes NotReady too long, the
/// ReplicaSet controller, the scheduler and the node lifecycle's "pods of a NotReady node
/// are not Ready".
pub(crate) fn controllers(
    c: &mut Cluster,
    nodes: &BTreeMap<String, NodeState>,
    t: Timing,
    now: SystemTime,
) {
    let wl = &mut c.workloads;
    wl.not_ready_since
        .retain(|n, _| nodes.get(n).is_some_and(|s| !s.ready));
    for (n, s) in nodes {
        if !s.ready {
            wl.not_ready_since.entry(n.clone()).or_insert(now);
        }
    }
    // Pods whose node is gone are deleted (pod GC); pods of a node NotReady longer than
    // the eviction timeout are deleted gracefully (Terminating until its kubelet runs
    // again), DaemonSet pods tolerate it.
    wl.pods
        .retain(|_, p| p.node.as_ref().is_none_or(|n| nodes.contains_key(n)));
    for p in wl.pods.values_mut() {
        let expired = p
            .node
            .as_ref()
            .and_then(|n| wl.not_ready_since.get(n))
            .is_some_and(|at| {
                now.duration_since(*at)
                    .is_ok_and(|d| d >= t.eviction_timeout)
            });
        if expired && !p.daemonset && p.terminating.is_none() {
            p.terminating = Some(now + t.termination);
        }
    }
    for p in wl.pods.values_mut() {
        if p.node
            .as_ref()
            .and_then(|n| nodes.get(n))
            .is_none_or(|s| !s.ready)
        {
            p.ready = false;
        }
    }
    // ReplicaSets: top up or scale down.
    let deployments: Vec<(Key, u32)> = wl
        .deployments
        .iter()
        .map(|(k, d)| (k.clone(), d.replicas))
        .collect();
    for ((ns, name), replicas) in deployments {
        let mine: Vec<Key> = wl
            .pods
            .iter()
            .filter(|((pns, _), p)| {
                *pns == ns && p.deployment == name && !p.daemonset && p.terminating.is_none()
            })
            .map(|(k, _)| k.clone())
            .collect();
        let have = mine.len() as u32;
        for _ in have..replicas {
            wl.new_pod(&ns, &name, false, None, now);
        }
        if have > replicas {
            // Pending and not-Ready pods go first, as the ReplicaSet controller ranks them.
            let mut ranked = mine.clone();
            ranked.sort_by_key(|k| {
                let p = &wl.pods[k];
                (p.node.is_some(), p.ready)
            });
            for k in ranked.into_iter().take((have - replicas) as usize) {
                if let Some(p) = wl.pods.get_mut(&k) {
                    p.terminating = Some(now + t.termination);
                    p.ready = false;
                }
            }
        }
    }
    // DaemonSets: a pod on every node.
    let daemonsets: Vec<Key> = wl.daemonsets.keys().cloned().collect();
    for (ns, name) in daemonsets {
        for node in nodes.keys() {
            let has = wl.pods.iter().any(|((pns, _), p)| {
                *pns == ns
                    && p.daemonset
                    && p.deployment == name
                    && p.terminating.is_none()
                    && p.node.as_deref() == Some(node)
            });
            if !has {
                wl.new_pod(&ns, &name, true, Some(node.clone()), now);
            }
        }
    }
    // The scheduler.
    let pending: Vec<Key> = wl
        .pods
        .iter()
        .filter(|(_, p)| p.node.is_none())
        .map(|(k, _)| k.clone())
        .collect();
    for key in pending {
        let (ns, _) = &key;
        let dep = wl.pods[&key].deployment.clone();
        let Some(d) = wl.deployments.get(&(ns.clone(), dep.clone())) else {
            continue;
        };
        let tolerates = |taint: &String| d.tolerations.contains(taint);
        let best = nodes
            .iter()
            .filter(|(_, s)| s.ready && !s.unschedulable && s.no_schedule.iter().all(tolerates))
            .map(|(n, _)| {
                let load = wl
                    .pods
                    .iter()
                    .filter(|((pns, _), p)| {
                        pns == ns
                            && p.deployment == dep
                            && !p.daemonset
                            && p.terminating.is_none()
                            && p.node.as_deref() == Some(n)
                    })
                    .count();
                (load, n.clone())
            })
            .min();
        if let Some((_, node)) = best
            && let Some(p) = wl.pods.get_mut(&key)
        {
            p.node = Some(node);
        }
    }
}

/// The kubelet of `node` (its k3s process runs): starts the containers of the pods bound
/// to it and reports them Ready a start delay later while the node is Ready; removes the
/// Terminating ones once their grace period is over (it has stopped them).
pub(crate) fn kubelet(c: &mut Cluster, node: &str, node_ready: bool, t: Timing, now: SystemTime) {
    c.workloads.pods.retain(|_, p| {
        p.node.as_deref() != Some(node) || p.terminating.is_none_or(|end| now < end)
    });
    for p in c.workloads.pods.values_mut() {
        if p.node.as_deref() != Some(node) {
            continue;
        }
        if p.terminating.is_some() {
            p.ready = false;
            continue;
        }
        let (_, ready_at) = *p.running_since.get_or_insert((now, now + t.start_delay));
        p.ready = node_ready && now >= ready_at;
    }
}

/// A pod as the API returns it.
pub(crate) fn pod_json(wl: &Workloads, ns: &str, name: &str, p: &Pod, rv: u64) -> Value {
    let labels = wl.pod_labels(ns, p);
    let key = (ns.to_string(), p.deployment.clone());
    let (owner_kind, owner, image, mut tolerations) = if p.daemonset {
        let image = wl
            .daemonsets
            .get(&key)
            .map_or(String::new(), |d| d.image.clone());
        // DaemonSet pods tolerate everything (as k3s's svclb pods do).
        (
            "DaemonSet",
            p.deployment.clone(),
            image,
            vec![json!({"operator": "Exists"})],
        )
    } else {
        let d = wl.deployments.get(&key);
        let hash = d.map_or(String::new(), |d| d.hash.clone());
        let image = d.map_or(String::new(), |d| d.image.clone());
        let tolerations = d
            .map(|d| d.tolerations.clone())
            .unwrap_or_default()
            .iter()
            .map(|k| json!({"key": k, "operator": "Exists", "effect": "NoSchedule"}))
            .collect();
        (
            "ReplicaSet",
            format!("{}-{hash}", p.deployment),
            image,
            tolerations,
        )
    };
    tolerations.extend([
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
    ]);
    let mut spec = json!({
        "containers": [{"name": p.deployment, "image": image, "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30,
        "tolerations": tolerations,
    });
    let scheduled = p.node.is_some();
    if let Some(n) = &p.node {
        spec["nodeName"] = json!(n);
    }
    let b = |x: bool| if x { "True" } else { "False" };
    let phase = if p.running_since.is_some() {
        "Running"
    } else {
        "Pending"
    };
    let mut meta = json!({
        "name": name,
        "namespace": ns,
        "uid": uid("pod", &format!("{ns}/{name}")),
        "resourceVersion": rv.to_string(),
        "creationTimestamp": rfc3339(p.created),
        "generateName": format!("{owner}-"),
        "labels": labels,
        "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": owner_kind, "name": owner,
            "uid": uid(&owner_kind.to_lowercase(), &format!("{ns}/{owner}")),
            "controller": true, "blockOwnerDeletion": true
        }]
    });
    if let Some(end) = p.terminating {
        meta["deletionTimestamp"] = json!(rfc3339(end));
        meta["deletionGracePeriodSeconds"] = json!(30);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "PodScheduled", "status": b(scheduled)},
                {"type": "Ready", "status": b(p.ready)},
                {"type": "ContainersReady", "status": b(p.ready)}
            ],
            "qosClass": "BestEffort"
        }
    })
}

/// A Deployment as `apps/v1` returns it.
pub(crate) fn deployment_json(
    wl: &Workloads,
    ns: &str,
    name: &str,
    d: &Deployment,
    rv: u64,
) -> Value {
    let pods: Vec<&Pod> = wl
        .pods
        .iter()
        .filter(|((pns, _), p)| {
            pns == ns && p.deployment == name && !p.daemonset && p.terminating.is_none()
        })
        .map(|(_, p)| p)
        .collect();
    let ready = pods.iter().filter(|p| p.ready).count();
    let mut status = json!({
        "observedGeneration": 1,
        "replicas": pods.len(),
        "updatedReplicas": pods.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
    });
    if pods.len() > ready {
        status["unavailableReplicas"] = json!(pods.len() - ready);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": uid("deployment", &format!("{ns}/{name}")),
            "resourceVersion": rv.to_string(),
            "generation": 1,
            "creationTimestamp": rfc3339(d.created),
            "labels": d.labels,
        },
        "spec": {
            "replicas": d.replicas,
            "selector": {"matchLabels": d.labels},
            "template": {
                "metadata": {"labels": d.labels},
                "spec": {"containers": [{"name": name, "image": d.image}]}
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
        },
        "status": status
    })
}

/// A PodDisruptionBudget as `policy/v1` returns it.
pub(crate) fn pdb_json(wl: &Workloads, ns: &str, name: &str, b: &Pdb, rv: u64) -> Value {
    let (expected, healthy, desired, allowed) = wl.pdb_status(ns, b);
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": uid("pdb", &format!("{ns}/{name}")),
            "resourceVersion": rv.to_string(),
            "generation": 1,
            "creationTimestamp": rfc3339(b.created),
        },
        "spec": {
            "minAvailable": b.min_available,
            "selector": {"matchLabels": b.match_labels}
        },
        "status": {
            "observedGeneration": 1,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "disruptionsAllowed": allowed,
            "expectedPods": expected,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wl() -> Workloads {
        let now = SystemTime::now();
        let mut wl = Workloads::default();
        let labels = BTreeMap::from([("app".to_string(), "docfast".to_string())]);
        wl.seed_deployment(
            "docfast",
            "docfast",
            Deployment {
                replicas: 2,
                labels: labels.clone(),
                tolerations: vec![],
                image: "docfast:1".into(),
                hash: template_hash("docfast", "docfast"),
                created: now,
            },
            &["w1", "w2"],
            now,
        );
        wl.pdbs.insert(
            ("docfast".into(), "docfast".into()),
            Pdb {
                min_available: 1,
                match_labels: labels,
                created: now,
            },
        );
        wl
    }

    #[test]
    fn the_budget_allows_one_eviction_of_two_ready_pods_then_refuses() {
        let now = SystemTime::now();
        let mut wl = wl();
        for p in wl.pods.values_mut() {
            p.ready = true;
        }
        let names: Vec<String> = wl.pods.keys().map(|(_, n)| n.clone()).collect();
        let first = ("docfast".to_string(), names[0].clone());
        assert_eq!(wl.evict("docfast", &names[0], now, Duration::ZERO), Ok(()));
        assert!(wl.pods[&first].terminating.is_some());
        assert_eq!(
            wl.evict("docfast", &names[1], now, Duration::ZERO),
            Err(Evict::Budget {
                pdb: "docfast".into(),
                desired: 1,
                healthy: 1
            })
        );
        // A Terminating pod needs no budget; once its kubelet stopped it, it is gone.
        assert_eq!(wl.evict("docfast", &names[0], now, Duration::ZERO), Ok(()));
        let node = wl.pods[&first].node.clone().unwrap();
        let mut c = crate::cluster::tests::empty_cluster();
        c.workloads = wl;
        kubelet(&mut c, &node, true, Timing::default(), now);
        assert_eq!(
            c.workloads.evict("docfast", &names[0], now, Duration::ZERO),
            Err(Evict::NotFound)
        );
    }

    #[test]
    fn a_replacement_is_scheduled_on_the_ready_untainted_node_with_fewest_pods() {
        let mut c = crate::cluster::tests::empty_cluster();
        c.workloads = wl();
        c.workloads
            .pods
            .retain(|_, p| p.node.as_deref() != Some("w1"));
        let now = SystemTime::now();
        let st = |ready, unschedulable, taint: &[&str]| NodeState {
            ready,
            unschedulable,
            no_schedule: taint.iter().map(|s| s.to_string()).collect(),
        };
        let nodes = BTreeMap::from([
            (
                "mgr".to_string(),
                st(true, false, &["node-role.kubernetes.io/control-plane"]),
            ),
            ("w1".to_string(), st(true, true, &[])),
            ("w2".to_string(), st(true, false, &[])),
            ("w3".to_string(), st(true, false, &[])),
        ]);
        controllers(&mut c, &nodes, Timing::default(), now);
        let mut placed: Vec<_> = c
            .workloads
            .pods
            .values()
            .map(|p| p.node.clone().unwrap())
            .collect();
        placed.sort();
        assert_eq!(placed, ["w2", "w3"]);
    }

    #[test]
    fn workload_objects_deserialise_as_the_clients_types() {
        use k8s_openapi::api::apps::v1::Deployment as KDeployment;
        use k8s_openapi::api::core::v1::{Node, Pod as KPod};
        use k8s_openapi::api::policy::v1::PodDisruptionBudget;
        let mut wl = wl();
        for p in wl.pods.values_mut() {
            p.ready = true;
            p.running_since = Some((SystemTime::now(), SystemTime::now()));
        }
        let ((ns, name), p) = wl.pods.iter().next().unwrap();
        let pod: KPod = serde_json::from_value(pod_json(&wl, ns, name, p, 9)).unwrap();
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "ReplicaSet");
        assert!(owner.name.starts_with("docfast-"));
        assert!(pod.spec.as_ref().unwrap().node_name.is_some());
        let d = &wl.deployments[&("docfast".to_string(), "docfast".to_string())];
        let dep: KDeployment =
            serde_json::from_value(deployment_json(&wl, "docfast", "docfast", d, 9)).unwrap();
        let st = dep.status.unwrap();
        assert_eq!((st.replicas, st.ready_replicas), (Some(2), Some(2)));
        let b = &wl.pdbs[&("docfast".to_string(), "docfast".to_string())];
        let pdb: PodDisruptionBudget =
            serde_json::from_value(pdb_json(&wl, "docfast", "docfast", b, 9)).unwrap();
        let st = pdb.status.unwrap();
        assert_eq!(
            (
                st.current_healthy,
                st.desired_healthy,
                st.disruptions_allowed,
                st.expected_pods
            ),
            (2, 1, 1, 2)
        );
        let rec = crate::cluster::NodeRec {
            ip: "10.0.1.5".parse().unwrap(),
            control_plane: true,
            host: "k3s-mgr".into(),
            created: SystemTime::now(),
            k3s: Some(crate::k3s::K3sNode {
                server: true,
                etcd_name: Some("k3s-mgr-0a1b2c3d".into()),
                taints: vec!["node-role.kubernetes.io/control-plane:NoSchedule".into()],
                version: "v1.34.4+k3s1".into(),
            }),
            unschedulable: true,
        };
        let live = crate::cluster::NodeLive {
            ready: true,
            reason: "KubeletReady".into(),
            message: String::new(),
            since: SystemTime::now(),
            etcd_running: false,
        };
        let node: Node =
            serde_json::from_value(crate::cluster::node_json("k3s-mgr", &rec, &live, 9)).unwrap();
        assert_eq!(node.spec.as_ref().unwrap().unschedulable, Some(true));
        let meta = node.metadata;
        assert_eq!(meta.labels.unwrap()["node-role.kubernetes.io/etcd"], "true");
        let ann = meta.annotations.unwrap();
        assert_eq!(ann["etcd.k3s.cattle.io/node-name"], "k3s-mgr-0a1b2c3d");
        assert_eq!(ann["etcd.k3s.cattle.io/node-address"], "10.0.1.5");
        assert_eq!(
            node.status.unwrap().node_info.unwrap().kubelet_version,
            "v1.34.4+k3s1"
        );
    }
}
