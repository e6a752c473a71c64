//! The provider as the kit assembles it: every kind's schema paths resolve, owned objects of
//! a kind the stack stopped declaring are deleted, and a no-op plan costs the same requests
//! on every run however many servers a load balancer targets.

mod common;

use std::sync::Arc;

use cairn_core::{Action, ApplyOptions, Provider, Providers, Stack, StackBuilder, apply, plan};
use cairn_hetzner::*;
use common::*;

async fn apply_ok(stack: &Stack, providers: &Providers) {
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
}

#[tokio::test]
async fn every_kind_schema_path_exists() {
    let sim = sim().await;
    let p = provider(&sim);
    assert_eq!(p.check_schemas(), Vec::<String>::new());
    assert!(p.kinds().contains(&"hetzner_volume"), "{:?}", p.kinds());
    assert_eq!(p.kinds().len(), 9, "{:?}", p.kinds());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_every_firewall_plans_the_owned_firewall_for_deletion() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    let with_fw = {
        let mut s = StackBuilder::new("fw");
        let srv = s.add("web", Server::new("web", "cax11", "ubuntu-24.04", "fsn1"));
        s.add(
            "fw",
            Firewall {
                name: "web-fw".into(),
                labels: Labels::new(),
                rules: vec![Rule::tcp_in("443", &["0.0.0.0/0"])],
                apply_to: vec![ApplyTo::server(srv.id())],
            },
        );
        s.build().unwrap()
    };
    apply_ok(&with_fw, &providers).await;

    // The stack declares no firewall at all any more.
    let mut s = StackBuilder::new("fw");
    s.add("web", Server::new("web", "cax11", "ubuntu-24.04", "fsn1"));
    let without = s.build().unwrap();
    let planned = plan(&without, &providers).await.expect("plan");
    let deletes: Vec<(String, String)> = planned
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action() == Action::Delete)
        .map(|c| (c.kind.clone(), c.key.clone()))
        .collect();
    assert_eq!(
        deletes,
        [("hetzner_firewall".to_string(), "web-fw".to_string())]
    );
    apply_ok(&without, &providers).await;
    let st = sim.dump_state();
    assert!(
        st["objects"]["firewalls"]
            .as_object()
            .is_none_or(|m| m.is_empty()),
        "{}",
        st["objects"]["firewalls"]
    );
    assert!(!plan(&without, &providers).await.unwrap().plan.has_changes());
}

/// 120 servers (three pages) and an LB targeting every one of them by reference.
fn many_servers_behind_an_lb() -> Stack {
    let mut s = StackBuilder::new("many");
    let targets = (0..120)
        .map(|i| {
            let n = format!("node-{i:03}");
            Target::server(
                s.add(&n, Server::new(&n, "cax11", "ubuntu-24.04", "fsn1"))
                    .id(),
            )
        })
        .collect();
    s.add(
        "lb",
        LoadBalancer {
            name: "lb".into(),
            load_balancer_type: "lb31".into(),
            location: "fsn1".into(),
            algorithm: Algorithm::default(),
            labels: Labels::new(),
            private_net: Some(Vec::new()),
            services: vec![Service::tcp(80)],
            targets,
        },
    );
    s.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_plan_costs_the_same_requests_on_every_run() {
    let sim = sim().await;
    let providers = providers(provider(&sim).with_concurrency(16));
    let stack = many_servers_behind_an_lb();
    apply_ok(&stack, &providers).await;
    let mut runs = Vec::new();
    for _ in 0..4 {
        sim.reset_counters();
        let planned = plan(&stack, &providers).await.expect("plan");
        assert!(
            !planned.plan.has_changes(),
            "{:#?}",
            planned
                .plan
                .resource_changes
                .iter()
                .filter(|c| c.action().is_change())
                .collect::<Vec<_>>()
        );
        runs.push(sim.counters());
    }
    for r in &runs {
        assert_eq!(
            r.requests, runs[0].requests,
            "request counts differ between runs"
        );
        assert_eq!(r.writes, 0);
    }
    let c = &runs[0];
    // 120 servers, 50 a page: three pages, and no lookup per target.
    assert_eq!(c.matching("GET /v1/servers"), 3, "{:?}", c.requests);
    // One list for each other kind (rrsets: the owned zones, of which there are none).
    assert_eq!(c.total, 3 + 8, "{:?}", c.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_firewall_no_longer_declared_is_released_not_deleted() {
    let sim = sim().await;
    let p = provider(&sim);
    // Made by hand, with a user label.
    p.client()
        .request(
            reqwest::Method::POST,
            "/firewalls",
            &[],
            Some(
                &serde_json::json!({"name": "edge", "labels": {"team": "net"},
                "rules": [{"direction": "in", "protocol": "tcp", "port": "22",
                           "source_ips": ["10.0.0.0/8"]}]}),
            ),
            false,
        )
        .await
        .unwrap();
    let providers = providers(p);
    let mut fw = Firewall {
        name: "edge".into(),
        labels: [("team".to_string(), "net".to_string())].into(),
        rules: vec![Rule::tcp_in("22", &["10.0.0.0/8"])],
        apply_to: Vec::new(),
    };
    fw.rules[0].description = None;
    let mut s = StackBuilder::new("own");
    s.add("edge", fw);
    apply_ok(&s.build().unwrap(), &providers).await;
    let labels = |sim: &cairn_hetzner_sim::SimHandle| {
        sim.dump_state()["objects"]["firewalls"]
            .as_object()
            .and_then(|m| m.values().next().map(|f| f["labels"].clone()))
    };
    assert_eq!(
        labels(&sim).unwrap()["cairn.dev/origin"],
        "adopted",
        "adoption writes the marker"
    );

    let empty = StackBuilder::new("own").build().unwrap();
    let planned = plan(&empty, &providers).await.expect("plan");
    let c = planned
        .plan
        .change("hetzner_firewall.edge")
        .expect("planned");
    assert_eq!(c.action(), Action::Release, "{c:?}");
    apply_ok(&empty, &providers).await;
    let after = labels(&sim).expect("the firewall stays");
    assert_eq!(
        after,
        serde_json::json!({"team": "net"}),
        "only cairn's labels go"
    );
    assert!(!plan(&empty, &providers).await.unwrap().plan.has_changes());
}

#[tokio::test]
async fn a_create_never_takes_over_an_object_someone_made_after_the_plan() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    let mut fw = Firewall {
        name: "edge".into(),
        labels: Default::default(),
        rules: vec![Rule::tcp_in("22", &["10.0.0.0/8"])],
        apply_to: Vec::new(),
    };
    fw.rules[0].description = None;
    let mut s = StackBuilder::new("own");
    s.add("edge", fw);
    let stack = s.build().unwrap();
    let planned = plan(&stack, &providers).await.expect("plan");
    assert_eq!(
        planned
            .plan
            .change("hetzner_firewall.edge")
            .unwrap()
            .action(),
        Action::Create
    );
    // Between plan and apply, someone makes a firewall with that name by hand.
    provider(&sim)
        .client()
        .request(
            reqwest::Method::POST,
            "/firewalls",
            &[],
            Some(&serde_json::json!({"name": "edge", "labels": {"team": "net"}})),
            false,
        )
        .await
        .unwrap();
    let report = apply(
        &stack,
        &providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(!report.success());
    let why = format!("{report:?}");
    assert!(why.contains("refusing to take it over"), "{why}");
    let labels = sim.dump_state()["objects"]["firewalls"]
        .as_object()
        .and_then(|m| m.values().next().map(|f| f["labels"].clone()))
        .unwrap();
    assert_eq!(
        labels,
        serde_json::json!({"team": "net"}),
        "no marker written"
    );
}
