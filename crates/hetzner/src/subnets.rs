//! Plan-time checks of declared private networks against their declared members (servers'
//! `networks[]`, load balancers' `private_net[]` that refer to the network): every fixed IP
//! is inside a subnet and not one of its reserved addresses, no two members claim one IP,
//! and the subnets have room for the members that let the API choose their IP.
//!
//! Hetzner reserves in each subnet its network address and its gateway (the first usable
//! address, `gateway` in the API's subnet object); an IP the API chooses is never the last
//! address of the subnet either. So a /30 has room for one member the API places, a /24 for
//! 253. Read from the declared specs as the wire shapes them (references unresolved), so
//! these checks need no request.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use cairn_core::{Declared, Diagnostic, Field};
use serde::Deserialize;

use crate::cidr::Cidr4;
use crate::provider::diag;

/// A declared network's subnets.
#[derive(Debug, Deserialize)]
struct NetworkView {
    #[serde(default)]
    subnets: Vec<SubnetView>,
}

#[derive(Debug, Deserialize)]
struct SubnetView {
    ip_range: String,
}

/// A declared server's attachments.
#[derive(Debug, Deserialize)]
struct ServerView {
    #[serde(default)]
    networks: Option<Vec<Attachment>>,
}

/// A declared load balancer's attachments.
#[derive(Debug, Deserialize)]
struct LbView {
    #[serde(default)]
    private_net: Vec<Attachment>,
}

/// One attachment to a network, with an optional fixed IP.
#[derive(Debug, Deserialize)]
struct Attachment {
    network: Field<u64>,
    #[serde(default)]
    ip: Option<Ipv4Addr>,
}

/// A member of a declared network: who, which field, which fixed IP.
struct Member<'a> {
    who: &'a Declared<'a>,
    field: String,
    ip: Option<Ipv4Addr>,
}

/// The addresses of `s` the API may hand out by itself: from the one after the gateway to
/// the one before the last.
fn auto_range(s: &Cidr4) -> std::ops::Range<u64> {
    2..s.size().saturating_sub(1).max(2)
}

/// Runs the checks over every declared network that has declared members.
pub(crate) fn check(declared: &[Declared<'_>]) -> Vec<Diagnostic> {
    let mut members: BTreeMap<String, Vec<Member<'_>>> = BTreeMap::new();
    for d in declared {
        let attachments: Vec<(String, Attachment)> = match d.kind {
            "hetzner_server" => ServerView::deserialize(d.spec)
                .ok()
                .and_then(|s| s.networks)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, a)| (format!("networks[{i}].ip"), a))
                .collect(),
            "hetzner_load_balancer" => LbView::deserialize(d.spec)
                .map(|l| l.private_net)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, a)| (format!("private_net[{i}].ip"), a))
                .collect(),
            _ => continue,
        };
        for (field, a) in attachments {
            if let Some(r) = a.network.reference() {
                members
                    .entry(r.address.0.clone())
                    .or_default()
                    .push(Member {
                        who: d,
                        field,
                        ip: a.ip,
                    });
            }
        }
    }
    let mut out = Vec::new();
    for d in declared.iter().filter(|d| d.kind == "hetzner_network") {
        let Some(ms) = members.get(&d.address.0) else {
            continue;
        };
        let Ok(net) = NetworkView::deserialize(d.spec) else {
            continue;
        };
        let subnets: Vec<Cidr4> = net
            .subnets
            .iter()
            .filter_map(|s| Cidr4::parse(&s.ip_range, true))
            .collect();
        check_network(d, &subnets, ms, &mut out);
    }
    out
}

fn check_network(
    d: &Declared<'_>,
    subnets: &[Cidr4],
    ms: &[Member<'_>],
    out: &mut Vec<Diagnostic>,
) {
    let mut taken: BTreeMap<Ipv4Addr, &Member<'_>> = BTreeMap::new();
    for m in ms {
        let Some(ip) = m.ip else { continue };
        let Some(s) = subnets.iter().find(|s| s.contains(ip)) else {
            out.push(diag(
                m.who,
                m.field.clone(),
                format!(
                    "{ip} is not inside a subnet of {} (subnets: {})",
                    d.address,
                    list(subnets)
                ),
            ));
            continue;
        };
        if ip == s.nth(0) || ip == s.nth(1) {
            out.push(diag(
                m.who,
                m.field.clone(),
                format!(
                    "{ip} is reserved in {s} of {}: its network address and its gateway {} cannot be used; the first usable address is {}",
                    d.address,
                    s.nth(1),
                    s.nth(2)
                ),
            ));
            continue;
        }
        match taken.get(&ip) {
            Some(first) => out.push(diag(
                m.who,
                m.field.clone(),
                format!(
                    "{ip} in {} is already declared for {} ({})",
                    d.address, first.who.address, first.field
                ),
            )),
            None => drop(taken.insert(ip, m)),
        }
    }
    let placed: Vec<&Member<'_>> = ms.iter().filter(|m| m.ip.is_none()).collect();
    if placed.is_empty() {
        return;
    }
    let room: u64 = subnets
        .iter()
        .map(|s| {
            auto_range(s)
                .filter(|i| !taken.contains_key(&s.nth(*i as u32)))
                .count() as u64
        })
        .sum();
    if placed.len() as u64 <= room {
        return;
    }
    let field = if subnets.len() == 1 {
        "subnets[0].ip_range".to_string()
    } else {
        "subnets".to_string()
    };
    let fixed = taken.len();
    out.push(diag(
        d,
        field,
        format!(
            "{} {} room for {room} more member{} (in each subnet the network address, the gateway and the last address are reserved{}), but {} {} attached without a fixed IP: {}",
            list(subnets),
            if subnets.len() == 1 { "has" } else { "have" },
            if room == 1 { "" } else { "s" },
            if fixed > 0 { format!("; {fixed} taken by fixed IPs") } else { String::new() },
            placed.len(),
            if placed.len() == 1 { "is" } else { "are" },
            placed
                .iter()
                .map(|m| m.who.address.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
}

fn list(subnets: &[Cidr4]) -> String {
    if subnets.is_empty() {
        return "none".into();
    }
    subnets
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
