//! Node operations of a rolling upgrade or a rotation, as `kubectl` does them: cordon and
//! uncordon (`spec.unschedulable`), drain (evict every pod but DaemonSet and mirror pods
//! through the eviction API, so PodDisruptionBudgets are respected: a refusal (429) is
//! retried until the drain timeout, which fails naming the pod and the budget and leaves
//! the node cordoned), deleting a Node, and reading a k3s cluster's etcd members from its
//! nodes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use tokio::time::Instant;

use super::{Cluster, EtcdMember, chain};
use crate::error::{DrainTimeout, NodeError};

/// The label k3s puts on its etcd members.
pub const ETCD_ROLE_LABEL: &str = "node-role.kubernetes.io/etcd";
/// The annotation naming a k3s server's etcd member (`<node>-<8 hex>`).
pub const ETCD_NAME_ANNOTATION: &str = "etcd.k3s.cattle.io/node-name";
/// The annotation the kubelet puts on a static pod's mirror.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The annotation holding a k3s etcd member's address.
pub const ETCD_ADDRESS_ANNOTATION: &str = "etcd.k3s.cattle.io/node-address";

/// What a drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    /// The pods evicted (`namespace/name`), in order.
    pub evicted: Vec<String>,
    /// Evictions a PodDisruptionBudget refused before they were allowed.
    pub refusals: usize,
}

/// Whether `nodes` are a k3s cluster's (a node runs a k3s kubelet or carries k3s's etcd
/// annotation); then its etcd members: the nodes labelled `node-role.kubernetes.io/etcd=true`
/// with the `etcd.k3s.cattle.io/node-name` annotation, healthy when Ready. `None` for any
/// other cluster (kubeadm's are read from its static pods).
pub fn k3s_etcd_members(nodes: &[Node]) -> Option<Vec<EtcdMember>> {
    let annotated = |n: &Node| {
        n.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(ETCD_NAME_ANNOTATION))
    };
    let k3s = nodes.iter().any(|n| {
        annotated(n)
            || n.status
                .as_ref()
                .and_then(|s| s.node_info.as_ref())
                .is_some_and(|i| i.kubelet_version.contains("+k3s"))
    });
    if !k3s {
        return None;
    }
    Some(
        nodes
            .iter()
            .filter(|n| {
                annotated(n)
                    && n.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(ETCD_ROLE_LABEL))
                        .is_some_and(|v| v == "true")
            })
            .map(|n| {
                let name = n.metadata.name.clone().unwrap_or_default();
                let state = super::node_state(&name, n);
                EtcdMember {
                    node: name,
                    ready: state.ready,
                }
            })
            .collect(),
    )
}

/// Whether a drain leaves `pod` where it is: DaemonSet pods (their controller ignores
/// `unschedulable`) and mirror pods of static pods (the kubelet owns them).
pub fn drain_skips(pod: &Pod) -> bool {
    let daemon = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet");
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION));
    daemon || mirror
}

/// The budget a 429's cause names: `The disruption budget <pdb> needs …`.
pub fn budget_of_refusal(message: &str) -> Option<String> {
    let rest = message.split("disruption budget ").nth(1)?;
    let name = rest.split_whitespace().next()?;
    Some(
        name.trim_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '.')
            .to_string(),
    )
    .filter(|n| !n.is_empty())
}

/// A duration as an operator reads it (`300 s`, `2.5 s`).
pub fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Why the last attempt could not evict a pod.
#[derive(Debug, Clone)]
struct Blocked {
    pod: String,
    budget: Option<String>,
    detail: String,
}

impl Cluster {
    fn set_unschedulable<'a>(
        &'a self,
        node: &'a str,
        on: bool,
    ) -> impl std::future::Future<Output = Result<(), NodeError>> + 'a {
        let what = format!("{} node {node}", if on { "cordon" } else { "uncordon" });
        async move {
            self.call(&what, |c| async move {
                Api::<Node>::all(c)
                    .patch(
                        node,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"unschedulable": on}})),
                    )
                    .await
            })
            .await?;
            tracing::info!(cluster = %self.name, node, unschedulable = on, "node patched");
            Ok(())
        }
    }

    /// Marks `node` unschedulable (`kubectl cordon`).
    pub async fn cordon(&self, node: &str) -> Result<(), NodeError> {
        self.set_unschedulable(node, true).await
    }

    /// Marks `node` schedulable again (`kubectl uncordon`).
    pub async fn uncordon(&self, node: &str) -> Result<(), NodeError> {
        self.set_unschedulable(node, false).await
    }

    /// Whether `node` is cordoned (`None` when there is no such node).
    pub async fn cordoned(&self, node: &str) -> Result<Option<bool>, NodeError> {
        let n = self
            .call(&format!("read node {node}"), |c| async move {
                Api::<Node>::all(c).get_opt(node).await
            })
            .await?;
        Ok(n.map(|n| n.spec.and_then(|s| s.unschedulable).unwrap_or(false)))
    }

    /// Deletes the Node object `node` (k3s then removes a server's etcd member and the
    /// node's password Secret). `false` when there was no such node.
    pub async fn delete_node(&self, node: &str) -> Result<bool, NodeError> {
        let r = self
            .call_raw(|c| async move {
                Api::<Node>::all(c)
                    .delete(node, &DeleteParams::default())
                    .await
            })
            .await?;
        match r {
            Ok(_) => {
                tracing::info!(cluster = %self.name, node, "node deleted");
                Ok(true)
            }
            Err((_, kube::Error::Api(s))) if s.code == 404 => Ok(false),
            Err((at, e)) => Err(self.api_err(&format!("delete node {node}"), &at, &e)),
        }
    }

    /// The address of a Ready k3s etcd member other than `except` (its
    /// `etcd.k3s.cattle.io/node-address` annotation, else its InternalIP): where a rebuilt
    /// first server joins. `None` when the cluster has no such member.
    pub async fn ready_member_address(&self, except: &str) -> Result<Option<String>, NodeError> {
        let nodes = self.node_objects().await?;
        let ready: Vec<String> = k3s_etcd_members(&nodes)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.ready && m.node != except)
            .map(|m| m.node)
            .collect();
        Ok(nodes.iter().find_map(|n| {
            let name = n.metadata.name.as_deref()?;
            if !ready.iter().any(|r| r == name) {
                return None;
            }
            n.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ETCD_ADDRESS_ANNOTATION).cloned())
                .or_else(|| {
                    n.status
                        .as_ref()?
                        .addresses
                        .as_ref()?
                        .iter()
                        .find(|a| a.type_ == "InternalIP")
                        .map(|a| a.address.clone())
                })
        }))
    }

    /// The pods bound to `node`.
    pub async fn pods_on(&self, node: &str) -> Result<Vec<Pod>, NodeError> {
        let fields = format!("spec.nodeName={node}");
        let list = self
            .call(&format!("list the pods of node {node}"), |c| {
                let lp = ListParams::default().fields(&fields);
                async move { Api::<Pod>::all(c).list(&lp).await }
            })
            .await?;
        Ok(list.items)
    }

    /// Evicts every pod of `node` but DaemonSet and mirror pods, through the eviction API,
    /// and waits until they are gone. An eviction a PodDisruptionBudget refuses (429) is
    /// retried every [`Cluster::drain_retry_interval`] until `timeout`, which fails with
    /// [`NodeError::DrainTimeout`] naming the pod and the budget. The node is not cordoned
    /// here (cordon it first) and stays as it is on failure.
    pub async fn drain(&self, node: &str, timeout: Duration) -> Result<Drained, NodeError> {
        let deadline = Instant::now() + timeout;
        let mut done = Drained::default();
        loop {
            // A NotReady node's kubelet cannot finish terminating pods: once evicted they
            // count as gone (deleting the Node removes them), as `kubectl drain` skips them.
            let lost = self.node_state(node).await?.is_none_or(|n| !n.ready);
            let pods: Vec<Pod> = self
                .pods_on(node)
                .await?
                .into_iter()
                .filter(|p| !drain_skips(p))
                .filter(|p| !(lost && p.metadata.deletion_timestamp.is_some()))
                .collect();
            if pods.is_empty() {
                tracing::info!(cluster = %self.name, node, evicted = done.evicted.len(), "node drained");
                return Ok(done);
            }
            let mut blocked: Option<Blocked> = None;
            for pod in &pods {
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let name = pod.metadata.name.clone().unwrap_or_default();
                let full = format!("{ns}/{name}");
                if pod.metadata.deletion_timestamp.is_some() {
                    blocked.get_or_insert(Blocked {
                        pod: full,
                        budget: None,
                        detail: "evicted, still terminating".into(),
                    });
                    continue;
                }
                match self.evict(&ns, &name).await? {
                    Ok(()) => {
                        tracing::info!(cluster = %self.name, node, pod = %full, "pod evicted");
                        done.evicted.push(full);
                    }
                    Err((_, kube::Error::Api(s))) if s.code == 404 => {}
                    Err((_, kube::Error::Api(s))) if s.code == 429 => {
                        done.refusals += 1;
                        let cause = s
                            .details
                            .as_ref()
                            .and_then(|d| d.causes.iter().find(|c| c.reason == "DisruptionBudget"))
                            .map(|c| c.message.clone());
                        let mut budget = cause.as_deref().and_then(budget_of_refusal);
                        if budget.is_none() {
                            budget = self.budget_covering(pod).await;
                        }
                        let detail = cause.unwrap_or_else(|| s.message.clone());
                        tracing::debug!(cluster = %self.name, node, pod = %full, %detail, "eviction refused");
                        blocked = Some(Blocked {
                            pod: full,
                            budget: budget.map(|b| format!("{ns}/{b}")),
                            detail,
                        });
                    }
                    Err((_, kube::Error::Api(s))) if s.code >= 500 => {
                        blocked.get_or_insert(Blocked {
                            pod: full,
                            budget: None,
                            detail: format!("the apiserver answered {}: {}", s.code, s.message),
                        });
                    }
                    Err((at, e)) => {
                        return Err(self.err(format!(
                            "drain of node {node}: evict pod {full} via {at}: {}",
                            chain(&e)
                        )));
                    }
                }
            }
            if Instant::now() >= deadline {
                let b = blocked.unwrap_or_else(|| Blocked {
                    pod: pods
                        .first()
                        .map(|p| {
                            format!(
                                "{}/{}",
                                p.metadata.namespace.as_deref().unwrap_or_default(),
                                p.metadata.name.as_deref().unwrap_or_default()
                            )
                        })
                        .unwrap_or_default(),
                    budget: None,
                    detail: "evicted, still terminating".into(),
                });
                return Err(NodeError::DrainTimeout(Box::new(DrainTimeout {
                    cluster: self.name.clone(),
                    node: node.to_string(),
                    after: human(timeout),
                    pod: b.pod,
                    budget: b.budget,
                    detail: b.detail,
                })));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(self.drain_retry.min(left).max(Duration::from_millis(10))).await;
        }
    }

    /// `POST …/pods/<name>/eviction` with a policy/v1 Eviction.
    async fn evict(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Result<(), (String, kube::Error)>, NodeError> {
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": ns},
        });
        let body = serde_json::to_vec(&body).expect("static JSON");
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/eviction");
        self.call_raw(|c| {
            let req = http::Request::post(path.as_str())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .expect("valid request");
            async move { c.request_text(req).await.map(|_| ()) }
        })
        .await
    }

    /// The PodDisruptionBudget of `pod`'s namespace whose selector matches its labels.
    async fn budget_covering(&self, pod: &Pod) -> Option<String> {
        let ns = pod.metadata.namespace.clone()?;
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let list = self
            .call("list PodDisruptionBudgets", |c| {
                let ns = ns.clone();
                async move {
                    Api::<PodDisruptionBudget>::namespaced(c, &ns)
                        .list(&ListParams::default())
                        .await
                }
            })
            .await
            .ok()?;
        list.items.into_iter().find_map(|b| {
            let want = b.spec.as_ref()?.selector.as_ref()?.match_labels.clone()?;
            want.iter()
                .all(|(k, v)| labels.get(k) == Some(v))
                .then(|| b.metadata.name.clone())
                .flatten()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{Fake, FakePod};
    use super::*;

    fn pod(name: &str, node: &str, owner: &str) -> FakePod {
        FakePod {
            namespace: "docfast".into(),
            name: name.into(),
            node: node.into(),
            owner: owner.into(),
        }
    }

    async fn workers(net: u8) -> (Fake, std::sync::Arc<Cluster>) {
        let fake = Fake::start(&format!("127.0.{net}.5"), &[&format!("10.0.{net}.5")]).await;
        {
            let mut w = fake.world.lock().unwrap();
            w.k3s = true;
            w.nodes.insert("k3s-mgr".into(), (true, true));
            w.nodes.insert("k3s-w1".into(), (true, false));
            w.nodes.insert("k3s-w2".into(), (true, false));
            w.pods = vec![
                pod("docfast-a", "k3s-w1", "ReplicaSet"),
                pod("svclb-w1", "k3s-w1", "DaemonSet"),
                pod("docfast-b", "k3s-w2", "ReplicaSet"),
            ];
        }
        let cluster = fake.cluster(&format!("10.0.{net}.5"));
        (fake, cluster)
    }

    #[tokio::test]
    async fn a_drain_evicts_the_nodes_workload_pods_and_leaves_daemonset_pods_and_other_nodes() {
        let (fake, cluster) = workers(31).await;
        cluster.cordon("k3s-w1").await.unwrap();
        assert_eq!(cluster.cordoned("k3s-w1").await.unwrap(), Some(true));
        let done = cluster
            .drain("k3s-w1", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(done.evicted, ["docfast/docfast-a"]);
        let w = fake.world.lock().unwrap();
        let left: Vec<_> = w.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(left, ["svclb-w1", "docfast-b"]);
        assert_eq!(
            w.writes,
            [
                "PATCH /api/v1/nodes/k3s-w1",
                "POST /api/v1/namespaces/docfast/pods/docfast-a/eviction"
            ]
        );
    }

    #[tokio::test]
    async fn a_drain_blocked_by_a_budget_times_out_naming_the_pod_and_budget_and_the_node_stays_cordoned()
     {
        let (fake, cluster) = workers(32).await;
        fake.world
            .lock()
            .unwrap()
            .blocked
            .insert("docfast-a".into());
        cluster.cordon("k3s-w1").await.unwrap();
        let e = cluster
            .drain("k3s-w1", Duration::from_millis(400))
            .await
            .unwrap_err();
        assert!(matches!(e, NodeError::DrainTimeout(_)), "{e:?}");
        let m = e.to_string();
        assert!(
            m.starts_with(
                "drain of node k3s-w1 timed out after 0.4 s: pod docfast/docfast-a is blocked by PodDisruptionBudget docfast/docfast (The disruption budget docfast needs 1 healthy pods and has 1 currently)"
            ),
            "{m}"
        );
        assert!(m.contains("stays cordoned"), "{m}");
        assert_eq!(cluster.cordoned("k3s-w1").await.unwrap(), Some(true));
        let evictions = fake
            .world
            .lock()
            .unwrap()
            .writes
            .iter()
            .filter(|w| w.ends_with("/eviction"))
            .count();
        assert!(evictions >= 2, "the refusal was retried: {evictions}");
    }

    #[tokio::test]
    async fn deleting_a_node_twice_is_fine_and_uncordon_clears_the_flag() {
        let (_fake, cluster) = workers(33).await;
        cluster.cordon("k3s-w2").await.unwrap();
        cluster.uncordon("k3s-w2").await.unwrap();
        assert_eq!(cluster.cordoned("k3s-w2").await.unwrap(), Some(false));
        assert!(cluster.delete_node("k3s-w2").await.unwrap());
        assert!(!cluster.delete_node("k3s-w2").await.unwrap());
        assert_eq!(cluster.cordoned("k3s-w2").await.unwrap(), None);
    }

    #[test]
    fn the_budget_is_read_from_the_refusal_cause() {
        assert_eq!(
            budget_of_refusal(
                "The disruption budget docfast needs 1 healthy pods and has 1 currently"
            )
            .as_deref(),
            Some("docfast")
        );
        assert_eq!(budget_of_refusal("Cannot evict pod"), None);
        assert_eq!(human(Duration::from_secs(300)), "300 s");
        assert_eq!(human(Duration::from_millis(2500)), "2.5 s");
    }

    #[test]
    fn daemonset_and_mirror_pods_are_not_drained_but_replica_set_pods_are() {
        let pod = |owner: &str, mirror: bool| -> Pod {
            serde_json::from_value(json!({
                "metadata": {
                    "name": "p", "namespace": "n",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "u"}],
                    "annotations": if mirror { json!({MIRROR_ANNOTATION: "x"}) } else { json!({}) },
                }
            }))
            .unwrap()
        };
        assert!(drain_skips(&pod("DaemonSet", false)));
        assert!(drain_skips(&pod("Node", true)));
        assert!(!drain_skips(&pod("ReplicaSet", false)));
    }

    #[test]
    fn a_k3s_cluster_is_told_from_its_nodes_and_its_members_are_the_annotated_etcd_nodes() {
        let node = |name: &str, etcd: bool, ready: bool, version: &str| -> Node {
            let mut labels = json!({});
            let mut ann = json!({});
            if etcd {
                labels[ETCD_ROLE_LABEL] = json!("true");
                ann[ETCD_NAME_ANNOTATION] = json!(format!("{name}-0a1b2c3d"));
            }
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels, "annotations": ann},
                "status": {
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                    "nodeInfo": {"kubeletVersion": version, "architecture": "", "bootID": "",
                        "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
                        "machineID": "", "operatingSystem": "", "osImage": "", "systemUUID": ""}
                }
            }))
            .unwrap()
        };
        let k3s = [
            node("k3s-mgr", true, true, "v1.34.4+k3s1"),
            node("k3s-cp2", true, false, "v1.34.4+k3s1"),
            node("k3s-w1", false, true, "v1.34.4+k3s1"),
        ];
        assert_eq!(
            k3s_etcd_members(&k3s),
            Some(vec![
                EtcdMember {
                    node: "k3s-mgr".into(),
                    ready: true
                },
                EtcdMember {
                    node: "k3s-cp2".into(),
                    ready: false
                },
            ])
        );
        let sqlite = [node("k3s-mgr", false, true, "v1.34.4+k3s1")];
        assert_eq!(
            k3s_etcd_members(&sqlite),
            Some(vec![]),
            "a SQLite k3s has none"
        );
        let kubeadm = [node("k8s-master", false, true, "v1.34.1")];
        assert_eq!(k3s_etcd_members(&kubeadm), None);
    }
}
