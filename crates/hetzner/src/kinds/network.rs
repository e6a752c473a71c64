//! `hetzner_network`: a private network with subnets and routes. Subnets and routes are
//! keyed sets changed by actions; the network's `ip_range` and a subnet's type or zone force
//! a replace.

use async_trait::async_trait;
use std::net::Ipv4Addr;

use cairn_core::{Field, FieldError, Handle, KeyedList, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::collection::Collection;
use super::{Labels, NameLabels, Ops, envelope, split_labels, validate_labels, validate_name};
use crate::cidr::Cidr4;
use crate::client::ApiError;

/// What a subnet connects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubnetType {
    /// Cloud servers and load balancers.
    #[default]
    Cloud,
    /// Legacy name of `cloud`.
    Server,
    /// A Robot vSwitch.
    Vswitch,
}

/// A subnet of a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    /// Cloud, server or vSwitch.
    #[serde(rename = "type")]
    pub kind: SubnetType,
    /// e.g. `eu-central`.
    pub network_zone: String,
    /// The subnet range, inside the network's range.
    pub ip_range: String,
}

/// A static route of a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Destination CIDR.
    pub destination: String,
    /// Gateway inside the network.
    pub gateway: String,
}

/// An observed network: the spec plus its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkObserved {
    /// The spec fields as the API reports them.
    #[serde(flatten)]
    pub spec: Network,
    /// Its id.
    pub id: u64,
}

/// A private network (`/networks`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// Name (the key).
    pub name: String,
    /// The network range, e.g. `10.0.0.0/16`.
    pub ip_range: String,
    /// Subnets (keyed by `ip_range`).
    #[serde(default)]
    pub subnets: Vec<Subnet>,
    /// Routes (keyed by destination and gateway).
    #[serde(default)]
    pub routes: Vec<Route>,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
}

/// An attachment of a server or load balancer to a private network (keyed by network).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// The network's id (usually a reference to a declared `Network`).
    pub network: Field<u64>,
    /// A fixed private IP; `None` lets the API choose.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
}

impl NetworkAttachment {
    /// An attachment to a declared network, with a fixed IP or (`None`) one the API chooses.
    pub fn new(network: &Handle<Network>, ip: Option<Ipv4Addr>) -> Self {
        NetworkAttachment {
            network: network.id().into(),
            ip,
        }
    }
}

impl Network {
    /// A network with one cloud subnet in `eu-central`.
    pub fn new(name: &str, ip_range: &str, subnet: &str) -> Self {
        Network {
            name: name.into(),
            ip_range: ip_range.into(),
            subnets: vec![Subnet {
                kind: SubnetType::Cloud,
                network_zone: "eu-central".into(),
                ip_range: subnet.into(),
            }],
            routes: Vec::new(),
            labels: Labels::new(),
        }
    }

    /// Adds a user label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a cloud subnet in `network_zone` (e.g. `eu-central`).
    pub fn subnet(mut self, network_zone: &str, ip_range: &str) -> Self {
        self.subnets.push(Subnet {
            kind: SubnetType::Cloud,
            network_zone: network_zone.into(),
            ip_range: ip_range.into(),
        });
        self
    }

    /// Adds a static route.
    pub fn route(mut self, destination: &str, gateway: &str) -> Self {
        self.routes.push(Route {
            destination: destination.into(),
            gateway: gateway.into(),
        });
        self
    }
}

fn private(c: &Cidr4) -> bool {
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
        .iter()
        .filter_map(|r| Cidr4::parse(r, true))
        .any(|r| r.covers(c))
}

impl Resource for Network {
    const KIND: &'static str = "hetzner_network";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["ip_range", "subnets[*].type", "subnets[*].network_zone"],
            computed: &["id"],
            keyed: &[
                KeyedList {
                    path: "subnets",
                    key: &["ip_range"],
                },
                KeyedList {
                    path: "routes",
                    key: &["destination", "gateway"],
                },
            ],
            attributes: Self::ATTRIBUTES,
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = validate_name(&self.name);
        e.extend(validate_labels(&self.labels));
        let range = Cidr4::parse(&self.ip_range, true);
        match range {
            None => e.push(FieldError::new(
                "ip_range",
                format!("{:?} is not an IPv4 network in CIDR form", self.ip_range),
            )),
            Some(r) if !private(&r) || r.prefix > 24 => e.push(FieldError::new(
                "ip_range",
                "must be a private (RFC 1918) range of /24 or larger",
            )),
            _ => {}
        }
        let mut seen: Vec<(usize, Cidr4)> = Vec::new();
        for (i, s) in self.subnets.iter().enumerate() {
            let f = |x: &str| format!("subnets[{i}].{x}");
            if !matches!(
                s.network_zone.as_str(),
                "eu-central" | "us-east" | "us-west" | "ap-southeast"
            ) {
                e.push(FieldError::new(
                    f("network_zone"),
                    format!("unknown network zone {:?}", s.network_zone),
                ));
            }
            let Some(c) = Cidr4::parse(&s.ip_range, true) else {
                e.push(FieldError::new(
                    f("ip_range"),
                    format!("{:?} is not an IPv4 network in CIDR form", s.ip_range),
                ));
                continue;
            };
            if let Some(r) = range
                && !r.covers(&c)
            {
                e.push(FieldError::new(
                    f("ip_range"),
                    format!("{c} is not inside the network's ip_range {r}"),
                ));
            }
            if let Some((j, o)) = seen.iter().find(|(_, o)| o.overlaps(&c)) {
                e.push(FieldError::new(
                    f("ip_range"),
                    format!("{c} overlaps subnets[{j}] ({o})"),
                ));
            }
            seen.push((i, c));
        }
        for (i, r) in self.routes.iter().enumerate() {
            if Cidr4::parse(&r.destination, true).is_none() {
                e.push(FieldError::new(
                    format!("routes[{i}].destination"),
                    "is not an IPv4 CIDR",
                ));
            }
            match (r.gateway.parse::<std::net::Ipv4Addr>(), range) {
                (Ok(g), Some(rg)) if rg.contains(g) && g != rg.nth(1) => {}
                _ => e.push(FieldError::new(
                    format!("routes[{i}].gateway"),
                    "must be an address inside the network other than its gateway",
                )),
            }
        }
        e
    }
}

cairn_core::attributes! {
    /// Typed attributes of a network.
    pub trait NetworkAttrs for Network {
        /// The network's id.
        fn id -> u64 = "id";
    }
}

/// A network as the API returns it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ApiNetwork {
    id: u64,
    name: String,
    ip_range: String,
    #[serde(default)]
    subnets: Vec<Subnet>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    labels: Labels,
}

#[derive(Serialize)]
struct CreateNetwork<'a> {
    name: &'a str,
    ip_range: &'a str,
    subnets: &'a [Subnet],
    routes: &'a [Route],
    labels: &'a Labels,
}

#[derive(Serialize)]
struct SubnetRange<'a> {
    ip_range: &'a str,
}

/// The `hetzner_network` kind.
pub(crate) struct Networks;

#[async_trait]
impl Collection for Networks {
    type Spec = Network;
    type Api = ApiNetwork;
    type Observed = NetworkObserved;
    const COLLECTION: &'static str = "networks";
    const SINGULAR: &'static str = "network";

    fn id(api: &ApiNetwork) -> u64 {
        api.id
    }
    fn name(api: &ApiNetwork) -> &str {
        &api.name
    }
    fn labels(api: &ApiNetwork) -> &Labels {
        &api.labels
    }
    fn observed_id(o: &NetworkObserved) -> u64 {
        o.id
    }
    fn spec_labels(spec: &Network) -> &Labels {
        &spec.labels
    }

    fn observe(api: &ApiNetwork, _: Option<&Network>) -> NetworkObserved {
        NetworkObserved {
            spec: Network {
                name: api.name.clone(),
                ip_range: api.ip_range.clone(),
                subnets: api.subnets.clone(),
                routes: api.routes.clone(),
                labels: split_labels(&api.labels).0,
            },
            id: api.id,
        }
    }

    async fn create(ops: &Ops<'_>, d: &Network, labels: &Labels) -> Result<u64, ApiError> {
        let body = CreateNetwork {
            name: &d.name,
            ip_range: &d.ip_range,
            subnets: &d.subnets,
            routes: &d.routes,
            labels,
        };
        let v = ops.post("/networks", &body).await?;
        Ok(envelope::<ApiNetwork>(v, "network")?.id)
    }

    async fn converge(
        ops: &Ops<'_>,
        cur: &ApiNetwork,
        d: &Network,
        labels: &Labels,
    ) -> Result<(), ApiError> {
        let id = cur.id;
        if cur.labels != *labels || cur.name != d.name {
            let body = NameLabels {
                name: &d.name,
                labels,
            };
            ops.put(&format!("/networks/{id}"), &body).await?;
        }
        let path = |a: &str| format!("/networks/{id}/actions/{a}");
        for s in &cur.subnets {
            if !d.subnets.iter().any(|w| w.ip_range == s.ip_range) {
                let body = SubnetRange {
                    ip_range: &s.ip_range,
                };
                ops.post(&path("delete_subnet"), &body).await?;
            }
        }
        for w in &d.subnets {
            if !cur.subnets.iter().any(|s| s.ip_range == w.ip_range) {
                ops.post(&path("add_subnet"), w).await?;
            }
        }
        for r in &cur.routes {
            if !d.routes.contains(r) {
                ops.post(&path("delete_route"), r).await?;
            }
        }
        for w in &d.routes {
            if !cur.routes.contains(w) {
                ops.post(&path("add_route"), w).await?;
            }
        }
        Ok(())
    }

    fn example() -> Network {
        let mut n = Network::new("net", "10.0.0.0/16", "10.0.1.0/24");
        n.routes.push(Route {
            destination: "10.100.1.0/24".into(),
            gateway: "10.0.1.1".into(),
        });
        n.labels.insert("env".into(), "prod".into());
        n
    }

    fn example_observed() -> NetworkObserved {
        NetworkObserved {
            spec: Self::example(),
            id: 1,
        }
    }
}

crate::collection_kind!(Networks);
