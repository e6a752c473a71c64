//! `/zones` and `/zones/{id_or_name}/rrsets`: DNS in the Cloud API. Zone and rrset deletes
//! answer 201 with an action; record changes go through rrset actions.

use axum::http::Method;
use serde_json::{Value, json};

use super::Req;
use super::http::{ApiErr, ApiResult, list, reply};
use super::world::{Check, World, action_reply, list_rendered, now, update_basic};
use crate::routes::Routes;

const TYPES: &[&str] = &[
    "A", "AAAA", "CAA", "CNAME", "DS", "HINFO", "HTTPS", "MX", "NS", "PTR", "RP", "SOA", "SRV",
    "SVCB", "TLSA", "TXT",
];

fn render(w: &World, z: &Value) -> Value {
    let mut z = z.clone();
    let id = z["id"].as_u64().unwrap_or(0);
    let n: usize = w.rrsets.get(&id).map_or(0, |m| {
        m.values()
            .map(|r| r["records"].as_array().map_or(0, Vec::len))
            .sum()
    });
    z["record_count"] = n.into();
    z
}

fn valid_zone_name(n: &str) -> bool {
    n.contains('.')
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && n == n.to_lowercase()
}

/// Validates records for an rrset type; returns them normalised.
fn check_records(c: &mut Check, typ: &str, recs: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, r) in recs.as_array().into_iter().flatten().enumerate() {
        let v = r["value"].as_str().unwrap_or("");
        let ok = match typ {
            "A" => v.parse::<std::net::Ipv4Addr>().is_ok(),
            "AAAA" => v.parse::<std::net::Ipv6Addr>().is_ok(),
            "CNAME" | "NS" | "PTR" => !v.is_empty() && v.ends_with('.'),
            "TXT" => v.starts_with('"') && v.ends_with('"') && v.len() >= 2,
            _ => !v.is_empty(),
        };
        if !ok {
            c.err(
                format!("records[{i}].value"),
                format!("{v:?} is not a valid {typ} record value"),
            );
        }
        out.push(
            json!({"value": v, "comment": r.get("comment").and_then(Value::as_str).unwrap_or("")}),
        );
    }
    out
}

fn new_rrset(
    zone: u64,
    name: &str,
    typ: &str,
    ttl: Value,
    records: Vec<Value>,
    labels: Value,
) -> Value {
    json!({"id": format!("{name}/{typ}"), "name": name, "type": typ, "ttl": ttl, "labels": labels,
           "protection": {"change": false}, "records": records, "zone": zone})
}

/// The routes of `/zones` (the zone by id or name).
fn zone_routes(routes: Routes) -> Routes {
    routes
        .route("/zones", Method::GET, |w, r| {
            list_rendered(w, "zones", "zones", &r.q, render)
        })
        .route("/zones", Method::POST, |w, r| {
            create(w, &r.body)
        })
        .route("/zones/{z}", Method::GET, |w, r| {
            let z = &r.param("z");
            let id = w.must("zones", "zone", z)?;
            reply(200, json!({"zone": render(w, &w.coll("zones")[&id])}))
        })
        .route("/zones/{z}", Method::PUT, |w, r| {
            let z = &r.param("z");
            let id = w.must("zones", "zone", z)?;
            if r.body.get("name").is_some() {
                return Err(ApiErr::invalid(vec![(
                    "name".into(),
                    "a zone cannot be renamed".into(),
                )]));
            }
            update_basic(w, "zones", id, &r.body, &[])?;
            reply(200, json!({"zone": render(w, &w.coll("zones")[&id])}))
        })
        .route("/zones/{z}", Method::DELETE, |w, r| {
            let z = &r.param("z");
            let id = w.must("zones", "zone", z)?;
            w.check_lock(id, "zone")?;
            w.coll_mut("zones").remove(&id);
            w.rrsets.remove(&id);
            action_reply(201, w.action("delete_zone", &[(id, "zone")]))
        })
        .route("/zones/{z}/actions", Method::GET, |w, r| {
            let z = &r.param("z");
            let id = w.must("zones", "zone", z)?;
            super::actions::list_for(w, id, "zone", &r.q)
        })
        .route("/zones/{z}/actions/{act}", Method::POST, |w, r| {
            let z = &r.param("z");
            let act = &r.param("act");
            let id = w.must("zones", "zone", z)?;
            w.check_lock(id, "zone")?;
            match *act {
                "change_ttl" => {
                    let ttl = r.body["ttl"]
                        .as_u64()
                        .filter(|t| (60..=2_147_483_647).contains(t))
                        .ok_or_else(|| {
                            ApiErr::invalid(vec![("ttl".into(), "must be at least 60".into())])
                        })?;
                    if let Some(z) = w.coll_mut("zones").get_mut(&id) {
                        z["ttl"] = ttl.into();
                    }
                }
                "change_protection" => {
                    if let Some(d) = r.body["delete"].as_bool()
                        && let Some(z) = w.coll_mut("zones").get_mut(&id)
                    {
                        z["protection"]["delete"] = d.into();
                    }
                }
                _ => return Err(ApiErr::not_found("action")),
            }
            action_reply(
                201,
                w.action(
                    &format!("{act}_zone").replace("change_ttl_zone", "change_zone_ttl"),
                    &[(id, "zone")],
                ),
            )
        })
}

fn create(w: &mut World, b: &Value) -> ApiResult {
    let mut c = Check::default();
    let name = c.req_str(b, "name").map(String::from);
    if let Some(n) = &name
        && !valid_zone_name(n)
    {
        c.err("name", "must be a valid lowercase domain name");
    }
    let mode = b["mode"].as_str().unwrap_or("");
    if mode != "primary" && mode != "secondary" {
        c.err("mode", "must be primary or secondary");
    }
    if mode == "secondary"
        && b["primary_nameservers"]
            .as_array()
            .is_none_or(|a| a.is_empty())
    {
        c.err("primary_nameservers", "is required for secondary zones");
    }
    let ttl = b["ttl"].as_u64().unwrap_or(3600);
    if ttl < 60 {
        c.err("ttl", "must be at least 60");
    }
    c.labels(b);
    c.done()?;
    let name = name.unwrap_or_default();
    if w.name_taken("zones", &name, None) {
        return Err(ApiErr::unique("name"));
    }
    let id = w.alloc_id();
    let ns = [
        "hydrogen.ns.hetzner.com.",
        "oxygen.ns.hetzner.com.",
        "helium.ns.hetzner.de.",
    ];
    let z = json!({"id": id, "name": name, "created": now(), "mode": mode, "ttl": ttl,
                   "labels": b.get("labels").cloned().unwrap_or(json!({})),
                   "protection": {"delete": false}, "status": "ok", "registrar": "other",
                   "record_count": 0,
                   "primary_nameservers": b.get("primary_nameservers").cloned().unwrap_or(json!([])),
                   "authoritative_nameservers": {"assigned": ns, "delegated": [], "delegation_last_check": null, "delegation_status": "unknown"}});
    w.coll_mut("zones").insert(id, z);
    let mut sets = std::collections::BTreeMap::new();
    if mode == "primary" {
        let soa = format!(
            "hydrogen.ns.hetzner.com. dns.hetzner.com. {} 86400 10800 3600000 3600",
            2026010101
        );
        sets.insert(
            "@/SOA".to_string(),
            new_rrset(
                id,
                "@",
                "SOA",
                Value::Null,
                vec![json!({"value": soa, "comment": ""})],
                json!({}),
            ),
        );
        sets.insert(
            "@/NS".to_string(),
            new_rrset(
                id,
                "@",
                "NS",
                Value::Null,
                ns.iter()
                    .map(|n| json!({"value": n, "comment": ""}))
                    .collect(),
                json!({}),
            ),
        );
    }
    w.rrsets.insert(id, sets);
    let action = w.action("create_zone", &[(id, "zone")]);
    reply(
        201,
        json!({"zone": render(w, &w.coll("zones")[&id]), "action": action}),
    )
}

/// The routes of `/zones/{z}/rrsets`; `{z}` is the zone's id or name.
fn rrset_routes(routes: Routes) -> Routes {
    routes
        .route("/zones/{z}/rrsets", Method::GET, |w, r| {
            let zone = w.must("zones", "zone", r.param("z"))?;
            let set = w.rrsets.entry(zone).or_default();
            let types = r.q.all("type");
            let items: Vec<Value> = set
                .values()
                .filter(|x| types.is_empty() || types.contains(&x["type"].as_str().unwrap_or("")))
                .cloned()
                .collect();
            list(
                "rrsets",
                &format!("/v1/zones/{zone}/rrsets"),
                items,
                &r.q,
                &[],
            )
        })
        .route("/zones/{z}/rrsets", Method::POST, |w, r| {
            let zone = w.must("zones", "zone", r.param("z"))?;
            w.rrsets.entry(zone).or_default();
            let b = &r.body;
            let mut c = Check::default();
            let name = c.req_str(b, "name").map(|s| s.to_lowercase());
            let typ = b["type"].as_str().unwrap_or("").to_string();
            if !TYPES.contains(&typ.as_str()) {
                c.err("type", "is not a supported record type");
            }
            let records = check_records(&mut c, &typ, &b["records"]);
            if records.is_empty() {
                c.err("records", "must not be empty");
            }
            c.labels(b);
            c.done()?;
            let name = name.unwrap_or_default();
            let rid = format!("{name}/{typ}");
            let set = w.rrsets.entry(zone).or_default();
            if set.contains_key(&rid) {
                return Err(ApiErr::unique("name"));
            }
            let rr = new_rrset(
                zone,
                &name,
                &typ,
                b.get("ttl").cloned().unwrap_or(Value::Null),
                records,
                b.get("labels").cloned().unwrap_or(json!({})),
            );
            set.insert(rid, rr.clone());
            let action = w.action("create_rrset", &[(zone, "zone")]);
            reply(201, json!({"rrset": rr, "action": action}))
        })
        .route("/zones/{z}/rrsets/{name}/{typ}", Method::GET, |w, r| {
            let (_, _, cur) = rrset(w, r)?;
            reply(200, json!({"rrset": cur}))
        })
        .route("/zones/{z}/rrsets/{name}/{typ}", Method::PUT, |w, r| {
            let (zone, rid, _) = rrset(w, r)?;
            let set = w.rrsets.entry(zone).or_default();
            let mut c = Check::default();
                    c.labels(&r.body);
                    c.done()?;
                    let e = set
                        .get_mut(&rid)
                        .ok_or_else(|| ApiErr::not_found("rrset"))?;
                    if let Some(l) = r.body.get("labels") {
                        e["labels"] = l.clone();
                    }
                    reply(200, json!({"rrset": e.clone()}))
        })
        .route("/zones/{z}/rrsets/{name}/{typ}", Method::DELETE, |w, r| {
            let (zone, rid, _) = rrset(w, r)?;
            w.check_lock(zone, "zone")?;
                    w.rrsets.entry(zone).or_default().remove(&rid);
                    action_reply(201, w.action("delete_rrset", &[(zone, "zone")]))
        })
        .route("/zones/{z}/rrsets/{name}/{typ}/actions/{act}", Method::POST, |w, r| {
            let (zone, rid, cur) = rrset(w, r)?;
            let typ = r.param("typ");
            let act = &r.param("act");
            w.check_lock(zone, "zone")?;
                    let mut c = Check::default();
                    let mut recs = cur["records"].as_array().cloned().unwrap_or_default();
                    let mut ttl = cur["ttl"].clone();
                    match *act {
                        "set_records" | "add_records" | "remove_records" | "update_records" => {
                            let given = check_records(&mut c, typ, &r.body["records"]);
                            c.done()?;
                            match *act {
                                "set_records" => recs = given,
                                "add_records" => {
                                    for g in given {
                                        if !recs.iter().any(|x| x["value"] == g["value"]) {
                                            recs.push(g);
                                        }
                                    }
                                    if let Some(t) = r.body.get("ttl") {
                                        ttl = t.clone();
                                    }
                                }
                                "update_records" => {
                                    for g in given {
                                        if let Some(x) =
                                            recs.iter_mut().find(|x| x["value"] == g["value"])
                                        {
                                            x["comment"] = g["comment"].clone();
                                        }
                                    }
                                }
                                _ => {
                                    recs.retain(|x| !given.iter().any(|g| g["value"] == x["value"]))
                                }
                            }
                        }
                        "change_ttl" => ttl = r.body.get("ttl").cloned().unwrap_or(Value::Null),
                        "change_protection" => {}
                        _ => return Err(ApiErr::not_found("action")),
                    }
                    let set = w.rrsets.entry(zone).or_default();
                    if recs.is_empty() {
                        set.remove(&rid);
                    } else if let Some(e) = set.get_mut(&rid) {
                        e["records"] = json!(recs);
                        e["ttl"] = ttl;
                        if *act == "change_protection"
                            && let Some(ch) = r.body["change"].as_bool()
                        {
                            e["protection"]["change"] = ch.into();
                        }
                    }
                    let cmd = format!("{act}_rrset");
                    action_reply(201, w.action(&cmd, &[(zone, "zone")]))
        })
}

/// The zone, the rrset's id (`name/TYPE`) and the rrset a request names (404 `not_found`
/// for a missing zone or rrset).
fn rrset(w: &mut World, r: &Req) -> Result<(u64, String, Value), ApiErr> {
    let zone = w.must("zones", "zone", r.param("z"))?;
    let rid = format!("{}/{}", r.param("name"), r.param("typ"));
    let cur = w
        .rrsets
        .entry(zone)
        .or_default()
        .get(&rid)
        .cloned()
        .ok_or_else(|| ApiErr::not_found("rrset"))?;
    Ok((zone, rid, cur))
}

/// The routes of `/zones` and their rrsets.
pub(crate) fn routes(routes: Routes) -> Routes {
    rrset_routes(zone_routes(routes))
}
