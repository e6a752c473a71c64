//! The stacks users run and the CLI that runs them. Glue: stack declarations, target
//! selection (real APIs, embedded simulators, or a `stacks sim` world), rendering.
//!
//! Exit codes (diff, drift, apply): 0 no changes, 2 changes, 1 error.

pub mod cli;
pub mod commands;
pub mod progress;
pub mod record;
pub mod sims;
pub mod stacks;
pub mod team;
