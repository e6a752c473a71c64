//! End-to-end through the engine: the Hetzner part of the k3s stack is created from nothing
//! and a second plan is empty; the same world made by hand (no labels) is adopted with only
//! marker changes and no replace; and the apply converges under 20% injected faults without
//! duplicates.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_core::{Action, ApplyOptions, apply, plan};
use cairn_hetzner_sim::{Fault, FaultConfig, HetznerFault};
use common::*;
use serde_json::Value;

async fn apply_all(
    stack: &cairn_core::Stack,
    providers: &cairn_core::Providers,
) -> cairn_core::Planned {
    let planned = plan(stack, providers).await.expect("plan");
    let report = apply(
        stack,
        providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    planned
}

fn names(state: &Value, coll: &str) -> Vec<String> {
    let mut v: Vec<String> = state["objects"][coll]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, o)| o["name"].as_str().map(String::from))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k3s_world_is_created_from_nothing_and_the_second_plan_is_empty() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    let stack = k3s_stack("k3s");
    let first = apply_all(&stack, &providers).await;
    assert_eq!(
        first
            .plan
            .resource_changes
            .iter()
            .filter(|c| c.action() == Action::Create)
            .count(),
        9,
        "{:#?}",
        first.plan.resource_changes
    );
    sim.reset_counters();
    let again = plan(&stack, &providers).await.expect("second plan");
    let c = sim.counters();
    // One labelled list per registered kind (9, including the ones this stack does not
    // declare, so their owned objects are found) + that zone's rrsets; nothing per object.
    assert!(
        c.total <= 10,
        "a no-op plan took {} requests: {:?}",
        c.total,
        c.requests
    );
    assert!(
        !again.plan.has_changes(),
        "second plan not empty: {:#?}",
        again
            .plan
            .resource_changes
            .iter()
            .filter(|c| c.action().is_change())
            .collect::<Vec<_>>()
    );

    let st = sim.dump_state();
    assert_eq!(names(&st, "servers"), ["k3s-mgr", "k3s-w1", "k3s-w2"]);
    let lb = st["objects"]["load_balancers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(lb["private_net"][0]["ip"], "10.0.1.5");
    assert_eq!(lb["targets"].as_array().unwrap().len(), 2);
    let lb_ip = lb["public_net"]["ipv4"]["ip"].as_str().unwrap().to_string();
    let zone_id: u64 = st["objects"]["zones"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let rr = &st["rrsets"][zone_id.to_string()];
    assert_eq!(rr["@/A"]["records"][0]["value"], lb_ip.as_str());
    assert_eq!(rr["staging/A"]["records"][0]["value"], lb_ip.as_str());
    let srv_ips: BTreeMap<String, String> = st["objects"]["servers"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["private_net"][0]["ip"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(srv_ips["k3s-w2"], "10.0.1.12");
}

/// Removes every `cairn.dev/` label from a state dump: the world as if made by hand.
fn strip_cairn_labels(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(l)) = m.get_mut("labels") {
                l.retain(|k, _| !k.starts_with("cairn.dev/"));
            }
            for c in m.values_mut() {
                strip_cairn_labels(c);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_cairn_labels),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_k3s_world_is_adopted_with_only_marker_changes_and_no_replace() {
    let made = sim().await;
    apply_all(&k3s_stack("k3s"), &providers(provider(&made))).await;
    let mut world = made.dump_state();
    strip_cairn_labels(&mut world);
    drop(made);

    let sim = sim().await;
    sim.load_state(world).unwrap();
    let providers = providers(provider(&sim));
    let stack = k3s_stack("k3s");
    sim.reset_counters();
    let planned = plan(&stack, &providers).await.expect("plan");
    assert_eq!(sim.counters().writes, 0, "planning wrote");
    for c in &planned.plan.resource_changes {
        assert_eq!(
            c.action(),
            Action::Update,
            "{}: {:?} {:?}",
            c.address,
            c.actions,
            c.action_reason
        );
        let paths: Vec<&str> = c.changes.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["(ownership marker)"],
            "{}: {:?}",
            c.address,
            c.action_reason
        );
        assert!(c.replace_paths.is_empty());
    }
    assert_eq!(planned.plan.resource_changes.len(), 9);
    let report = apply(
        &stack,
        &providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    let c = sim.counters();
    assert_eq!(
        c.matching("POST /v1/servers "),
        0,
        "nothing recreated: {:?}",
        c.requests
    );
    assert_eq!(c.matching("DELETE"), 0, "nothing deleted: {:?}", c.requests);
    let again = plan(&stack, &providers).await.expect("second plan");
    assert!(
        !again.plan.has_changes(),
        "{:#?}",
        again.plan.resource_changes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_converges_under_twenty_percent_injected_faults_without_duplicates() {
    let sim = sim().await;
    sim.set_faults(FaultConfig {
        seed: 7,
        rate: 0.2,
        kinds: vec![
            HetznerFault::RateLimit.into(),
            HetznerFault::Unavailable.into(),
            HetznerFault::Locked.into(),
            Fault::Drop,
        ],
        latency_ms: 0,
        ..FaultConfig::default()
    });
    let providers = providers(provider(&sim));
    let stack = k3s_stack("k3s");
    // One plan + apply must do it: the provider retries what is retryable and repairs lost
    // responses by re-reading. (Planning itself is read-only and retried.)
    let planned = plan(&stack, &providers).await.expect("plan under faults");
    let report = apply(
        &stack,
        &providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    let faults = sim.counters().faults;
    assert!(
        faults.values().sum::<u64>() >= 10,
        "faults were injected: {faults:?}"
    );
    assert!(
        faults.contains_key("drop")
            && faults.contains_key("rate_limit")
            && faults.contains_key("locked"),
        "{faults:?}"
    );
    let again = plan(&stack, &providers)
        .await
        .expect("second plan under faults");
    assert!(
        !again.plan.has_changes(),
        "did not converge: {:#?}",
        again.plan.resource_changes
    );
    sim.set_faults(FaultConfig::default());
    let st = sim.dump_state();
    assert_eq!(
        names(&st, "servers"),
        ["k3s-mgr", "k3s-w1", "k3s-w2"],
        "no duplicate servers"
    );
    assert_eq!(names(&st, "load_balancers"), ["k3s-lb"]);
    assert_eq!(names(&st, "networks"), ["k3s-net"]);
    assert_eq!(names(&st, "firewalls"), ["k3s-fw"]);
    assert_eq!(names(&st, "zones"), ["docfast.dev"]);
    let lb = st["objects"]["load_balancers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(lb["targets"].as_array().unwrap().len(), 2);
    assert_eq!(lb["services"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_health_gate_passes_when_targets_are_up_and_names_the_down_one() {
    use cairn_core::gate::Probe;
    let sim = sim().await;
    let p = provider(&sim);
    let probe = p.lb_targets_healthy("k3s-lb");
    let providers = providers(p);
    apply_all(&k3s_stack("k3s"), &providers).await;
    probe.check().await.expect("all targets healthy");
    let w1 = sim.with_world(|w| {
        let (id, s) = w
            .coll_mut("servers")
            .iter_mut()
            .find(|(_, s)| s["name"] == "k3s-w1")
            .unwrap();
        s["status"] = "off".into();
        *id
    });
    let err = probe.check().await.unwrap_err();
    assert!(
        err.contains(&format!("server {w1}")) && err.contains("unhealthy"),
        "{err}"
    );
    assert!(probe.describe().contains("k3s-lb"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_server_image_plans_a_replace_with_the_reason_and_converges() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    apply_all(&k3s_stack("k3s"), &providers).await;
    let old_id = sim.with_world(|w| {
        w.coll("servers")
            .iter()
            .find(|(_, s)| s["name"] == "k3s-w1")
            .map(|(i, _)| *i)
            .unwrap()
    });
    let stack = k3s_stack_with("k3s", "debian-12");
    let planned = plan(&stack, &providers).await.expect("plan");
    let w1 = planned
        .plan
        .change("hetzner_server.k3s-w1")
        .expect("w1 planned");
    assert_eq!(w1.action(), Action::DeleteCreate, "{w1:?}");
    assert_eq!(w1.replace_paths, ["image"]);
    assert!(
        w1.action_reason
            .as_deref()
            .unwrap_or("")
            .contains("image forces replacement"),
        "{:?}",
        w1.action_reason
    );
    let others: Vec<_> = planned
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action().is_replace() && c.address.0 != "hetzner_server.k3s-w1")
        .collect();
    assert!(others.is_empty(), "only w1 is replaced: {others:?}");
    let report = apply(
        &stack,
        &providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    let again = plan(&stack, &providers).await.expect("second plan");
    assert!(
        !again.plan.has_changes(),
        "{:#?}",
        again
            .plan
            .resource_changes
            .iter()
            .filter(|c| c.action().is_change())
            .collect::<Vec<_>>()
    );
    let st = sim.dump_state();
    assert_eq!(names(&st, "servers"), ["k3s-mgr", "k3s-w1", "k3s-w2"]);
    let (new_id, w1) = st["objects"]["servers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, s)| s["name"] == "k3s-w1")
        .unwrap();
    assert_ne!(new_id.parse::<u64>().unwrap(), old_id, "a new server");
    assert_eq!(w1["image"]["name"], "debian-12");
    assert_eq!(w1["private_net"][0]["ip"], "10.0.1.11");
    let lb = st["objects"]["load_balancers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    let targets: Vec<String> = lb["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["server"]["id"].to_string())
        .collect();
    assert!(
        targets.contains(new_id),
        "the LB targets the new w1: {targets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_servers_dropped_from_the_stack_are_planned_for_deletion_and_deleted() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    apply_all(&k3s_stack("k3s"), &providers).await;
    // A stack with only the network and the manager.
    let mut s = cairn_core::StackBuilder::new("k3s");
    let net = s.add(
        "k3s-net",
        cairn_hetzner::Network::new("k3s-net", "10.0.0.0/16", "10.0.1.0/24"),
    );
    use cairn_hetzner::NetworkAttrs;
    let mut mgr = cairn_hetzner::Server::new("k3s-mgr", "cax11", "ubuntu-24.04", "fsn1");
    mgr.labels.insert("k3s-role".into(), "server".into());
    mgr.user_data = Some("#cloud-config\nhostname: k3s-mgr\n".into());
    mgr.networks = Some(vec![cairn_hetzner::ServerNetwork {
        network: net.id().into(),
        ip: Some("10.0.1.10".parse().unwrap()),
    }]);
    s.add("k3s-mgr", mgr);
    let stack = s.build().unwrap();
    let planned = plan(&stack, &providers).await.expect("plan");
    let mut deleted: Vec<String> = planned
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action() == Action::Delete)
        .map(|c| c.key.clone())
        .collect();
    deleted.sort();
    // The provider lists its kinds, so the owned objects of kinds the stack no longer uses
    // at all (load balancer, firewall, zone, records) are found and deleted too.
    assert_eq!(
        deleted,
        [
            "docfast.dev",
            "docfast.dev/@/A",
            "docfast.dev/staging/A",
            "k3s-fw",
            "k3s-lb",
            "k3s-w1",
            "k3s-w2"
        ]
    );
    let report = apply(
        &stack,
        &providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    let st = sim.dump_state();
    assert_eq!(names(&st, "servers"), ["k3s-mgr"]);
    assert!(!plan(&stack, &providers).await.unwrap().plan.has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checked_in_k3s_before_fixture_is_adopted_with_only_marker_changes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../hetzner-sim/fixtures/k3s-before.json");
    if std::env::var("CAIRN_REGEN_FIXTURES").is_ok_and(|v| v == "1") {
        let made = sim().await;
        apply_all(&k3s_stack("k3s"), &providers(provider(&made))).await;
        let mut world = made.dump_state();
        strip_cairn_labels(&mut world);
        std::fs::write(&path, serde_json::to_string_pretty(&world).unwrap() + "\n").unwrap();
    }
    let sim = cairn_hetzner_sim::HetznerSim::start(cairn_hetzner_sim::SimConfig {
        fixture: Some(cairn_hetzner_sim::fixtures::k3s_before()),
        action_time: std::time::Duration::from_millis(30),
        ..Default::default()
    })
    .await
    .unwrap();
    let providers = providers(provider(&sim));
    let planned = plan(&k3s_stack("k3s"), &providers).await.expect("plan");
    assert_eq!(planned.plan.resource_changes.len(), 9);
    for c in &planned.plan.resource_changes {
        let paths: Vec<&str> = c.changes.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            (c.action(), paths),
            (Action::Update, vec!["(ownership marker)"]),
            "{}",
            c.address
        );
    }
    assert_eq!(sim.counters().writes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_lb_with_targets_in_another_order_is_adopted_without_touching_targets() {
    let mut world = cairn_hetzner_sim::fixtures::k3s_before();
    for lb in world["objects"]["load_balancers"]
        .as_object_mut()
        .unwrap()
        .values_mut()
    {
        lb["targets"].as_array_mut().unwrap().reverse();
    }
    let sim = cairn_hetzner_sim::HetznerSim::start(cairn_hetzner_sim::SimConfig {
        fixture: Some(world),
        action_time: std::time::Duration::from_millis(30),
        ..Default::default()
    })
    .await
    .unwrap();
    let providers = providers(provider(&sim));
    let stack = k3s_stack("k3s");
    let planned = plan(&stack, &providers).await.expect("plan");
    let lb = planned.plan.change("hetzner_load_balancer.k3s-lb").unwrap();
    let paths: Vec<&str> = lb.changes.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["(ownership marker)"],
        "target order is not a change"
    );
    let report = apply(
        &stack,
        &providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    let c = sim.counters();
    assert_eq!(
        c.matching("POST /v1/load_balancers/{id}/actions/remove_target")
            + c.matching("POST /v1/load_balancers/{id}/actions/add_target"),
        0,
        "{:?}",
        c.requests
    );
    assert!(!plan(&stack, &providers).await.unwrap().plan.has_changes());
}
