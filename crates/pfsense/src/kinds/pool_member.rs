//! `pfsense_haproxy_pool_member`: one server of a HAProxy backend pool as a graph node of
//! its own, keyed `<pool>/<server name>`, so a stack can add servers one at a time, each
//! behind its own readiness gate (the opt-in alternative to the backend's inline
//! `servers`). A member has no marker of its own: it belongs to whoever owns its backend.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, Op, Query};
use cairn_core::{Field, FieldError, Marker, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::backend::{self, HaproxyBackend, list_pools};
use super::values::{LiveStatus, ServerStatus};
use super::{MEMBERS_COMMENT, owned_members, split_marker_comment, with_owned_members};
use crate::client::Subsystem;
use crate::context::{PfCtx, PfError};
use crate::rollout::run::Rollout;
use crate::rollout::{PoolServer, PoolStep, ServerObserved, server_steps};
use crate::runtime::{SAFE_NAME_RULE, safe_name};

/// The highest server weight HAProxy accepts.
const MAX_WEIGHT: u32 = 256;

/// One server of a HAProxy backend pool, managed on its own.
///
/// The pool's servers must be managed elsewhere: declare the backend with
/// `servers: None` ([`super::HaproxyBackend::servers_managed_as_members`]). A pool that
/// declares inline servers and also has members is refused at plan time.
///
/// Reference the pool through its handle (`pool.name()`, [`super::HaproxyBackendRefs`])
/// so the member is created after the pool; the backend must then be added to the stack
/// under its pool name (`s.add("apiserver_nodes", HaproxyBackend { name:
/// "apiserver_nodes", … })`), because the member's key is derived from that address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaproxyPoolMember {
    /// The pool (backend) name: a reference to the backend's name, or a literal.
    pub pool: Field<String>,
    /// The server's name, unique within the pool.
    pub name: String,
    /// Its address (may reference another resource's IP).
    pub address: Field<Ipv4Addr>,
    /// Its port.
    pub port: u16,
    /// Load-balancing weight (0–256), changed in place.
    #[serde(default = "one")]
    pub weight: u32,
    /// TLS towards the server (not needed for TCP passthrough).
    #[serde(default)]
    pub ssl: bool,
    /// `active` (default) or `backup`; `disabled`/`inactive` take it out of rotation.
    /// Changed in place.
    #[serde(default = "active")]
    pub status: ServerStatus,
}

fn one() -> u32 {
    1
}
fn active() -> ServerStatus {
    ServerStatus::Active
}

impl HaproxyPoolMember {
    /// An active member with weight 1 of `pool` (`pool_handle.name()` or a literal name).
    pub fn new(
        pool: impl Into<Field<String>>,
        name: &str,
        address: impl Into<Field<Ipv4Addr>>,
        port: u16,
    ) -> Self {
        HaproxyPoolMember {
            pool: pool.into(),
            name: name.into(),
            address: address.into(),
            port,
            weight: 1,
            ssl: false,
            status: ServerStatus::Active,
        }
    }

    /// The pool name the key uses: the literal, or the name part of the referenced
    /// backend's stack address.
    pub fn pool_name(&self) -> String {
        match &self.pool {
            Field::Known(p) => p.clone(),
            Field::Ref(r) => r.raw().address.name().to_string(),
        }
    }
}

impl Resource for HaproxyPoolMember {
    const KIND: &'static str = "pfsense_haproxy_pool_member";
    const PROVIDER: &'static str = super::PROVIDER;

    fn key(&self) -> String {
        format!("{}/{}", self.pool_name(), self.name)
    }

    fn schema() -> Schema {
        Schema {
            // A new pool or name is another object (the key changes with them).
            replace: &["pool", "name"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if !safe_name(&self.name) {
            errs.push(FieldError::new("name", SAFE_NAME_RULE));
        }
        if let Field::Known(p) = &self.pool
            && !safe_name(p)
        {
            errs.push(FieldError::new("pool", SAFE_NAME_RULE));
        }
        if self.port == 0 {
            errs.push(FieldError::new(
                "port",
                format!("server {:?}: port must be between 1 and 65535", self.name),
            ));
        }
        if self.weight > MAX_WEIGHT {
            errs.push(FieldError::new(
                "weight",
                format!("must be between 0 and {MAX_WEIGHT}"),
            ));
        }
        errs
    }
}

impl HaproxyPoolMember {
    /// The server as a rollout wants it.
    fn to_pool_server(&self) -> PoolServer {
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

/// A pool member as observed: one server of a backend, with its pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaproxyPoolMemberObserved {
    /// The pool's name.
    pub pool: String,
    /// The server's name.
    pub name: String,
    /// Its address as the API reports it.
    pub address: String,
    /// Its port.
    pub port: Option<u16>,
    /// Load-balancing weight.
    pub weight: Option<u32>,
    /// TLS towards the server.
    pub ssl: bool,
    /// Its status (`drain`/`maint` when taken out of traffic at runtime).
    pub status: LiveStatus,
}

impl HaproxyPoolMemberObserved {
    fn server(&self) -> ServerObserved {
        ServerObserved {
            name: self.name.clone(),
            address: self.address.clone(),
            port: self.port,
            weight: self.weight,
            ssl: self.ssl,
            status: self.status,
        }
    }
}

/// Every server of every pool as a member (one list of backends plus the runtime state),
/// each with whether its pool's servers are managed as members. A member's marker is its
/// backend's, without a fingerprint — in a members-mode pool only for the servers cairn
/// added or adopted (the pool's owned-members list): a server added by hand owns no marker.
async fn list_members(
    ctx: &PfCtx,
) -> Result<Vec<(Found<HaproxyPoolMemberObserved>, bool)>, PfError> {
    let mut out = Vec::new();
    for pool in list_pools(ctx).await? {
        let marker = pool.found.marker.map(|m| Marker {
            fingerprint: None,
            ..m
        });
        let name = pool.found.key;
        let members_mode = pool.members_mode;
        let owned = pool.owned_members;
        for s in pool.found.value.servers {
            let marker = if members_mode && !owned.contains(&s.name) {
                None
            } else {
                marker.clone()
            };
            let value = HaproxyPoolMemberObserved {
                pool: name.clone(),
                name: s.name,
                address: s.address,
                port: s.port,
                weight: s.weight,
                ssl: s.ssl,
                status: s.status,
            };
            let found = Found {
                uses: vec![(HaproxyBackend::KIND.to_string(), name.clone())],
                ..Found::new(format!("{name}/{}", value.name), value, marker.clone())
            };
            out.push((found, members_mode));
        }
    }
    Ok(out)
}

/// The member with this key as observed now.
async fn current(ctx: &PfCtx, key: &str) -> Result<Option<HaproxyPoolMemberObserved>, PfError> {
    Ok(list_members(ctx)
        .await?
        .into_iter()
        .find(|(f, _)| f.key == key)
        .map(|(f, _)| f.value))
}

/// The `pfsense_haproxy_pool_member` kind: one server of a pool, changed through the same
/// staged [`PoolStep`]s as a backend's inline servers (only this server is touched).
pub struct HaproxyPoolMembers;

#[async_trait]
impl Kind<PfCtx> for HaproxyPoolMembers {
    type Spec = HaproxyPoolMember;
    type Observed = HaproxyPoolMemberObserved;
    type Step = PoolStep;

    /// Declared members, plus every server of a pool owned by this stack whose servers are
    /// managed as members (inline servers belong to their backend).
    async fn observe(
        &self,
        ctx: &PfCtx,
        q: Query<'_>,
    ) -> Result<Vec<Found<HaproxyPoolMemberObserved>>, PfError> {
        let ours = |f: &Found<_>| {
            f.marker
                .as_ref()
                .is_some_and(|m: &Marker| m.stack == q.stack)
        };
        Ok(list_members(ctx)
            .await?
            .into_iter()
            .filter(|(f, members_mode)| q.keys.contains(&f.key) || (*members_mode && ours(f)))
            .map(|(mut f, members_mode)| {
                // A declared member of this stack's pool that still manages its servers
                // inline is not a member yet: adopting it switches the pool over.
                if !members_mode && ours(&f) {
                    f.marker = None;
                }
                f
            })
            .collect())
    }

    /// The pool's steps for a pool holding just this server, gated when the pool is
    /// health-checked (as declared, or as observed).
    fn steps(
        &self,
        ctx: &PfCtx,
        before: Option<&HaproxyPoolMemberObserved>,
        after: Option<&HaproxyPoolMember>,
    ) -> Vec<PoolStep> {
        let pool = match (after, before) {
            (Some(a), _) => a.pool_name(),
            (None, Some(b)) => b.pool.clone(),
            (None, None) => return Vec::new(),
        };
        let before: Vec<ServerObserved> = before.map(|b| b.server()).into_iter().collect();
        let after: Vec<PoolServer> = after.map(|a| a.to_pool_server()).into_iter().collect();
        let to_pool = before.is_empty().then_some(pool.as_str());
        server_steps(&before, &after, ctx.pool_checked(&pool), to_pool)
    }

    async fn create(
        &self,
        ctx: &PfCtx,
        spec: &HaproxyPoolMember,
        op: Op<'_, PoolStep>,
    ) -> Result<HaproxyPoolMemberObserved, PfError> {
        write(ctx, spec, op).await
    }

    async fn update(
        &self,
        ctx: &PfCtx,
        _prior: &HaproxyPoolMemberObserved,
        spec: &HaproxyPoolMember,
        op: Op<'_, PoolStep>,
    ) -> Result<HaproxyPoolMemberObserved, PfError> {
        write(ctx, spec, op).await
    }

    /// Drains and deletes the server (its pool looked up by name).
    async fn delete(
        &self,
        ctx: &PfCtx,
        prior: &HaproxyPoolMemberObserved,
        op: Op<'_, PoolStep>,
    ) -> Result<(), PfError> {
        let address = op.address.to_string();
        Rollout::new(ctx, &prior.pool, &address)
            .run(&op.steps)
            .await?;
        // The server is gone: drop it from the pool's owned list (ids shift: look up again).
        if let Some((pool_id, stored)) = backend::find_pool(ctx, &prior.pool).await? {
            let adv = stored.advanced_backend();
            let mut owned = owned_members(adv);
            if owned.contains(&prior.name) {
                owned.retain(|n| *n != prior.name);
                backend::set_advanced_backend(ctx, pool_id, with_owned_members(adv, &owned))
                    .await?;
                ctx.client.apply(Subsystem::Haproxy).await?;
            }
        }
        Ok(())
    }

    fn example() -> HaproxyPoolMember {
        HaproxyPoolMember::new(
            "apiserver_nodes",
            "k8s-master-2",
            Ipv4Addr::new(10, 0, 20, 110),
            6443,
        )
    }
}

/// Creates or updates the member through its steps. A pool of this stack that still
/// manages its servers inline (a stack moving from inline servers to members) is switched
/// to members first, so servers dropped from the stack later are found and removed.
async fn write(
    ctx: &PfCtx,
    spec: &HaproxyPoolMember,
    op: Op<'_, PoolStep>,
) -> Result<HaproxyPoolMemberObserved, PfError> {
    let pool = spec.pool_name();
    let (pool_id, stored) = backend::find_pool(ctx, &pool)
        .await?
        .ok_or_else(|| backend::pool_not_found(&pool))?;
    let adv = stored.advanced_backend();
    let mut next = adv.to_string();
    let owned_here = split_marker_comment(adv)
        .1
        .is_some_and(|m| m.stack == op.marker.stack);
    if owned_here && !adv.lines().any(|l| l.trim() == MEMBERS_COMMENT) {
        next = format!("{next}\n{MEMBERS_COMMENT}");
    }
    // Record the server as owned before touching it, so an interrupted add is finished
    // (not orphaned) by the next run.
    let mut owned = owned_members(adv);
    if !owned.contains(&spec.name) {
        owned.push(spec.name.clone());
        next = with_owned_members(&next, &owned);
    }
    if next != adv {
        // No write since the lookup, so its id still holds.
        backend::set_advanced_backend(ctx, pool_id, next).await?;
        ctx.client.apply(Subsystem::Haproxy).await?;
    }
    let address = op.address.to_string();
    Rollout::new(ctx, &pool, &address).run(&op.steps).await?;
    current(ctx, op.key).await?.ok_or_else(|| {
        PfError::failed(format!(
            "{} {} not found after the write",
            HaproxyPoolMember::KIND,
            op.key
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::{Address, AttrRef};

    #[test]
    fn a_member_name_that_a_shell_would_interpret_is_refused_at_plan_time() {
        for bad in [
            "web$(reboot)",
            "a\"; rm -rf /; echo \"",
            "a`id`",
            "a;b",
            "a b",
            "a/b",
            "",
        ] {
            let m = HaproxyPoolMember::new("apiserver_nodes", bad, Ipv4Addr::LOCALHOST, 6443);
            let fields: Vec<String> = m.validate().into_iter().map(|e| e.field).collect();
            assert_eq!(fields, ["name"], "{bad:?}");
        }
        let ok =
            HaproxyPoolMember::new("apiserver_nodes", "k8s-master-2", Ipv4Addr::LOCALHOST, 6443);
        assert!(ok.validate().is_empty());
    }

    #[test]
    fn key_comes_from_the_literal_or_the_referenced_pool_and_validation_names_fields() {
        let m = HaproxyPoolMember::new("apiserver_nodes", "k8s-master", Ipv4Addr::LOCALHOST, 6443);
        assert_eq!(m.key(), "apiserver_nodes/k8s-master");
        let r: AttrRef<String> =
            AttrRef::new(Address::new("pfsense_haproxy_backend", "pool"), "name");
        let mut bad = HaproxyPoolMember::new(r, "", Ipv4Addr::LOCALHOST, 0);
        assert_eq!(bad.key(), "pool/");
        bad.weight = 300;
        let fields: Vec<String> = bad.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "port", "weight"]);
    }
}
