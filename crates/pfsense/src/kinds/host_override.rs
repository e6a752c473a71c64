//! `pfsense_dns_host_override`: a DNS Resolver host override
//! (`/services/dns_resolver/host_override`), keyed by `host.domain`.

use std::net::Ipv4Addr;

use cairn_core::{Field, FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A DNS Resolver host override: `host.domain` resolves to `ip`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsHostOverride {
    /// The host part, e.g. `k8s-apiserver`.
    pub host: String,
    /// The domain, e.g. `home.arpa`.
    pub domain: String,
    /// The addresses it resolves to (often a reference to a VIP's address).
    pub ip: Vec<Field<Ipv4Addr>>,
    /// Description (the ownership marker is appended remotely).
    #[serde(default)]
    pub descr: String,
}

impl Resource for DnsHostOverride {
    const KIND: &'static str = "pfsense_dns_host_override";
    const PROVIDER: &'static str = super::PROVIDER;

    fn key(&self) -> String {
        format!("{}.{}", self.host, self.domain)
    }

    fn schema() -> Schema {
        Schema {
            replace: &["host", "domain"],
            // Not `unordered`: the engine's unordered-list diff compares `$ref` markers
            // unresolved, so a VIP reference would always show a change. pfSense keeps the
            // order anyway.
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let label_ok = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
        if !label_ok(&self.host) {
            errs.push(FieldError::new(
                "host",
                format!("{:?} is not a valid host name", self.host),
            ));
        }
        if !label_ok(&self.domain) {
            errs.push(FieldError::new(
                "domain",
                format!("{:?} is not a valid domain", self.domain),
            ));
        }
        if self.ip.is_empty() {
            errs.push(FieldError::new("ip", "needs at least one address"));
        }
        errs
    }
}

/// Spec value → API body.
pub(crate) fn to_api(spec: &Value, descr: String) -> Value {
    json!({"host": spec["host"], "domain": spec["domain"], "ip": spec["ip"], "descr": descr,
           "aliases": []})
}

/// API object → (key, spec value, descr with marker).
pub(crate) fn from_api(obj: &Value) -> (String, Value, String) {
    let host = obj["host"].as_str().unwrap_or("");
    let domain = obj["domain"].as_str().unwrap_or("");
    let ip = match &obj["ip"] {
        Value::Array(a) => Value::Array(a.clone()),
        Value::String(s) => json!(s.split(',').map(str::trim).collect::<Vec<_>>()),
        _ => json!([]),
    };
    (
        format!("{host}.{domain}"),
        json!({"host": host, "domain": domain, "ip": ip}),
        obj["descr"].as_str().unwrap_or("").to_string(),
    )
}
