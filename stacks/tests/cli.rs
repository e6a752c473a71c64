//! The CLI contract through the real binary: exit codes, the simulator announcement on the
//! first line, JSON purity, saved plans, refusal without confirmation or under CI, and the
//! graph.

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
fn diff_of_all_stacks_announces_simulator_mode_and_exits_2_with_the_summary_last() {
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
            .starts_with("cairn: SIMULATOR MODE for stack hetzner-k3s"),
        "{out}"
    );
    assert!(
        out.contains("cairn: SIMULATOR MODE for stack homelab-ha"),
        "{out}"
    );
    assert!(
        out.contains("Plan: 6 to add, 12 to change, 0 to destroy."),
        "{out}"
    );
    assert_eq!(
        out.lines().last().unwrap(),
        "Plan: 11 to add, 6 to change, 0 to destroy."
    );
}

#[test]
fn diff_json_is_pure_versioned_json() {
    let state = tempfile::tempdir().unwrap();
    let o = stacks(&["--stack", "hetzner-k3s", "diff", "--json"], &state);
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
    assert_eq!(v["format_version"], "1.2");
    assert_eq!(v["errored"], false);
    let staging = v["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "hetzner_rrset.staging-a")
        .unwrap();
    assert_eq!(staging["actions"], serde_json::json!(["create"]));
    assert!(
        !stdout(&o).contains("SIMULATOR MODE"),
        "the announcement goes to stderr under --json"
    );
}

#[test]
fn diff_json_of_several_stacks_is_one_document_per_line() {
    let state = tempfile::tempdir().unwrap();
    let o = stacks(&["diff", "--json"], &state);
    assert_eq!(o.status.code(), Some(2));
    let docs: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON document"))
        .collect();
    let stacks: Vec<&str> = docs.iter().map(|d| d["stack"].as_str().unwrap()).collect();
    assert_eq!(stacks, ["hetzner-k3s", "homelab-ha"]);
}

#[test]
fn saved_plan_applies_without_prompting() {
    let state = tempfile::tempdir().unwrap();
    let plan = state.path().join("plan.json");
    let path = plan.to_str().unwrap();
    let o = stacks(&["--stack", "hetzner-k3s", "diff", "--out", path], &state);
    assert_eq!(o.status.code(), Some(2));
    // The embedded simulator is seeded identically on every run, so the plan is current.
    let o = stacks(&["--stack", "hetzner-k3s", "apply", path], &state);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout(&o).contains("Apply complete: 24 done, 0 failed, 0 skipped."),
        "{}",
        stdout(&o)
    );
}

#[test]
fn saved_plan_file_is_private_and_selects_its_own_stack() {
    let state = tempfile::tempdir().unwrap();
    let plan = state.path().join("plan.json");
    let path = plan.to_str().unwrap();
    let o = stacks(&["--stack", "hetzner-k3s", "diff", "--out", path], &state);
    assert_eq!(o.status.code(), Some(2));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&plan).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "plan files hold observed values: owner only");
    }
    // Without --stack, `apply FILE` applies the stack the plan was made for, and only it.
    let o = stacks(&["apply", path], &state);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = stdout(&o);
    assert!(
        out.contains("SIMULATOR MODE for stack hetzner-k3s"),
        "{out}"
    );
    assert!(!out.contains("homelab-ha"), "{out}");
}

#[test]
fn a_saved_plan_for_another_stack_is_refused_not_skipped() {
    let state = tempfile::tempdir().unwrap();
    let plan = state.path().join("plan.json");
    let path = plan.to_str().unwrap();
    let o = stacks(&["--stack", "hetzner-k3s", "diff", "--out", path], &state);
    assert_eq!(o.status.code(), Some(2));
    let o = stacks(&["--stack", "homelab-ha", "apply", path], &state);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is a plan for stack \"hetzner-k3s\", not \"homelab-ha\""),
        "{err}"
    );
}

#[test]
fn diff_out_with_several_stacks_is_refused_instead_of_overwriting() {
    let state = tempfile::tempdir().unwrap();
    let plan = state.path().join("plan.json");
    let o = stacks(&["diff", "--out", plan.to_str().unwrap()], &state);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("saves one stack's plan: pass --stack"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!plan.exists());
}

#[test]
fn apply_locks_live_in_the_per_user_state_dir_not_the_working_directory() {
    let home = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_stacks"))
        .args(["--stack", "hetzner-k3s", "apply", "--yes"])
        .current_dir(cwd.path())
        .env_remove("CI")
        .env_remove("CAIRN_STATE_DIR")
        .env_remove("XDG_STATE_HOME")
        .env("HOME", home.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        home.path()
            .join(".local/state/cairn/hetzner-k3s.lock")
            .exists()
    );
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "nothing in the working directory"
    );
}

#[test]
fn apply_without_yes_and_without_a_terminal_refuses() {
    let state = tempfile::tempdir().unwrap();
    let o = stacks(&["--stack", "hetzner-k3s", "apply"], &state);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("pass --yes"));
}

#[test]
fn under_ci_without_credentials_it_refuses_to_simulate() {
    let state = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_stacks"))
        .arg("diff")
        .env("CI", "true")
        .env_remove("CAIRN_SIMULATE")
        .env_remove("HCLOUD_TOKEN")
        .env("CAIRN_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "CI=true but the credentials for stack hetzner-k3s are not set (HCLOUD_TOKEN)"
        ),
        "{err}"
    );
}

#[test]
fn thirty_two_gib_masters_exit_1_with_the_capacity_numbers() {
    let state = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_stacks"))
        .args(["--stack", "homelab-ha", "diff"])
        .env_remove("CI")
        .env("HOMELAB_MASTER_MEMORY_GIB", "32")
        .env("CAIRN_STATE_DIR", state.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("262 GiB committed + 64 GiB planned = 326 GiB > 267 GiB physical"),
        "{err}"
    );
}

#[test]
fn an_absurd_master_memory_is_refused_naming_the_variable_not_wrapped() {
    let state = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_stacks"))
        .args(["--stack", "homelab-ha", "diff"])
        .env_remove("CI")
        .env("HOMELAB_MASTER_MEMORY_GIB", u64::MAX.to_string())
        .env("CAIRN_STATE_DIR", state.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("HOMELAB_MASTER_MEMORY_GIB must be between 1 and 4096 GiB"),
        "{err}"
    );
}

#[test]
fn graph_is_dot_and_svg_with_gates_as_hexagons() {
    let state = tempfile::tempdir().unwrap();
    let o = stacks(
        &[
            "--stack",
            "homelab-ha",
            "graph",
            "--out",
            state.path().to_str().unwrap(),
        ],
        &state,
    );
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("digraph \"homelab-ha\""), "{out}");
    assert!(
        out.contains("shape=hexagon, label=\"gate vip-serves"),
        "{out}"
    );
    let svg = std::fs::read_to_string(state.path().join("homelab-ha.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("<polygon") && svg.contains(">k8s-master-2<"),
        "{svg}"
    );
}

#[test]
fn unknown_stack_is_an_error_listing_known_ones() {
    let state = tempfile::tempdir().unwrap();
    let o = stacks(&["--stack", "nope", "diff"], &state);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("known stacks: hetzner-k3s, homelab-ha"));
}
