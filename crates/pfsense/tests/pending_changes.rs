//! Pending changes end to end: a pfSense write whose apply was rejected or interrupted stays
//! pending in the simulator (its `GET …/apply` says `applied: false`, the real HAProxy keeps
//! the last applied config). The next plan shows it as a change of `pfsense_pending.<subsystem>`
//! (not "in sync"), and `apply` applies it; a subsystem the stack declares nothing in is
//! only warned about and never applied.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::apply::NoProgress;
use cairn_core::render::{drift_summary, render_plan};
use cairn_core::{Planned, Providers, Stack, StackBuilder};
use cairn_pfsense::{HaproxyBackend, HaproxyFrontend, PfSenseProvider, ProviderOptions, VirtualIp};
use cairn_pfsense_sim::{FaultConfig, FaultRule, SimHandle, api_error};
use common::*;
use serde_json::json;

const VIP: &str = "10.0.20.99";

/// A VIP, a backend without servers, and a frontend on the VIP; the VIP's description and
/// the backend's connection timeout are what the tests change.
fn stack(port: u16, vip_descr: &str, connect_ms: u32) -> Stack {
    let vip: Ipv4Addr = VIP.parse().unwrap();
    let mut s = StackBuilder::new("pending");
    s.add("vip", VirtualIp::ipalias(vip, 24, "lan", vip_descr));
    let mut pool = HaproxyBackend::https_checked("web", "/readyz", 1000);
    pool.connection_timeout = connect_ms;
    s.add("web", pool);
    s.add("fe", HaproxyFrontend::tcp("fe", vip, port, "web"));
    s.build().unwrap()
}

fn providers(sim: &SimHandle) -> (PfSenseProvider, Providers) {
    let p = PfSenseProvider::new(
        client(sim, Duration::from_secs(2)),
        ProviderOptions::default(),
    );
    (p.clone(), Providers::new().with(Arc::new(p)))
}

async fn plan(stack: &Stack, providers: &Providers) -> Planned {
    cairn_core::plan(stack, providers).await.expect("plan")
}

async fn apply(stack: &Stack, providers: &Providers, planned: &Planned) -> cairn_core::ApplyReport {
    cairn_core::apply(
        stack,
        providers,
        planned,
        Default::default(),
        Arc::new(NoProgress),
    )
    .await
}

fn applied(sim: &SimHandle, subsystem: &str) -> bool {
    sim.dump_state()["dirty"][subsystem] != json!(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_apply_is_planned_as_a_pending_change_and_apply_applies_it() {
    let sim = sim(64).await;
    let (_, providers) = providers(&sim);
    let port = free_port(mapped(&sim, VIP));
    let first = stack(port, "web VIP", 30000);
    let planned = plan(&first, &providers).await;
    assert!(apply(&first, &providers, &planned).await.success());

    // A no-op plan: what observing costs, the pending-state reads included.
    sim.reset_counters();
    let noop = plan(&first, &providers).await;
    assert!(
        !noop.plan.has_changes(),
        "{}",
        render_plan(&noop.plan, false)
    );
    let c = sim.counters();
    assert_eq!(c.writes, 0);
    let reads: Vec<u64> = [
        "/services/haproxy/apply",
        "/firewall/virtual_ip/apply",
        "/services/dns_resolver/apply",
        "/firewall/apply",
    ]
    .iter()
    .map(|path| c.get(&format!("GET /api/v2{path}")))
    .collect();
    assert_eq!(reads, [1, 1, 1, 1], "one read per subsystem: {c:?}");
    println!(
        "no-op plan: {} requests, 4 of them pending-state reads ({} without them)",
        c.total,
        c.total - 4
    );

    // pfSense rejects the next HAProxy apply: the write is stored, HAProxy never sees it.
    sim.set_faults(FaultConfig {
        sim: json!({"fail_applies": [{"subsystem": "haproxy", "count": 1}]}),
        ..Default::default()
    });
    let second = stack(port, "web VIP", 20000);
    let planned = plan(&second, &providers).await;
    let report = apply(&second, &providers, &planned).await;
    assert!(!report.success(), "the rejected apply must fail the change");
    assert!(!applied(&sim, "haproxy"));
    assert!(sim.haproxy_config().contains("timeout connect\t\t30000"));

    // The config reads as declared, yet nothing is in effect: the plan must say so.
    let pending = plan(&second, &providers).await;
    assert!(pending.plan.has_changes(), "drift would say in sync");
    let c = pending
        .plan
        .change("pfsense_pending.haproxy")
        .expect("a plan entry for the pending HAProxy changes");
    assert_eq!(c.actions, ["update"]);
    let reason = c.action_reason.as_deref().unwrap();
    assert!(
        reason.starts_with("pfSense HAProxy has changes written but not applied"),
        "{reason}"
    );
    assert!(
        c.steps[0].contains("POST /api/v2/services/haproxy/apply"),
        "{:?}",
        c.steps
    );
    assert_eq!(
        pending.plan.summary_line(),
        "Plan: 0 to add, 1 to change, 0 to destroy."
    );
    let text = render_plan(&pending.plan, false);
    assert!(text.contains("pfsense_pending.haproxy"), "{text}");
    let md = drift_summary(std::slice::from_ref(&pending.plan));
    assert!(
        md.contains("`pfsense_pending.haproxy`") && md.contains("HAProxy has changes written"),
        "{md}"
    );

    sim.reset_counters();
    let report = apply(&second, &providers, &pending).await;
    assert!(report.success(), "{report:?}");
    assert_eq!(sim.counters().get("POST /api/v2/services/haproxy/apply"), 1);
    assert_eq!(sim.counters().writes, 1, "the apply call is the only write");
    assert!(applied(&sim, "haproxy"));
    assert!(
        sim.haproxy_config().contains("timeout connect\t\t20000"),
        "the data plane got the applied change:\n{}",
        sim.haproxy_config()
    );
    assert!(!plan(&second, &providers).await.plan.has_changes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_apply_is_planned_and_a_foreign_pending_subsystem_is_only_warned_about() {
    let sim = sim(78).await;
    let (p, providers) = providers(&sim);
    let port = free_port(mapped(&sim, VIP));
    let first = stack(port, "web VIP", 30000);
    let planned = plan(&first, &providers).await;
    assert!(apply(&first, &providers, &planned).await.success());

    // The VIP apply request dies (the kit's fault layer answers for it; it never runs).
    sim.set_faults(FaultConfig {
        rules: vec![FaultRule {
            methods: vec!["POST".into()],
            path_prefix: "/api/v2/firewall/virtual_ip/apply".into(),
            remaining: Some(1),
            fault: Some(api_error(500, "INTERRUPTED")),
            ..Default::default()
        }],
        ..Default::default()
    });
    // Someone else writes a firewall alias by hand and never applies it.
    p.client()
        .post(
            "/firewall/alias",
            &json!({"name": "hand_made", "type": "host", "address": ["10.0.20.5"]}),
        )
        .await
        .unwrap();
    // The VIP's description changes: an update whose apply is interrupted.
    let moved = stack(port, "web VIP, moved", 30000);
    let planned = plan(&moved, &providers).await;
    let report = apply(&moved, &providers, &planned).await;
    assert!(
        !report.success(),
        "the interrupted apply must fail the change"
    );

    let pending = plan(&moved, &providers).await;
    let entries: Vec<&str> = pending
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action().is_change())
        .map(|c| c.address.0.as_str())
        .collect();
    assert_eq!(
        entries,
        ["pfsense_pending.virtual_ip"],
        "{}",
        render_plan(&pending.plan, false)
    );
    assert_eq!(
        pending.plan.warnings.len(),
        1,
        "{:?}",
        pending.plan.warnings
    );
    let w = &pending.plan.warnings[0];
    assert!(
        w.contains("pfSense firewall has changes written but not applied")
            && w.contains("pfsense_firewall_alias")
            && w.contains("leaves them unapplied"),
        "{w}"
    );
    assert!(render_plan(&pending.plan, false).contains(w.as_str()));

    sim.reset_counters();
    let report = apply(&moved, &providers, &pending).await;
    assert!(report.success(), "{report:?}");
    let c = sim.counters();
    assert_eq!(c.get("POST /api/v2/firewall/virtual_ip/apply"), 1);
    assert_eq!(
        c.get("POST /api/v2/firewall/apply"),
        0,
        "someone else's pending firewall change was applied without being in the plan"
    );
    assert!(applied(&sim, "virtual_ip"));
    assert!(!applied(&sim, "firewall"));
    let after = plan(&moved, &providers).await;
    assert!(!after.plan.has_changes());
    assert_eq!(after.plan.warnings, pending.plan.warnings);
}
