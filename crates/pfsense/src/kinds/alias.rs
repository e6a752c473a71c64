//! `pfsense_firewall_alias`: a firewall alias of hosts, networks or ports
//! (`/firewall/alias`, applied with `/firewall/apply`), keyed by its name.

use cairn_core::{FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A firewall alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirewallAlias {
    /// Unique name (the key); letters, digits and `_` only.
    pub name: String,
    /// `host`, `network` or `port`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The entries: IPs/FQDNs, CIDRs or ports.
    pub address: Vec<String>,
    /// Description (the ownership marker is appended remotely).
    #[serde(default)]
    pub descr: String,
}

impl Resource for FirewallAlias {
    const KIND: &'static str = "pfsense_firewall_alias";
    const PROVIDER: &'static str = super::PROVIDER;

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["name"],
            unordered: &["address"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            errs.push(FieldError::new(
                "name",
                "must be letters, digits and `_` only",
            ));
        }
        if !["host", "network", "port"].contains(&self.kind.as_str()) {
            errs.push(FieldError::new(
                "type",
                format!(
                    "unknown alias type {:?}: expected host, network or port",
                    self.kind
                ),
            ));
        }
        for (i, a) in self.address.iter().enumerate() {
            let ok = match self.kind.as_str() {
                "network" => a.split_once('/').is_some_and(|(ip, len)| {
                    ip.parse::<std::net::IpAddr>().is_ok()
                        && len.parse::<u8>().is_ok_and(|l| l <= 128)
                }),
                "port" => a.split(':').all(|p| p.parse::<u16>().is_ok_and(|p| p > 0)),
                _ => !a.is_empty(),
            };
            if !ok {
                errs.push(FieldError::new(
                    format!("address[{i}]"),
                    format!("{a:?} is not a valid {} entry", self.kind),
                ));
            }
        }
        errs
    }
}

/// Spec value → API body.
pub(crate) fn to_api(spec: &Value, descr: String) -> Value {
    json!({"name": spec["name"], "type": spec["type"], "address": spec["address"], "descr": descr})
}

/// API object → (key, spec value, descr with marker).
pub(crate) fn from_api(obj: &Value) -> (String, Value, String) {
    let name = obj["name"].as_str().unwrap_or("").to_string();
    let address = match &obj["address"] {
        Value::Array(a) => Value::Array(a.clone()),
        Value::String(s) => json!(s.split_whitespace().collect::<Vec<_>>()),
        _ => json!([]),
    };
    (
        name.clone(),
        json!({"name": name, "type": obj["type"], "address": address}),
        obj["descr"].as_str().unwrap_or("").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_entries_are_checked_against_the_type() {
        let a = FirewallAlias {
            name: "k8s nodes".into(),
            kind: "network".into(),
            address: vec!["10.0.20.0/24".into(), "10.0.20.1".into()],
            descr: String::new(),
        };
        let fields: Vec<String> = a.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "address[1]"]);
    }
}
