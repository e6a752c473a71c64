//! `hetzner_firewall`: rules (replaced whole with `set_rules`) and the resources it applies
//! to (a keyed set changed with `apply_to_resources` / `remove_from_resources`).

use cairn_core::{AttrRef, FieldError, Handle, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::load_balancer::{TargetSelector, TargetServer};
use super::{KindOps, Labels, Ops, id_of, split_labels, validate_labels, validate_name};
use crate::client::ApiError;

/// A firewall rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// `in` or `out`.
    pub direction: String,
    /// `tcp`, `udp`, `icmp`, `esp` or `gre`.
    pub protocol: String,
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
            direction: "in".into(),
            protocol: "tcp".into(),
            port: Some(port.into()),
            source_ips: sources.iter().map(|s| s.to_string()).collect(),
            destination_ips: Vec::new(),
            description: None,
        }
    }
}

/// What a firewall applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyTo {
    /// `server` or `label_selector`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `server`.
    pub server: Option<TargetServer>,
    /// For `label_selector`.
    pub label_selector: Option<TargetSelector>,
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
    /// Resources it applies to.
    #[serde(default)]
    pub apply_to: Vec<ApplyTo>,
}

pub(crate) const APPLY_KEY: &[&str] = &["type", "server.id", "label_selector.selector"];

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
            // `apply_to` is positional: its server ids are usually references.
            unordered: &["rules[*].source_ips", "rules[*].destination_ips"],
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
            if r.direction != "in" && r.direction != "out" {
                e.push(FieldError::new(f("direction"), "must be in or out"));
            }
            match (r.protocol.as_str(), &r.port) {
                ("tcp" | "udp", Some(p)) if valid_port(p) => {}
                ("tcp" | "udp", Some(p)) => e.push(FieldError::new(
                    f("port"),
                    format!("{p:?} is not a port 1-65535, a range a-b, or any"),
                )),
                ("tcp" | "udp", None) => {
                    e.push(FieldError::new(f("port"), "is required for tcp and udp"))
                }
                ("icmp" | "esp" | "gre", None) => {}
                ("icmp" | "esp" | "gre", Some(_)) => e.push(FieldError::new(
                    f("port"),
                    "only tcp and udp rules have ports",
                )),
                (p, _) => e.push(FieldError::new(
                    f("protocol"),
                    format!("{p:?} is not tcp, udp, icmp, esp or gre"),
                )),
            }
            let (name, ips) = if r.direction == "in" {
                ("source_ips", &r.source_ips)
            } else {
                ("destination_ips", &r.destination_ips)
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
            let ok = match a.kind.as_str() {
                "server" => a.server.is_some(),
                "label_selector" => a.label_selector.is_some(),
                _ => false,
            };
            if !ok {
                e.push(FieldError::new(
                    format!("apply_to[{i}]"),
                    "type must be server or label_selector, with the matching field set",
                ));
            }
        }
        e
    }
}

/// Typed attributes of a firewall.
pub trait FirewallAttrs {
    /// Its id.
    fn id(&self) -> AttrRef<u64>;
}

impl FirewallAttrs for Handle<Firewall> {
    fn id(&self) -> AttrRef<u64> {
        self.attr("id")
    }
}

fn apply_of(a: &Value) -> Value {
    json!({"type": a["type"],
           "server": if a["server"].is_null() { Value::Null } else { json!({"id": a["server"]["id"]}) },
           "label_selector": if a["label_selector"].is_null() { Value::Null } else { json!({"selector": a["label_selector"]["selector"]}) }})
}

fn rule_of(r: &Value) -> Value {
    let d = &r["description"];
    json!({"direction": r["direction"], "protocol": r["protocol"], "port": r["port"],
           "source_ips": r["source_ips"], "destination_ips": r["destination_ips"],
           "description": if d.as_str() == Some("") { Value::Null } else { d.clone() }})
}

fn observe(api: &Value, _declared: Option<&Value>) -> Value {
    let (labels, _, _) = split_labels(&api["labels"]);
    json!({"name": api["name"], "labels": labels,
           "rules": api["rules"].as_array().into_iter().flatten().map(rule_of).collect::<Vec<_>>(),
           "apply_to": api["applied_to"].as_array().into_iter().flatten().map(apply_of).collect::<Vec<_>>(),
           "id": api["id"]})
}

fn body_of(a: &Value) -> Value {
    let mut b = json!({"type": a["type"]});
    for k in ["server", "label_selector"] {
        if !a[k].is_null() {
            b[k] = a[k].clone();
        }
    }
    b
}

fn rules_body(d: &Value) -> Value {
    json!(
        d["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let mut r = r.clone();
                if let Some(o) = r.as_object_mut() {
                    o.retain(|_, v| !v.is_null());
                }
                r
            })
            .collect::<Vec<_>>()
    )
}

fn sorted_rules(v: &Value) -> Vec<Value> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let mut r = rule_of(r);
            for k in ["source_ips", "destination_ips"] {
                let mut ips: Vec<String> = r[k]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect();
                ips.sort();
                r[k] = json!(ips);
            }
            r
        })
        .collect()
}

async fn converge(ops: &Ops<'_>, cur: &Value, d: &Value, labels: Value) -> Result<(), ApiError> {
    let id = id_of(cur);
    let act = |a: &str| format!("/firewalls/{id}/actions/{a}");
    if cur["labels"] != labels || cur["name"] != d["name"] {
        ops.put(
            &format!("/firewalls/{id}"),
            json!({"name": d["name"], "labels": labels}),
        )
        .await?;
    }
    let want_rules: Vec<Value> = sorted_rules(&d["rules"]);
    let have_rules: Vec<Value> = sorted_rules(&cur["rules"]);
    let norm = |v: Vec<Value>| {
        v.into_iter()
            .map(|mut r| {
                if r["description"].is_null() {
                    r["description"] = Value::Null;
                }
                r
            })
            .collect::<Vec<_>>()
    };
    if norm(want_rules) != norm(have_rules) {
        ops.post(
            &act("set_rules"),
            super::typed::<hcloud::models::SetRulesRequest>(json!({"rules": rules_body(d)}))?,
        )
        .await?;
    }
    let key = |a: &Value| cairn_core::diff::item_key(a, APPLY_KEY);
    let have: Vec<Value> = cur["applied_to"]
        .as_array()
        .into_iter()
        .flatten()
        .map(apply_of)
        .collect();
    let want: Vec<Value> = d["apply_to"].as_array().cloned().unwrap_or_default();
    let gone: Vec<Value> = have
        .iter()
        .filter(|h| !want.iter().any(|w| key(w) == key(h)))
        .map(body_of)
        .collect();
    if !gone.is_empty() {
        ops.post(&act("remove_from_resources"), json!({"remove_from": gone}))
            .await?;
    }
    let new: Vec<Value> = want
        .iter()
        .filter(|w| !have.iter().any(|h| key(w) == key(h)))
        .map(body_of)
        .collect();
    if !new.is_empty() {
        ops.post(&act("apply_to_resources"), json!({"apply_to": new}))
            .await?;
    }
    Ok(())
}

/// Operations for `hetzner_firewall`.
pub const OPS: KindOps = KindOps {
    collection: "firewalls",
    singular: "firewall",
    observe,
    extra_labels: |_| Vec::new(),
    create: |ops, d, labels| {
        Box::pin(async move {
            let apply: Vec<Value> = d["apply_to"]
                .as_array()
                .into_iter()
                .flatten()
                .map(body_of)
                .collect();
            let body = json!({"name": d["name"], "labels": labels, "rules": rules_body(d), "apply_to": apply});
            let body = super::typed::<hcloud::models::CreateFirewallRequest>(body)?;
            let v = ops.post("/firewalls", body).await?;
            Ok(id_of(&v["firewall"]))
        })
    },
    converge: |ops, cur, d, labels| Box::pin(converge(ops, cur, d, labels)),
    delete: |ops, cur| {
        Box::pin(async move {
            let id = id_of(cur);
            let applied: Vec<Value> = cur["applied_to"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| body_of(&apply_of(a)))
                .collect();
            if !applied.is_empty() {
                ops.post(
                    &format!("/firewalls/{id}/actions/remove_from_resources"),
                    json!({"remove_from": applied}),
                )
                .await?;
            }
            ops.delete(&format!("/firewalls/{id}")).await
        })
    },
};
