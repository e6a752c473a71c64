//! cairn-proxmox: the Proxmox VE provider for cairn (VMs cloned from cloud-init templates,
//! a read-only template lookup, and the plan-time host-capacity check). Its simulator is the
//! separate crate `cairn-proxmox-sim`, which imports nothing from here.
//!
//! Map: [`client`] (HTTP, auth, TLS, retries, tasks, locks), [`api`] (typed endpoints and
//! the replaced parts of `proxmox-api`), [`kinds`] (one module per kind: [`vm`] with its
//! spec, observation, marker and converge sequence; the `proxmox_template` lookup),
//! [`provider`] (the kinds registered on the provider kit, with the context's hooks),
//! [`capacity`] (plan-time checks), [`error`], [`propstr`] (Proxmox encodings).

pub mod api;
pub mod capacity;
pub mod client;
pub mod error;
pub mod kinds;
pub mod propstr;
pub mod provider;

pub use client::{Auth, ClientConfig, PveClient, PveError};
pub use kinds::template::{Template, TemplateRefs, Templates};
pub use kinds::vm;
pub use provider::{ProxmoxCtx, ProxmoxProvider};
/// Everything a stack author needs from this provider in one import
/// (`use cairn::proxmox::prelude::*`): the kinds and their parts, and every accessor trait.
pub mod prelude {
    pub use crate::ProxmoxProvider;
    pub use crate::kinds::template::{Template, TemplateRefs};
    pub use crate::kinds::vm::{CloneFrom, CloudInit, IpConfig, Nic, PowerState, Vm, VmRefs};
}

pub use vm::{
    CloneFrom, CloneMode, CloudInit, DiskBus, DiskSlot, IpConfig, Nic, NicModel, PowerState, Vm,
    VmRefs, Vms,
};
