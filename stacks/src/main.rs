//! The `stacks` binary: glue between the stacks declared in this crate, their providers,
//! and the engine. Commands: diff, apply, drift, graph.
//!
//! Exit codes (diff, drift, apply): 0 no changes, 2 changes, 1 error.

mod cli;
mod commands;
mod progress;
mod sims;
mod stacks;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
