//! `/servers`: create (with networks, firewalls, primary IPs), list, update, delete and the
//! power / network / type actions.

use axum::http::Method;
use serde_json::{Value, json};

use super::catalog;
use super::http::{ApiErr, ApiResult, reply};
use super::world::{Check, World, action_reply, list_rendered, now, update_basic};
use crate::routes::Routes;

/// Renders a server with its computed cross references.
pub fn render(w: &World, s: &Value) -> Value {
    let mut s = s.clone();
    let id = s["id"].as_u64().unwrap_or(0);
    if w.actions.values().any(|a| {
        a.running() && a.command == "create_server" && a.resources.iter().any(|(i, _)| *i == id)
    }) {
        s["status"] = "initializing".into();
    }
    s["locked"] = w.locked(id, "server").into();
    let lbs: Vec<u64> = w
        .coll("load_balancers")
        .iter()
        .filter(|(_, lb)| {
            lb["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["server"]["id"].as_u64() == Some(id))
        })
        .map(|(i, _)| *i)
        .collect();
    s["load_balancers"] = json!(lbs);
    let fws: Vec<Value> = w
        .coll("firewalls")
        .iter()
        .filter(|(_, f)| super::firewalls::applies_to(w, f, id))
        .map(|(i, _)| json!({"id": i, "status": "applied"}))
        .collect();
    s["public_net"]["firewalls"] = json!(fws);
    s
}

/// The routes of `/servers`.
pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .route("/servers", Method::GET, |w, r| {
            list_rendered(w, "servers", "servers", &r.q, render)
        })
        .route("/servers", Method::POST, |w, r| {
            create(w, &r.body)
        })
        .route("/servers/{id}", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("servers", "server", id)?;
            reply(200, json!({"server": render(w, &w.coll("servers")[&id])}))
        })
        .route("/servers/{id}", Method::PUT, |w, r| {
            let id = &r.param("id");
            let id = w.must("servers", "server", id)?;
            update_basic(w, "servers", id, &r.body, &[])?;
            reply(200, json!({"server": render(w, &w.coll("servers")[&id])}))
        })
        .route("/servers/{id}", Method::DELETE, |w, r| {
            let id = &r.param("id");
            let id = w.must("servers", "server", id)?;
            w.check_lock(id, "server")?;
            w.check_protection("servers", id, "delete")?;
            delete(w, id);
            action_reply(200, w.action("delete_server", &[(id, "server")]))
        })
        .route("/servers/{id}/actions", Method::GET, |w, r| {
            let id = &r.param("id");
            let id = w.must("servers", "server", id)?;
            super::actions::list_for(w, id, "server", &r.q)
        })
        .route("/servers/{id}/actions/{act}", Method::POST, |w, r| {
            let id = &r.param("id");
            let act = &r.param("act");
            let id = w.must("servers", "server", id)?;
            w.check_lock(id, "server")?;
            action(w, id, act, &r.body)
        })
}

fn create(w: &mut World, b: &Value) -> ApiResult {
    let mut c = Check::default();
    let name = c.req_str(b, "name").map(String::from);
    if let Some(n) = &name
        && (n.len() > 63
            || !n
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.'))
    {
        c.err("name", "must be a valid hostname");
    }
    let stype = b
        .get("server_type")
        .and_then(|v| catalog::find(catalog::server_types(), v, None));
    if stype.is_none() {
        c.err(
            "server_type",
            "is required and must name an existing server type",
        );
    }
    let arch = stype
        .as_ref()
        .and_then(|t| t["architecture"].as_str())
        .map(String::from);
    let image = b
        .get("image")
        .and_then(|v| catalog::find(catalog::images(), v, arch.as_deref()));
    if image.is_none() {
        c.err("image", "is required and must name an existing image");
    }
    let (location, dc) = placement(&mut c, b);
    c.labels(b);
    if b.get("user_data")
        .and_then(Value::as_str)
        .is_some_and(|u| u.len() > 32 * 1024)
    {
        c.err("user_data", "must be at most 32 KiB");
    }
    let networks: Vec<u64> = b["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    for (i, n) in networks.iter().enumerate() {
        if w.get("networks", *n).is_none() {
            c.err(format!("networks[{i}]"), format!("network {n} not found"));
        }
    }
    let fws: Vec<u64> = b["firewalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["firewall"].as_u64())
        .collect();
    for (i, f) in fws.iter().enumerate() {
        if w.get("firewalls", *f).is_none() {
            c.err(format!("firewalls[{i}]"), format!("firewall {f} not found"));
        }
    }
    let mut keys = Vec::new();
    for (i, k) in b["ssh_keys"].as_array().into_iter().flatten().enumerate() {
        let key = match k {
            Value::Number(n) => w.find("ssh_keys", &n.to_string()),
            Value::String(s) => w.find("ssh_keys", s),
            _ => None,
        };
        match key {
            Some(k) => keys.push(k),
            None => c.err(format!("ssh_keys[{i}]"), "ssh key not found"),
        }
    }
    let pg = match b.get("placement_group") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().and_then(|p| w.get("placement_groups", p)) {
            Some(p) => Some(p.clone()),
            None => {
                c.err("placement_group", "placement group not found");
                None
            }
        },
    };
    c.done()?;
    let name = name.unwrap_or_default();
    if w.name_taken("servers", &name, None) {
        return Err(ApiErr::unique("name"));
    }
    let (location, dc) = (location.unwrap_or_default(), dc.unwrap_or_default());
    let id = w.alloc_id();
    let pn = &b["public_net"];
    let ipv4 = if pn["enable_ipv4"] == false {
        Value::Null
    } else {
        let pid = match pn["ipv4"].as_u64() {
            Some(p) => {
                let ip = w.get("primary_ips", p).ok_or_else(|| {
                    ApiErr::invalid(vec![(
                        "public_net.ipv4".into(),
                        "primary IP not found".into(),
                    )])
                })?;
                if !ip["assignee_id"].is_null() {
                    return Err(ApiErr::new(
                        409,
                        "conflict",
                        "primary IP is already assigned",
                    ));
                }
                p
            }
            None => super::keys::new_primary_ip(w, &format!("primary_ip-{id}"), "ipv4", &dc, true)?,
        };
        let p = w
            .coll_mut("primary_ips")
            .get_mut(&pid)
            .ok_or_else(|| ApiErr::not_found("primary ip"))?;
        p["assignee_id"] = id.into();
        p["assignee_type"] = "server".into();
        json!({"id": pid, "ip": p["ip"], "blocked": false, "dns_ptr": format!("static.{}.clients.your-server.de", p["ip"].as_str().unwrap_or(""))})
    };
    let ipv6 = if pn["enable_ipv6"] == false {
        Value::Null
    } else {
        json!({"id": w.alloc_id(), "ip": World::public_v6(id), "blocked": false, "dns_ptr": []})
    };
    let mut private = Vec::new();
    for n in &networks {
        let ip = w.alloc_private_ip(*n).ok_or_else(|| {
            ApiErr::new(
                412,
                "ip_not_available",
                "network has no free IP (does it have a subnet?)",
            )
        })?;
        private.push(private_entry(id, *n, &ip.to_string()));
        // Reserve it immediately so the next network/server does not get it.
        w.coll_mut("servers")
            .insert(id, json!({"id": id, "private_net": private.clone()}));
    }
    let server = json!({
        "id": id, "name": name, "status": if b["start_after_create"] == false { "off" } else { "running" },
        "created": now(),
        "public_net": {"ipv4": ipv4, "ipv6": ipv6, "floating_ips": [], "firewalls": []},
        "private_net": private,
        "server_type": stype, "datacenter": dc, "location": location, "image": image, "iso": null,
        "rescue_enabled": false, "locked": false, "backup_window": null,
        "outgoing_traffic": 0, "ingoing_traffic": 0, "included_traffic": 21990232555520u64,
        "protection": {"delete": false, "rebuild": false},
        "labels": b.get("labels").cloned().unwrap_or(json!({})),
        "volumes": [], "load_balancers": [], "primary_disk_size": 40,
        "placement_group": pg,
    });
    w.coll_mut("servers").insert(id, server);
    for f in fws {
        if let Some(fw) = w.coll_mut("firewalls").get_mut(&f)
            && let Some(a) = fw["applied_to"].as_array_mut()
        {
            a.push(json!({"type": "server", "server": {"id": id}}));
        }
    }
    let public_keys = keys
        .iter()
        .filter_map(|k| w.get("ssh_keys", *k)?["public_key"].as_str().map(String::from))
        .collect();
    w.cloud_init.insert(
        id,
        crate::events::CloudInit {
            public_keys,
            user_data: b["user_data"].as_str().map(String::from),
            generation: 0,
        },
    );
    let action = w.action("create_server", &[(id, "server")]);
    let next: Vec<Value> = if b["start_after_create"] == false {
        vec![]
    } else {
        vec![w.action("start_server", &[(id, "server")])]
    };
    let server = render(w, &w.coll("servers")[&id]);
    reply(
        201,
        json!({"server": server, "action": action, "next_actions": next, "root_password": if b["ssh_keys"].as_array().is_some_and(|k| !k.is_empty()) { Value::Null } else { ROOT_PASSWORD.into() }}),
    )
}

/// The location and datacenter a create asks for: `datacenter` or `location`, each an ID
/// or a name (`fsn1` when neither is given).
pub fn placement(c: &mut Check, b: &Value) -> (Option<Value>, Option<Value>) {
    let given = |f: &str| b.get(f).filter(|v| !v.is_null());
    match (given("location"), given("datacenter")) {
        (Some(_), Some(_)) => {
            c.err("location", "give either location or datacenter, not both");
            (None, None)
        }
        (_, Some(d)) => match catalog::datacenter_ref(d) {
            Some(dc) => (Some(dc["location"].clone()), Some(dc)),
            None => {
                c.err("datacenter", format!("unknown datacenter {d}"));
                (None, None)
            }
        },
        (l, None) => {
            let l = l.cloned().unwrap_or_else(|| "fsn1".into());
            match catalog::location_ref(&l) {
                Some(loc) => {
                    let dc = catalog::datacenter_in(&loc);
                    (Some(loc), dc)
                }
                None => {
                    c.err("location", format!("unknown location {l}"));
                    (None, None)
                }
            }
        }
    }
}

fn private_entry(server: u64, network: u64, ip: &str) -> Value {
    json!({"network": network, "ip": ip, "alias_ips": [],
           "mac_address": format!("86:00:00:{:02x}:{:02x}:{:02x}", (server >> 16) & 0xff, (server >> 8) & 0xff, server & 0xff)})
}

/// Removes a server and what dies with it.
pub fn delete(w: &mut World, id: u64) {
    w.coll_mut("servers").remove(&id);
    w.cloud_init.remove(&id);
    let auto: Vec<u64> = w
        .coll("primary_ips")
        .iter()
        .filter(|(_, p)| p["assignee_id"].as_u64() == Some(id) && p["assignee_type"] == "server")
        .map(|(i, _)| *i)
        .collect();
    for p in auto {
        let ips = w.coll_mut("primary_ips");
        if ips[&p]["auto_delete"] == true {
            ips.remove(&p);
        } else if let Some(ip) = ips.get_mut(&p) {
            ip["assignee_id"] = Value::Null;
        }
    }
    for fw in w.coll_mut("firewalls").values_mut() {
        if let Some(a) = fw["applied_to"].as_array_mut() {
            a.retain(|x| x["server"]["id"].as_u64() != Some(id));
        }
    }
    for lb in w.coll_mut("load_balancers").values_mut() {
        if let Some(t) = lb["targets"].as_array_mut() {
            t.retain(|x| x["server"]["id"].as_u64() != Some(id));
        }
    }
}

fn action(w: &mut World, id: u64, act: &str, b: &Value) -> ApiResult {
    let status = |w: &mut World, s: &str| {
        if let Some(x) = w.coll_mut("servers").get_mut(&id) {
            x["status"] = s.into();
        }
    };
    let cmd = match act {
        "poweron" => {
            status(w, "running");
            "start_server"
        }
        "poweroff" | "shutdown" => {
            status(w, "off");
            if act == "poweroff" {
                "stop_server"
            } else {
                "shutdown_server"
            }
        }
        "reboot" | "reset" => {
            status(w, "running");
            if act == "reboot" {
                "reboot_server"
            } else {
                "reset_server"
            }
        }
        "attach_to_network" => {
            let (n, ip) = w.attach_to_network(
                b,
                &w.coll("servers")[&id]["private_net"],
                (
                    "server_already_attached",
                    "server is already attached to this network",
                ),
            )?;
            let mut e = private_entry(id, n, &ip.to_string());
            e["alias_ips"] = json!(alias_ips(w, n, Some(&ip.to_string()), &b["alias_ips"])?);
            if let Some(s) = w.coll_mut("servers").get_mut(&id)
                && let Some(a) = s["private_net"].as_array_mut()
            {
                a.push(e);
            }
            let a = w.action("attach_to_network", &[(id, "server"), (n, "network")]);
            return action_reply(201, a);
        }
        "detach_from_network" => {
            let n = b["network"]
                .as_u64()
                .ok_or_else(|| ApiErr::invalid(vec![("network".into(), "is required".into())]))?;
            let s = w
                .coll_mut("servers")
                .get_mut(&id)
                .ok_or_else(|| ApiErr::not_found("server"))?;
            let before = s["private_net"].as_array().map_or(0, Vec::len);
            if let Some(a) = s["private_net"].as_array_mut() {
                a.retain(|p| p["network"].as_u64() != Some(n));
            }
            if s["private_net"].as_array().map_or(0, Vec::len) == before {
                return Err(ApiErr::new(
                    422,
                    "server_not_attached_to_network",
                    "server is not attached to this network",
                ));
            }
            let a = w.action("detach_from_network", &[(id, "server"), (n, "network")]);
            return action_reply(201, a);
        }
        "change_type" => {
            let t = b
                .get("server_type")
                .and_then(|v| catalog::find(catalog::server_types(), v, None))
                .ok_or_else(|| {
                    ApiErr::invalid(vec![("server_type".into(), "unknown server type".into())])
                })?;
            let s = w
                .coll_mut("servers")
                .get_mut(&id)
                .ok_or_else(|| ApiErr::not_found("server"))?;
            if s["status"] != "off" {
                return Err(ApiErr::new(
                    412,
                    "server_not_stopped",
                    "server must be stopped to change its type",
                ));
            }
            s["server_type"] = t;
            "change_server_type"
        }
        "change_alias_ips" => {
            let n = b["network"]
                .as_u64()
                .ok_or_else(|| ApiErr::invalid(vec![("network".into(), "is required".into())]))?;
            if !b["alias_ips"].is_array() {
                return Err(ApiErr::invalid(vec![(
                    "alias_ips".into(),
                    "is required".into(),
                )]));
            }
            let pos = server(w, id)?["private_net"]
                .as_array()
                .and_then(|a| a.iter().position(|p| p["network"].as_u64() == Some(n)))
                .ok_or_else(|| {
                    ApiErr::new(
                        422,
                        "server_not_attached_to_network",
                        "server is not attached to this network",
                    )
                })?;
            // The server's own aliases may be given again: check against the others, and
            // keep the old ones if the new ones are refused.
            let old = std::mem::take(&mut server(w, id)?["private_net"][pos]["alias_ips"]);
            let own = server(w, id)?["private_net"][pos]["ip"].clone();
            let ips = alias_ips(w, n, own.as_str(), &b["alias_ips"]);
            server(w, id)?["private_net"][pos]["alias_ips"] = match ips {
                Ok(ips) => json!(ips),
                Err(e) => {
                    server(w, id)?["private_net"][pos]["alias_ips"] = old;
                    return Err(e);
                }
            };
            let a = w.action("change_alias_ips", &[(id, "server"), (n, "network")]);
            return action_reply(201, a);
        }
        "change_protection" => {
            let mut c = Check::default();
            for f in ["delete", "rebuild"] {
                if b.get(f).is_some_and(|v| !v.is_boolean()) {
                    c.err(f, "must be a boolean");
                }
            }
            if let (Some(d), Some(r)) = (b["delete"].as_bool(), b["rebuild"].as_bool())
                && d != r
            {
                c.err("rebuild", "delete and rebuild protection must have the same value");
            }
            c.done()?;
            let s = server(w, id)?;
            for f in ["delete", "rebuild"] {
                if let Some(v) = b[f].as_bool() {
                    s["protection"][f] = v.into();
                }
            }
            "change_protection"
        }
        "enable_backup" => {
            server(w, id)?["backup_window"] = "22-02".into();
            "enable_backup"
        }
        "disable_backup" => {
            server(w, id)?["backup_window"] = Value::Null;
            "disable_backup"
        }
        "enable_rescue" => {
            let mut c = Check::default();
            if b.get("type").is_some_and(|t| t != "linux64") {
                c.err("type", "must be linux64");
            }
            for (i, k) in b["ssh_keys"].as_array().into_iter().flatten().enumerate() {
                if k.as_u64().is_none_or(|k| w.get("ssh_keys", k).is_none()) {
                    c.err(format!("ssh_keys[{i}]"), "ssh key not found");
                }
            }
            c.done()?;
            server(w, id)?["rescue_enabled"] = true.into();
            let a = w.action("enable_rescue", &[(id, "server")]);
            return reply(201, json!({"action": a, "root_password": ROOT_PASSWORD}));
        }
        "disable_rescue" => {
            server(w, id)?["rescue_enabled"] = false.into();
            "disable_rescue"
        }
        "rebuild" => {
            let arch = server(w, id)?["server_type"]["architecture"]
                .as_str()
                .map(String::from);
            let image = b
                .get("image")
                .and_then(|v| catalog::find(catalog::images(), v, arch.as_deref()))
                .ok_or_else(|| {
                    ApiErr::invalid(vec![(
                        "image".into(),
                        "is required and must name an existing image".into(),
                    )])
                })?;
            if b["user_data"].as_str().is_some_and(|u| u.len() > 32 * 1024) {
                return Err(ApiErr::invalid(vec![(
                    "user_data".into(),
                    "must be at most 32 KiB".into(),
                )]));
            }
            w.check_protection("servers", id, "rebuild")?;
            let s = server(w, id)?;
            s["image"] = image;
            // Powered off for the rebuild, started again by it: a fresh boot.
            s["status"] = "running".into();
            let ci = w.cloud_init.entry(id).or_default();
            ci.generation += 1;
            if let Some(u) = b["user_data"].as_str() {
                ci.user_data = Some(u.to_string());
            }
            let a = w.action("rebuild_server", &[(id, "server")]);
            return reply(201, json!({"action": a, "root_password": ROOT_PASSWORD}));
        }
        "reset_password" => {
            if server(w, id)?["status"] != "running" {
                return Err(ApiErr::new(
                    409,
                    "conflict",
                    "the server must be running to reset its password",
                ));
            }
            let a = w.action("reset_password", &[(id, "server")]);
            return reply(201, json!({"action": a, "root_password": ROOT_PASSWORD}));
        }
        "change_dns_ptr" => change_dns_ptr(w, id, b)?,
        "add_to_placement_group" | "remove_from_placement_group" => {
            let add = act == "add_to_placement_group";
            let pg = if add {
                let p = b["placement_group"]
                    .as_u64()
                    .and_then(|p| w.get("placement_groups", p).cloned())
                    .ok_or_else(|| {
                        ApiErr::invalid(vec![(
                            "placement_group".into(),
                            "placement group not found".into(),
                        )])
                    })?;
                if !server(w, id)?["placement_group"].is_null() {
                    return Err(ApiErr::new(
                        422,
                        "server_already_in_placement_group",
                        "server is already in a placement group",
                    ));
                }
                p
            } else {
                Value::Null
            };
            let s = server(w, id)?;
            if s["status"] != "off" {
                return Err(ApiErr::new(
                    412,
                    "server_not_stopped",
                    "server must be stopped to change its placement group",
                ));
            }
            s["placement_group"] = pg;
            if add {
                "add_to_placement_group"
            } else {
                "remove_from_placement_group"
            }
        }
        _ => return Err(ApiErr::not_found("action")),
    };
    action_reply(201, w.action(cmd, &[(id, "server")]))
}

/// The password the simulator reports for servers without SSH keys (a fixed placeholder, not
/// a secret: no real machine has it).
const ROOT_PASSWORD: &str = "Sim-R00t-Passw0rd";

/// The server `id`, mutably (404 if gone).
fn server(w: &mut World, id: u64) -> Result<&mut Value, ApiErr> {
    w.coll_mut("servers")
        .get_mut(&id)
        .ok_or_else(|| ApiErr::not_found("server"))
}

/// Validates alias IPs for a server in network `n` (`own`: the server's IP there): each in a
/// subnet, not the gateway, not used by anything else, not repeated.
fn alias_ips(w: &World, n: u64, own: Option<&str>, given: &Value) -> Result<Vec<String>, ApiErr> {
    let mut out: Vec<String> = Vec::new();
    for (i, ip) in given.as_array().into_iter().flatten().enumerate() {
        let field = format!("alias_ips[{i}]");
        let Some(ip) = ip.as_str() else {
            return Err(ApiErr::invalid(vec![(field, "must be a string".into())]));
        };
        if Some(ip) == own || out.iter().any(|o| o == ip) {
            return Err(ApiErr::new(
                422,
                "ip_not_available",
                format!("IP {ip} is given twice"),
            ));
        }
        let ip = w.check_private_ip(n, ip).map_err(|mut e| {
            if let Some(f) = e.details["fields"].as_array_mut() {
                for x in f {
                    x["name"] = field.clone().into();
                }
            }
            e
        })?;
        out.push(ip.to_string());
    }
    Ok(out)
}

/// `change_dns_ptr`: the reverse DNS of the server's IPv4 or of an address in its IPv6
/// network (`null` resets it to the default).
fn change_dns_ptr(w: &mut World, id: u64, b: &Value) -> Result<&'static str, ApiErr> {
    let ip = b["ip"]
        .as_str()
        .ok_or_else(|| ApiErr::invalid(vec![("ip".into(), "is required".into())]))?
        .to_string();
    let ptr = match &b["dns_ptr"] {
        Value::Null => None,
        Value::String(p) if !p.is_empty() => Some(p.clone()),
        _ => {
            return Err(ApiErr::invalid(vec![(
                "dns_ptr".into(),
                "must be a hostname or null".into(),
            )]));
        }
    };
    let s = server(w, id)?;
    let v4 = s["public_net"]["ipv4"]["ip"].as_str() == Some(ip.as_str());
    let v6_net = s["public_net"]["ipv6"]["ip"].as_str().unwrap_or("").to_string();
    let in_v6 = ip.parse::<std::net::Ipv6Addr>().is_ok_and(|a| {
        v6_net
            .split_once("::/64")
            .is_some_and(|(pre, _)| a.to_string().starts_with(&format!("{pre}:")))
    });
    if v4 {
        let default = format!("static.{ip}.clients.your-server.de");
        let val = ptr.clone().unwrap_or(default);
        s["public_net"]["ipv4"]["dns_ptr"] = val.clone().into();
        let pid = s["public_net"]["ipv4"]["id"].as_u64();
        if let Some(p) = pid.and_then(|p| w.coll_mut("primary_ips").get_mut(&p)) {
            p["dns_ptr"] = json!([{"ip": ip, "dns_ptr": val}]);
        }
    } else if in_v6 {
        let list = s["public_net"]["ipv6"]["dns_ptr"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut list: Vec<Value> = list.into_iter().filter(|e| e["ip"] != ip.as_str()).collect();
        if let Some(p) = ptr {
            list.push(json!({"ip": ip, "dns_ptr": p}));
        }
        s["public_net"]["ipv6"]["dns_ptr"] = json!(list);
    } else {
        return Err(ApiErr::invalid(vec![(
            "ip".into(),
            "is not a primary IP of this server".into(),
        )]));
    }
    Ok("change_dns_ptr")
}
