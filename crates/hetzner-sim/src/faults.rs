//! Hetzner's own faults (handed over by the kit's fault layer) and the rate-limit bucket.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cairn_sim_kit::Fault;

/// The faults only this simulator knows; the kit's generic ones (`Fault::Drop`,
/// `Fault::Reset`, injected errors) apply too. Each converts into a [`Fault`] for
/// `FaultConfig::kinds` or a rule, and is counted under its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HetznerFault {
    /// HTTP 429 `rate_limit_exceeded`, with an exhausted `RateLimit-Remaining`.
    RateLimit,
    /// HTTP 503 `unavailable`.
    Unavailable,
    /// HTTP 423 `locked` on writes (503 `unavailable` on reads).
    Locked,
    /// The request is served, but the actions it starts end in `error` (`action_failed`);
    /// requests that start no action are unaffected.
    ActionError,
}

impl HetznerFault {
    /// The name it is injected and counted under.
    pub fn name(self) -> &'static str {
        match self {
            HetznerFault::RateLimit => "rate_limit",
            HetznerFault::Unavailable => "unavailable",
            HetznerFault::Locked => "locked",
            HetznerFault::ActionError => "action_error",
        }
    }

    /// The fault named `name`, if it is one of Hetzner's.
    pub fn from_name(name: &str) -> Option<HetznerFault> {
        [
            HetznerFault::RateLimit,
            HetznerFault::Unavailable,
            HetznerFault::Locked,
            HetznerFault::ActionError,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }
}

impl From<HetznerFault> for Fault {
    fn from(f: HetznerFault) -> Fault {
        Fault::sim(f.name())
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

#[cfg(test)]
mod tests {
    use super::*;

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
