//! The stacks this repository runs: their declarations and the simulated worlds they start
//! from. Glue: the CLI that runs them is `cairn::cli` (the `stacks` binary is one call into it).
//!
//! Exit codes (diff, drift, apply): 0 no changes, 2 changes, 1 error.

pub mod sims;
pub mod stacks;

/// Apply history recording (moved to `cairn::cli::record`).
pub use cairn::cli::record;
