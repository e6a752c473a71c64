//! The stacks this binary knows, and how each is wired to its providers and targets.

mod demo;

use cairn_core::{Providers, Stack};

/// Where a stack's providers point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The real APIs (credentials from the environment).
    Real,
    /// Embedded simulators seeded with the stack's "before" world.
    Simulated,
}

/// A stack ready to plan: its graph and its providers.
pub struct Loaded {
    /// The stack.
    pub stack: Stack,
    /// Its providers.
    pub providers: Providers,
}

/// A stack this binary can run.
pub struct StackDef {
    /// Its name (`--stack NAME`).
    pub name: &'static str,
    /// Environment variables that, all set, mean "use the real APIs".
    pub credentials: &'static [&'static str],
    /// Builds the stack and its providers for a target.
    pub load: fn(Target) -> anyhow::Result<Loaded>,
}

/// Every stack, in the order `diff` shows them.
pub fn all() -> Vec<StackDef> {
    vec![demo::DEF]
}
