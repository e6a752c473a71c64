//! `/networks`: create with subnets and routes, list, update, delete and the subnet / route
//! / ip_range actions.

use axum::http::Method;
use serde_json::{Value, json};

use super::http::{ApiErr, ApiResult, reply};
use super::keys::no_content;
use super::world::{Check, World, action_reply, list_rendered, now, update_basic};
use crate::cidr::Cidr4;
use crate::routes::Routes;

fn private_range(c: &Cidr4) -> bool {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
        .iter()
        .filter_map(|r| Cidr4::parse(r, true))
        .any(|r| r.covers(c))
}

/// Renders a network with attached servers and load balancers.
pub fn render(w: &World, n: &Value) -> Value {
    let mut n = n.clone();
    let id = n["id"].as_u64();
    let attached = |coll: &str| -> Vec<u64> {
        w.coll(coll)
            .iter()
            .filter(|(_, o)| {
                o["private_net"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["network"].as_u64() == id)
            })
            .map(|(i, _)| *i)
            .collect()
    };
    n["servers"] = json!(attached("servers"));
    n["load_balancers"] = json!(attached("load_balancers"));
    n
}

/// Validates one subnet against the network range and the existing subnets.
fn check_subnet(
    c: &mut Check,
    field: &str,
    s: &Value,
    range: Option<Cidr4>,
    existing: &[Cidr4],
) -> Option<Value> {
    let typ = s["type"].as_str().unwrap_or("");
    if !matches!(typ, "cloud" | "server" | "vswitch") {
        c.err(format!("{field}.type"), "must be cloud, server or vswitch");
    }
    let zone = s["network_zone"].as_str().unwrap_or("");
    if !matches!(zone, "eu-central" | "us-east" | "us-west" | "ap-southeast") {
        c.err(format!("{field}.network_zone"), "unknown network zone");
    }
    if typ == "vswitch" && s["vswitch_id"].as_u64().is_none() {
        c.err(
            format!("{field}.vswitch_id"),
            "is required for vswitch subnets",
        );
    }
    let range = range?;
    let sub = match s["ip_range"].as_str() {
        Some(r) => match Cidr4::parse(r, true) {
            Some(x) => x,
            None => {
                c.err(format!("{field}.ip_range"), "is not a valid IPv4 CIDR");
                return None;
            }
        },
        None => {
            // Next free /24 inside the network.
            let mut cand = None;
            for i in 0..(range.size() / 256).max(1) {
                let x = Cidr4 {
                    base: range.base + (i as u32) * 256,
                    prefix: 24.max(range.prefix),
                };
                if !existing.iter().any(|e| e.overlaps(&x)) {
                    cand = Some(x);
                    break;
                }
            }
            match cand {
                Some(x) => x,
                None => {
                    c.err(
                        format!("{field}.ip_range"),
                        "no free range left in the network",
                    );
                    return None;
                }
            }
        }
    };
    if !range.covers(&sub) {
        c.err(
            format!("{field}.ip_range"),
            format!("{sub} is not inside the network's ip_range {range}"),
        );
    }
    if existing.iter().any(|e| e.overlaps(&sub)) {
        c.err(
            format!("{field}.ip_range"),
            format!("{sub} overlaps another subnet"),
        );
    }
    Some(
        json!({"type": typ, "network_zone": zone, "ip_range": sub.to_string(),
                "gateway": range.nth(1).to_string(), "vswitch_id": s.get("vswitch_id").cloned().unwrap_or(Value::Null)}),
    )
}

fn check_route(c: &mut Check, field: &str, r: &Value, range: Option<Cidr4>) -> Option<Value> {
    let dest = r["destination"]
        .as_str()
        .and_then(|d| Cidr4::parse(d, true));
    if dest.is_none() {
        c.err(format!("{field}.destination"), "is not a valid IPv4 CIDR");
    }
    let gw = r["gateway"]
        .as_str()
        .and_then(|g| g.parse::<std::net::Ipv4Addr>().ok());
    match (gw, range) {
        (None, _) => c.err(format!("{field}.gateway"), "is not a valid IPv4 address"),
        (Some(g), Some(rg)) if !rg.contains(g) || g == rg.nth(1) => c.err(
            format!("{field}.gateway"),
            "must be inside the network and not its gateway",
        ),
        _ => {}
    }
    Some(json!({"destination": r["destination"], "gateway": r["gateway"]}))
}

/// The routes of `/networks`.
pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .route("/networks", Method::GET, |w, r| {
            list_rendered(w, "networks", "networks", &r.q, render)
        })
        .route("/networks", Method::POST, |w, r| {
            let b = &r.body;
            let mut c = Check::default();
            let name = c.req_str(b, "name").map(String::from);
            let range = b["ip_range"].as_str().and_then(|s| Cidr4::parse(s, true));
            match range {
                None => c.err("ip_range", "is required and must be an IPv4 CIDR"),
                Some(x) if !private_range(&x) || x.prefix > 24 => c.err(
                    "ip_range",
                    "must be a private (RFC 1918) range of /24 or larger",
                ),
                _ => {}
            }
            c.labels(b);
            let mut subnets = Vec::new();
            let mut taken = Vec::new();
            for (i, s) in b["subnets"].as_array().into_iter().flatten().enumerate() {
                if let Some(s) = check_subnet(&mut c, &format!("subnets[{i}]"), s, range, &taken) {
                    if let Some(x) = s["ip_range"].as_str().and_then(|x| Cidr4::parse(x, true)) {
                        taken.push(x);
                    }
                    subnets.push(s);
                }
            }
            let routes: Vec<Value> = b["routes"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .filter_map(|(i, x)| check_route(&mut c, &format!("routes[{i}]"), x, range))
                .collect();
            c.done()?;
            let name = name.unwrap_or_default();
            if w.name_taken("networks", &name, None) {
                return Err(ApiErr::unique("name"));
            }
            let id = w.alloc_id();
            let n = json!({"id": id, "name": name, "ip_range": b["ip_range"], "subnets": subnets,
                           "routes": routes, "servers": [], "load_balancers": [],
                           "protection": {"delete": false}, "created": now(),
                           "labels": b.get("labels").cloned().unwrap_or(json!({})),
                           "expose_routes_to_vswitch": b["expose_routes_to_vswitch"] == true});
            w.coll_mut("networks").insert(id, n);
            reply(201, json!({"network": render(w, &w.coll("networks")[&id])}))
        })
        .route("/networks/{id}", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("networks", "network", id)?;
            reply(200, json!({"network": render(w, &w.coll("networks")[&id])}))
        })
        .route("/networks/{id}", Method::PUT, |w, r| {
            let id = &r.param("id");
            let id = w.must("networks", "network", id)?;
            update_basic(w, "networks", id, &r.body, &["expose_routes_to_vswitch"])?;
            reply(200, json!({"network": render(w, &w.coll("networks")[&id])}))
        })
        .route("/networks/{id}", Method::DELETE, |w, r| {
            let id = &r.param("id");
            let id = w.must("networks", "network", id)?;
            w.check_lock(id, "network")?;
            w.check_protection("networks", id, "delete")?;
            for coll in ["servers", "load_balancers"] {
                for o in w.coll_mut(coll).values_mut() {
                    if let Some(a) = o["private_net"].as_array_mut() {
                        a.retain(|p| p["network"].as_u64() != Some(id));
                    }
                }
            }
            w.coll_mut("networks").remove(&id);
            no_content()
        })
        .route("/networks/{id}/actions", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("networks", "network", id)?;
            super::actions::list_for(w, id, "network", &r.q)
        })
        .route("/networks/{id}/actions/{act}", Method::POST, |w, r| {
            let id = &r.param("id");
            let act = &r.param("act");
            let id = w.must("networks", "network", id)?;
            w.check_lock(id, "network")?;
            action(w, id, act, &r.body)
        })
}

fn action(w: &mut World, id: u64, act: &str, b: &Value) -> ApiResult {
    let net = w.coll("networks")[&id].clone();
    let range = net["ip_range"].as_str().and_then(|s| Cidr4::parse(s, true));
    let subnets: Vec<Cidr4> = net["subnets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["ip_range"].as_str().and_then(|x| Cidr4::parse(x, true)))
        .collect();
    let mut c = Check::default();
    let cmd = match act {
        "add_subnet" => {
            let s = check_subnet(&mut c, "subnet", b, range, &subnets);
            c.done()?;
            if let Some(a) = w
                .coll_mut("networks")
                .get_mut(&id)
                .and_then(|n| n["subnets"].as_array_mut())
            {
                a.push(s.unwrap_or_default());
            }
            "add_subnet"
        }
        "delete_subnet" => {
            let want = b["ip_range"].as_str().unwrap_or("");
            let n = w
                .coll_mut("networks")
                .get_mut(&id)
                .ok_or_else(|| ApiErr::not_found("network"))?;
            let a = n["subnets"]
                .as_array_mut()
                .ok_or_else(|| ApiErr::not_found("subnet"))?;
            let before = a.len();
            a.retain(|s| s["ip_range"] != want);
            if a.len() == before {
                return Err(ApiErr::invalid(vec![(
                    "ip_range".into(),
                    "no such subnet".into(),
                )]));
            }
            "delete_subnet"
        }
        "add_route" => {
            let rt = check_route(&mut c, "route", b, range);
            c.done()?;
            let n = w
                .coll_mut("networks")
                .get_mut(&id)
                .ok_or_else(|| ApiErr::not_found("network"))?;
            let a = n["routes"]
                .as_array_mut()
                .ok_or_else(|| ApiErr::not_found("routes"))?;
            if a.iter().any(|x| x["destination"] == b["destination"]) {
                return Err(ApiErr::new(
                    409,
                    "conflict",
                    "a route to this destination exists",
                ));
            }
            a.push(rt.unwrap_or_default());
            "add_route"
        }
        "delete_route" => {
            let n = w
                .coll_mut("networks")
                .get_mut(&id)
                .ok_or_else(|| ApiErr::not_found("network"))?;
            let a = n["routes"]
                .as_array_mut()
                .ok_or_else(|| ApiErr::not_found("routes"))?;
            let before = a.len();
            a.retain(|x| !(x["destination"] == b["destination"] && x["gateway"] == b["gateway"]));
            if a.len() == before {
                return Err(ApiErr::invalid(vec![(
                    "destination".into(),
                    "no such route".into(),
                )]));
            }
            "delete_route"
        }
        "change_ip_range" => {
            let new = b["ip_range"].as_str().and_then(|s| Cidr4::parse(s, true));
            match (new, range) {
                (Some(n), Some(old)) if n.covers(&old) && private_range(&n) => {}
                _ => {
                    c.err("ip_range", "must be a valid private range that contains the current one (it may only grow)");
                    c.done()?;
                }
            }
            if let Some(n) = w.coll_mut("networks").get_mut(&id) {
                n["ip_range"] = b["ip_range"].clone();
            }
            "change_ip_range"
        }
        "change_protection" => {
            if let Some(d) = b["delete"].as_bool()
                && let Some(n) = w.coll_mut("networks").get_mut(&id)
            {
                n["protection"]["delete"] = d.into();
            }
            "change_protection"
        }
        _ => return Err(ApiErr::not_found("action")),
    };
    action_reply(201, w.action(cmd, &[(id, "network")]))
}
