//! The stacks this binary knows, and how each is wired to its providers and targets
//! (`cairn::cli`'s [`StackDef`]).

pub mod hetzner_k3s;
pub mod homelab_ha;
mod probes;

pub use cairn::cli::{Loaded, StackDef, Target};

/// Every stack, in the order `diff` shows them.
pub fn all() -> Vec<StackDef> {
    vec![hetzner_k3s::def(), homelab_ha::def()]
}
