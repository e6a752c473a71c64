//! cairn-proxmox: the Proxmox VE provider for cairn (VMs cloned from cloud-init templates,
//! a template lookup, and the plan-time host-capacity check), plus a faithful simulator of
//! the Proxmox VE API behind the `sim` feature.

pub mod propstr;
#[cfg(feature = "sim")]
pub mod sim;
