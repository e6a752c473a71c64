//! `pfsense_firewall_alias`: a firewall alias of hosts, networks or ports
//! (`/firewall/alias`, applied with `/firewall/apply`), keyed by its name.

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, NoStep, Op, Query};
use cairn_core::{FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::values::AliasType;
use super::{descr_with_marker, split_marker};
use crate::client::Subsystem;
use crate::context::{PfCtx, PfError};
use crate::wire::{self, Indexed, WithId};

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

const PLURAL: &str = "/firewall/aliases";
const SINGULAR: &str = "/firewall/alias";

/// `/firewall/alias` as the API sends it.
#[derive(Debug, Deserialize)]
struct ApiAlias {
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

impl ApiAlias {
    fn observed(self) -> Found<FirewallAlias> {
        let (descr, marker) = split_marker(&self.descr);
        let value = FirewallAlias {
            name: self.name,
            kind: self.kind,
            address: self.address,
            descr,
        };
        Found::new(value.name.clone(), value, marker)
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

async fn list(ctx: &PfCtx) -> Result<Vec<Found<FirewallAlias>>, PfError> {
    let items = ctx.client.list(PLURAL, &[]).await?;
    Ok(wire::decode_all::<ApiAlias>(PLURAL, items)
        .into_iter()
        .map(ApiAlias::observed)
        .collect())
}

/// The `pfsense_firewall_alias` kind.
pub struct FirewallAliases;

#[async_trait]
impl Kind<PfCtx> for FirewallAliases {
    type Spec = FirewallAlias;
    type Observed = FirewallAlias;
    type Step = NoStep;

    async fn observe(
        &self,
        ctx: &PfCtx,
        q: Query<'_>,
    ) -> Result<Vec<Found<FirewallAlias>>, PfError> {
        Ok(super::wanted(list(ctx).await?, q))
    }

    async fn create(
        &self,
        ctx: &PfCtx,
        spec: &FirewallAlias,
        op: Op<'_, NoStep>,
    ) -> Result<FirewallAlias, PfError> {
        write(ctx, spec, &op).await
    }

    async fn update(
        &self,
        ctx: &PfCtx,
        _prior: &FirewallAlias,
        spec: &FirewallAlias,
        op: Op<'_, NoStep>,
    ) -> Result<FirewallAlias, PfError> {
        write(ctx, spec, &op).await
    }

    async fn delete(
        &self,
        ctx: &PfCtx,
        _prior: &FirewallAlias,
        op: Op<'_, NoStep>,
    ) -> Result<(), PfError> {
        let filter = [("name", op.key.to_string())];
        let what = (PLURAL, SINGULAR);
        wire::delete_by_key::<ApiAlias>(&ctx.client, what, &filter, op.key, Subsystem::Firewall)
            .await?;
        Ok(())
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

/// Creates or patches the alias (looked up by name first), applies, observes it.
async fn write(
    ctx: &PfCtx,
    spec: &FirewallAlias,
    op: &Op<'_, NoStep>,
) -> Result<FirewallAlias, PfError> {
    let filter = [("name", op.key.to_string())];
    let body = AliasBody {
        name: &spec.name,
        kind: spec.kind,
        address: &spec.address,
        descr: descr_with_marker(&spec.descr, op.marker),
    };
    match wire::find::<ApiAlias>(&ctx.client, PLURAL, &filter, op.key).await? {
        Some((id, _)) => {
            let b = WithId {
                id,
                parent_id: None,
                body: &body,
            };
            ctx.client.patch(SINGULAR, &wire::body(&b)).await?;
        }
        None => {
            ctx.client.post(SINGULAR, &wire::body(&body)).await?;
        }
    }
    ctx.client.apply(Subsystem::Firewall).await?;
    super::written(list(ctx).await?, FirewallAlias::KIND, op.key)
}

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
