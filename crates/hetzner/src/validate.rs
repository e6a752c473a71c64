//! Plan-time checks across declared Hetzner resources (references still unresolved):
//! load-balancer targets reached over a private network must be attached to one of the
//! load balancer's networks; fixed private IPs must lie in a subnet of their network.

use std::net::Ipv4Addr;

use cairn_core::{Declared, Diagnostic};
use serde_json::Value;

use crate::cidr::Cidr4;
use crate::provider::{diag, ref_address};

/// An identity for a network reference: the referenced address, or the literal id.
fn net_ident(v: &Value) -> Option<String> {
    ref_address(v).or_else(|| v.as_u64().map(|n| format!("id:{n}")))
}

/// Runs every cross-resource check.
pub fn cross_check(declared: &[Declared<'_>]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let by_addr = |a: &str| declared.iter().find(|d| d.address.0 == a);
    for d in declared
        .iter()
        .filter(|d| d.kind == "hetzner_load_balancer")
    {
        let lb_nets: Vec<String> = d.spec["private_net"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| net_ident(&n["network"]))
            .collect();
        for (i, t) in d.spec["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if t["type"] != "server" || t["use_private_ip"] != true {
                continue;
            }
            let Some(srv_addr) = ref_address(&t["server"]["id"]) else {
                continue;
            };
            let Some(srv) = by_addr(&srv_addr) else {
                continue;
            };
            let srv_nets: Vec<String> = srv.spec["networks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|n| net_ident(&n["network"]))
                .collect();
            if !srv_nets.iter().any(|n| lb_nets.contains(n)) {
                out.push(diag(d, format!("targets[{i}].server.id"), format!(
                    "target server {srv_addr} is not attached to the load balancer's network ({}); use_private_ip needs a shared network",
                    if lb_nets.is_empty() { "none".to_string() } else { lb_nets.join(", ") }
                )));
            }
        }
    }
    let check_ip =
        |d: &Declared<'_>, field: String, net: &Value, ip: &Value, out: &mut Vec<Diagnostic>| {
            let (Some(addr), Some(ip)) = (ref_address(net), ip.as_str()) else {
                return;
            };
            let Ok(ip) = ip.parse::<Ipv4Addr>() else {
                return;
            };
            let Some(n) = by_addr(&addr) else { return };
            let subnets: Vec<Cidr4> = n.spec["subnets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["ip_range"].as_str().and_then(|r| Cidr4::parse(r, true)))
                .collect();
            if !subnets.iter().any(|s| s.contains(ip) && ip != s.nth(0)) {
                out.push(diag(
                    d,
                    field,
                    format!("{ip} is not inside a subnet of {addr}"),
                ));
            }
        };
    for d in declared {
        match d.kind {
            "hetzner_server" => {
                for (i, n) in d.spec["networks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    check_ip(
                        d,
                        format!("networks[{i}].ip"),
                        &n["network"],
                        &n["ip"],
                        &mut out,
                    );
                }
            }
            "hetzner_load_balancer" => {
                for (i, n) in d.spec["private_net"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    check_ip(
                        d,
                        format!("private_net[{i}].ip"),
                        &n["network"],
                        &n["ip"],
                        &mut out,
                    );
                }
            }
            _ => {}
        }
    }
    out
}
