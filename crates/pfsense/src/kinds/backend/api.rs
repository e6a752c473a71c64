//! The backend's API side: the objects as the REST API sends them, the write bodies, lookup
//! of a pool by name, the listing of every pool with the running HAProxy's drain/maint
//! shown on its servers, and the pool's own writes (servers are written by the rollout).

use std::net::Ipv4Addr;

use cairn_core::kit::Found;
use cairn_core::{Marker, Resource};
use serde::{Deserialize, Serialize};

use super::{HaproxyBackend, HaproxyBackendObserved, active, none, options};
use crate::client::Subsystem;
use crate::context::{PfCtx, PfError};
use crate::kinds::values::{Balance, CheckType, HttpMethod, LiveStatus, ServerStatus};
use crate::kinds::{
    MEMBERS_COMMENT, marker_comment, owned_members, split_marker_comment, with_owned_members,
};
use crate::rollout::runtime::{Runtime, backend_name};
use crate::rollout::{PoolServer, ServerObserved};
use crate::wire::{self, Indexed, WithId};

const PLURAL: &str = "/services/haproxy/backends";
const SINGULAR: &str = "/services/haproxy/backend";

/// `/services/haproxy/backend` as the API sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiBackend {
    #[serde(default, deserialize_with = "wire::opt_num")]
    id: Option<usize>,
    name: String,
    #[serde(default = "balance_default")]
    balance: Balance,
    #[serde(default = "none")]
    check_type: CheckType,
    #[serde(default, deserialize_with = "wire::opt_num")]
    checkinter: Option<u32>,
    #[serde(default = "options")]
    httpcheck_method: HttpMethod,
    #[serde(default)]
    monitor_uri: String,
    #[serde(default, deserialize_with = "wire::opt_num")]
    connection_timeout: Option<u32>,
    #[serde(default, deserialize_with = "wire::opt_num")]
    server_timeout: Option<u32>,
    #[serde(default, deserialize_with = "wire::opt_num")]
    retries: Option<u32>,
    #[serde(default)]
    advanced: String,
    #[serde(default)]
    advanced_backend: String,
    #[serde(default)]
    servers: Vec<ApiServer>,
}

fn balance_default() -> Balance {
    Balance::Default
}

/// `/services/haproxy/backend/server` as the API sends it.
#[derive(Debug, Deserialize)]
struct ApiServer {
    name: String,
    #[serde(default)]
    address: String,
    #[serde(default, deserialize_with = "wire::opt_num")]
    port: Option<u16>,
    #[serde(default, deserialize_with = "wire::opt_num")]
    weight: Option<u32>,
    #[serde(default, deserialize_with = "wire::flag")]
    ssl: bool,
    #[serde(default = "active")]
    status: ServerStatus,
}

impl Indexed for ApiBackend {
    fn id(&self) -> Option<usize> {
        self.id
    }
    fn key(&self) -> String {
        self.name.clone()
    }
}

impl ApiBackend {
    /// The stored `advanced_backend` (marker and members comments included).
    pub(crate) fn advanced_backend(&self) -> &str {
        &self.advanced_backend
    }

    /// The index of a server by name.
    pub(crate) fn server_index(&self, server: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name == server)
    }

    /// Whether its servers are managed as pool members.
    fn members_mode(&self) -> bool {
        self.advanced_backend
            .lines()
            .any(|l| l.trim() == MEMBERS_COMMENT)
    }

    fn observed(&self) -> HaproxyBackendObserved {
        HaproxyBackendObserved {
            name: self.name.clone(),
            balance: self.balance,
            check_type: self.check_type,
            checkinter: self.checkinter,
            httpcheck_method: self.httpcheck_method,
            monitor_uri: self.monitor_uri.clone(),
            connection_timeout: self.connection_timeout,
            server_timeout: self.server_timeout,
            retries: self.retries,
            advanced: self.advanced.clone(),
            servers: self
                .servers
                .iter()
                .map(|s| ServerObserved {
                    name: s.name.clone(),
                    address: s.address.clone(),
                    port: s.port,
                    weight: s.weight,
                    ssl: s.ssl,
                    status: s.status.into(),
                })
                .collect(),
        }
    }

    /// The body that would write it as it is, with `advanced_backend` as stored.
    fn body(&self) -> BackendBody<'_> {
        BackendBody {
            name: &self.name,
            balance: self.balance,
            check_type: self.check_type,
            checkinter: self.checkinter,
            httpcheck_method: self.httpcheck_method,
            monitor_uri: &self.monitor_uri,
            connection_timeout: self.connection_timeout,
            server_timeout: self.server_timeout,
            retries: self.retries,
            advanced: &self.advanced,
            advanced_backend: self.advanced_backend.clone(),
        }
    }
}

/// The body of a backend write (servers are written one by one).
#[derive(Debug, PartialEq, Serialize)]
struct BackendBody<'a> {
    name: &'a str,
    balance: Balance,
    check_type: CheckType,
    checkinter: Option<u32>,
    httpcheck_method: HttpMethod,
    monitor_uri: &'a str,
    connection_timeout: Option<u32>,
    server_timeout: Option<u32>,
    retries: Option<u32>,
    advanced: &'a str,
    advanced_backend: String,
}

impl HaproxyBackend {
    /// The body for this spec: the stored `advanced_backend` lines kept, the marker comment
    /// (and the members comment with `servers: None`) written.
    fn body(&self, marker: &Marker, stored: Option<&ApiBackend>) -> BackendBody<'_> {
        let rest = stored
            .map(|b| split_marker_comment(&b.advanced_backend).0)
            .unwrap_or_default();
        let mut comment = marker_comment(marker);
        if self.servers.is_none() {
            comment = format!("{comment}\n{MEMBERS_COMMENT}");
            // The members cairn owns are the members' business: keep their list.
            let owned = stored
                .map(|b| owned_members(&b.advanced_backend))
                .unwrap_or_default();
            comment = with_owned_members(&comment, &owned);
        }
        BackendBody {
            name: &self.name,
            balance: self.balance,
            check_type: self.check_type,
            checkinter: self.checkinter,
            httpcheck_method: self.httpcheck_method,
            monitor_uri: &self.monitor_uri,
            connection_timeout: Some(self.connection_timeout),
            server_timeout: Some(self.server_timeout),
            retries: self.retries,
            advanced: &self.advanced,
            advanced_backend: if rest.is_empty() {
                comment
            } else {
                format!("{rest}\n{comment}")
            },
        }
    }
}

/// A server write: the fields, the status to write, and the ids a nested write needs.
#[derive(Debug, Serialize)]
pub(crate) struct ServerBody<'a> {
    name: &'a str,
    address: Ipv4Addr,
    port: String,
    weight: u32,
    ssl: bool,
    status: ServerStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<usize>,
}

impl<'a> ServerBody<'a> {
    /// The body for `server` with `status` (its address must be known by now).
    pub(crate) fn new(
        server: &'a PoolServer,
        status: ServerStatus,
        parent_id: Option<usize>,
        id: Option<usize>,
    ) -> Result<Self, PfError> {
        let address = *server.address.known().ok_or_else(|| {
            PfError::failed(format!(
                "the address of server {} is still unknown",
                server.name
            ))
        })?;
        Ok(ServerBody {
            name: &server.name,
            address,
            port: server.port.to_string(),
            weight: server.weight,
            ssl: server.ssl,
            status,
            parent_id,
            id,
        })
    }
}

/// The error for a pool that is not there.
pub(crate) fn pool_not_found(pool: &str) -> PfError {
    PfError::failed(format!(
        "pool {pool} not found: create its {} first (reference it with `pool.name()` so the member waits for it)",
        HaproxyBackend::KIND
    ))
}

/// The pool named `pool` with its id.
pub(crate) async fn find_pool(
    ctx: &PfCtx,
    pool: &str,
) -> Result<Option<(usize, ApiBackend)>, PfError> {
    let filter = [("name", pool.to_string())];
    Ok(wire::find(&ctx.client, PLURAL, &filter, pool).await?)
}

/// One observed pool.
pub(crate) struct Pool {
    /// The backend, observed.
    pub found: Found<HaproxyBackendObserved>,
    /// Whether its servers are managed as pool members.
    pub members_mode: bool,
    /// The servers cairn owns as members (see [`crate::kinds::OWNED_MEMBERS_PREFIX`]).
    pub owned_members: Vec<String>,
}

/// Every pool (one list call), with the runtime's drain/maint shown on servers that are
/// active in the config; remembers which pools are health-checked.
pub(crate) async fn list_pools(ctx: &PfCtx) -> Result<Vec<Pool>, PfError> {
    let items = ctx.client.list(PLURAL, &[]).await?;
    let mut pools: Vec<Pool> = wire::decode_all::<ApiBackend>(PLURAL, items)
        .into_iter()
        .map(|b| {
            ctx.learn_observed_pool(&b.name, b.check_type.checks());
            Pool {
                members_mode: b.members_mode(),
                owned_members: owned_members(&b.advanced_backend),
                found: Found::new(
                    b.name.clone(),
                    b.observed(),
                    split_marker_comment(&b.advanced_backend).1,
                ),
            }
        })
        .collect();
    overlay_runtime_state(ctx, &mut pools).await;
    Ok(pools)
}

/// A server active in the config but drained or in maintenance in the running HAProxy
/// (e.g. an apply interrupted between its steps) does not take traffic: its status is
/// reported as `drain`/`maint` so the diff shows it and an update restores it.
async fn overlay_runtime_state(ctx: &PfCtx, pools: &mut [Pool]) {
    let serving = |s: &ServerObserved| s.status.serving();
    if !pools
        .iter()
        .any(|p| p.found.value.servers.iter().any(serving))
    {
        return;
    }
    let states = match Runtime::new(&ctx.client, &ctx.opts).servers_state().await {
        Ok(states) => states,
        Err(e) => {
            tracing::debug!("runtime state not readable, observing configuration only: {e}");
            return;
        }
    };
    for p in pools.iter_mut() {
        let be = backend_name(&p.found.key);
        for server in p.found.value.servers.iter_mut().filter(|s| serving(s)) {
            if let Some(st) = states
                .iter()
                .find(|s| s.backend == be && s.server == server.name)
            {
                if st.admin_state & 0x01 != 0 {
                    server.status = LiveStatus::Maint;
                } else if st.admin_state & 0x08 != 0 {
                    server.status = LiveStatus::Drain;
                }
            }
        }
    }
}

/// Creates the pool, or patches it when its stored fields (or comments) differ from the
/// spec's; applies after a write.
pub(super) async fn write_pool(
    ctx: &PfCtx,
    spec: &HaproxyBackend,
    marker: &Marker,
) -> Result<(), PfError> {
    let stored = find_pool(ctx, &spec.name).await?;
    match stored {
        None => {
            let body = spec.body(marker, None);
            ctx.client.post(SINGULAR, &wire::body(&body)).await?;
        }
        Some((id, ref now)) => {
            let body = spec.body(marker, Some(now));
            if body == now.body() {
                return Ok(());
            }
            let b = WithId {
                id,
                parent_id: None,
                body: &body,
            };
            ctx.client.patch(SINGULAR, &wire::body(&b)).await?;
        }
    }
    ctx.client.apply(Subsystem::Haproxy).await?;
    Ok(())
}

/// Rewrites only the pool's `advanced_backend` (its comments).
pub(crate) async fn set_advanced_backend(
    ctx: &PfCtx,
    id: usize,
    advanced_backend: String,
) -> Result<(), PfError> {
    #[derive(Serialize)]
    struct Comments {
        id: usize,
        advanced_backend: String,
    }
    let body = Comments {
        id,
        advanced_backend,
    };
    ctx.client.patch(SINGULAR, &wire::body(&body)).await?;
    Ok(())
}

/// Deletes the pool (looked up by name) and applies; nothing when it is gone already.
pub(super) async fn delete_pool(ctx: &PfCtx, pool: &str) -> Result<(), PfError> {
    if let Some((id, _)) = find_pool(ctx, pool).await? {
        ctx.client
            .delete(SINGULAR, &[("id", id.to_string())])
            .await?;
        ctx.client.apply(Subsystem::Haproxy).await?;
    }
    Ok(())
}

/// The backend as observed after a write.
pub(super) async fn observed_now(
    ctx: &PfCtx,
    key: &str,
) -> Result<HaproxyBackendObserved, PfError> {
    let found = list_pools(ctx)
        .await?
        .into_iter()
        .map(|p| p.found)
        .collect();
    crate::kinds::written(found, HaproxyBackend::KIND, key)
}
