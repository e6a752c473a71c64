//! Command-line arguments (clap). Exit codes are a contract: 0 no changes, 2 changes,
//! 1 error — for `diff`, `drift` and `apply`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// cairn stacks: plan and apply the stacks declared in this crate.
#[derive(Debug, Parser)]
#[command(name = "stacks", version, about)]
pub struct Cli {
    /// Only this stack (default: all).
    #[arg(long, global = true)]
    pub stack: Option<String>,
    /// Machine-readable output (plan JSON, `docs/plan-format.md`).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the plan. Exit 0: no changes, 2: changes, 1: error.
    Diff {
        /// Save the plan (JSON) for a later `apply FILE`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Apply the plan (or a saved plan, after checking it is still current).
    Apply {
        /// A plan saved with `diff --out`.
        plan: Option<PathBuf>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// How many changes run at once.
        #[arg(long, default_value_t = 10)]
        parallelism: usize,
    },
    /// Read-only drift check for scheduled CI: same exit codes as diff, Markdown summary to
    /// `$GITHUB_STEP_SUMMARY` when set.
    Drift,
    /// Serve all simulators on loopback, seeded with the stacks' "before" worlds, until
    /// stopped. The first stdout line is JSON: endpoints, credentials, TLS fingerprints and
    /// an `env` map that points the normal CLI at this world.
    Sim,
    /// Print the dependency graph as Graphviz DOT; `--out DIR` also writes `<stack>.dot` and
    /// `<stack>.svg` (a picture drawn by cairn, no Graphviz needed).
    Graph {
        /// Directory for the DOT and SVG files.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}
