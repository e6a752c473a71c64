//! Plan-time checks across declared Hetzner resources (references still unresolved):
//! load-balancer targets reached over a private network must be attached to one of the
//! load balancer's networks; fixed private IPs must lie in a subnet of their network.

use std::net::Ipv4Addr;

use cairn_core::{Declared, Diagnostic, Field, Resource};

use crate::cidr::Cidr4;
use crate::kinds::{LoadBalancer, Network, Server, TargetType};
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
    let networks = typed::<Network>(declared);
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
    let check_ip = |d: &Declared<'_>,
                    field: String,
                    net: &Field<u64>,
                    ip: Option<Ipv4Addr>,
                    out: &mut Vec<Diagnostic>| {
        let (Some(addr), Some(ip)) = (ref_address(net), ip) else {
            return;
        };
        let Some((_, n)) = networks.iter().find(|(nd, _)| nd.address.0 == addr) else {
            return;
        };
        let subnets: Vec<Cidr4> = n
            .subnets
            .iter()
            .filter_map(|s| Cidr4::parse(&s.ip_range, true))
            .collect();
        if !subnets.iter().any(|s| s.contains(ip) && ip != s.nth(0)) {
            out.push(diag(
                d,
                field,
                format!("{ip} is not inside a subnet of {addr}"),
            ));
        }
    };
    for (d, s) in &servers {
        for (i, n) in s.networks.iter().flatten().enumerate() {
            check_ip(d, format!("networks[{i}].ip"), &n.network, n.ip, &mut out);
        }
    }
    for (d, lb) in &lbs {
        for (i, n) in lb.private_net.iter().flatten().enumerate() {
            check_ip(
                d,
                format!("private_net[{i}].ip"),
                &n.network,
                n.ip,
                &mut out,
            );
        }
    }
    out
}
