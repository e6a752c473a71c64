//! Apply locks: one apply per stack at a time. A local lock file by default; the trait lets
//! a shared backend follow. Diff and drift take no lock.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds it.
    #[error("stack {stack:?} is locked by another apply ({holder}); lock file {path}")]
    Held {
        /// The stack.
        stack: String,
        /// What the lock file says about its holder.
        holder: String,
        /// The lock file.
        path: String,
    },
    /// No state directory is configured and none can be derived.
    #[error("no state directory: set CAIRN_STATE_DIR (or HOME / XDG_STATE_HOME)")]
    NoStateDir,
    /// The lock file could not be created.
    #[error("cannot create lock file {path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The environment variable naming cairn's state directory (apply locks, local history).
pub const STATE_DIR_ENV: &str = "CAIRN_STATE_DIR";

/// cairn's state directory: `$CAIRN_STATE_DIR`, else `$XDG_STATE_HOME/cairn`, else
/// `$HOME/.local/state/cairn`. Never relative to the working directory, so two applies of
/// one stack from different directories share one lock, and nothing lands in a source tree.
pub fn state_dir() -> Result<PathBuf, LockError> {
    state_dir_from(|k| std::env::var_os(k))
}

/// [`state_dir`] over a given environment (tests pass a map instead of mutating the process).
pub fn state_dir_from(
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf, LockError> {
    let absolute = |v: std::ffi::OsString| {
        let p = PathBuf::from(v);
        p.is_absolute().then_some(p)
    };
    if let Some(dir) = env(STATE_DIR_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(xdg) = env("XDG_STATE_HOME").and_then(absolute) {
        return Ok(xdg.join("cairn"));
    }
    if let Some(home) = env("HOME").and_then(absolute) {
        return Ok(home.join(".local/state/cairn"));
    }
    Err(LockError::NoStateDir)
}

/// A held lock; released on drop.
pub trait LockGuard: Send {}

/// A lock backend.
pub trait ApplyLock: Send + Sync {
    /// Takes the lock for `stack` or fails at once naming the holder.
    fn acquire(&self, stack: &str) -> Result<Box<dyn LockGuard>, LockError>;
}

/// Lock files under a directory (by default [`state_dir`]), held with an OS file lock so a killed
/// process never leaves a stale lock behind.
pub struct LocalLock {
    dir: PathBuf,
}

impl LocalLock {
    /// Locks live in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalLock { dir: dir.into() }
    }
}

struct FileGuard(#[allow(dead_code)] File);

impl LockGuard for FileGuard {}

impl ApplyLock for LocalLock {
    fn acquire(&self, stack: &str) -> Result<Box<dyn LockGuard>, LockError> {
        let path = self.dir.join(format!("{stack}.lock"));
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match f.try_lock() {
            Ok(()) => {
                f.set_len(0).map_err(io)?;
                writeln!(f, "pid {}", std::process::id()).map_err(io)?;
                Ok(Box::new(FileGuard(f)))
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held {
                stack: stack.to_string(),
                holder: std::fs::read_to_string(&path)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                path: path.display().to_string(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(
        pairs: &'a [(&'a str, &'a str)],
    ) -> impl Fn(&str) -> Option<std::ffi::OsString> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.into())
    }

    #[test]
    fn state_dir_is_per_user_never_the_working_directory() {
        assert_eq!(
            state_dir_from(env(&[("HOME", "/home/ann")])).unwrap(),
            PathBuf::from("/home/ann/.local/state/cairn")
        );
        assert_eq!(
            state_dir_from(env(&[("HOME", "/home/ann"), ("XDG_STATE_HOME", "/st")])).unwrap(),
            PathBuf::from("/st/cairn")
        );
        assert_eq!(
            state_dir_from(env(&[("HOME", "/home/ann"), ("CAIRN_STATE_DIR", "/x")])).unwrap(),
            PathBuf::from("/x")
        );
        // A relative HOME would put state under whatever directory cairn runs in.
        assert!(state_dir_from(env(&[("HOME", "rel")])).is_err());
        assert!(state_dir_from(env(&[])).is_err());
    }

    #[test]
    fn second_apply_of_a_stack_is_refused_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let lock = LocalLock::new(dir.path());
        let held = lock.acquire("web").unwrap();
        let err = match lock.acquire("web") {
            Err(e) => e.to_string(),
            Ok(_) => panic!("second lock was granted"),
        };
        assert!(
            err.contains("\"web\" is locked") && err.contains("pid"),
            "{err}"
        );
        assert!(lock.acquire("other").is_ok());
        drop(held);
        assert!(lock.acquire("web").is_ok());
    }
}
