//! hetzner-k3s down to k3s, in simulator mode: the hand-made cluster (and the zone's MX
//! record, `mail.cloonar.com.`) is adopted as found — the agents with nothing but ownership
//! markers, no install, no restart; the server with no change but its migration to embedded
//! etcd (`--cluster-init`) — while two new servers join it; after the apply the whole stack
//! plans no change. Needs root (real sshd
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
    let world = loaded
        .keep
        .iter()
        .find_map(|k| k.downcast_ref::<stacks::sims::HetznerK3sWorld>())
        .expect("the simulated k3s world is kept alive");
    let agent_starts = || {
        let sim = world.nodes.lock();
        ["k3s-w1", "k3s-w2"].map(|h| sim.k3s_starts(h))
    };
    let starts = agent_starts();
    let planned = plan(&loaded.stack, &loaded.providers).await.expect("plan");
    let change = |addr: &str| {
        planned
            .plan
            .resource_changes
            .iter()
            .find(|c| c.address.to_string() == addr)
            .unwrap_or_else(|| panic!("{addr} is not planned"))
    };
    // The agents and the MX record are adopted as found: an ownership marker, no step.
    for addr in [
        "node_k3s_agent.k3s-w1",
        "node_k3s_agent.k3s-w2",
        "hetzner_rrset.apex-mx",
    ] {
        let c = change(addr);
        let paths: Vec<_> = c.changes.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["(ownership marker)"], "{addr}: {:?}", c.changes);
        assert!(c.steps.is_empty(), "{addr}: {:?}", c.steps);
    }
    // The hand-made server's version, flags, taint and node IP are adopted as they are: its
    // only change is the HA migration (`--cluster-init`), made in place.
    let mgr = change("node_k3s_server.k3s-mgr");
    let paths: Vec<_> = mgr.changes.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["cluster_init"], "{:?}", mgr.changes);
    assert_eq!(mgr.action, Some(Action::Update));
    // The new servers join it.
    for new in [
        "hetzner_server.k3s-cp2",
        "hetzner_server.k3s-cp3",
        "node_k3s_server.k3s-cp2",
        "node_k3s_server.k3s-cp3",
        "hetzner_ssh_key.cairn",
    ] {
        assert_eq!(change(new).action, Some(Action::Create), "{new}");
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
    let token = world.nodes.token.clone();
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
    assert_eq!(
        agent_starts(),
        starts,
        "the adopted agents were neither reinstalled nor restarted"
    );
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
