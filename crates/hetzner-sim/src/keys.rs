//! `/ssh_keys`, `/primary_ips` and `/placement_groups`.

use axum::http::Method;
use serde_json::{Value, json};

use super::catalog;
use super::http::{ApiErr, ApiResult, reply};
use super::world::{Check, World, action_reply, list_rendered, now, update_basic};
use crate::routes::Routes;

fn plain(_: &World, v: &Value) -> Value {
    v.clone()
}

/// The routes of `/ssh_keys`.
pub(crate) fn ssh_key_routes(routes: Routes) -> Routes {
    routes
        .route("/ssh_keys", Method::GET, |w, r| {
            let fp = r.q.get("fingerprint").map(String::from);
            let items: Vec<Value> = w
                .coll("ssh_keys")
                .values()
                .filter(|k| fp.as_deref().is_none_or(|f| k["fingerprint"] == f))
                .cloned()
                .collect();
            super::http::list("ssh_keys", "/v1/ssh_keys", items, &r.q, &[])
        })
        .route("/ssh_keys", Method::POST, |w, r| {
            let b = &r.body;
            let mut c = Check::default();
            let name = c.req_str(b, "name").map(String::from);
            let pk = c.req_str(b, "public_key").map(String::from);
            if let Some(k) = &pk
                && !(k.starts_with("ssh-") || k.starts_with("ecdsa-"))
            {
                c.err("public_key", "is not a valid SSH public key");
            }
            c.labels(b);
            c.done()?;
            let (name, pk) = (name.unwrap_or_default(), pk.unwrap_or_default());
            if w.name_taken("ssh_keys", &name, None) {
                return Err(ApiErr::unique("name"));
            }
            let fp = fingerprint(&pk);
            if w.coll("ssh_keys")
                .values()
                .any(|k| k["fingerprint"] == fp.as_str())
            {
                return Err(ApiErr::unique("public_key"));
            }
            let id = w.alloc_id();
            let key = json!({"id": id, "name": name, "fingerprint": fp, "public_key": pk,
                             "labels": b.get("labels").cloned().unwrap_or(json!({})), "created": now()});
            w.coll_mut("ssh_keys").insert(id, key.clone());
            reply(201, json!({"ssh_key": key}))
        })
        .route("/ssh_keys/{id}", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("ssh_keys", "ssh key", id)?;
            reply(200, json!({"ssh_key": w.coll("ssh_keys")[&id]}))
        })
        .route("/ssh_keys/{id}", Method::PUT, |w, r| {
            let id = &r.param("id");
            let id = w.must("ssh_keys", "ssh key", id)?;
            update_basic(w, "ssh_keys", id, &r.body, &[])?;
            reply(200, json!({"ssh_key": w.coll("ssh_keys")[&id]}))
        })
        .route("/ssh_keys/{id}", Method::DELETE, |w, r| {
            let id = &r.param("id");
            let id = w.must("ssh_keys", "ssh key", id)?;
            w.coll_mut("ssh_keys").remove(&id);
            Ok(axum::http::StatusCode::NO_CONTENT.into_response_ok())
        })
}

/// A colon-separated pseudo MD5-style fingerprint of a public key (stable per key).
fn fingerprint(pk: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(pk.as_bytes());
    d[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

trait NoContent {
    fn into_response_ok(self) -> axum::response::Response;
}

impl NoContent for axum::http::StatusCode {
    fn into_response_ok(self) -> axum::response::Response {
        axum::response::IntoResponse::into_response(self)
    }
}

/// `204 No Content`.
pub fn no_content() -> ApiResult {
    Ok(axum::http::StatusCode::NO_CONTENT.into_response_ok())
}

/// Creates a primary IP object; returns its id.
pub fn new_primary_ip(
    w: &mut World,
    name: &str,
    typ: &str,
    dc: &Value,
    auto_delete: bool,
) -> Result<u64, ApiErr> {
    let id = w.alloc_id();
    let ip = if typ == "ipv4" {
        w.alloc_public_v4()?.to_string()
    } else {
        World::public_v6(id)
    };
    let p = json!({"id": id, "name": name, "ip": ip, "type": typ, "assignee_id": null,
                   "assignee_type": "server", "auto_delete": auto_delete, "blocked": false,
                   "created": now(), "datacenter": dc, "location": dc["location"],
                   "dns_ptr": [{"ip": ip, "dns_ptr": format!("static.{ip}.clients.your-server.de")}],
                   "labels": {}, "protection": {"delete": false}});
    w.coll_mut("primary_ips").insert(id, p);
    Ok(id)
}

/// The routes of `/primary_ips`.
pub(crate) fn primary_ip_routes(routes: Routes) -> Routes {
    routes
        .route("/primary_ips", Method::GET, |w, r| {
            list_rendered(w, "primary_ips", "primary_ips", &r.q, plain)
        })
        .route("/primary_ips", Method::POST, |w, r| {
            let b = &r.body;
            let mut c = Check::default();
            let name = c.req_str(b, "name").map(String::from);
            let typ = b["type"].as_str().unwrap_or("");
            if typ != "ipv4" && typ != "ipv6" {
                c.err("type", "must be ipv4 or ipv6");
            }
            if b["assignee_type"].as_str().is_some_and(|t| t != "server") {
                c.err("assignee_type", "must be server");
            }
            let loc = b["location"]
                .as_str()
                .or(b["datacenter"].as_str().and_then(|d| d.split('-').next()))
                .unwrap_or("fsn1");
            let dc = catalog::datacenters()
                .into_iter()
                .find(|d| d["location"]["name"] == loc);
            if dc.is_none() {
                c.err("location", "unknown location");
            }
            c.labels(b);
            c.done()?;
            let name = name.unwrap_or_default();
            if w.name_taken("primary_ips", &name, None) {
                return Err(ApiErr::unique("name"));
            }
            let id = new_primary_ip(
                w,
                &name,
                typ,
                &dc.unwrap_or_default(),
                b["auto_delete"] == true,
            )?;
            if let Some(l) = b.get("labels")
                && let Some(p) = w.coll_mut("primary_ips").get_mut(&id)
            {
                p["labels"] = l.clone();
            }
            let action = if let Some(s) = b["assignee_id"].as_u64() {
                w.must("servers", "server", &s.to_string())?;
                if let Some(p) = w.coll_mut("primary_ips").get_mut(&id) {
                    p["assignee_id"] = s.into();
                }
                w.action("create_primary_ip", &[(id, "primary_ip"), (s, "server")])
            } else {
                Value::Null
            };
            reply(
                201,
                json!({"primary_ip": w.coll("primary_ips")[&id], "action": action}),
            )
        })
        .route("/primary_ips/{id}", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("primary_ips", "primary ip", id)?;
            reply(200, json!({"primary_ip": w.coll("primary_ips")[&id]}))
        })
        .route("/primary_ips/{id}", Method::PUT, |w, r| {
            let id = &r.param("id");
            let id = w.must("primary_ips", "primary ip", id)?;
            update_basic(w, "primary_ips", id, &r.body, &["auto_delete"])?;
            reply(200, json!({"primary_ip": w.coll("primary_ips")[&id]}))
        })
        .route("/primary_ips/{id}", Method::DELETE, |w, r| {
            let id = &r.param("id");
            let id = w.must("primary_ips", "primary ip", id)?;
            w.check_lock(id, "primary_ip")?;
            if !w.coll("primary_ips")[&id]["assignee_id"].is_null() {
                return Err(ApiErr::new(
                    422,
                    "resource_in_use",
                    "primary IP is assigned; unassign it first",
                ));
            }
            w.coll_mut("primary_ips").remove(&id);
            no_content()
        })
        .route("/primary_ips/{id}/actions/unassign", Method::POST, |w, r| {
            let id = &r.param("id");
            let id = w.must("primary_ips", "primary ip", id)?;
            w.check_lock(id, "primary_ip")?;
            if let Some(p) = w.coll_mut("primary_ips").get_mut(&id) {
                p["assignee_id"] = Value::Null;
            }
            action_reply(201, w.action("unassign_primary_ip", &[(id, "primary_ip")]))
        })
}

/// A placement group as the API renders it: with the servers in it.
fn render_placement_group(w: &World, p: &Value) -> Value {
    let mut p = p.clone();
    let id = p["id"].as_u64();
    let servers: Vec<u64> = w
        .coll("servers")
        .iter()
        .filter(|(_, s)| s["placement_group"]["id"].as_u64() == id)
        .map(|(i, _)| *i)
        .collect();
    p["servers"] = json!(servers);
    p
}

/// The routes of `/placement_groups`.
pub(crate) fn placement_group_routes(routes: Routes) -> Routes {
    routes
        .route("/placement_groups", Method::GET, |w, r| {
            list_rendered(w, "placement_groups", "placement_groups", &r.q, render_placement_group)
        })
        .route("/placement_groups", Method::POST, |w, r| {
            let mut c = Check::default();
            let name = c.req_str(&r.body, "name").map(String::from);
            if r.body["type"] != "spread" {
                c.err("type", "must be spread");
            }
            c.labels(&r.body);
            c.done()?;
            let name = name.unwrap_or_default();
            if w.name_taken("placement_groups", &name, None) {
                return Err(ApiErr::unique("name"));
            }
            let id = w.alloc_id();
            let p = json!({"id": id, "name": name, "type": "spread", "servers": [], "created": now(),
                           "labels": r.body.get("labels").cloned().unwrap_or(json!({}))});
            w.coll_mut("placement_groups").insert(id, p.clone());
            reply(201, json!({"placement_group": p, "action": null}))
        })
        .route("/placement_groups/{id}", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("placement_groups", "placement group", id)?;
            reply(
                200,
                json!({"placement_group": render_placement_group(w, &w.coll("placement_groups")[&id])}),
            )
        })
        .route("/placement_groups/{id}", Method::PUT, |w, r| {
            let id = &r.param("id");
            let id = w.must("placement_groups", "placement group", id)?;
            update_basic(w, "placement_groups", id, &r.body, &[])?;
            reply(
                200,
                json!({"placement_group": render_placement_group(w, &w.coll("placement_groups")[&id])}),
            )
        })
        .route("/placement_groups/{id}", Method::DELETE, |w, r| {
            let id = &r.param("id");
            let id = w.must("placement_groups", "placement group", id)?;
            w.coll_mut("placement_groups").remove(&id);
            no_content()
        })
}

/// The routes of `/ssh_keys`, `/primary_ips` and `/placement_groups`.
pub(crate) fn routes(routes: Routes) -> Routes {
    placement_group_routes(primary_ip_routes(ssh_key_routes(routes)))
}
