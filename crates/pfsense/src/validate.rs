//! Plan-time validation across the pfSense kinds: a frontend must bind an address that a
//! declared VIP (or a known interface address) owns; a pool member's pool must be declared
//! under its pool name and must not also declare inline servers. Declared backends also
//! tell the context which pools will be health-checked.

use std::net::Ipv4Addr;

use cairn_core::{Declared, Diagnostic, Field, FieldError, Resource};
use serde::de::DeserializeOwned;

use crate::context::PfCtx;
use crate::kinds::{HaproxyBackend, HaproxyFrontend, HaproxyPoolMember, VirtualIp};

/// The declared resources of kind `R`, decoded (references stay references).
fn declared<'d, 'a, R: Resource + DeserializeOwned>(
    all: &'d [Declared<'a>],
) -> Vec<(&'d Declared<'a>, R)> {
    all.iter()
        .filter(|d| d.kind == R::KIND)
        .filter_map(|d| Some((d, serde_json::from_value(d.spec.clone()).ok()?)))
        .collect()
}

/// Every cross-kind problem of the declared resources.
pub(crate) fn validate(ctx: &PfCtx, all: &[Declared<'_>]) -> Vec<Diagnostic> {
    let vips = declared::<VirtualIp>(all);
    let backends = declared::<HaproxyBackend>(all);
    for (_, b) in &backends {
        ctx.learn_declared_pool(&b.name, b.has_checks());
    }
    let mut out = frontends(ctx, all, &vips);
    out.extend(members(all, &backends));
    out
}

/// Frontends bind addresses a declared VIP or a known interface address owns.
fn frontends(
    ctx: &PfCtx,
    all: &[Declared<'_>],
    vips: &[(&Declared<'_>, VirtualIp)],
) -> Vec<Diagnostic> {
    let owned: Vec<Ipv4Addr> = vips
        .iter()
        .map(|(_, v)| v.address)
        .chain(ctx.opts.interface_addresses.iter().copied())
        .collect();
    let mut out = Vec::new();
    for (fe, spec) in declared::<HaproxyFrontend>(all) {
        for (i, a) in spec.addresses.iter().enumerate() {
            let problem = match &a.address {
                Field::Ref(r) => {
                    let r = r.raw();
                    let ok = r.address.kind() == VirtualIp::KIND
                        && r.attr == "address"
                        && vips.iter().any(|(v, _)| *v.address == r.address);
                    (!ok).then(|| {
                        format!(
                            "binds to {r}, which is not the address of a declared {}",
                            VirtualIp::KIND
                        )
                    })
                }
                Field::Known(ip) => (!owned.contains(ip)).then(|| {
                    format!(
                        "binds to {ip}, which no declared {} or known interface address owns",
                        VirtualIp::KIND
                    )
                }),
            };
            if let Some(message) = problem {
                out.push(Diagnostic {
                    address: fe.address.clone(),
                    error: FieldError::new(format!("addresses[{i}].address"), message),
                });
            }
        }
    }
    out
}

/// A pool's servers are either inline or members, never both; a referenced pool must be
/// declared under its pool name (the member's key is derived from the reference's address).
fn members(all: &[Declared<'_>], backends: &[(&Declared<'_>, HaproxyBackend)]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (m, spec) in declared::<HaproxyPoolMember>(all) {
        let mut problem = |message: String| {
            out.push(Diagnostic {
                address: m.address.clone(),
                error: FieldError::new("pool", message),
            })
        };
        let target = match &spec.pool {
            Field::Ref(r) => {
                let r = r.raw();
                if r.address.kind() != HaproxyBackend::KIND || r.attr != "name" {
                    problem(format!(
                        "refers to {r}; a pool member's pool must be a {}'s name (`pool.name()`) or a literal",
                        HaproxyBackend::KIND
                    ));
                    continue;
                }
                let found = backends.iter().find(|(b, _)| *b.address == r.address);
                if let Some((b, _)) = found
                    && b.key != r.address.name()
                {
                    problem(format!(
                        "refers to {} whose pool name is {:?}: declare that backend under its pool name (`add({:?}, …)`), the member's key {:?} is derived from it",
                        r.address, b.key, b.key, m.key
                    ));
                    continue;
                }
                found
            }
            Field::Known(name) => backends.iter().find(|(b, _)| b.key == name),
        };
        if let Some((b, spec)) = target
            && spec.servers.is_some()
        {
            problem(format!(
                "pool {} ({}) declares inline `servers` and also has pool members ({} among them): a pool's servers are either inline or members; declare the backend with `servers: None` (`servers_managed_as_members()`) or drop the members",
                b.key, b.address, m.address
            ));
        }
    }
    out
}
