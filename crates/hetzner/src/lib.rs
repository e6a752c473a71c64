//! cairn provider for Hetzner Cloud: resource kinds, a rate-limit-aware client, and (feature
//! `sim`) a faithful simulator of the API.

pub mod cidr;
#[cfg(feature = "sim")]
pub mod sim;
