//! `pfsense_virtual_ip`: an IP alias or CARP virtual IP (`/firewall/virtual_ip`), keyed by
//! its address.

use std::net::Ipv4Addr;

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, NoStep, Op, Query};
use cairn_core::{AttrRef, FieldError, Handle, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::values::VipMode;
use super::{descr_with_marker, split_marker};
use crate::client::Subsystem;
use crate::context::{PfCtx, PfError};
use crate::wire::{self, Indexed, WithId};

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

const PLURAL: &str = "/firewall/virtual_ips";
const SINGULAR: &str = "/firewall/virtual_ip";

/// `/firewall/virtual_ip` as the API sends it.
#[derive(Debug, Deserialize)]
struct ApiVip {
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

impl ApiVip {
    fn observed(self) -> Found<VirtualIpObserved> {
        let (descr, marker) = split_marker(&self.descr);
        let carp = self.mode == VipMode::Carp;
        let value = VirtualIpObserved {
            address: self.subnet.clone(),
            prefix: self.subnet_bits.unwrap_or(32),
            mode: self.mode,
            interface: self.interface,
            descr,
            vhid: self.vhid.filter(|_| carp),
            password: self.password.filter(|_| carp),
        };
        Found::new(self.subnet, value, marker)
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

impl VirtualIp {
    fn body(&self, marker: &cairn_core::Marker) -> VipBody<'_> {
        let carp = self.mode == VipMode::Carp;
        VipBody {
            mode: self.mode,
            interface: &self.interface,
            kind: "single",
            subnet: self.address.to_string(),
            subnet_bits: self.prefix,
            descr: descr_with_marker(&self.descr, marker),
            vhid: self.vhid.filter(|_| carp),
            password: self.password.as_deref().filter(|_| carp),
        }
    }
}

/// Every VIP, converted.
async fn list(ctx: &PfCtx) -> Result<Vec<Found<VirtualIpObserved>>, PfError> {
    let items = ctx.client.list(PLURAL, &[]).await?;
    Ok(wire::decode_all::<ApiVip>(PLURAL, items)
        .into_iter()
        .map(ApiVip::observed)
        .collect())
}

/// The `pfsense_virtual_ip` kind.
pub struct VirtualIps;

#[async_trait]
impl Kind<PfCtx> for VirtualIps {
    type Spec = VirtualIp;
    type Observed = VirtualIpObserved;
    type Step = NoStep;

    async fn observe(
        &self,
        ctx: &PfCtx,
        q: Query<'_>,
    ) -> Result<Vec<Found<VirtualIpObserved>>, PfError> {
        Ok(super::wanted(list(ctx).await?, q))
    }

    async fn create(
        &self,
        ctx: &PfCtx,
        spec: &VirtualIp,
        op: Op<'_, NoStep>,
    ) -> Result<VirtualIpObserved, PfError> {
        write(ctx, spec, &op).await
    }

    async fn update(
        &self,
        ctx: &PfCtx,
        _prior: &VirtualIpObserved,
        spec: &VirtualIp,
        op: Op<'_, NoStep>,
    ) -> Result<VirtualIpObserved, PfError> {
        write(ctx, spec, &op).await
    }

    async fn delete(
        &self,
        ctx: &PfCtx,
        _prior: &VirtualIpObserved,
        op: Op<'_, NoStep>,
    ) -> Result<(), PfError> {
        let filter = [("subnet", op.key.to_string())];
        let what = (PLURAL, SINGULAR);
        wire::delete_by_key::<ApiVip>(&ctx.client, what, &filter, op.key, Subsystem::VirtualIp)
            .await?;
        Ok(())
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

/// Creates or patches the VIP (looked up by address first), applies, observes it.
async fn write(
    ctx: &PfCtx,
    spec: &VirtualIp,
    op: &Op<'_, NoStep>,
) -> Result<VirtualIpObserved, PfError> {
    let filter = [("subnet", op.key.to_string())];
    let body = spec.body(op.marker);
    match wire::find::<ApiVip>(&ctx.client, PLURAL, &filter, op.key).await? {
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
    ctx.client.apply(Subsystem::VirtualIp).await?;
    super::written(list(ctx).await?, VirtualIp::KIND, op.key)
}
