//! cairn's team backend on PostgreSQL ([`PgBackend`]), selected with
//! `CAIRN_BACKEND=postgres://…`: a lock row per stack with its holder and a lease renewed by a
//! heartbeat, run history with one row per resource change, drift results.
//!
//! Every statement goes through the unnamed-statement path (`query_typed`) or a simple query,
//! inside explicit transactions where several must agree: no advisory locks, no temporary
//! tables, no named prepared statements, so it works through PgBouncer in transaction mode.
//! The schema is created and migrated by cairn ([`schema`]); one newer than this binary knows
//! is refused before anything else happens.

mod conn;
mod history;
mod lock;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_core::backend::{
    Backend, BackendError, ChangeRecord, Holder, Lease, LockInfo, RunRecord,
};

use conn::{Conn, Settings};

/// The default lease: a holder that stops renewing is presumed dead after this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The PostgreSQL backend.
pub struct PgBackend {
    settings: Arc<Settings>,
    conn: Arc<Conn>,
    checked: AtomicBool,
    lease: Duration,
}

impl PgBackend {
    /// A backend for a `postgres://` URL (libpq syntax; `sslmode=require` turns on TLS,
    /// verified against the CA file in `CAIRN_BACKEND_CA` when set). Connects lazily.
    pub fn new(url: &str) -> Result<PgBackend, BackendError> {
        let settings = Arc::new(Settings::parse(url)?);
        Ok(PgBackend {
            conn: Arc::new(Conn::new(settings.clone())),
            settings,
            checked: AtomicBool::new(false),
            lease: DEFAULT_LEASE,
        })
    }

    /// Sets the lease length (the heartbeat renews it every third of it).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    async fn ensure(&self) -> Result<(), BackendError> {
        if !self.checked.load(Ordering::Acquire) {
            schema::migrate(&self.conn).await?;
            self.checked.store(true, Ordering::Release);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Backend for PgBackend {
    fn describe(&self) -> String {
        self.settings.describe.clone()
    }

    async fn check(&self) -> Result<(), BackendError> {
        self.ensure().await
    }

    async fn acquire(
        &self,
        stack: &str,
        holder: &Holder,
        wait: Duration,
    ) -> Result<Box<dyn Lease>, BackendError> {
        self.ensure().await?;
        lock::acquire(&self.conn, &self.settings, stack, holder, wait, self.lease).await
    }

    async fn holder(&self, stack: &str) -> Result<Option<LockInfo>, BackendError> {
        self.ensure().await?;
        lock::holder(&self.conn, stack).await
    }

    async fn force_unlock(
        &self,
        stack: &str,
        by: &Holder,
    ) -> Result<Option<LockInfo>, BackendError> {
        self.ensure().await?;
        lock::force_unlock(&self.conn, stack, by).await
    }

    async fn start_run(&self, stack: &str, holder: &Holder) -> Result<String, BackendError> {
        self.ensure().await?;
        history::start_run(&self.conn, stack, holder).await
    }

    async fn record_changes(
        &self,
        run: &str,
        changes: &[ChangeRecord],
    ) -> Result<(), BackendError> {
        self.ensure().await?;
        history::record_changes(&self.conn, run, changes).await
    }

    async fn finish_run(&self, run: &str, status: &str, summary: &str) -> Result<(), BackendError> {
        self.ensure().await?;
        history::finish_run(&self.conn, run, status, summary).await
    }

    async fn runs(
        &self,
        stack: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, BackendError> {
        self.ensure().await?;
        history::runs(&self.conn, stack, limit).await
    }

    async fn run(&self, id: &str) -> Result<(RunRecord, Vec<ChangeRecord>), BackendError> {
        self.ensure().await?;
        history::run(&self.conn, id).await
    }
}
