//! `pfsense_haproxy_frontend`: a HAProxy frontend (`/services/haproxy/frontend`) bound to
//! addresses on virtual IPs, forwarding to a default backend pool; keyed by its name.

use std::net::Ipv4Addr;

use cairn_core::kit::Found;
use cairn_core::{Field, FieldError, Marker, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::single::{Single, single_kind};
use super::values::{FrontendMode, FrontendStatus};
use super::{descr_with_marker, split_marker};
use crate::client::Subsystem;
use crate::wire::{self, Indexed};

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
    pub status: FrontendStatus,
    /// `tcp`, `http` or `https` (SSL offloading).
    #[serde(rename = "type", default = "tcp")]
    pub kind: FrontendMode,
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

fn active() -> FrontendStatus {
    FrontendStatus::Active
}
fn tcp() -> FrontendMode {
    FrontendMode::Tcp
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
            status: FrontendStatus::Active,
            kind: FrontendMode::Tcp,
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
            attributes: Self::ATTRIBUTES,
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

cairn_core::attributes! {
    /// Typed references to a declared frontend.
    pub trait HaproxyFrontendRefs for HaproxyFrontend {
        /// The frontend's name.
        fn name -> String = "name";
    }
}

/// A frontend as observed: bind addresses and the default backend as the API reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HaproxyFrontendObserved {
    /// Name (the key).
    pub name: String,
    /// Description without the marker.
    pub descr: String,
    /// Status.
    pub status: FrontendStatus,
    /// Mode.
    #[serde(rename = "type")]
    pub kind: FrontendMode,
    /// Bind addresses.
    pub addresses: Vec<FrontendAddressObserved>,
    /// The default backend's name.
    pub default_backend: String,
    /// Client timeout in milliseconds.
    pub client_timeout: Option<u32>,
}

/// One observed bind address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontendAddressObserved {
    /// The address (`0.0.0.0` for any IPv4, `127.0.0.1` for localhost).
    pub address: String,
    /// The port.
    pub port: Option<u16>,
    /// TLS offloading.
    pub ssl: bool,
}

/// `/services/haproxy/frontend` as the API sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiFrontend {
    #[serde(default, deserialize_with = "wire::opt_num")]
    id: Option<usize>,
    name: String,
    #[serde(default)]
    descr: String,
    #[serde(default = "active")]
    status: FrontendStatus,
    #[serde(rename = "type")]
    kind: FrontendMode,
    #[serde(default)]
    a_extaddr: Vec<ApiAddress>,
    #[serde(default)]
    backend_serverpool: String,
    #[serde(default, deserialize_with = "wire::opt_num")]
    client_timeout: Option<u32>,
}

/// One `a_extaddr` item, as sent and as written.
#[derive(Debug, Serialize, Deserialize)]
struct ApiAddress {
    #[serde(default)]
    extaddr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extaddr_custom: Option<String>,
    #[serde(default, deserialize_with = "wire::opt_num")]
    extaddr_port: Option<u16>,
    #[serde(default, deserialize_with = "wire::flag")]
    extaddr_ssl: bool,
}

impl Indexed for ApiFrontend {
    fn id(&self) -> Option<usize> {
        self.id
    }
    fn key(&self) -> String {
        self.name.clone()
    }
}

/// The body of a write (nested `a_extaddr` included).
#[derive(Debug, Serialize)]
struct FrontendBody<'a> {
    name: &'a str,
    descr: String,
    status: FrontendStatus,
    #[serde(rename = "type")]
    kind: FrontendMode,
    a_extaddr: Vec<AddressBody>,
    backend_serverpool: &'a Field<String>,
    client_timeout: u32,
}

/// One bind address as written (the port as a string, as the package stores it).
#[derive(Debug, Serialize)]
struct AddressBody {
    extaddr: &'static str,
    extaddr_custom: Field<Ipv4Addr>,
    extaddr_port: String,
    extaddr_ssl: bool,
}

/// The `pfsense_haproxy_frontend` kind.
pub struct HaproxyFrontends;

impl Single for HaproxyFrontends {
    type Spec = HaproxyFrontend;
    type Api = ApiFrontend;
    type Observed = HaproxyFrontendObserved;

    const PLURAL: &'static str = "/services/haproxy/frontends";
    const SINGULAR: &'static str = "/services/haproxy/frontend";
    const LOOKUP: Option<&'static str> = Some("name");
    const SUBSYSTEM: Subsystem = Subsystem::Haproxy;

    fn observed(api: ApiFrontend) -> Found<HaproxyFrontendObserved> {
        let (descr, marker) = split_marker(&api.descr);
        let addresses: Vec<FrontendAddressObserved> = api
            .a_extaddr
            .into_iter()
            .map(|a| FrontendAddressObserved {
                address: match a.extaddr.as_str() {
                    "custom" => a.extaddr_custom.unwrap_or_default(),
                    "localhost_ipv4" => "127.0.0.1".into(),
                    "any_ipv4" => "0.0.0.0".into(),
                    other => other.to_string(),
                },
                port: a.extaddr_port,
                ssl: a.extaddr_ssl,
            })
            .collect();
        // Deleted after it: its default backend and the VIPs it binds.
        let mut uses = Vec::new();
        if !api.backend_serverpool.is_empty() {
            uses.push((
                super::HaproxyBackend::KIND.to_string(),
                api.backend_serverpool.clone(),
            ));
        }
        for a in &addresses {
            uses.push((super::VirtualIp::KIND.to_string(), a.address.clone()));
        }
        let value = HaproxyFrontendObserved {
            name: api.name,
            descr,
            status: api.status,
            kind: api.kind,
            addresses,
            default_backend: api.backend_serverpool,
            client_timeout: api.client_timeout,
        };
        Found {
            uses,
            ..Found::new(value.name.clone(), value, marker)
        }
    }

    fn body(spec: &HaproxyFrontend, marker: &Marker) -> Value {
        wire::body(&FrontendBody {
            name: &spec.name,
            descr: descr_with_marker(&spec.descr, marker),
            status: spec.status,
            kind: spec.kind,
            a_extaddr: spec
                .addresses
                .iter()
                .map(|a| AddressBody {
                    extaddr: "custom",
                    extaddr_custom: a.address.clone(),
                    extaddr_port: a.port.to_string(),
                    extaddr_ssl: a.ssl,
                })
                .collect(),
            backend_serverpool: &spec.default_backend,
            client_timeout: spec.client_timeout,
        })
    }

    fn example() -> HaproxyFrontend {
        HaproxyFrontend {
            descr: "Kubernetes API".into(),
            ..HaproxyFrontend::tcp(
                "apiserver_proxy",
                Ipv4Addr::new(10, 0, 20, 99),
                6443,
                "apiserver_nodes",
            )
        }
    }
}

single_kind!(HaproxyFrontends, HaproxyFrontend, HaproxyFrontendObserved);
