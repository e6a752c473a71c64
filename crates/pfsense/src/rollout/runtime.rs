//! HAProxy runtime API commands (through `command_prompt` to the stats socket) that rollouts
//! and observation use: set a server's state, wait for its health check, wait until it holds
//! no session, and read which servers are drained or in maintenance now.

use std::time::Instant;

use crate::client::{ClientError, PfSenseClient};
use crate::context::ProviderOptions;
use crate::runtime::{ServerState, parse_servers_state, parse_stat};

/// A server's runtime state as `set server … state` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeState {
    /// Takes traffic.
    Ready,
    /// No new connections; health checks run.
    Drain,
    /// Maintenance: no traffic, no checks.
    Maint,
}

impl RuntimeState {
    fn as_str(self) -> &'static str {
        match self {
            RuntimeState::Ready => "ready",
            RuntimeState::Drain => "drain",
            RuntimeState::Maint => "maint",
        }
    }
}

/// The name HAProxy knows a pool by.
pub fn backend_name(pool: &str) -> String {
    format!("{pool}_ipvANY")
}

/// Runtime commands for one pfSense.
#[derive(Debug, Clone, Copy)]
pub struct Runtime<'a> {
    client: &'a PfSenseClient,
    opts: &'a ProviderOptions,
}

impl<'a> Runtime<'a> {
    /// Commands through `client`, waiting as long as `opts` allow.
    pub fn new(client: &'a PfSenseClient, opts: &'a ProviderOptions) -> Self {
        Runtime { client, opts }
    }

    /// `set server <pool>_ipvANY/<server> state <state>`.
    pub async fn set(
        &self,
        pool: &str,
        server: &str,
        state: RuntimeState,
    ) -> Result<(), ClientError> {
        let be = backend_name(pool);
        self.client
            .haproxy_runtime(&format!(
                "set server {be}/{server} state {}",
                state.as_str()
            ))
            .await
            .map(|_| ())
    }

    /// Every server's runtime state (`show servers state`), or the error.
    pub async fn servers_state(&self) -> Result<Vec<ServerState>, ClientError> {
        Ok(parse_servers_state(
            &self.client.haproxy_runtime("show servers state").await?,
        ))
    }

    /// Waits until `server` of `pool` is UP with a passed check; false when the server
    /// check timeout passed first.
    pub async fn await_healthy(&self, pool: &str, server: &str) -> bool {
        let deadline = Instant::now() + self.opts.server_check_timeout;
        let be = backend_name(pool);
        loop {
            match self
                .client
                .haproxy_runtime(&format!("show servers state {be}"))
                .await
            {
                Ok(text) => {
                    if parse_servers_state(&text)
                        .iter()
                        .any(|s| s.backend == be && s.server == server && s.check_passed())
                    {
                        return true;
                    }
                }
                Err(e) => tracing::debug!("runtime state not readable yet: {e}"),
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(self.client.timing().poll).await;
        }
    }

    /// Waits until `server` of `pool` holds no session (or the drain timeout passes, which
    /// is logged: the server is removed anyway).
    pub async fn await_drained(&self, pool: &str, server: &str) {
        let deadline = Instant::now() + self.opts.drain_timeout;
        let be = backend_name(pool);
        loop {
            let busy: u64 = match self.client.haproxy_runtime("show stat").await {
                Ok(text) => parse_stat(&text)
                    .into_iter()
                    .filter(|r| r.proxy == be && r.server == server)
                    .map(|r| r.scur)
                    .sum(),
                Err(_) => 0,
            };
            if busy == 0 {
                return;
            }
            if Instant::now() > deadline {
                tracing::warn!(
                    busy,
                    pool,
                    server,
                    "drain timeout: removing a server that still holds sessions"
                );
                return;
            }
            tokio::time::sleep(self.client.timing().poll).await;
        }
    }
}
