//! hetzner-k3s down to k3s, in simulator mode: the hand-made cluster (and the zone's MX
//! record, `mail.cloonar.com.`) is adopted — the agents with nothing but ownership markers,
//! no install, no restart — while `k3s-mgr` is converted to embedded etcd and two new
//! servers join it; after the apply the whole stack plans no change. Needs root (real sshd
//! hosts); runs in the loopback-only namespace of `scripts/test.sh`.

use std::sync::Arc;

use cairn_core::{Action, ApplyOptions, apply, plan};
use stacks::stacks::{Target, hetzner_k3s};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hand_made_k3s_cluster_is_adopted_and_grows_to_three_servers_then_plans_no_change() {
    let loaded = hetzner_k3s::def()
        .load(Target::Simulated)
        .await
        .expect("simulated hetzner-k3s");
    let planned = plan(&loaded.stack, &loaded.providers).await.expect("plan");
    let adopted: Vec<_> = planned
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.kind == "node_k3s_agent" || c.address.to_string() == "hetzner_rrset.apex-mx")
        .collect();
    assert_eq!(adopted.len(), 3, "{:?}", planned.plan.resource_changes);
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
    // The hand-made server moves to embedded etcd; the new servers join it.
    let mgr = planned.plan.change("node_k3s_server.k3s-mgr").unwrap();
    let paths: Vec<_> = mgr.changes.iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&"cluster_init"), "{paths:?}");
    for new in [
        "hetzner_server.k3s-cp2",
        "hetzner_server.k3s-cp3",
        "node_k3s_server.k3s-cp2",
        "node_k3s_server.k3s-cp3",
        "hetzner_ssh_key.cairn",
    ] {
        let c = planned.plan.change(new).expect(new);
        assert_eq!(c.action(), Action::Create, "{new}");
    }
    assert!(
        planned
            .plan
            .gates
            .iter()
            .any(|g| g.address.to_string() == "gate.k3s-ha"),
        "{:?}",
        planned.plan.gates
    );
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
