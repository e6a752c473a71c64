//! Pending changes: pfSense holds every write until its subsystem's apply runs, so a write
//! whose apply was rejected or interrupted (or someone's write without an apply) stays
//! pending while the configuration reads as if it were in effect. The provider reads each
//! subsystem's `GET …/apply` once per plan (four requests, concurrently) and reports the
//! unapplied ones with the kinds that live there ([`cairn_core::Pending`]); the engine
//! plans `pfsense_pending.<subsystem>` for a stack that declares one of those kinds and
//! warns any other stack, and the entry's apply is the subsystem's apply call.

use cairn_core::Pending;
use cairn_core::Resource;

use crate::client::Subsystem;
use crate::context::{PfCtx, PfError};
use crate::kinds::{
    DnsHostOverride, FirewallAlias, HaproxyBackend, HaproxyFrontend, HaproxyPoolMember, VirtualIp,
};

/// The kinds whose objects live in a subsystem.
pub fn kinds_of(sub: Subsystem) -> &'static [&'static str] {
    match sub {
        Subsystem::Haproxy => &[
            HaproxyBackend::KIND,
            HaproxyFrontend::KIND,
            HaproxyPoolMember::KIND,
        ],
        Subsystem::VirtualIp => &[VirtualIp::KIND],
        Subsystem::DnsResolver => &[DnsHostOverride::KIND],
        Subsystem::Firewall => &[FirewallAlias::KIND],
    }
}

/// Every subsystem with unapplied changes (one `GET …/apply` each, all at once).
pub(crate) async fn read(ctx: &PfCtx) -> Result<Vec<Pending>, PfError> {
    let c = &ctx.client;
    let [h, v, d, f] = Subsystem::ALL;
    let (h2, v2, d2, f2) = tokio::join!(c.applied(h), c.applied(v), c.applied(d), c.applied(f));
    let mut out = Vec::new();
    for (sub, applied) in [(h, h2?), (v, v2?), (d, d2?), (f, f2?)] {
        if !applied {
            out.push(Pending {
                id: sub.id().to_string(),
                description: format!("pfSense {sub} has changes written but not applied"),
                step: format!(
                    "apply pending {sub} changes (POST /api/v2{}), wait until pfSense reports them applied",
                    sub.apply_path()
                ),
                kinds: kinds_of(sub).iter().map(|k| k.to_string()).collect(),
            });
        }
    }
    Ok(out)
}

/// Applies subsystem `id` and waits until pfSense reports it applied (a rejected
/// configuration fails with pfSense's reason, as any change's apply does).
pub(crate) async fn apply(ctx: &PfCtx, id: &str) -> Result<(), PfError> {
    let sub = Subsystem::from_id(id)
        .ok_or_else(|| PfError::failed(format!("pfSense has no subsystem {id:?}")))?;
    ctx.client.apply(sub).await?;
    Ok(())
}
