//! Scratch directories for simulators that run real programs (pfSense's HAProxy): each one is
//! named after the process that owns it (`<prefix>.<pid>.<random>` under the system temp
//! dir), removed on drop, and swept when a later simulator starts if its owner is gone (a
//! `stacks sim` killed with SIGKILL never runs its destructors); a simulator that stops
//! sweeps them too ([`sweep_dead`]).

use std::path::Path;

/// A simulator's scratch directory, removed when dropped.
pub type WorkDir = tempfile::TempDir;

/// Creates a scratch directory `<prefix>.<pid>.<random>` in the system temp dir, first
/// removing the ones of the same prefix whose owning process has died.
pub fn workdir(prefix: &str) -> std::io::Result<WorkDir> {
    workdir_in(&std::env::temp_dir(), prefix)
}

/// [`workdir`] under `parent` (tests use their own parent).
pub fn workdir_in(parent: &Path, prefix: &str) -> std::io::Result<WorkDir> {
    sweep(parent, prefix);
    tempfile::Builder::new()
        .prefix(&format!("{prefix}.{}.", std::process::id()))
        .tempdir_in(parent)
}

/// Removes the scratch directories `<prefix>.<pid>.*` in the system temp dir whose process
/// has died (a simulator also calls this when it stops, so a run that killed one leaves
/// nothing behind once any other simulator of the run has stopped).
pub fn sweep_dead(prefix: &str) {
    sweep(&std::env::temp_dir(), prefix);
}

/// Removes the directories `<prefix>.<pid>.*` in `parent` whose process `pid` is not running.
/// Directories without an owner in their name (or of a live owner) are left alone.
fn sweep(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let lead = format!("{prefix}.");
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&lead))
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !alive(pid) && e.file_type().is_ok_and(|t| t.is_dir()) {
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => {
                    tracing::debug!(dir = %e.path().display(), pid, "removed a dead simulator's scratch directory")
                }
                Err(err) => {
                    tracing::debug!(dir = %e.path().display(), %err, "cannot remove a dead simulator's scratch directory")
                }
            }
        }
    }
}

/// Whether process `pid` exists (a recycled pid only delays the sweep).
fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_workdir_sweeps_the_dirs_of_dead_owners_and_keeps_live_and_foreign_ones() {
        let parent = tempfile::tempdir().unwrap();
        // A pid that certainly died: a child we waited for.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = parent.path().join(format!("cairn-x.{dead}.abc"));
        std::fs::create_dir_all(stale.join("sub")).unwrap();
        std::fs::write(stale.join("sub/haproxy.cfg"), "x").unwrap();
        let live = parent
            .path()
            .join(format!("cairn-x.{}.def", std::process::id()));
        std::fs::create_dir(&live).unwrap();
        let foreign = parent.path().join("cairn-xold");
        std::fs::create_dir(&foreign).unwrap();
        let other = parent.path().join(format!("cairn-y.{dead}.abc"));
        std::fs::create_dir(&other).unwrap();

        let dir = workdir_in(parent.path(), "cairn-x").unwrap();

        assert!(!stale.exists(), "the dead owner's dir is swept");
        assert!(live.exists(), "a live owner's dir stays");
        assert!(foreign.exists(), "a dir without an owner in its name stays");
        assert!(other.exists(), "another prefix is not touched");
        let name = dir
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(name.starts_with(&format!("cairn-x.{}.", std::process::id())));
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists(), "dropping removes it");
    }
}
