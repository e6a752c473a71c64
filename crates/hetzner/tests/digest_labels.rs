//! The digest labels of a server's write-only fields (`cairn.dev/user-data`,
//! `cairn.dev/ssh-keys`) are keyed HMACs, end to end through plan and apply against the
//! simulator: our key and the same value is no change, our key and another value a replace,
//! another machine's key or an unkeyed digest from an older cairn "cannot tell" (no change,
//! a warning naming the server and the fix), and an update never overwrites a digest it
//! cannot read.

mod common;

use cairn_core::apply::NoProgress;
use cairn_core::render::render_plan;
use cairn_core::{Planned, Providers, Stack, StackBuilder};
use cairn_hetzner::*;
use common::*;
use serde_json::Value;

const SECRET: &str = "#cloud-config\nchpasswd:\n  list: |\n    root:hunter2\n";

fn stack(user_data: &str, tier: &str) -> Stack {
    let mut srv = Server::new("web-1", "cax11", "ubuntu-24.04", "fsn1");
    srv.user_data = Some(user_data.into());
    srv.ssh_keys = Some(vec![]);
    srv.labels.insert("tier".into(), tier.into());
    let mut s = StackBuilder::new("digests");
    s.add("web-1", srv);
    s.build().unwrap()
}

async fn plan(stack: &Stack, p: &Providers) -> Planned {
    cairn_core::plan(stack, p).await.expect("plan")
}

async fn apply(stack: &Stack, p: &Providers, planned: &Planned) {
    let report = cairn_core::apply(
        stack,
        p,
        planned,
        Default::default(),
        std::sync::Arc::new(NoProgress),
    )
    .await;
    assert!(report.success(), "{report:?}");
}

fn server_labels(sim: &cairn_hetzner_sim::SimHandle) -> serde_json::Map<String, Value> {
    let state = sim.dump_state();
    state["objects"]["servers"]
        .as_object()
        .unwrap()
        .values()
        .find(|s| s["name"] == "web-1")
        .expect("server web-1")["labels"]
        .as_object()
        .unwrap()
        .clone()
}

fn set_server_label(sim: &cairn_hetzner_sim::SimHandle, key: &str, value: &str) {
    let mut state = sim.dump_state();
    let server = state["objects"]["servers"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .find(|s| s["name"] == "web-1")
        .unwrap();
    server["labels"][key] = Value::String(value.into());
    sim.load_state(state).unwrap();
}

#[tokio::test]
async fn digest_labels_are_keyed_and_another_key_or_a_plain_digest_never_plans_a_replace() {
    let sim = sim().await;
    let ours = providers(provider_with_key(&sim, b"our-machine-digest-key"));
    let theirs = providers(provider_with_key(&sim, b"a-teammates-digest-key"));
    let first = stack(SECRET, "web");
    apply(&first, &ours, &plan(&first, &ours).await).await;

    // The label is a keyed MAC that fits Hetzner's label rules and is not the plain digest.
    let labels = server_labels(&sim);
    let label = labels["cairn.dev/user-data"].as_str().unwrap().to_string();
    let our_id = cairn_core::digest_key::DigestKey::new(b"our-machine-digest-key")
        .id()
        .to_string();
    assert!(label.starts_with(&format!("h1-{our_id}-")), "{label}");
    assert!(label.len() <= 63, "{label}");
    assert!(
        label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    );
    let plain = cairn_core::plan::digest(&Value::String(SECRET.into()));
    assert!(!labels.values().any(|v| v == &Value::String(plain.clone())));

    // Our key, same value: no change, no warning.
    let same = plan(&first, &ours).await;
    assert!(
        !same.plan.has_changes(),
        "{}",
        render_plan(&same.plan, false)
    );
    assert!(same.plan.warnings.is_empty(), "{:?}", same.plan.warnings);

    // Our key, another value: user-data changed, the server is replaced as before.
    let changed = plan(&stack("#cloud-config\n", "web"), &ours).await;
    let c = changed.plan.change("hetzner_server.web-1").unwrap();
    assert!(c.action().is_replace(), "{:?}", c.actions);
    assert_eq!(c.replace_paths, ["user_data"]);

    // A teammate's key: cannot tell. No change (even with another value), a warning.
    for user_data in [SECRET, "#cloud-config\n"] {
        let other = plan(&stack(user_data, "web"), &theirs).await;
        assert!(
            !other.plan.has_changes(),
            "{}",
            render_plan(&other.plan, false)
        );
        let w = other
            .plan
            .warnings
            .iter()
            .find(|w| w.contains("user_data"))
            .expect("a warning about user_data");
        assert!(
            w.starts_with("hetzner_server.web-1: ")
                && w.contains(&format!("digest key {our_id}"))
                && w.contains("plans no replacement")
                && w.contains("set CAIRN_DIGEST_KEY to the same secret"),
            "{w}"
        );
        assert!(!w.contains("hunter2"));
    }

    // The teammate's update (a label) keeps the digest it cannot read.
    let relabel = stack(SECRET, "frontend");
    let planned = plan(&relabel, &theirs).await;
    assert!(planned.plan.has_changes());
    apply(&relabel, &theirs, &planned).await;
    let labels = server_labels(&sim);
    assert_eq!(labels["tier"], "frontend");
    assert_eq!(labels["cairn.dev/user-data"].as_str(), Some(label.as_str()));
    assert!(!plan(&relabel, &ours).await.plan.has_changes());

    // An unkeyed digest from an older cairn: cannot tell either.
    set_server_label(&sim, "cairn.dev/user-data", &plain);
    for user_data in [SECRET, "#cloud-config\n"] {
        let legacy = plan(&stack(user_data, "frontend"), &ours).await;
        assert!(
            !legacy.plan.has_changes(),
            "{}",
            render_plan(&legacy.plan, false)
        );
        assert!(
            legacy
                .plan
                .warnings
                .iter()
                .any(|w| w.starts_with("hetzner_server.web-1: ")
                    && w.contains("unkeyed digest from an older cairn")
                    && w.contains("remove its label cairn.dev/user-data")),
            "{:?}",
            legacy.plan.warnings
        );
    }
}
