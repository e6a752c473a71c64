//! The fault layer: one deterministic generator per simulator decides, for every counted API
//! request, whether it is delayed, answered with an injected error, has its connection reset,
//! loses its response, or carries a simulator-specific fault to the simulator's handler.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Shared;

/// A fault injected into one API request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer with this status and JSON body instead of serving; the request has no effect.
    /// JSON: `{"status": 503, "body": {…}, "reason": "…"}`.
    Error {
        /// HTTP status.
        status: u16,
        /// JSON body (`null`: none).
        body: Value,
        /// HTTP reason phrase, for APIs that carry their message there (Proxmox).
        reason: Option<String>,
    },
    /// The connection dies before the response body; the request was not served.
    /// JSON: `"reset"`.
    Reset,
    /// The request is served, then the connection dies before the response body arrives: a
    /// lost response (the change may have happened). JSON: `"drop"`.
    Drop,
    /// A fault only the simulator knows (e.g. Hetzner's `locked`, Proxmox's `lock`): the
    /// request reaches the simulator with an [`Injected`] extension naming it. JSON: the name.
    Sim(String),
}

impl Fault {
    /// A simulator-specific fault by name.
    pub fn sim(name: impl Into<String>) -> Fault {
        Fault::Sim(name.into())
    }

    /// An injected error answer.
    pub fn error(status: u16, body: Value) -> Fault {
        Fault::Error {
            status,
            body,
            reason: None,
        }
    }

    /// The name the fault is counted under.
    pub fn name(&self) -> &str {
        match self {
            Fault::Error { .. } => "error",
            Fault::Reset => "reset",
            Fault::Drop => "drop",
            Fault::Sim(n) => n,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum FaultRepr {
    Name(String),
    Error {
        status: u16,
        #[serde(default)]
        body: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl Serialize for Fault {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Fault::Error {
                status,
                body,
                reason,
            } => FaultRepr::Error {
                status: *status,
                body: body.clone(),
                reason: reason.clone(),
            },
            other => FaultRepr::Name(other.name().to_string()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match FaultRepr::deserialize(d)? {
            FaultRepr::Name(n) if n == "reset" => Fault::Reset,
            FaultRepr::Name(n) if n == "drop" => Fault::Drop,
            FaultRepr::Name(n) => Fault::Sim(n),
            FaultRepr::Error {
                status,
                body,
                reason,
            } => Fault::Error {
                status,
                body,
                reason,
            },
        })
    }
}

/// A targeted fault: requests matching the method(s) and path prefix get `fault` (after
/// `latency_ms`) with probability `rate`, at most `remaining` times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultRule {
    /// Methods to match (any when empty).
    pub methods: Vec<String>,
    /// Path prefix to match, e.g. `/api/v2/services/haproxy` (any when empty).
    pub path_prefix: String,
    /// Probability (0..=1) that a matching request is hit; 1 draws no random number.
    pub rate: f64,
    /// How many more requests it hits (forever when absent).
    pub remaining: Option<u32>,
    /// Delay before answering, in milliseconds.
    pub latency_ms: u64,
    /// The fault (`None`: only the latency, then served normally).
    pub fault: Option<Fault>,
}

impl Default for FaultRule {
    fn default() -> Self {
        FaultRule {
            methods: Vec::new(),
            path_prefix: String::new(),
            rate: 1.0,
            remaining: None,
            latency_ms: 0,
            fault: None,
        }
    }
}

impl FaultRule {
    fn matches(&self, method: &Method, path: &str) -> bool {
        self.remaining != Some(0)
            && path.starts_with(&self.path_prefix)
            && (self.methods.is_empty()
                || self
                    .methods
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(method.as_str())))
    }
}

/// Fault settings, the body of `GET`/`PUT /_sim/faults`. Deterministic: the same seed and
/// request sequence give the same faults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Seed of the generator (restarted whenever faults are set).
    pub seed: u64,
    /// Latency added to every counted API request, in milliseconds.
    pub latency_ms: u64,
    /// Probability (0..=1) that a request not hit by a rule gets one of `kinds`.
    pub rate: f64,
    /// The faults `rate` chooses from, uniformly.
    pub kinds: Vec<Fault>,
    /// Targeted faults, tried in order before `rate`.
    pub rules: Vec<FaultRule>,
    /// Simulator-specific fault settings (e.g. Proxmox's failing tasks); `null`: none.
    pub sim: Value,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 1,
            latency_ms: 0,
            rate: 0.0,
            kinds: Vec::new(),
            rules: Vec::new(),
            sim: Value::Null,
        }
    }
}

/// A small xorshift generator: deterministic for a seed, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The settings plus the generator's state.
#[derive(Debug, Clone)]
pub struct Injector {
    /// Current settings.
    pub config: FaultConfig,
    rng: Rng,
}

impl Injector {
    /// An injector for a config, its generator at the seed.
    pub fn new(config: FaultConfig) -> Self {
        let rng = Rng::new(config.seed);
        Injector { config, rng }
    }

    /// Draws the fault (if any) and the latency for the next request.
    pub fn draw(&mut self, method: &Method, path: &str) -> (Option<Fault>, u64) {
        let mut latency = self.config.latency_ms;
        for rule in &mut self.config.rules {
            if !rule.matches(method, path) {
                continue;
            }
            let hit = rule.rate >= 1.0 || (rule.rate > 0.0 && self.rng.next_f64() < rule.rate);
            if !hit {
                continue;
            }
            if let Some(r) = &mut rule.remaining {
                *r -= 1;
            }
            latency += rule.latency_ms;
            return (rule.fault.clone(), latency);
        }
        if self.config.rate <= 0.0 || self.config.kinds.is_empty() {
            return (None, latency);
        }
        let hit = self.rng.next_f64() < self.config.rate;
        let pick = self.rng.next_u64() as usize % self.config.kinds.len();
        (hit.then(|| self.config.kinds[pick].clone()), latency)
    }

    /// A number in `[0, 1)` from the same generator, for simulators' own random choices.
    pub fn roll(&mut self) -> f64 {
        self.rng.next_f64()
    }
}

/// The extension a request carries to the simulator when a [`Fault::Sim`] was drawn for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injected(pub String);

/// A response whose body fails: the client gets the status line, then the connection dies.
fn broken(parts: axum::http::response::Parts, why: &'static str) -> Response {
    let stream =
        futures::stream::once(
            async move { Err::<Bytes, std::io::Error>(std::io::Error::other(why)) },
        );
    Response::from_parts(parts, Body::from_stream(stream))
}

/// The fault layer (axum middleware): counts the request, then applies what the generator
/// draws. Requests the simulator does not route (and `/_sim/`) pass untouched.
pub(crate) async fn layer(State(sh): State<Shared>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if path == "/_sim" || path.starts_with("/_sim/") {
        return next.run(req).await;
    }
    let Some(route) = sh.sim.route(&method, &path) else {
        return next.run(req).await;
    };
    sh.kit.count(&method, &route);
    let (fault, latency) = sh.kit.draw(&method, &path);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    match fault {
        None => next.run(req).await,
        Some(Fault::Error {
            status,
            body,
            reason,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = if body.is_null() {
                status.into_response()
            } else {
                (status, axum::Json(body)).into_response()
            };
            if let Some(rp) =
                reason.and_then(|r| hyper::ext::ReasonPhrase::try_from(r.into_bytes()).ok())
            {
                resp.extensions_mut().insert(rp);
            }
            resp
        }
        Some(Fault::Reset) => {
            let (parts, _) = StatusCode::OK.into_response().into_parts();
            broken(parts, "connection reset by fault injection")
        }
        Some(Fault::Drop) => {
            let resp = next.run(req).await;
            if resp.status().is_success() || resp.status().is_client_error() {
                let (parts, _) = resp.into_parts();
                broken(parts, "connection dropped by fault injection")
            } else {
                resp
            }
        }
        Some(Fault::Sim(name)) => {
            req.extensions_mut().insert(Injected(name));
            next.run(req).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_fault_sequence() {
        let cfg = FaultConfig {
            seed: 42,
            rate: 0.5,
            kinds: vec![Fault::Drop, Fault::sim("locked")],
            ..Default::default()
        };
        let (mut a, mut b) = (Injector::new(cfg.clone()), Injector::new(cfg));
        let sa: Vec<_> = (0..100).map(|_| a.draw(&Method::GET, "/x").0).collect();
        let sb: Vec<_> = (0..100).map(|_| b.draw(&Method::GET, "/x").0).collect();
        assert_eq!(sa, sb);
        let hits = sa.iter().filter(|f| f.is_some()).count();
        assert!((30..70).contains(&hits), "rate 0.5 gave {hits}/100");
    }

    #[test]
    fn rules_match_method_and_prefix_and_run_out() {
        let mut inj = Injector::new(FaultConfig {
            rules: vec![FaultRule {
                methods: vec!["POST".into()],
                path_prefix: "/api/a".into(),
                remaining: Some(2),
                fault: Some(Fault::error(503, Value::Null)),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(inj.draw(&Method::GET, "/api/a").0, None);
        assert_eq!(inj.draw(&Method::POST, "/api/b").0, None);
        assert!(inj.draw(&Method::POST, "/api/a/x").0.is_some());
        assert!(inj.draw(&Method::POST, "/api/a").0.is_some());
        assert_eq!(inj.draw(&Method::POST, "/api/a").0, None, "ran out");
    }

    #[test]
    fn faults_read_as_names_or_error_objects() {
        let f: Vec<Fault> =
            serde_json::from_value(serde_json::json!(["drop", "reset", "locked", {"status": 503}]))
                .unwrap();
        assert_eq!(
            f,
            [
                Fault::Drop,
                Fault::Reset,
                Fault::sim("locked"),
                Fault::error(503, Value::Null)
            ]
        );
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!(["drop", "reset", "locked", {"status": 503, "body": null}])
        );
    }
}
