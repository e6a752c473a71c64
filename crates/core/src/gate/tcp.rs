//! TCP connect probe: the port accepts a connection (through the [`Dialer`]).

use async_trait::async_trait;

use super::Probe;
use crate::net::Dialer;

/// Waits for `host:port` to accept a TCP connection.
#[derive(Debug, Clone)]
pub struct TcpProbe {
    host: String,
    port: u16,
    dialer: Dialer,
}

impl TcpProbe {
    /// Probes `host:port` through `dialer`.
    pub fn new(host: &str, port: u16, dialer: Dialer) -> Self {
        TcpProbe {
            host: host.to_string(),
            port,
            dialer,
        }
    }
}

#[async_trait]
impl Probe for TcpProbe {
    fn describe(&self) -> String {
        format!("TCP {}:{} accepts connections", self.host, self.port)
    }

    async fn check(&self) -> Result<(), String> {
        self.dialer
            .connect(&self.host, self.port)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}
