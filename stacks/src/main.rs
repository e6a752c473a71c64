//! The `stacks` binary: cairn's CLI (`cairn::cli`) over this crate's stacks, with the
//! homelab world (hosts following simulated VMs) for `stacks sim`.

use std::process::ExitCode;

fn main() -> ExitCode {
    cairn::cli::App::new(stacks::stacks::all())
        .sim_world(stacks::sims::world)
        .main()
}
