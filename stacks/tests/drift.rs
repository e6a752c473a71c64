//! Drift detection through the real binary: a firewall rule deleted out of band makes
//! `drift` exit 2, name the firewall and the rule, and write the Markdown summary.

use std::process::Command;
use std::sync::Arc;

use stacks::sims::Hetzner;
use stacks::stacks::hetzner_k3s;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firewall_rule_deleted_out_of_band_is_reported_by_drift() {
    let sim = Hetzner::start().await.unwrap();
    let provider = hetzner_k3s::provider_for(&sim.handle.endpoint, &sim.handle.token).unwrap();
    let providers = cairn_core::Providers::new().with(Arc::new(provider));
    let stack = hetzner_k3s::build(true).unwrap();
    let planned = cairn_core::plan(&stack, &providers).await.unwrap();
    let report = cairn_core::apply(
        &stack,
        &providers,
        &planned,
        Default::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success());

    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.md");
    let drift = || {
        Command::new(env!("CARGO_BIN_EXE_stacks"))
            .args(["--stack", "hetzner-k3s", "drift"])
            .env("CI", "true")
            .env("HCLOUD_ENDPOINT", &sim.handle.endpoint)
            .env("HCLOUD_TOKEN", &sim.handle.token)
            .env("GITHUB_STEP_SUMMARY", &summary)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let clean = drift();
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );

    // Someone deletes the CI runner's rule by hand (set_rules with only the other rule).
    let mut state = sim.handle.dump_state();
    let fws = state["objects"]["firewalls"].as_object_mut().unwrap();
    let fw = fws
        .values_mut()
        .find(|f| f["name"] == "coolify-fw")
        .unwrap();
    let rules = fw["rules"].as_array_mut().unwrap();
    let before = rules.len();
    rules.retain(|r| !r.to_string().contains(hetzner_k3s::CI_RUNNER));
    assert_eq!(rules.len(), before - 1);
    sim.handle.load_state(state).unwrap();

    let o = drift();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("hetzner_firewall.coolify-fw"), "{out}");
    assert!(out.contains("changed outside cairn"), "{out}");
    assert!(
        out.contains(hetzner_k3s::CI_RUNNER),
        "the drift does not name the rule: {out}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("`hetzner_firewall.coolify-fw`") && md.contains(hetzner_k3s::CI_RUNNER),
        "{md}"
    );
}
