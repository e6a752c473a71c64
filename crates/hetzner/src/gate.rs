//! The "Hetzner LB target healthy" gate: a [`Probe`] that passes when every target of a load
//! balancer reports `healthy` on every service.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::gate::Probe;
use serde::Deserialize;

use crate::client::Client;
use crate::kinds::Ops;

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

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Health {
    listen_port: u16,
    status: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Id {
    id: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Ip {
    ip: String,
}

/// A target as the API reports it; label-selector targets list the servers they matched.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApiTarget {
    #[serde(rename = "type")]
    kind: String,
    server: Option<Id>,
    ip: Option<Ip>,
    health_status: Vec<Health>,
    targets: Option<Vec<ApiTarget>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApiLb {
    targets: Vec<ApiTarget>,
}

fn unhealthy(t: &ApiTarget, out: &mut Vec<String>) {
    if let Some(subs) = &t.targets {
        for s in subs {
            unhealthy(s, out);
        }
        return;
    }
    let who = match (t.kind.as_str(), &t.server, &t.ip) {
        ("server", Some(s), _) => format!("server {}", s.id),
        ("ip", _, Some(ip)) => format!("ip {:?}", ip.ip),
        _ => "target".to_string(),
    };
    for h in &t.health_status {
        if h.status != "healthy" {
            out.push(format!("{who} port {}: {}", h.listen_port, h.status));
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
        let ops = Ops { c: &self.client };
        let lbs = ops
            .list::<ApiLb>("load_balancers", &[("name".into(), self.name.clone())])
            .await
            .map_err(|e| e.to_string())?;
        let lb = lbs
            .first()
            .ok_or_else(|| format!("load balancer {} not found", self.name))?;
        if lb.targets.is_empty() {
            return Err("no targets".into());
        }
        let mut bad = Vec::new();
        for t in &lb.targets {
            unhealthy(t, &mut bad);
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join(", "))
        }
    }
}
