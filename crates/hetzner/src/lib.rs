//! cairn provider for Hetzner Cloud: resource kinds ([`kinds`]), a rate-limit-aware client
//! ([`client`]), the [`HetznerProvider`], and (feature `sim`) a faithful simulator of the
//! API ([`sim`]).

#![warn(missing_docs)]

pub mod cidr;
pub mod client;
pub mod gate;
pub mod kinds;
pub mod provider;
#[cfg(feature = "sim")]
pub mod sim;
mod validate;

pub use gate::LbTargetsHealthy;
pub use kinds::*;
pub use provider::HetznerProvider;
