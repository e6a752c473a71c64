//! Kubernetes API access for the node layer: a declared cluster ([`Cluster`]) reached at a
//! declared endpoint through core's dialer, authenticated with the cluster-admin
//! credentials read over SSH from a declared control-plane host (`sudo -n` read of
//! `/etc/kubernetes/admin.conf`), and the few typed reads the kinds and gates need (nodes,
//! etcd members, the `kubeadm-config` ConfigMap, `/readyz`).
//!
//! ```ignore
//! let cluster = Arc::new(
//!     Cluster::new("homelab", "10.0.20.100:6443", "k8s-master-1", ssh.clone(), dialer)
//!         .node("k8s-worker-1", "k8s-worker-1"),
//! );
//! s.gate("master-2-ready", cluster.node_ready("k8s-master-2"), timing);
//! ```

pub mod connect;
pub mod credentials;
#[cfg(test)]
pub(crate) mod fake;
pub mod gates;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cairn_core::net::Dialer;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::Api;
use kube::api::ListParams;
use tokio::sync::{Mutex, OnceCell};

use crate::error::NodeError;
use crate::files::{self, RemoteFile};
use crate::ssh::Ssh;
use connect::{Connector, split_endpoint, tls_config};
use credentials::{ADMIN_CONF, Credentials};

pub use gates::{ApiserverReady, EtcdMembersReady, NodeReady};

/// A Kubernetes cluster as declared to the node provider.
pub struct Cluster {
    name: String,
    endpoint: String,
    admin_host: String,
    admin_conf: String,
    nodes: BTreeMap<String, String>,
    ssh: Arc<Ssh>,
    dialer: Dialer,
    creds: OnceCell<Arc<Credentials>>,
    clients: Mutex<HashMap<String, kube::Client>>,
    joins: Mutex<()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("admin_host", &self.admin_host)
            .field("admin_conf", &self.admin_conf)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

/// A node as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// The node's name.
    pub name: String,
    /// Whether its `Ready` condition is `True`.
    pub ready: bool,
    /// The `Ready` condition's reason and message when it is not.
    pub why: String,
    /// Whether it carries the control-plane role label.
    pub control_plane: bool,
    /// When the kubelet last posted the `Ready` condition (Unix seconds), if reported.
    pub heartbeat: Option<i64>,
}

/// An etcd member, as kubeadm runs it: the static pod `kube-system/etcd-<node>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    /// The node it runs on.
    pub node: String,
    /// Whether the pod is Ready.
    pub ready: bool,
}

/// The label kubeadm puts on control-plane nodes.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

impl Cluster {
    /// The cluster `name`, whose API is reached at `endpoint` (`address:port`, the declared
    /// address, mapped by `dialer`), with credentials read from `/etc/kubernetes/admin.conf`
    /// on the declared host `admin_host` (also where kubeadm runs for cluster-wide steps).
    pub fn new(
        name: impl Into<String>,
        endpoint: impl Into<String>,
        admin_host: impl Into<String>,
        ssh: Arc<Ssh>,
        dialer: Dialer,
    ) -> Self {
        Cluster {
            name: name.into(),
            endpoint: endpoint.into(),
            admin_host: admin_host.into(),
            admin_conf: ADMIN_CONF.into(),
            nodes: BTreeMap::new(),
            ssh,
            dialer,
            creds: OnceCell::new(),
            clients: Mutex::new(HashMap::new()),
            joins: Mutex::new(()),
        }
    }

    /// Reads the credentials from another kubeconfig path on the admin host.
    pub fn admin_conf(mut self, path: impl Into<String>) -> Self {
        self.admin_conf = path.into();
        self
    }

    /// Uses `creds` instead of reading the admin kubeconfig over SSH (credentials the
    /// operator holds locally, or tests).
    pub fn with_credentials(self, creds: Credentials) -> Self {
        let cell = OnceCell::new();
        let _ = cell.set(Arc::new(creds));
        Cluster {
            creds: cell,
            ..self
        }
    }

    /// Declares that host `host` is the Kubernetes node `node` of this cluster (kubelet
    /// restarts on it wait for the node to be Ready again).
    pub fn node(mut self, host: impl Into<String>, node: impl Into<String>) -> Self {
        self.nodes.insert(host.into(), node.into());
        self
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The declared API endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The host credentials are read from and kubeadm runs on.
    pub fn admin_host(&self) -> &str {
        &self.admin_host
    }

    /// The node name of a declared host.
    pub fn node_of(&self, host: &str) -> Option<&str> {
        self.nodes.get(host).map(String::as_str)
    }

    /// The declared host of a node.
    pub fn host_of(&self, node: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(_, n)| *n == node)
            .map(|(h, _)| h.as_str())
    }

    /// Held while a control-plane member joins: kubeadm joins control-plane nodes one at a
    /// time (each adds an etcd member), whatever the stack's graph allows.
    pub(crate) async fn join_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.joins.lock().await
    }

    /// The transport (shared with the node provider).
    pub fn ssh(&self) -> &Arc<Ssh> {
        &self.ssh
    }

    fn err(&self, message: impl Into<String>) -> NodeError {
        NodeError::Kube {
            cluster: self.name.clone(),
            message: message.into(),
        }
    }

    /// The admin credentials, read over SSH once and kept in memory only.
    pub async fn credentials(&self) -> Result<Arc<Credentials>, NodeError> {
        self.creds
            .get_or_try_init(|| async {
                let (host, path) = (&self.admin_host, &self.admin_conf);
                let resource = format!("cluster[{}]", self.name);
                let file = files::read_files(&self.ssh, host, std::slice::from_ref(path))
                    .await?
                    .remove(0);
                let text = match file {
                    RemoteFile::File(b) => b,
                    RemoteFile::NotAFile(what) => {
                        return Err(NodeError::NotAFile {
                            resource,
                            host: host.clone(),
                            path: path.clone(),
                            what,
                        });
                    }
                    RemoteFile::Missing => {
                        return Err(NodeError::Resource {
                            resource,
                            message: format!("{path} does not exist on host {host}"),
                        });
                    }
                };
                let creds = credentials::parse(&String::from_utf8_lossy(&text)).map_err(|m| {
                    NodeError::Resource {
                        resource,
                        message: format!("{path} on host {host}: {m}"),
                    }
                })?;
                Ok(Arc::new(creds))
            })
            .await
            .cloned()
    }

    /// A client for the apiserver at `address` (`host:port`, declared form).
    pub async fn client_at(&self, address: &str) -> Result<kube::Client, NodeError> {
        if let Some(c) = self.clients.lock().await.get(address) {
            return Ok(c.clone());
        }
        let creds = self.credentials().await?;
        let (host, port) = split_endpoint(address).map_err(|m| self.err(m))?;
        let (config, _) = tls_config(&creds).map_err(|m| self.err(m))?;
        let connector = Connector {
            dialer: self.dialer.clone(),
            host,
            port,
            tls: Arc::new(config),
        };
        let client = kube::Client::new(connector, "default");
        self.clients
            .lock()
            .await
            .insert(address.to_string(), client.clone());
        Ok(client)
    }

    /// A client for the declared endpoint.
    pub async fn client(&self) -> Result<kube::Client, NodeError> {
        self.client_at(&self.endpoint).await
    }

    fn api_err(&self, what: &str, e: kube::Error) -> NodeError {
        self.err(format!("{what} via {}: {}", self.endpoint, chain(&e)))
    }

    /// The node `name`, or `None` when the API has no such node.
    pub async fn node_state(&self, name: &str) -> Result<Option<NodeState>, NodeError> {
        let api: Api<Node> = Api::all(self.client().await?);
        let node = api
            .get_opt(name)
            .await
            .map_err(|e| self.api_err(&format!("read node {name}"), e))?;
        Ok(node.map(|n| node_state(name, &n)))
    }

    /// Every node.
    pub async fn nodes(&self) -> Result<Vec<NodeState>, NodeError> {
        let api: Api<Node> = Api::all(self.client().await?);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| self.api_err("list nodes", e))?;
        Ok(list
            .items
            .iter()
            .map(|n| node_state(n.metadata.name.as_deref().unwrap_or_default(), n))
            .collect())
    }

    /// The etcd members kubeadm runs: pods `kube-system` labelled `component=etcd`.
    pub async fn etcd_members(&self) -> Result<Vec<EtcdMember>, NodeError> {
        let api: Api<Pod> = Api::namespaced(self.client().await?, "kube-system");
        let list = api
            .list(&ListParams::default().labels("component=etcd"))
            .await
            .map_err(|e| self.api_err("list etcd pods", e))?;
        Ok(list
            .items
            .iter()
            .map(|p| {
                let name = p.metadata.name.as_deref().unwrap_or_default();
                let node = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_else(|| name.trim_start_matches("etcd-").to_string());
                let ready = p.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                EtcdMember { node, ready }
            })
            .collect())
    }

    /// The `ClusterConfiguration` text of `kube-system/kubeadm-config`, if there is one.
    pub async fn kubeadm_cluster_configuration(&self) -> Result<Option<String>, NodeError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client().await?, "kube-system");
        let cm = api
            .get_opt("kubeadm-config")
            .await
            .map_err(|e| self.api_err("read ConfigMap kube-system/kubeadm-config", e))?;
        Ok(cm.and_then(|c| c.data?.get("ClusterConfiguration").cloned()))
    }

    /// `GET /readyz` through `address` (`host:port`, declared): verified against the
    /// cluster CA with `address`'s host as the server name. Returns the SANs of the
    /// certificate presented; an error names the address and, when the certificate does not
    /// name it, the SANs it carries.
    pub async fn readyz(&self, address: &str) -> Result<Vec<String>, String> {
        let creds = self.credentials().await.map_err(|e| e.to_string())?;
        let (host, port) = split_endpoint(address)?;
        let (config, verifier) = tls_config(&creds)?;
        let connector = Connector {
            dialer: self.dialer.clone(),
            host,
            port,
            tls: Arc::new(config),
        };
        let req = http::Request::get("/readyz")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("static request");
        let resp = connector
            .send(req)
            .await
            .map_err(|e| format!("apiserver /readyz through {address}: {e}"))?;
        let status = resp.status();
        if status != http::StatusCode::OK {
            return Err(format!(
                "apiserver /readyz through {address} answered {}, want 200",
                status.as_u16()
            ));
        }
        let seen = verifier
            .seen
            .lock()
            .expect("not poisoned")
            .clone()
            .unwrap_or_default();
        Ok(connect::sans_of(&seen))
    }
}

fn node_state(name: &str, n: &Node) -> NodeState {
    let ready = n
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    NodeState {
        name: name.to_string(),
        ready: ready.is_some_and(|c| c.status == "True"),
        why: ready.map_or("no Ready condition".into(), |c| {
            format!(
                "Ready={} {} {}",
                c.status,
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default()
            )
            .trim()
            .to_string()
        }),
        heartbeat: ready.and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0.as_second())),
        control_plane: n
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(CONTROL_PLANE_LABEL)),
    }
}

/// An error with its sources, one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    use std::fmt::Write as _;
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            let _ = write!(s, ": {t}");
        }
        cur = c.source();
    }
    s
}
