//! cairn: infrastructure as Rust code. Facade over cairn-core and the providers.
pub use cairn_core as core;
pub use cairn_core::*;
