//! `pfsense_dns_host_override`: a DNS Resolver host override
//! (`/services/dns_resolver/host_override`), keyed by `host.domain`.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, NoStep, Op, Query};
use cairn_core::{Field, FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::{descr_with_marker, split_marker};
use crate::client::Subsystem;
use crate::context::{PfCtx, PfError};
use crate::wire::{self, Indexed, WithId};

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

const PLURAL: &str = "/services/dns_resolver/host_overrides";
const SINGULAR: &str = "/services/dns_resolver/host_override";

/// `/services/dns_resolver/host_override` as the API sends it.
#[derive(Debug, Deserialize)]
struct ApiOverride {
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

impl ApiOverride {
    fn observed(self) -> Found<DnsHostOverrideObserved> {
        let (descr, marker) = split_marker(&self.descr);
        let key = self.key();
        // The VIPs it points at are deleted after it.
        let uses = self
            .ip
            .iter()
            .map(|ip| (super::VirtualIp::KIND.to_string(), ip.clone()))
            .collect();
        let value = DnsHostOverrideObserved {
            host: self.host,
            domain: self.domain,
            ip: self.ip,
            descr,
        };
        Found {
            uses,
            ..Found::new(key, value, marker)
        }
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

async fn list(ctx: &PfCtx) -> Result<Vec<Found<DnsHostOverrideObserved>>, PfError> {
    let items = ctx.client.list(PLURAL, &[]).await?;
    Ok(wire::decode_all::<ApiOverride>(PLURAL, items)
        .into_iter()
        .map(ApiOverride::observed)
        .collect())
}

/// The `pfsense_dns_host_override` kind.
pub struct DnsHostOverrides;

#[async_trait]
impl Kind<PfCtx> for DnsHostOverrides {
    type Spec = DnsHostOverride;
    type Observed = DnsHostOverrideObserved;
    type Step = NoStep;

    async fn observe(
        &self,
        ctx: &PfCtx,
        q: Query<'_>,
    ) -> Result<Vec<Found<DnsHostOverrideObserved>>, PfError> {
        Ok(super::wanted(list(ctx).await?, q))
    }

    async fn create(
        &self,
        ctx: &PfCtx,
        spec: &DnsHostOverride,
        op: Op<'_, NoStep>,
    ) -> Result<DnsHostOverrideObserved, PfError> {
        write(ctx, spec, &op).await
    }

    async fn update(
        &self,
        ctx: &PfCtx,
        _prior: &DnsHostOverrideObserved,
        spec: &DnsHostOverride,
        op: Op<'_, NoStep>,
    ) -> Result<DnsHostOverrideObserved, PfError> {
        write(ctx, spec, &op).await
    }

    async fn delete(
        &self,
        ctx: &PfCtx,
        _prior: &DnsHostOverrideObserved,
        op: Op<'_, NoStep>,
    ) -> Result<(), PfError> {
        let what = (PLURAL, SINGULAR);
        wire::delete_by_key::<ApiOverride>(&ctx.client, what, &[], op.key, Subsystem::DnsResolver)
            .await?;
        Ok(())
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

/// Creates or patches the override (looked up by `host.domain` first), applies, observes it.
async fn write(
    ctx: &PfCtx,
    spec: &DnsHostOverride,
    op: &Op<'_, NoStep>,
) -> Result<DnsHostOverrideObserved, PfError> {
    let body = OverrideBody {
        host: &spec.host,
        domain: &spec.domain,
        ip: &spec.ip,
        descr: descr_with_marker(&spec.descr, op.marker),
        aliases: Vec::new(),
    };
    match wire::find::<ApiOverride>(&ctx.client, PLURAL, &[], op.key).await? {
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
    ctx.client.apply(Subsystem::DnsResolver).await?;
    super::written(list(ctx).await?, DnsHostOverride::KIND, op.key)
}
