//! `node_k3s_agent`: k3s running as an agent on a host, joined to its cluster through
//! `K3S_URL` with the join token (sensitive), with its pinned version and managed flags.
//! Observed, installed and changed as [`super::k3s`] describes.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, Op, Query};
use cairn_core::{Field, FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::k3s::{self, Flags, Have, INSTALL_SCRIPT, Installed, K3sStep, Role, Secret, Want};
use crate::NodeContext;
use crate::error::NodeError;

/// k3s as an agent on `host`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct K3sAgent {
    /// The host's declared name.
    pub host: String,
    /// The k3s release, e.g. `v1.34.4+k3s1` (`INSTALL_K3S_VERSION`).
    pub version: String,
    /// `K3S_URL`: the server it joins, `https://<server>:6443`.
    pub server: String,
    /// `--flannel-iface`, e.g. the private interface `enp7s0`.
    #[serde(default)]
    pub flannel_iface: Option<String>,
    /// `--node-taint` values, `key[=value]:Effect`.
    #[serde(default)]
    pub node_taints: Vec<String>,
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

impl K3sAgent {
    /// An agent on `host` running `version`, joining `server` with `token`, no flags.
    pub fn new(
        host: impl Into<String>,
        version: impl Into<String>,
        server: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        K3sAgent {
            host: host.into(),
            version: version.into(),
            server: server.into(),
            flannel_iface: None,
            node_taints: Vec::new(),
            node_ip: None,
            token: Secret(token.into()),
            install_script: default_script(),
        }
    }

    fn flags(&self) -> Flags {
        Flags {
            command: "agent".into(),
            cluster_init: false,
            server: Some(self.server.clone()),
            token: Some(self.token.clone()),
            flannel_iface: self.flannel_iface.clone(),
            node_taints: self.node_taints.clone(),
            tls_sans: Vec::new(),
            node_ip: self.node_ip.as_ref().and_then(|f| f.known().copied()),
            from_config: Vec::new(),
        }
    }
}

impl Resource for K3sAgent {
    const KIND: &'static str = "node_k3s_agent";
    const PROVIDER: &'static str = "node";

    fn key(&self) -> String {
        self.host.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["host"],
            computed: &["install_script", "ready", "set_in_config_yaml"],
            sensitive: &["token"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = k3s::validate_common(&self.host, &self.version, &self.token);
        if !self.server.starts_with("https://") {
            e.push(FieldError::new(
                "server",
                "must be an https:// URL (k3s's install script refuses others)",
            ));
        }
        e.extend(k3s::validate_words(&[
            ("flannel_iface", self.flannel_iface.iter().collect()),
            ("node_taints", self.node_taints.iter().collect()),
        ]));
        e
    }
}

/// An agent as found: the spec's fields as the host runs them, plus its node's readiness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct K3sAgentObserved {
    /// The host.
    pub host: String,
    /// The installed version (empty when the binary is missing).
    pub version: String,
    /// `K3S_URL`.
    pub server: String,
    /// `--flannel-iface`.
    pub flannel_iface: Option<String>,
    /// `--node-taint`.
    pub node_taints: Vec<String>,
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
}

fn observed(host: &str, i: &Installed, ready: Option<bool>) -> K3sAgentObserved {
    let f = &i.flags;
    K3sAgentObserved {
        host: host.into(),
        version: i.version.clone().unwrap_or_default(),
        server: f.server.clone().unwrap_or_default(),
        flannel_iface: f.flannel_iface.clone(),
        node_taints: f.node_taints.clone(),
        node_ip: f.node_ip,
        token: f.token.clone().unwrap_or_default(),
        install_script: INSTALL_SCRIPT.into(),
        ready,
        not_running: (i.state != "active").then(|| format!("k3s-agent.service is {}", i.state)),
        set_in_config_yaml: f.from_config.clone(),
    }
}

fn observed_flags(b: &K3sAgentObserved) -> Flags {
    Flags {
        command: "agent".into(),
        cluster_init: false,
        server: Some(b.server.clone()),
        token: Some(b.token.clone()),
        flannel_iface: b.flannel_iface.clone(),
        node_taints: b.node_taints.clone(),
        tls_sans: Vec::new(),
        node_ip: b.node_ip,
        from_config: Vec::new(),
    }
}

fn after(spec: &K3sAgent) -> K3sAgentObserved {
    let f = spec.flags();
    K3sAgentObserved {
        host: spec.host.clone(),
        version: spec.version.clone(),
        server: spec.server.clone(),
        flannel_iface: f.flannel_iface,
        node_taints: f.node_taints,
        node_ip: f.node_ip,
        token: spec.token.clone(),
        install_script: spec.install_script.clone(),
        ready: Some(true),
        not_running: None,
        set_in_config_yaml: Vec::new(),
    }
}

fn resource(key: &str) -> String {
    format!("{}[{key}]", K3sAgent::KIND)
}

/// The kind as registered with the provider kit.
#[derive(Debug, Clone, Copy, Default)]
pub struct K3sAgents;

#[async_trait]
impl Kind<NodeContext> for K3sAgents {
    type Spec = K3sAgent;
    type Observed = K3sAgentObserved;
    type Step = K3sStep;

    async fn observe(
        &self,
        ctx: &NodeContext,
        q: Query<'_>,
    ) -> Result<Vec<Found<K3sAgentObserved>>, NodeError> {
        k3s::found(ctx, q.keys, Role::Agent, observed).await
    }

    fn steps(
        &self,
        ctx: &NodeContext,
        before: Option<&K3sAgentObserved>,
        after: Option<&K3sAgent>,
    ) -> Vec<K3sStep> {
        k3s::plan(
            ctx,
            before.map_or_else(|| after.map_or("", |a| &a.host), |b| &b.host),
            Role::Agent,
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
                url: Some(a.server.clone()),
            }),
        )
    }

    async fn create(
        &self,
        ctx: &NodeContext,
        spec: &K3sAgent,
        op: Op<'_, K3sStep>,
    ) -> Result<K3sAgentObserved, NodeError> {
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
        _: &K3sAgentObserved,
        spec: &K3sAgent,
        op: Op<'_, K3sStep>,
    ) -> Result<K3sAgentObserved, NodeError> {
        self.create(ctx, spec, op).await
    }

    /// Leaves the cluster cleanly (cordon, drain, stop, delete the Node), then runs k3s's
    /// uninstall script if the host has one.
    async fn delete(
        &self,
        ctx: &NodeContext,
        prior: &K3sAgentObserved,
        op: Op<'_, K3sStep>,
    ) -> Result<(), NodeError> {
        k3s::run_steps(ctx, &resource(op.key), &prior.host, &prior.token, &op.steps).await
    }

    /// An adopted installation no longer declared: cairn's marker goes, k3s stays.
    async fn release(
        &self,
        ctx: &NodeContext,
        prior: &K3sAgentObserved,
        _: Op<'_, K3sStep>,
    ) -> Option<Result<(), NodeError>> {
        Some(k3s::release(ctx, &prior.host).await)
    }

    fn example() -> K3sAgent {
        let mut a = K3sAgent::new(
            "k3s-w1",
            "v1.34.4+k3s1",
            "https://10.0.1.5:6443",
            "example-token",
        );
        a.flannel_iface = Some("enp7s0".into());
        a
    }

    fn example_observed() -> Option<K3sAgentObserved> {
        Some(K3sAgentObserved {
            host: "k3s-w1".into(),
            version: "v1.34.4+k3s1".into(),
            server: "https://10.0.1.5:6443".into(),
            flannel_iface: Some("enp7s0".into()),
            node_taints: Vec::new(),
            node_ip: None,
            token: Secret("example-token".into()),
            install_script: INSTALL_SCRIPT.into(),
            ready: Some(true),
            not_running: None,
            set_in_config_yaml: vec!["flannel_iface".into()],
        })
    }
}
