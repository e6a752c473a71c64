//! `/ssh_keys`, `/primary_ips` and `/placement_groups`.

use axum::http::Method;
use serde_json::{Value, json};

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
            let fp = pk.as_deref().and_then(fingerprint);
            if pk.is_some()
                && (fp.is_none()
                    || !pk
                        .as_deref()
                        .is_some_and(|k| k.starts_with("ssh-") || k.starts_with("ecdsa-")))
            {
                c.err("public_key", "is not a valid SSH public key");
            }
            c.labels(b);
            c.done()?;
            let (name, pk, fp) = (
                name.unwrap_or_default(),
                pk.unwrap_or_default(),
                fp.unwrap_or_default(),
            );
            if w.name_taken("ssh_keys", &name, None) {
                return Err(ApiErr::unique("name"));
            }
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

/// The MD5 fingerprint of a public key as the API reports it: the MD5 of the key blob (the
/// base64 field of `type blob [comment]`), colon-separated lowercase hex. `None` when the
/// blob is not base64.
fn fingerprint(pk: &str) -> Option<String> {
    use md5::Digest;
    let blob = base64_decode(pk.split_whitespace().nth(1)?)?;
    let d = md5::Md5::digest(&blob);
    Some(
        d.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

/// Standard base64 (with or without padding).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        acc = (acc << 6) | u32::from(val(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6 && !out.is_empty()).then_some(out)
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
            let (_, dc) = super::servers::placement(&mut c, b);
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
            w.check_protection("primary_ips", id, "delete")?;
            // Since 1 May 2026 the API no longer unassigns on delete.
            if !w.coll("primary_ips")[&id]["assignee_id"].is_null() {
                return Err(ApiErr::new(
                    422,
                    "must_be_unassigned",
                    "primary IP is still assigned; unassign it first",
                ));
            }
            w.coll_mut("primary_ips").remove(&id);
            no_content()
        })
        .route("/primary_ips/{id}/actions", Method::GET, |w, r| {
            let id = w.must("primary_ips", "primary ip", r.param("id"))?;
            super::actions::list_for(w, id, "primary_ip", &r.q)
        })
        .route("/primary_ips/{id}/actions/{act}", Method::POST, |w, r| {
            let id = w.must("primary_ips", "primary ip", r.param("id"))?;
            w.check_lock(id, "primary_ip")?;
            primary_ip_action(w, id, r.param("act"), &r.body)
        })
}

/// The primary IP `id`, mutably (404 if gone).
fn primary_ip(w: &mut World, id: u64) -> Result<&mut Value, ApiErr> {
    w.coll_mut("primary_ips")
        .get_mut(&id)
        .ok_or_else(|| ApiErr::not_found("primary ip"))
}

/// The server a primary IP action works on: it must exist, be unlocked and be off.
fn stopped_server(w: &World, sid: u64) -> Result<(), ApiErr> {
    let s = w
        .get("servers", sid)
        .ok_or_else(|| ApiErr::invalid(vec![("assignee_id".into(), "server not found".into())]))?;
    w.check_lock(sid, "server")?;
    if s["status"] != "off" {
        return Err(ApiErr::new(
            422,
            "server_not_stopped",
            "the server must be powered off",
        ));
    }
    Ok(())
}

/// `assign`, `unassign`, `change_protection` and `change_dns_ptr` of a primary IP.
fn primary_ip_action(w: &mut World, id: u64, act: &str, b: &Value) -> ApiResult {
    let ip = w.coll("primary_ips")[&id].clone();
    let family = if ip["type"] == "ipv6" { "ipv6" } else { "ipv4" };
    let (cmd, server) = match act {
        "assign" => {
            let sid = b["assignee_id"].as_u64().ok_or_else(|| {
                ApiErr::invalid(vec![("assignee_id".into(), "is required".into())])
            })?;
            if b.get("assignee_type").is_some_and(|t| t != "server") {
                return Err(ApiErr::invalid(vec![(
                    "assignee_type".into(),
                    "must be server".into(),
                )]));
            }
            stopped_server(w, sid)?;
            if !ip["assignee_id"].is_null() {
                return Err(ApiErr::new(
                    422,
                    "primary_ip_already_assigned",
                    "primary IP is already assigned",
                ));
            }
            if !w.coll("servers")[&sid]["public_net"][family].is_null() {
                return Err(ApiErr::new(
                    422,
                    if family == "ipv4" { "server_has_ipv4" } else { "server_has_ipv6" },
                    format!("the server already has an {family} address"),
                ));
            }
            let p = primary_ip(w, id)?;
            p["assignee_id"] = sid.into();
            p["assignee_type"] = "server".into();
            let addr = p["ip"].clone();
            let net = if family == "ipv4" {
                let a = addr.as_str().unwrap_or("");
                json!({"id": id, "ip": addr, "blocked": false,
                       "dns_ptr": format!("static.{a}.clients.your-server.de")})
            } else {
                json!({"id": id, "ip": addr, "blocked": false, "dns_ptr": []})
            };
            if let Some(s) = w.coll_mut("servers").get_mut(&sid) {
                s["public_net"][family] = net;
            }
            ("assign_primary_ip", Some(sid))
        }
        "unassign" => {
            let sid = ip["assignee_id"].as_u64();
            if let Some(sid) = sid
                && w.get("servers", sid).is_some()
            {
                stopped_server(w, sid)?;
                if let Some(s) = w.coll_mut("servers").get_mut(&sid) {
                    s["public_net"][family] = Value::Null;
                }
            }
            primary_ip(w, id)?["assignee_id"] = Value::Null;
            ("unassign_primary_ip", sid)
        }
        "change_protection" => {
            let d = b["delete"].as_bool().ok_or_else(|| {
                ApiErr::invalid(vec![("delete".into(), "must be a boolean".into())])
            })?;
            if d && ip["auto_delete"] == true {
                return Err(ApiErr::invalid(vec![(
                    "delete".into(),
                    "delete protection needs auto_delete to be false".into(),
                )]));
            }
            primary_ip(w, id)?["protection"]["delete"] = d.into();
            ("change_protection", None)
        }
        "change_dns_ptr" => {
            let addr = b["ip"].as_str().unwrap_or("").to_string();
            let own = ip["ip"].as_str().unwrap_or("");
            let ok = if family == "ipv4" {
                addr == own
            } else {
                own.split_once("::/64")
                    .is_some_and(|(pre, _)| addr.starts_with(&format!("{pre}:")))
            };
            if !ok {
                return Err(ApiErr::invalid(vec![(
                    "ip".into(),
                    "is not an address of this primary IP".into(),
                )]));
            }
            let ptr = b["dns_ptr"].as_str().map(String::from);
            let p = primary_ip(w, id)?;
            let mut list: Vec<Value> = p["dns_ptr"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|e| e["ip"] != addr.as_str())
                .collect();
            match (ptr, family) {
                (Some(v), _) => list.push(json!({"ip": addr, "dns_ptr": v})),
                (None, "ipv4") => list.push(
                    json!({"ip": addr, "dns_ptr": format!("static.{addr}.clients.your-server.de")}),
                ),
                (None, _) => {}
            }
            p["dns_ptr"] = json!(list);
            ("change_dns_ptr", None)
        }
        _ => return Err(ApiErr::not_found("action")),
    };
    let mut res = vec![(id, "primary_ip")];
    res.extend(server.map(|s| (s, "server")));
    action_reply(201, w.action(cmd, &res))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_the_md5_of_the_key_blob() {
        // `ssh-keygen -l -E md5` of this (throwaway, public) key prints
        // `MD5:02:51:45:b6:36:46:92:7e:5f:5b:e6:56:c8:99:10:5d`.
        let k = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP/uTQP6OMXRTY1SYYAgEBBJ1ZQ7O7VN3W9J7c7QFX4l a@b";
        assert_eq!(
            fingerprint(k).unwrap(),
            "02:51:45:b6:36:46:92:7e:5f:5b:e6:56:c8:99:10:5d"
        );
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert!(fingerprint("ssh-ed25519 not*base64").is_none());
    }
}
