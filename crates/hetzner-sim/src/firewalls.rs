//! `/firewalls`: create, list, update, delete and `set_rules` / `apply_to_resources` /
//! `remove_from_resources` (which answer `{"actions": [...]}`).

use axum::http::Method;
use serde_json::{Value, json};

use super::http::{ApiErr, reply};
use super::keys::no_content;
use super::world::{Check, World, list_rendered, now, update_basic};
use crate::routes::Routes;

/// Whether firewall `f` applies to server `id` (directly or by label selector).
pub fn applies_to(w: &World, f: &Value, id: u64) -> bool {
    f["applied_to"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| match a["type"].as_str() {
            Some("server") => a["server"]["id"].as_u64() == Some(id),
            Some("label_selector") => w
                .select(
                    "servers",
                    a["label_selector"]["selector"].as_str().unwrap_or(""),
                )
                .contains(&id),
            _ => false,
        })
}

/// Renders a firewall with the resources its label selectors currently match.
pub fn render(w: &World, f: &Value) -> Value {
    let mut f = f.clone();
    if let Some(a) = f["applied_to"].as_array_mut() {
        for x in a.iter_mut() {
            if x["type"] == "label_selector" {
                let sel = x["label_selector"]["selector"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                x["applied_to_resources"] = json!(
                    w.select("servers", &sel)
                        .into_iter()
                        .map(|id| json!({"type": "server", "server": {"id": id}}))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
    f
}

fn valid_port(p: &str) -> bool {
    let ok = |s: &str| s.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
    p == "any"
        || match p.split_once('-') {
            Some((a, b)) => ok(a) && ok(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok(),
            None => ok(p),
        }
}

fn valid_net(s: &str) -> bool {
    let (a, p) = s.split_once('/').unwrap_or((s, "x"));
    match a.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => {
            p.parse::<u8>().is_ok_and(|n| n <= 32) && crate::cidr::Cidr4::parse(s, true).is_some()
        }
        Ok(std::net::IpAddr::V6(_)) => p.parse::<u8>().is_ok_and(|n| n <= 128),
        Err(_) => false,
    }
}

/// Validates rules; returns them normalised.
pub fn check_rules(c: &mut Check, rules: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let rs = rules.as_array().cloned().unwrap_or_default();
    if rs.len() > 50 {
        c.err("rules", "at most 50 rules");
    }
    for (i, r) in rs.iter().enumerate() {
        let f = |k: &str| format!("rules[{i}].{k}");
        let dir = r["direction"].as_str().unwrap_or("");
        if dir != "in" && dir != "out" {
            c.err(f("direction"), "must be in or out");
        }
        let proto = r["protocol"].as_str().unwrap_or("");
        if !matches!(proto, "tcp" | "udp" | "icmp" | "esp" | "gre") {
            c.err(f("protocol"), "must be tcp, udp, icmp, esp or gre");
        }
        match (proto, r["port"].as_str()) {
            ("tcp" | "udp", Some(p)) if valid_port(p) => {}
            ("tcp" | "udp", _) => c.err(f("port"), "must be a port 1-65535, a range a-b, or any"),
            (_, Some(_)) => c.err(f("port"), "only tcp and udp rules have ports"),
            _ => {}
        }
        let ips_field = if dir == "in" {
            "source_ips"
        } else {
            "destination_ips"
        };
        let ips = r[ips_field].as_array().cloned().unwrap_or_default();
        if ips.is_empty() {
            c.err(f(ips_field), "must not be empty");
        }
        for (j, ip) in ips.iter().enumerate() {
            if !ip.as_str().is_some_and(valid_net) {
                c.err(
                    format!("rules[{i}].{ips_field}[{j}]"),
                    "is not a valid CIDR",
                );
            }
        }
        out.push(json!({"direction": dir, "protocol": proto, "port": r.get("port").cloned().unwrap_or(Value::Null),
                        "source_ips": if dir == "in" { json!(ips) } else { json!([]) },
                        "destination_ips": if dir == "out" { json!(ips) } else { json!([]) },
                        "description": r.get("description").cloned().unwrap_or(Value::Null)}));
    }
    out
}

fn check_apply(w: &World, c: &mut Check, field: &str, a: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, x) in a.as_array().into_iter().flatten().enumerate() {
        match x["type"].as_str() {
            Some("server") => match x["server"]["id"].as_u64() {
                Some(id) if w.get("servers", id).is_some() => {
                    out.push(json!({"type": "server", "server": {"id": id}}))
                }
                _ => c.err(format!("{field}[{i}].server.id"), "server not found"),
            },
            Some("label_selector") => {
                let sel = x["label_selector"]["selector"].as_str().unwrap_or("");
                if let Err(m) = super::labels::parse(sel) {
                    c.err(format!("{field}[{i}].label_selector.selector"), m);
                }
                out.push(json!({"type": "label_selector", "label_selector": {"selector": sel}}));
            }
            _ => c.err(
                format!("{field}[{i}].type"),
                "must be server or label_selector",
            ),
        }
    }
    out
}

fn same(a: &Value, b: &Value) -> bool {
    a["type"] == b["type"]
        && a["server"]["id"] == b["server"]["id"]
        && a["label_selector"]["selector"] == b["label_selector"]["selector"]
}

/// The routes of `/firewalls`.
pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .route("/firewalls", Method::GET, |w, r| {
            list_rendered(w, "firewalls", "firewalls", &r.q, render)
        })
        .route("/firewalls", Method::POST, |w, r| {
            let b = &r.body;
            let mut c = Check::default();
            let name = c.req_str(b, "name").map(String::from);
            c.labels(b);
            let rules = check_rules(&mut c, &b["rules"]);
            let apply = check_apply(w, &mut c, "apply_to", &b["apply_to"]);
            c.done()?;
            let name = name.unwrap_or_default();
            if w.name_taken("firewalls", &name, None) {
                return Err(ApiErr::unique("name"));
            }
            let id = w.alloc_id();
            let fw = json!({"id": id, "name": name, "labels": b.get("labels").cloned().unwrap_or(json!({})),
                            "created": now(), "rules": rules, "applied_to": apply});
            w.coll_mut("firewalls").insert(id, fw);
            let mut actions = vec![w.action("set_firewall_rules", &[(id, "firewall")])];
            if !apply.is_empty() {
                actions.push(w.action("apply_firewall", &[(id, "firewall")]));
            }
            reply(
                201,
                json!({"firewall": render(w, &w.coll("firewalls")[&id]), "actions": actions}),
            )
        })
        .route("/firewalls/{id}", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("firewalls", "firewall", id)?;
            reply(
                200,
                json!({"firewall": render(w, &w.coll("firewalls")[&id])}),
            )
        })
        .route("/firewalls/{id}", Method::PUT, |w, r| {
            let id = &r.param("id");
            let id = w.must("firewalls", "firewall", id)?;
            update_basic(w, "firewalls", id, &r.body, &[])?;
            reply(
                200,
                json!({"firewall": render(w, &w.coll("firewalls")[&id])}),
            )
        })
        .route("/firewalls/{id}", Method::DELETE, |w, r| {
            let id = &r.param("id");
            let id = w.must("firewalls", "firewall", id)?;
            w.check_lock(id, "firewall")?;
            if w.coll("firewalls")[&id]["applied_to"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
            {
                return Err(ApiErr::new(
                    422,
                    "resource_in_use",
                    "firewall is still applied to resources",
                ));
            }
            w.coll_mut("firewalls").remove(&id);
            no_content()
        })
        .route("/firewalls/{id}/actions", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("firewalls", "firewall", id)?;
            super::actions::list_for(w, id, "firewall", &r.q)
        })
        .route("/firewalls/{id}/actions/{act}", Method::POST, |w, r| {
            let id = &r.param("id");
            let act = &r.param("act");
            let id = w.must("firewalls", "firewall", id)?;
            w.check_lock(id, "firewall")?;
            let mut c = Check::default();
            let cmd = match *act {
                "set_rules" => {
                    let rules = check_rules(&mut c, &r.body["rules"]);
                    c.done()?;
                    if let Some(f) = w.coll_mut("firewalls").get_mut(&id) {
                        f["rules"] = json!(rules);
                    }
                    "set_firewall_rules"
                }
                "apply_to_resources" | "remove_from_resources" => {
                    let key = if *act == "apply_to_resources" {
                        "apply_to"
                    } else {
                        "remove_from"
                    };
                    let items = check_apply(w, &mut c, key, &r.body[key]);
                    if items.is_empty() {
                        c.err(key, "must list at least one resource");
                    }
                    c.done()?;
                    let fw = w
                        .coll_mut("firewalls")
                        .get_mut(&id)
                        .ok_or_else(|| ApiErr::not_found("firewall"))?;
                    let cur = fw["applied_to"]
                        .as_array_mut()
                        .ok_or_else(|| ApiErr::not_found("applied_to"))?;
                    for it in items {
                        let present = cur.iter().any(|x| same(x, &it));
                        if *act == "apply_to_resources" {
                            if present {
                                return Err(ApiErr::new(
                                    422,
                                    "firewall_already_applied",
                                    "firewall is already applied to this resource",
                                ));
                            }
                            cur.push(it);
                        } else {
                            if !present {
                                return Err(ApiErr::new(
                                    422,
                                    "firewall_already_removed",
                                    "firewall is not applied to this resource",
                                ));
                            }
                            cur.retain(|x| !same(x, &it));
                        }
                    }
                    if *act == "apply_to_resources" {
                        "apply_firewall"
                    } else {
                        "remove_firewall"
                    }
                }
                _ => return Err(ApiErr::not_found("action")),
            };
            let a = w.action(cmd, &[(id, "firewall")]);
            reply(201, json!({"actions": [a]}))
        })
}
