//! `pfsense_virtual_ip`: an IP alias or CARP virtual IP (`/firewall/virtual_ip`), keyed by
//! its address.

use std::net::Ipv4Addr;

use cairn_core::{AttrRef, FieldError, Handle, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A virtual IP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualIp {
    /// The address (the key).
    pub address: Ipv4Addr,
    /// Prefix length of the interface subnet, e.g. 24.
    #[serde(default = "default_prefix")]
    pub prefix: u8,
    /// `ipalias` or `carp` (also `proxyarp`, `other`).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// The interface, e.g. `lan` or `opt1`.
    pub interface: String,
    /// Description (the ownership marker is appended remotely, never shown here).
    #[serde(default)]
    pub descr: String,
    /// CARP VHID group (CARP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhid: Option<u32>,
    /// CARP password (CARP only; sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

fn default_prefix() -> u8 {
    32
}
fn default_mode() -> String {
    "ipalias".into()
}

impl VirtualIp {
    /// An IP alias on `interface`.
    pub fn ipalias(address: Ipv4Addr, prefix: u8, interface: &str, descr: &str) -> Self {
        VirtualIp {
            address,
            prefix,
            mode: "ipalias".into(),
            interface: interface.into(),
            descr: descr.into(),
            vhid: None,
            password: None,
        }
    }
}

impl Resource for VirtualIp {
    const KIND: &'static str = "pfsense_virtual_ip";
    const PROVIDER: &'static str = super::PROVIDER;

    fn key(&self) -> String {
        self.address.to_string()
    }

    fn schema() -> Schema {
        Schema {
            replace: &["address", "mode", "interface"],
            sensitive: &["password"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if !["ipalias", "carp", "proxyarp", "other"].contains(&self.mode.as_str()) {
            errs.push(FieldError::new(
                "mode",
                format!(
                    "unknown mode {:?}: expected ipalias, carp, proxyarp or other",
                    self.mode
                ),
            ));
        }
        if self.prefix == 0 || self.prefix > 32 {
            errs.push(FieldError::new("prefix", "must be between 1 and 32"));
        }
        if self.interface.is_empty() {
            errs.push(FieldError::new("interface", "is required (e.g. `lan`)"));
        }
        if self.mode == "carp" && (self.vhid.is_none() || self.password.is_none()) {
            errs.push(FieldError::new("vhid", "CARP needs `vhid` and `password`"));
        }
        errs
    }
}

/// Typed references to a declared virtual IP.
pub trait VirtualIpRefs {
    /// The VIP's address, e.g. for a frontend bind or a DNS override. (Named `ip`, not
    /// `address`, because [`cairn_core::NodeRef::address`] is the node's stack address.)
    fn ip(&self) -> AttrRef<Ipv4Addr>;
}

impl VirtualIpRefs for Handle<VirtualIp> {
    /// The VIP's address, e.g. for a frontend bind or a DNS override. (Named `ip`, not
    /// `address`, because [`cairn_core::NodeRef::address`] is the node's stack address.)
    fn ip(&self) -> AttrRef<Ipv4Addr> {
        self.attr("address")
    }
}

/// Spec value → API body (without marker handling).
pub(crate) fn to_api(spec: &Value, descr: String) -> Value {
    let mut body = json!({
        "mode": spec["mode"], "interface": spec["interface"], "type": "single",
        "subnet": spec["address"], "subnet_bits": spec["prefix"], "descr": descr,
    });
    if spec["mode"] == "carp" {
        body["vhid"] = spec["vhid"].clone();
        body["password"] = spec["password"].clone();
    }
    body
}

/// API object → (key, spec value, descr with marker).
pub(crate) fn from_api(obj: &Value) -> (String, Value, String) {
    let address = obj["subnet"].as_str().unwrap_or("").to_string();
    let mut v = json!({
        "address": address,
        "prefix": obj["subnet_bits"].as_u64().or_else(|| obj["subnet_bits"].as_str().and_then(|s| s.parse().ok())).unwrap_or(32),
        "mode": obj["mode"], "interface": obj["interface"],
    });
    if obj["mode"] == "carp" {
        v["vhid"] = obj["vhid"].clone();
        v["password"] = obj["password"].clone();
    }
    (address, v, obj["descr"].as_str().unwrap_or("").to_string())
}
