//! The "HAProxy backend server UP" gate: passes when the server is UP with a passed health
//! check in the running HAProxy (read through `command_prompt` → `show servers state`).

use async_trait::async_trait;
use cairn_core::gate::Probe;

use crate::client::PfSenseClient;
use crate::runtime::parse_servers_state;

/// Waits for `<pool>/<server>` to be UP and its last check passed.
#[derive(Debug, Clone)]
pub struct HaproxyServerUp {
    client: PfSenseClient,
    pool: String,
    server: String,
}

impl HaproxyServerUp {
    /// A probe for server `server` of pool `pool` (the pfSense backend name).
    pub fn new(client: PfSenseClient, pool: &str, server: &str) -> Self {
        HaproxyServerUp {
            client,
            pool: pool.into(),
            server: server.into(),
        }
    }
}

#[async_trait]
impl Probe for HaproxyServerUp {
    fn describe(&self) -> String {
        format!(
            "HAProxy server {}/{} UP with a passed health check (runtime API, show servers state)",
            self.pool, self.server
        )
    }

    async fn check(&self) -> Result<(), String> {
        let be = format!("{}_ipvANY", self.pool);
        let text = self
            .client
            .haproxy_runtime(&format!("show servers state {be}"))
            .await
            .map_err(|e| e.to_string())?;
        let states = parse_servers_state(&text);
        let s = states
            .iter()
            .find(|s| s.backend == be && s.server == self.server)
            .ok_or_else(|| {
                format!(
                    "server {}/{} is not in the running HAProxy",
                    self.pool, self.server
                )
            })?;
        if s.check_passed() && !s.in_maint() {
            Ok(())
        } else {
            Err(format!(
                "server {}/{}: op_state {} admin_state {} check_result {}",
                self.pool, self.server, s.op_state, s.admin_state, s.check_result
            ))
        }
    }
}
