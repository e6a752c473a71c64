//! Run history: `cairn_runs` (one row per apply or drift check) and `cairn_changes` (one row
//! per resource change or drifted object). A batch of changes is one statement.

use cairn_core::backend::{BackendError, ChangeRecord, Holder, RunRecord};
use tokio_postgres::types::Type;

use crate::conn::{Conn, Fail};

const RUN_COLS: &str = "id::text, stack, operation, status, holder_user, holder_host, holder_pid, ci_job_url, plan_digest, \
     (extract(epoch FROM started_at) * 1000)::int8, (extract(epoch FROM finished_at) * 1000)::int8, summary";

fn run_record(r: &tokio_postgres::Row) -> RunRecord {
    let pid: i32 = r.get(6);
    RunRecord {
        id: r.get(0),
        stack: r.get(1),
        holder: Holder {
            user: r.get(4),
            host: r.get(5),
            pid: pid as u32,
            ci_job_url: r.get(7),
            operation: r.get(2),
            plan_digest: r.get(8),
            started_at_ms: r.get(9),
        },
        status: r.get(3),
        finished_at_ms: r.get(10),
        summary: r.get(11),
    }
}

fn run_id(id: &str) -> Result<i64, BackendError> {
    id.parse()
        .map_err(|_| BackendError::NoSuchRun(id.to_string()))
}

/// Opens a run without a lock (drift).
pub(crate) async fn start_run(
    conn: &Conn,
    stack: &str,
    h: &Holder,
) -> Result<String, BackendError> {
    let (s, h) = (stack.to_string(), h.clone());
    conn.with(move |c| {
        Box::pin(async move {
            let pid = h.pid as i32;
            let id: i64 = c
                .query_typed_one(
                    "INSERT INTO cairn_runs (stack, operation, status, holder_user, holder_host, holder_pid, ci_job_url, plan_digest)
                     VALUES ($1, $2, 'running', $3, $4, $5, $6, $7) RETURNING id",
                    &[
                        (&s, Type::TEXT),
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
            Ok(id.to_string())
        })
    })
    .await
}

/// Appends changes to a run in one statement.
pub(crate) async fn record_changes(
    conn: &Conn,
    run: &str,
    changes: &[ChangeRecord],
) -> Result<(), BackendError> {
    if changes.is_empty() {
        return Ok(());
    }
    let id = run_id(run)?;
    let addresses: Vec<String> = changes.iter().map(|c| c.address.clone()).collect();
    let actions: Vec<String> = changes.iter().map(|c| c.action.clone()).collect();
    let outcomes: Vec<String> = changes.iter().map(|c| c.outcome.clone()).collect();
    let durations: Vec<i64> = changes.iter().map(|c| c.duration_ms).collect();
    let errors: Vec<Option<String>> = changes.iter().map(|c| c.error.clone()).collect();
    conn.with(move |c| {
        Box::pin(async move {
            c.execute_typed(
                "INSERT INTO cairn_changes (run_id, address, action, outcome, duration_ms, error)
                 SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::int8[], $6::text[])",
                &[
                    (&id, Type::INT8),
                    (&addresses, Type::TEXT_ARRAY),
                    (&actions, Type::TEXT_ARRAY),
                    (&outcomes, Type::TEXT_ARRAY),
                    (&durations, Type::INT8_ARRAY),
                    (&errors, Type::TEXT_ARRAY),
                ],
            )
            .await?;
            Ok(())
        })
    })
    .await
}

/// Closes a run, unless someone already closed it (a takeover marks it interrupted).
pub(crate) async fn finish_run(
    conn: &Conn,
    run: &str,
    status: &str,
    summary: &str,
) -> Result<(), BackendError> {
    let id = run_id(run)?;
    let (st, su) = (status.to_string(), summary.to_string());
    conn.with(move |c| {
        Box::pin(async move {
            c.execute_typed(
                "UPDATE cairn_runs SET status = $2, summary = $3, finished_at = now() WHERE id = $1 AND status = 'running'",
                &[(&id, Type::INT8), (&st, Type::TEXT), (&su, Type::TEXT)],
            )
            .await?;
            Ok(())
        })
    })
    .await
}

/// Newest runs first.
pub(crate) async fn runs(
    conn: &Conn,
    stack: Option<&str>,
    limit: usize,
) -> Result<Vec<RunRecord>, BackendError> {
    let s = stack.map(String::from);
    let limit = limit.min(i64::MAX as usize) as i64;
    conn.with(move |c| {
        Box::pin(async move {
            Ok(c.query_typed(
                &format!(
                    "SELECT {RUN_COLS} FROM cairn_runs WHERE $1::text IS NULL OR stack = $1 ORDER BY id DESC LIMIT $2"
                ),
                &[(&s, Type::TEXT), (&limit, Type::INT8)],
            )
            .await?
            .iter()
            .map(run_record)
            .collect())
        })
    })
    .await
}

/// One run with its changes.
pub(crate) async fn run(
    conn: &Conn,
    id: &str,
) -> Result<(RunRecord, Vec<ChangeRecord>), BackendError> {
    let n = run_id(id)?;
    let id = id.to_string();
    conn.with(move |c| {
        Box::pin(async move {
            let Some(r) = c
                .query_typed_opt(
                    &format!("SELECT {RUN_COLS} FROM cairn_runs WHERE id = $1"),
                    &[(&n, Type::INT8)],
                )
                .await?
            else {
                return Err(Fail::Backend(BackendError::NoSuchRun(id)));
            };
            let changes = c
                .query_typed(
                    "SELECT address, action, outcome, duration_ms, error FROM cairn_changes WHERE run_id = $1 ORDER BY seq",
                    &[(&n, Type::INT8)],
                )
                .await?
                .iter()
                .map(|r| ChangeRecord {
                    address: r.get(0),
                    action: r.get(1),
                    outcome: r.get(2),
                    duration_ms: r.get(3),
                    error: r.get(4),
                })
                .collect();
            Ok((run_record(&r), changes))
        })
    })
    .await
}
