//! The one retry policy: which failures are retried, capped exponential backoff with
//! jitter, the server's own wait (`Retry-After`, `RateLimit-Reset`) and an overall deadline
//! after which the loop gives up with [`GaveUp`].

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;

/// What a transport failure (no HTTP answer) says about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The request certainly did not reach the server (connection refused, DNS): nothing
    /// happened, so it may be repeated whatever it does.
    NotSent,
    /// The request may have reached the server (timeout, connection dropped mid-exchange,
    /// unreadable body): the outcome of a write is unknown.
    Unknown,
    /// Repeating cannot help (untrusted certificate, refused configuration).
    Permanent,
}

/// How a failed attempt looks to the retry policy. A provider maps its errors onto this
/// with [`Classify`]; the policy alone decides what is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No HTTP answer.
    Transport(TransportKind),
    /// The API answered with an error status.
    Answer {
        /// The HTTP status.
        status: u16,
        /// The provider recognised an API-specific "busy, nothing was done, try again"
        /// answer (Hetzner `locked`/`conflict`, Proxmox "can't lock file … got timeout").
        busy: bool,
    },
    /// Never retried (a definite answer: validation, not found, task failure, …).
    Final,
}

impl Class {
    /// Whether the failed request certainly had no effect and the condition is transient,
    /// so repeating it — or the whole change around it — is safe and may succeed. This is
    /// what providers put in `ProviderError::retryable`.
    pub fn safe_to_repeat(self) -> bool {
        match self {
            Class::Transport(k) => k == TransportKind::NotSent,
            Class::Answer { status, busy } => busy || status == 429 || status == 503,
            Class::Final => false,
        }
    }

    /// Whether the policy retries this failure for a request that is (or is not)
    /// idempotent: everything [`safe_to_repeat`](Self::safe_to_repeat) always; an unknown
    /// transport outcome and other 5xx (500, 502, 504, …) only when `idempotent`.
    pub fn retried(self, idempotent: bool) -> bool {
        self.safe_to_repeat()
            || idempotent
                && match self {
                    Class::Transport(k) => k == TransportKind::Unknown,
                    Class::Answer { status, .. } => (500..600).contains(&status),
                    Class::Final => false,
                }
    }
}

/// A provider error the policy can judge.
pub trait Classify: Sized {
    /// How this failure looks to the policy.
    fn class(&self) -> Class;
    /// Wraps the last error when the policy gives up on a failure it would otherwise
    /// retry (attempts or deadline used up), so the message says so.
    fn gave_up(self, why: GaveUp) -> Self;
}

/// A failed attempt plus how long the server asked to wait before the next one.
#[derive(Debug)]
pub struct Failure<E> {
    /// The provider's error.
    pub error: E,
    /// `Retry-After` / `RateLimit-Reset` of the answer, if any (see [`server_wait`]).
    pub wait: Option<Duration>,
}

impl<E> From<E> for Failure<E> {
    fn from(error: E) -> Self {
        Failure { error, wait: None }
    }
}

/// Why and when the policy stopped retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gave up after {attempts} attempt(s) in {:.1}s: {reason}", .elapsed.as_secs_f64())]
pub struct GaveUp {
    /// Requests sent.
    pub attempts: u32,
    /// Time since the first attempt.
    pub elapsed: Duration,
    /// Which limit ended it.
    pub reason: String,
}

/// Retry settings; each provider picks its numbers, the rules are the same for all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests at most (the first one included).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles per retry.
    pub first_backoff: Duration,
    /// Backoff cap (the server's own wait may be longer, within the deadline).
    pub max_backoff: Duration,
    /// No retry starts, and no wait is begun that would end, later than this after the
    /// first attempt. A request in flight is bounded by the client's request timeout.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3),
            deadline: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `retry` (1 = first retry): `first_backoff · 2^(retry-1)`
    /// capped at `max_backoff`, then "equal jitter" (a random point in its upper half).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        let full = self
            .first_backoff
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff);
        let half = full / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let extra = if nanos == 0 { 0 } else { random() % nanos };
        half.saturating_add(Duration::from_nanos(extra))
    }

    /// Runs `attempt` until it succeeds, fails in a way this policy does not retry, or the
    /// attempts or the deadline are used up (then the last error goes through
    /// [`Classify::gave_up`]). `idempotent` says whether repeating a request that may have
    /// arrived is harmless (GET; PUT/DELETE where the API makes them so).
    pub async fn run<T, E, F, Fut>(&self, idempotent: bool, mut attempt: F) -> Result<T, E>
    where
        E: Classify + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure<E>>>,
    {
        let start = tokio::time::Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts = attempts.saturating_add(1);
            let Failure { error, wait } = match attempt().await {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            if !error.class().retried(idempotent) {
                return Err(error);
            }
            let elapsed = start.elapsed();
            let delay = self.backoff(attempts).max(wait.unwrap_or_default());
            let give_up = |reason: String| GaveUp {
                attempts,
                elapsed,
                reason,
            };
            if attempts >= self.max_attempts {
                let why = give_up(format!("{} attempts allowed", self.max_attempts));
                return Err(error.gave_up(why));
            }
            if elapsed.saturating_add(delay) > self.deadline {
                let why = give_up(match wait {
                    Some(w) if w >= delay => format!(
                        "the server asked to wait {:.1}s, past the {:.0?} retry deadline",
                        w.as_secs_f64(),
                        self.deadline
                    ),
                    _ => format!("retry deadline of {:.0?} reached", self.deadline),
                });
                return Err(error.gave_up(why));
            }
            tracing::debug!(attempt = attempts, ?delay, %error, "retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// How long the server asked to wait, from an error answer's headers: `Retry-After`
/// (seconds or an HTTP date) on any status, else `RateLimit-Reset` (unix seconds, as
/// Hetzner sends it) on a 429. Times in the past give zero; no arithmetic can overflow.
pub fn server_wait(status: u16, headers: &HeaderMap) -> Option<Duration> {
    server_wait_at(status, headers, SystemTime::now())
}

/// [`server_wait`] at a given time (for tests).
pub fn server_wait_at(status: u16, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(now).unwrap_or_default());
        }
    }
    if status == 429 {
        let reset = text("ratelimit-reset")?.parse::<u64>().ok()?;
        let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        return Some(Duration::from_secs(reset.saturating_sub(now_secs)));
    }
    None
}

/// A random number from the standard library's per-process hash keys (no RNG crate).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, PartialEq)]
    enum E {
        Status(u16),
        Lost,
        GaveUp(String),
    }
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }
    impl Classify for E {
        fn class(&self) -> Class {
            match self {
                E::Status(s) => Class::Answer {
                    status: *s,
                    busy: false,
                },
                E::Lost => Class::Transport(TransportKind::Unknown),
                E::GaveUp(_) => Class::Final,
            }
        }
        fn gave_up(self, why: GaveUp) -> Self {
            E::GaveUp(format!("{why}; last: {self}"))
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 100,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            deadline: Duration::from_secs(5),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_503_storm_gives_up_at_the_deadline_with_a_clear_error() {
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<(), E> = policy()
            .run(false, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E::Status(503).into())
            })
            .await;
        let took = start.elapsed();
        let Err(E::GaveUp(msg)) = r else {
            panic!("expected a give-up, got {r:?}")
        };
        assert!(msg.contains("retry deadline"), "{msg}");
        assert!(msg.contains("Status(503)"), "{msg}");
        assert!(took <= Duration::from_secs(5), "{took:?}");
        assert!(
            took >= Duration::from_secs(4),
            "kept trying until near the deadline: {took:?}"
        );
        assert!(calls.load(Ordering::SeqCst) >= 5, "it did retry");
    }

    #[tokio::test(start_paused = true)]
    async fn the_servers_wait_is_honoured_over_a_shorter_backoff() {
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r = policy()
            .run(false, || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(Failure {
                        error: E::Status(429),
                        wait: Some(Duration::from_secs(3)),
                    })
                } else {
                    Ok("done")
                }
            })
            .await;
        assert_eq!(r, Ok("done"));
        assert!(
            start.elapsed() >= Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_beyond_the_deadline_gives_up_at_once() {
        let start = tokio::time::Instant::now();
        let r: Result<(), E> = policy()
            .run(true, || async {
                Err(Failure {
                    error: E::Status(429),
                    wait: Some(Duration::from_secs(3600)),
                })
            })
            .await;
        assert!(
            matches!(&r, Err(E::GaveUp(m)) if m.contains("asked to wait 3600")),
            "{r:?}"
        );
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn lost_answers_are_retried_only_for_idempotent_requests() {
        for (idempotent, expected) in [(false, 1), (true, 3)] {
            let calls = AtomicU32::new(0);
            let _ = policy()
                .run(idempotent, || async {
                    if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err(E::Lost.into())
                    } else {
                        Ok(())
                    }
                })
                .await;
            assert_eq!(
                calls.load(Ordering::SeqCst),
                expected,
                "idempotent={idempotent}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn definite_answers_are_never_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), E> = policy()
            .run(true, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(E::Status(422).into())
            })
            .await;
        assert_eq!(r, Err(E::Status(422)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn which_answers_are_retried() {
        let a = |status| Class::Answer {
            status,
            busy: false,
        };
        for s in [429, 503] {
            assert!(a(s).retried(false), "{s}");
        }
        for s in [500, 502, 504] {
            assert!(!a(s).retried(false) && a(s).retried(true), "{s}");
        }
        for s in [400, 401, 404, 409, 422] {
            assert!(!a(s).retried(true), "{s}");
        }
        let busy = Class::Answer {
            status: 409,
            busy: true,
        };
        assert!(busy.retried(false) && busy.safe_to_repeat());
        assert!(Class::Transport(TransportKind::NotSent).retried(false));
        assert!(!Class::Transport(TransportKind::Permanent).retried(true));
    }

    #[test]
    fn backoff_doubles_is_capped_and_jittered_without_overflow() {
        let p = policy();
        for retry in [1, 2, 3, 4, 10, 31, 32, 1000, u32::MAX] {
            let d = p.backoff(retry);
            let full = Duration::from_millis(100)
                .checked_mul(1 << retry.saturating_sub(1).min(31))
                .unwrap_or(Duration::MAX)
                .min(Duration::from_secs(1));
            assert!(
                d >= full / 2 && d <= full,
                "retry {retry}: {d:?} vs {full:?}"
            );
        }
        let huge = RetryPolicy {
            first_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            ..policy()
        };
        assert!(huge.backoff(40) >= Duration::MAX / 2);
    }

    #[test]
    fn server_wait_reads_retry_after_and_the_rate_limit_reset() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(server_wait_at(503, &h, now), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(now + Duration::from_secs(9))).unwrap(),
        );
        assert_eq!(server_wait_at(503, &h, now), Some(Duration::from_secs(9)));
        let mut h = HeaderMap::new();
        h.insert("ratelimit-reset", HeaderValue::from(1_700_000_004u64));
        assert_eq!(server_wait_at(429, &h, now), Some(Duration::from_secs(4)));
        assert_eq!(
            server_wait_at(200, &h, now),
            None,
            "only a 429 waits for the reset"
        );
        for silly in [u64::MAX, 0] {
            h.insert("ratelimit-reset", HeaderValue::from(silly));
            assert!(server_wait_at(429, &h, now).is_some());
        }
        h.insert("ratelimit-reset", HeaderValue::from_static("-5"));
        assert_eq!(server_wait_at(429, &h, now), None);
    }
}
