//! Rate-limit tracking from `RateLimit-Remaining` / `RateLimit-Reset`: slow down before the
//! budget reaches zero, and after a 429 hold every request until the reset.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the last responses said about the budget.
#[derive(Debug, Clone, Default)]
pub struct RateState {
    /// `RateLimit-Limit`.
    pub limit: Option<u64>,
    /// `RateLimit-Remaining`.
    pub remaining: Option<u64>,
    /// `RateLimit-Reset` (unix seconds).
    pub reset: Option<u64>,
    /// No request before this unix time (ms), set by a 429.
    pub hold_until_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl RateState {
    /// Records the headers of a response.
    pub fn observe(&mut self, headers: &reqwest::header::HeaderMap, status: u16) {
        let num = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        self.limit = num("ratelimit-limit").or(self.limit);
        self.remaining = num("ratelimit-remaining").or(self.remaining);
        self.reset = num("ratelimit-reset").or(self.reset);
        if status == 429 {
            let reset_ms = self.reset.map_or(0, |r| r.saturating_mul(1000));
            // Wait until the reset, at least one refill interval, at most a minute.
            let now = now_ms();
            self.hold_until_ms =
                reset_ms.clamp(now.saturating_add(1000), now.saturating_add(60_000));
        }
    }

    /// How long to wait before the next request.
    pub fn delay(&self) -> Duration {
        let now = now_ms();
        if self.hold_until_ms > now {
            return Duration::from_millis(self.hold_until_ms - now);
        }
        match (self.limit, self.remaining, self.reset) {
            (Some(limit), Some(rem), Some(reset)) if rem < (limit / 20).max(2) => {
                // Spread what is left over the time until the reset.
                let left_ms = reset.saturating_mul(1000).saturating_sub(now);
                Duration::from_millis((left_ms / rem.saturating_add(1)).min(5_000))
            }
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn headers(limit: u64, rem: u64, reset: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-limit", HeaderValue::from(limit));
        h.insert("ratelimit-remaining", HeaderValue::from(rem));
        h.insert("ratelimit-reset", HeaderValue::from(reset));
        h
    }

    #[test]
    fn slows_down_near_zero_and_holds_after_429() {
        let now = now_ms() / 1000;
        let mut s = RateState::default();
        s.observe(&headers(3600, 3000, now + 600), 200);
        assert_eq!(s.delay(), Duration::ZERO);
        s.observe(&headers(3600, 10, now + 10), 200);
        assert!(s.delay() > Duration::ZERO);
        s.observe(&headers(3600, 0, now + 3), 429);
        assert!(s.delay() >= Duration::from_millis(1500), "{:?}", s.delay());
    }

    #[test]
    fn absurd_headers_neither_overflow_nor_wait_over_a_minute() {
        let mut s = RateState::default();
        s.observe(&headers(u64::MAX, u64::MAX - 1, u64::MAX), 200);
        assert!(s.delay() <= Duration::from_secs(5));
        s.observe(&headers(u64::MAX, 0, u64::MAX), 429);
        assert!(s.delay() <= Duration::from_secs(60), "{:?}", s.delay());
    }
}
