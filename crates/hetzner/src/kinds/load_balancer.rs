//! `hetzner_load_balancer`: services keyed by listen port and targets keyed by identity,
//! each changed by its own action (adding a target is one action, not a rebuild); type and
//! algorithm change via actions; network attachment with a private IP; location replaces.

use std::net::Ipv4Addr;

use cairn_core::{AttrRef, Field, FieldError, Handle, KeyedList, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{KindOps, Labels, Ops, id_of, split_labels, validate_labels, validate_name};
use crate::client::ApiError;

/// Balancing algorithm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Algorithm {
    /// `round_robin` or `least_connections`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl Default for Algorithm {
    fn default() -> Self {
        Algorithm {
            kind: "round_robin".into(),
        }
    }
}

/// HTTP details of a health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheckHttp {
    /// Host header.
    pub domain: Option<String>,
    /// Request path.
    pub path: String,
    /// Expected body substring.
    pub response: Option<String>,
    /// Accepted status codes, e.g. `["2??"]`.
    pub status_codes: Option<Vec<String>>,
    /// Use TLS.
    pub tls: Option<bool>,
}

/// A service health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// `tcp`, `http` or `https`.
    pub protocol: String,
    /// Port checked.
    pub port: u16,
    /// Seconds between checks.
    pub interval: u32,
    /// Seconds before a check fails.
    pub timeout: u32,
    /// Failed checks before a target is unhealthy.
    pub retries: u32,
    /// HTTP details for http/https checks.
    pub http: Option<HealthCheckHttp>,
}

impl HealthCheck {
    /// A TCP check.
    pub fn tcp(port: u16, interval: u32, timeout: u32, retries: u32) -> Self {
        HealthCheck {
            protocol: "tcp".into(),
            port,
            interval,
            timeout,
            retries,
            http: None,
        }
    }
}

/// A service (keyed by `listen_port`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// `tcp`, `http` or `https`.
    pub protocol: String,
    /// Port the LB listens on.
    pub listen_port: u16,
    /// Port on the targets.
    pub destination_port: u16,
    /// Send the PROXY protocol header.
    #[serde(default)]
    pub proxyprotocol: bool,
    /// The health check.
    pub health_check: HealthCheck,
}

impl Service {
    /// A TCP service forwarding `port` to `port` with a TCP check.
    pub fn tcp(port: u16, interval: u32, timeout: u32, retries: u32) -> Self {
        Service {
            protocol: "tcp".into(),
            listen_port: port,
            destination_port: port,
            proxyprotocol: false,
            health_check: HealthCheck::tcp(port, interval, timeout, retries),
        }
    }
}

/// A target server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetServer {
    /// The server's id (usually a reference).
    pub id: Field<u64>,
}

/// A target label selector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetSelector {
    /// The selector.
    pub selector: String,
}

/// A target IP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetIp {
    /// The address.
    pub ip: String,
}

/// A target (keyed by its identity: type + server / selector / ip).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// `server`, `label_selector` or `ip`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `server` targets.
    pub server: Option<TargetServer>,
    /// For `label_selector` targets.
    pub label_selector: Option<TargetSelector>,
    /// For `ip` targets.
    pub ip: Option<TargetIp>,
    /// Reach the target over the private network.
    pub use_private_ip: Option<bool>,
}

impl Target {
    /// A server target reached over the private network.
    pub fn private_server(id: impl Into<Field<u64>>) -> Self {
        Target {
            kind: "server".into(),
            server: Some(TargetServer { id: id.into() }),
            label_selector: None,
            ip: None,
            use_private_ip: Some(true),
        }
    }
}

/// An attachment to a private network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbNetwork {
    /// The network's id.
    pub network: Field<u64>,
    /// A fixed private IP.
    pub ip: Option<Ipv4Addr>,
}

/// A load balancer (`/load_balancers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancer {
    /// Name (the key).
    pub name: String,
    /// e.g. `lb11`.
    pub load_balancer_type: String,
    /// e.g. `fsn1`.
    pub location: String,
    /// Algorithm.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
    /// Network attachments (keyed by network).
    #[serde(default)]
    pub private_net: Vec<LbNetwork>,
    /// Services (keyed by listen port).
    #[serde(default)]
    pub services: Vec<Service>,
    /// Targets (keyed by identity).
    #[serde(default)]
    pub targets: Vec<Target>,
}

pub(crate) const TARGET_KEY: &[&str] = &["type", "server.id", "label_selector.selector", "ip.ip"];

impl Resource for LoadBalancer {
    const KIND: &'static str = "hetzner_load_balancer";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["location"],
            computed: &["id", "ipv4", "ipv6", "targets[*].health_status"],
            keyed: &[
                KeyedList {
                    path: "services",
                    key: &["listen_port"],
                },
                // `targets` and `private_net` are positional (the provider observes them in
                // declared order): their identities are usually references, which the engine
                // does not resolve inside keyed list keys yet.
            ],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = validate_name(&self.name);
        e.extend(validate_labels(&self.labels));
        if !matches!(
            self.algorithm.kind.as_str(),
            "round_robin" | "least_connections"
        ) {
            e.push(FieldError::new(
                "algorithm.type",
                "must be round_robin or least_connections",
            ));
        }
        let mut ports = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            let f = |x: &str| format!("services[{i}].{x}");
            if !matches!(s.protocol.as_str(), "tcp" | "http" | "https") {
                e.push(FieldError::new(f("protocol"), "must be tcp, http or https"));
            }
            for (n, p) in [
                ("listen_port", s.listen_port),
                ("destination_port", s.destination_port),
                ("health_check.port", s.health_check.port),
            ] {
                if p == 0 {
                    e.push(FieldError::new(f(n), "must be a port 1-65535"));
                }
            }
            if ports.contains(&s.listen_port) {
                e.push(FieldError::new(
                    f("listen_port"),
                    format!("{} is used by another service", s.listen_port),
                ));
            }
            ports.push(s.listen_port);
            let h = &s.health_check;
            if !matches!(h.protocol.as_str(), "tcp" | "http" | "https") {
                e.push(FieldError::new(
                    f("health_check.protocol"),
                    "must be tcp, http or https",
                ));
            }
            if !(3..=60).contains(&h.interval) {
                e.push(FieldError::new(
                    f("health_check.interval"),
                    "must be 3-60 seconds",
                ));
            }
            if !(1..=60).contains(&h.timeout) || h.timeout > h.interval {
                e.push(FieldError::new(
                    f("health_check.timeout"),
                    "must be 1-60 seconds and not above the interval",
                ));
            }
            if h.retries > 5 {
                e.push(FieldError::new(f("health_check.retries"), "must be 0-5"));
            }
        }
        for (i, t) in self.targets.iter().enumerate() {
            let ok = match t.kind.as_str() {
                "server" => t.server.is_some(),
                "label_selector" => t.label_selector.is_some(),
                "ip" => {
                    t.ip.as_ref()
                        .is_some_and(|ip| ip.ip.parse::<std::net::IpAddr>().is_ok())
                }
                _ => false,
            };
            if !ok {
                e.push(FieldError::new(
                    format!("targets[{i}]"),
                    "type must be server, label_selector or ip, with the matching field set",
                ));
            }
            if t.use_private_ip == Some(true) && self.private_net.is_empty() {
                e.push(FieldError::new(
                    format!("targets[{i}].use_private_ip"),
                    "the load balancer is not attached to any network",
                ));
            }
        }
        e
    }
}

/// Typed attributes of a load balancer.
pub trait LoadBalancerAttrs {
    /// Its id.
    fn id(&self) -> AttrRef<u64>;
    /// Its public IPv4.
    fn ipv4(&self) -> AttrRef<Ipv4Addr>;
}

impl LoadBalancerAttrs for Handle<LoadBalancer> {
    fn id(&self) -> AttrRef<u64> {
        self.attr("id")
    }
    fn ipv4(&self) -> AttrRef<Ipv4Addr> {
        self.attr("ipv4")
    }
}

fn service_of(s: &Value) -> Value {
    let h = &s["health_check"];
    let http = if h["http"].is_null() {
        Value::Null
    } else {
        json!({"domain": h["http"]["domain"], "path": h["http"]["path"], "response": h["http"]["response"],
               "status_codes": h["http"]["status_codes"], "tls": h["http"]["tls"]})
    };
    json!({"protocol": s["protocol"], "listen_port": s["listen_port"], "destination_port": s["destination_port"],
           "proxyprotocol": s["proxyprotocol"],
           "health_check": {"protocol": h["protocol"], "port": h["port"], "interval": h["interval"],
                            "timeout": h["timeout"], "retries": h["retries"], "http": http}})
}

fn target_of(t: &Value) -> Value {
    let or_null = |k: &str| t.get(k).cloned().unwrap_or(Value::Null);
    json!({"type": t["type"], "server": or_null("server").get("id").map(|id| json!({"id": id})).unwrap_or(Value::Null),
           "label_selector": or_null("label_selector"), "ip": or_null("ip"),
           "use_private_ip": or_null("use_private_ip"), "health_status": or_null("health_status")})
}

fn observe(api: &Value, _declared: Option<&Value>) -> Value {
    let (labels, _, _) = split_labels(&api["labels"]);
    let arr = |k: &str| api[k].as_array().cloned().unwrap_or_default();
    json!({
        "name": api["name"], "load_balancer_type": api["load_balancer_type"]["name"],
        "location": api["location"]["name"], "algorithm": {"type": api["algorithm"]["type"]},
        "labels": labels,
        "private_net": arr("private_net").iter().map(|p| json!({"network": p["network"], "ip": p["ip"]})).collect::<Vec<_>>(),
        "services": arr("services").iter().map(service_of).collect::<Vec<_>>(),
        "targets": arr("targets").iter().map(target_of).collect::<Vec<_>>(),
        "id": api["id"], "ipv4": api["public_net"]["ipv4"]["ip"], "ipv6": api["public_net"]["ipv6"]["ip"],
    })
}

fn target_key(t: &Value) -> String {
    cairn_core::diff::item_key(t, TARGET_KEY)
}

fn target_body(t: &Value) -> Value {
    let mut b = json!({"type": t["type"]});
    for k in ["server", "label_selector", "ip"] {
        if !t[k].is_null() {
            b[k] = t[k].clone();
        }
    }
    if t["type"] != "ip" {
        b["use_private_ip"] = t["use_private_ip"].as_bool().unwrap_or(false).into();
    }
    b
}

async fn create(ops: &Ops<'_>, d: &Value, labels: Value) -> Result<u64, ApiError> {
    let nets = d["private_net"].as_array().cloned().unwrap_or_default();
    let mut body = json!({"name": d["name"], "load_balancer_type": d["load_balancer_type"],
                          "location": d["location"], "algorithm": d["algorithm"], "labels": labels,
                          "services": d["services"]});
    let net_in_create = nets.len() == 1 && nets[0]["ip"].is_null();
    if net_in_create {
        body["network"] = nets[0]["network"].clone();
    }
    if net_in_create || nets.is_empty() {
        let ts: Vec<Value> = d["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(target_body)
            .collect();
        body["targets"] = json!(ts);
    }
    let body = super::typed::<hcloud::models::CreateLoadBalancerRequest>(body)?;
    let v = ops.post("/load_balancers", body).await?;
    Ok(id_of(&v["load_balancer"]))
}

async fn converge(ops: &Ops<'_>, cur: &Value, d: &Value, labels: Value) -> Result<(), ApiError> {
    let id = id_of(cur);
    let act = |a: &str| format!("/load_balancers/{id}/actions/{a}");
    if cur["labels"] != labels || cur["name"] != d["name"] {
        ops.put(
            &format!("/load_balancers/{id}"),
            json!({"name": d["name"], "labels": labels}),
        )
        .await?;
    }
    if cur["load_balancer_type"]["name"] != d["load_balancer_type"] {
        ops.post(
            &act("change_type"),
            json!({"load_balancer_type": d["load_balancer_type"]}),
        )
        .await?;
    }
    if cur["algorithm"]["type"] != d["algorithm"]["type"] {
        ops.post(
            &act("change_algorithm"),
            json!({"type": d["algorithm"]["type"]}),
        )
        .await?;
    }
    let arr = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let have_nets = arr(&cur["private_net"]);
    let want_nets = arr(&d["private_net"]);
    let wrong = |h: &Value, w: &Value| {
        h["network"] == w["network"] && !w["ip"].is_null() && w["ip"] != h["ip"]
    };
    for w in &want_nets {
        let h = have_nets.iter().find(|h| h["network"] == w["network"]);
        if let Some(h) = h
            && wrong(h, w)
        {
            ops.post(
                &act("detach_from_network"),
                json!({"network": h["network"]}),
            )
            .await?;
        }
        if h.is_none() || h.is_some_and(|h| wrong(h, w)) {
            let mut b = json!({"network": w["network"]});
            if !w["ip"].is_null() {
                b["ip"] = w["ip"].clone();
            }
            ops.post(&act("attach_to_network"), b).await?;
        }
    }
    // Targets out first, then services, then targets in.
    let have_t: Vec<Value> = arr(&cur["targets"]).iter().map(target_of).collect();
    let want_t = arr(&d["targets"]);
    let pip = |t: &Value| t["use_private_ip"].as_bool().unwrap_or(false);
    // Targets are a set here; the provider presents them in declared order when observing.
    for h in &have_t {
        let w = want_t.iter().find(|w| target_key(w) == target_key(h));
        if w.is_none() || w.is_some_and(|w| h["type"] != "ip" && pip(w) != pip(h)) {
            ops.post(&act("remove_target"), target_body(h)).await?;
        }
    }
    let have_t: Vec<Value> = have_t
        .into_iter()
        .filter(|h| {
            want_t
                .iter()
                .any(|w| target_key(w) == target_key(h) && (h["type"] == "ip" || pip(w) == pip(h)))
        })
        .collect();
    let have_s = arr(&cur["services"]);
    let want_s = arr(&d["services"]);
    for h in &have_s {
        let w = want_s.iter().find(|w| w["listen_port"] == h["listen_port"]);
        if w.is_none() || w.is_some_and(|w| w["protocol"] != h["protocol"]) {
            ops.post(
                &act("delete_service"),
                json!({"listen_port": h["listen_port"]}),
            )
            .await?;
        }
    }
    for w in &want_s {
        match have_s.iter().find(|h| h["listen_port"] == w["listen_port"]) {
            Some(h) if h["protocol"] == w["protocol"] => {
                if service_of(h) != service_of(w) {
                    ops.post(
                        &act("update_service"),
                        super::typed::<hcloud::models::UpdateLoadBalancerService>(w.clone())?,
                    )
                    .await?;
                }
            }
            _ => {
                ops.post(
                    &act("add_service"),
                    super::typed::<hcloud::models::LoadBalancerService>(w.clone())?,
                )
                .await?;
            }
        }
    }
    for w in &want_t {
        let h = have_t.iter().find(|h| target_key(w) == target_key(h));
        if h.is_none() || h.is_some_and(|h| h["type"] != "ip" && pip(w) != pip(h)) {
            ops.post(
                &act("add_target"),
                super::typed::<hcloud::models::LoadBalancerAddTarget>(target_body(w))?,
            )
            .await?;
        }
    }
    for h in &have_nets {
        if !want_nets.iter().any(|w| w["network"] == h["network"]) {
            ops.post(
                &act("detach_from_network"),
                json!({"network": h["network"]}),
            )
            .await?;
        }
    }
    Ok(())
}

/// Operations for `hetzner_load_balancer`.
pub const OPS: KindOps = KindOps {
    collection: "load_balancers",
    singular: "load_balancer",
    observe,
    extra_labels: |_| Vec::new(),
    create: |ops, d, labels| Box::pin(create(ops, d, labels)),
    converge: |ops, cur, d, labels| Box::pin(converge(ops, cur, d, labels)),
    delete: |ops, cur| {
        Box::pin(async move { ops.delete(&format!("/load_balancers/{}", id_of(cur))).await })
    },
};
