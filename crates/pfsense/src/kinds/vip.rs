//! `pfsense_virtual_ip`: an IP alias or CARP virtual IP (`/firewall/virtual_ip`), keyed by
//! its address.

use std::net::Ipv4Addr;

use cairn_core::kit::Found;
use cairn_core::{FieldError, Marker, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::single::{Single, single_kind};
use super::values::VipMode;
use super::{descr_with_marker, split_marker};
use crate::client::Subsystem;
use crate::wire::{self, Indexed};

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
    pub mode: VipMode,
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
fn default_mode() -> VipMode {
    VipMode::IpAlias
}

impl VirtualIp {
    /// An IP alias on `interface`.
    pub fn ipalias(address: Ipv4Addr, prefix: u8, interface: &str, descr: &str) -> Self {
        VirtualIp {
            address,
            prefix,
            mode: VipMode::IpAlias,
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
            attributes: Self::ATTRIBUTES,
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if self.prefix == 0 || self.prefix > 32 {
            errs.push(FieldError::new("prefix", "must be between 1 and 32"));
        }
        if self.interface.is_empty() {
            errs.push(FieldError::new("interface", "is required (e.g. `lan`)"));
        }
        if self.mode == VipMode::Carp && (self.vhid.is_none() || self.password.is_none()) {
            errs.push(FieldError::new("vhid", "CARP needs `vhid` and `password`"));
        }
        errs
    }
}

cairn_core::attributes! {
    /// Typed references to a declared virtual IP.
    pub trait VirtualIpRefs for VirtualIp {
        /// The VIP's address, e.g. for a frontend bind or a DNS override. (Named `ip`, not
        /// `address`, because [`cairn_core::NodeRef::address`] is the node's stack address.)
        fn ip -> Ipv4Addr = "address";
    }
}

/// A virtual IP as observed: the spec's shape, with the address as the API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualIpObserved {
    /// The address (the key).
    pub address: String,
    /// Prefix length.
    pub prefix: u8,
    /// The mode.
    pub mode: VipMode,
    /// The interface.
    pub interface: String,
    /// Description without the marker.
    pub descr: String,
    /// CARP VHID group (CARP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhid: Option<u32>,
    /// CARP password (CARP only; sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `/firewall/virtual_ip` as the API sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiVip {
    #[serde(default, deserialize_with = "wire::opt_num")]
    id: Option<usize>,
    #[serde(default)]
    subnet: String,
    #[serde(default, deserialize_with = "wire::opt_num")]
    subnet_bits: Option<u8>,
    mode: VipMode,
    #[serde(default)]
    interface: String,
    #[serde(default)]
    descr: String,
    #[serde(default, deserialize_with = "wire::opt_num")]
    vhid: Option<u32>,
    #[serde(default)]
    password: Option<String>,
}

impl Indexed for ApiVip {
    fn id(&self) -> Option<usize> {
        self.id
    }
    fn key(&self) -> String {
        self.subnet.clone()
    }
}

/// The body of a write.
#[derive(Debug, Serialize)]
struct VipBody<'a> {
    mode: VipMode,
    interface: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    subnet: String,
    subnet_bits: u8,
    descr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    vhid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<&'a str>,
}

/// The `pfsense_virtual_ip` kind.
pub struct VirtualIps;

impl Single for VirtualIps {
    type Spec = VirtualIp;
    type Api = ApiVip;
    type Observed = VirtualIpObserved;

    const PLURAL: &'static str = "/firewall/virtual_ips";
    const SINGULAR: &'static str = "/firewall/virtual_ip";
    const LOOKUP: Option<&'static str> = Some("subnet");
    const SUBSYSTEM: Subsystem = Subsystem::VirtualIp;

    fn observed(api: ApiVip) -> Found<VirtualIpObserved> {
        let (descr, marker) = split_marker(&api.descr);
        let carp = api.mode == VipMode::Carp;
        let value = VirtualIpObserved {
            address: api.subnet.clone(),
            prefix: api.subnet_bits.unwrap_or(32),
            mode: api.mode,
            interface: api.interface,
            descr,
            vhid: api.vhid.filter(|_| carp),
            password: api.password.filter(|_| carp),
        };
        Found::new(api.subnet, value, marker)
    }

    fn body(spec: &VirtualIp, marker: &Marker) -> Value {
        let carp = spec.mode == VipMode::Carp;
        wire::body(&VipBody {
            mode: spec.mode,
            interface: &spec.interface,
            kind: "single",
            subnet: spec.address.to_string(),
            subnet_bits: spec.prefix,
            descr: descr_with_marker(&spec.descr, marker),
            vhid: spec.vhid.filter(|_| carp),
            password: spec.password.as_deref().filter(|_| carp),
        })
    }

    fn example() -> VirtualIp {
        VirtualIp {
            address: Ipv4Addr::new(10, 0, 20, 99),
            prefix: 24,
            mode: VipMode::Carp,
            interface: "lan".into(),
            descr: "k8s VIP".into(),
            vhid: Some(7),
            password: Some("secret".into()),
        }
    }
}

single_kind!(VirtualIps, VirtualIp, VirtualIpObserved);
