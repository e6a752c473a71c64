//! The provider's kinds, one module each: [`vm`] (`proxmox_vm`) and [`template`] (the
//! read-only `proxmox_template` lookup). Each is registered by the one line naming it below.

use crate::provider::ProxmoxCtx;

cairn_core::kinds! {
    context: ProxmoxCtx;
    pub mod vm::Vms => { Vms };
    pub mod template::Templates => { Templates };
}
