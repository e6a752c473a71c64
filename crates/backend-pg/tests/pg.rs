//! The PostgreSQL backend against a real, throwaway PostgreSQL (and PgBouncer in transaction
//! mode): mutual exclusion under contention, takeover after a SIGKILLed holder, independent
//! stacks, a database restart mid-hold, and the bad-input errors.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_backend_pg::PgBackend;
use cairn_backend_pg::testing::{Cluster, free_port};
use cairn_core::backend::{Backend, BackendError, ChangeRecord, Holder, status};

fn holder(pid: u32) -> Holder {
    Holder {
        pid,
        ..Holder::current("apply")
    }
}

fn change(address: &str) -> ChangeRecord {
    ChangeRecord {
        address: address.into(),
        action: "create".into(),
        outcome: "done".into(),
        duration_ms: 12,
        error: None,
    }
}

fn backend(url: &str, lease_ms: u64) -> PgBackend {
    PgBackend::new(url)
        .unwrap()
        .with_lease(Duration::from_millis(lease_ms))
}

async fn held_message(b: &PgBackend, stack: &str) -> String {
    match b.acquire(stack, &holder(1), Duration::ZERO).await {
        Err(e @ BackendError::Held { .. }) => e.to_string(),
        Err(e) => panic!("expected a held lock, got {e}"),
        Ok(_) => panic!("the lock was granted while held"),
    }
}

async fn contenders_take_turns(url: String) {
    let first = backend(&url, 5000);
    let lease = first
        .acquire("web", &holder(4242), Duration::ZERO)
        .await
        .unwrap();
    let msg = held_message(&backend(&url, 5000), "web").await;
    assert!(
        msg.contains("\"web\" is locked by") && msg.contains("pid 4242"),
        "{msg}"
    );
    lease.release().await.unwrap();

    let holding = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..20u32 {
        let (url, holding, most) = (url.clone(), holding.clone(), most.clone());
        tasks.push(tokio::spawn(async move {
            let b = backend(&url, 5000);
            let lease = b
                .acquire("web", &holder(1000 + i), Duration::from_secs(120))
                .await
                .unwrap();
            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            b.record_changes(lease.run_id(), &[change(&format!("server.s{i}"))])
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            holding.fetch_sub(1, Ordering::SeqCst);
            b.finish_run(lease.run_id(), status::SUCCEEDED, "1 done")
                .await
                .unwrap();
            lease.release().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "two contenders held the lock at once"
    );
    let runs = first.runs(Some("web"), 100).await.unwrap();
    let ok = runs
        .iter()
        .filter(|r| r.status == status::SUCCEEDED)
        .count();
    assert_eq!(ok, 20, "every contender's run is recorded: {runs:?}");
    assert!(first.holder("web").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_contenders_hold_one_stacks_lock_one_at_a_time() {
    let c = Cluster::start();
    contenders_take_turns(c.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_contenders_take_turns_through_pgbouncer_transaction_mode() {
    let c = Cluster::with_pgbouncer();
    contenders_take_turns(c.bouncer_url()).await;
}

/// Run as a child process by [`killed_holder_is_taken_over`]: takes the lock, records a
/// change, says so, and waits to be killed.
#[test]
#[ignore = "helper process for the SIGKILL tests"]
fn child_holds_the_lock_until_killed() {
    let Ok(url) = std::env::var("CAIRN_PG_CHILD_URL") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = backend(&url, 1500);
        let lease = b
            .acquire("web", &Holder::current("apply"), Duration::ZERO)
            .await
            .unwrap();
        b.record_changes(lease.run_id(), &[change("server.before-kill")])
            .await
            .unwrap();
        println!("held {}", lease.run_id());
        std::future::pending::<()>().await;
    });
}

async fn killed_holder_is_taken_over(url: String) {
    let b = backend(&url, 1500);
    b.check().await.unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_the_lock_until_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("CAIRN_PG_CHILD_URL", &url)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let child_pid = child.id();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let run = loop {
        let line = lines.next().expect("child said it holds the lock").unwrap();
        if let Some(r) = line.strip_prefix("held ") {
            break r.to_string();
        }
    };
    let msg = held_message(&b, "web").await;
    assert!(msg.contains(&format!("pid {child_pid}")), "{msg}");
    child.kill().unwrap(); // SIGKILL: no chance to release.
    child.wait().unwrap();
    let killed = Instant::now();

    let lease = b
        .acquire("web", &holder(7), Duration::from_secs(20))
        .await
        .unwrap();
    assert!(killed.elapsed() < Duration::from_secs(10));
    let prev = lease.took_over().expect("says whose lease it took over");
    assert_eq!(prev.holder.pid, child_pid);
    assert_eq!(prev.run_id.as_deref(), Some(run.as_str()));
    let (record, changes) = b.run(&run).await.unwrap();
    assert_eq!(record.status, status::INTERRUPTED);
    assert!(
        record
            .summary
            .as_deref()
            .unwrap_or("")
            .contains("taken over by"),
        "{record:?}"
    );
    assert_eq!(changes, vec![change("server.before-kill")], "history kept");
    lease.release().await.unwrap();
}

#[tokio::test]
async fn a_sigkilled_holders_lease_expires_and_the_next_takes_over_marking_it_interrupted() {
    let c = Cluster::start();
    killed_holder_is_taken_over(c.url()).await;
}

#[tokio::test]
async fn a_sigkilled_holder_is_taken_over_through_pgbouncer() {
    let c = Cluster::with_pgbouncer();
    killed_holder_is_taken_over(c.bouncer_url()).await;
}

async fn stacks_are_independent(url: String) {
    let a = backend(&url, 5000);
    let b = backend(&url, 5000);
    let web = a.acquire("web", &holder(1), Duration::ZERO).await.unwrap();
    let t = Instant::now();
    let db = b.acquire("db", &holder(2), Duration::ZERO).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(a.holder("db").await.unwrap().unwrap().holder.pid, 2);
    assert_eq!(b.holder("web").await.unwrap().unwrap().holder.pid, 1);
    web.release().await.unwrap();
    db.release().await.unwrap();
}

#[tokio::test]
async fn two_stacks_never_block_each_other() {
    let c = Cluster::start();
    stacks_are_independent(c.url()).await;
}

#[tokio::test]
async fn two_stacks_never_block_each_other_through_pgbouncer() {
    let c = Cluster::with_pgbouncer();
    stacks_are_independent(c.bouncer_url()).await;
}

async fn retry<T, F: std::future::Future<Output = Result<T, BackendError>>>(
    mut f: impl FnMut() -> F,
) -> T {
    for _ in 0..20 {
        match f().await {
            Ok(v) => return v,
            Err(e) => eprintln!("retrying: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("never succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_mid_hold_never_yields_two_holders_nor_loses_history() {
    let mut c = Cluster::start();
    let a = backend(&c.url(), 4000);
    let lease = a.acquire("web", &holder(11), Duration::ZERO).await.unwrap();
    let run = lease.run_id().to_string();
    a.record_changes(&run, &[change("a.one"), change("a.two")])
        .await
        .unwrap();
    c.restart();

    let b = backend(&c.url(), 4000);
    let mut refused = 0;
    let t = Instant::now();
    let mut b_lease = None;
    while t.elapsed() < Duration::from_secs(3) {
        match b.acquire("web", &holder(22), Duration::ZERO).await {
            Ok(l) => {
                // Only possible once the first holder knows it lost its lease.
                let lost = futures_now(lease.lost()).await;
                assert!(lost.is_some(), "two holders at once");
                b_lease = Some(l);
                break;
            }
            Err(e @ BackendError::Held { .. }) => {
                assert!(e.to_string().contains("pid 11"), "{e}");
                refused += 1;
            }
            Err(e) => eprintln!("while restarting: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        b_lease.is_none(),
        "the heartbeat kept the lease across the restart"
    );
    assert!(refused > 0);
    let three = [change("a.three")];
    retry(|| a.record_changes(&run, &three)).await;
    retry(|| a.finish_run(&run, status::SUCCEEDED, "3 done")).await;
    lease.release().await.unwrap();
    let (record, changes) = b.run(&run).await.unwrap();
    assert_eq!(record.status, status::SUCCEEDED);
    let addrs: Vec<_> = changes.iter().map(|c| c.address.as_str()).collect();
    assert_eq!(addrs, ["a.one", "a.two", "a.three"]);
    assert!(b.acquire("web", &holder(22), Duration::ZERO).await.is_ok());
}

/// `Some(output)` if the future is ready now.
async fn futures_now<T>(f: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(Duration::from_millis(1), f).await.ok()
}

#[tokio::test]
async fn force_unlock_records_who_did_it_and_interrupts_the_run() {
    let c = Cluster::start();
    let a = backend(&c.url(), 1500);
    let lease = a.acquire("web", &holder(5), Duration::ZERO).await.unwrap();
    let run = lease.run_id().to_string();
    let ops = Holder {
        user: "ops-anna".into(),
        ..holder(6)
    };
    let prev = a
        .force_unlock("web", &ops)
        .await
        .unwrap()
        .expect("had a holder");
    assert_eq!(prev.holder.pid, 5);
    assert!(a.holder("web").await.unwrap().is_none());
    let (record, _) = a.run(&run).await.unwrap();
    assert_eq!(record.status, status::INTERRUPTED);
    assert!(
        record
            .summary
            .unwrap()
            .contains("force-released by ops-anna@")
    );
    let who = c.psql("SELECT by_user || ' ' || event FROM cairn_lock_events");
    assert_eq!(who.trim(), "ops-anna force-unlock");
    // The old holder's heartbeat notices.
    let reason = tokio::time::timeout(Duration::from_secs(3), lease.lost())
        .await
        .expect("lease loss noticed");
    assert!(reason.contains("force-released"), "{reason}");
}

#[tokio::test]
async fn an_unreachable_database_is_a_clear_error() {
    let url = format!(
        "postgres://cairn:s3cret-pw@127.0.0.1:{}/postgres?sslmode=disable",
        free_port()
    );
    let e = PgBackend::new(&url).unwrap().check().await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, BackendError::Unreachable { .. }), "{msg}");
    assert!(
        msg.contains("unreachable") && msg.contains("127.0.0.1"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret-pw"), "{msg}");
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error_without_the_password() {
    let c = Cluster::start();
    let e = PgBackend::new(&c.url_with_password("wrong-pw-123"))
        .unwrap()
        .check()
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, BackendError::Auth { .. }), "{msg}");
    assert!(msg.contains("refused the credentials"), "{msg}");
    assert!(!msg.contains("wrong-pw-123"), "{msg}");
}

#[tokio::test]
async fn a_schema_from_a_newer_cairn_is_refused() {
    let c = Cluster::start();
    PgBackend::new(&c.url()).unwrap().check().await.unwrap();
    assert_eq!(c.psql("SELECT version FROM cairn_schema").trim(), "1");
    c.psql("UPDATE cairn_schema SET version = 99");
    let e = PgBackend::new(&c.url()).unwrap().check().await.unwrap_err();
    assert!(
        matches!(e, BackendError::SchemaTooNew { found: 99, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("upgrade cairn"), "{e}");
}

#[tokio::test]
async fn drift_results_and_runs_are_listed_newest_first() {
    let c = Cluster::start();
    let b = backend(&c.url(), 5000);
    let lease = b.acquire("web", &holder(1), Duration::ZERO).await.unwrap();
    let apply = lease.run_id().to_string();
    b.finish_run(&apply, status::FAILED, "1 failed")
        .await
        .unwrap();
    lease.release().await.unwrap();
    let drift = b.start_run("web", &Holder::current("drift")).await.unwrap();
    b.record_changes(
        &drift,
        &[ChangeRecord {
            outcome: "drifted".into(),
            ..change("a.x")
        }],
    )
    .await
    .unwrap();
    b.finish_run(&drift, status::DRIFTED, "1 drifted")
        .await
        .unwrap();
    b.start_run("other", &holder(3)).await.unwrap();
    let runs = b.runs(Some("web"), 10).await.unwrap();
    let got: Vec<_> = runs
        .iter()
        .map(|r| (r.holder.operation.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(got, [("drift", "drifted"), ("apply", "failed")]);
    assert_eq!(b.runs(None, 10).await.unwrap().len(), 3);
    assert_eq!(b.runs(None, 1).await.unwrap().len(), 1);
    assert!(matches!(
        b.run("999999").await,
        Err(BackendError::NoSuchRun(_))
    ));
}

/// What `stacks apply` does at its end: one call closes the run with its outcome (and the plan
/// digest recorded in the background) and frees the lock; a lease force-released meanwhile
/// neither frees the next holder's lock nor rewrites the run its releaser closed.
async fn finishing_closes_the_run_and_frees_the_lock(url: String) {
    let b = backend(&url, 5000);
    let lease = b.acquire("web", &holder(11), Duration::ZERO).await.unwrap();
    let run = lease.run_id().to_string();
    lease.set_plan_digest("sha256:abc").await.unwrap();
    lease
        .finish(&b, status::SUCCEEDED, "no changes")
        .await
        .unwrap();
    assert!(b.holder("web").await.unwrap().is_none(), "the lock is free");
    let (record, _) = b.run(&run).await.unwrap();
    assert_eq!(record.status, status::SUCCEEDED);
    assert_eq!(record.summary.as_deref(), Some("no changes"));
    assert_eq!(record.holder.plan_digest.as_deref(), Some("sha256:abc"));

    let stale = b.acquire("web", &holder(12), Duration::ZERO).await.unwrap();
    let stale_run = stale.run_id().to_string();
    b.force_unlock("web", &holder(13)).await.unwrap();
    let next = b.acquire("web", &holder(14), Duration::ZERO).await.unwrap();
    stale.finish(&b, status::SUCCEEDED, "2 done").await.unwrap();
    assert_eq!(
        b.holder("web").await.unwrap().map(|i| i.holder.pid),
        Some(14),
        "the next holder keeps its lock"
    );
    let (record, _) = b.run(&stale_run).await.unwrap();
    assert_eq!(record.status, status::INTERRUPTED, "{record:?}");
    next.release().await.unwrap();
}

#[tokio::test]
async fn finishing_an_apply_closes_its_run_and_frees_the_lock_in_one_call() {
    let c = Cluster::start();
    finishing_closes_the_run_and_frees_the_lock(c.url()).await;
}

#[tokio::test]
async fn finishing_an_apply_closes_its_run_and_frees_the_lock_through_pgbouncer() {
    let c = Cluster::with_pgbouncer();
    finishing_closes_the_run_and_frees_the_lock(c.bouncer_url()).await;
}
