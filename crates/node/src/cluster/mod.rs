//! Kubernetes API access for the node layer: a declared cluster ([`Cluster`]) reached at
//! its declared endpoints through core's dialer (the first that answers; the others are
//! fallbacks, so the API stays reachable while one server is rebuilt), authenticated with
//! the cluster-admin credentials read over SSH from the first declared control-plane host
//! that has them (`sudo -n` read of `/etc/kubernetes/admin.conf`, read once and kept in
//! memory), the typed reads the kinds and gates need (nodes, etcd members, the
//! `kubeadm-config` ConfigMap, `/readyz`) and the node operations of a rolling upgrade or a
//! rotation ([`ops`]: cordon, drain, delete a node).
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
pub mod ops;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
    endpoints: Vec<String>,
    admin_hosts: Vec<String>,
    admin_conf: String,
    nodes: BTreeMap<String, String>,
    ssh: Arc<Ssh>,
    dialer: Dialer,
    creds: OnceCell<Arc<Credentials>>,
    clients: Mutex<HashMap<String, kube::Client>>,
    /// Index into `endpoints` of the one that answered last.
    current: AtomicUsize,
    drain_retry: Duration,
    joins: Mutex<()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("endpoints", &self.endpoints)
            .field("admin_hosts", &self.admin_hosts)
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

/// An etcd member: as kubeadm runs it, the static pod `kube-system/etcd-<node>`; as k3s
/// runs it, a server node carrying k3s's etcd labels and annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    /// The node it runs on.
    pub node: String,
    /// Whether it is healthy (kubeadm: the pod is Ready; k3s: its node is Ready).
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
            endpoints: vec![endpoint.into()],
            admin_hosts: vec![admin_host.into()],
            admin_conf: ADMIN_CONF.into(),
            nodes: BTreeMap::new(),
            ssh,
            dialer,
            creds: OnceCell::new(),
            clients: Mutex::new(HashMap::new()),
            current: AtomicUsize::new(0),
            drain_retry: Duration::from_secs(1),
            joins: Mutex::new(()),
        }
    }

    /// Adds fallback API endpoints (`address:port`, declared), tried in order when the ones
    /// before them do not answer (e.g. the other servers of a k3s cluster while the first
    /// is rebuilt).
    pub fn endpoints<S: Into<String>>(mut self, more: impl IntoIterator<Item = S>) -> Self {
        for e in more {
            let e = e.into();
            if !self.endpoints.contains(&e) {
                self.endpoints.push(e);
            }
        }
        self
    }

    /// Adds fallback hosts the admin kubeconfig may be read from, tried in order when the
    /// ones before them cannot be read (the first stays where kubeadm runs cluster-wide
    /// steps).
    pub fn admin_hosts<S: Into<String>>(mut self, more: impl IntoIterator<Item = S>) -> Self {
        for h in more {
            let h = h.into();
            if !self.admin_hosts.contains(&h) {
                self.admin_hosts.push(h);
            }
        }
        self
    }

    /// How often a drain retries an eviction a PodDisruptionBudget refused (default 1 s).
    pub fn drain_retry(mut self, every: Duration) -> Self {
        self.drain_retry = every;
        self
    }

    /// How often a drain retries an eviction a PodDisruptionBudget refused.
    pub fn drain_retry_interval(&self) -> Duration {
        self.drain_retry
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

    /// The first declared API endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoints[0]
    }

    /// Every declared API endpoint, in the order they are tried.
    pub fn all_endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The first host credentials are read from, where kubeadm runs.
    pub fn admin_host(&self) -> &str {
        &self.admin_hosts[0]
    }

    /// Every host the admin kubeconfig may be read from, in order.
    pub fn all_admin_hosts(&self) -> &[String] {
        &self.admin_hosts
    }

    /// The node name of a declared host.
    pub fn node_of(&self, host: &str) -> Option<&str> {
        self.nodes.get(host).map(String::as_str)
    }

    /// The hosts declared as nodes of this cluster.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
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

    /// The admin credentials, read over SSH once (from the first admin host that has them)
    /// and kept in memory only.
    pub async fn credentials(&self) -> Result<Arc<Credentials>, NodeError> {
        self.creds
            .get_or_try_init(|| async {
                let mut errors = Vec::new();
                for host in &self.admin_hosts {
                    match self.read_credentials(host).await {
                        Ok(c) => return Ok(Arc::new(c)),
                        Err(e) => {
                            tracing::debug!(cluster = %self.name, host, error = %e, "admin kubeconfig not read");
                            errors.push(e);
                        }
                    }
                }
                // A host that failed otherwise says more than one without the file.
                let i = errors.iter().position(|e| !no_cluster_yet(e)).unwrap_or(0);
                Err(errors.swap_remove(i))
            })
            .await
            .cloned()
    }

    async fn read_credentials(&self, host: &str) -> Result<Credentials, NodeError> {
        let path = &self.admin_conf;
        let resource = format!("cluster[{}]", self.name);
        let file = files::read_files(&self.ssh, host, std::slice::from_ref(path))
            .await?
            .remove(0);
        let text = match file {
            RemoteFile::File(b) => b,
            RemoteFile::NotAFile(what) => {
                return Err(NodeError::NotAFile {
                    resource,
                    host: host.to_string(),
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
        credentials::parse(&String::from_utf8_lossy(&text)).map_err(|m| NodeError::Resource {
            resource,
            message: format!("{path} on host {host}: {m}"),
        })
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

    /// A client for the endpoint that answered last (the first declared one at the start).
    pub async fn client(&self) -> Result<kube::Client, NodeError> {
        let i = self.current.load(Ordering::Relaxed) % self.endpoints.len();
        self.client_at(&self.endpoints[i]).await
    }

    /// Runs `request` against the endpoint that answered last, then each other endpoint in
    /// declared order while the failure is the transport's (no connection, no TLS); an
    /// answer from an apiserver, even an error status, ends the attempt. `what` names the
    /// request in the error, with the endpoint(s) tried.
    pub async fn call<T, F, Fut>(&self, what: &str, request: F) -> Result<T, NodeError>
    where
        F: Fn(kube::Client) -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        self.call_raw(request)
            .await?
            .map_err(|(at, e)| self.api_err(what, &at, &e))
    }

    /// [`Cluster::call`], keeping the apiserver's error (with the endpoint that gave it) for
    /// the caller to inspect; the outer error is a failure to build a client (credentials).
    pub(crate) async fn call_raw<T, F, Fut>(
        &self,
        request: F,
    ) -> Result<Result<T, (String, kube::Error)>, NodeError>
    where
        F: Fn(kube::Client) -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed) % n;
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            let at = &self.endpoints[i];
            let client = self.client_at(at).await?;
            match request(client).await {
                Err(e) if is_transport(&e) => {
                    tracing::debug!(cluster = %self.name, endpoint = %at, error = %chain(&e), "endpoint did not answer");
                    last = Some((at.clone(), e));
                }
                r => {
                    if i != start {
                        self.current.store(i, Ordering::Relaxed);
                    }
                    return Ok(r.map_err(|e| (at.clone(), e)));
                }
            }
        }
        Ok(Err(last.expect("at least one endpoint")))
    }

    fn api_err(&self, what: &str, at: &str, e: &kube::Error) -> NodeError {
        let via = if self.endpoints.len() > 1 && is_transport(e) {
            format!(
                "{} (no declared endpoint answered)",
                self.endpoints.join(", ")
            )
        } else {
            at.to_string()
        };
        self.err(format!("{what} via {via}: {}", chain(e)))
    }

    /// The node `name`, or `None` when the API has no such node.
    pub async fn node_state(&self, name: &str) -> Result<Option<NodeState>, NodeError> {
        let node = self
            .call(&format!("read node {name}"), |c| async move {
                Api::<Node>::all(c).get_opt(name).await
            })
            .await?;
        Ok(node.map(|n| node_state(name, &n)))
    }

    /// Every node as the API returns it.
    pub async fn node_objects(&self) -> Result<Vec<Node>, NodeError> {
        let list = self
            .call("list nodes", |c| async move {
                Api::<Node>::all(c).list(&ListParams::default()).await
            })
            .await?;
        Ok(list.items)
    }

    /// Every node.
    pub async fn nodes(&self) -> Result<Vec<NodeState>, NodeError> {
        Ok(self
            .node_objects()
            .await?
            .iter()
            .map(|n| node_state(n.metadata.name.as_deref().unwrap_or_default(), n))
            .collect())
    }

    /// The etcd members: for a k3s cluster (one whose nodes carry k3s's etcd member
    /// annotation), its nodes labelled `node-role.kubernetes.io/etcd=true` with the
    /// `etcd.k3s.cattle.io/node-name` annotation, healthy when the node is Ready; otherwise
    /// the static pods kubeadm runs (`kube-system` pods labelled `component=etcd`).
    pub async fn etcd_members(&self) -> Result<Vec<EtcdMember>, NodeError> {
        let nodes = self.node_objects().await?;
        if let Some(members) = ops::k3s_etcd_members(&nodes) {
            return Ok(members);
        }
        let list = self
            .call("list etcd pods", |c| async move {
                Api::<Pod>::namespaced(c, "kube-system")
                    .list(&ListParams::default().labels("component=etcd"))
                    .await
            })
            .await?;
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
        let cm = self
            .call(
                "read ConfigMap kube-system/kubeadm-config",
                |c| async move {
                    Api::<ConfigMap>::namespaced(c, "kube-system")
                        .get_opt("kubeadm-config")
                        .await
                },
            )
            .await?;
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

/// Whether `e` says that no declared admin host holds the admin kubeconfig (the error
/// [`Cluster::credentials`] gives then): the cluster has not been created yet.
pub(crate) fn no_cluster_yet(e: &NodeError) -> bool {
    matches!(e, NodeError::Resource { resource, message }
        if resource.starts_with("cluster[") && message.contains(" does not exist on host "))
}

/// Whether a client error is the transport's (no apiserver answered), so another endpoint
/// may be tried.
fn is_transport(e: &kube::Error) -> bool {
    matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_))
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

#[cfg(test)]
mod tests {
    use super::fake::Fake;
    use super::*;
    use crate::ssh::SshOptions;

    #[tokio::test]
    async fn the_api_stays_reachable_through_a_fallback_endpoint_while_the_first_is_down() {
        let fake = Fake::start("127.0.25.101", &["10.0.25.101"]).await;
        fake.world
            .lock()
            .unwrap()
            .nodes
            .insert("k3s-cp2".into(), (true, true));
        // Nothing listens on the first endpoint (the server being rebuilt).
        let dead = std::net::TcpListener::bind("127.0.25.100:0").unwrap();
        let dead_port = dead.local_addr().unwrap().port();
        drop(dead);
        let dialer = Dialer::new("10.0.0.0/8=127.0.0.0/8".parse().unwrap(), true);
        let ssh =
            Arc::new(Ssh::new(SshOptions::new("/nonexistent"), dialer.clone(), vec![]).unwrap());
        let cluster = Cluster::new(
            "hetzner-k3s",
            format!("10.0.25.100:{dead_port}"),
            "k3s-mgr",
            ssh,
            dialer,
        )
        .endpoints([format!("10.0.25.101:{}", fake.port)])
        .admin_hosts(["k3s-cp2"])
        .with_credentials(fake.credentials());
        assert_eq!(cluster.all_admin_hosts(), ["k3s-mgr", "k3s-cp2"]);
        let nodes = cluster.nodes().await.unwrap();
        assert_eq!(nodes.len(), 1);
        // The endpoint that answered is kept: the next call goes straight there.
        cluster.nodes().await.unwrap();
        assert_eq!(fake.world.lock().unwrap().requests.len(), 2);
        let alone = Cluster::new(
            "hetzner-k3s",
            format!("10.0.25.100:{dead_port}"),
            "k3s-mgr",
            cluster.ssh.clone(),
            cluster.dialer.clone(),
        )
        .with_credentials(fake.credentials());
        let e = alone.nodes().await.unwrap_err().to_string();
        assert!(e.contains(&format!("10.0.25.100:{dead_port}")), "{e}");
    }
}
