//! A stack binary's whole command line from one call: `diff`, `apply`, `drift`, `graph`,
//! `sim`, `lock`, `unlock`, `history`, `rotate` (replace a stack's machines one node at a
//! time, approved, journalled and resumable; see [`Loaded::rotation`]), with the apply lock, saved-plan checks, simulator mode
//! without credentials (said on the first line), the refusal to simulate under `CI=true`,
//! `--json` as JSON Lines (`docs/plan-format.md`) and the exit codes 0 no changes, 2 changes,
//! 1 error.
//!
//! ```no_run
//! use cairn::cli::{Hetzner, StackDef};
//!
//! fn build() -> Result<cairn::Stack, cairn::BuildError> {
//!     let s = cairn::StackBuilder::new("web");
//!     // s.add(..) the stack's resources
//!     s.build()
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     cairn::cli::main(vec![StackDef::new("web", build).on(Hetzner::new())])
//! }
//! ```
//!
//! [`main`] starts its own tokio runtime; the stack's `build` is plain code.

mod args;
mod commands;
mod journal;
pub mod progress;
mod provider;
pub mod record;
mod rotate;
mod stack_def;
pub mod team;
mod world;

use std::process::ExitCode;
use std::sync::OnceLock;

pub use args::{Cli, Command};
#[cfg(feature = "hetzner")]
pub use provider::Hetzner;
pub use provider::{BoxFuture, ProviderSetup, Simulated};
pub use stack_def::{LoadFn, Loaded, StackDef, Target};
pub use world::{World, WorldFn};

/// The whole CLI over `stacks`: parses the command line, runs the command, and returns its
/// exit code (any error → 1, else any change → 2, else 0). `sim` serves each provider's
/// simulator, seeded as the stacks say. Call it from `fn main`.
pub fn main(stacks: Vec<StackDef>) -> ExitCode {
    App::new(stacks).main()
}

/// The CLI with its options: the stacks, and how `sim` builds its world when the
/// providers' own simulators are not enough (e.g. hosts that follow simulated VMs).
pub struct App {
    stacks: Vec<StackDef>,
    world: Option<WorldFn>,
}

impl App {
    /// The CLI over `stacks`, in the order `diff` shows them.
    pub fn new(stacks: Vec<StackDef>) -> App {
        App {
            stacks,
            world: None,
        }
    }

    /// `sim` serves the world `world` builds instead of one simulator per provider.
    pub fn sim_world(mut self, world: WorldFn) -> App {
        self.world = Some(world);
        self
    }

    /// Sets up logging (`RUST_LOG`, default `warn`, on stderr), parses the command line,
    /// runs it on a new multi-threaded tokio runtime, prints an error with its causes, and
    /// returns the exit code.
    pub fn main(self) -> ExitCode {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_writer(std::io::stderr)
            .try_init();
        let cli = Cli::parse_for(bin_name());
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: starting the tokio runtime: {e}");
                return ExitCode::from(1);
            }
        };
        match rt.block_on(self.run(cli)) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {}", chain(e.as_ref()));
                ExitCode::from(1)
            }
        }
    }

    /// Runs one parsed command; the aggregated exit code, or the error that stopped it
    /// before any stack ran.
    pub async fn run(self, cli: Cli) -> anyhow::Result<u8> {
        commands::run(cli, self.stacks, self.world).await
    }
}

/// The binary's own name (`argv[0]`'s file name), used in help and in the commands the CLI
/// suggests (`<bin> apply FILE`).
pub fn bin_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::env::args_os()
            .next()
            .and_then(|a| {
                std::path::Path::new(&a)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "cairn".into())
    })
}

/// An error followed by each of its causes not already in its text, joined with `: ` — so a
/// transport failure names its cause ("connection refused"), not only "error sending
/// request".
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}
