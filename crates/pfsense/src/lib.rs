//! cairn provider for pfSense (REST API package v2): virtual IPs, HAProxy frontends and
//! backend pools with zero-drop server changes (inline, or one by one as pool members),
//! DNS Resolver host overrides. The simulator (crate `cairn-pfsense-sim`, which imports
//! nothing from here) serves the same API and drives a real HAProxy.
//!
//! Map: [`kinds`] (the resource kinds and the ownership marker), [`client`] (REST v2,
//! apply, runtime API), [`provider`] (the [`cairn_core::Provider`]), [`gate`] (the
//! "HAProxy backend server UP" probe), [`runtime`] (runtime API parsing).

pub mod client;
pub mod gate;
pub mod kinds;
pub mod provider;
pub mod runtime;

pub use client::{ApiKey, ClientError, PfSenseClient, Subsystem, Timing};
pub use gate::HaproxyServerUp;
pub use kinds::{
    BackendServer, DnsHostOverride, FirewallAlias, FrontendAddress, HaproxyBackend,
    HaproxyBackendRefs, HaproxyFrontend, HaproxyFrontendRefs, HaproxyPoolMember, VirtualIp,
    VirtualIpRefs,
};
pub use provider::{PfSenseProvider, ProviderOptions};
