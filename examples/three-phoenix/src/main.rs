//! three-phoenix: your own stack binary. One call gives it cairn's whole CLI (`diff`, `apply`,
//! `drift`, `graph`, `sim`, `lock`, `unlock`, `history`): Hetzner Cloud with `HCLOUD_TOKEN`,
//! its simulator without.

mod stack;

use cairn::cli::{Hetzner, StackDef};

fn main() -> std::process::ExitCode {
    cairn::cli::main(vec![
        StackDef::new("three-phoenix", stack::build).on(Hetzner::new()),
    ])
}
