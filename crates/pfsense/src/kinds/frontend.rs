//! `pfsense_haproxy_frontend`: a HAProxy frontend (`/services/haproxy/frontend`) bound to
//! addresses on virtual IPs, forwarding to a default backend pool; keyed by its name.

use std::net::Ipv4Addr;

use cairn_core::{AttrRef, Field, FieldError, Handle, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A HAProxy frontend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaproxyFrontend {
    /// Unique name (the key).
    pub name: String,
    /// Description (the ownership marker is appended remotely).
    #[serde(default)]
    pub descr: String,
    /// `active` or `disabled`.
    #[serde(default = "active")]
    pub status: String,
    /// `tcp`, `http` or `https` (SSL offloading).
    #[serde(rename = "type", default = "tcp")]
    pub kind: String,
    /// Where it listens: usually a VIP's address (a reference) and a port.
    pub addresses: Vec<FrontendAddress>,
    /// The default backend pool (usually a reference to a backend's name).
    pub default_backend: Field<String>,
    /// Client timeout in milliseconds.
    #[serde(default = "thirty_s")]
    pub client_timeout: u32,
}

/// One bind address of a frontend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontendAddress {
    /// The address (a VIP's, usually by reference).
    pub address: Field<Ipv4Addr>,
    /// The port.
    pub port: u16,
    /// TLS offloading on this address.
    #[serde(default)]
    pub ssl: bool,
}

fn active() -> String {
    "active".into()
}
fn tcp() -> String {
    "tcp".into()
}
fn thirty_s() -> u32 {
    30000
}

impl HaproxyFrontend {
    /// A TCP frontend on `address:port` forwarding to `backend`.
    pub fn tcp(
        name: &str,
        address: impl Into<Field<Ipv4Addr>>,
        port: u16,
        backend: impl Into<Field<String>>,
    ) -> Self {
        HaproxyFrontend {
            name: name.into(),
            descr: String::new(),
            status: "active".into(),
            kind: "tcp".into(),
            addresses: vec![FrontendAddress {
                address: address.into(),
                port,
                ssl: false,
            }],
            default_backend: backend.into(),
            client_timeout: 30000,
        }
    }
}

impl Resource for HaproxyFrontend {
    const KIND: &'static str = "pfsense_haproxy_frontend";
    const PROVIDER: &'static str = super::PROVIDER;

    fn key(&self) -> String {
        self.name.clone()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["name"],
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
        if !["tcp", "http", "https"].contains(&self.kind.as_str()) {
            errs.push(FieldError::new(
                "type",
                format!("unknown type {:?}: expected tcp, http or https", self.kind),
            ));
        }
        if !["active", "disabled"].contains(&self.status.as_str()) {
            errs.push(FieldError::new("status", "must be `active` or `disabled`"));
        }
        if self.addresses.is_empty() {
            errs.push(FieldError::new(
                "addresses",
                "needs at least one bind address",
            ));
        }
        for (i, a) in self.addresses.iter().enumerate() {
            if a.port == 0 {
                errs.push(FieldError::new(
                    format!("addresses[{i}].port"),
                    "must be between 1 and 65535",
                ));
            }
        }
        if matches!(&self.default_backend, Field::Known(b) if b.is_empty()) {
            errs.push(FieldError::new("default_backend", "is required"));
        }
        errs
    }
}

/// Typed references to a declared frontend.
pub trait HaproxyFrontendRefs {
    /// The frontend's name.
    fn name(&self) -> AttrRef<String>;
}

impl HaproxyFrontendRefs for Handle<HaproxyFrontend> {
    /// The frontend's name.
    fn name(&self) -> AttrRef<String> {
        self.attr("name")
    }
}

/// Spec value → API body (nested `a_extaddr` included).
pub(crate) fn to_api(spec: &Value, descr: String) -> Value {
    let addrs: Vec<Value> = spec["addresses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| {
            json!({"extaddr": "custom", "extaddr_custom": a["address"],
                   "extaddr_port": a["port"].to_string(), "extaddr_ssl": a["ssl"]})
        })
        .collect();
    json!({
        "name": spec["name"], "descr": descr, "status": spec["status"], "type": spec["type"],
        "a_extaddr": addrs, "backend_serverpool": spec["default_backend"],
        "client_timeout": spec["client_timeout"],
    })
}

/// API object → (key, spec value, descr with marker).
pub(crate) fn from_api(obj: &Value) -> (String, Value, String) {
    let addrs: Vec<Value> = obj["a_extaddr"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let address = match a["extaddr"].as_str() {
                Some("custom") => a["extaddr_custom"].clone(),
                Some("localhost_ipv4") => json!("127.0.0.1"),
                Some("any_ipv4") => json!("0.0.0.0"),
                other => json!(other),
            };
            let port = match &a["extaddr_port"] {
                Value::String(s) => s.parse::<u64>().map_or(Value::Null, |p| json!(p)),
                other => other.clone(),
            };
            json!({"address": address, "port": port,
                   "ssl": a["extaddr_ssl"].as_bool().unwrap_or(false)})
        })
        .collect();
    let name = obj["name"].as_str().unwrap_or("").to_string();
    let timeout = match &obj["client_timeout"] {
        Value::String(s) => s.parse::<u64>().map_or(Value::Null, |p| json!(p)),
        other => other.clone(),
    };
    let v = json!({
        "name": name, "status": obj["status"], "type": obj["type"], "addresses": addrs,
        "default_backend": obj["backend_serverpool"], "client_timeout": timeout,
    });
    (name, v, obj["descr"].as_str().unwrap_or("").to_string())
}
