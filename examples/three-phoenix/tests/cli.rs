//! The example binary gets cairn's whole CLI: against its own `three-phoenix sim` world,
//! diff → apply → diff (empty) → drift converges; without credentials it announces
//! simulator mode; a transport failure names its cause (on stderr and in its JSON line).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_three-phoenix");

/// A running `three-phoenix sim`, killed on drop.
struct Sim {
    child: Child,
    env: BTreeMap<String, String>,
    /// Apply locks and history of this world's runs (never the source tree).
    state: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sim {
    fn start() -> Sim {
        let mut child = Command::new(BIN)
            .arg("sim")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("first line is not JSON ({e}): {line:?}"));
        assert!(info["hetzner"]["endpoint"].is_string(), "{info}");
        let env = info["env"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        Sim {
            child,
            env,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .envs(&self.env)
            .env("CAIRN_STATE_DIR", self.state.path())
            .env("NO_COLOR", "1")
            .env_remove("CI")
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn diff_apply_diff_drift_converges_against_its_own_sim_world() {
    let sim = Sim::start();
    assert_eq!(sim.env["CAIRN_LOOPBACK_ONLY"], "1");

    let o = sim.run(&["diff"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{out}{}", text(&o.stderr));
    assert!(
        out.lines().next().unwrap().contains(
            "stack three-phoenix targets the APIs named in the environment, in loopback-only mode (a `three-phoenix sim` world)"
        ),
        "{out}"
    );
    assert!(
        out.contains("Plan: 10 to add, 0 to change, 0 to destroy."),
        "{out}"
    );

    let o = sim.run(&["apply", "--yes"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(
        out.contains("Apply complete: 10 done, 0 failed, 0 skipped."),
        "{out}"
    );

    let o = sim.run(&["diff", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["stack"], "three-phoenix");
    let changed: Vec<_> = plan["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["actions"] != serde_json::json!(["no-op"]))
        .collect();
    assert!(changed.is_empty(), "{changed:?}");

    let o = sim.run(&["drift"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = sim.run(&["history", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["in sync", "succeeded"], "{runs}");
}

#[test]
fn without_credentials_the_first_line_says_simulator_mode() {
    let state = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .arg("diff")
        .env_remove("HCLOUD_TOKEN")
        .env_remove("CI")
        .env("CAIRN_STATE_DIR", state.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "{out}{}", text(&o.stderr));
    assert!(
        out.lines().next().unwrap().starts_with(
            "cairn: SIMULATOR MODE for stack three-phoenix: no credentials (HCLOUD_TOKEN) set"
        ),
        "{out}"
    );
}

#[test]
fn an_unreachable_api_is_reported_with_its_cause_on_stderr_and_in_its_json_line() {
    // A port nobody listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let state = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["diff", "--json"])
        .env("HCLOUD_TOKEN", "not-a-real-token")
        .env("HCLOUD_ENDPOINT", format!("http://127.0.0.1:{port}/v1"))
        .env("CAIRN_LOOPBACK_ONLY", "1")
        .env_remove("CI")
        .env("CAIRN_STATE_DIR", state.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert!(!err.contains("not-a-real-token"), "{err}");
    // stdout stays JSON Lines: the stack's line says it errored, and why.
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["stack"], "three-phoenix");
    assert_eq!(doc["errored"], true);
    let why = doc["errors"][0].as_str().unwrap().to_lowercase();
    assert!(why.contains("connection refused"), "{why}");
}

#[test]
fn an_unreachable_team_backend_is_reported_with_its_cause() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let state = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .arg("lock")
        .env(
            "CAIRN_BACKEND",
            format!("postgres://cairn:hunter2-secret@127.0.0.1:{port}/cairn"),
        )
        .env_remove("CI")
        .env("CAIRN_STATE_DIR", state.path())
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("is unreachable"), "{err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert!(!err.contains("hunter2-secret"), "{err}");
}
