//! Plan-time checks across declared Hetzner resources (references still unresolved):
//! load-balancer targets reached over a private network must be attached to one of the
//! load balancer's networks; private networks fit their members ([`crate::subnets`]).

use cairn_core::{Declared, Diagnostic, Field, Resource};

use crate::kinds::{LoadBalancer, Server, TargetType};
use crate::provider::diag;

/// An identity for a network reference: the referenced address, or the literal id.
fn net_ident(f: &Field<u64>) -> String {
    match f {
        Field::Known(id) => format!("id:{id}"),
        Field::Ref(r) => r.raw().address.0.clone(),
    }
}

/// The address a reference points at.
fn ref_address(f: &Field<u64>) -> Option<&str> {
    f.reference().map(|r| r.address.0.as_str())
}

/// The declared resources of kind `R`, typed (those that do not decode are left to the
/// kind's own validation).
fn typed<'a, R: Resource>(declared: &'a [Declared<'a>]) -> Vec<(&'a Declared<'a>, R)> {
    declared
        .iter()
        .filter(|d| d.kind == R::KIND)
        .filter_map(|d| R::deserialize(d.spec).ok().map(|r| (d, r)))
        .collect()
}

/// Runs every cross-resource check.
pub fn cross_check(declared: &[Declared<'_>]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let servers = typed::<Server>(declared);
    let lbs = typed::<LoadBalancer>(declared);
    let server_at = |a: &str| servers.iter().find(|(d, _)| d.address.0 == a);
    for (d, lb) in &lbs {
        let lb_nets: Vec<String> = lb
            .private_net
            .iter()
            .flatten()
            .map(|n| net_ident(&n.network))
            .collect();
        for (i, t) in lb.targets.iter().enumerate() {
            if t.kind != TargetType::Server || t.use_private_ip != Some(true) {
                continue;
            }
            let Some(srv_addr) = t.server.as_ref().and_then(|s| ref_address(&s.id)) else {
                continue;
            };
            let Some((_, srv)) = server_at(srv_addr) else {
                continue;
            };
            let srv_nets: Vec<String> = srv
                .networks
                .iter()
                .flatten()
                .map(|n| net_ident(&n.network))
                .collect();
            if !srv_nets.iter().any(|n| lb_nets.contains(n)) {
                out.push(diag(d, format!("targets[{i}].server.id"), format!(
                    "target server {srv_addr} is not attached to the load balancer's network ({}); use_private_ip needs a shared network",
                    if lb_nets.is_empty() { "none".to_string() } else { lb_nets.join(", ") }
                )));
            }
        }
    }
    out.extend(crate::subnets::check(declared));
    out
}
