//! Deterministic fault injection, the rate-limit bucket and the request counters.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A fault the simulator can inject instead of (or after) serving a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// HTTP 429 `rate_limit_exceeded`.
    RateLimit,
    /// HTTP 503 `unavailable`.
    Unavailable,
    /// HTTP 423 `locked`.
    Locked,
    /// The request is served, then the connection is dropped before the body arrives (a lost
    /// response: the change may have happened).
    Drop,
    /// The request is served, but the actions it starts end in `error`
    /// (`action_failed`); requests that start no action are unaffected.
    ActionError,
}

/// Fault injection settings, also the body of `PUT /_sim/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Seed of the deterministic generator.
    pub seed: u64,
    /// Probability (0..=1) that an API request gets a fault.
    pub rate: f64,
    /// The faults to choose from (uniformly).
    pub kinds: Vec<Fault>,
    /// Added latency for every API request, in milliseconds.
    pub latency_ms: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 1,
            rate: 0.0,
            kinds: vec![
                Fault::RateLimit,
                Fault::Unavailable,
                Fault::Locked,
                Fault::Drop,
            ],
            latency_ms: 0,
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

/// The injector: the config plus its generator state.
#[derive(Debug, Clone)]
pub struct Injector {
    /// Current settings.
    pub config: FaultConfig,
    rng: Rng,
}

impl Injector {
    /// An injector for a config.
    pub fn new(config: FaultConfig) -> Self {
        let rng = Rng::new(config.seed);
        Injector { config, rng }
    }

    /// Draws the fault (if any) for the next request.
    pub fn draw(&mut self) -> Option<Fault> {
        if self.config.rate <= 0.0 || self.config.kinds.is_empty() {
            return None;
        }
        let hit = self.rng.next_f64() < self.config.rate;
        let pick = self.rng.next_u64() as usize % self.config.kinds.len();
        hit.then(|| self.config.kinds[pick])
    }
}

/// A token bucket like the API's: `limit` requests, refilled `refill_per_sec` per second.
#[derive(Debug, Clone)]
pub struct RateBucket {
    /// Bucket size (`RateLimit-Limit`).
    pub limit: u32,
    /// Refill rate per second.
    pub refill_per_sec: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl RateBucket {
    /// A full bucket.
    pub fn new(limit: u32, refill_per_sec: f64) -> Self {
        RateBucket {
            limit,
            refill_per_sec,
            tokens: limit as f64,
            last: std::time::Instant::now(),
        }
    }

    /// Takes one token; returns `(allowed, remaining, reset_unix)`.
    pub fn take(&mut self) -> (bool, u32, u64) {
        let now = std::time::Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.refill_per_sec).min(self.limit as f64);
        let allowed = self.tokens >= 1.0;
        if allowed {
            self.tokens -= 1.0;
        }
        let missing = self.limit as f64 - self.tokens;
        let secs_to_full = if self.refill_per_sec > 0.0 {
            (missing / self.refill_per_sec).ceil() as u64
        } else {
            0
        };
        let reset = unix_now() + secs_to_full.max(if allowed { 0 } else { 1 });
        (allowed, self.tokens.floor() as u32, reset)
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Request counters, as returned by `GET /_sim/counters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// All API requests (`/v1/...`), including rejected ones.
    pub total: u64,
    /// API requests with a method other than GET/HEAD.
    pub writes: u64,
    /// Requests by `METHOD /v1/path/{id}` (ids and names replaced by placeholders).
    pub by_route: BTreeMap<String, u64>,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
}

impl Counters {
    /// Counts one request to `route` (already normalised).
    pub fn count(&mut self, method: &str, route: &str) {
        self.total += 1;
        if method != "GET" && method != "HEAD" {
            self.writes += 1;
        }
        *self
            .by_route
            .entry(format!("{method} {route}"))
            .or_default() += 1;
    }

    /// Requests whose route starts with `prefix` (e.g. `GET /v1/servers`).
    pub fn matching(&self, prefix: &str) -> u64 {
        self.by_route
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
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
            ..Default::default()
        };
        let mut a = Injector::new(cfg.clone());
        let mut b = Injector::new(cfg);
        let sa: Vec<_> = (0..100).map(|_| a.draw()).collect();
        let sb: Vec<_> = (0..100).map(|_| b.draw()).collect();
        assert_eq!(sa, sb);
        let hits = sa.iter().filter(|f| f.is_some()).count();
        assert!((30..70).contains(&hits), "rate 0.5 gave {hits}/100");
    }

    #[test]
    fn bucket_refuses_when_empty() {
        let mut b = RateBucket::new(2, 0.0);
        assert!(b.take().0);
        assert!(b.take().0);
        let (ok, rem, _) = b.take();
        assert!(!ok);
        assert_eq!(rem, 0);
    }
}
