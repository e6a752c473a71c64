//! hetzner-k3s down to k3s, in simulator mode: the hand-made cluster (and the zone's MX
//! record, `mail.cloonar.com.`) is adopted with nothing but ownership markers — no install,
//! no restart — and after the apply the whole stack plans no change. Needs root (real sshd
//! hosts); runs in the loopback-only namespace of `scripts/test.sh`.

use std::sync::Arc;

use cairn_core::{Action, ApplyOptions, apply, plan};
use stacks::stacks::{Target, hetzner_k3s};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hand_made_k3s_cluster_and_its_mx_record_are_adopted_with_no_change() {
    let loaded = hetzner_k3s::def()
        .load(Target::Simulated)
        .await
        .expect("simulated hetzner-k3s");
    let planned = plan(&loaded.stack, &loaded.providers).await.expect("plan");
    let adopted: Vec<_> = planned
        .plan
        .resource_changes
        .iter()
        .filter(|c| {
            c.kind.starts_with("node_k3s_") || c.address.to_string() == "hetzner_rrset.apex-mx"
        })
        .collect();
    assert_eq!(adopted.len(), 4, "{:?}", planned.plan.resource_changes);
    for c in &adopted {
        let paths: Vec<_> = c.changes.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["(ownership marker)"],
            "{}: {:?}",
            c.address,
            c.changes
        );
        assert!(c.steps.is_empty(), "{}: {:?}", c.address, c.steps);
    }
    let token = loaded
        .keep
        .iter()
        .find_map(|k| k.downcast_ref::<stacks::sims::HetznerK3sWorld>())
        .expect("the simulated k3s world is kept alive")
        .nodes
        .token
        .clone();
    let shown = format!(
        "{} {:?}",
        serde_json::to_string(&planned.plan).unwrap(),
        planned
            .plan
            .resource_changes
            .iter()
            .map(|c| (&c.changes, &c.steps, &c.action_reason))
            .collect::<Vec<_>>()
    );
    assert!(
        !shown.contains(&token),
        "the join token never appears in the plan"
    );
    let json = serde_json::to_value(&planned.plan).unwrap();
    let k3s = json["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "node_k3s_server.k3s-mgr")
        .expect("the server is planned");
    assert_eq!(k3s["after"]["token"], "(sensitive)", "{k3s}");
    assert_eq!(
        k3s["after"]["node_ip"], "10.0.1.5",
        "resolved from the server's private IP"
    );
    let report = apply(
        &loaded.stack,
        &loaded.providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success(), "{report:?}");
    assert!(!format!("{report:?}").contains(&token));
    let again = plan(&loaded.stack, &loaded.providers).await.expect("plan");
    let left: Vec<_> = again
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action != Some(Action::NoOp))
        .map(|c| c.address.to_string())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
