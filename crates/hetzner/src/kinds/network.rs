//! `hetzner_network`: a private network with subnets and routes. Subnets and routes are
//! keyed sets changed by actions; the network's `ip_range` and a subnet's type or zone force
//! a replace.

use cairn_core::{AttrRef, FieldError, Handle, KeyedList, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{KindOps, Labels, Ops, id_of, split_labels, validate_labels, validate_name};
use crate::cidr::Cidr4;

/// A subnet of a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    /// `cloud`, `server` or `vswitch`.
    #[serde(rename = "type")]
    pub kind: String,
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

impl Network {
    /// A network with one cloud subnet in `eu-central`.
    pub fn new(name: &str, ip_range: &str, subnet: &str) -> Self {
        Network {
            name: name.into(),
            ip_range: ip_range.into(),
            subnets: vec![Subnet {
                kind: "cloud".into(),
                network_zone: "eu-central".into(),
                ip_range: subnet.into(),
            }],
            routes: Vec::new(),
            labels: Labels::new(),
        }
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
            if !matches!(s.kind.as_str(), "cloud" | "server" | "vswitch") {
                e.push(FieldError::new(
                    f("type"),
                    "must be cloud, server or vswitch",
                ));
            }
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

/// Typed attributes of a network.
pub trait NetworkAttrs {
    /// The network's id.
    fn id(&self) -> AttrRef<u64>;
}

impl NetworkAttrs for Handle<Network> {
    fn id(&self) -> AttrRef<u64> {
        self.attr("id")
    }
}

fn observe(api: &Value, _declared: Option<&Value>) -> Value {
    let (labels, _, _) = split_labels(&api["labels"]);
    let subnets: Vec<Value> = api["subnets"].as_array().into_iter().flatten()
        .map(|s| json!({"type": s["type"], "network_zone": s["network_zone"], "ip_range": s["ip_range"]}))
        .collect();
    let routes: Vec<Value> = api["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| json!({"destination": r["destination"], "gateway": r["gateway"]}))
        .collect();
    json!({"name": api["name"], "ip_range": api["ip_range"], "subnets": subnets, "routes": routes,
           "labels": labels, "id": api["id"]})
}

fn list(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

async fn converge(
    ops: &Ops<'_>,
    cur: &Value,
    d: &Value,
    labels: Value,
) -> Result<(), crate::client::ApiError> {
    let id = id_of(cur);
    if cur["labels"] != labels || cur["name"] != d["name"] {
        ops.put(
            &format!("/networks/{id}"),
            json!({"name": d["name"], "labels": labels}),
        )
        .await?;
    }
    let path = |a: &str| format!("/networks/{id}/actions/{a}");
    let have = list(&cur["subnets"]);
    let want = list(&d["subnets"]);
    for s in &have {
        if !want.iter().any(|w| w["ip_range"] == s["ip_range"]) {
            ops.post(&path("delete_subnet"), json!({"ip_range": s["ip_range"]}))
                .await?;
        }
    }
    for w in &want {
        if !have.iter().any(|s| s["ip_range"] == w["ip_range"]) {
            ops.post(&path("add_subnet"), w.clone()).await?;
        }
    }
    let have = list(&cur["routes"]);
    let want = list(&d["routes"]);
    let same =
        |a: &Value, b: &Value| a["destination"] == b["destination"] && a["gateway"] == b["gateway"];
    for r in &have {
        if !want.iter().any(|w| same(w, r)) {
            ops.post(
                &path("delete_route"),
                json!({"destination": r["destination"], "gateway": r["gateway"]}),
            )
            .await?;
        }
    }
    for w in &want {
        if !have.iter().any(|r| same(w, r)) {
            ops.post(&path("add_route"), w.clone()).await?;
        }
    }
    Ok(())
}

/// Operations for `hetzner_network`.
pub const OPS: KindOps = KindOps {
    collection: "networks",
    singular: "network",
    observe,
    extra_labels: |_| Vec::new(),
    create: |ops, d, labels| {
        Box::pin(async move {
            let body = json!({"name": d["name"], "ip_range": d["ip_range"], "subnets": d["subnets"],
                              "routes": d["routes"], "labels": labels});
            let body = super::typed::<hcloud::models::CreateNetworkRequest>(body)?;
            let v = ops.post("/networks", body).await?;
            Ok(id_of(&v["network"]))
        })
    },
    converge: |ops, cur, d, labels| Box::pin(converge(ops, cur, d, labels)),
    delete: |ops, cur| {
        Box::pin(async move { ops.delete(&format!("/networks/{}", id_of(cur))).await })
    },
};
