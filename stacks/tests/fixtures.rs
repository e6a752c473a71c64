//! The hetzner-k3s "before" fixture: regenerated with `CAIRN_REGEN_FIXTURES=1`, and checked
//! to be the hand-made world the stack expects to adopt.

use stacks::sims::{HETZNER_K3S_BEFORE, make_hetzner_k3s_before};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hetzner_k3s_before_world_is_hand_made_and_lacks_the_staging_record() {
    if std::env::var_os("CAIRN_REGEN_FIXTURES").is_some() {
        let state = make_hetzner_k3s_before().await.unwrap();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/hetzner-k3s-before.json"
        );
        std::fs::write(path, serde_json::to_string_pretty(&state).unwrap() + "\n").unwrap();
        return;
    }
    assert!(
        !HETZNER_K3S_BEFORE.contains("cairn.dev/"),
        "the before world carries cairn labels"
    );
    let state: serde_json::Value = serde_json::from_str(HETZNER_K3S_BEFORE).unwrap();
    let text = state.to_string();
    for name in [
        "k3s-mgr",
        "k3s-w1",
        "k3s-w2",
        "k3s-net",
        "k3s-lb",
        "coolify-fw",
        "docfast.dev",
        "178.115.247.134/32",
    ] {
        assert!(text.contains(name), "{name} missing from the before world");
    }
    assert!(text.contains("\"MX\""), "the MX record is missing");
    assert!(
        !text.contains("\"staging\""),
        "staging must be missing before"
    );
}
