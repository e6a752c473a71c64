//! `hetzner_firewall`: rules (replaced whole with `set_rules`) and the resources it applies
//! to (a keyed set changed with `apply_to_resources` / `remove_from_resources`).

use async_trait::async_trait;
use cairn_core::{FieldError, Handle, KeyedList, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::collection::Collection;
use super::load_balancer::{TargetSelector, TargetServer};
use super::server::{Server, ServerAttrs};
use super::{Labels, NameLabels, Ops, envelope, split_labels, validate_labels, validate_name};
use crate::client::ApiError;

/// The direction of traffic a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Inbound (matched by `source_ips`).
    In,
    /// Outbound (matched by `destination_ips`).
    Out,
}

/// The protocol a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleProtocol {
    /// TCP (with a port).
    Tcp,
    /// UDP (with a port).
    Udp,
    /// ICMP.
    Icmp,
    /// IPsec ESP.
    Esp,
    /// GRE.
    Gre,
}

impl RuleProtocol {
    fn has_ports(self) -> bool {
        matches!(self, RuleProtocol::Tcp | RuleProtocol::Udp)
    }
}

/// A firewall rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// In or out.
    pub direction: Direction,
    /// The protocol.
    pub protocol: RuleProtocol,
    /// `"80"`, `"1024-5000"` or `"any"` (tcp/udp only).
    pub port: Option<String>,
    /// Sources (for `in`), CIDRs.
    #[serde(default)]
    pub source_ips: Vec<String>,
    /// Destinations (for `out`), CIDRs.
    #[serde(default)]
    pub destination_ips: Vec<String>,
    /// Free text.
    pub description: Option<String>,
}

impl Rule {
    /// An inbound TCP rule.
    pub fn tcp_in(port: &str, sources: &[&str]) -> Self {
        Rule {
            direction: Direction::In,
            protocol: RuleProtocol::Tcp,
            port: Some(port.into()),
            source_ips: sources.iter().map(|s| s.to_string()).collect(),
            destination_ips: Vec::new(),
            description: None,
        }
    }

    /// An inbound rule for `protocol` (a `port` such as `"80"`, `"1024-5000"` or `"any"`
    /// for tcp and udp, `None` for the others) from `sources` (CIDRs).
    pub fn allow_in<S: AsRef<str>>(
        protocol: RuleProtocol,
        port: Option<&str>,
        sources: impl IntoIterator<Item = S>,
    ) -> Self {
        Rule {
            direction: Direction::In,
            protocol,
            port: port.map(str::to_string),
            source_ips: sources
                .into_iter()
                .map(|s| s.as_ref().to_string())
                .collect(),
            destination_ips: Vec::new(),
            description: None,
        }
    }

    /// The rule with a description (shown in the Hetzner console).
    pub fn describe(mut self, description: &str) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The rule as compared: IP lists as sets, an empty description as none.
    fn normalised(&self) -> Rule {
        let mut r = self.clone();
        r.source_ips.sort();
        r.destination_ips.sort();
        if r.description.as_deref() == Some("") {
            r.description = None;
        }
        r
    }
}

/// What kind of resource a firewall applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyToType {
    /// One server.
    Server,
    /// Every server matching a label selector.
    LabelSelector,
}

/// What a firewall applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyTo {
    /// Server or label selector.
    #[serde(rename = "type")]
    pub kind: ApplyToType,
    /// For `server`.
    #[serde(default)]
    pub server: Option<TargetServer>,
    /// For `label_selector`.
    #[serde(default)]
    pub label_selector: Option<TargetSelector>,
}

impl ApplyTo {
    /// Applies to one server (usually a reference to its id).
    pub fn server(id: impl Into<cairn_core::Field<u64>>) -> Self {
        ApplyTo {
            kind: ApplyToType::Server,
            server: Some(TargetServer { id: id.into() }),
            label_selector: None,
        }
    }

    /// Applies to every server matching a Hetzner label selector (e.g. `k3s-role=agent`).
    pub fn label_selector(selector: &str) -> Self {
        ApplyTo {
            kind: ApplyToType::LabelSelector,
            server: None,
            label_selector: Some(TargetSelector {
                selector: selector.into(),
            }),
        }
    }

    /// The identity of the item: its type and server id or selector.
    fn ident(&self) -> (ApplyToType, Option<u64>, Option<&str>) {
        (
            self.kind,
            self.server.as_ref().and_then(|s| s.id.known().copied()),
            self.label_selector.as_ref().map(|l| l.selector.as_str()),
        )
    }
}

/// A firewall (`/firewalls`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firewall {
    /// Name (the key).
    pub name: String,
    /// User labels.
    #[serde(default)]
    pub labels: Labels,
    /// Rules (at most 50).
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Resources it applies to (keyed by identity).
    #[serde(default)]
    pub apply_to: Vec<ApplyTo>,
}

impl Firewall {
    /// A firewall with no rules, applied to nothing yet.
    pub fn new(name: &str) -> Self {
        Firewall {
            name: name.into(),
            labels: Labels::new(),
            rules: Vec::new(),
            apply_to: Vec::new(),
        }
    }

    /// Adds a user label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds a rule (e.g. `Rule::tcp_in("6443", &[..]).describe("k3s API")`).
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Allows inbound TCP to `port` from `sources` (CIDRs, e.g. `["10.0.0.0/16"]`).
    pub fn allow_tcp_in<S: AsRef<str>>(
        self,
        port: u16,
        sources: impl IntoIterator<Item = S>,
    ) -> Self {
        self.rule(Rule::allow_in(
            RuleProtocol::Tcp,
            Some(&port.to_string()),
            sources,
        ))
    }

    /// Allows inbound UDP to `port` from `sources` (CIDRs).
    pub fn allow_udp_in<S: AsRef<str>>(
        self,
        port: u16,
        sources: impl IntoIterator<Item = S>,
    ) -> Self {
        self.rule(Rule::allow_in(
            RuleProtocol::Udp,
            Some(&port.to_string()),
            sources,
        ))
    }

    /// Allows inbound ICMP (ping) from `sources` (CIDRs).
    pub fn allow_icmp_in<S: AsRef<str>>(self, sources: impl IntoIterator<Item = S>) -> Self {
        self.rule(Rule::allow_in(RuleProtocol::Icmp, None, sources))
    }

    /// Applies the firewall to a declared server.
    pub fn apply_to(mut self, server: &Handle<Server>) -> Self {
        self.apply_to.push(ApplyTo::server(server.id()));
        self
    }

    /// Applies the firewall to every server matching a label selector.
    pub fn apply_to_selector(mut self, selector: &str) -> Self {
        self.apply_to.push(ApplyTo::label_selector(selector));
        self
    }
}

/// An observed firewall: the spec plus its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirewallObserved {
    /// The spec fields as the API reports them.
    #[serde(flatten)]
    pub spec: Firewall,
    /// Its id.
    pub id: u64,
}

fn valid_port(p: &str) -> bool {
    let ok = |s: &str| s.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
    p == "any"
        || match p.split_once('-') {
            Some((a, b)) => ok(a) && ok(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok(),
            None => ok(p),
        }
}

fn valid_cidr(s: &str) -> bool {
    match s.split_once('/') {
        Some((a, p)) => match a.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => crate::cidr::Cidr4::parse(s, true).is_some(),
            Ok(std::net::IpAddr::V6(_)) => p.parse::<u8>().is_ok_and(|n| n <= 128),
            Err(_) => false,
        },
        None => false,
    }
}

impl Resource for Firewall {
    const KIND: &'static str = "hetzner_firewall";
    const PROVIDER: &'static str = "hetzner";

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            computed: &["id"],
            keyed: &[KeyedList {
                path: "apply_to",
                key: &["type", "server.id", "label_selector.selector"],
            }],
            unordered: &["rules[*].source_ips", "rules[*].destination_ips"],
            attributes: Self::ATTRIBUTES,
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = validate_name(&self.name);
        e.extend(validate_labels(&self.labels));
        if self.rules.len() > 50 {
            e.push(FieldError::new("rules", "at most 50 rules"));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let f = |x: &str| format!("rules[{i}].{x}");
            match (r.protocol.has_ports(), &r.port) {
                (true, Some(p)) if valid_port(p) => {}
                (true, Some(p)) => e.push(FieldError::new(
                    f("port"),
                    format!("{p:?} is not a port 1-65535, a range a-b, or any"),
                )),
                (true, None) => e.push(FieldError::new(f("port"), "is required for tcp and udp")),
                (false, None) => {}
                (false, Some(_)) => e.push(FieldError::new(
                    f("port"),
                    "only tcp and udp rules have ports",
                )),
            }
            let (name, ips) = match r.direction {
                Direction::In => ("source_ips", &r.source_ips),
                Direction::Out => ("destination_ips", &r.destination_ips),
            };
            if ips.is_empty() {
                e.push(FieldError::new(f(name), "must not be empty"));
            }
            for (j, ip) in ips.iter().enumerate() {
                if !valid_cidr(ip) {
                    e.push(FieldError::new(
                        format!("rules[{i}].{name}[{j}]"),
                        format!("{ip:?} is not a CIDR"),
                    ));
                }
            }
        }
        for (i, a) in self.apply_to.iter().enumerate() {
            let ok = match a.kind {
                ApplyToType::Server => a.server.is_some(),
                ApplyToType::LabelSelector => a.label_selector.is_some(),
            };
            if !ok {
                e.push(FieldError::new(
                    format!("apply_to[{i}]"),
                    "the field matching the type (server or label_selector) must be set",
                ));
            }
        }
        e
    }
}

cairn_core::attributes! {
    /// Typed attributes of a firewall.
    pub trait FirewallAttrs for Firewall {
        /// Its id.
        fn id -> u64 = "id";
    }
}

/// A firewall as the API returns it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ApiFirewall {
    id: u64,
    name: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    applied_to: Vec<ApplyTo>,
}

#[derive(Serialize)]
struct CreateFirewall<'a> {
    name: &'a str,
    labels: &'a Labels,
    rules: &'a [Rule],
    apply_to: &'a [ApplyTo],
}

#[derive(Serialize)]
struct SetRules<'a> {
    rules: &'a [Rule],
}

#[derive(Serialize)]
struct ApplyToResources<'a> {
    apply_to: &'a [ApplyTo],
}

#[derive(Serialize)]
struct RemoveFromResources<'a> {
    remove_from: &'a [ApplyTo],
}

/// The `hetzner_firewall` kind.
pub(crate) struct Firewalls;

#[async_trait]
impl Collection for Firewalls {
    type Spec = Firewall;
    type Api = ApiFirewall;
    type Observed = FirewallObserved;
    const COLLECTION: &'static str = "firewalls";
    const SINGULAR: &'static str = "firewall";

    fn id(api: &ApiFirewall) -> u64 {
        api.id
    }
    fn name(api: &ApiFirewall) -> &str {
        &api.name
    }
    fn labels(api: &ApiFirewall) -> &Labels {
        &api.labels
    }
    fn observed_id(o: &FirewallObserved) -> u64 {
        o.id
    }
    fn spec_labels(spec: &Firewall) -> &Labels {
        &spec.labels
    }

    fn observe(api: &ApiFirewall, _: Option<&Firewall>) -> FirewallObserved {
        FirewallObserved {
            spec: Firewall {
                name: api.name.clone(),
                labels: split_labels(&api.labels).0,
                rules: api
                    .rules
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        if r.description.as_deref() == Some("") {
                            r.description = None;
                        }
                        r
                    })
                    .collect(),
                apply_to: api.applied_to.clone(),
            },
            id: api.id,
        }
    }

    async fn create(ops: &Ops<'_>, d: &Firewall, labels: &Labels) -> Result<u64, ApiError> {
        let body = CreateFirewall {
            name: &d.name,
            labels,
            rules: &d.rules,
            apply_to: &d.apply_to,
        };
        let v = ops.post("/firewalls", &body).await?;
        Ok(envelope::<ApiFirewall>(v, "firewall")?.id)
    }

    async fn converge(
        ops: &Ops<'_>,
        cur: &ApiFirewall,
        d: &Firewall,
        labels: &Labels,
    ) -> Result<(), ApiError> {
        let id = cur.id;
        let act = |a: &str| format!("/firewalls/{id}/actions/{a}");
        if cur.labels != *labels || cur.name != d.name {
            let body = NameLabels {
                name: &d.name,
                labels,
            };
            ops.put(&format!("/firewalls/{id}"), &body).await?;
        }
        let want: Vec<Rule> = d.rules.iter().map(Rule::normalised).collect();
        let have: Vec<Rule> = cur.rules.iter().map(Rule::normalised).collect();
        if want != have {
            let body = SetRules { rules: &d.rules };
            ops.post(&act("set_rules"), &body).await?;
        }
        let gone: Vec<ApplyTo> = cur
            .applied_to
            .iter()
            .filter(|h| !d.apply_to.iter().any(|w| w.ident() == h.ident()))
            .cloned()
            .collect();
        if !gone.is_empty() {
            let body = RemoveFromResources { remove_from: &gone };
            ops.post(&act("remove_from_resources"), &body).await?;
        }
        let new: Vec<ApplyTo> = d
            .apply_to
            .iter()
            .filter(|w| !cur.applied_to.iter().any(|h| w.ident() == h.ident()))
            .cloned()
            .collect();
        if !new.is_empty() {
            let body = ApplyToResources { apply_to: &new };
            ops.post(&act("apply_to_resources"), &body).await?;
        }
        Ok(())
    }

    async fn delete(ops: &Ops<'_>, cur: &ApiFirewall) -> Result<(), ApiError> {
        if !cur.applied_to.is_empty() {
            let body = RemoveFromResources {
                remove_from: &cur.applied_to,
            };
            ops.post(
                &format!("/firewalls/{}/actions/remove_from_resources", cur.id),
                &body,
            )
            .await?;
        }
        ops.delete(&format!("/firewalls/{}", cur.id)).await
    }

    fn example() -> Firewall {
        let mut rule = Rule::tcp_in("6443", &["10.0.0.0/16"]);
        rule.description = Some("k3s API".into());
        let mut out = Rule::tcp_in("443", &[]);
        out.direction = Direction::Out;
        out.destination_ips = vec!["0.0.0.0/0".into()];
        Firewall {
            name: "fw".into(),
            labels: [("env".to_string(), "prod".to_string())].into(),
            rules: vec![rule, out],
            // The first item sets every identity field, so the schema check can walk them all.
            apply_to: vec![
                ApplyTo {
                    kind: ApplyToType::LabelSelector,
                    server: Some(TargetServer { id: 8.into() }),
                    label_selector: Some(TargetSelector {
                        selector: "role=web".into(),
                    }),
                },
                ApplyTo::server(7),
            ],
        }
    }

    fn example_observed() -> FirewallObserved {
        FirewallObserved {
            spec: Self::example(),
            id: 1,
        }
    }
}

crate::collection_kind!(Firewalls);
