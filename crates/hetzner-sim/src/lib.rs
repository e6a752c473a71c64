//! A faithful simulator of the Hetzner Cloud API, good enough that the official `hcloud`
//! Python library cannot tell it from the real thing. It imports nothing from the provider
//! crate `cairn-hetzner`: it is the independent oracle that provider is tested against.
//!
//! Start it with [`HetznerSim::start`]; it listens on `127.0.0.1:<random port>` and stops when
//! the returned [`SimHandle`] (the kit's handle over [`HetznerState`]) is dropped. Its
//! `endpoint` ends in `/v1`, ready for `HCLOUD_ENDPOINT` or the Python client's
//! `api_endpoint`; `env()` holds `HCLOUD_ENDPOINT` and `HCLOUD_TOKEN`.
//!
//! # Behaviour
//! - Bearer auth with the configured token (401 `unauthorized` otherwise).
//! - Envelopes, status codes, errors (`invalid_input` with `details.fields`,
//!   `uniqueness_error`, `locked`, …) and pagination (`page`, `per_page` default 25 max 50,
//!   `meta.pagination`, `Link` header) as in the spec; `name`, `label_selector` (full grammar)
//!   and `sort` on lists.
//! - Actions run as the API documents them ([`locks`]): most run for
//!   [`SimConfig::action_time`] and lock their resources meanwhile (423 `locked`); those the
//!   API finishes within the request (protection, backups, …) lock nothing; a DNS zone's
//!   changes queue behind each other instead of locking.
//! - Protection (`change_protection` on servers, networks, load balancers, volumes, primary
//!   IPs, zones and rrsets) is enforced: a protected delete, rebuild or rrset change answers
//!   423 `protected` (API-NOTES; never retried as busy, unlike 423 `locked`).
//! - Every "ID or name" field of a create accepts both (JSON numbers too).
//! - Public IPv4s from a pool of never-routed ranges ([`Capacities::public_ipv4_pools`]: by
//!   default the documentation ranges 203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24, then the
//!   benchmarking range 198.18.0.0/15, about 132,000 addresses); IPv6 from 2001:db8::/32;
//!   private IPs from the network's subnets; LB target `health_status` follows the target
//!   server's power state.
//! - Rate limit headers (`RateLimit-Limit/Remaining/Reset`) and 429 `rate_limit_exceeded`
//!   from a token bucket (3600 requests, refilled 1/s, like the real API; settable).
//! - Deterministic fault injection through the kit ([`FaultConfig`]): latency, injected
//!   errors, connection resets and dropped responses (`Fault::Drop`: the request is applied,
//!   the connection dies before the body), plus Hetzner's own [`HetznerFault`]s: 429, 503,
//!   `locked`, and actions that end in `error`.
//! - Routing by axum (`routes.rs`): each collection module adds its routes (path parameters,
//!   one handler per method) and is one line in `collections!`; unknown paths and methods
//!   answer 404 `not_found`. One middleware authenticates, spends the rate-limit budget and
//!   applies Hetzner's injected faults for routed and unrouted requests alike.
//! - One deliberate divergence from the spec: `DELETE /load_balancers/{id}` answers 200 with
//!   an action, as the live API does and the official Python client expects.
//!
//! # Control API (no auth, loopback only)
//! The kit's `/_sim/` API (`cairn_sim_kit`): counters (routes like
//! `"POST /v1/servers/{id}/actions/poweroff"`), faults, state (the fixture format, [`World`]),
//! reset, and capacities ([`Capacities`]: `rate_limit`, `rate_refill_per_sec`,
//! `public_ipv4_pools`; read-only `public_ipv4_capacity`).
//!
//! [`HetznerState::server_events`] tells glue code when a server has booted (with its private
//! IPs, SSH public keys and `user_data`, which the API never shows again), stopped or been
//! deleted.
//!
//! A fixture (the same JSON as `GET /_sim/state`) can seed the state at start
//! ([`SimConfig::fixture`], or a file with [`SimConfig::with_fixture_file`]).

mod cidr;
pub mod events;
pub mod faults;
pub mod fixtures;
pub mod http;
pub mod labels;
pub mod locks;
mod routes;
pub mod world;

/// Declares the API's collection modules; each adds its own routes with its `routes`
/// function, so a new collection is one line here (plus its file).
macro_rules! collections {
    ($($module:ident),* $(,)?) => {
        $(mod $module;)*

        /// Every API route, collection by collection.
        fn api_routes() -> routes::Routes {
            let r = routes::Routes::new();
            $(let r = $module::routes(r);)*
            r
        }
    };
}

collections! {
    servers,
    networks,
    load_balancers,
    firewalls,
    keys,
    zones,
    volumes,
    actions,
    catalog,
}

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Method;
use cairn_sim_kit::{Kit, Route, Simulator, Spec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use cairn_sim_kit::{Counters, Fault, FaultConfig, SimError};
pub use events::{BootedServer, ServerEvent};
pub use faults::HetznerFault;
pub use world::World;

use faults::RateBucket;
use http::Query;

/// A running Hetzner simulator.
pub type SimHandle = cairn_sim_kit::SimHandle<HetznerState>;

/// Simulator settings.
#[derive(Clone)]
pub struct SimConfig {
    /// The API token clients must send.
    pub token: String,
    /// How long every action runs (and locks its resources).
    pub action_time: Duration,
    /// Capacities and budgets (also settable through `/_sim/capacities`).
    pub capacities: Capacities,
    /// Initial fault injection.
    pub faults: FaultConfig,
    /// Initial state (the `GET /_sim/state` format).
    pub fixture: Option<Value>,
}

/// Capacities and budgets of the simulated project, the JSON of `/_sim/capacities`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Capacities {
    /// Rate-limit bucket size (`RateLimit-Limit`), 3600 like the real API.
    pub rate_limit: u32,
    /// Bucket refill per second (1 like the real API).
    pub rate_refill_per_sec: f64,
    /// The ranges public IPv4s come from, in order (each range's first two and last
    /// addresses are never handed out).
    pub public_ipv4_pools: Vec<String>,
}

impl Default for Capacities {
    fn default() -> Self {
        Capacities {
            rate_limit: 3600,
            rate_refill_per_sec: 1.0,
            public_ipv4_pools: world::DEFAULT_V4_POOLS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("token", &"<redacted>")
            .field("action_time", &self.action_time)
            .field("capacities", &self.capacities)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl SimConfig {
    /// Seeds the state from a fixture file (the `GET /_sim/state` JSON format).
    pub fn with_fixture_file(
        mut self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path)?;
        self.fixture = Some(serde_json::from_str(&text)?);
        Ok(self)
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            token: "sim".repeat(21) + "x",
            action_time: Duration::from_millis(100),
            capacities: Capacities::default(),
            faults: FaultConfig::default(),
            fixture: None,
        }
    }
}

/// One parsed API request, handed to the route handlers.
#[derive(Debug)]
pub struct Req {
    /// Upper-case method.
    pub method: String,
    /// The route's path parameters (`id`, `act`, …), percent-decoded.
    pub params: Vec<(String, String)>,
    /// Query parameters.
    pub q: Query,
    /// JSON body (`Null` when empty).
    pub body: Value,
}

impl Req {
    /// The path parameter `name` (empty when the route has none of that name).
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The simulator's state behind the kit: the project, the rate-limit bucket, capacities.
pub struct HetznerState {
    token: String,
    world: Mutex<World>,
    bucket: Mutex<RateBucket>,
    capacities: Mutex<Capacities>,
    initial: Value,
    initial_capacities: Capacities,
    action_time: Duration,
    server_events: events::Subscribers,
}

impl std::fmt::Debug for HetznerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HetznerState").finish_non_exhaustive()
    }
}

/// The simulator.
pub struct HetznerSim;

impl HetznerSim {
    /// Starts the simulator on `127.0.0.1:0` in the current tokio runtime.
    pub async fn start(cfg: SimConfig) -> Result<SimHandle, SimError> {
        let mut world: World = match &cfg.fixture {
            Some(f) => serde_json::from_value(f.clone())?,
            None => World::default(),
        };
        world.action_time = cfg.action_time;
        world.set_v4_pools(&cfg.capacities.public_ipv4_pools)?;
        let initial = serde_json::to_value(&world)?;
        let state = Arc::new(HetznerState {
            token: cfg.token.clone(),
            world: Mutex::new(world),
            bucket: Mutex::new(RateBucket::new(
                cfg.capacities.rate_limit,
                cfg.capacities.rate_refill_per_sec,
            )),
            capacities: Mutex::new(cfg.capacities.clone()),
            initial,
            initial_capacities: cfg.capacities.clone(),
            action_time: cfg.action_time,
            server_events: events::Subscribers::default(),
        });
        events::spawn_watcher(Arc::downgrade(&state));
        let api = api_routes().finish(state.clone());
        let handle = cairn_sim_kit::start(
            Kit::new(cfg.faults),
            state,
            Spec {
                name: "hetzner",
                tls: None,
                base_path: "/v1",
                token: cfg.token,
                basic_auth: None,
                api,
                control: axum::Router::new(),
            },
        )
        .await?;
        let env = [
            ("HCLOUD_ENDPOINT", handle.endpoint.clone()),
            ("HCLOUD_TOKEN", handle.token.clone()),
        ];
        Ok(handle.with_env(env))
    }
}

impl HetznerState {
    /// Runs `f` on the state (e.g. to power a server off behind the API's back).
    pub fn with_world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let mut w = lock(&self.world);
        w.version += 1;
        f(&mut w)
    }

    /// Server lifecycle events ([`ServerEvent`]), for glue code that brings simulated
    /// machines up and down with their servers: a server counts as booted once it has been
    /// running for `boot_delay`. Servers already running are announced too.
    pub fn server_events(
        &self,
        boot_delay: Duration,
    ) -> tokio::sync::mpsc::UnboundedReceiver<ServerEvent> {
        self.server_events.add(boot_delay)
    }

    /// Sets the rate-limit bucket (full).
    pub fn set_rate_limit(&self, limit: u32, refill_per_sec: f64) {
        let mut c = lock(&self.capacities);
        c.rate_limit = limit;
        c.rate_refill_per_sec = refill_per_sec;
        *lock(&self.bucket) = RateBucket::new(limit, refill_per_sec);
    }

    fn apply_capacities(&self, c: Capacities) -> Result<(), String> {
        if !(c.rate_refill_per_sec >= 0.0 && c.rate_refill_per_sec.is_finite()) {
            return Err("rate_refill_per_sec must be a non-negative number".into());
        }
        lock(&self.world)
            .set_v4_pools(&c.public_ipv4_pools)
            .map_err(|e| e.to_string())?;
        let mut cur = lock(&self.capacities);
        if (cur.rate_limit, cur.rate_refill_per_sec) != (c.rate_limit, c.rate_refill_per_sec) {
            *lock(&self.bucket) = RateBucket::new(c.rate_limit, c.rate_refill_per_sec);
        }
        *cur = c;
        Ok(())
    }
}

impl Simulator for HetznerState {
    fn route(&self, method: &Method, path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/v1/")?;
        let segs: Vec<String> = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        Some(Route::new(method, route_of(&segs)))
    }

    fn dump_state(&self) -> Value {
        serde_json::to_value(&*lock(&self.world)).unwrap_or(Value::Null)
    }

    /// Loads a state (fixture format); running actions are dropped.
    fn load_state(&self, state: Value) -> Result<(), String> {
        let mut w: World = serde_json::from_value(state).map_err(|e| e.to_string())?;
        let mut cur = lock(&self.world);
        w.action_time = cur.action_time;
        w.v4_pools = cur.v4_pools.clone();
        w.version = cur.version + 1;
        *cur = w;
        Ok(())
    }

    fn reset(&self) {
        let _ = self.apply_capacities(self.initial_capacities.clone());
        let mut w: World = serde_json::from_value(self.initial.clone()).unwrap_or_default();
        let mut cur = lock(&self.world);
        w.action_time = self.action_time;
        w.v4_pools = cur.v4_pools.clone();
        w.version = cur.version + 1;
        *cur = w;
    }

    fn capacities(&self) -> Value {
        let c = lock(&self.capacities).clone();
        let mut v = serde_json::to_value(&c).unwrap_or_default();
        v["public_ipv4_capacity"] = lock(&self.world).v4_capacity().into();
        v
    }

    fn set_capacities(&self, changes: Value) -> Result<(), String> {
        let Value::Object(changes) = changes else {
            return Err("capacities must be a JSON object".into());
        };
        let mut merged =
            serde_json::to_value(lock(&self.capacities).clone()).map_err(|e| e.to_string())?;
        for (k, v) in changes {
            if k == "public_ipv4_capacity" {
                return Err("public_ipv4_capacity follows from public_ipv4_pools".into());
            }
            if merged.get(&k).is_none() {
                return Err(format!("unknown capacity {k:?}"));
            }
            merged[k] = v;
        }
        let c: Capacities = serde_json::from_value(merged).map_err(|e| e.to_string())?;
        self.apply_capacities(c)
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Normalises a path for counters: ids and names become placeholders.
fn route_of(segs: &[String]) -> String {
    let mut out = String::from("/v1");
    let mut prev = "";
    for (i, s) in segs.iter().enumerate() {
        let placeholder = if prev == "zones" && i == 1 {
            Some("{id_or_name}")
        } else if s.parse::<u64>().is_ok() {
            Some("{id}")
        } else if prev == "rrsets" {
            Some("{name}")
        } else if i >= 2 && segs.get(i - 2).is_some_and(|x| x == "rrsets") {
            Some("{type}")
        } else {
            None
        };
        out.push('/');
        out.push_str(placeholder.unwrap_or(s));
        prev = s;
    }
    out
}
