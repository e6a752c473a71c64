//! cairn-proxmox: the Proxmox VE provider for cairn (VMs cloned from cloud-init templates,
//! a read-only template lookup, and the plan-time host-capacity check). Its simulator is the
//! separate crate `cairn-proxmox-sim`, which imports nothing from here.
//!
//! Map: [`client`] (HTTP, auth, TLS, retries, tasks, locks), [`api`] (typed endpoints and
//! the replaced parts of `proxmox-api`), [`vm`] (the kinds and the spec ⇄ config mapping),
//! [`provider`] (the `cairn_core::Provider`), [`capacity`] (plan-time checks), [`propstr`]
//! (Proxmox encodings).

pub mod api;
pub mod capacity;
pub mod client;
pub mod propstr;
pub mod provider;
pub mod vm;

pub use client::{Auth, ClientConfig, PveClient, PveError};
pub use provider::ProxmoxProvider;
pub use vm::{CloneFrom, CloudInit, IpConfig, Nic, PowerState, Template, TemplateRefs, Vm, VmRefs};
