//! A faithful simulator of the Hetzner Cloud API, good enough that the official `hcloud`
//! Python library cannot tell it from the real thing. It imports nothing from the provider
//! crate `cairn-hetzner`: it is the independent oracle that provider is tested against.
//!
//! Start it with [`HetznerSim::start`]; it listens on `127.0.0.1:<random port>` and stops when
//! the returned [`SimHandle`] is dropped. `base_url` ends in `/v1`, ready for
//! `HCLOUD_ENDPOINT` or the Python client's `api_endpoint`.
//!
//! # Behaviour
//! - Bearer auth with the configured token (401 `unauthorized` otherwise).
//! - Envelopes, status codes, errors (`invalid_input` with `details.fields`,
//!   `uniqueness_error`, `locked`, …) and pagination (`page`, `per_page` default 25 max 50,
//!   `meta.pagination`, `Link` header) as in the spec; `name`, `label_selector` (full grammar)
//!   and `sort` on lists.
//! - Actions run for [`SimConfig::action_time`] and lock their resources meanwhile
//!   (423 `locked`).
//! - Public IPs from documentation ranges (203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24,
//!   2001:db8::/32); private IPs from the network's subnets; LB target `health_status`
//!   follows the target server's power state.
//! - Rate limit headers (`RateLimit-Limit/Remaining/Reset`) and 429 `rate_limit_exceeded`
//!   from a token bucket ([`SimConfig::rate_limit`], [`SimConfig::rate_refill_per_sec`]).
//! - Deterministic fault injection ([`FaultConfig`]): latency, 429, 503, `locked`, dropped
//!   responses (the request is applied, the connection dies before the body), and actions
//!   that end in `error`.
//! - One deliberate divergence from the spec: `DELETE /load_balancers/{id}` answers 200 with
//!   an action, as the live API does and the official Python client expects.
//!
//! # Control API (no auth, loopback only)
//! | request | effect |
//! | --- | --- |
//! | `GET /_sim/counters` | [`Counters`]: `total`, `writes`, `by_route` (`"POST /v1/servers/{id}/actions/poweroff"`), `faults` |
//! | `DELETE /_sim/counters` | reset the counters (204) |
//! | `GET /_sim/faults` / `PUT /_sim/faults` | read / set the [`FaultConfig`] JSON (`seed`, `rate`, `kinds`, `latency_ms`) |
//! | `GET /_sim/state` / `PUT /_sim/state` | dump / load the whole project as JSON (the fixture format, [`World`]) |
//!
//! A fixture (the same JSON as `GET /_sim/state`) can seed the state at start
//! ([`SimConfig::fixture`], or a file with [`SimConfig::with_fixture_file`]).

mod actions;
mod catalog;
mod cidr;
mod control;
pub mod faults;
mod firewalls;
pub mod fixtures;
pub mod http;
mod keys;
pub mod labels;
mod load_balancers;
mod networks;
mod servers;
pub mod world;
mod zones;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use faults::{Counters, Fault, FaultConfig};
pub use world::World;

use faults::{Injector, RateBucket};
use http::{ApiErr, Query};

/// Simulator settings.
#[derive(Clone)]
pub struct SimConfig {
    /// The API token clients must send.
    pub token: String,
    /// How long every action runs (and locks its resources).
    pub action_time: Duration,
    /// Rate-limit bucket size (`RateLimit-Limit`), 3600 like the real API.
    pub rate_limit: u32,
    /// Refill per second (1 like the real API).
    pub rate_refill_per_sec: f64,
    /// Initial fault injection.
    pub faults: FaultConfig,
    /// Initial state (the `GET /_sim/state` format).
    pub fixture: Option<Value>,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("token", &"<redacted>")
            .field("action_time", &self.action_time)
            .field("rate_limit", &self.rate_limit)
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
            rate_limit: 3600,
            rate_refill_per_sec: 1.0,
            faults: FaultConfig::default(),
            fixture: None,
        }
    }
}

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or serving failed.
    #[error("simulator I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The fixture is not valid state JSON.
    #[error("bad fixture: {0}")]
    Fixture(#[from] serde_json::Error),
}

/// One parsed API request, handed to the per-collection handlers.
#[derive(Debug)]
pub struct Req {
    /// Upper-case method.
    pub method: String,
    /// Path segments after `/v1`.
    pub segs: Vec<String>,
    /// Query parameters.
    pub q: Query,
    /// JSON body (`Null` when empty).
    pub body: Value,
}

pub(crate) struct Shared {
    token: String,
    world: Mutex<World>,
    counters: Mutex<Counters>,
    faults: Mutex<Injector>,
    bucket: Mutex<RateBucket>,
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
        let shared = Arc::new(Shared {
            token: cfg.token.clone(),
            world: Mutex::new(world),
            counters: Mutex::new(Counters::default()),
            faults: Mutex::new(Injector::new(cfg.faults.clone())),
            bucket: Mutex::new(RateBucket::new(cfg.rate_limit, cfg.rate_refill_per_sec)),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(entry)
            .with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = r {
                tracing::warn!("hetzner simulator stopped: {e}");
            }
        });
        tracing::info!(%addr, "hetzner simulator listening");
        Ok(SimHandle {
            base_url: format!("http://{addr}/v1"),
            token: cfg.token,
            addr,
            shared,
            stop: Some(tx),
        })
    }
}

/// A running simulator; stops when dropped.
pub struct SimHandle {
    /// `http://127.0.0.1:<port>/v1`.
    pub base_url: String,
    /// The token clients must send.
    pub token: String,
    /// The listening address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.base_url)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl SimHandle {
    /// `http://127.0.0.1:<port>`, the root of the control API (`/_sim/...`).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A snapshot of the request counters.
    pub fn counters(&self) -> Counters {
        lock(&self.shared.counters).clone()
    }

    /// Resets the request counters.
    pub fn reset_counters(&self) {
        *lock(&self.shared.counters) = Counters::default();
    }

    /// Replaces the fault injection settings (and restarts the generator from its seed).
    pub fn set_faults(&self, f: FaultConfig) {
        *lock(&self.shared.faults) = Injector::new(f);
    }

    /// Sets the rate-limit bucket (full).
    pub fn set_rate_limit(&self, limit: u32, refill_per_sec: f64) {
        *lock(&self.shared.bucket) = RateBucket::new(limit, refill_per_sec);
    }

    /// Dumps the state (fixture format).
    pub fn dump_state(&self) -> Value {
        serde_json::to_value(&*lock(&self.shared.world)).unwrap_or(Value::Null)
    }

    /// Loads a state (fixture format); running actions are dropped.
    pub fn load_state(&self, v: Value) -> Result<(), SimError> {
        let mut w: World = serde_json::from_value(v)?;
        let mut cur = lock(&self.shared.world);
        w.action_time = cur.action_time;
        *cur = w;
        Ok(())
    }

    /// Runs `f` on the state (e.g. to power a server off behind the API's back).
    pub fn with_world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let mut w = lock(&self.shared.world);
        w.version += 1;
        f(&mut w)
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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

async fn entry(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/_sim/") {
        return control::handle(&sh, req.method().clone(), rest.to_string(), req).await;
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        return ApiErr::not_found("route").into_response();
    };
    let segs: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let method = req.method().clone();
    lock(&sh.counters).count(method.as_str(), &route_of(&segs));
    let (fault, latency) = {
        let mut inj = lock(&sh.faults);
        (inj.draw(), inj.config.latency_ms)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let authed = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| t == sh.token);
    let (allowed, remaining, reset) = lock(&sh.bucket).take();
    let limit = lock(&sh.bucket).limit;
    let mut resp = if !authed {
        ApiErr::new(401, "unauthorized", "unable to authenticate").into_response()
    } else if !allowed {
        ApiErr::new(
            429,
            "rate_limit_exceeded",
            "limit of requests per hour reached",
        )
        .into_response()
    } else {
        let injected = match fault {
            Some(Fault::RateLimit) => Some(ApiErr::new(
                429,
                "rate_limit_exceeded",
                "limit of requests per hour reached",
            )),
            Some(Fault::Unavailable) => Some(ApiErr::new(
                503,
                "unavailable",
                "service temporarily unavailable",
            )),
            Some(Fault::Locked) if method != Method::GET => Some(ApiErr::locked()),
            Some(Fault::Locked) => Some(ApiErr::new(
                503,
                "unavailable",
                "service temporarily unavailable",
            )),
            _ => None,
        };
        if let Some(f) = fault {
            *lock(&sh.counters)
                .faults
                .entry(format!("{f:?}").to_lowercase())
                .or_default() += 1;
        }
        match injected {
            Some(e) => e.into_response(),
            None => {
                let q = Query::parse(req.uri().query());
                let bytes = axum::body::to_bytes(req.into_body(), 4 << 20)
                    .await
                    .unwrap_or_default();
                let body = if bytes.iter().all(u8::is_ascii_whitespace) {
                    Ok(Value::Null)
                } else {
                    serde_json::from_slice::<Value>(&bytes)
                };
                match body {
                    Err(e) => ApiErr::new(400, "json_error", format!("invalid JSON body: {e}"))
                        .into_response(),
                    Ok(body) => {
                        let r = Req {
                            method: method.as_str().to_string(),
                            segs,
                            q,
                            body,
                        };
                        let out = {
                            let mut w = lock(&sh.world);
                            w.gc_actions();
                            if method != Method::GET {
                                w.version += 1;
                            }
                            let before = w.last_id;
                            let out = dispatch(&mut w, &r);
                            if fault == Some(Fault::ActionError) {
                                for (_, a) in w.actions.range_mut(before + 1..) {
                                    a.error = Some((
                                        "action_failed".into(),
                                        format!("{} failed (injected fault)", a.command),
                                    ));
                                }
                            }
                            out
                        };
                        match out {
                            Ok(resp) => resp,
                            Err(e) => e.into_response(),
                        }
                    }
                }
            }
        }
    };
    // An injected 429 looks like an exhausted budget that refills within a second.
    let (remaining, reset) = if authed && allowed && fault == Some(Fault::RateLimit) {
        (0, faults::unix_now() + 1)
    } else {
        (remaining, reset)
    };
    let h = resp.headers_mut();
    h.insert("RateLimit-Limit", HeaderValue::from(limit));
    h.insert("RateLimit-Remaining", HeaderValue::from(remaining));
    h.insert("RateLimit-Reset", HeaderValue::from(reset));
    if fault == Some(Fault::Drop) && resp.status().is_success()
        || fault == Some(Fault::Drop) && resp.status().is_client_error()
    {
        let (parts, _) = resp.into_parts();
        let broken = futures::stream::once(async {
            Err::<Bytes, std::io::Error>(std::io::Error::other(
                "connection dropped by fault injection",
            ))
        });
        return Response::from_parts(parts, Body::from_stream(broken));
    }
    resp
}

fn dispatch(w: &mut World, r: &Req) -> http::ApiResult {
    match r.segs.first().map(String::as_str) {
        Some("servers") => servers::handle(w, r),
        Some("networks") => networks::handle(w, r),
        Some("load_balancers") => load_balancers::handle(w, r),
        Some("firewalls") => firewalls::handle(w, r),
        Some("ssh_keys") => keys::ssh_keys(w, r),
        Some("primary_ips") => keys::primary_ips(w, r),
        Some("placement_groups") => keys::placement_groups(w, r),
        Some("zones") => zones::handle(w, r),
        Some("actions") => actions::handle(w, r),
        Some(
            c @ ("locations" | "datacenters" | "server_types" | "images" | "load_balancer_types"),
        ) => {
            let (items, key) = match c {
                "locations" => (catalog::locations(), "locations"),
                "datacenters" => (catalog::datacenters(), "datacenters"),
                "server_types" => (catalog::server_types(), "server_types"),
                "images" => (catalog::images(), "images"),
                _ => (catalog::load_balancer_types(), "load_balancer_types"),
            };
            let single = key.trim_end_matches('s');
            match (r.method.as_str(), r.segs.get(1)) {
                ("GET", None) => {
                    let arch = r.q.all("architecture");
                    let items = items
                        .into_iter()
                        .filter(|i| {
                            arch.is_empty()
                                || arch.contains(&i["architecture"].as_str().unwrap_or(""))
                        })
                        .collect();
                    http::list(key, &format!("/v1/{key}"), items, &r.q, &["type", "status"])
                }
                ("GET", Some(id)) => {
                    let it = catalog::find(items, &Value::String(id.clone()), None)
                        .ok_or_else(|| ApiErr::not_found(single))?;
                    http::reply(200, serde_json::json!({ single: it }))
                }
                _ => Err(ApiErr::not_found("route")),
            }
        }
        _ => Err(ApiErr::new(404, "not_found", "no such endpoint")),
    }
    .map(|mut r| {
        if r.status() == StatusCode::NO_CONTENT {
            *r.body_mut() = Body::empty();
        }
        r
    })
}
