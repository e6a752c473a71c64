//! The schema, created and migrated by cairn. `cairn_schema` holds one row with the version;
//! migrations run in one transaction that holds that row's lock, so concurrent first runs
//! serialise instead of racing. A version newer than [`VERSION`] is refused.

use cairn_core::backend::BackendError;
use tokio_postgres::error::SqlState;

use crate::conn::{Conn, Fail};

/// The newest schema version this binary knows.
pub const VERSION: i32 = 1;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE cairn_runs (
    id bigserial PRIMARY KEY,
    stack text NOT NULL,
    operation text NOT NULL,
    status text NOT NULL,
    holder_user text NOT NULL,
    holder_host text NOT NULL,
    holder_pid integer NOT NULL,
    ci_job_url text,
    plan_digest text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    summary text
);
CREATE INDEX cairn_runs_by_stack ON cairn_runs (stack, id DESC);
CREATE TABLE cairn_changes (
    run_id bigint NOT NULL REFERENCES cairn_runs (id),
    seq bigserial,
    address text NOT NULL,
    action text NOT NULL,
    outcome text NOT NULL,
    duration_ms bigint NOT NULL,
    error text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE cairn_locks (
    stack text PRIMARY KEY,
    token text NOT NULL,
    run_id bigint NOT NULL REFERENCES cairn_runs (id),
    holder_user text NOT NULL,
    holder_host text NOT NULL,
    holder_pid integer NOT NULL,
    ci_job_url text,
    operation text NOT NULL,
    plan_digest text,
    started_at timestamptz NOT NULL DEFAULT now(),
    lease_expires_at timestamptz NOT NULL
);
CREATE TABLE cairn_lock_events (
    id bigserial PRIMARY KEY,
    stack text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    event text NOT NULL,
    previous_holder text,
    by_user text NOT NULL,
    by_host text NOT NULL,
    by_pid integer NOT NULL
);
"#];

const _: () = assert!(MIGRATIONS.len() == VERSION as usize);

/// The version recorded in the database (0: no schema yet).
pub(crate) async fn current(conn: &Conn) -> Result<i32, BackendError> {
    conn.with(|c| {
        Box::pin(async move {
            match c
                .query_typed_opt("SELECT version FROM cairn_schema WHERE id = 1", &[])
                .await
            {
                Ok(row) => Ok(row.map(|r| r.get::<_, i32>(0)).unwrap_or(0)),
                Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(0),
                Err(e) => Err(e.into()),
            }
        })
    })
    .await
}

fn too_new(conn: &Conn, found: i32) -> BackendError {
    BackendError::SchemaTooNew {
        backend: conn.describe().to_string(),
        found,
        known: VERSION,
    }
}

/// Brings the schema to [`VERSION`], or refuses a newer one.
pub(crate) async fn migrate(conn: &Conn) -> Result<(), BackendError> {
    let found = current(conn).await?;
    if found > VERSION {
        return Err(too_new(conn, found));
    }
    if found == VERSION {
        return Ok(());
    }
    let mut attempt = 0;
    loop {
        let describe = conn.describe().to_string();
        let r = conn
            .with(|c| {
                Box::pin(async move {
                    let tx = c.transaction().await?;
                    tx.batch_execute(
                        "CREATE TABLE IF NOT EXISTS cairn_schema (id integer PRIMARY KEY CHECK (id = 1), version integer NOT NULL);
                         INSERT INTO cairn_schema VALUES (1, 0) ON CONFLICT (id) DO NOTHING;",
                    )
                    .await?;
                    let v: i32 = tx
                        .query_typed_one("SELECT version FROM cairn_schema WHERE id = 1 FOR UPDATE", &[])
                        .await?
                        .get(0);
                    if v > VERSION {
                        return Err(Fail::Backend(BackendError::SchemaTooNew {
                            backend: describe,
                            found: v,
                            known: VERSION,
                        }));
                    }
                    for m in &MIGRATIONS[v as usize..] {
                        tx.batch_execute(m).await?;
                    }
                    tx.execute_typed(
                        "UPDATE cairn_schema SET version = $1 WHERE id = 1",
                        &[(&VERSION, tokio_postgres::types::Type::INT4)],
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(())
                })
            })
            .await;
        match r {
            // Two first runs racing to create `cairn_schema` itself: the loser retries.
            Err(BackendError::Storage { reason, .. })
                if attempt < 5 && (reason.contains("(23505)") || reason.contains("(42P07)")) =>
            {
                attempt += 1;
            }
            other => return other,
        }
    }
}
