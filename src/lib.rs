//! cairn: infrastructure as Rust code. This facade re-exports the engine ([`core`], and its
//! items at the top level) and, behind features, the providers: [`hetzner`], [`proxmox`],
//! [`pfsense`] (feature `sim` adds their simulators).

pub use cairn_core as core;
pub use cairn_core::*;

/// Hetzner Cloud: servers, networks, load balancers, firewalls, DNS zones and records.
#[cfg(feature = "hetzner")]
pub use cairn_hetzner as hetzner;
/// pfSense (REST API v2): virtual IPs, HAProxy pools and frontends, DNS host overrides.
#[cfg(feature = "pfsense")]
pub use cairn_pfsense as pfsense;
/// Proxmox VE: VMs cloned from cloud-init templates, host-capacity checks.
#[cfg(feature = "proxmox")]
pub use cairn_proxmox as proxmox;
