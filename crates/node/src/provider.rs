//! The `node` provider, assembled with core's provider kit: the context every kind shares
//! (the SSH transport with its declared hosts), its error mapping and plan-time validation,
//! and the registration of the kinds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::kit::{Context, KitProvider, ProviderBuilder};
use cairn_core::{Declared, Diagnostic, FieldError, ProviderError};
use serde::Deserialize;

use crate::cluster::Cluster;
use crate::error::NodeError;
use crate::kinds::apiserver_cert::ApiserverCertificates;
use crate::kinds::control_plane_member::ControlPlaneMembers;
use crate::kinds::k3s_agent::K3sAgents;
use crate::kinds::k3s_server::K3sServers;
use crate::kinds::kubeadm_config::KubeadmConfigs;
use crate::kinds::kubeconfig_server::KubeconfigServers;
use crate::kinds::split_key;
use crate::ssh::Ssh;

/// Steps on hosts over SSH as a cairn provider.
pub type NodeProvider = KitProvider<NodeContext>;

/// The provider named `node` over `ssh` (which holds the declared hosts), with no cluster.
pub fn node_provider(ssh: Ssh) -> NodeProvider {
    node_provider_for(NodeContext::new(Arc::new(ssh)))
}

/// The provider named `node` over a context with its hosts and clusters.
pub fn node_provider_for(ctx: NodeContext) -> NodeProvider {
    ProviderBuilder::new("node", ctx)
        .kind(KubeconfigServers)
        .kind(ApiserverCertificates)
        .kind(KubeadmConfigs)
        .kind(ControlPlaneMembers)
        .kind(K3sServers)
        .kind(K3sAgents)
        .build()
}

/// How long and how often node steps wait for the cluster (a node Ready after a kubelet
/// restart or a join, an apiserver ready again after a restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    /// Pause between checks.
    pub interval: Duration,
    /// Give up after this long; the step fails naming what it waited for.
    pub timeout: Duration,
}

impl Default for Waits {
    /// Every 2 s, up to 5 minutes.
    fn default() -> Self {
        Waits {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(300),
        }
    }
}

/// What the node kinds share: the transport with its declared hosts, the declared clusters
/// (Kubernetes API access), and how long steps wait.
#[derive(Debug)]
pub struct NodeContext {
    ssh: Arc<Ssh>,
    clusters: BTreeMap<String, Arc<Cluster>>,
    waits: Waits,
    drain_timeout: Duration,
}

impl NodeContext {
    /// A context over `ssh`, with no cluster.
    pub fn new(ssh: Arc<Ssh>) -> Self {
        NodeContext {
            ssh,
            clusters: BTreeMap::new(),
            waits: Waits::default(),
            drain_timeout: Duration::from_secs(300),
        }
    }

    /// Declares a cluster (the same `Arc` the stack's gates use).
    pub fn cluster(mut self, cluster: Arc<Cluster>) -> Self {
        self.clusters.insert(cluster.name().to_string(), cluster);
        self
    }

    /// Sets how long and how often steps wait for the cluster.
    pub fn waits(mut self, waits: Waits) -> Self {
        self.waits = waits;
        self
    }

    /// Sets how long a drain (of a rolling upgrade or a delete) retries evictions a
    /// PodDisruptionBudget refuses before it fails (default 300 s).
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.drain_timeout = d;
        self
    }

    /// How long a drain may take.
    pub fn drain_timeout_of(&self) -> Duration {
        self.drain_timeout
    }

    /// The transport (for its counters, or to run a command directly).
    pub fn ssh(&self) -> &Ssh {
        &self.ssh
    }

    /// How long steps wait.
    pub fn wait_timing(&self) -> Waits {
        self.waits
    }

    /// The declared cluster `name`.
    pub fn get_cluster(&self, name: &str) -> Result<&Arc<Cluster>, NodeError> {
        self.clusters.get(name).ok_or_else(|| NodeError::Resource {
            resource: format!("cluster[{name}]"),
            message: format!("cluster {name:?} is not declared in the node provider"),
        })
    }

    /// Every host declared as a node of a declared cluster that has one of `hosts` as a
    /// node.
    pub fn cluster_hosts_of(&self, hosts: &[String]) -> Vec<String> {
        let mut v: Vec<String> = self
            .clusters
            .values()
            .filter(|c| hosts.iter().any(|h| c.node_of(h).is_some()))
            .flat_map(|c| c.hosts().map(str::to_string))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The cluster that declares `host` as one of its nodes, with the node's name.
    pub fn node_of_host(&self, host: &str) -> Option<(&Arc<Cluster>, String)> {
        self.clusters
            .values()
            .find_map(|c| Some((c, c.node_of(host)?.to_string())))
    }
}

/// The `cluster` field of a kind's spec, for plan-time validation.
#[derive(Deserialize)]
struct ClusterField {
    cluster: Option<String>,
}

/// The `host` field of a kind keyed by host alone (the k3s kinds), for plan-time validation.
#[derive(Deserialize)]
struct HostField {
    host: Option<String>,
}

impl Context for NodeContext {
    type Error = NodeError;

    fn provider_error(&self, operation: String, error: NodeError) -> ProviderError {
        let mut p = ProviderError::new(operation, error.to_string());
        p.retryable = error.is_connection();
        p
    }

    /// Every resource must name a declared host and a declared cluster, and every
    /// cluster's credentials host must be declared: checked before anything is observed.
    fn validate(&self, declared: &[Declared<'_>]) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for d in declared {
            if let Some((host, _)) = split_key(d.key)
                && !self.ssh.is_declared(host)
            {
                out.push(Diagnostic {
                    address: d.address.clone(),
                    error: FieldError::new(
                        "host",
                        format!("host {host:?} is not declared in the node provider's hosts"),
                    ),
                });
            }
            if split_key(d.key).is_none()
                && let Some(host) = HostField::deserialize(d.spec).ok().and_then(|h| h.host)
                && !self.ssh.is_declared(&host)
            {
                out.push(Diagnostic {
                    address: d.address.clone(),
                    error: FieldError::new(
                        "host",
                        format!("host {host:?} is not declared in the node provider's hosts"),
                    ),
                });
            }
            let cluster = ClusterField::deserialize(d.spec)
                .ok()
                .and_then(|c| c.cluster);
            if let Some(name) = cluster {
                match self.clusters.get(&name) {
                    None => out.push(Diagnostic {
                        address: d.address.clone(),
                        error: FieldError::new(
                            "cluster",
                            format!("cluster {name:?} is not declared in the node provider"),
                        ),
                    }),
                    Some(c) if !self.ssh.is_declared(c.admin_host()) => out.push(Diagnostic {
                        address: d.address.clone(),
                        error: FieldError::new(
                            "cluster",
                            format!(
                                "cluster {name:?} reads its credentials from host {:?}, which is not declared in the node provider's hosts",
                                c.admin_host()
                            ),
                        ),
                    }),
                    Some(_) => {}
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::SshOptions;

    #[test]
    fn every_kinds_schema_paths_exist() {
        let ssh = Ssh::new(SshOptions::new("/k"), Default::default(), vec![]).unwrap();
        let p = node_provider(ssh);
        assert_eq!(
            cairn_core::Provider::kinds(&p),
            &[
                "node_kubeconfig_server",
                "node_apiserver_certificate",
                "node_kubeadm_config",
                "node_control_plane_member",
                "node_k3s_server",
                "node_k3s_agent"
            ]
        );
        assert_eq!(p.check_schemas(), Vec::<String>::new());
    }

    fn declared(kind: &'static str, key: &'static str, spec: serde_json::Value) -> Vec<String> {
        use cairn_core::Address;
        let ssh = Arc::new(
            Ssh::new(
                SshOptions::new("/k"),
                Default::default(),
                vec![crate::Host::new(
                    "m1",
                    "10.0.20.100",
                    "root",
                    crate::HostKeyTrust::Fingerprint("SHA256:x".into()),
                )],
            )
            .unwrap(),
        );
        let c = |name: &str, admin: &str| {
            Arc::new(Cluster::new(
                name,
                "10.0.20.100:6443",
                admin,
                ssh.clone(),
                Default::default(),
            ))
        };
        let ctx = NodeContext::new(ssh.clone())
            .cluster(c("homelab", "m1"))
            .cluster(c("other", "ghost"));
        let address = Address::new(kind, "x");
        let d = Declared {
            address: &address,
            kind,
            key,
            spec: &spec,
        };
        ctx.validate(&[d])
            .into_iter()
            .map(|d| format!("{}: {}", d.address, d.error))
            .collect()
    }

    #[test]
    fn an_undeclared_cluster_or_credentials_host_is_named_at_plan_time() {
        let spec = |c: &str| serde_json::json!({"cluster": c, "node": "k8s-master-2"});
        assert_eq!(
            declared(
                "node_control_plane_member",
                "homelab/k8s-master-2",
                spec("homelab")
            ),
            Vec::<String>::new()
        );
        let e = declared(
            "node_control_plane_member",
            "nope/k8s-master-2",
            spec("nope"),
        );
        assert_eq!(e.len(), 1);
        assert!(
            e[0].contains("node_control_plane_member.x")
                && e[0].contains("cluster \"nope\" is not declared"),
            "{e:?}"
        );
        let e = declared("node_kubeadm_config", "other", spec("other"));
        assert!(
            e[0].contains("host \"ghost\", which is not declared"),
            "{e:?}"
        );
    }
}
