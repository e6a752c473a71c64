//! Where applies coordinate and leave a record: the per-stack apply lock with its holder and
//! lease, the run history (one run, one row per resource change) and drift results.
//! [`local::LocalBackend`] (a file lock and JSON Lines under [`crate::lock::state_dir`]) is the
//! default; a team points `CAIRN_BACKEND` at a shared backend (PostgreSQL, in its own crate).
//! Nothing written here holds a secret: error texts pass through [`Redactor`].

mod early;
pub mod local;
mod record;

use std::time::Duration;

pub use early::Checking;
pub use record::{
    ChangeRecord, Holder, LockInfo, Redactor, RunRecord, format_time, now_ms, plan_digest,
};

/// The environment variable selecting the backend (`postgres://…`; unset: local).
pub const BACKEND_ENV: &str = "CAIRN_BACKEND";

/// Run statuses, as stored.
pub mod status {
    /// The run is in progress (or its holder died and nobody took over yet).
    pub const RUNNING: &str = "running";
    /// Every change succeeded (or there was nothing to do).
    pub const SUCCEEDED: &str = "succeeded";
    /// At least one change failed, or the run stopped on an error.
    pub const FAILED: &str = "failed";
    /// Its holder died or lost its lease; closed by whoever came next.
    pub const INTERRUPTED: &str = "interrupted";
    /// Drift check: live state matches the code.
    pub const IN_SYNC: &str = "in sync";
    /// Drift check: some objects differ.
    pub const DRIFTED: &str = "drifted";
}

/// Why the backend could not do what was asked. Messages name no secret (no password,
/// no connection string with credentials).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend cannot be reached.
    #[error("backend {backend} is unreachable: {reason}")]
    Unreachable {
        /// The backend, without credentials.
        backend: String,
        /// What went wrong.
        reason: String,
    },
    /// The backend refused our credentials.
    #[error("backend {backend} refused the credentials: {reason}")]
    Auth {
        /// The backend, without credentials.
        backend: String,
        /// What the server said.
        reason: String,
    },
    /// The backend's schema was written by a newer cairn.
    #[error(
        "backend {backend} has schema version {found}, newer than this cairn knows ({known}); upgrade cairn"
    )]
    SchemaTooNew {
        /// The backend, without credentials.
        backend: String,
        /// The version found.
        found: i32,
        /// The newest version this binary knows.
        known: i32,
    },
    /// Another run holds the stack's lock.
    #[error("stack {stack:?} is locked by {holder} (waited {waited_secs}s); see `stacks lock`")]
    Held {
        /// The stack.
        stack: String,
        /// Who holds it, for humans.
        holder: String,
        /// How long we waited.
        waited_secs: u64,
    },
    /// The backend URL or settings are invalid.
    #[error("invalid backend configuration: {0}")]
    Config(String),
    /// The requested run does not exist.
    #[error("no run {0:?} in the history")]
    NoSuchRun(String),
    /// Anything else the storage reported.
    #[error("backend {backend}: {reason}")]
    Storage {
        /// The backend, without credentials.
        backend: String,
        /// What went wrong.
        reason: String,
    },
}

/// A held apply lock. Dropping it without [`Lease::release`] leaves the lease to expire.
#[async_trait::async_trait]
pub trait Lease: Send + Sync {
    /// The run this lock was taken for (its history row).
    fn run_id(&self) -> &str;
    /// The holder whose expired lease (or dead lock) this acquisition took over, if any.
    fn took_over(&self) -> Option<&LockInfo>;
    /// Resolves when the lease is lost (expired unrenewed, taken over, force-unlocked) with
    /// the reason; never resolves while the lease holds.
    async fn lost(&self) -> String;
    /// Records the plan's digest on the lock and the run once it is known.
    async fn set_plan_digest(&self, digest: &str) -> Result<(), BackendError>;
    /// Releases the lock (the run itself is closed by [`Backend::finish_run`]).
    async fn release(self: Box<Self>) -> Result<(), BackendError>;
    /// What an apply does at its end: closes this lease's run with `status` and `summary`
    /// (unless someone already closed it) and releases the lock. `backend` is the backend
    /// that granted the lease. The default makes the two calls (and releases even when
    /// closing failed); a backend may do both at once (PostgreSQL: one statement).
    async fn finish(
        self: Box<Self>,
        backend: &dyn Backend,
        status: &str,
        summary: &str,
    ) -> Result<(), BackendError> {
        let closed = backend.finish_run(self.run_id(), status, summary).await;
        let released = self.release().await;
        closed.and(released)
    }
}

/// A lock and history store.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    /// What this backend is, for messages (never with credentials).
    fn describe(&self) -> String;
    /// Connects, authenticates and checks (or creates/migrates) the schema. Called before any
    /// provider call so a bad backend fails first.
    async fn check(&self) -> Result<(), BackendError>;
    /// Takes `stack`'s lock for `holder`, opening a run of kind `holder.operation`; waits up to
    /// `wait` for a live holder, then fails with [`BackendError::Held`] naming it. An expired
    /// lease (a dead holder) is taken over and its run closed as interrupted.
    async fn acquire(
        &self,
        stack: &str,
        holder: &Holder,
        wait: Duration,
    ) -> Result<Box<dyn Lease>, BackendError>;
    /// Who holds `stack`'s lock, if anyone.
    async fn holder(&self, stack: &str) -> Result<Option<LockInfo>, BackendError>;
    /// Releases `stack`'s lock whoever holds it, recording `by`; closes its run as
    /// interrupted. Returns the previous holder.
    async fn force_unlock(
        &self,
        stack: &str,
        by: &Holder,
    ) -> Result<Option<LockInfo>, BackendError>;
    /// Opens a run that takes no lock (drift). Returns its id.
    async fn start_run(&self, stack: &str, holder: &Holder) -> Result<String, BackendError>;
    /// Appends resource changes to a run (error texts already redacted).
    async fn record_changes(&self, run: &str, changes: &[ChangeRecord])
    -> Result<(), BackendError>;
    /// Closes a run with a status (see [`status`]) and a one-line summary.
    async fn finish_run(&self, run: &str, status: &str, summary: &str) -> Result<(), BackendError>;
    /// The newest runs first, of one stack or all.
    async fn runs(&self, stack: Option<&str>, limit: usize)
    -> Result<Vec<RunRecord>, BackendError>;
    /// One run and its changes in the order they were recorded.
    async fn run(&self, id: &str) -> Result<(RunRecord, Vec<ChangeRecord>), BackendError>;
}
