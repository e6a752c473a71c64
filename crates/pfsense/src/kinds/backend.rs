//! `pfsense_haproxy_backend`: a HAProxy backend pool (`/services/haproxy/backend`) with its
//! servers diffed as a keyed set (by `name`), keyed by the pool name — or, with
//! `servers: None`, with its servers managed one by one as
//! [`super::HaproxyPoolMember`]s.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, Op, Query};
use cairn_core::resource::KeyedList;
use cairn_core::{Field, FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::values::{Balance, CheckType, HttpMethod, ServerStatus};
use crate::context::{PfCtx, PfError};
use crate::rollout::run::Rollout;
use crate::rollout::{PoolServer, PoolStep, ServerObserved, server_steps};
use crate::runtime::{SAFE_NAME_RULE, safe_name};

mod api;

pub(crate) use api::{ServerBody, find_pool, list_pools, pool_not_found, set_advanced_backend};
use api::{delete_pool, observed_now, write_pool};

/// A HAProxy backend pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaproxyBackend {
    /// Unique pool name (the key); HAProxy sees it as `<name>_ipvANY`.
    pub name: String,
    /// `roundrobin`, `static-rr`, `leastconn`, `source`, `uri` (or empty for HAProxy's default).
    #[serde(default = "roundrobin")]
    pub balance: Balance,
    /// Health check: `none`, `Basic` (TCP connect), `HTTP`, `SSL`, …
    #[serde(default = "none")]
    pub check_type: CheckType,
    /// Check interval in milliseconds.
    #[serde(default)]
    pub checkinter: Option<u32>,
    /// HTTP check method (with `check_type: HTTP`).
    #[serde(default = "options")]
    pub httpcheck_method: HttpMethod,
    /// HTTP check URI, e.g. `/readyz`.
    #[serde(default = "slash")]
    pub monitor_uri: String,
    /// Connect timeout in milliseconds.
    #[serde(default = "thirty_s")]
    pub connection_timeout: u32,
    /// Server timeout in milliseconds.
    #[serde(default = "thirty_s")]
    pub server_timeout: u32,
    /// Connection retries.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Appended to every server line, e.g. `check-ssl verify none` for an HTTPS health
    /// check on a TCP passthrough pool.
    #[serde(default)]
    pub advanced: String,
    /// The servers, diffed by name. `None` means "managed elsewhere" (as
    /// `pfsense_haproxy_pool_member` resources): the pool's diff then ignores its servers,
    /// and a new pool is created without any. `Some(vec![])` means "no servers".
    #[serde(default)]
    pub servers: Option<Vec<BackendServer>>,
}

/// One server of a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendServer {
    /// Unique within the pool.
    pub name: String,
    /// Its address (may reference another resource's IP).
    pub address: Field<Ipv4Addr>,
    /// Its port.
    pub port: u16,
    /// Load-balancing weight.
    #[serde(default = "one")]
    pub weight: u32,
    /// TLS towards the server (not needed for TCP passthrough).
    #[serde(default)]
    pub ssl: bool,
    /// `active`, `backup`, `disabled` or `inactive`.
    #[serde(default = "active")]
    pub status: ServerStatus,
}

fn roundrobin() -> Balance {
    Balance::RoundRobin
}
fn none() -> CheckType {
    CheckType::None
}
fn options() -> HttpMethod {
    HttpMethod::Options
}
fn slash() -> String {
    "/".into()
}
fn thirty_s() -> u32 {
    30000
}
fn one() -> u32 {
    1
}
fn active() -> ServerStatus {
    ServerStatus::Active
}

impl BackendServer {
    /// An active server with weight 1.
    pub fn new(name: &str, address: impl Into<Field<Ipv4Addr>>, port: u16) -> Self {
        BackendServer {
            name: name.into(),
            address: address.into(),
            port,
            weight: 1,
            ssl: false,
            status: ServerStatus::Active,
        }
    }
}

impl HaproxyBackend {
    /// A TCP passthrough pool health-checked with HTTPS `GET <uri>` (`check-ssl verify none`),
    /// e.g. Kubernetes apiservers with `/readyz`.
    pub fn https_checked(name: &str, uri: &str, interval_ms: u32) -> Self {
        HaproxyBackend {
            name: name.into(),
            balance: Balance::RoundRobin,
            check_type: CheckType::Http,
            checkinter: Some(interval_ms),
            httpcheck_method: HttpMethod::Get,
            monitor_uri: uri.into(),
            connection_timeout: 30000,
            server_timeout: 30000,
            retries: Some(3),
            advanced: "check-ssl verify none".into(),
            servers: Some(Vec::new()),
        }
    }

    /// The same pool with these inline servers.
    pub fn with_servers(mut self, servers: Vec<BackendServer>) -> Self {
        self.servers = Some(servers);
        self
    }

    /// The same pool with its servers managed as `pfsense_haproxy_pool_member` resources
    /// (`servers: None`).
    pub fn servers_managed_as_members(mut self) -> Self {
        self.servers = None;
        self
    }

    /// Whether servers are health-checked (so additions can be gated on their check).
    pub fn has_checks(&self) -> bool {
        self.check_type.checks()
    }
}

impl Resource for HaproxyBackend {
    const KIND: &'static str = "pfsense_haproxy_backend";
    const PROVIDER: &'static str = super::PROVIDER;

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["name"],
            keyed: &[KeyedList {
                path: "servers",
                key: &["name"],
            }],
            attributes: Self::ATTRIBUTES,
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if !safe_name(&self.name) {
            errs.push(FieldError::new("name", SAFE_NAME_RULE));
        }
        if self.check_type == CheckType::Http && !self.monitor_uri.starts_with('/') {
            errs.push(FieldError::new("monitor_uri", "must start with `/`"));
        }
        if self.checkinter == Some(0) {
            errs.push(FieldError::new("checkinter", "must be at least 1 ms"));
        }
        let mut seen = BTreeSet::new();
        for (i, s) in self.servers.iter().flatten().enumerate() {
            if !safe_name(&s.name) {
                errs.push(FieldError::new(
                    format!("servers[{i}].name"),
                    SAFE_NAME_RULE,
                ));
            } else if !seen.insert(s.name.as_str()) {
                errs.push(FieldError::new(
                    format!("servers[{i}].name"),
                    format!("duplicate server name {:?} in pool {}", s.name, self.name),
                ));
            }
            if s.port == 0 {
                errs.push(FieldError::new(
                    format!("servers[{i}].port"),
                    format!("server {:?}: port must be between 1 and 65535", s.name),
                ));
            }
        }
        errs
    }
}

cairn_core::attributes! {
    /// Typed references to a declared backend pool.
    pub trait HaproxyBackendRefs for HaproxyBackend {
        /// The pool's name, e.g. for a frontend's default backend.
        fn name -> String = "name";
    }
}

impl BackendServer {
    /// The server as a rollout wants it.
    pub fn to_pool_server(&self) -> PoolServer {
        PoolServer {
            name: self.name.clone(),
            address: self.address.clone(),
            port: self.port,
            weight: self.weight,
            ssl: self.ssl,
            status: self.status,
        }
    }
}

/// A backend as observed: its fields and its servers (with runtime drain/maint shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaproxyBackendObserved {
    /// Pool name (the key).
    pub name: String,
    /// Balance algorithm.
    pub balance: Balance,
    /// Health check.
    pub check_type: CheckType,
    /// Check interval in milliseconds.
    pub checkinter: Option<u32>,
    /// HTTP check method.
    pub httpcheck_method: HttpMethod,
    /// HTTP check URI.
    pub monitor_uri: String,
    /// Connect timeout in milliseconds.
    pub connection_timeout: Option<u32>,
    /// Server timeout in milliseconds.
    pub server_timeout: Option<u32>,
    /// Connection retries.
    pub retries: Option<u32>,
    /// Appended to every server line.
    pub advanced: String,
    /// Every server of the pool (inline or members).
    pub servers: Vec<ServerObserved>,
}

/// The `pfsense_haproxy_backend` kind: the pool's own fields in one write, its inline
/// servers through the staged [`PoolStep`]s.
pub struct HaproxyBackends;

#[async_trait]
impl Kind<PfCtx> for HaproxyBackends {
    type Spec = HaproxyBackend;
    type Observed = HaproxyBackendObserved;
    type Step = PoolStep;

    async fn observe(
        &self,
        ctx: &PfCtx,
        q: Query<'_>,
    ) -> Result<Vec<Found<HaproxyBackendObserved>>, PfError> {
        let found = list_pools(ctx)
            .await?
            .into_iter()
            .map(|p| p.found)
            .collect();
        Ok(super::wanted(found, q))
    }

    fn steps(
        &self,
        _ctx: &PfCtx,
        before: Option<&HaproxyBackendObserved>,
        after: Option<&HaproxyBackend>,
    ) -> Vec<PoolStep> {
        let desired = |a: &HaproxyBackend| -> Option<Vec<PoolServer>> {
            a.servers
                .as_ref()
                .map(|s| s.iter().map(BackendServer::to_pool_server).collect())
        };
        match (before, after) {
            // Deleting the pool: its servers drain and go first.
            (Some(b), None) => server_steps(&b.servers, &[], true, None),
            (None, Some(a)) => {
                let mut steps = vec![PoolStep::CreatePool {
                    pool: a.name.clone(),
                    members: a.servers.is_none(),
                }];
                if let Some(servers) = desired(a) {
                    steps.extend(server_steps(&[], &servers, a.has_checks(), None));
                }
                steps
            }
            // Servers managed as pool members: their own changes carry the steps.
            (Some(b), Some(a)) => desired(a)
                .map(|servers| server_steps(&b.servers, &servers, a.has_checks(), None))
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }

    async fn create(
        &self,
        ctx: &PfCtx,
        spec: &HaproxyBackend,
        op: Op<'_, PoolStep>,
    ) -> Result<HaproxyBackendObserved, PfError> {
        let address = op.address.to_string();
        let rollout = Rollout::new(ctx, &spec.name, &address);
        for (i, step) in op.steps.iter().enumerate() {
            if let PoolStep::CreatePool { .. } = step {
                write_pool(ctx, spec, op.marker).await?;
                ctx.record_step(&address, &step.to_string());
            } else {
                rollout.step(step, &op.steps[i + 1..]).await?;
            }
        }
        observed_now(ctx, op.key).await
    }

    async fn update(
        &self,
        ctx: &PfCtx,
        _prior: &HaproxyBackendObserved,
        spec: &HaproxyBackend,
        op: Op<'_, PoolStep>,
    ) -> Result<HaproxyBackendObserved, PfError> {
        write_pool(ctx, spec, op.marker).await?;
        let address = op.address.to_string();
        Rollout::new(ctx, &spec.name, &address)
            .run(&op.steps)
            .await?;
        observed_now(ctx, op.key).await
    }

    async fn delete(
        &self,
        ctx: &PfCtx,
        _prior: &HaproxyBackendObserved,
        op: Op<'_, PoolStep>,
    ) -> Result<(), PfError> {
        let address = op.address.to_string();
        Rollout::new(ctx, op.key, &address).run(&op.steps).await?;
        delete_pool(ctx, op.key).await
    }

    fn example() -> HaproxyBackend {
        let mut b = HaproxyBackend::https_checked("apiserver_nodes", "/readyz", 2000);
        b.servers = Some(vec![BackendServer::new(
            "k8s-master",
            Ipv4Addr::new(10, 0, 20, 100),
            6443,
        )]);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_port_zero_duplicates_and_a_relative_monitor_uri() {
        let mut b = HaproxyBackend::https_checked("pool", "/readyz", 1000);
        b.monitor_uri = "readyz".into();
        b.servers = Some(vec![
            BackendServer::new("a", Ipv4Addr::new(10, 0, 0, 1), 0),
            BackendServer::new("a", Ipv4Addr::new(10, 0, 0, 2), 443),
        ]);
        let fields: Vec<String> = b.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["monitor_uri", "servers[0].port", "servers[1].name"]
        );
    }

    #[test]
    fn the_spec_serialises_with_the_api_spellings_as_before() {
        let pool = HaproxyBackend::https_checked("p", "/readyz", 2000).with_servers(vec![
            BackendServer::new("s", Ipv4Addr::new(10, 0, 0, 1), 443),
        ]);
        assert_eq!(
            serde_json::to_value(&pool).unwrap(),
            serde_json::json!({
                "name": "p", "balance": "roundrobin", "check_type": "HTTP", "checkinter": 2000,
                "httpcheck_method": "GET", "monitor_uri": "/readyz",
                "connection_timeout": 30000, "server_timeout": 30000, "retries": 3,
                "advanced": "check-ssl verify none",
                "servers": [{"name": "s", "address": "10.0.0.1", "port": 443, "weight": 1,
                             "ssl": false, "status": "active"}],
            })
        );
    }
}
