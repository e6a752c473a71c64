//! `pfsense_firewall_alias`: a firewall alias of hosts, networks or ports
//! (`/firewall/alias`, applied with `/firewall/apply`), keyed by its name.

use cairn_core::kit::Found;
use cairn_core::{FieldError, Marker, Resource, Schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::single::{Single, single_kind};
use super::values::AliasType;
use super::{descr_with_marker, split_marker};
use crate::client::Subsystem;
use crate::wire::{self, Indexed};

/// A firewall alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FirewallAlias {
    /// Unique name (the key); letters, digits and `_` only.
    pub name: String,
    /// `host`, `network` or `port`.
    #[serde(rename = "type")]
    pub kind: AliasType,
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
        for (i, a) in self.address.iter().enumerate() {
            let ok = match self.kind {
                AliasType::Network => a.split_once('/').is_some_and(|(ip, len)| {
                    ip.parse::<std::net::IpAddr>().is_ok()
                        && len.parse::<u8>().is_ok_and(|l| l <= 128)
                }),
                AliasType::Port => a.split(':').all(|p| p.parse::<u16>().is_ok_and(|p| p > 0)),
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

/// `/firewall/alias` as the API sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiAlias {
    #[serde(default, deserialize_with = "wire::opt_num")]
    id: Option<usize>,
    name: String,
    #[serde(rename = "type")]
    kind: AliasType,
    #[serde(default, deserialize_with = "wire::words")]
    address: Vec<String>,
    #[serde(default)]
    descr: String,
}

impl Indexed for ApiAlias {
    fn id(&self) -> Option<usize> {
        self.id
    }
    fn key(&self) -> String {
        self.name.clone()
    }
}

/// The body of a write.
#[derive(Debug, Serialize)]
struct AliasBody<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: AliasType,
    address: &'a [String],
    descr: String,
}

/// The `pfsense_firewall_alias` kind.
pub struct FirewallAliases;

impl Single for FirewallAliases {
    type Spec = FirewallAlias;
    type Api = ApiAlias;
    type Observed = FirewallAlias;

    const PLURAL: &'static str = "/firewall/aliases";
    const SINGULAR: &'static str = "/firewall/alias";
    const LOOKUP: Option<&'static str> = Some("name");
    const SUBSYSTEM: Subsystem = Subsystem::Firewall;

    fn observed(api: ApiAlias) -> Found<FirewallAlias> {
        let (descr, marker) = split_marker(&api.descr);
        let value = FirewallAlias {
            name: api.name,
            kind: api.kind,
            address: api.address,
            descr,
        };
        Found::new(value.name.clone(), value, marker)
    }

    fn body(spec: &FirewallAlias, marker: &Marker) -> Value {
        wire::body(&AliasBody {
            name: &spec.name,
            kind: spec.kind,
            address: &spec.address,
            descr: descr_with_marker(&spec.descr, marker),
        })
    }

    fn example() -> FirewallAlias {
        FirewallAlias {
            name: "k8s_masters".into(),
            kind: AliasType::Host,
            address: vec!["10.0.20.100".into()],
            descr: "control plane".into(),
        }
    }
}

single_kind!(FirewallAliases, FirewallAlias, FirewallAlias);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_entries_are_checked_against_the_type() {
        let a = FirewallAlias {
            name: "k8s nodes".into(),
            kind: AliasType::Network,
            address: vec!["10.0.20.0/24".into(), "10.0.20.1".into()],
            descr: String::new(),
        };
        let fields: Vec<String> = a.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "address[1]"]);
    }
}
