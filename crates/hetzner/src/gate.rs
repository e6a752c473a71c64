//! The "Hetzner LB target healthy" gate: a [`Probe`] that passes when every target of a load
//! balancer reports `healthy` on every service.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::gate::Probe;
use serde_json::Value;

use crate::client::Client;

/// Probes a load balancer's target health by name.
#[derive(Debug, Clone)]
pub struct LbTargetsHealthy {
    client: Arc<Client>,
    name: String,
}

impl LbTargetsHealthy {
    /// A probe for the load balancer called `name`.
    pub fn new(client: Arc<Client>, name: &str) -> Self {
        LbTargetsHealthy {
            client,
            name: name.to_string(),
        }
    }
}

fn unhealthy(t: &Value, out: &mut Vec<String>) {
    if let Some(subs) = t["targets"].as_array() {
        for s in subs {
            unhealthy(s, out);
        }
        return;
    }
    let who = match t["type"].as_str() {
        Some("server") => format!("server {}", t["server"]["id"]),
        Some("ip") => format!("ip {}", t["ip"]["ip"]),
        _ => "target".to_string(),
    };
    for h in t["health_status"].as_array().into_iter().flatten() {
        if h["status"] != "healthy" {
            out.push(format!(
                "{who} port {}: {}",
                h["listen_port"],
                h["status"].as_str().unwrap_or("?")
            ));
        }
    }
}

#[async_trait]
impl Probe for LbTargetsHealthy {
    fn describe(&self) -> String {
        format!(
            "Hetzner load balancer {}: every target healthy on every service",
            self.name
        )
    }

    async fn check(&self) -> Result<(), String> {
        let v = self
            .client
            .get("/load_balancers", &[("name".into(), self.name.clone())])
            .await
            .map_err(|e| e.to_string())?;
        let lb = v["load_balancers"]
            .get(0)
            .ok_or_else(|| format!("load balancer {} not found", self.name))?;
        let targets = lb["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            return Err("no targets".into());
        }
        let mut bad = Vec::new();
        for t in &targets {
            unhealthy(t, &mut bad);
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join(", "))
        }
    }
}
