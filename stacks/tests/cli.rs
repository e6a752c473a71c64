//! The CLI contract: exit codes, the announce line, JSON purity, saved plans, drift
//! summaries and the graph — driven through the real binary.

use std::process::{Command, Output};

fn stacks(args: &[&str], state: &tempfile::TempDir) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stacks"))
        .args(args)
        .env_remove("CI")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("CAIRN_STATE_DIR", state.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("run stacks")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn diff_announces_the_target_and_exits_2_with_the_summary_last() {
    let state = tempfile::tempdir().unwrap();
    let o = stacks(&["diff"], &state);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = stdout(&o);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with("cairn: stack demo runs on the in-memory demo provider"),
        "{out}"
    );
    assert_eq!(
        out.lines().last().unwrap(),
        "Plan: 1 to add, 2 to change, 1 to destroy."
    );
}

#[test]
fn diff_json_is_pure_versioned_json() {
    let state = tempfile::tempdir().unwrap();
    let o = stacks(&["diff", "--json"], &state);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
    assert_eq!(v["format_version"], "1.0");
    assert_eq!(v["errored"], false);
    let actions: Vec<_> = v["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["actions"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["update", "update", "create", "delete"]);
}

#[test]
fn saved_plan_applies_without_prompting() {
    let state = tempfile::tempdir().unwrap();
    let plan = state.path().join("plan.json");
    let o = stacks(&["diff", "--out", plan.to_str().unwrap()], &state);
    assert_eq!(o.status.code(), Some(2));
    let o = stacks(&["apply", plan.to_str().unwrap()], &state);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout(&o).contains("Apply complete: 5 done, 0 failed, 0 skipped."),
        "{}",
        stdout(&o)
    );
}

#[test]
fn apply_without_yes_and_without_a_terminal_refuses() {
    let state = tempfile::tempdir().unwrap();
    let o = stacks(&["apply"], &state);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pass --yes"));
}

#[test]
fn drift_writes_a_markdown_summary_with_a_destroy_warning() {
    let state = tempfile::tempdir().unwrap();
    let summary = state.path().join("summary.md");
    let o = Command::new(env!("CARGO_BIN_EXE_stacks"))
        .arg("drift")
        .env_remove("CI")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("## Stack `demo`"), "{md}");
    assert!(md.contains("destroy 1 object"), "{md}");
    assert!(md.contains("- **`test_thing.app`** — update"), "{md}");
    assert!(md.contains("`size`: `1` → `2`"), "{md}");
}

#[test]
fn graph_is_dot_with_gates_as_hexagons() {
    let state = tempfile::tempdir().unwrap();
    let o = stacks(&["graph"], &state);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("digraph \"demo\""), "{out}");
    assert!(
        out.contains("shape=hexagon, label=\"gate app-listening"),
        "{out}"
    );
}

#[test]
fn unknown_stack_is_an_error_listing_known_ones() {
    let state = tempfile::tempdir().unwrap();
    let o = stacks(&["--stack", "nope", "diff"], &state);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("known stacks: demo"));
}
