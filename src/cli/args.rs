//! Command-line arguments (clap). Exit codes are a contract: 0 no changes, 2 changes,
//! 1 error — for `diff`, `drift` and `apply`.

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Plan and apply the stacks declared in this binary (cairn: infrastructure as Rust code).
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    /// Only this stack (default: all).
    #[arg(long, global = true)]
    pub stack: Option<String>,
    /// Machine-readable output (plan JSON, `docs/plan-format.md`).
    #[arg(long, global = true)]
    pub json: bool,
    /// Where locks and run history live: a `postgres://…` URL for a team backend; unset: the
    /// local state directory. The URL may hold a password, so it is never printed.
    #[arg(long, global = true, env = "CAIRN_BACKEND", hide_env_values = true)]
    pub backend: Option<String>,
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
        /// How long to wait for another apply of the stack to finish before giving up.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        lock_wait: u64,
    },
    /// Read-only drift check for scheduled CI: same exit codes as diff, Markdown summary to
    /// `$GITHUB_STEP_SUMMARY` when set.
    Drift,
    /// Show who holds each selected stack's apply lock.
    Lock,
    /// Release a stack's apply lock whoever holds it (their run is closed as interrupted and
    /// the release is recorded). Asks for confirmation; `--yes` when stdin is not a terminal.
    Unlock {
        /// Required: releasing someone else's lock is never the default.
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Replace a stack's machines one node at a time (cordon, drain, leave, replace, rejoin,
    /// gates, uncordon), after showing the rotation's plan and asking for approval. Each
    /// phase is recorded in the run history; a rerun resumes an unfinished rotation.
    Rotate {
        /// Rotate this node.
        #[arg(long, conflicts_with_all = ["all", "due", "abandon"], required_unless_present_any = ["all", "due", "abandon"])]
        node: Option<String>,
        /// Rotate every node, in the rotation's order (servers first).
        #[arg(long, conflicts_with_all = ["due", "abandon"])]
        all: bool,
        /// Rotate the nodes whose last rotation is older than the stack's rotation period
        /// (for a scheduled CI job).
        #[arg(long, conflicts_with = "abandon")]
        due: bool,
        /// Give up the stack's unfinished rotation (recorded in the history): the next
        /// rotate starts a new one instead of resuming it. Touches no node.
        #[arg(long)]
        abandon: bool,
        /// Approve without being asked (required when stdin is not a terminal).
        #[arg(long)]
        approve: bool,
        /// How long to wait for another apply or rotation of the stack to finish.
        #[arg(long, default_value_t = 60, value_name = "SECS")]
        lock_wait: u64,
    },
    /// List recent runs (applies, rotations and drift checks), newest first; with RUN, that
    /// run's resource changes (a rotation's: each node's phases, then its machine's changes).
    History {
        /// A run id from the list.
        run: Option<String>,
        /// How many runs to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Serve the stacks' simulators on loopback, seeded with their "before" worlds, until
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

impl Cli {
    /// Parses the process's arguments, naming the program `bin` in help and errors (exits
    /// on `--help` or a usage error, as clap does).
    pub fn parse_for(bin: &'static str) -> Cli {
        let matches = Cli::command().name(bin).bin_name(bin).get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}
