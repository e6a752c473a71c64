//! The stacks this binary knows, and how each is wired to its providers and targets.

pub mod hetzner_k3s;
pub mod homelab_ha;

use std::any::Any;
use std::future::Future;
use std::pin::Pin;

use cairn_core::{Providers, Stack};

/// Where a stack's providers point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The APIs named by the credentials in the environment (real ones, or a `stacks sim`).
    Real,
    /// Embedded simulators seeded with the stack's "before" world, for this process only.
    Simulated,
}

/// A stack ready to plan: its graph, its providers, and whatever must live as long
/// (embedded simulators).
pub struct Loaded {
    /// The stack.
    pub stack: Stack,
    /// Its providers.
    pub providers: Providers,
    /// Kept alive while the stack is used (simulator handles, temp files).
    pub keep: Vec<Box<dyn Any + Send>>,
}

/// Loads a stack for a target.
pub type LoadFn = fn(Target) -> Pin<Box<dyn Future<Output = anyhow::Result<Loaded>> + Send>>;

/// A stack this binary can run.
pub struct StackDef {
    /// Its name (`--stack NAME`).
    pub name: &'static str,
    /// Environment variables that, all set, mean "use the APIs they name".
    pub credentials: &'static [&'static str],
    /// Builds the stack and its providers for a target.
    pub load: LoadFn,
}

/// Every stack, in the order `diff` shows them.
pub fn all() -> Vec<StackDef> {
    vec![hetzner_k3s::DEF, homelab_ha::DEF]
}
