//! `/load_balancers`: create, list, update, delete, and the service / target / network /
//! algorithm actions. Target `health_status` follows the target server's power state.

use axum::http::Method;
use serde_json::{Value, json};

use super::catalog;
use super::http::{ApiErr, ApiResult, reply};
use super::world::{Check, World, action_reply, list_rendered, now, update_basic};
use crate::routes::Routes;

fn health(w: &World, lb: &Value, server: u64, private: bool) -> Vec<Value> {
    let srv = w.get("servers", server);
    let up = srv.is_some_and(|s| s["status"] == "running");
    let reachable = !private
        || srv.is_some_and(|s| {
            s["private_net"].as_array().into_iter().flatten().any(|p| {
                lb["private_net"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|l| l["network"] == p["network"])
            })
        });
    lb["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| json!({"listen_port": s["listen_port"], "status": if up && reachable { "healthy" } else { "unhealthy" }}))
        .collect()
}

/// Renders a load balancer with target health.
pub fn render(w: &World, lb: &Value) -> Value {
    let mut out = lb.clone();
    if let Some(ts) = out["targets"].as_array_mut() {
        for t in ts.iter_mut() {
            let private = t["use_private_ip"] == true;
            match t["type"].as_str() {
                Some("server") => {
                    let id = t["server"]["id"].as_u64().unwrap_or(0);
                    t["health_status"] = json!(health(w, lb, id, private));
                }
                Some("label_selector") => {
                    let sel = t["label_selector"]["selector"].as_str().unwrap_or("");
                    let subs: Vec<Value> = w.select("servers", sel).into_iter().map(|id| {
                        json!({"type": "server", "server": {"id": id}, "use_private_ip": private,
                               "health_status": health(w, lb, id, private)})
                    }).collect();
                    t["targets"] = json!(subs);
                }
                _ => {
                    t["health_status"] = json!(
                        lb["services"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|s| json!({"listen_port": s["listen_port"], "status": "unknown"}))
                            .collect::<Vec<_>>()
                    );
                }
            }
        }
    }
    out
}

fn norm_health(
    c: &mut Check,
    f: &str,
    h: Option<&Value>,
    dest: &Value,
    old: Option<&Value>,
) -> Value {
    let base = old.cloned().unwrap_or_else(|| json!({"protocol": "tcp", "port": dest, "interval": 15, "timeout": 10, "retries": 3, "http": null}));
    let Some(h) = h else { return base };
    let mut out = base;
    for k in ["protocol", "port", "interval", "timeout", "retries", "http"] {
        if let Some(v) = h.get(k) {
            out[k] = v.clone();
        }
    }
    if !matches!(out["protocol"].as_str(), Some("tcp" | "http" | "https")) {
        c.err(format!("{f}.protocol"), "must be tcp, http or https");
    }
    if !out["port"]
        .as_u64()
        .is_some_and(|p| (1..=65535).contains(&p))
    {
        c.err(format!("{f}.port"), "must be a port 1-65535");
    }
    if !out["interval"]
        .as_u64()
        .is_some_and(|p| (3..=60).contains(&p))
    {
        c.err(format!("{f}.interval"), "must be 3-60 seconds");
    }
    if !out["timeout"]
        .as_u64()
        .is_some_and(|p| (1..=60).contains(&p))
    {
        c.err(format!("{f}.timeout"), "must be 1-60 seconds");
    }
    if out["retries"].as_u64().is_none_or(|p| p > 5) {
        c.err(format!("{f}.retries"), "must be 0-5");
    }
    if out["protocol"] != "tcp" && out["http"].is_null() {
        out["http"] = json!({"domain": null, "path": "/", "response": "", "status_codes": ["2??", "3??"], "tls": false});
    }
    if out["protocol"] == "tcp" {
        out["http"] = Value::Null;
    }
    out
}

/// Normalises a service (defaults filled); `old` is the service being updated.
fn norm_service(c: &mut Check, f: &str, s: &Value, old: Option<&Value>) -> Value {
    let mut out = old
        .cloned()
        .unwrap_or_else(|| json!({"proxyprotocol": false}));
    for k in [
        "protocol",
        "listen_port",
        "destination_port",
        "proxyprotocol",
    ] {
        if let Some(v) = s.get(k) {
            out[k] = v.clone();
        }
    }
    let proto = out["protocol"].as_str().unwrap_or("").to_string();
    if !matches!(proto.as_str(), "tcp" | "http" | "https") {
        c.err(format!("{f}.protocol"), "must be tcp, http or https");
    }
    if out["listen_port"].is_null() && proto != "tcp" {
        out["listen_port"] = if proto == "https" { 443 } else { 80 }.into();
    }
    if out["destination_port"].is_null() && proto != "tcp" {
        out["destination_port"] = 80.into();
    }
    for k in ["listen_port", "destination_port"] {
        if !out[k].as_u64().is_some_and(|p| (1..=65535).contains(&p)) {
            c.err(format!("{f}.{k}"), "must be a port 1-65535");
        }
    }
    let dest = out["destination_port"].clone();
    out["health_check"] = norm_health(
        c,
        &format!("{f}.health_check"),
        s.get("health_check"),
        &dest,
        old.map(|o| &o["health_check"]),
    );
    if proto == "tcp" {
        out["http"] = Value::Null;
    } else {
        let mut http = old.map(|o| o["http"].clone()).filter(|h| !h.is_null()).unwrap_or_else(|| json!({"cookie_name": "HCLBSTICKY", "cookie_lifetime": 300, "certificates": [], "redirect_http": false, "sticky_sessions": false}));
        if let Some(h) = s.get("http").and_then(Value::as_object) {
            for (k, v) in h {
                http[k] = v.clone();
            }
        }
        out["http"] = http;
    }
    out
}

/// Validates a target and returns it normalised.
fn norm_target(w: &World, lb: Option<&Value>, t: &Value) -> Result<Value, ApiErr> {
    let private = t["use_private_ip"] == true;
    match t["type"].as_str() {
        Some("server") => {
            let sid = t["server"]["id"]
                .as_u64()
                .ok_or_else(|| ApiErr::invalid(vec![("server.id".into(), "is required".into())]))?;
            let srv = w.get("servers", sid).ok_or_else(|| {
                ApiErr::invalid(vec![(
                    "server.id".into(),
                    format!("server {sid} not found"),
                )])
            })?;
            if private {
                let lb_nets: Vec<Value> = lb
                    .map(|l| l["private_net"].as_array().cloned().unwrap_or_default())
                    .unwrap_or_default();
                if lb_nets.is_empty() {
                    return Err(ApiErr::new(
                        422,
                        "load_balancer_not_attached_to_network",
                        "load balancer is not attached to a network",
                    ));
                }
                let shared = srv["private_net"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| lb_nets.iter().any(|l| l["network"] == p["network"]));
                if !shared {
                    return Err(ApiErr::new(
                        422,
                        "server_not_attached_to_network",
                        format!("server {sid} is not attached to the load balancer's network"),
                    ));
                }
            }
            Ok(json!({"type": "server", "server": {"id": sid}, "use_private_ip": private}))
        }
        Some("label_selector") => {
            let sel = t["label_selector"]["selector"].as_str().unwrap_or("");
            super::labels::parse(sel)
                .map_err(|m| ApiErr::invalid(vec![("label_selector.selector".into(), m)]))?;
            Ok(
                json!({"type": "label_selector", "label_selector": {"selector": sel}, "use_private_ip": private}),
            )
        }
        Some("ip") => {
            let ip = t["ip"]["ip"].as_str().unwrap_or("");
            ip.parse::<std::net::IpAddr>().map_err(|_| {
                ApiErr::invalid(vec![("ip.ip".into(), "is not an IP address".into())])
            })?;
            Ok(json!({"type": "ip", "ip": {"ip": ip}}))
        }
        _ => Err(ApiErr::invalid(vec![(
            "type".into(),
            "must be server, label_selector or ip".into(),
        )])),
    }
}

fn same_target(a: &Value, b: &Value) -> bool {
    a["type"] == b["type"]
        && match a["type"].as_str() {
            Some("server") => a["server"]["id"] == b["server"]["id"],
            Some("label_selector") => {
                a["label_selector"]["selector"] == b["label_selector"]["selector"]
            }
            _ => a["ip"]["ip"] == b["ip"]["ip"],
        }
}

/// The routes of `/load_balancers`.
pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .route("/load_balancers", Method::GET, |w, r| {
            list_rendered(w, "load_balancers", "load_balancers", &r.q, render)
        })
        .route("/load_balancers", Method::POST, |w, r| {
            create(w, &r.body)
        })
        .route("/load_balancers/{id}", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("load_balancers", "load balancer", id)?;
            reply(
                200,
                json!({"load_balancer": render(w, &w.coll("load_balancers")[&id])}),
            )
        })
        .route("/load_balancers/{id}", Method::PUT, |w, r| {
            let id = &r.param("id");
            let id = w.must("load_balancers", "load balancer", id)?;
            update_basic(w, "load_balancers", id, &r.body, &[])?;
            reply(
                200,
                json!({"load_balancer": render(w, &w.coll("load_balancers")[&id])}),
            )
        })
        .route("/load_balancers/{id}", Method::DELETE, |w, r| {
            let id = &r.param("id");
            let id = w.must("load_balancers", "load balancer", id)?;
            w.check_lock(id, "load_balancer")?;
            w.check_protection("load_balancers", id, "delete")?;
            w.coll_mut("load_balancers").remove(&id);
            // The spec says 204, but the live API (and the official Python client, which
            // reads `response["action"]`) answer with an action.
            action_reply(
                200,
                w.action("delete_load_balancer", &[(id, "load_balancer")]),
            )
        })
        .route("/load_balancers/{id}/actions", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("load_balancers", "load balancer", id)?;
            super::actions::list_for(w, id, "load_balancer", &r.q)
        })
        .route("/load_balancers/{id}/actions/{act}", Method::POST, |w, r| {
            let id = &r.param("id");
            let act = &r.param("act");
            let id = w.must("load_balancers", "load balancer", id)?;
            w.check_lock(id, "load_balancer")?;
            action(w, id, act, &r.body)
        })
}

fn create(w: &mut World, b: &Value) -> ApiResult {
    let mut c = Check::default();
    let name = c.req_str(b, "name").map(String::from);
    let typ = b
        .get("load_balancer_type")
        .and_then(|v| catalog::find(catalog::load_balancer_types(), v, None));
    if typ.is_none() {
        c.err(
            "load_balancer_type",
            "is required and must name an existing type",
        );
    }
    let location = match (b.get("location").filter(|l| !l.is_null()), b["network_zone"].as_str()) {
        (Some(l), _) => catalog::location_ref(l),
        (None, Some(z)) => catalog::locations()
            .into_iter()
            .find(|l| l["network_zone"] == z),
        (None, None) => None,
    };
    if location.is_none() {
        c.err(
            "location",
            "location or network_zone is required and must exist",
        );
    }
    let algo = b["algorithm"]["type"].as_str().unwrap_or("round_robin");
    if !matches!(algo, "round_robin" | "least_connections") {
        c.err("algorithm.type", "must be round_robin or least_connections");
    }
    c.labels(b);
    let mut services: Vec<Value> = Vec::new();
    for (i, s) in b["services"].as_array().into_iter().flatten().enumerate() {
        let s = norm_service(&mut c, &format!("services[{i}]"), s, None);
        if services
            .iter()
            .any(|x| x["listen_port"] == s["listen_port"])
        {
            c.err(
                format!("services[{i}].listen_port"),
                "is used by another service",
            );
        }
        services.push(s);
    }
    let net = b["network"].as_u64();
    if let Some(n) = net
        && w.get("networks", n).is_none()
    {
        c.err("network", "network not found");
    }
    c.done()?;
    let name = name.unwrap_or_default();
    if w.name_taken("load_balancers", &name, None) {
        return Err(ApiErr::unique("name"));
    }
    let id = w.alloc_id();
    let public = b["public_interface"] != false;
    let v4 = if public {
        Value::from(w.alloc_public_v4()?.to_string())
    } else {
        Value::Null
    };
    let mut lb = json!({
        "id": id, "name": name, "created": now(),
        "public_net": {"enabled": public,
                       "ipv4": {"ip": v4, "dns_ptr": v4.as_str().map(|ip| format!("static.{ip}.clients.your-server.de"))},
                       "ipv6": {"ip": if public { Value::from(World::public_v6(id).replace("::/64", "::1")) } else { Value::Null }, "dns_ptr": null}},
        "private_net": [], "location": location, "load_balancer_type": typ,
        "protection": {"delete": false}, "labels": b.get("labels").cloned().unwrap_or(json!({})),
        "targets": [], "services": services, "algorithm": {"type": algo},
        "outgoing_traffic": 0, "ingoing_traffic": 0, "included_traffic": 21990232555520u64,
    });
    if let Some(n) = net {
        let ip = w.alloc_private_ip(n).ok_or_else(|| {
            ApiErr::new(
                412,
                "ip_not_available",
                "network has no free IP (does it have a subnet?)",
            )
        })?;
        lb["private_net"] = json!([{"network": n, "ip": ip.to_string()}]);
    }
    let mut targets: Vec<Value> = Vec::new();
    for (i, t) in b["targets"].as_array().into_iter().flatten().enumerate() {
        let t = norm_target(w, Some(&lb), t).map_err(|mut e| {
            if let Some(f) = e.details["fields"].as_array_mut() {
                for x in f {
                    x["name"] = format!("targets[{i}].{}", x["name"].as_str().unwrap_or("")).into();
                }
            }
            e
        })?;
        if targets.iter().any(|x| same_target(x, &t)) {
            return Err(ApiErr::new(
                409,
                "target_already_defined",
                "target is defined twice",
            ));
        }
        targets.push(t);
    }
    lb["targets"] = json!(targets);
    w.coll_mut("load_balancers").insert(id, lb);
    let action = w.action("create_load_balancer", &[(id, "load_balancer")]);
    reply(
        201,
        json!({"load_balancer": render(w, &w.coll("load_balancers")[&id]), "action": action}),
    )
}

fn action(w: &mut World, id: u64, act: &str, b: &Value) -> ApiResult {
    let lb = w.coll("load_balancers")[&id].clone();
    let mut c = Check::default();
    let set = |w: &mut World, f: &str, v: Value| {
        if let Some(l) = w.coll_mut("load_balancers").get_mut(&id) {
            l[f] = v;
        }
    };
    let mut services = lb["services"].as_array().cloned().unwrap_or_default();
    let mut targets = lb["targets"].as_array().cloned().unwrap_or_default();
    let mut extra: Vec<(u64, &str)> = Vec::new();
    let cmd = match act {
        "add_service" => {
            let s = norm_service(&mut c, "", b, None);
            c.done()?;
            if services
                .iter()
                .any(|x| x["listen_port"] == s["listen_port"])
            {
                return Err(ApiErr::new(
                    409,
                    "source_port_already_used",
                    "listen_port is used by another service",
                ));
            }
            services.push(s);
            set(w, "services", json!(services));
            "add_service"
        }
        "update_service" => {
            let pos = services
                .iter()
                .position(|x| x["listen_port"] == b["listen_port"])
                .ok_or_else(|| {
                    ApiErr::invalid(vec![(
                        "listen_port".into(),
                        "no service with this listen_port".into(),
                    )])
                })?;
            let s = norm_service(&mut c, "", b, Some(&services[pos]));
            c.done()?;
            services[pos] = s;
            set(w, "services", json!(services));
            "update_service"
        }
        "delete_service" => {
            let before = services.len();
            services.retain(|x| x["listen_port"] != b["listen_port"]);
            if before == services.len() {
                return Err(ApiErr::invalid(vec![(
                    "listen_port".into(),
                    "no service with this listen_port".into(),
                )]));
            }
            set(w, "services", json!(services));
            "delete_service"
        }
        "add_target" => {
            let t = norm_target(w, Some(&lb), b)?;
            if targets.iter().any(|x| same_target(x, &t)) {
                return Err(ApiErr::new(
                    409,
                    "target_already_defined",
                    "target is already defined",
                ));
            }
            if let Some(s) = t["server"]["id"].as_u64() {
                extra.push((s, "server"));
            }
            targets.push(t);
            set(w, "targets", json!(targets));
            "add_target"
        }
        "remove_target" => {
            let before = targets.len();
            targets.retain(|x| !same_target(x, b));
            if before == targets.len() {
                return Err(ApiErr::invalid(vec![(
                    "target".into(),
                    "no such target".into(),
                )]));
            }
            set(w, "targets", json!(targets));
            "remove_target"
        }
        "attach_to_network" => {
            let (n, ip) = w.attach_to_network(
                b,
                &lb["private_net"],
                (
                    "load_balancer_already_attached",
                    "already attached to this network",
                ),
            )?;
            let mut pn = lb["private_net"].as_array().cloned().unwrap_or_default();
            pn.push(json!({"network": n, "ip": ip.to_string()}));
            set(w, "private_net", json!(pn));
            extra.push((n, "network"));
            "attach_to_network"
        }
        "detach_from_network" => {
            let n = b["network"].as_u64();
            let mut pn = lb["private_net"].as_array().cloned().unwrap_or_default();
            let before = pn.len();
            pn.retain(|p| p["network"].as_u64() != n);
            if before == pn.len() {
                return Err(ApiErr::new(
                    422,
                    "load_balancer_not_attached_to_network",
                    "not attached to this network",
                ));
            }
            set(w, "private_net", json!(pn));
            "detach_from_network"
        }
        "change_algorithm" => {
            let t = b["type"].as_str().unwrap_or("");
            if !matches!(t, "round_robin" | "least_connections") {
                return Err(ApiErr::invalid(vec![(
                    "type".into(),
                    "must be round_robin or least_connections".into(),
                )]));
            }
            set(w, "algorithm", json!({"type": t}));
            "change_algorithm"
        }
        "change_type" => {
            let t = b
                .get("load_balancer_type")
                .and_then(|v| catalog::find(catalog::load_balancer_types(), v, None))
                .ok_or_else(|| {
                    ApiErr::invalid(vec![("load_balancer_type".into(), "unknown type".into())])
                })?;
            set(w, "load_balancer_type", t);
            "change_load_balancer_type"
        }
        "enable_public_interface" | "disable_public_interface" => {
            let on = act == "enable_public_interface";
            if let Some(l) = w.coll_mut("load_balancers").get_mut(&id) {
                l["public_net"]["enabled"] = on.into();
            }
            act
        }
        "change_protection" => {
            if let Some(d) = b["delete"].as_bool()
                && let Some(l) = w.coll_mut("load_balancers").get_mut(&id)
            {
                l["protection"]["delete"] = d.into();
            }
            "change_protection"
        }
        _ => return Err(ApiErr::not_found("action")),
    };
    let mut res = vec![(id, "load_balancer")];
    res.extend(extra);
    action_reply(201, w.action(cmd, &res))
}
