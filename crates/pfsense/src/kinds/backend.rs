//! `pfsense_haproxy_backend`: a HAProxy backend pool (`/services/haproxy/backend`) with its
//! servers diffed as a keyed set (by `name`), keyed by the pool name — or, with
//! `servers: None`, with its servers managed one by one as
//! [`super::HaproxyPoolMember`]s.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use cairn_core::resource::KeyedList;
use cairn_core::{AttrRef, Field, FieldError, Handle, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Health check types the package knows.
pub const CHECK_TYPES: &[&str] = &[
    "none",
    "Basic",
    "HTTP",
    "LDAP",
    "MySQL",
    "PostgreSQL",
    "Redis",
    "SMTP",
    "ESMTP",
    "SSL",
];
const BALANCES: &[&str] = &["", "roundrobin", "static-rr", "leastconn", "source", "uri"];
const METHODS: &[&str] = &["OPTIONS", "HEAD", "GET", "POST", "PUT", "DELETE", "TRACE"];
/// Server statuses the package knows.
pub(crate) const STATUSES: &[&str] = &["active", "backup", "disabled", "inactive"];

/// A HAProxy backend pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaproxyBackend {
    /// Unique pool name (the key); HAProxy sees it as `<name>_ipvANY`.
    pub name: String,
    /// `roundrobin`, `static-rr`, `leastconn`, `source`, `uri` (or empty for HAProxy's default).
    #[serde(default = "roundrobin")]
    pub balance: String,
    /// Health check: `none`, `Basic` (TCP connect), `HTTP`, `SSL`, …
    #[serde(default = "none")]
    pub check_type: String,
    /// Check interval in milliseconds.
    #[serde(default)]
    pub checkinter: Option<u32>,
    /// HTTP check method (with `check_type: HTTP`).
    #[serde(default = "options")]
    pub httpcheck_method: String,
    /// HTTP check URI, e.g. `/readyz`.
    #[serde(default = "slash")]
    pub monitor_uri: String,
    /// Connect timeout in milliseconds.
    #[serde(default = "thirty_s")]
    pub connection_timeout: u32,
    /// Server timeout in milliseconds.
    #[serde(default = "thirty_s")]
    pub server_timeout: u32,
    /// Connection retries.
    #[serde(default)]
    pub retries: Option<u32>,
    /// Appended to every server line, e.g. `check-ssl verify none` for an HTTPS health
    /// check on a TCP passthrough pool.
    #[serde(default)]
    pub advanced: String,
    /// The servers, diffed by name. `None` means "managed elsewhere" (as
    /// `pfsense_haproxy_pool_member` resources): the pool's diff then ignores its servers,
    /// and a new pool is created without any. `Some(vec![])` means "no servers".
    #[serde(default)]
    pub servers: Option<Vec<BackendServer>>,
}

/// One server of a pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendServer {
    /// Unique within the pool.
    pub name: String,
    /// Its address (may reference another resource's IP).
    pub address: Field<Ipv4Addr>,
    /// Its port.
    pub port: u16,
    /// Load-balancing weight.
    #[serde(default = "one")]
    pub weight: u32,
    /// TLS towards the server (not needed for TCP passthrough).
    #[serde(default)]
    pub ssl: bool,
    /// `active`, `backup`, `disabled` or `inactive`.
    #[serde(default = "active")]
    pub status: String,
}

fn roundrobin() -> String {
    "roundrobin".into()
}
fn none() -> String {
    "none".into()
}
fn options() -> String {
    "OPTIONS".into()
}
fn slash() -> String {
    "/".into()
}
fn thirty_s() -> u32 {
    30000
}
fn one() -> u32 {
    1
}
fn active() -> String {
    "active".into()
}

impl BackendServer {
    /// An active server with weight 1.
    pub fn new(name: &str, address: impl Into<Field<Ipv4Addr>>, port: u16) -> Self {
        BackendServer {
            name: name.into(),
            address: address.into(),
            port,
            weight: 1,
            ssl: false,
            status: "active".into(),
        }
    }
}

impl HaproxyBackend {
    /// A TCP passthrough pool health-checked with HTTPS `GET <uri>` (`check-ssl verify none`),
    /// e.g. Kubernetes apiservers with `/readyz`.
    pub fn https_checked(name: &str, uri: &str, interval_ms: u32) -> Self {
        HaproxyBackend {
            name: name.into(),
            balance: "roundrobin".into(),
            check_type: "HTTP".into(),
            checkinter: Some(interval_ms),
            httpcheck_method: "GET".into(),
            monitor_uri: uri.into(),
            connection_timeout: 30000,
            server_timeout: 30000,
            retries: Some(3),
            advanced: "check-ssl verify none".into(),
            servers: Some(Vec::new()),
        }
    }

    /// The same pool with these inline servers.
    pub fn with_servers(mut self, servers: Vec<BackendServer>) -> Self {
        self.servers = Some(servers);
        self
    }

    /// The same pool with its servers managed as `pfsense_haproxy_pool_member` resources
    /// (`servers: None`).
    pub fn servers_managed_as_members(mut self) -> Self {
        self.servers = None;
        self
    }

    /// Whether servers are health-checked (so additions can be gated on their check).
    pub fn has_checks(spec: &Value) -> bool {
        !matches!(spec["check_type"].as_str(), None | Some("none") | Some(""))
    }
}

impl Resource for HaproxyBackend {
    const KIND: &'static str = "pfsense_haproxy_backend";
    const PROVIDER: &'static str = super::PROVIDER;

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["name"],
            keyed: &[KeyedList {
                path: "servers",
                key: &["name"],
            }],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if self.name.is_empty() || self.name.contains(char::is_whitespace) {
            errs.push(FieldError::new(
                "name",
                "must be a non-empty name without spaces",
            ));
        }
        if !BALANCES.contains(&self.balance.as_str()) {
            errs.push(FieldError::new(
                "balance",
                format!(
                    "unknown balance {:?}: expected one of {}",
                    self.balance,
                    BALANCES[1..].join(", ")
                ),
            ));
        }
        if !CHECK_TYPES.contains(&self.check_type.as_str()) {
            errs.push(FieldError::new(
                "check_type",
                format!(
                    "unknown check type {:?}: expected one of {}",
                    self.check_type,
                    CHECK_TYPES.join(", ")
                ),
            ));
        }
        if !METHODS.contains(&self.httpcheck_method.as_str()) {
            errs.push(FieldError::new(
                "httpcheck_method",
                format!("unknown HTTP method {:?}", self.httpcheck_method),
            ));
        }
        if self.check_type == "HTTP" && !self.monitor_uri.starts_with('/') {
            errs.push(FieldError::new("monitor_uri", "must start with `/`"));
        }
        if self.checkinter == Some(0) {
            errs.push(FieldError::new("checkinter", "must be at least 1 ms"));
        }
        let mut seen = BTreeSet::new();
        for (i, s) in self.servers.iter().flatten().enumerate() {
            if s.name.is_empty() {
                errs.push(FieldError::new(format!("servers[{i}].name"), "is required"));
            } else if !seen.insert(s.name.as_str()) {
                errs.push(FieldError::new(
                    format!("servers[{i}].name"),
                    format!("duplicate server name {:?} in pool {}", s.name, self.name),
                ));
            }
            if s.port == 0 {
                errs.push(FieldError::new(
                    format!("servers[{i}].port"),
                    format!("server {:?}: port must be between 1 and 65535", s.name),
                ));
            }
            if !STATUSES.contains(&s.status.as_str()) {
                errs.push(FieldError::new(
                    format!("servers[{i}].status"),
                    format!(
                        "unknown status {:?}: expected active, backup, disabled or inactive",
                        s.status
                    ),
                ));
            }
        }
        errs
    }
}

/// Typed references to a declared backend pool.
pub trait HaproxyBackendRefs {
    /// The pool's name, e.g. for a frontend's default backend.
    fn name(&self) -> AttrRef<String>;
}

impl HaproxyBackendRefs for Handle<HaproxyBackend> {
    /// The pool's name, e.g. for a frontend's default backend.
    fn name(&self) -> AttrRef<String> {
        self.attr("name")
    }
}

/// Spec value → API body of the backend itself (servers are written one by one).
pub(crate) fn to_api(spec: &Value, advanced_backend: String) -> Value {
    json!({
        "name": spec["name"], "balance": spec["balance"], "check_type": spec["check_type"],
        "checkinter": spec["checkinter"], "httpcheck_method": spec["httpcheck_method"],
        "monitor_uri": spec["monitor_uri"], "connection_timeout": spec["connection_timeout"],
        "server_timeout": spec["server_timeout"], "retries": spec["retries"],
        "advanced": spec["advanced"], "advanced_backend": advanced_backend,
    })
}

/// A server spec value → API body.
pub(crate) fn server_to_api(s: &Value, status: &str) -> Value {
    json!({
        "name": s["name"], "address": s["address"], "port": port_string(&s["port"]),
        "weight": s["weight"], "ssl": s["ssl"], "status": status,
    })
}

fn port_string(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        other => other.clone(),
    }
}

fn num(v: &Value) -> Value {
    match v {
        Value::String(s) if s.is_empty() => Value::Null,
        Value::String(s) => s.parse::<u64>().map_or(Value::Null, |n| json!(n)),
        other => other.clone(),
    }
}

/// API object → (key, spec value, advanced_backend text).
pub(crate) fn from_api(obj: &Value) -> (String, Value, String) {
    let servers: Vec<Value> = obj["servers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            json!({
                "name": s["name"], "address": s["address"], "port": num(&s["port"]),
                "weight": num(&s["weight"]), "ssl": s["ssl"].as_bool().unwrap_or(false),
                "status": s["status"],
            })
        })
        .collect();
    let name = obj["name"].as_str().unwrap_or("").to_string();
    let v = json!({
        "name": name, "balance": obj["balance"], "check_type": obj["check_type"],
        "checkinter": num(&obj["checkinter"]), "httpcheck_method": obj["httpcheck_method"],
        "monitor_uri": obj["monitor_uri"], "connection_timeout": num(&obj["connection_timeout"]),
        "server_timeout": num(&obj["server_timeout"]), "retries": num(&obj["retries"]),
        "advanced": obj["advanced"].as_str().unwrap_or(""), "servers": servers,
    });
    (
        name,
        v,
        obj["advanced_backend"].as_str().unwrap_or("").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_port_zero_duplicates_and_unknown_check_type() {
        let mut b = HaproxyBackend::https_checked("pool", "/readyz", 1000);
        b.check_type = "Telepathy".into();
        b.servers = Some(vec![
            BackendServer::new("a", Ipv4Addr::new(10, 0, 0, 1), 0),
            BackendServer::new("a", Ipv4Addr::new(10, 0, 0, 2), 443),
        ]);
        let fields: Vec<String> = b.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["check_type", "servers[0].port", "servers[1].name"]);
    }
}
