//! The simulated project: objects by collection, actions and their locks, ID and address
//! allocation, and the generic list/get/update/delete operations every collection shares.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::{ApiErr, ApiResult, Query, reply, rfc3339};
use super::locks::{self, Profile};
use super::{faults::unix_now, labels};
use crate::cidr::Cidr4;

/// An action the simulator runs for as long as its [`locks::Profile`] says.
#[derive(Debug, Clone)]
pub struct ActionRec {
    /// Action id.
    pub id: u64,
    /// Command, e.g. `create_server`.
    pub command: String,
    /// Start time (unix seconds).
    pub started: u64,
    /// When it finishes.
    pub finish_at: Instant,
    /// `(id, type)` of the resources it touches.
    pub resources: Vec<(u64, String)>,
    /// Final error, if the action fails.
    pub error: Option<(String, String)>,
    /// How long it runs (zero for actions the API finishes within the request).
    pub duration: Duration,
    /// Whether its resources are `locked` while it runs.
    pub locks: bool,
}

impl ActionRec {
    /// Whether it is still running.
    pub fn running(&self) -> bool {
        Instant::now() < self.finish_at
    }

    /// The action as the API renders it.
    pub fn render(&self) -> Value {
        let total = self.duration;
        let now = Instant::now();
        let running = now < self.finish_at;
        let progress = if running {
            let left = self.finish_at.duration_since(now).as_secs_f64();
            let t = total.as_secs_f64().max(1e-9).max(left);
            (100.0 * (1.0 - left / t)).clamp(0.0, 99.0) as u64
        } else {
            100
        };
        let status = match (running, &self.error) {
            (true, _) => "running",
            (false, None) => "success",
            (false, Some(_)) => "error",
        };
        json!({
            "id": self.id,
            "command": self.command,
            "status": status,
            "progress": progress,
            "started": rfc3339(self.started),
            "finished": if running { Value::Null } else { rfc3339(self.started + total.as_secs()).into() },
            "resources": self.resources.iter().map(|(id, t)| json!({"id": id, "type": t})).collect::<Vec<_>>(),
            "error": match (&self.error, running) {
                (Some((c, m)), false) => json!({"code": c, "message": m}),
                _ => Value::Null,
            },
        })
    }
}

/// The whole simulated project. Serialises to the fixture / `GET /_sim/state` format
/// (running actions are transient and not part of it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct World {
    /// Last id handed out (shared by all collections, like a real project's ids growing).
    pub last_id: u64,
    /// Where the next public IPv4 search starts in the pools (a cursor that wraps).
    pub public_v4_used: u32,
    /// Objects by collection (`servers`, `networks`, …) and id, in API shape.
    pub objects: BTreeMap<String, BTreeMap<u64, Value>>,
    /// RRsets by zone id and rrset id (`name/TYPE`).
    pub rrsets: BTreeMap<u64, BTreeMap<String, Value>>,
    /// What each server was created with that the API never shows (its SSH keys' public
    /// keys, its `user_data`), by server id: what it boots with.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cloud_init: BTreeMap<u64, crate::events::CloudInit>,
    /// Actions (not persisted).
    #[serde(skip)]
    pub actions: BTreeMap<u64, ActionRec>,
    /// How long actions run (set from the config).
    #[serde(skip)]
    pub action_time: Duration,
    /// Where public IPv4s come from (set from the capacities).
    #[serde(skip)]
    pub v4_pools: Vec<Cidr4>,
    /// Bumped by every write; list selections are cached per version.
    #[serde(skip)]
    pub version: u64,
    /// Selected ids per (collection, filters), valid for one `version`.
    #[serde(skip)]
    pub list_cache: ListCache,
}

/// Cached list selections: `collection?filters` → (world version, selected ids).
pub type ListCache =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (u64, Vec<u64>)>>>;

/// The default public IPv4 pools: the documentation ranges, then the benchmarking range
/// (about 132,000 addresses, none of them routed on the internet).
pub const DEFAULT_V4_POOLS: [&str; 4] = [
    "203.0.113.0/24",
    "198.51.100.0/24",
    "192.0.2.0/24",
    "198.18.0.0/15",
];

/// Usable addresses of a pool: all but the first two and the last.
fn pool_hosts(p: &Cidr4) -> u64 {
    p.size().saturating_sub(3)
}

impl World {
    /// A fresh id.
    pub fn alloc_id(&mut self) -> u64 {
        if self.last_id < 1_000_000 {
            self.last_id = 1_000_000;
        }
        self.last_id += 1;
        self.last_id
    }

    /// Sets the public IPv4 pools (CIDRs, used in order).
    pub fn set_v4_pools(&mut self, pools: &[String]) -> Result<(), crate::SimError> {
        let parsed = pools
            .iter()
            .map(|p| {
                Cidr4::parse(p, true).ok_or_else(|| {
                    crate::SimError::State(format!("public IPv4 pool {p:?} is not a CIDR"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.v4_pools = parsed;
        Ok(())
    }

    /// How many public IPv4s the pools hold.
    pub fn v4_capacity(&self) -> u64 {
        self.v4_pools.iter().map(pool_hosts).sum()
    }

    /// The next free public IPv4 from the pools (412 `resource_unavailable` when exhausted).
    pub fn alloc_public_v4(&mut self) -> Result<Ipv4Addr, ApiErr> {
        let used: std::collections::HashSet<Ipv4Addr> = self
            .coll("primary_ips")
            .values()
            .filter_map(|p| p["ip"].as_str()?.parse().ok())
            .chain(
                self.coll("load_balancers")
                    .values()
                    .filter_map(|l| l["public_net"]["ipv4"]["ip"].as_str()?.parse().ok()),
            )
            .collect();
        let total = self.v4_capacity();
        if total > used.len() as u64 {
            for _ in 0..total {
                let n = self.public_v4_used as u64 % total;
                self.public_v4_used = ((n + 1) % total) as u32;
                if let Some(ip) = self.v4_nth(n)
                    && !used.contains(&ip)
                {
                    return Ok(ip);
                }
            }
        }
        Err(ApiErr::new(
            412,
            "resource_unavailable",
            "no public IPv4 address available",
        ))
    }

    /// The `n`-th address of the pools.
    fn v4_nth(&self, mut n: u64) -> Option<Ipv4Addr> {
        for p in &self.v4_pools {
            let hosts = pool_hosts(p);
            if n < hosts {
                return Some(p.nth(2 + n as u32));
            }
            n -= hosts;
        }
        None
    }

    /// A public IPv6 /64 from 2001:db8::/32 for object `id`.
    pub fn public_v6(id: u64) -> String {
        format!("2001:db8:{:x}:{:x}::/64", (id >> 16) & 0xffff, id & 0xffff)
    }

    /// The objects of a collection.
    pub fn coll(&self, name: &str) -> &BTreeMap<u64, Value> {
        static EMPTY: BTreeMap<u64, Value> = BTreeMap::new();
        self.objects.get(name).unwrap_or(&EMPTY)
    }

    /// The objects of a collection, mutably.
    pub fn coll_mut(&mut self, name: &str) -> &mut BTreeMap<u64, Value> {
        self.objects.entry(name.to_string()).or_default()
    }

    /// An object by id.
    pub fn get(&self, coll: &str, id: u64) -> Option<&Value> {
        self.coll(coll).get(&id)
    }

    /// Finds an object by id or (for zones) by name.
    pub fn find(&self, coll: &str, id_or_name: &str) -> Option<u64> {
        if let Ok(id) = id_or_name.parse::<u64>() {
            return self.coll(coll).contains_key(&id).then_some(id);
        }
        self.coll(coll)
            .iter()
            .find(|(_, o)| o["name"].as_str() == Some(id_or_name))
            .map(|(id, _)| *id)
    }

    /// Parses a path id and checks it exists.
    pub fn must(&self, coll: &str, what: &str, id: &str) -> Result<u64, ApiErr> {
        self.find(coll, id).ok_or_else(|| ApiErr::not_found(what))
    }

    /// Whether a name is taken in a collection (by another object).
    pub fn name_taken(&self, coll: &str, name: &str, except: Option<u64>) -> bool {
        self.coll(coll)
            .iter()
            .any(|(id, o)| Some(*id) != except && o["name"].as_str() == Some(name))
    }

    /// Starts an action on resources; returns its rendering.
    pub fn action(&mut self, command: &str, resources: &[(u64, &str)]) -> Value {
        self.action_with(command, resources, None)
    }

    /// Starts an action that may end in an error.
    pub fn action_with(
        &mut self,
        command: &str,
        resources: &[(u64, &str)],
        error: Option<(String, String)>,
    ) -> Value {
        let id = self.alloc_id();
        let kind = resources.first().map_or("", |(_, t)| *t);
        let now = Instant::now();
        let (start, duration, locks) = match locks::profile(command, kind) {
            Profile::Instant => (now, Duration::ZERO, false),
            Profile::Locking => (now, self.action_time, true),
            Profile::Queued => {
                // Runs after the zone's queued changes before it.
                let queue_end = self
                    .actions
                    .values()
                    .filter(|a| {
                        !a.locks
                            && a.running()
                            && a.resources.first()
                                == resources.first().map(|(i, t)| (*i, t.to_string())).as_ref()
                    })
                    .map(|a| a.finish_at)
                    .max()
                    .unwrap_or(now)
                    .max(now);
                (queue_end, self.action_time, false)
            }
        };
        let rec = ActionRec {
            id,
            command: command.to_string(),
            started: unix_now(),
            finish_at: start + duration,
            resources: resources.iter().map(|(i, t)| (*i, t.to_string())).collect(),
            error,
            duration: (start + duration).duration_since(now),
            locks,
        };
        let v = rec.render();
        self.actions.insert(id, rec);
        v
    }

    /// Whether a running action locks `(id, type)`.
    pub fn locked(&self, id: u64, typ: &str) -> bool {
        self.actions.values().any(|a| {
            a.locks && a.running() && a.resources.iter().any(|(i, t)| *i == id && t == typ)
        })
    }

    /// Fails with `locked` while a running action holds the resource.
    pub fn check_lock(&self, id: u64, typ: &str) -> Result<(), ApiErr> {
        if self.locked(id, typ) {
            Err(ApiErr::locked())
        } else {
            Ok(())
        }
    }

    /// Fails with 423 `protected` when object `id` of `coll` has `protection.<what>` set.
    pub fn check_protection(&self, coll: &str, id: u64, what: &str) -> Result<(), ApiErr> {
        if self
            .get(coll, id)
            .is_some_and(|o| o["protection"][what] == true)
        {
            let kind = coll.trim_end_matches('s').replace('_', " ");
            return Err(ApiErr::new(
                423,
                "protected",
                format!("{kind} {id} is {what} protected"),
            ));
        }
        Ok(())
    }

    /// Drops finished actions older than a minute so memory stays bounded.
    pub fn gc_actions(&mut self) {
        if self.actions.len() > 20_000 {
            let cutoff = Instant::now() - Duration::from_secs(60);
            self.actions.retain(|_, a| a.finish_at > cutoff);
        }
    }

    /// The next free private IP in `network`'s subnets (or inside `within` if given).
    pub fn alloc_private_ip(&self, network: u64) -> Option<Ipv4Addr> {
        let net = self.get("networks", network)?;
        let used = self.private_ips_in(network);
        for s in net["subnets"].as_array()? {
            let c = Cidr4::parse(s["ip_range"].as_str()?, false)?;
            for i in 2..(c.size().min(65_536) as u32).saturating_sub(1) {
                let ip = c.nth(i);
                if !used.contains(&ip) {
                    return Some(ip);
                }
            }
        }
        None
    }

    /// Every private IP used in a network (servers and load balancers).
    pub fn private_ips_in(&self, network: u64) -> Vec<Ipv4Addr> {
        ["servers", "load_balancers"]
            .iter()
            .flat_map(|c| self.coll(c).values())
            .flat_map(|o| o["private_net"].as_array().cloned().unwrap_or_default())
            .filter(|p| p["network"].as_u64() == Some(network))
            .flat_map(|p| {
                let aliases = p["alias_ips"].as_array().cloned().unwrap_or_default();
                std::iter::once(p["ip"].clone()).chain(aliases)
            })
            .filter_map(|ip| ip.as_str().and_then(|s| s.parse().ok()))
            .collect()
    }

    /// Validates an `attach_to_network` body for an object whose current attachments are
    /// `private_net`: the network exists, the object is not attached to it yet, and the
    /// requested IP is valid (or one is allocated). Returns the network id and the IP.
    pub fn attach_to_network(
        &self,
        body: &Value,
        private_net: &Value,
        already: (&'static str, &'static str),
    ) -> Result<(u64, Ipv4Addr), ApiErr> {
        let n = body["network"]
            .as_u64()
            .ok_or_else(|| ApiErr::invalid(vec![("network".into(), "is required".into())]))?;
        self.must("networks", "network", &n.to_string())?;
        if private_net
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["network"].as_u64() == Some(n))
        {
            return Err(ApiErr::new(409, already.0, already.1));
        }
        let ip = match body["ip"].as_str() {
            Some(ip) => self.check_private_ip(n, ip)?,
            None => self
                .alloc_private_ip(n)
                .ok_or_else(|| ApiErr::new(412, "ip_not_available", "no free IP in network"))?,
        };
        Ok((n, ip))
    }

    /// Checks that `ip` can be used in `network`: inside a subnet, not the gateway, free.
    pub fn check_private_ip(&self, network: u64, ip: &str) -> Result<Ipv4Addr, ApiErr> {
        let bad = |m: &str| ApiErr::invalid(vec![("ip".into(), m.into())]);
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad("is not an IPv4 address"))?;
        let net = self
            .get("networks", network)
            .ok_or_else(|| ApiErr::not_found("network"))?;
        let inside = net["subnets"].as_array().into_iter().flatten().any(|s| {
            s["ip_range"]
                .as_str()
                .and_then(|r| Cidr4::parse(r, false))
                .is_some_and(|c| c.contains(ip) && ip != c.nth(1) && ip != c.nth(0))
        });
        if !inside {
            return Err(bad("is not inside a subnet of the network"));
        }
        if self.private_ips_in(network).contains(&ip) {
            return Err(ApiErr::new(
                409,
                "ip_not_available",
                format!("IP {ip} is already in use"),
            ));
        }
        Ok(ip)
    }

    /// Objects of `coll` matched by a label selector.
    pub fn select(&self, coll: &str, selector: &str) -> Vec<u64> {
        let Ok(terms) = labels::parse(selector) else {
            return Vec::new();
        };
        let empty = serde_json::Map::new();
        self.coll(coll)
            .iter()
            .filter(|(_, o)| labels::matches(&terms, o["labels"].as_object().unwrap_or(&empty)))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// Generic `GET /{coll}` with a render function for computed fields.
pub fn list_rendered(
    w: &World,
    coll: &str,
    key: &str,
    q: &Query,
    render: impl Fn(&World, &Value) -> Value,
) -> ApiResult {
    // Selection (filters + sort) is cached per world version so that fetching many pages of
    // a large collection costs one selection, like a database index would.
    let filters: Vec<String> =
        q.0.iter()
            .filter(|(k, _)| k != "page" && k != "per_page")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
    let cache_key = format!("{coll}?{}", filters.join("&"));
    let cached = {
        let c = w.list_cache.lock().unwrap_or_else(|p| p.into_inner());
        c.get(&cache_key)
            .filter(|(v, _)| *v == w.version)
            .map(|(_, ids)| ids.clone())
    };
    let ids = match cached {
        Some(ids) => ids,
        None => {
            let sel = super::http::select(
                w.coll(coll).values().collect(),
                q,
                &["type", "status", "ip"],
            )?;
            let ids: Vec<u64> = sel.iter().filter_map(|o| o["id"].as_u64()).collect();
            let mut c = w.list_cache.lock().unwrap_or_else(|p| p.into_inner());
            if c.len() > 256 {
                c.clear();
            }
            c.insert(cache_key, (w.version, ids.clone()));
            ids
        }
    };
    let objects = w.coll(coll);
    super::http::paginate(key, &format!("/v1/{coll}"), ids.len(), q, |skip, take| {
        ids.iter()
            .skip(skip)
            .take(take)
            .filter_map(|id| objects.get(id))
            .map(|o| render(w, o))
            .collect()
    })
}

/// Generic `PUT /{coll}/{id}`: `name` (unique) and `labels` (replaced whole), plus any
/// extra top-level fields listed in `extra`.
pub fn update_basic(
    w: &mut World,
    coll: &str,
    id: u64,
    body: &Value,
    extra: &[&str],
) -> Result<(), ApiErr> {
    let mut errs = Vec::new();
    if let Some(name) = body.get("name") {
        match name.as_str() {
            Some(n) if !n.is_empty() => {
                if w.name_taken(coll, n, Some(id)) {
                    return Err(ApiErr::unique("name"));
                }
            }
            _ => errs.push(("name".to_string(), "must be a non-empty string".to_string())),
        }
    }
    if let Some(l) = body.get("labels") {
        errs.extend(
            labels::validate(l)
                .into_iter()
                .map(|m| ("labels".to_string(), m)),
        );
    }
    if !errs.is_empty() {
        return Err(ApiErr::invalid(errs));
    }
    let obj = w
        .coll_mut(coll)
        .get_mut(&id)
        .ok_or_else(|| ApiErr::not_found(coll))?;
    for f in ["name", "labels"].iter().chain(extra) {
        if let Some(v) = body.get(*f) {
            obj[*f] = v.clone();
        }
    }
    Ok(())
}

/// Validation helper collecting `(field, message)` pairs.
#[derive(Debug, Default)]
pub struct Check(pub Vec<(String, String)>);

impl Check {
    /// Records a problem.
    pub fn err(&mut self, f: impl Into<String>, m: impl Into<String>) {
        self.0.push((f.into(), m.into()));
    }

    /// A required non-empty string field.
    pub fn req_str<'a>(&mut self, body: &'a Value, f: &str) -> Option<&'a str> {
        match body.get(f).and_then(Value::as_str) {
            Some(s) if !s.is_empty() => Some(s),
            _ => {
                self.err(f, "is required and must be a non-empty string");
                None
            }
        }
    }

    /// Labels, if present, must be valid.
    pub fn labels(&mut self, body: &Value) {
        if let Some(l) = body.get("labels") {
            for m in labels::validate(l) {
                self.err("labels", m);
            }
        }
    }

    /// Fails with `invalid_input` if anything was recorded.
    pub fn done(self) -> Result<(), ApiErr> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiErr::invalid(self.0))
        }
    }
}

/// A reply with a single action: `{"action": …}`.
pub fn action_reply(status: u16, action: Value) -> ApiResult {
    reply(status, json!({ "action": action }))
}

/// Now as an RFC 3339 string.
pub fn now() -> String {
    rfc3339(unix_now())
}
