//! The default backend: an OS file lock per stack (`<state dir>/<stack>.lock`, holding the
//! holder as JSON) and a JSON Lines history per stack (`<state dir>/history/<stack>.jsonl`).
//! The OS lock ends with its process, so a killed holder never blocks the next run; the next
//! holder closes the dead one's run as interrupted.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{
    Backend, BackendError, ChangeRecord, Holder, Lease, LockInfo, RunRecord, now_ms, status,
};

/// Lock files and history under one directory (by default [`crate::lock::state_dir`]).
pub struct LocalBackend {
    dir: PathBuf,
}

/// One line of a history file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Run(RunRecord),
    Change {
        run: String,
        #[serde(flatten)]
        change: ChangeRecord,
    },
    End {
        run: String,
        status: String,
        summary: String,
        finished_at_ms: i64,
    },
}

impl LocalBackend {
    /// Locks and history live in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalBackend { dir: dir.into() }
    }

    fn err(&self, path: &Path, e: impl std::fmt::Display) -> BackendError {
        BackendError::Storage {
            backend: self.describe(),
            reason: format!("{}: {e}", path.display()),
        }
    }

    fn history_path(&self, stack: &str) -> PathBuf {
        self.dir.join("history").join(format!("{stack}.jsonl"))
    }

    fn append(&self, stack: &str, events: &[Event]) -> Result<(), BackendError> {
        let path = self.history_path(stack);
        let mut buf = Vec::new();
        for e in events {
            serde_json::to_writer(&mut buf, e).map_err(|e| self.err(&path, e))?;
            buf.push(b'\n');
        }
        std::fs::create_dir_all(path.parent().expect("history dir"))
            .map_err(|e| self.err(&path, e))?;
        let mut o = OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        // One write per batch: appends from two processes never interleave within a line.
        o.open(&path)
            .and_then(|mut f| f.write_all(&buf))
            .map_err(|e| self.err(&path, e))
    }

    /// Every run of a stack with its changes, in the order they started.
    fn load(&self, stack: &str) -> Result<Vec<(RunRecord, Vec<ChangeRecord>)>, BackendError> {
        let path = self.history_path(stack);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(&path, e)),
        };
        let mut runs: Vec<(RunRecord, Vec<ChangeRecord>)> = Vec::new();
        for line in std::io::BufReader::new(f).lines() {
            let line = line.map_err(|e| self.err(&path, e))?;
            // A line cut short by a crash is skipped, not fatal.
            let Ok(ev) = serde_json::from_str::<Event>(&line) else {
                continue;
            };
            match ev {
                Event::Run(r) => runs.push((r, Vec::new())),
                Event::Change { run, change } => {
                    if let Some((_, c)) = runs.iter_mut().rev().find(|(r, _)| r.id == run) {
                        c.push(change);
                    }
                }
                Event::End {
                    run,
                    status,
                    summary,
                    finished_at_ms,
                } => {
                    if let Some((r, _)) = runs.iter_mut().rev().find(|(r, _)| r.id == run) {
                        r.status = status;
                        r.summary = Some(summary);
                        r.finished_at_ms = Some(finished_at_ms);
                    }
                }
            }
        }
        Ok(runs)
    }

    fn stacks(&self) -> Result<Vec<String>, BackendError> {
        let dir = self.dir.join("history");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err(&dir, e)),
        };
        Ok(entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".jsonl")
                    .map(String::from)
            })
            .collect())
    }

    fn open_lock(&self, stack: &str) -> Result<(File, PathBuf), BackendError> {
        let path = self.dir.join(format!("{stack}.lock"));
        std::fs::create_dir_all(&self.dir).map_err(|e| self.err(&path, e))?;
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| self.err(&path, e))?;
        Ok((f, path))
    }

    fn new_run(&self, stack: &str, holder: &Holder) -> Result<String, BackendError> {
        // Two runs of one process opened within a millisecond (a refused rotation and its
        // rerun from a script) still get distinct ids: each id's time is after the last one's.
        static LAST_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let now = now_ms();
        let ms = LAST_MS
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |last| Some(now.max(last + 1)),
            )
            .map_or(now, |last| now.max(last + 1));
        let id = format!("{ms}-{}", holder.pid);
        self.append(
            stack,
            &[Event::Run(RunRecord {
                id: id.clone(),
                stack: stack.to_string(),
                holder: holder.clone(),
                status: status::RUNNING.into(),
                finished_at_ms: None,
                summary: None,
            })],
        )?;
        Ok(id)
    }

    fn stack_of_run(&self, id: &str) -> Result<String, BackendError> {
        for s in self.stacks()? {
            if self.load(&s)?.iter().any(|(r, _)| r.id == id) {
                return Ok(s);
            }
        }
        Err(BackendError::NoSuchRun(id.to_string()))
    }

    /// Closes the run of a lock's previous holder if it never closed it itself.
    fn close_dead_run(&self, prev: &LockInfo, by: &Holder) -> Result<bool, BackendError> {
        let Some(run) = &prev.run_id else {
            return Ok(false);
        };
        let open = self
            .load(&prev.stack)?
            .iter()
            .any(|(r, _)| &r.id == run && r.status == status::RUNNING);
        if open {
            self.append(
                &prev.stack,
                &[Event::End {
                    run: run.clone(),
                    status: status::INTERRUPTED.into(),
                    summary: format!(
                        "holder {} ended without closing the run; lock taken over by {}@{} pid {}",
                        prev.holder, by.user, by.host, by.pid
                    ),
                    finished_at_ms: now_ms(),
                }],
            )?;
        }
        Ok(open)
    }
}

fn read_info(f: &mut File) -> Option<LockInfo> {
    let mut s = String::new();
    f.rewind().ok()?;
    std::io::Read::read_to_string(f, &mut s).ok()?;
    serde_json::from_str(&s).ok()
}

struct LocalLease {
    _file: File,
    run_id: String,
    took_over: Option<LockInfo>,
}

#[async_trait::async_trait]
impl Lease for LocalLease {
    fn run_id(&self) -> &str {
        &self.run_id
    }
    fn took_over(&self) -> Option<&LockInfo> {
        self.took_over.as_ref()
    }
    async fn lost(&self) -> String {
        // An OS lock lasts as long as its process.
        std::future::pending().await
    }
    async fn set_plan_digest(&self, _digest: &str) -> Result<(), BackendError> {
        Ok(())
    }
    async fn release(self: Box<Self>) -> Result<(), BackendError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl Backend for LocalBackend {
    fn describe(&self) -> String {
        format!("local ({})", self.dir.display())
    }

    async fn check(&self) -> Result<(), BackendError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.err(&self.dir, e))
    }

    async fn acquire(
        &self,
        stack: &str,
        holder: &Holder,
        wait: Duration,
    ) -> Result<Box<dyn Lease>, BackendError> {
        let (mut f, path) = self.open_lock(stack)?;
        let start = Instant::now();
        loop {
            match f.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= wait {
                        let holder = read_info(&mut f)
                            .map(|i| i.to_string())
                            .unwrap_or_else(|| "another process".into());
                        return Err(BackendError::Held {
                            stack: stack.to_string(),
                            holder: format!("{holder}; lock file {}", path.display()),
                            waited_secs: start.elapsed().as_secs(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(self.err(&path, e)),
            }
        }
        let took_over = match read_info(&mut f) {
            Some(prev) if self.close_dead_run(&prev, holder)? => Some(prev),
            _ => None,
        };
        let run_id = self.new_run(stack, holder)?;
        let info = LockInfo {
            stack: stack.to_string(),
            holder: holder.clone(),
            run_id: Some(run_id.clone()),
            lease_expires_at_ms: None,
        };
        let json = serde_json::to_vec(&info).map_err(|e| self.err(&path, e))?;
        f.set_len(0)
            .and_then(|()| f.rewind())
            .and_then(|()| f.write_all(&json))
            .map_err(|e| self.err(&path, e))?;
        Ok(Box::new(LocalLease {
            _file: f,
            run_id,
            took_over,
        }))
    }

    async fn holder(&self, stack: &str) -> Result<Option<LockInfo>, BackendError> {
        if !self.dir.join(format!("{stack}.lock")).exists() {
            return Ok(None);
        }
        let (mut f, path) = self.open_lock(stack)?;
        match f.try_lock() {
            Ok(()) => Ok(None),
            Err(std::fs::TryLockError::WouldBlock) => {
                Ok(Some(read_info(&mut f).unwrap_or(LockInfo {
                    stack: stack.to_string(),
                    holder: Holder {
                        user: "?".into(),
                        host: "?".into(),
                        pid: 0,
                        ci_job_url: None,
                        operation: "apply".into(),
                        plan_digest: None,
                        started_at_ms: 0,
                    },
                    run_id: None,
                    lease_expires_at_ms: None,
                })))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(self.err(&path, e)),
        }
    }

    async fn force_unlock(
        &self,
        stack: &str,
        _by: &Holder,
    ) -> Result<Option<LockInfo>, BackendError> {
        match self.holder(stack).await? {
            None => Ok(None),
            Some(info) => Err(BackendError::Storage {
                backend: self.describe(),
                reason: format!(
                    "the local lock of {stack:?} is held by a live process ({info}); it ends with that process — stop it instead"
                ),
            }),
        }
    }

    async fn start_run(&self, stack: &str, holder: &Holder) -> Result<String, BackendError> {
        self.new_run(stack, holder)
    }

    async fn record_changes(
        &self,
        run: &str,
        changes: &[ChangeRecord],
    ) -> Result<(), BackendError> {
        let stack = self.stack_of_run(run)?;
        let events: Vec<Event> = changes
            .iter()
            .map(|c| Event::Change {
                run: run.to_string(),
                change: c.clone(),
            })
            .collect();
        self.append(&stack, &events)
    }

    async fn finish_run(&self, run: &str, status: &str, summary: &str) -> Result<(), BackendError> {
        let stack = self.stack_of_run(run)?;
        self.append(
            &stack,
            &[Event::End {
                run: run.to_string(),
                status: status.to_string(),
                summary: summary.to_string(),
                finished_at_ms: now_ms(),
            }],
        )
    }

    async fn runs(
        &self,
        stack: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, BackendError> {
        let stacks = match stack {
            Some(s) => vec![s.to_string()],
            None => self.stacks()?,
        };
        let mut all = Vec::new();
        for s in stacks {
            all.extend(self.load(&s)?.into_iter().map(|(r, _)| r));
        }
        // Newest first; runs started in the same millisecond keep their order in the file
        // (the later one first).
        all.reverse();
        all.sort_by_key(|r| std::cmp::Reverse(r.holder.started_at_ms));
        all.truncate(limit);
        Ok(all)
    }

    async fn run(&self, id: &str) -> Result<(RunRecord, Vec<ChangeRecord>), BackendError> {
        let stack = self.stack_of_run(id)?;
        self.load(&stack)?
            .into_iter()
            .find(|(r, _)| r.id == id)
            .ok_or_else(|| BackendError::NoSuchRun(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(addr: &str, outcome: &str) -> ChangeRecord {
        ChangeRecord {
            address: addr.into(),
            action: "create".into(),
            outcome: outcome.into(),
            duration_ms: 5,
            error: None,
        }
    }

    #[tokio::test]
    async fn a_second_apply_waits_then_fails_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        let held = b
            .acquire("web", &Holder::current("apply"), Duration::ZERO)
            .await
            .unwrap();
        let err = match b
            .acquire("web", &Holder::current("apply"), Duration::from_millis(300))
            .await
        {
            Err(e) => e.to_string(),
            Ok(_) => panic!("second lock granted"),
        };
        assert!(
            err.contains("\"web\" is locked by")
                && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        let shown = b.holder("web").await.unwrap().expect("holder shown");
        assert_eq!(shown.run_id.as_deref(), Some(held.run_id()));
        assert!(
            b.acquire("other", &Holder::current("apply"), Duration::ZERO)
                .await
                .is_ok()
        );
        held.release().await.unwrap();
        assert!(b.holder("web").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn runs_and_changes_are_kept_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        let lease = b
            .acquire("web", &Holder::current("apply"), Duration::ZERO)
            .await
            .unwrap();
        let run = lease.run_id().to_string();
        b.record_changes(&run, &[change("a.x", "done"), change("a.y", "failed")])
            .await
            .unwrap();
        b.finish_run(&run, status::FAILED, "1 done, 1 failed")
            .await
            .unwrap();
        lease.release().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let drift = b.start_run("web", &Holder::current("drift")).await.unwrap();
        b.finish_run(&drift, status::IN_SYNC, "no drift")
            .await
            .unwrap();

        let runs = b.runs(Some("web"), 10).await.unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].holder.operation, "drift");
        assert_eq!(runs[1].status, status::FAILED);
        let (r, changes) = b.run(&run).await.unwrap();
        assert_eq!(r.summary.as_deref(), Some("1 done, 1 failed"));
        assert_eq!(
            changes,
            vec![change("a.x", "done"), change("a.y", "failed")]
        );
        assert_eq!(b.runs(None, 1).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn runs_opened_within_one_millisecond_are_distinct_and_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        // One holder (one start time) for all: as if every run began in the same millisecond.
        let holder = Holder::current("rotate");
        let ids: Vec<String> = [0, 1, 2]
            .iter()
            .map(|_| b.new_run("web", &holder).unwrap())
            .collect();
        let mut distinct = ids.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "{ids:?}");
        let listed: Vec<String> = b
            .runs(Some("web"), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(listed, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    }

    #[tokio::test]
    async fn a_dead_holders_run_is_closed_as_interrupted_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        let lease = b
            .acquire("web", &Holder::current("apply"), Duration::ZERO)
            .await
            .unwrap();
        let dead = lease.run_id().to_string();
        // The process "dies": its OS lock goes, its run stays open.
        drop(lease);
        let next = b
            .acquire("web", &Holder::current("apply"), Duration::ZERO)
            .await
            .unwrap();
        let prev = next.took_over().expect("took over");
        assert_eq!(prev.run_id.as_deref(), Some(dead.as_str()));
        let (r, _) = b.run(&dead).await.unwrap();
        assert_eq!(r.status, status::INTERRUPTED);
        assert!(r.summary.unwrap().contains("taken over by"));
    }
}
