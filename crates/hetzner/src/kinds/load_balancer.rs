//! `hetzner_load_balancer`: services keyed by listen port and targets keyed by identity,
//! each changed by its own action (adding a target is one action, not a rebuild); type and
//! algorithm change via actions; network attachment with a private IP; location replaces.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use cairn_core::{Field, FieldError, Handle, KeyedList, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::collection::Collection;
use super::network::{Network, NetworkAttachment};
use super::server::{Server, ServerAttrs};
use super::{
    ApiPrivateNet, Labels, NameLabels, NameRef, NetworkAction, Ops, envelope, split_labels,
    validate_labels, validate_name,
};
use crate::client::ApiError;

/// How a load balancer spreads connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlgorithmType {
    /// In turn.
    #[default]
    RoundRobin,
    /// To the target with the fewest open connections.
    LeastConnections,
}

/// Balancing algorithm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Algorithm {
    /// Round robin or least connections.
    #[serde(rename = "type")]
    pub kind: AlgorithmType,
}

/// The protocol of a service or of a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbProtocol {
    /// Plain TCP.
    Tcp,
    /// HTTP.
    Http,
    /// HTTPS.
    Https,
}

/// HTTP details of a health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheckHttp {
    /// Host header.
    #[serde(default)]
    pub domain: Option<String>,
    /// Request path.
    pub path: String,
    /// Expected body substring.
    #[serde(default)]
    pub response: Option<String>,
    /// Accepted status codes, e.g. `["2??"]`.
    #[serde(default)]
    pub status_codes: Option<Vec<String>>,
    /// Use TLS.
    #[serde(default)]
    pub tls: Option<bool>,
}

/// A service health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// TCP, HTTP or HTTPS.
    pub protocol: LbProtocol,
    /// Port checked.
    pub port: u16,
    /// Seconds between checks.
    pub interval: u32,
    /// Seconds before a check fails.
    pub timeout: u32,
    /// Failed checks before a target is unhealthy.
    pub retries: u32,
    /// HTTP details for http/https checks.
    #[serde(default)]
    pub http: Option<HealthCheckHttp>,
}

impl HealthCheck {
    /// A TCP check of `port` with Hetzner's defaults: every 15 s, 10 s timeout, 3 retries.
    pub fn tcp(port: u16) -> Self {
        HealthCheck {
            protocol: LbProtocol::Tcp,
            port,
            interval: 15,
            timeout: 10,
            retries: 3,
            http: None,
        }
    }

    /// An HTTP check: `GET path` on `port`, any 2xx or 3xx status, with the TCP defaults.
    pub fn http(port: u16, path: &str) -> Self {
        HealthCheck {
            protocol: LbProtocol::Http,
            http: Some(HealthCheckHttp {
                domain: None,
                path: path.into(),
                response: None,
                status_codes: None,
                tls: None,
            }),
            ..HealthCheck::tcp(port)
        }
    }

    /// Seconds between checks (3-60).
    pub fn interval(mut self, seconds: u32) -> Self {
        self.interval = seconds;
        self
    }

    /// Seconds before a check fails (1-60, not above the interval).
    pub fn timeout(mut self, seconds: u32) -> Self {
        self.timeout = seconds;
        self
    }

    /// Failed checks before a target is unhealthy (0-5).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
}

/// A service (keyed by `listen_port`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// TCP, HTTP or HTTPS.
    pub protocol: LbProtocol,
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
    /// A TCP service forwarding `port` to the same port on the targets, checked with
    /// [`HealthCheck::tcp`] on that port (15 s interval, 10 s timeout, 3 retries).
    pub fn tcp(port: u16) -> Self {
        Service {
            protocol: LbProtocol::Tcp,
            listen_port: port,
            destination_port: port,
            proxyprotocol: false,
            health_check: HealthCheck::tcp(port),
        }
    }

    /// An HTTP service forwarding `port` to the same port, checked with `GET /` there.
    pub fn http(port: u16) -> Self {
        Service {
            protocol: LbProtocol::Http,
            health_check: HealthCheck::http(port, "/"),
            ..Service::tcp(port)
        }
    }

    /// Forwards to `port` on the targets (and checks that port, unless [`Service::check`]
    /// sets another check after this).
    pub fn to_port(mut self, port: u16) -> Self {
        self.destination_port = port;
        self.health_check.port = port;
        self
    }

    /// Sets the health check.
    pub fn check(mut self, check: HealthCheck) -> Self {
        self.health_check = check;
        self
    }

    /// Sends the PROXY protocol header to the targets.
    pub fn proxyprotocol(mut self) -> Self {
        self.proxyprotocol = true;
        self
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

/// What a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    /// One server.
    Server,
    /// Every server matching a label selector.
    LabelSelector,
    /// An IP address.
    Ip,
}

/// A target (keyed by its identity: type + server / selector / ip).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Server, label selector or IP.
    #[serde(rename = "type")]
    pub kind: TargetType,
    /// For `server` targets.
    #[serde(default)]
    pub server: Option<TargetServer>,
    /// For `label_selector` targets.
    #[serde(default)]
    pub label_selector: Option<TargetSelector>,
    /// For `ip` targets.
    #[serde(default)]
    pub ip: Option<TargetIp>,
    /// Reach the target over the private network.
    #[serde(default)]
    pub use_private_ip: Option<bool>,
}

impl Target {
    /// Every server matching a Hetzner label selector (e.g. `k3s-role=agent`), reached over
    /// their public addresses.
    pub fn label_selector(selector: &str) -> Self {
        Target {
            kind: TargetType::LabelSelector,
            server: None,
            label_selector: Some(TargetSelector {
                selector: selector.into(),
            }),
            ip: None,
            use_private_ip: None,
        }
    }

    /// An IP address outside Hetzner Cloud (or a dedicated server).
    pub fn ip(ip: std::net::IpAddr) -> Self {
        Target {
            kind: TargetType::Ip,
            server: None,
            label_selector: None,
            ip: Some(TargetIp { ip: ip.to_string() }),
            use_private_ip: None,
        }
    }

    /// A server target reached over the private network.
    pub fn private_server(id: impl Into<Field<u64>>) -> Self {
        Target {
            use_private_ip: Some(true),
            ..Target::server(id)
        }
    }

    /// A server target reached over its public address.
    pub fn server(id: impl Into<Field<u64>>) -> Self {
        Target {
            kind: TargetType::Server,
            server: Some(TargetServer { id: id.into() }),
            label_selector: None,
            ip: None,
            use_private_ip: None,
        }
    }

    /// The identity of the target: type and server id, selector or address.
    fn ident(&self) -> (TargetType, Option<u64>, Option<&str>, Option<&str>) {
        (
            self.kind,
            self.server.as_ref().and_then(|s| s.id.known().copied()),
            self.label_selector.as_ref().map(|l| l.selector.as_str()),
            self.ip.as_ref().map(|i| i.ip.as_str()),
        )
    }

    fn private(&self) -> bool {
        self.use_private_ip.unwrap_or(false)
    }

    /// Whether `have` serves as this target (same identity and, but for IPs, same path).
    fn served_by(&self, have: &Target) -> bool {
        self.ident() == have.ident()
            && (self.kind == TargetType::Ip || self.private() == have.private())
    }

    /// The target as `add_target` / `remove_target` take it.
    fn body(&self) -> Target {
        let mut b = self.clone();
        b.use_private_ip = (self.kind != TargetType::Ip).then_some(self.private());
        b
    }
}

/// A target's health on one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// The service.
    pub listen_port: u16,
    /// `healthy`, `unhealthy` or `unknown`.
    pub status: String,
}

/// An observed target: the spec shape plus its health per service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetObserved {
    /// The target.
    #[serde(flatten)]
    pub target: Target,
    /// Health per service.
    #[serde(default)]
    pub health_status: Option<Vec<HealthStatus>>,
}

/// An attachment of a load balancer to a private network (the same type as a server's).
pub type LbNetwork = NetworkAttachment;

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
    /// Private network attachments (keyed by network); `None`: not managed, like a
    /// server's `networks`.
    #[serde(default)]
    pub private_net: Option<Vec<NetworkAttachment>>,
    /// Services (keyed by listen port).
    #[serde(default)]
    pub services: Vec<Service>,
    /// Targets (keyed by identity).
    #[serde(default)]
    pub targets: Vec<Target>,
}

impl LoadBalancer {
    /// A load balancer of `load_balancer_type` (e.g. `lb11`) in `location` (e.g. `fsn1`),
    /// round robin, with no services, targets or networks yet.
    pub fn new(name: &str, load_balancer_type: &str, location: &str) -> Self {
        LoadBalancer {
            name: name.into(),
            load_balancer_type: load_balancer_type.into(),
            location: location.into(),
            algorithm: Algorithm::default(),
            labels: Labels::new(),
            private_net: None,
            services: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// Adds a user label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Sets the balancing algorithm (default round robin).
    pub fn algorithm(mut self, kind: AlgorithmType) -> Self {
        self.algorithm = Algorithm { kind };
        self
    }

    /// Attaches the load balancer to a declared network with a fixed private IP. Targets
    /// added with [`LoadBalancer::target`] / [`LoadBalancer::target_selector`] (before or
    /// after) are then reached over that network.
    pub fn network(self, network: &Handle<Network>, ip: impl Into<Ipv4Addr>) -> Self {
        self.attach(NetworkAttachment::new(network, Some(ip.into())))
    }

    /// Attaches the load balancer to a declared network; the API chooses its private IP.
    pub fn network_any_ip(self, network: &Handle<Network>) -> Self {
        self.attach(NetworkAttachment::new(network, None))
    }

    fn attach(mut self, attachment: NetworkAttachment) -> Self {
        self.private_net
            .get_or_insert_with(Vec::new)
            .push(attachment);
        for t in &mut self.targets {
            if t.kind != TargetType::Ip && t.use_private_ip.is_none() {
                t.use_private_ip = Some(true);
            }
        }
        self
    }

    fn on_network(&self) -> bool {
        self.private_net.as_ref().is_some_and(|n| !n.is_empty())
    }

    /// Adds a service, e.g. `Service::tcp(443)`.
    pub fn service(mut self, service: Service) -> Self {
        self.services.push(service);
        self
    }

    /// Adds a declared server as a target, reached over the private network when the load
    /// balancer is attached to one, else over the server's public address.
    pub fn target(mut self, server: &Handle<Server>) -> Self {
        let mut t = Target::server(server.id());
        t.use_private_ip = self.on_network().then_some(true);
        self.targets.push(t);
        self
    }

    /// Adds a declared server as a target reached over its public address, even when the
    /// load balancer is attached to a network.
    pub fn public_target(mut self, server: &Handle<Server>) -> Self {
        let mut t = Target::server(server.id());
        t.use_private_ip = Some(false);
        self.targets.push(t);
        self
    }

    /// Adds every server matching a label selector (e.g. `k3s-role=agent`) as targets,
    /// reached like [`LoadBalancer::target`]'s.
    pub fn target_selector(mut self, selector: &str) -> Self {
        let mut t = Target::label_selector(selector);
        t.use_private_ip = self.on_network().then_some(true);
        self.targets.push(t);
        self
    }

    /// Adds an IP address as a target.
    pub fn target_ip(mut self, ip: std::net::IpAddr) -> Self {
        self.targets.push(Target::ip(ip));
        self
    }
}

/// An observed load balancer: the spec shape, targets with health, id and addresses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancerObserved {
    /// Name.
    pub name: String,
    /// Type.
    pub load_balancer_type: String,
    /// Location.
    pub location: String,
    /// Algorithm.
    pub algorithm: Algorithm,
    /// User labels.
    pub labels: Labels,
    /// Network attachments.
    pub private_net: Vec<NetworkAttachment>,
    /// Services.
    pub services: Vec<Service>,
    /// Targets with their health.
    pub targets: Vec<TargetObserved>,
    /// Its id.
    pub id: u64,
    /// Its public IPv4.
    pub ipv4: Option<String>,
    /// Its public IPv6.
    pub ipv6: Option<String>,
}

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
                KeyedList {
                    path: "targets",
                    key: &["type", "server.id", "label_selector.selector", "ip.ip"],
                },
                KeyedList {
                    path: "private_net",
                    key: &["network"],
                },
            ],
            attributes: Self::ATTRIBUTES,
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = validate_name(&self.name);
        e.extend(validate_labels(&self.labels));
        let mut ports = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            let f = |x: &str| format!("services[{i}].{x}");
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
            let ok = match t.kind {
                TargetType::Server => t.server.is_some(),
                TargetType::LabelSelector => t.label_selector.is_some(),
                TargetType::Ip => {
                    t.ip.as_ref()
                        .is_some_and(|ip| ip.ip.parse::<std::net::IpAddr>().is_ok())
                }
            };
            if !ok {
                e.push(FieldError::new(
                    format!("targets[{i}]"),
                    "the field matching the type (server, label_selector or ip) must be set",
                ));
            }
            if t.use_private_ip == Some(true) && !self.on_network() {
                e.push(FieldError::new(
                    format!("targets[{i}].use_private_ip"),
                    "the load balancer is not attached to any network",
                ));
            }
        }
        e
    }
}

cairn_core::attributes! {
    /// Typed attributes of a load balancer.
    pub trait LoadBalancerAttrs for LoadBalancer {
        /// Its id.
        fn id -> u64 = "id";
        /// Its public IPv4.
        fn ipv4 -> Ipv4Addr = "ipv4";
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ApiAddress {
    ip: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct ApiLbPublicNet {
    ipv4: Option<ApiAddress>,
    ipv6: Option<ApiAddress>,
}

/// A load balancer as the API returns it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ApiLoadBalancer {
    id: u64,
    name: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    load_balancer_type: NameRef,
    #[serde(default)]
    location: NameRef,
    #[serde(default)]
    algorithm: Algorithm,
    #[serde(default)]
    private_net: Vec<ApiPrivateNet>,
    #[serde(default)]
    services: Vec<Service>,
    #[serde(default)]
    targets: Vec<TargetObserved>,
    #[serde(default)]
    public_net: ApiLbPublicNet,
}

#[derive(Serialize)]
struct CreateLoadBalancer<'a> {
    name: &'a str,
    load_balancer_type: &'a str,
    location: &'a str,
    algorithm: &'a Algorithm,
    labels: &'a Labels,
    services: &'a [Service],
    network: Option<u64>,
    targets: Option<Vec<Target>>,
}

#[derive(Serialize)]
struct ChangeLbType<'a> {
    load_balancer_type: &'a str,
}

#[derive(Serialize)]
struct ListenPort {
    listen_port: u16,
}

fn known(f: &Field<u64>) -> Option<u64> {
    f.known().copied()
}

/// The `hetzner_load_balancer` kind.
pub(crate) struct LoadBalancers;

#[async_trait]
impl Collection for LoadBalancers {
    type Spec = LoadBalancer;
    type Api = ApiLoadBalancer;
    type Observed = LoadBalancerObserved;
    const COLLECTION: &'static str = "load_balancers";
    const SINGULAR: &'static str = "load_balancer";

    fn id(api: &ApiLoadBalancer) -> u64 {
        api.id
    }
    fn name(api: &ApiLoadBalancer) -> &str {
        &api.name
    }
    fn labels(api: &ApiLoadBalancer) -> &Labels {
        &api.labels
    }
    fn observed_id(o: &LoadBalancerObserved) -> u64 {
        o.id
    }
    fn spec_labels(spec: &LoadBalancer) -> &Labels {
        &spec.labels
    }

    fn observe(api: &ApiLoadBalancer, _: Option<&LoadBalancer>) -> LoadBalancerObserved {
        let ip = |a: &Option<ApiAddress>| a.as_ref().and_then(|a| a.ip.clone());
        LoadBalancerObserved {
            name: api.name.clone(),
            load_balancer_type: api.load_balancer_type.name.clone(),
            location: api.location.name.clone(),
            algorithm: api.algorithm.clone(),
            labels: split_labels(&api.labels).0,
            private_net: api
                .private_net
                .iter()
                .map(|p| NetworkAttachment {
                    network: p.network.into(),
                    ip: p.ip,
                })
                .collect(),
            services: api.services.clone(),
            targets: api.targets.clone(),
            id: api.id,
            ipv4: ip(&api.public_net.ipv4),
            ipv6: ip(&api.public_net.ipv6),
        }
    }

    async fn create(ops: &Ops<'_>, d: &LoadBalancer, labels: &Labels) -> Result<u64, ApiError> {
        let nets = d.private_net.as_deref().unwrap_or_default();
        let net_in_create = nets.len() == 1 && nets[0].ip.is_none();
        let body = CreateLoadBalancer {
            name: &d.name,
            load_balancer_type: &d.load_balancer_type,
            location: &d.location,
            algorithm: &d.algorithm,
            labels,
            services: &d.services,
            network: net_in_create.then(|| known(&nets[0].network)).flatten(),
            targets: (net_in_create || nets.is_empty())
                .then(|| d.targets.iter().map(Target::body).collect()),
        };
        let v = ops.post("/load_balancers", &body).await?;
        Ok(envelope::<ApiLoadBalancer>(v, "load_balancer")?.id)
    }

    async fn converge(
        ops: &Ops<'_>,
        cur: &ApiLoadBalancer,
        d: &LoadBalancer,
        labels: &Labels,
    ) -> Result<(), ApiError> {
        let id = cur.id;
        let act = |a: &str| format!("/load_balancers/{id}/actions/{a}");
        if cur.labels != *labels || cur.name != d.name {
            let body = NameLabels {
                name: &d.name,
                labels,
            };
            ops.put(&format!("/load_balancers/{id}"), &body).await?;
        }
        if cur.load_balancer_type.name != d.load_balancer_type {
            let body = ChangeLbType {
                load_balancer_type: &d.load_balancer_type,
            };
            ops.post(&act("change_type"), &body).await?;
        }
        if cur.algorithm != d.algorithm {
            ops.post(&act("change_algorithm"), &d.algorithm).await?;
        }
        let have_nets = &cur.private_net;
        let want_nets = d.private_net.as_deref().unwrap_or_default();
        for w in want_nets {
            let Some(n) = known(&w.network) else { continue };
            let h = have_nets.iter().find(|h| h.network == n);
            let wrong = h.is_some_and(|h| w.ip.is_some() && w.ip != h.ip);
            if wrong {
                let body = NetworkAction {
                    network: n,
                    ip: None,
                };
                ops.post(&act("detach_from_network"), &body).await?;
            }
            if h.is_none() || wrong {
                let body = NetworkAction {
                    network: n,
                    ip: w.ip,
                };
                ops.post(&act("attach_to_network"), &body).await?;
            }
        }
        // Targets out first, then services, then targets in. Targets are a set.
        let have_t: Vec<&Target> = cur.targets.iter().map(|t| &t.target).collect();
        for h in &have_t {
            if !d.targets.iter().any(|w| w.served_by(h)) {
                ops.post(&act("remove_target"), &h.body()).await?;
            }
        }
        for h in &cur.services {
            let w = d.services.iter().find(|w| w.listen_port == h.listen_port);
            if w.is_none_or(|w| w.protocol != h.protocol) {
                let body = ListenPort {
                    listen_port: h.listen_port,
                };
                ops.post(&act("delete_service"), &body).await?;
            }
        }
        for w in &d.services {
            match cur.services.iter().find(|h| h.listen_port == w.listen_port) {
                Some(h) if h.protocol == w.protocol => {
                    if h != w {
                        ops.post(&act("update_service"), w).await?;
                    }
                }
                _ => {
                    ops.post(&act("add_service"), w).await?;
                }
            }
        }
        for w in &d.targets {
            if !have_t.iter().any(|h| w.served_by(h)) {
                ops.post(&act("add_target"), &w.body()).await?;
            }
        }
        for h in have_nets.iter().filter(|_| d.private_net.is_some()) {
            if !want_nets
                .iter()
                .any(|w| known(&w.network) == Some(h.network))
            {
                let body = NetworkAction {
                    network: h.network,
                    ip: None,
                };
                ops.post(&act("detach_from_network"), &body).await?;
            }
        }
        Ok(())
    }

    fn example() -> LoadBalancer {
        let mut http = Service::tcp(443);
        http.protocol = LbProtocol::Https;
        http.health_check.protocol = LbProtocol::Http;
        http.health_check.http = Some(HealthCheckHttp {
            domain: Some("example.com".into()),
            path: "/healthz".into(),
            response: Some("ok".into()),
            status_codes: Some(vec!["2??".into()]),
            tls: Some(false),
        });
        LoadBalancer {
            name: "lb".into(),
            load_balancer_type: "lb11".into(),
            location: "fsn1".into(),
            algorithm: Algorithm::default(),
            labels: [("env".to_string(), "prod".to_string())].into(),
            private_net: Some(vec![NetworkAttachment {
                network: 1.into(),
                ip: Some(Ipv4Addr::new(10, 0, 1, 5)),
            }]),
            services: vec![Service::tcp(80), http],
            // The first item sets every identity field, so the schema check can walk them all.
            targets: vec![
                Target {
                    kind: TargetType::LabelSelector,
                    server: Some(TargetServer { id: 4.into() }),
                    label_selector: Some(TargetSelector {
                        selector: "role=web".into(),
                    }),
                    ip: Some(TargetIp {
                        ip: "203.0.113.9".into(),
                    }),
                    use_private_ip: Some(false),
                },
                Target::private_server(2),
            ],
        }
    }

    fn example_observed() -> LoadBalancerObserved {
        let spec = Self::example();
        LoadBalancerObserved {
            name: spec.name,
            load_balancer_type: spec.load_balancer_type,
            location: spec.location,
            algorithm: spec.algorithm,
            labels: spec.labels,
            private_net: spec.private_net.unwrap_or_default(),
            services: spec.services,
            targets: spec
                .targets
                .into_iter()
                .map(|target| TargetObserved {
                    target,
                    health_status: Some(vec![HealthStatus {
                        listen_port: 80,
                        status: "healthy".into(),
                    }]),
                })
                .collect(),
            id: 3,
            ipv4: Some("203.0.113.3".into()),
            ipv6: Some("2001:db8::/64".into()),
        }
    }
}

crate::collection_kind!(LoadBalancers);
