//! The team backend through the real binary against a throwaway PostgreSQL: an apply records
//! its run and changes (`stacks history`), `lock` shows a holder, a held lock makes apply fail
//! naming it, `unlock --force` needs confirmation, a bad backend fails before any stack is
//! touched, and secrets never reach the database.

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cairn_backend_pg::PgBackend;
use cairn_backend_pg::testing::{Cluster, PASSWORD, free_port};
use cairn_core::apply::NoProgress;
use cairn_core::backend::{Backend, Holder, status};
use cairn_core::testing::{MemoryProvider, Thing};
use cairn_core::{Address, Outcome, Progress, Providers, StackBuilder};
use stacks::record::Recorder;

fn stacks(args: &[&str], url: &str, state: &tempfile::TempDir) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stacks"))
        .args(args)
        .env_remove("CI")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("CAIRN_STATE_DIR", state.path())
        .env("CAIRN_BACKEND", url)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run stacks")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn apply_through_postgres_records_its_run_and_changes_in_history() {
    let c = Cluster::start();
    let state = tempfile::tempdir().unwrap();
    let o = stacks(
        &["--stack", "hetzner-k3s", "apply", "--yes"],
        &c.url(),
        &state,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        !text(&o).contains(PASSWORD),
        "the URL's password is never printed"
    );

    let o = stacks(
        &["--stack", "hetzner-k3s", "history", "--json"],
        &c.url(),
        &state,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let run = &runs[0];
    assert_eq!(run["holder"]["operation"], "apply");
    assert_eq!(run["status"], status::SUCCEEDED);
    assert!(run["holder"]["plan_digest"].is_string(), "{run}");
    let id = run["id"].as_str().unwrap();

    let o = stacks(&["history", id, "--json"], &c.url(), &state);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let changes = shown["changes"].as_array().unwrap();
    assert!(!changes.is_empty(), "{shown}");
    assert!(changes.iter().all(|c| c["outcome"] == "done"), "{shown}");
    assert!(
        changes.iter().any(|c| c["address"]
            .as_str()
            .unwrap()
            .starts_with("hetzner_server.")),
        "{shown}"
    );

    let o = stacks(&["history"], &c.url(), &state);
    assert!(
        text(&o).contains("hetzner-k3s") && text(&o).contains("succeeded"),
        "{}",
        text(&o)
    );
    let o = stacks(&["--stack", "hetzner-k3s", "lock"], &c.url(), &state);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "hetzner-k3s: not locked"
    );
}

#[test]
fn a_held_lock_is_shown_makes_apply_fail_naming_it_and_needs_confirmed_force_to_release() {
    let c = Cluster::start();
    let state = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let b = PgBackend::new(&c.url()).unwrap();
    let holder = Holder {
        user: "ci-runner".into(),
        pid: 424_242,
        ..Holder::current("apply")
    };
    let lease = rt
        .block_on(b.acquire("hetzner-k3s", &holder, Duration::ZERO))
        .unwrap();
    let run = lease.run_id().to_string();

    let o = stacks(&["--stack", "hetzner-k3s", "lock"], &c.url(), &state);
    assert!(
        text(&o).contains("locked by ci-runner@") && text(&o).contains("pid 424242"),
        "{}",
        text(&o)
    );

    let o = stacks(
        &[
            "--stack",
            "hetzner-k3s",
            "apply",
            "--yes",
            "--lock-wait",
            "1",
        ],
        &c.url(),
        &state,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("is locked by ci-runner@") && text(&o).contains("pid 424242"),
        "{}",
        text(&o)
    );

    let o = stacks(&["--stack", "hetzner-k3s", "unlock"], &c.url(), &state);
    assert!(
        o.status.code() == Some(1) && text(&o).contains("--force"),
        "{}",
        text(&o)
    );
    let o = stacks(
        &["--stack", "hetzner-k3s", "unlock", "--force"],
        &c.url(),
        &state,
    );
    assert!(
        o.status.code() == Some(1) && text(&o).contains("pass --yes"),
        "{}",
        text(&o)
    );
    assert!(
        rt.block_on(b.holder("hetzner-k3s")).unwrap().is_some(),
        "still held"
    );

    let o = stacks(
        &["--stack", "hetzner-k3s", "unlock", "--force", "--yes"],
        &c.url(),
        &state,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(rt.block_on(b.holder("hetzner-k3s")).unwrap().is_none());
    let (r, _) = rt.block_on(b.run(&run)).unwrap();
    assert_eq!(r.status, status::INTERRUPTED);
    assert!(r.summary.unwrap().contains("force-released by"));
    drop(lease);
}

#[test]
fn an_unreachable_backend_fails_before_any_stack_is_touched() {
    let state = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres://cairn:hunter2-pw@127.0.0.1:{}/cairn?sslmode=disable",
        free_port()
    );
    let o = stacks(&["--stack", "hetzner-k3s", "apply", "--yes"], &url, &state);
    assert_eq!(o.status.code(), Some(1));
    let all = text(&o);
    assert!(all.contains("unreachable"), "{all}");
    assert!(
        !all.contains("SIMULATOR MODE"),
        "no stack was loaded: {all}"
    );
    assert!(!all.contains("hunter2-pw"), "{all}");
}

#[test]
fn a_secret_in_a_provider_error_never_reaches_the_database() {
    let c = Cluster::start();
    let secret = "topsecret-4711-value";
    let mut sb = StackBuilder::new("secrets");
    sb.add(
        "a",
        Thing {
            name: "a".into(),
            zone: "z".into(),
            secret: Some(secret.into()),
            ..Default::default()
        },
    );
    let stack = sb.build().unwrap();
    let providers = Providers::new().with(Arc::new(MemoryProvider::new()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let planned = cairn_core::plan(&stack, &providers).await.unwrap();
        let b: Arc<dyn Backend> = Arc::new(PgBackend::new(&c.url()).unwrap());
        let lease = b
            .acquire("secrets", &Holder::current("apply"), Duration::ZERO)
            .await
            .unwrap();
        let run = lease.run_id().to_string();
        let (rec, writer) = Recorder::start(b.clone(), run.clone(), &planned, Arc::new(NoProgress));
        let addr = Address("test_thing.a".into());
        rec.started(&addr, "create");
        // A provider that echoes the request in its error.
        rec.finished(
            &addr,
            &Outcome::Failed(format!("HTTP 422: secret {secret:?} rejected")),
            Duration::from_millis(3),
        );
        rec.close();
        assert_eq!(writer.finish().await.unwrap(), 1);
        b.finish_run(&run, status::FAILED, "0 done, 1 failed, 0 skipped")
            .await
            .unwrap();
        lease.release().await.unwrap();
        let (_, changes) = b.run(&run).await.unwrap();
        assert_eq!(
            changes[0].error.as_deref(),
            Some("HTTP 422: secret \"(sensitive)\" rejected")
        );
    });
    let tables = c.psql(
        "SELECT string_agg(table_name, ' ') FROM information_schema.tables WHERE table_name LIKE 'cairn_%'",
    );
    let mut seen = 0;
    for t in tables.split_whitespace() {
        let dump = c.psql(&format!(
            "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {t} t"
        ));
        assert!(!dump.contains(secret), "secret in {t}: {dump}");
        seen += dump.len();
    }
    assert!(seen > 0 && tables.contains("cairn_changes"), "{tables}");
}

/// Starts `stacks --stack homelab-ha apply --yes` on the backend with a short lease, reading
/// its stderr; returns the child and its stderr lines.
fn spawn_apply(
    url: &str,
    state: &tempfile::TempDir,
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStderr>>,
) {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_stacks"))
        .args([
            "--stack",
            "homelab-ha",
            "apply",
            "--yes",
            "--lock-wait",
            "30",
        ])
        .env_remove("CI")
        .env("CAIRN_STATE_DIR", state.path())
        // Its embedded simulators' scratch dirs go under the test's temp dir: the process
        // may be killed with SIGKILL, and the test removes what it leaves.
        .env("TMPDIR", state.path())
        .env("CAIRN_BACKEND", url)
        .env("CAIRN_LOCK_LEASE_SECS", "1.5")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    (child, lines)
}

#[test]
fn a_sigkilled_apply_is_taken_over_by_the_next_which_closes_its_run_as_interrupted() {
    let c = Cluster::start();
    let state = tempfile::tempdir().unwrap();
    let (mut first, mut lines) = spawn_apply(&c.url(), &state);
    let first_pid = first.id();
    let mut done = 0;
    for line in lines.by_ref() {
        if line.unwrap().contains("] done ") {
            done += 1;
            if done == 2 {
                break;
            }
        }
    }
    assert_eq!(done, 2, "the first apply got midway");
    std::thread::sleep(Duration::from_millis(500)); // its history writer stores what it did
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let (mut second, lines) = spawn_apply(&c.url(), &state);
    let mut said = String::new();
    for line in lines {
        let line = line.unwrap();
        if line.contains("took over the lock of stack homelab-ha") {
            said = line;
            break;
        }
    }
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(said.contains(&format!("pid {first_pid}")), "{said:?}");

    let b = PgBackend::new(&c.url()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runs = rt.block_on(b.runs(Some("homelab-ha"), 10)).unwrap();
    let killed = runs
        .iter()
        .find(|r| r.holder.pid == first_pid)
        .expect("killed run kept");
    assert_eq!(killed.status, status::INTERRUPTED);
    let (_, changes) = rt.block_on(b.run(&killed.id)).unwrap();
    assert!(
        changes.len() >= 2 && changes.iter().all(|c| c.outcome == "done"),
        "{changes:?}"
    );
}
