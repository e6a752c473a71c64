//! `node_k3s_server`: k3s running as a server on a host — the first server of a cluster
//! (`cluster_init`, embedded etcd) or one joining it (`server: https://<first>:6443`) — with
//! its pinned version, managed flags and join token (sensitive). Observed, installed and
//! changed as [`super::k3s`] describes; the host's node is found in the cluster the host is
//! declared in (`Cluster::node`).

use std::net::Ipv4Addr;

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, Op, Query};
use cairn_core::{Field, FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::k3s::{self, Flags, Have, INSTALL_SCRIPT, Installed, K3sStep, Role, Secret, Want};
use crate::NodeContext;
use crate::error::NodeError;

/// k3s as a server on `host`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct K3sServer {
    /// The host's declared name.
    pub host: String,
    /// The k3s release, e.g. `v1.34.4+k3s1` (`INSTALL_K3S_VERSION`).
    pub version: String,
    /// `--cluster-init`: the first server, with embedded etcd.
    #[serde(default)]
    pub cluster_init: bool,
    /// `--server`: the server to join, `https://<first server>:6443` (none on the first).
    #[serde(default)]
    pub server: Option<String>,
    /// `--flannel-iface`, e.g. the private interface `enp7s0`.
    #[serde(default)]
    pub flannel_iface: Option<String>,
    /// `--node-taint` values, `key[=value]:Effect`.
    #[serde(default)]
    pub node_taints: Vec<String>,
    /// `--tls-san` values (extra names and addresses in the serving certificate).
    #[serde(default)]
    pub tls_sans: Vec<String>,
    /// `--node-ip`, e.g. a reference to the Hetzner server's private IP.
    #[serde(default)]
    pub node_ip: Option<Field<Ipv4Addr>>,
    /// The cluster's join token (sensitive: never in output, on the host only in the
    /// install script's 0600 environment file).
    pub token: Secret,
    /// Where k3s's install script is on the host.
    #[serde(default = "default_script")]
    pub install_script: String,
}

fn default_script() -> String {
    INSTALL_SCRIPT.to_string()
}

impl K3sServer {
    /// A server on `host` running `version`, joining with `token`, no flags.
    pub fn new(
        host: impl Into<String>,
        version: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        K3sServer {
            host: host.into(),
            version: version.into(),
            cluster_init: false,
            server: None,
            flannel_iface: None,
            node_taints: Vec::new(),
            tls_sans: Vec::new(),
            node_ip: None,
            token: Secret(token.into()),
            install_script: default_script(),
        }
    }

    fn flags(&self) -> Flags {
        Flags {
            command: "server".into(),
            cluster_init: self.cluster_init,
            server: self.server.clone(),
            token: Some(self.token.clone()),
            flannel_iface: self.flannel_iface.clone(),
            node_taints: self.node_taints.clone(),
            tls_sans: self.tls_sans.clone(),
            node_ip: self.node_ip.as_ref().and_then(|f| f.known().copied()),
            from_config: Vec::new(),
        }
    }
}

impl Resource for K3sServer {
    const KIND: &'static str = "node_k3s_server";
    const PROVIDER: &'static str = "node";

    fn key(&self) -> String {
        self.host.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["host"],
            computed: &[
                "install_script",
                "ready",
                "set_in_config_yaml",
                "joined_through",
            ],
            sensitive: &["token"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = k3s::validate_common(&self.host, &self.version, &self.token);
        if self.cluster_init && self.server.is_some() {
            e.push(FieldError::new(
                "server",
                "a server with cluster_init starts the cluster; it joins no other server",
            ));
        }
        if let Some(s) = &self.server
            && !s.starts_with("https://")
        {
            e.push(FieldError::new("server", "must be an https:// URL"));
        }
        e.extend(k3s::validate_words(&[
            ("flannel_iface", self.flannel_iface.iter().collect()),
            ("node_taints", self.node_taints.iter().collect()),
            ("tls_sans", self.tls_sans.iter().collect()),
        ]));
        e
    }
}

/// A server as found: the spec's fields as the host runs them, plus its node's readiness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct K3sServerObserved {
    /// The host.
    pub host: String,
    /// The installed version (empty when the binary is missing).
    pub version: String,
    /// `--cluster-init`.
    pub cluster_init: bool,
    /// `--server`.
    pub server: Option<String>,
    /// `--flannel-iface`.
    pub flannel_iface: Option<String>,
    /// `--node-taint`.
    pub node_taints: Vec<String>,
    /// `--tls-san`.
    pub tls_sans: Vec<String>,
    /// `--node-ip`.
    pub node_ip: Option<Ipv4Addr>,
    /// The token it runs with.
    pub token: Secret,
    /// Not observable; the declared path is used.
    pub install_script: String,
    /// Whether its node is Ready (None: not in a declared cluster, or the API did not answer).
    pub ready: Option<bool>,
    /// Set while the unit is not running, saying its state (not a spec field: while present
    /// the plan shows it going away, by starting the unit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_running: Option<String>,
    /// Managed flags that `/etc/rancher/k3s/config.yaml` sets (not diffed; a change to one
    /// is refused at plan time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_in_config_yaml: Vec<String>,
    /// The `--server` a `cluster_init` server runs with: the member it joined through when
    /// it was rebuilt while the cluster had members elsewhere (computed, not compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_through: Option<String>,
}

fn observed(host: &str, i: &Installed, ready: Option<bool>) -> K3sServerObserved {
    let f = &i.flags;
    K3sServerObserved {
        host: host.into(),
        version: i.version.clone().unwrap_or_default(),
        cluster_init: f.cluster_init,
        server: f.server.clone().filter(|_| !f.cluster_init),
        flannel_iface: f.flannel_iface.clone(),
        node_taints: f.node_taints.clone(),
        tls_sans: f.tls_sans.clone(),
        node_ip: f.node_ip,
        token: f.token.clone().unwrap_or_default(),
        install_script: INSTALL_SCRIPT.into(),
        ready,
        not_running: (i.state != "active").then(|| format!("k3s.service is {}", i.state)),
        set_in_config_yaml: f.from_config.clone(),
        joined_through: f.server.clone().filter(|_| f.cluster_init),
    }
}

fn resource(key: &str) -> String {
    format!("{}[{key}]", K3sServer::KIND)
}

/// The kind as registered with the provider kit.
#[derive(Debug, Clone, Copy, Default)]
pub struct K3sServers;

#[async_trait]
impl Kind<NodeContext> for K3sServers {
    type Spec = K3sServer;
    type Observed = K3sServerObserved;
    type Step = K3sStep;

    async fn observe(
        &self,
        ctx: &NodeContext,
        q: Query<'_>,
    ) -> Result<Vec<Found<K3sServerObserved>>, NodeError> {
        k3s::found(ctx, q.keys, Role::Server, observed).await
    }

    fn steps(
        &self,
        ctx: &NodeContext,
        before: Option<&K3sServerObserved>,
        after: Option<&K3sServer>,
    ) -> Vec<K3sStep> {
        k3s::plan(
            ctx,
            before.map_or_else(|| after.map_or("", |a| &a.host), |b| &b.host),
            Role::Server,
            before.map(|b| Have {
                version: &b.version,
                flags: observed_flags(b),
                not_running: b.not_running.is_some(),
                in_config: &b.set_in_config_yaml,
            }),
            after.map(|a| Want {
                version: &a.version,
                flags: a.flags(),
                script: &a.install_script,
                url: None,
            }),
        )
    }

    async fn create(
        &self,
        ctx: &NodeContext,
        spec: &K3sServer,
        op: Op<'_, K3sStep>,
    ) -> Result<K3sServerObserved, NodeError> {
        k3s::execute(
            ctx,
            &resource(op.key),
            &spec.host,
            &spec.token,
            &op.steps,
            op.marker,
        )
        .await?;
        Ok(after(spec))
    }

    /// The same steps as a create: the install script converges whatever is there.
    async fn update(
        &self,
        ctx: &NodeContext,
        _: &K3sServerObserved,
        spec: &K3sServer,
        op: Op<'_, K3sStep>,
    ) -> Result<K3sServerObserved, NodeError> {
        self.create(ctx, spec, op).await
    }

    /// Leaves the cluster cleanly (cordon, drain, stop, delete the Node, wait until its etcd
    /// member is gone), then runs k3s's uninstall script if the host has one.
    async fn delete(
        &self,
        ctx: &NodeContext,
        prior: &K3sServerObserved,
        op: Op<'_, K3sStep>,
    ) -> Result<(), NodeError> {
        k3s::run_steps(ctx, &resource(op.key), &prior.host, &prior.token, &op.steps).await
    }

    /// An adopted installation no longer declared: cairn's marker goes, k3s stays.
    async fn release(
        &self,
        ctx: &NodeContext,
        prior: &K3sServerObserved,
        _: Op<'_, K3sStep>,
    ) -> Option<Result<(), NodeError>> {
        Some(k3s::release(ctx, &prior.host).await)
    }

    fn example() -> K3sServer {
        let mut s = K3sServer::new("k3s-mgr", "v1.34.4+k3s1", "example-token");
        s.cluster_init = true;
        s.flannel_iface = Some("enp7s0".into());
        s
    }

    fn example_observed() -> Option<K3sServerObserved> {
        Some(K3sServerObserved {
            host: "k3s-mgr".into(),
            version: "v1.34.4+k3s1".into(),
            cluster_init: true,
            server: None,
            flannel_iface: Some("enp7s0".into()),
            node_taints: Vec::new(),
            tls_sans: Vec::new(),
            node_ip: None,
            token: Secret("example-token".into()),
            install_script: INSTALL_SCRIPT.into(),
            ready: Some(true),
            not_running: None,
            set_in_config_yaml: vec!["tls_sans".into()],
            joined_through: Some("https://10.0.1.8:6443".into()),
        })
    }
}

fn observed_flags(b: &K3sServerObserved) -> Flags {
    Flags {
        command: "server".into(),
        cluster_init: b.cluster_init,
        server: b.server.clone(),
        token: Some(b.token.clone()),
        flannel_iface: b.flannel_iface.clone(),
        node_taints: b.node_taints.clone(),
        tls_sans: b.tls_sans.clone(),
        node_ip: b.node_ip,
        from_config: Vec::new(),
    }
}

fn after(spec: &K3sServer) -> K3sServerObserved {
    let f = spec.flags();
    K3sServerObserved {
        host: spec.host.clone(),
        version: spec.version.clone(),
        cluster_init: f.cluster_init,
        server: f.server,
        flannel_iface: f.flannel_iface,
        node_taints: f.node_taints,
        tls_sans: f.tls_sans,
        node_ip: f.node_ip,
        token: spec.token.clone(),
        install_script: spec.install_script.clone(),
        ready: Some(true),
        not_running: None,
        set_in_config_yaml: Vec::new(),
        joined_through: None,
    }
}
