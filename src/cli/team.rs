//! The backend commands and selection: `CAIRN_BACKEND` / `--backend` picks PostgreSQL,
//! otherwise the local state directory; `lock`, `unlock --force`, `history`. Under `--json`
//! each prints one compact JSON document on one line.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use cairn_backend_pg::PgBackend;
use cairn_core::backend::local::LocalBackend;
use cairn_core::backend::{Backend, ChangeRecord, Holder, RunRecord, format_time};
use cairn_core::lock::state_dir;

/// Lease length for the PostgreSQL backend, in seconds (default 30).
pub const LEASE_ENV: &str = "CAIRN_LOCK_LEASE_SECS";

/// The backend named by `--backend` / `CAIRN_BACKEND`, else the local one.
pub fn select(url: Option<&str>) -> anyhow::Result<Arc<dyn Backend>> {
    match url.filter(|u| !u.is_empty()) {
        None => Ok(Arc::new(LocalBackend::new(state_dir()?))),
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            let mut b = PgBackend::new(u)?;
            if let Some(secs) = std::env::var(LEASE_ENV)
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| *s > 0.0)
            {
                b = b.with_lease(Duration::from_secs_f64(secs));
            }
            Ok(Arc::new(b))
        }
        Some(_) => {
            bail!("CAIRN_BACKEND must be a postgres://… URL (unset it for the local backend)")
        }
    }
}

/// `lock`: prints each stack's holder.
pub async fn lock(backend: &dyn Backend, stacks: &[&str], json: bool) -> anyhow::Result<u8> {
    let mut out = Vec::new();
    for s in stacks {
        let info = backend.holder(s).await?;
        if !json {
            match &info {
                Some(i) => println!("{s}: locked by {i}"),
                None => println!("{s}: not locked"),
            }
        }
        out.push(serde_json::json!({"stack": s, "lock": info}));
    }
    if json {
        println!("{}", serde_json::to_string(&out)?);
    }
    Ok(0)
}

/// `unlock --force`: releases one stack's lock after confirmation.
pub async fn unlock(
    backend: &dyn Backend,
    stack: Option<&str>,
    force: bool,
    yes: bool,
) -> anyhow::Result<u8> {
    if !force {
        bail!(
            "unlock releases someone else's lock: pass --force (and see `{} lock` first)",
            super::bin_name()
        );
    }
    let Some(stack) = stack else {
        bail!("unlock needs --stack: it releases one stack's lock");
    };
    let Some(info) = backend.holder(stack).await? else {
        println!("{stack}: not locked");
        return Ok(0);
    };
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to unlock without confirmation: stdin is not a terminal; pass --yes");
        }
        eprint!(
            "Release the lock of stack {stack} held by {info}? Its run is closed as interrupted. Only 'yes' is accepted: "
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            bail!("unlock cancelled");
        }
    }
    match backend
        .force_unlock(stack, &Holder::current("unlock"))
        .await?
    {
        Some(prev) => println!("{stack}: released the lock held by {prev}"),
        None => println!("{stack}: not locked"),
    }
    Ok(0)
}

fn run_line(r: &RunRecord) -> String {
    format!(
        "{:>8}  {}  {:<12}  {:<6}  {:<11}  {}@{}{}  {}",
        r.id,
        format_time(r.holder.started_at_ms),
        r.stack,
        r.holder.operation,
        r.status,
        r.holder.user,
        r.holder.host,
        r.holder
            .ci_job_url
            .as_deref()
            .map(|u| format!(" ({u})"))
            .unwrap_or_default(),
        r.summary.as_deref().unwrap_or("")
    )
}

fn change_line(c: &ChangeRecord) -> String {
    format!(
        "  {:<8} {:<9} {:>7}ms  {}{}",
        c.outcome,
        c.action,
        c.duration_ms,
        c.address,
        c.error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    )
}

/// `history [RUN]`.
pub async fn history(
    backend: &dyn Backend,
    stack: Option<&str>,
    run: Option<&str>,
    limit: usize,
    json: bool,
) -> anyhow::Result<u8> {
    if let Some(id) = run {
        let (r, changes) = backend.run(id).await?;
        if json {
            println!(
                "{}",
                serde_json::to_string(&serde_json::json!({"run": r, "changes": changes}))?
            );
        } else {
            println!("{}", run_line(&r));
            if let Some(d) = &r.holder.plan_digest {
                println!("  plan {d}");
            }
            for c in &changes {
                println!("{}", change_line(c));
            }
            if changes.is_empty() {
                println!("  (no resource changes)");
            }
        }
        return Ok(0);
    }
    let runs = backend.runs(stack, limit).await?;
    if json {
        println!("{}", serde_json::to_string(&runs)?);
    } else if runs.is_empty() {
        println!("no runs recorded in {}", backend.describe());
    } else {
        for r in &runs {
            println!("{}", run_line(r));
        }
    }
    Ok(0)
}
