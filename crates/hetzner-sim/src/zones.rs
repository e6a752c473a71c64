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
            let id = w.must("zones", "zone", r.param("z"))?;
            w.check_protection("zones", id, "delete")?;
            w.coll_mut("zones").remove(&id);
            w.rrsets.remove(&id);
            action_reply(201, w.action("delete_zone", &[(id, "zone")]))
        })
        .route("/zones/{z}/zonefile", Method::GET, |w, r| {
            let id = w.must("zones", "zone", r.param("z"))?;
            primary_only(w, id)?;
            reply(200, json!({"zonefile": export(w, id)}))
        })
        .route("/zones/{z}/actions", Method::GET, |w, r| {
            let z = &r.param("z");
            let id = w.must("zones", "zone", z)?;
            super::actions::list_for(w, id, "zone", &r.q)
        })
        .route("/zones/{z}/actions/{act}", Method::POST, |w, r| {
            let id = w.must("zones", "zone", r.param("z"))?;
            zone_action(w, id, r.param("act"), &r.body)
        })
}

/// 422 `incorrect_zone_mode` unless zone `id` is a primary zone.
fn primary_only(w: &World, id: u64) -> Result<(), ApiErr> {
    if w.get("zones", id).is_some_and(|z| z["mode"] == "primary") {
        Ok(())
    } else {
        Err(ApiErr::new(
            422,
            "incorrect_zone_mode",
            "this operation is not supported for this zone's mode",
        ))
    }
}

/// The zone actions. None locks the zone: the API queues a zone's changes (see [`crate::locks`]).
fn zone_action(w: &mut World, id: u64, act: &str, b: &Value) -> ApiResult {
    fn zone(w: &mut World, id: u64) -> Result<&mut Value, ApiErr> {
        w.coll_mut("zones")
            .get_mut(&id)
            .ok_or_else(|| ApiErr::not_found("zone"))
    }
    match act {
        "change_ttl" => {
            let ttl = b["ttl"]
                .as_u64()
                .filter(|t| (60..=2_147_483_647).contains(t))
                .ok_or_else(|| {
                    ApiErr::invalid(vec![("ttl".into(), "must be at least 60".into())])
                })?;
            zone(w, id)?["ttl"] = ttl.into();
        }
        "change_protection" => {
            if let Some(d) = b.get("delete") {
                let d = d.as_bool().ok_or_else(|| {
                    ApiErr::invalid(vec![("delete".into(), "must be a boolean".into())])
                })?;
                zone(w, id)?["protection"]["delete"] = d.into();
            }
        }
        "change_primary_nameservers" => {
            if zone(w, id)?["mode"] != "secondary" {
                return Err(ApiErr::new(
                    422,
                    "incorrect_zone_mode",
                    "primary nameservers are only for secondary zones",
                ));
            }
            let ns = check_nameservers(&b["primary_nameservers"])?;
            zone(w, id)?["primary_nameservers"] = json!(ns);
        }
        "import_zonefile" => {
            primary_only(w, id)?;
            let text = b["zonefile"].as_str().ok_or_else(|| {
                ApiErr::invalid(vec![("zonefile".into(), "is required".into())])
            })?;
            let name = zone(w, id)?["name"].as_str().unwrap_or("").to_string();
            let sets = parse_zonefile(id, &name, text)?;
            if w.rrsets
                .get(&id)
                .is_some_and(|m| m.values().any(|r| r["protection"]["change"] == true))
            {
                return Err(ApiErr::new(
                    423,
                    "protected",
                    "RRSet(s) of the zone are change protected",
                ));
            }
            w.rrsets.insert(id, sets);
        }
        _ => return Err(ApiErr::not_found("action")),
    }
    action_reply(201, w.action(act, &[(id, "zone")]))
}

/// Validates `primary_nameservers` (`[{address, port, tsig_algorithm, tsig_key}]`).
fn check_nameservers(v: &Value) -> Result<Vec<Value>, ApiErr> {
    let mut c = Check::default();
    let mut out = Vec::new();
    let Some(list) = v.as_array() else {
        c.err("primary_nameservers", "is required");
        return Err(c.done().unwrap_err());
    };
    for (i, ns) in list.iter().enumerate() {
        let f = |k: &str| format!("primary_nameservers[{i}].{k}");
        if ns["address"]
            .as_str()
            .is_none_or(|a| a.parse::<std::net::IpAddr>().is_err())
        {
            c.err(f("address"), "must be an IPv4 or IPv6 address");
        }
        let port = ns.get("port").filter(|p| !p.is_null()).cloned().unwrap_or(json!(53));
        if !port.as_u64().is_some_and(|p| (1..=65535).contains(&p)) {
            c.err(f("port"), "must be a port 1-65535");
        }
        if ns
            .get("tsig_algorithm")
            .is_some_and(|a| !matches!(a.as_str(), Some("hmac-md5" | "hmac-sha1" | "hmac-sha256")))
        {
            c.err(f("tsig_algorithm"), "must be hmac-md5, hmac-sha1 or hmac-sha256");
        }
        let mut n = json!({"address": ns["address"], "port": port});
        for k in ["tsig_algorithm", "tsig_key"] {
            if let Some(v) = ns.get(k) {
                n[k] = v.clone();
            }
        }
        out.push(n);
    }
    c.done()?;
    Ok(out)
}

/// The zone file of zone `id` in BIND format.
fn export(w: &World, id: u64) -> String {
    let z = &w.coll("zones")[&id];
    let mut out = format!(
        "$ORIGIN\t{}.\n$TTL\t{}\n\n",
        z["name"].as_str().unwrap_or(""),
        z["ttl"]
    );
    for r in w.rrsets.get(&id).into_iter().flat_map(|m| m.values()) {
        let ttl = r["ttl"].as_u64().map(|t| format!("{t}\t")).unwrap_or_default();
        for rec in r["records"].as_array().into_iter().flatten() {
            let comment = rec["comment"].as_str().unwrap_or("");
            out.push_str(&format!(
                "{}\tIN\t{ttl}{}\t{}{}\n",
                r["name"].as_str().unwrap_or("@"),
                r["type"].as_str().unwrap_or(""),
                rec["value"].as_str().unwrap_or(""),
                if comment.is_empty() { String::new() } else { format!(" ; {comment}") }
            ));
        }
    }
    out
}

/// Splits a zone-file line into its data and its `;` comment (outside quotes).
fn split_comment(line: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, ch) in line.char_indices() {
        match ch {
            '"' => quoted = !quoted,
            ';' if !quoted => return (&line[..i], line[i + 1..].trim()),
            _ => {}
        }
    }
    (line, "")
}

/// Parses a BIND zone file for zone `zone` into rrsets (`$ORIGIN`, `$TTL`, owner names `@`,
/// relative or absolute, optional TTL and class, `( … )` continuations, `;` comments that
/// become record comments). Any bad line is `invalid_input` on `zonefile`.
fn parse_zonefile(
    zone_id: u64,
    zone: &str,
    text: &str,
) -> Result<std::collections::BTreeMap<String, Value>, ApiErr> {
    let bad = |n: usize, m: String| ApiErr::invalid(vec![("zonefile".into(), format!("line {n}: {m}"))]);
    let origin = format!("{zone}.");
    let mut sets: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    let mut owner = String::from("@");
    let mut pending: Option<(usize, String, String)> = None;
    let mut entries: Vec<(usize, String, String)> = Vec::new();
    // Join `( … )` continuations into one entry per record.
    for (i, raw) in text.lines().enumerate() {
        let (data, comment) = split_comment(raw);
        match pending.as_mut() {
            Some((_, d, c)) => {
                d.push(' ');
                d.push_str(data);
                if c.is_empty() {
                    c.push_str(comment);
                }
            }
            None => pending = Some((i + 1, data.to_string(), comment.to_string())),
        }
        let done = pending
            .as_ref()
            .is_some_and(|(_, d, _)| d.matches('(').count() <= d.matches(')').count());
        if done && let Some(e) = pending.take() {
            entries.push(e);
        }
    }
    if let Some((n, _, _)) = pending {
        return Err(bad(n, "unbalanced parentheses".into()));
    }
    for (n, data, comment) in entries {
        if data.trim().is_empty() {
            continue;
        }
        let starts_blank = data.starts_with([' ', '\t']);
        let data = data.replace(['(', ')'], " ");
        let mut toks: Vec<&str> = data.split_whitespace().collect();
        match toks.first() {
            Some(&"$ORIGIN") => {
                if toks.get(1).map(|o| o.trim_end_matches('.')) != Some(zone) {
                    return Err(bad(n, format!("$ORIGIN must be {origin}")));
                }
                continue;
            }
            Some(&"$TTL") => continue,
            Some(d) if d.starts_with('$') => return Err(bad(n, format!("unsupported directive {d}"))),
            _ => {}
        }
        if !starts_blank {
            let name = toks.remove(0);
            owner = if name == "@" || name == origin {
                "@".into()
            } else if let Some(rel) = name.strip_suffix(&format!(".{origin}")) {
                rel.to_lowercase()
            } else if name.ends_with('.') {
                return Err(bad(n, format!("{name} is outside the zone")));
            } else {
                name.to_lowercase()
            };
        }
        let mut ttl = Value::Null;
        let mut typ = None;
        while let Some(t) = toks.first().copied() {
            toks.remove(0);
            if let Ok(v) = t.parse::<u64>() {
                ttl = v.into();
            } else if t.eq_ignore_ascii_case("IN") {
            } else {
                typ = Some(t.to_uppercase());
                break;
            }
        }
        let typ = typ.ok_or_else(|| bad(n, "no record type".into()))?;
        if !TYPES.contains(&typ.as_str()) {
            return Err(bad(n, format!("unsupported record type {typ}")));
        }
        let value = toks.join(" ");
        let mut c = Check::default();
        let recs = check_records(&mut c, &typ, &json!([{"value": value, "comment": comment}]));
        if let Err(e) = c.done() {
            return Err(bad(n, e.message));
        }
        let rid = format!("{owner}/{typ}");
        let set = sets
            .entry(rid)
            .or_insert_with(|| new_rrset(zone_id, &owner, &typ, ttl.clone(), vec![], json!({})));
        if let Some(a) = set["records"].as_array_mut()
            && !a.iter().any(|x| x["value"] == recs[0]["value"])
        {
            a.extend(recs);
        }
    }
    Ok(sets)
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
    let nameservers = match b.get("primary_nameservers") {
        Some(ns) if mode == "secondary" => check_nameservers(ns)?,
        _ => Vec::new(),
    };
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
    // A primary zone may start from a zone file and extra rrsets (ignored for secondaries).
    let imported = match b["zonefile"].as_str() {
        Some(text) if mode == "primary" => Some(parse_zonefile(id, &name, text)?),
        _ => None,
    };
    let mut extra = Vec::new();
    if mode == "primary" {
        let mut c = Check::default();
        for (i, r) in b["rrsets"].as_array().into_iter().flatten().enumerate() {
            let rname = r["name"].as_str().unwrap_or("").to_lowercase();
            let typ = r["type"].as_str().unwrap_or("");
            if rname.is_empty() || !TYPES.contains(&typ) {
                c.err(format!("rrsets[{i}]"), "needs a name and a supported type");
                continue;
            }
            let recs = check_records(&mut c, typ, &r["records"]);
            extra.push(new_rrset(
                id,
                &rname,
                typ,
                r.get("ttl").cloned().unwrap_or(Value::Null),
                recs,
                r.get("labels").cloned().unwrap_or(json!({})),
            ));
        }
        c.done()?;
    }
    let ns = [
        "hydrogen.ns.hetzner.com.",
        "oxygen.ns.hetzner.com.",
        "helium.ns.hetzner.de.",
    ];
    let z = json!({"id": id, "name": name, "created": now(), "mode": mode, "ttl": ttl,
                   "labels": b.get("labels").cloned().unwrap_or(json!({})),
                   "protection": {"delete": false}, "status": "ok", "registrar": "other",
                   "record_count": 0,
                   "primary_nameservers": nameservers,
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
    sets.extend(imported.unwrap_or_default());
    for r in extra {
        sets.insert(
            format!("{}/{}", r["name"].as_str().unwrap_or(""), r["type"].as_str().unwrap_or("")),
            r,
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
            primary_only(w, zone)?;
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
            primary_only(w, zone)?;
            let mut c = Check::default();
            c.labels(&r.body);
            c.done()?;
            let e = w
                .rrsets
                .entry(zone)
                .or_default()
                .get_mut(&rid)
                .ok_or_else(|| ApiErr::not_found("rrset"))?;
            if let Some(l) = r.body.get("labels") {
                e["labels"] = l.clone();
            }
            reply(200, json!({"rrset": e.clone()}))
        })
        .route("/zones/{z}/rrsets/{name}/{typ}", Method::DELETE, |w, r| {
            let (zone, rid, cur) = rrset(w, r)?;
            primary_only(w, zone)?;
            unprotected(&cur)?;
            w.rrsets.entry(zone).or_default().remove(&rid);
            action_reply(201, w.action("delete_rrset", &[(zone, "zone")]))
        })
        .route("/zones/{z}/rrsets/{name}/{typ}/actions/{act}", Method::POST, |w, r| {
            let (zone, rid, cur) = rrset(w, r)?;
            primary_only(w, zone)?;
            rrset_action(w, zone, &rid, &cur, r)
        })
}

/// 423 `protected` when an rrset is change protected.
fn unprotected(rrset: &Value) -> Result<(), ApiErr> {
    if rrset["protection"]["change"] == true {
        return Err(ApiErr::new(
            423,
            "protected",
            format!("RRSet {} is change protected", rrset["id"].as_str().unwrap_or("")),
        ));
    }
    Ok(())
}

/// The rrset actions (commands as the API names them: `set_rrset_records`, …). None locks
/// the zone: the API queues a zone's changes (see [`crate::locks`]).
fn rrset_action(w: &mut World, zone: u64, rid: &str, cur: &Value, r: &Req) -> ApiResult {
    let typ = r.param("typ");
    let act = r.param("act");
    let b = &r.body;
    let mut c = Check::default();
    let mut recs = cur["records"].as_array().cloned().unwrap_or_default();
    let mut ttl = cur["ttl"].clone();
    let mut protection = cur["protection"].clone();
    if act != "change_protection" {
        unprotected(cur)?;
    }
    let cmd = match act {
        "set_records" | "add_records" | "remove_records" | "update_records" => {
            let given = check_records(&mut c, typ, &b["records"]);
            c.done()?;
            match act {
                "set_records" => recs = given,
                "add_records" => {
                    for g in given {
                        if !recs.iter().any(|x| x["value"] == g["value"]) {
                            recs.push(g);
                        }
                    }
                    if let Some(t) = b.get("ttl") {
                        ttl = t.clone();
                    }
                }
                "update_records" => {
                    for g in given {
                        if let Some(x) = recs.iter_mut().find(|x| x["value"] == g["value"]) {
                            x["comment"] = g["comment"].clone();
                        }
                    }
                }
                _ => recs.retain(|x| !given.iter().any(|g| g["value"] == x["value"])),
            }
            format!("{}_rrset_records", act.trim_end_matches("_records"))
        }
        "change_ttl" => {
            ttl = b.get("ttl").cloned().unwrap_or(Value::Null);
            if !(ttl.is_null() || ttl.as_u64().is_some_and(|t| (60..=2_147_483_647).contains(&t))) {
                return Err(ApiErr::invalid(vec![(
                    "ttl".into(),
                    "must be between 60 and 2147483647, or null".into(),
                )]));
            }
            "change_rrset_ttl".into()
        }
        "change_protection" => {
            let ch = b["change"].as_bool().ok_or_else(|| {
                ApiErr::invalid(vec![("change".into(), "must be a boolean".into())])
            })?;
            protection["change"] = ch.into();
            "change_rrset_protection".into()
        }
        _ => return Err(ApiErr::not_found("action")),
    };
    let set = w.rrsets.entry(zone).or_default();
    if recs.is_empty() {
        set.remove(rid);
    } else if let Some(e) = set.get_mut(rid) {
        e["records"] = json!(recs);
        e["ttl"] = ttl;
        e["protection"] = protection;
    }
    action_reply(201, w.action(&cmd, &[(zone, "zone")]))
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
