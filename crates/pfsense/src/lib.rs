//! cairn provider for pfSense (REST API package v2): virtual IPs, HAProxy frontends and
//! backend pools with zero-drop server changes (inline, or one by one as pool members),
//! DNS Resolver host overrides. The simulator (crate `cairn-pfsense-sim`, which imports
//! nothing from here) serves the same API and drives a real HAProxy.
//!
//! Map: [`kinds`] (one file per resource kind: spec, observed form, API types, handler;
//! their typed [`kinds::values`]; the ownership marker), [`provider`] (the registry that
//! assembles them into a [`cairn_core::Provider`]), [`context`] (what the kinds share),
//! [`rollout`] (staged pool server changes as typed steps, their executor and the HAProxy
//! runtime commands), [`validate`] (checks across kinds), `wire` (API (de)serialisation
//! helpers), [`client`] (REST v2, apply, runtime API), [`pending`] (subsystems with changes written
//! but not applied, read at plan time and applied as plan entries), [`gate`] (the "HAProxy backend
//! server UP" probe), [`runtime`] (runtime API parsing).
//! Its simulator is the `cairn-pfsense-sim` crate, which never imports this one.

pub mod client;
pub mod context;
pub mod gate;
pub mod kinds;
pub mod pending;
pub mod provider;
pub mod rollout;
pub mod runtime;
pub mod validate;
pub(crate) mod wire;

pub use client::{ApiKey, ClientError, PfSenseClient, Subsystem, Timing};
pub use context::{PfCtx, PfError};
pub use gate::HaproxyServerUp;
pub use kinds::{
    AliasType, BackendServer, Balance, CheckType, DnsHostOverride, FirewallAlias, FrontendAddress,
    FrontendMode, FrontendStatus, HaproxyBackend, HaproxyBackendRefs, HaproxyFrontend,
    HaproxyFrontendRefs, HaproxyPoolMember, HttpMethod, LiveStatus, ServerStatus, VipMode,
    VirtualIp, VirtualIpRefs,
};
pub use provider::{PfSenseProvider, ProviderOptions};

/// Everything a stack author needs from this provider in one import
/// (`use cairn::pfsense::prelude::*`): the kinds and their parts, and every accessor trait.
pub mod prelude {
    pub use crate::PfSenseProvider;
    pub use crate::kinds::{
        BackendServer, DnsHostOverride, FirewallAlias, FrontendAddress, HaproxyBackend,
        HaproxyBackendRefs, HaproxyFrontend, HaproxyFrontendRefs, HaproxyPoolMember, VirtualIp,
        VirtualIpRefs,
    };
}
pub use rollout::PoolStep;
