//! `/volumes`: create (in a location or attached to a server), list, get, update, delete,
//! and the `attach` / `detach` / `resize` / `change_protection` actions. A volume whose
//! server was deleted shows as detached, as the API detaches volumes of deleted servers.

use axum::http::Method;
use serde_json::{Value, json};

use super::catalog;
use super::http::{ApiErr, ApiResult, reply};
use super::keys::no_content;
use super::world::{Check, World, action_reply, list_rendered, now, update_basic};
use crate::routes::Routes;

/// A volume as the API renders it: a deleted server is no attachment.
fn render(w: &World, v: &Value) -> Value {
    let mut v = v.clone();
    if v["server"]
        .as_u64()
        .is_some_and(|s| w.get("servers", s).is_none())
    {
        v["server"] = Value::Null;
    }
    v
}

fn get(w: &World, id: u64) -> Value {
    render(w, &w.coll("volumes")[&id])
}

fn size_of(c: &mut Check, b: &Value) -> Option<u64> {
    match b["size"].as_f64() {
        Some(s) if s.fract() == 0.0 && (10.0..=10240.0).contains(&s) => Some(s as u64),
        _ => {
            c.err("size", "must be a whole number of GB from 10 to 10240");
            None
        }
    }
}

fn create(w: &mut World, b: &Value) -> ApiResult {
    let mut c = Check::default();
    let name = c.req_str(b, "name").map(String::from);
    let size = size_of(&mut c, b);
    c.labels(b);
    let format = match b.get("format") {
        None | Some(Value::Null) => Value::Null,
        Some(f) if f == "xfs" || f == "ext4" => f.clone(),
        Some(_) => {
            c.err("format", "must be xfs or ext4");
            Value::Null
        }
    };
    let server = match b.get("server") {
        None | Some(Value::Null) => None,
        Some(s) => match s.as_u64().filter(|s| w.get("servers", *s).is_some()) {
            Some(s) => Some(s),
            None => {
                c.err("server", "server not found");
                None
            }
        },
    };
    let location = match (server, b.get("location").filter(|l| !l.is_null())) {
        (Some(s), None) => Some(w.coll("servers")[&s]["location"].clone()),
        (None, Some(l)) => match catalog::location_ref(l) {
            Some(l) => Some(l),
            None => {
                c.err("location", format!("unknown location {l:?}"));
                None
            }
        },
        (Some(_), Some(_)) => {
            c.err("location", "give either location or server, not both");
            None
        }
        (None, None) => {
            c.err("location", "location or server is required");
            None
        }
    };
    if b["automount"] == true && server.is_none() {
        c.err("automount", "needs a server");
    }
    c.done()?;
    let name = name.unwrap_or_default();
    if w.name_taken("volumes", &name, None) {
        return Err(ApiErr::unique("name"));
    }
    let id = w.alloc_id();
    let vol = json!({"id": id, "name": name, "size": size, "server": server,
                     "location": location, "format": format,
                     "protection": {"delete": false},
                     "labels": b.get("labels").cloned().unwrap_or(json!({})),
                     "linux_device": format!("/dev/disk/by-id/scsi-0HC_Volume_{id}"),
                     "status": "available", "created": now()});
    w.coll_mut("volumes").insert(id, vol);
    let action = w.action("create_volume", &[(id, "volume")]);
    let next: Vec<Value> = server
        .map(|s| w.action("attach_volume", &[(id, "volume"), (s, "server")]))
        .into_iter()
        .collect();
    reply(
        201,
        json!({"volume": get(w, id), "action": action, "next_actions": next}),
    )
}

fn act(w: &mut World, id: u64, name: &str, b: &Value) -> ApiResult {
    w.check_lock(id, "volume")?;
    let cur = get(w, id);
    let mut c = Check::default();
    let (command, extra) = match name {
        "attach" => {
            let server = b["server"]
                .as_u64()
                .and_then(|s| w.get("servers", s).map(|srv| (s, srv.clone())));
            let Some((s, srv)) = server else {
                c.err("server", "server not found");
                return Err(c.done().unwrap_err());
            };
            if !cur["server"].is_null() {
                return Err(ApiErr::new(
                    422,
                    "volume_already_attached",
                    "volume is already attached to a server",
                ));
            }
            if srv["location"]["name"] != cur["location"]["name"] {
                return Err(ApiErr::invalid(vec![(
                    "server".into(),
                    "server is in another location than the volume".into(),
                )]));
            }
            w.check_lock(s, "server")?;
            set(w, id, "server", json!(s));
            ("attach_volume", Some(s))
        }
        "detach" => {
            let Some(s) = cur["server"].as_u64() else {
                return Err(ApiErr::new(
                    422,
                    "volume_not_attached",
                    "volume is not attached to a server",
                ));
            };
            set(w, id, "server", Value::Null);
            ("detach_volume", Some(s))
        }
        "resize" => {
            let size = size_of(&mut c, b);
            c.done()?;
            let size = size.unwrap_or_default();
            if size <= cur["size"].as_u64().unwrap_or_default() {
                return Err(ApiErr::invalid(vec![(
                    "size".into(),
                    "must be greater than the current size".into(),
                )]));
            }
            set(w, id, "size", json!(size));
            ("resize_volume", None)
        }
        "change_protection" => {
            if let Some(d) = b.get("delete") {
                let Some(d) = d.as_bool() else {
                    c.err("delete", "must be a boolean");
                    return Err(c.done().unwrap_err());
                };
                set(w, id, "protection", json!({"delete": d}));
            }
            ("change_protection", None)
        }
        _ => return Err(ApiErr::not_found("action")),
    };
    let mut res = vec![(id, "volume")];
    res.extend(extra.map(|s| (s, "server")));
    let a = w.action(command, &res);
    action_reply(201, a)
}

fn set(w: &mut World, id: u64, field: &str, v: Value) {
    if let Some(vol) = w.coll_mut("volumes").get_mut(&id) {
        vol[field] = v;
    }
}

/// The routes of `/volumes`.
pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .route("/volumes", Method::GET, |w, r| {
            list_rendered(w, "volumes", "volumes", &r.q, render)
        })
        .route("/volumes", Method::POST, |w, r| {
            create(w, &r.body)
        })
        .route("/volumes/{id}", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("volumes", "volume", id)?;
            reply(200, json!({"volume": get(w, id)}))
        })
        .route("/volumes/{id}", Method::PUT, |w, r| {
            let id = &r.param("id");
            let id = w.must("volumes", "volume", id)?;
            update_basic(w, "volumes", id, &r.body, &[])?;
            reply(200, json!({"volume": get(w, id)}))
        })
        .route("/volumes/{id}", Method::DELETE, |w, r| {
            let id = &r.param("id");
            let id = w.must("volumes", "volume", id)?;
            w.check_lock(id, "volume")?;
            let v = get(w, id);
            if v["protection"]["delete"] == true {
                return Err(ApiErr::new(
                    423,
                    "protected",
                    "volume is protected against deletion",
                ));
            }
            if !v["server"].is_null() {
                return Err(ApiErr::new(
                    422,
                    "volume_attached",
                    "volume is still attached to a server",
                ));
            }
            w.coll_mut("volumes").remove(&id);
            no_content()
        })
        .route("/volumes/{id}/actions", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("volumes", "volume", id)?;
            super::actions::list_for(w, id, "volume", &r.q)
        })
        .route("/volumes/{id}/actions/{name}", Method::POST, |w, r| {
            let id = &r.param("id");
            let name = &r.param("name");
            let id = w.must("volumes", "volume", id)?;
            act(w, id, name, &r.body)
        })
}
