//! `pfsense_dns_host_override`: a DNS Resolver host override
//! (`/services/dns_resolver/host_override`), keyed by `host.domain`.

use std::net::Ipv4Addr;

use cairn_core::kit::Found;
use cairn_core::{Field, FieldError, Marker, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::single::{Single, single_kind};
use super::{descr_with_marker, split_marker};
use crate::client::Subsystem;
use crate::wire::{self, Indexed};

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

/// A host override as observed: the addresses as the API reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsHostOverrideObserved {
    /// The host part.
    pub host: String,
    /// The domain.
    pub domain: String,
    /// The addresses it resolves to.
    pub ip: Vec<String>,
    /// Description without the marker.
    pub descr: String,
}

/// `/services/dns_resolver/host_override` as the API sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiOverride {
    #[serde(default, deserialize_with = "wire::opt_num")]
    id: Option<usize>,
    #[serde(default)]
    host: String,
    #[serde(default)]
    domain: String,
    #[serde(default, deserialize_with = "wire::commas")]
    ip: Vec<String>,
    #[serde(default)]
    descr: String,
}

impl Indexed for ApiOverride {
    fn id(&self) -> Option<usize> {
        self.id
    }
    fn key(&self) -> String {
        format!("{}.{}", self.host, self.domain)
    }
}

/// The body of a write.
#[derive(Debug, Serialize)]
struct OverrideBody<'a> {
    host: &'a str,
    domain: &'a str,
    ip: &'a [Field<Ipv4Addr>],
    descr: String,
    aliases: Vec<String>,
}

/// The `pfsense_dns_host_override` kind.
pub struct DnsHostOverrides;

impl Single for DnsHostOverrides {
    type Spec = DnsHostOverride;
    type Api = ApiOverride;
    type Observed = DnsHostOverrideObserved;

    const PLURAL: &'static str = "/services/dns_resolver/host_overrides";
    const SINGULAR: &'static str = "/services/dns_resolver/host_override";
    // The key is `host.domain`, two fields: no one list filter narrows it.
    const LOOKUP: Option<&'static str> = None;
    const SUBSYSTEM: Subsystem = Subsystem::DnsResolver;

    fn observed(api: ApiOverride) -> Found<DnsHostOverrideObserved> {
        let (descr, marker) = split_marker(&api.descr);
        let key = api.key();
        // The VIPs it points at are deleted after it.
        let uses = api
            .ip
            .iter()
            .map(|ip| (super::VirtualIp::KIND.to_string(), ip.clone()))
            .collect();
        let value = DnsHostOverrideObserved {
            host: api.host,
            domain: api.domain,
            ip: api.ip,
            descr,
        };
        Found {
            uses,
            ..Found::new(key, value, marker)
        }
    }

    fn body(spec: &DnsHostOverride, marker: &Marker) -> Value {
        wire::body(&OverrideBody {
            host: &spec.host,
            domain: &spec.domain,
            ip: &spec.ip,
            descr: descr_with_marker(&spec.descr, marker),
            aliases: Vec::new(),
        })
    }

    fn example() -> DnsHostOverride {
        DnsHostOverride {
            host: "k8s-apiserver".into(),
            domain: "home.arpa".into(),
            ip: vec![Ipv4Addr::new(10, 0, 20, 99).into()],
            descr: "Kubernetes API".into(),
        }
    }
}

single_kind!(DnsHostOverrides, DnsHostOverride, DnsHostOverrideObserved);
