//! The records a backend keeps: who holds a lock, runs and their resource changes, and the
//! redaction that keeps secrets out of them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::planner::Planned;

/// Who runs an operation: shown by `stacks lock`, stored on each run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The OS user (`$USER`, else `$LOGNAME`, else `uid N`).
    pub user: String,
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// The CI job's URL when running in CI (GitHub Actions, GitLab, Jenkins or `CAIRN_CI_JOB_URL`).
    pub ci_job_url: Option<String>,
    /// `apply`, `drift`, `unlock`.
    pub operation: String,
    /// The digest of the plan being applied, once known.
    pub plan_digest: Option<String>,
    /// When it started (Unix milliseconds).
    pub started_at_ms: i64,
}

impl Holder {
    /// This process, about to run `operation`.
    pub fn current(operation: &str) -> Holder {
        Holder::from_env(operation, |k| {
            std::env::var(k).ok().filter(|v| !v.is_empty())
        })
    }

    /// [`Holder::current`] over a given environment.
    pub fn from_env(operation: &str, env: impl Fn(&str) -> Option<String>) -> Holder {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| env("HOSTNAME"))
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".into());
        let ci_job_url = env("CAIRN_CI_JOB_URL")
            .or_else(|| {
                Some(format!(
                    "{}/{}/actions/runs/{}",
                    env("GITHUB_SERVER_URL")?,
                    env("GITHUB_REPOSITORY")?,
                    env("GITHUB_RUN_ID")?
                ))
            })
            .or_else(|| env("CI_JOB_URL"))
            .or_else(|| env("BUILD_URL"));
        Holder {
            user: env("USER")
                .or_else(|| env("LOGNAME"))
                .unwrap_or_else(uid_name),
            host,
            pid: std::process::id(),
            ci_job_url,
            operation: operation.to_string(),
            plan_digest: None,
            started_at_ms: now_ms(),
        }
    }
}

/// `uid N` when the environment names no user (containers, some CI runners).
fn uid_name() -> String {
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata("/proc/self") {
        return format!("uid {}", std::os::unix::fs::MetadataExt::uid(&m));
    }
    "unknown-user".into()
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{} pid {} ({} since {}",
            self.user,
            self.host,
            self.pid,
            self.operation,
            format_time(self.started_at_ms)
        )?;
        if let Some(d) = &self.plan_digest {
            write!(f, ", plan {d}")?;
        }
        if let Some(u) = &self.ci_job_url {
            write!(f, ", CI job {u}")?;
        }
        write!(f, ")")
    }
}

/// A held lock as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The stack.
    pub stack: String,
    /// Who holds it.
    pub holder: Holder,
    /// The run it was taken for.
    pub run_id: Option<String>,
    /// When the lease ends unless renewed (Unix milliseconds); `None` for a lock that lives
    /// as long as its process (the local file lock).
    pub lease_expires_at_ms: Option<i64>,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.holder)?;
        if let Some(r) = &self.run_id {
            write!(f, ", run {r}")?;
        }
        if let Some(e) = self.lease_expires_at_ms {
            write!(f, ", lease until {}", format_time(e))?;
        }
        Ok(())
    }
}

/// One run (an apply or a drift check) in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Its id (`stacks history RUN`).
    pub id: String,
    /// The stack.
    pub stack: String,
    /// Who ran it, what and when (`holder.operation` is the run's kind).
    pub holder: Holder,
    /// See [`super::status`].
    pub status: String,
    /// When it ended (Unix milliseconds).
    pub finished_at_ms: Option<i64>,
    /// One line: counts, or why it ended.
    pub summary: Option<String>,
}

/// One resource change of a run (or one drifted object of a drift check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// The address.
    pub address: String,
    /// `create`, `update`, `delete`, `gate`, … (drift: the action a plan would take).
    pub action: String,
    /// `done`, `failed`, `skipped`, `unchanged`, `drifted`.
    pub outcome: String,
    /// How long it took.
    pub duration_ms: i64,
    /// Why it failed or was skipped, redacted.
    pub error: Option<String>,
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A digest of what a plan would do (addresses, actions, observed and desired digests), to
/// tell which plan a lock holder is applying. Holds no value.
pub fn plan_digest(planned: &Planned) -> String {
    let parts: Vec<Value> = planned
        .plan
        .resource_changes
        .iter()
        .map(|c| serde_json::json!([c.address.0, c.actions, c.observed_digest, c.desired_digest]))
        .collect();
    crate::plan::digest(&Value::Array(parts))
}

/// Scrubs a plan's secret values out of free text (provider error messages) before it is
/// stored: every value at a sensitive path of a changed or observed object becomes
/// `(sensitive)`, the way plan files show it.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Collects the secrets of a plan: desired values and observed objects alike.
    pub fn for_plan(planned: &Planned) -> Redactor {
        let mut secrets = Vec::new();
        for (c, w) in planned.plan.resource_changes.iter().zip(&planned.work) {
            let observed = w.observed.as_ref().map(|o| &o.value);
            for v in c.after.iter().chain(c.before.iter()).chain(observed) {
                collect(v, &crate::plan::redact(v, c.sensitive), &mut secrets);
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every known secret replaced by `(sensitive)`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "(sensitive)");
            }
        }
        out
    }
}

/// Strings in `v` where `redacted` says `(sensitive)`.
fn collect(v: &Value, redacted: &Value, out: &mut Vec<String>) {
    match (v, redacted) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, c) in a {
                if let Some(r) = b.get(k) {
                    collect(c, r, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (c, r) in a.iter().zip(b) {
                collect(c, r, out);
            }
        }
        (orig, Value::String(r)) if r == "(sensitive)" && orig != redacted => leaves(orig, out),
        _ => {}
    }
}

/// Every scalar under a sensitive value, as text. Very short values are left alone: replacing
/// `"1"` everywhere would garble messages without protecting anything.
fn leaves(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m.values().for_each(|c| leaves(c, out)),
        Value::Array(a) => a.iter().for_each(|c| leaves(c, out)),
        Value::String(s) if s.len() >= 4 => out.push(s.clone()),
        Value::Number(n) if n.to_string().len() >= 4 => out.push(n.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_700_000_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn ci_runs_name_their_job_url() {
        let env = |k: &str| {
            match k {
                "GITHUB_SERVER_URL" => Some("https://github.example"),
                "GITHUB_REPOSITORY" => Some("org/infra"),
                "GITHUB_RUN_ID" => Some("42"),
                "USER" => Some("ci"),
                _ => None,
            }
            .map(String::from)
        };
        let h = Holder::from_env("apply", env);
        assert_eq!(
            h.ci_job_url.as_deref(),
            Some("https://github.example/org/infra/actions/runs/42")
        );
        assert_eq!(h.user, "ci");
        assert!(h.to_string().contains("ci@") && h.to_string().contains("CI job https://"));
    }

    #[test]
    fn redactor_scrubs_sensitive_values_from_error_text() {
        let v = serde_json::json!({"name": "db", "auth": {"password": "hunter2-secret"}, "n": 7});
        let mut secrets = Vec::new();
        collect(
            &v,
            &crate::plan::redact(&v, &["auth.password"]),
            &mut secrets,
        );
        let r = Redactor { secrets };
        assert_eq!(
            r.redact("HTTP 422: password hunter2-secret too weak for db"),
            "HTTP 422: password (sensitive) too weak for db"
        );
    }
}
