//! Gates: graph nodes that wait for the world to be ready before their dependents run.
//! A gate runs a [`Probe`] every `interval` until it passes or `timeout` elapses.

use std::time::Duration;

use async_trait::async_trait;

mod http;
mod tcp;

pub use http::HttpProbe;
pub use tcp::TcpProbe;

/// One readiness check. Core ships HTTP(S) status and TCP connect probes; providers add
/// their own (HAProxy backend server UP, Hetzner LB target healthy).
#[async_trait]
pub trait Probe: Send + Sync {
    /// A one-line description for plans, e.g. `GET https://10.0.20.99:6443/readyz → 200`.
    fn describe(&self) -> String;

    /// One attempt: `Ok(())` when ready, `Err(reason)` when not (yet).
    async fn check(&self) -> Result<(), String>;
}

/// How often and how long a gate probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateTiming {
    /// Pause between attempts.
    pub interval: Duration,
    /// Give up after this long; the gate then fails and so do its dependents.
    pub timeout: Duration,
}

impl GateTiming {
    /// How long one attempt may take before it counts as failed and the next one starts:
    /// five intervals, at least 1 s and at most 30 s. A probe that hangs (a peer that
    /// accepts and never answers) costs one attempt, never the whole gate timeout.
    pub fn attempt_timeout(&self) -> Duration {
        self.interval
            .saturating_mul(5)
            .clamp(Duration::from_secs(1), Duration::from_secs(30))
    }
}

impl Default for GateTiming {
    fn default() -> Self {
        GateTiming {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(300),
        }
    }
}
