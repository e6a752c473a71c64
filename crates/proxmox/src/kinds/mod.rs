//! The provider's kinds, one module each: [`vm`] (`proxmox_vm`) and [`template`] (the
//! read-only `proxmox_template` lookup). Each is registered in [`crate::provider`].

pub mod template;
pub mod vm;
