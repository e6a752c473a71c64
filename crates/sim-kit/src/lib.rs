//! The simulator kit: what every cairn API simulator shares, so a reader (or a test) who knows
//! one simulator knows them all.
//!
//! - **One control API** under `/_sim/`, served by one axum router ([`control`]):
//!
//!   | request | effect |
//!   | --- | --- |
//!   | `GET /_sim/counters` | [`Counters`]: `total`, `writes`, `requests` (`"POST /v1/servers"`), `faults` |
//!   | `DELETE /_sim/counters` | zero them (204) |
//!   | `GET` / `PUT /_sim/faults` | read / replace the [`FaultConfig`] (`seed`, `latency_ms`, `rate`, `kinds`, `rules`, `sim`); `PUT` answers with the new settings |
//!   | `GET` / `PUT /_sim/state` | dump / load the simulator's whole state as JSON (`PUT` answers 204) |
//!   | `POST /_sim/reset` | back to the state it started with, counters zeroed, no faults, default capacities (204) |
//!   | `GET` / `PUT /_sim/capacities` | read / change capacities and budgets (a `PUT` changes only the keys it names, and answers with all of them) |
//!
//!   A simulator may add its own read-only routes under `/_sim/` (pfSense: `/_sim/haproxy`)
//!   and may require its API credentials for the control API (pfSense does).
//! - **One fault layer** (an axum middleware, [`faults`]): counts each API request the
//!   simulator routes, then applies what a seeded generator draws: latency, an injected HTTP
//!   error (status, JSON body, reason phrase), a connection reset, a lost response, or a
//!   fault only that simulator knows (handed to it as an [`Injected`] request extension).
//! - **One handle type**, [`SimHandle`]: the endpoint URL, the credentials, the TLS
//!   fingerprint where the simulator speaks TLS, [`SimHandle::env`] (the environment that
//!   points cairn's CLI at it), the control API as methods, and shutdown on drop.
//!
//! - **Scratch directories** ([`workdir()`]) named after their owning process, swept when a
//!   later simulator starts if that process died without cleaning up.
//!
//! A simulator implements [`Simulator`] for its shared state and calls [`start`] with its API
//! router. Everything listens on 127.0.0.1 only.

pub mod control;
pub mod counters;
pub mod faults;
mod handle;
pub mod workdir;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, Method};
use serde_json::Value;

pub use counters::Counters;
pub use faults::{Fault, FaultConfig, FaultRule, Injected, Injector};
pub use handle::SimHandle;
pub use workdir::{WorkDir, workdir};

/// How a simulator counts one API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The route with ids and names replaced by placeholders (`/v1/servers/{id}`).
    pub route: String,
    /// Whether the request counts as a write.
    pub write: bool,
}

impl Route {
    /// A route; writes are the methods other than GET and HEAD.
    pub fn new(method: &Method, route: impl Into<String>) -> Route {
        Route {
            route: route.into(),
            write: method != Method::GET && method != Method::HEAD,
        }
    }
}

/// What a simulator plugs into the kit: how it counts requests, its state as JSON, and its
/// own faults and capacities. Implemented by the simulator's shared state.
pub trait Simulator: Send + Sync + 'static {
    /// The counter route of an API request, or `None` if the request is not part of the API
    /// (then it is neither counted nor subject to faults).
    fn route(&self, method: &Method, path: &str) -> Option<Route>;

    /// The whole state as JSON (`GET /_sim/state`).
    fn dump_state(&self) -> Value;

    /// Replaces the state (`PUT /_sim/state`); the error says what is wrong with the JSON.
    fn load_state(&self, state: Value) -> Result<(), String>;

    /// Back to the state the simulator started with, its own faults cleared and its
    /// capacities at their defaults (`POST /_sim/reset`).
    fn reset(&self);

    /// The simulator's own fault settings (the `sim` member of `/_sim/faults`).
    fn sim_faults(&self) -> Value {
        Value::Null
    }

    /// Replaces the simulator's own fault settings (`null`: none).
    fn set_sim_faults(&self, faults: Value) -> Result<(), String> {
        if faults.is_null() {
            Ok(())
        } else {
            Err("this simulator has no simulator-specific faults".into())
        }
    }

    /// Capacities and budgets (`GET /_sim/capacities`), a JSON object.
    fn capacities(&self) -> Value {
        Value::Object(Default::default())
    }

    /// Changes the capacities named in `changes` (a JSON object), leaving the others.
    fn set_capacities(&self, changes: Value) -> Result<(), String> {
        match changes.as_object() {
            Some(m) if m.is_empty() => Ok(()),
            _ => Err("this simulator has no settable capacities".into()),
        }
    }

    /// Whether a control request may proceed (default: anyone on loopback).
    fn control_allowed(&self, _headers: &HeaderMap) -> bool {
        true
    }

    /// Called when the handle is dropped: stop what the simulator started besides the HTTP
    /// server (processes, data-plane listeners).
    fn shutdown(&self) {}
}

/// The kit's per-simulator state: request counters and the fault injector. A simulator may
/// keep a clone to count faults it applies itself or to draw from the seeded generator.
#[derive(Clone, Default)]
pub struct Kit(Arc<KitInner>);

#[derive(Default)]
struct KitInner {
    counters: Mutex<Counters>,
    injector: Mutex<Option<Injector>>,
}

impl std::fmt::Debug for Kit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kit").finish_non_exhaustive()
    }
}

impl Kit {
    /// A kit with these faults (their `sim` part belongs to the simulator and is ignored).
    pub fn new(faults: FaultConfig) -> Kit {
        let kit = Kit::default();
        kit.set_faults(faults);
        kit
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        lock(&self.0.counters).clone()
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        *lock(&self.0.counters) = Counters::default();
    }

    /// Counts a fault the simulator applied itself (e.g. a failed task).
    pub fn count_fault(&self, name: &str) {
        lock(&self.0.counters).fault(name);
    }

    /// The generic fault settings (`sim` is `null`; the simulator holds its own part).
    pub fn faults(&self) -> FaultConfig {
        lock(&self.0.injector)
            .as_ref()
            .map(|i| i.config.clone())
            .unwrap_or_default()
    }

    /// Replaces the generic fault settings and restarts the generator from the seed.
    pub fn set_faults(&self, mut faults: FaultConfig) {
        faults.sim = Value::Null;
        *lock(&self.0.injector) = Some(Injector::new(faults));
    }

    /// A number in `[0, 1)` from the seeded generator.
    pub fn roll(&self) -> f64 {
        lock(&self.0.injector)
            .get_or_insert_with(|| Injector::new(FaultConfig::default()))
            .roll()
    }

    fn count(&self, method: &Method, route: &Route) {
        lock(&self.0.counters).count(method.as_str(), &route.route, route.write);
    }

    fn draw(&self, method: &Method, path: &str) -> (Option<Fault>, u64) {
        let drawn = lock(&self.0.injector)
            .get_or_insert_with(|| Injector::new(FaultConfig::default()))
            .draw(method, path);
        if let Some(f) = &drawn.0 {
            self.count_fault(f.name());
        }
        drawn
    }
}

/// Errors starting a simulator or loading its state.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or serving failed (also: a temp dir or TLS setup).
    #[error("simulator I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A state, fixture or setting is not valid JSON for this simulator.
    #[error("simulator state: {0}")]
    State(String),
}

impl From<serde_json::Error> for SimError {
    fn from(e: serde_json::Error) -> Self {
        SimError::State(e.to_string())
    }
}

/// How to serve a simulator.
pub struct Spec {
    /// Short name for logs (`hetzner`).
    pub name: &'static str,
    /// The certificate to serve TLS with; `None`: plain HTTP.
    pub tls: Option<cairn_core::tls::SelfSigned>,
    /// Appended to `scheme://127.0.0.1:port` to make the endpoint clients are given (`/v1`).
    pub base_path: &'static str,
    /// The credential clients send (API token or key).
    pub token: String,
    /// User and password the simulator also accepts, where it does.
    pub basic_auth: Option<(String, String)>,
    /// The simulator's API (state applied; usually a fallback handler).
    pub api: Router,
    /// Extra routes under `/_sim/` (paths relative to it, e.g. `/haproxy`).
    pub control: Router,
}

/// What the kit shares between the control router and the fault layer.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) kit: Kit,
    pub(crate) sim: Arc<dyn Simulator>,
}

/// Binds 127.0.0.1:0 and serves `spec.api` behind the fault layer, with the control API under
/// `/_sim/`, in the current tokio runtime. Dropping the handle stops it.
pub async fn start<S: Simulator>(
    kit: Kit,
    sim: Arc<S>,
    spec: Spec,
) -> Result<SimHandle<S>, SimError> {
    handle::start(kit, sim, spec).await
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
