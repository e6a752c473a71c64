//! The apply lock: one `cairn_locks` row per stack with its holder, its run and a lease
//! expiry renewed by a heartbeat task. Taking a free lock is one statement (the row and its
//! run, one round trip); otherwise one transaction (open the run, insert the row or take over
//! an expired one and close the dead holder's run as interrupted). Either way a failed
//! attempt leaves nothing behind. Different stacks are different rows: they never
//! block each other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::backend::{Backend, BackendError, Holder, Lease, LockInfo, status};
use tokio::sync::watch;
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use crate::conn::{Conn, Fail, Settings};

/// The lock columns, in the order [`info`] reads them.
const LOCK_COLS: &str = "stack, holder_user, holder_host, holder_pid, ci_job_url, operation, plan_digest, \
     (extract(epoch FROM started_at) * 1000)::int8, run_id::text, \
     (extract(epoch FROM lease_expires_at) * 1000)::int8, lease_expires_at < now()";

fn info(r: &tokio_postgres::Row) -> (LockInfo, bool) {
    let pid: i32 = r.get(3);
    (
        LockInfo {
            stack: r.get(0),
            holder: Holder {
                user: r.get(1),
                host: r.get(2),
                pid: pid as u32,
                ci_job_url: r.get(4),
                operation: r.get(5),
                plan_digest: r.get(6),
                started_at_ms: r.get(7),
            },
            run_id: Some(r.get(8)),
            lease_expires_at_ms: Some(r.get(9)),
        },
        r.get(10),
    )
}

enum Attempt {
    Got {
        run_id: String,
        took_over: Option<LockInfo>,
    },
    Held(LockInfo),
    /// The row went away between the insert and the read: try again at once.
    Vanished,
}

/// The common case in one round trip: the lock is free, so one statement inserts the lock
/// row and, only if that insert happened, the run it names (a data-modifying `WITH`: both
/// or neither, and the foreign key is checked when the statement ends). `None` when the row
/// exists (held, or expired): [`try_acquire`] then decides in a transaction.
async fn try_acquire_free(
    c: &mut Client,
    stack: &str,
    h: &Holder,
    token: &str,
    lease_secs: f64,
) -> Result<Option<String>, Fail> {
    let pid = h.pid as i32;
    let row = c
        .query_typed_opt(
            "WITH l AS (
                 INSERT INTO cairn_locks (stack, token, run_id, holder_user, holder_host, holder_pid, ci_job_url, operation, plan_digest, started_at, lease_expires_at)
                 VALUES ($1, $2, nextval(pg_get_serial_sequence('cairn_runs', 'id')), $3, $4, $5, $6, $7, $8, now(), now() + make_interval(secs => $9))
                 ON CONFLICT (stack) DO NOTHING
                 RETURNING run_id
             ), r AS (
                 INSERT INTO cairn_runs (id, stack, operation, status, holder_user, holder_host, holder_pid, ci_job_url, plan_digest)
                 SELECT run_id, $1, $7, 'running', $3, $4, $5, $6, $8 FROM l
                 RETURNING id
             )
             SELECT id FROM r",
            &[
                (&stack, Type::TEXT),
                (&token, Type::TEXT),
                (&h.user, Type::TEXT),
                (&h.host, Type::TEXT),
                (&pid, Type::INT4),
                (&h.ci_job_url, Type::TEXT),
                (&h.operation, Type::TEXT),
                (&h.plan_digest, Type::TEXT),
                (&lease_secs, Type::FLOAT8),
            ],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, i64>(0).to_string()))
}

async fn try_acquire(
    c: &mut Client,
    stack: String,
    h: Holder,
    token: String,
    lease_secs: f64,
) -> Result<Attempt, Fail> {
    let pid = h.pid as i32;
    let tx = c.transaction().await?;
    let run_id: i64 = tx
        .query_typed_one(
            "INSERT INTO cairn_runs (stack, operation, status, holder_user, holder_host, holder_pid, ci_job_url, plan_digest)
             VALUES ($1, $2, 'running', $3, $4, $5, $6, $7) RETURNING id",
            &[
                (&stack, Type::TEXT),
                (&h.operation, Type::TEXT),
                (&h.user, Type::TEXT),
                (&h.host, Type::TEXT),
                (&pid, Type::INT4),
                (&h.ci_job_url, Type::TEXT),
                (&h.plan_digest, Type::TEXT),
            ],
        )
        .await?
        .get(0);
    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 10] = [
        (&stack, Type::TEXT),
        (&token, Type::TEXT),
        (&run_id, Type::INT8),
        (&h.user, Type::TEXT),
        (&h.host, Type::TEXT),
        (&pid, Type::INT4),
        (&h.ci_job_url, Type::TEXT),
        (&h.operation, Type::TEXT),
        (&h.plan_digest, Type::TEXT),
        (&lease_secs, Type::FLOAT8),
    ];
    let inserted = tx
        .query_typed_opt(
            "INSERT INTO cairn_locks (stack, token, run_id, holder_user, holder_host, holder_pid, ci_job_url, operation, plan_digest, started_at, lease_expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), now() + make_interval(secs => $10))
             ON CONFLICT (stack) DO NOTHING RETURNING 1",
            &params,
        )
        .await?;
    if inserted.is_some() {
        tx.commit().await?;
        return Ok(Attempt::Got {
            run_id: run_id.to_string(),
            took_over: None,
        });
    }
    let Some(row) = tx
        .query_typed_opt(
            &format!("SELECT {LOCK_COLS} FROM cairn_locks WHERE stack = $1 FOR UPDATE"),
            &[(&stack, Type::TEXT)],
        )
        .await?
    else {
        return Ok(Attempt::Vanished);
    };
    let (prev, expired) = info(&row);
    if !expired {
        // Rolling back drops the run opened above.
        return Ok(Attempt::Held(prev));
    }
    let note = format!(
        "lease of {} expired; taken over by {}@{} pid {}",
        prev.holder, h.user, h.host, h.pid
    );
    let prev_run: i64 = prev
        .run_id
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(-1);
    tx.execute_typed(
        "UPDATE cairn_runs SET status = $2, finished_at = now(), summary = $3 WHERE id = $1 AND status = 'running'",
        &[
            (&prev_run, Type::INT8),
            (&status::INTERRUPTED, Type::TEXT),
            (&note, Type::TEXT),
        ],
    )
    .await?;
    tx.execute_typed(
        "UPDATE cairn_locks SET token = $2, run_id = $3, holder_user = $4, holder_host = $5, holder_pid = $6,
             ci_job_url = $7, operation = $8, plan_digest = $9, started_at = now(),
             lease_expires_at = now() + make_interval(secs => $10)
         WHERE stack = $1",
        &params,
    )
    .await?;
    record_event(&tx, &stack, "takeover", &prev.holder.to_string(), &h).await?;
    tx.commit().await?;
    Ok(Attempt::Got {
        run_id: run_id.to_string(),
        took_over: Some(prev),
    })
}

async fn record_event(
    tx: &tokio_postgres::Transaction<'_>,
    stack: &str,
    event: &str,
    previous: &str,
    by: &Holder,
) -> Result<(), tokio_postgres::Error> {
    let pid = by.pid as i32;
    tx.execute_typed(
        "INSERT INTO cairn_lock_events (stack, event, previous_holder, by_user, by_host, by_pid) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            (&stack, Type::TEXT),
            (&event, Type::TEXT),
            (&previous, Type::TEXT),
            (&by.user, Type::TEXT),
            (&by.host, Type::TEXT),
            (&pid, Type::INT4),
        ],
    )
    .await
    .map(|_| ())
}

fn new_token(h: &Holder) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{}-{nanos:x}", h.host, h.pid)
}

/// Takes `stack`'s lock, waiting up to `wait` for a live holder.
pub(crate) async fn acquire(
    conn: &Arc<Conn>,
    settings: &Arc<Settings>,
    stack: &str,
    holder: &Holder,
    wait: Duration,
    lease: Duration,
) -> Result<Box<dyn Lease>, BackendError> {
    let start = Instant::now();
    let mut attempt: u64 = 0;
    loop {
        let token = new_token(holder);
        let sent = Instant::now();
        let (s, h, t) = (stack.to_string(), holder.clone(), token.clone());
        let secs = lease.as_secs_f64();
        let got = conn
            .with(move |c| {
                Box::pin(async move {
                    match try_acquire_free(c, &s, &h, &t, secs).await? {
                        Some(run_id) => Ok(Attempt::Got {
                            run_id,
                            took_over: None,
                        }),
                        None => try_acquire(c, s, h, t, secs).await,
                    }
                })
            })
            .await?;
        match got {
            Attempt::Got { run_id, took_over } => {
                if let Some(prev) = &took_over {
                    tracing::warn!("took over the expired lock of stack {stack}: {prev}");
                }
                return Ok(Box::new(PgLease::start(
                    conn.clone(),
                    settings.clone(),
                    stack,
                    token,
                    run_id,
                    took_over,
                    lease,
                    sent,
                )));
            }
            Attempt::Held(info) => {
                let waited = start.elapsed();
                if waited >= wait {
                    return Err(BackendError::Held {
                        stack: stack.to_string(),
                        holder: info.to_string(),
                        waited_secs: waited.as_secs(),
                    });
                }
                // Spread retries so twenty waiters do not move in lockstep.
                attempt += 1;
                let jitter = (u64::from(holder.pid) * 7919 + attempt * 104_729) % 150;
                let pause = Duration::from_millis(50 + jitter).min(wait - waited);
                tokio::time::sleep(pause).await;
            }
            Attempt::Vanished => {}
        }
    }
}

/// A held lock and its heartbeat. Release and the plan digest go over the backend's own
/// connection; the heartbeat has one of its own (opened at its first renewal) so a slow
/// history write never delays it.
struct PgLease {
    conn: Arc<Conn>,
    stack: String,
    token: String,
    run_id: String,
    took_over: Option<LockInfo>,
    lost: watch::Receiver<Option<String>>,
    heartbeat: tokio::task::JoinHandle<()>,
    /// The plan digest, once known: written in the background (the apply does not wait a
    /// round trip for it) and again on the run by [`Lease::finish`].
    digest: std::sync::Mutex<Option<Digest>>,
}

/// A plan digest and its background write.
struct Digest {
    value: String,
    write: tokio::task::JoinHandle<Result<(), BackendError>>,
}

impl PgLease {
    #[allow(clippy::too_many_arguments)]
    fn start(
        conn: Arc<Conn>,
        settings: Arc<Settings>,
        stack: &str,
        token: String,
        run_id: String,
        took_over: Option<LockInfo>,
        lease: Duration,
        sent: Instant,
    ) -> PgLease {
        let (tx, lost) = watch::channel(None);
        let heartbeat = tokio::spawn(heartbeat(
            Arc::new(Conn::new(settings)),
            stack.to_string(),
            token.clone(),
            lease,
            sent,
            tx,
        ));
        PgLease {
            conn,
            stack: stack.to_string(),
            token,
            run_id,
            took_over,
            lost,
            heartbeat,
            digest: std::sync::Mutex::new(None),
        }
    }

    fn take_digest(&self) -> Option<Digest> {
        self.digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Renews the lease every third of its length. The holder gives up (reports the lease lost)
/// once 80% of the lease has passed since the last renewal it sent that succeeded: the
/// server's expiry is later still, so nobody else can hold the lock while this one thinks
/// it does.
async fn heartbeat(
    conn: Arc<Conn>,
    stack: String,
    token: String,
    lease: Duration,
    mut last_ok: Instant,
    tx: watch::Sender<Option<String>>,
) {
    let period = lease / 3;
    let give_up = lease.mul_f64(0.8);
    let mut last_err = String::new();
    loop {
        let deadline = last_ok + give_up;
        let next = period.min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(next).await;
        if Instant::now() >= deadline {
            let _ = tx.send(Some(format!(
                "could not renew the lease of stack {stack} for {:.1}s ({last_err})",
                last_ok.elapsed().as_secs_f64()
            )));
            return;
        }
        let sent = Instant::now();
        let (s, t, secs) = (stack.clone(), token.clone(), lease.as_secs_f64());
        let renew = conn.with(move |c| {
            Box::pin(async move {
                Ok(c.execute_typed(
                    "UPDATE cairn_locks SET lease_expires_at = now() + make_interval(secs => $3) WHERE stack = $1 AND token = $2",
                    &[(&s, Type::TEXT), (&t, Type::TEXT), (&secs, Type::FLOAT8)],
                )
                .await?)
            })
        });
        match tokio::time::timeout(period, renew).await {
            Ok(Ok(1)) => last_ok = sent,
            Ok(Ok(_)) => {
                let _ = tx.send(Some(format!(
                    "the lock of stack {stack} was taken over or force-released"
                )));
                return;
            }
            Ok(Err(e)) => last_err = e.to_string(),
            Err(_) => last_err = "renewal timed out".into(),
        }
    }
}

#[async_trait::async_trait]
impl Lease for PgLease {
    fn run_id(&self) -> &str {
        &self.run_id
    }

    fn took_over(&self) -> Option<&LockInfo> {
        self.took_over.as_ref()
    }

    async fn lost(&self) -> String {
        let mut rx = self.lost.clone();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Sends the update and returns at once: the lock row shows the digest a round trip
    /// later, the apply does not wait for it (a failed write is logged). [`Lease::finish`]
    /// records the digest on the run again.
    async fn set_plan_digest(&self, digest: &str) -> Result<(), BackendError> {
        let (conn, s, t, d) = (
            self.conn.clone(),
            self.stack.clone(),
            self.token.clone(),
            digest.to_string(),
        );
        let run: i64 = self.run_id.parse().unwrap_or(-1);
        let write = tokio::spawn(async move {
            conn.with(move |c| {
                Box::pin(async move {
                    // Both rows in one statement (atomic, one round trip).
                    c.execute_typed(
                        "WITH l AS (UPDATE cairn_locks SET plan_digest = $3 WHERE stack = $1 AND token = $2)
                         UPDATE cairn_runs SET plan_digest = $3 WHERE id = $4",
                        &[
                            (&s, Type::TEXT),
                            (&t, Type::TEXT),
                            (&d, Type::TEXT),
                            (&run, Type::INT8),
                        ],
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
            .inspect_err(|e| tracing::warn!("could not record the plan digest on the lock: {e}"))
        });
        let previous = self
            .digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .replace(Digest {
                value: digest.to_string(),
                write,
            });
        if let Some(p) = previous {
            // A newer digest replaces it; the connection runs the writes in order anyway.
            drop(p.write);
        }
        Ok(())
    }

    async fn release(self: Box<Self>) -> Result<(), BackendError> {
        self.heartbeat.abort();
        if let Some(d) = self.take_digest() {
            let _ = d.write.await;
        }
        let (s, t) = (self.stack.clone(), self.token.clone());
        self.conn
            .with(move |c| {
                Box::pin(async move {
                    c.execute_typed(
                        "DELETE FROM cairn_locks WHERE stack = $1 AND token = $2",
                        &[(&s, Type::TEXT), (&t, Type::TEXT)],
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Closes the run and releases the lock in one statement (one round trip, atomic). A
    /// lease taken over or force-released meanwhile deletes nothing, and its run, already
    /// closed as interrupted by whoever did that, stays as they left it.
    async fn finish(
        self: Box<Self>,
        _backend: &dyn Backend,
        status: &str,
        summary: &str,
    ) -> Result<(), BackendError> {
        self.heartbeat.abort();
        // The lock row goes away with this statement, and the run gets the digest from it:
        // a digest write still under way is not waited for. Dropping it mid-flight is safe
        // (the driver discards a reply nobody awaits; the statement is autocommitted or never
        // sent), and this statement then follows it on the wire instead of a round trip later.
        let digest = self.take_digest().map(|d| {
            d.write.abort();
            d.value
        });
        let run: i64 = self.run_id.parse().unwrap_or(-1);
        let (s, t, st, su) = (
            self.stack.clone(),
            self.token.clone(),
            status.to_string(),
            summary.to_string(),
        );
        self.conn
            .with(move |c| {
                Box::pin(async move {
                    c.execute_typed(
                        "WITH l AS (DELETE FROM cairn_locks WHERE stack = $1 AND token = $2)
                         UPDATE cairn_runs SET status = $4, summary = $5, finished_at = now(),
                             plan_digest = coalesce($6, plan_digest)
                         WHERE id = $3 AND status = 'running'",
                        &[
                            (&s, Type::TEXT),
                            (&t, Type::TEXT),
                            (&run, Type::INT8),
                            (&st, Type::TEXT),
                            (&su, Type::TEXT),
                            (&digest, Type::TEXT),
                        ],
                    )
                    .await?;
                    Ok(())
                })
            })
            .await
    }
}

impl Drop for PgLease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// Who holds `stack`'s lock.
pub(crate) async fn holder(conn: &Conn, stack: &str) -> Result<Option<LockInfo>, BackendError> {
    let s = stack.to_string();
    conn.with(move |c| {
        Box::pin(async move {
            Ok(c.query_typed_opt(
                &format!("SELECT {LOCK_COLS} FROM cairn_locks WHERE stack = $1"),
                &[(&s, Type::TEXT)],
            )
            .await?
            .map(|r| info(&r).0))
        })
    })
    .await
}

/// Releases `stack`'s lock whoever holds it; records who did and closes the run.
pub(crate) async fn force_unlock(
    conn: &Conn,
    stack: &str,
    by: &Holder,
) -> Result<Option<LockInfo>, BackendError> {
    let (s, by) = (stack.to_string(), by.clone());
    conn.with(move |c| {
        Box::pin(async move {
            let tx = c.transaction().await?;
            let Some(row) = tx
                .query_typed_opt(
                    &format!("DELETE FROM cairn_locks WHERE stack = $1 RETURNING {LOCK_COLS}"),
                    &[(&s, Type::TEXT)],
                )
                .await?
            else {
                return Ok(None);
            };
            let (prev, _) = info(&row);
            let run: i64 = prev.run_id.as_deref().and_then(|r| r.parse().ok()).unwrap_or(-1);
            let note = format!(
                "lock force-released by {}@{} pid {}",
                by.user, by.host, by.pid
            );
            tx.execute_typed(
                "UPDATE cairn_runs SET status = $2, finished_at = now(), summary = $3 WHERE id = $1 AND status = 'running'",
                &[(&run, Type::INT8), (&status::INTERRUPTED, Type::TEXT), (&note, Type::TEXT)],
            )
            .await?;
            record_event(&tx, &s, "force-unlock", &prev.holder.to_string(), &by).await?;
            tx.commit().await?;
            Ok(Some(prev))
        })
    })
    .await
}
