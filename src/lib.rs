//! cairn: infrastructure as Rust code. This facade re-exports the engine ([`core`], and its
//! items at the top level) and, behind features, the providers: [`hetzner`], [`proxmox`],
//! [`pfsense`] (features `hetzner-sim`, `proxmox-sim`, `pfsense-sim` add their simulators as
//! `hetzner::sim`, `proxmox::sim` and `pfsense::sim`, from the crates `cairn-*-sim`, and
//! `node-sim` the node layer's simulated hosts and clusters as `node_sim`, from
//! `cairn-node-sim`; `sim` is all four). Feature `cli` adds `cli`: a stack binary's whole
//! command line from one call.

/// With feature `mimalloc`, a binary built on cairn allocates with mimalloc: planning
/// allocates many small objects, and glibc's allocator took a third of a large plan's time.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use cairn_core as core;
pub use cairn_core::*;

/// One import for a stack's code (`use cairn::prelude::*`): the engine's stack-writing
/// types and, per enabled provider, its prelude — the kinds and every accessor trait, so
/// `srv.ipv4()` or `vm.vmid()` work without naming a trait.
pub mod prelude {
    pub use cairn_core::{
        BuildError, Field, Handle, KeyRef, NodeRef, Providers, Resource, Stack, StackBuilder,
    };
    #[cfg(feature = "hetzner")]
    pub use cairn_hetzner::prelude::*;
    #[cfg(feature = "pfsense")]
    pub use cairn_pfsense::prelude::*;
    #[cfg(feature = "proxmox")]
    pub use cairn_proxmox::prelude::*;
}

/// Hetzner Cloud: servers, networks, load balancers, firewalls, DNS zones and records.
#[cfg(feature = "hetzner")]
pub mod hetzner {
    pub use cairn_hetzner::*;
    /// The Hetzner Cloud API simulator (`cairn-hetzner-sim`).
    #[cfg(feature = "hetzner-sim")]
    pub use cairn_hetzner_sim as sim;
}
/// pfSense (REST API v2): virtual IPs, HAProxy pools and frontends, DNS host overrides.
#[cfg(feature = "pfsense")]
pub mod pfsense {
    pub use cairn_pfsense::*;
    /// The pfSense REST API v2 simulator driving a real HAProxy (`cairn-pfsense-sim`).
    #[cfg(feature = "pfsense-sim")]
    pub use cairn_pfsense_sim as sim;
}
/// Proxmox VE: VMs cloned from cloud-init templates, host-capacity checks.
#[cfg(feature = "proxmox")]
pub mod proxmox {
    pub use cairn_proxmox::*;
    /// The Proxmox VE API simulator (`cairn-proxmox-sim`).
    #[cfg(feature = "proxmox-sim")]
    pub use cairn_proxmox_sim as sim;
}
/// Simulated hosts (real sshd per host) and Kubernetes clusters for the node layer
/// (`cairn-node-sim`).
#[cfg(feature = "node-sim")]
pub use cairn_node_sim as node_sim;

#[cfg(feature = "cli")]
pub mod cli;
