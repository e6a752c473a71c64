//! End to end through the Provider trait and through the engine: VIP + TCP frontend on
//! 10.0.20.99:6443 + pool `apiserver_nodes` + host override `k8s-apiserver` → VIP are
//! created from nothing, observed exactly as desired, adopted without replace when made by
//! hand, and a second plan is empty.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cairn_core::tls::SelfSigned;
use cairn_core::{Action, ObserveRequest, Provider, Providers, Resource, StackBuilder};
use cairn_pfsense::{
    BackendServer, DnsHostOverride, FirewallAlias, HaproxyBackend, HaproxyBackendRefs,
    HaproxyFrontend, PfSenseProvider, Subsystem, VirtualIp, VirtualIpRefs,
};
use common::*;
use serde_json::{Value, json};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn vip() -> VirtualIp {
    VirtualIp::ipalias(ip("10.0.20.99"), 24, "lan", "k8s apiserver VIP")
}

fn pool() -> HaproxyBackend {
    let mut pool = HaproxyBackend::https_checked("apiserver_nodes", "/readyz", 500);
    pool.servers = Some(vec![BackendServer::new(
        "k8s-master",
        ip("10.0.20.100"),
        6443,
    )]);
    pool
}

fn frontend() -> HaproxyFrontend {
    let mut fe = HaproxyFrontend::tcp(
        "apiserver_proxy_6443",
        ip("10.0.20.99"),
        6443,
        "apiserver_nodes",
    );
    fe.descr = "Kubernetes API".into();
    fe
}

fn host_override() -> DnsHostOverride {
    DnsHostOverride {
        host: "k8s-apiserver".into(),
        domain: "home.arpa".into(),
        ip: vec![ip("10.0.20.99").into()],
        descr: "apiserver VIP".into(),
    }
}

fn alias() -> FirewallAlias {
    FirewallAlias {
        name: "k8s_masters".into(),
        kind: cairn_pfsense::AliasType::Host,
        address: vec![
            "10.0.20.100".into(),
            "10.0.20.110".into(),
            "10.0.20.111".into(),
        ],
        descr: "control plane".into(),
    }
}

async fn observe_one(p: &PfSenseProvider, kind: &str, key: &str) -> cairn_core::Observed {
    let keys = [key.to_string()];
    let mut found = p
        .observe(ObserveRequest {
            kind,
            keys: &keys,
            stack: "homelab",
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{kind} {key}: {found:?}");
    found.pop().unwrap()
}

/// Every kind, desired value and key of the scenario.
fn desired() -> Vec<(&'static str, String, Value)> {
    vec![
        (
            VirtualIp::KIND,
            vip().key(),
            serde_json::to_value(vip()).unwrap(),
        ),
        (
            HaproxyBackend::KIND,
            pool().key(),
            serde_json::to_value(pool()).unwrap(),
        ),
        (
            HaproxyFrontend::KIND,
            frontend().key(),
            serde_json::to_value(frontend()).unwrap(),
        ),
        (
            DnsHostOverride::KIND,
            host_override().key(),
            serde_json::to_value(host_override()).unwrap(),
        ),
        (
            FirewallAlias::KIND,
            alias().key(),
            serde_json::to_value(alias()).unwrap(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_from_nothing_then_observed_exactly_as_desired_with_the_marker() {
    let sim = sim(62).await;
    let cert = SelfSigned::generate(&[]);
    let _master = Backend::start(mapped(&sim, "10.0.20.100"), 6443, Duration::ZERO, &cert).await;
    let p = provider(&sim, Duration::from_secs(20));
    for (kind, key, want) in desired() {
        let returned = create(&p, kind, &key, &want, "homelab").await;
        assert_eq!(
            returned, want,
            "{kind} {key}: create returns the observed value"
        );
    }
    for (kind, key, want) in desired() {
        let o = observe_one(&p, kind, &key).await;
        assert_eq!(o.value, want, "{kind} {key}");
        assert_eq!(o.marker, Some(marker("homelab")), "{kind} {key}");
    }
    // The marker lives in descr remotely, never in the diffed value.
    let w = sim.world();
    let fe = &w.collections[&cairn_pfsense_sim::model::Collection::Frontends][0];
    assert_eq!(
        fe["descr"],
        "Kubernetes API [cairn stack=homelab fp=f00d origin=created]"
    );
    // And the frontend really serves on the mapped VIP.
    wait_serving(
        SocketAddr::new(mapped(&sim, "10.0.20.99"), 6443),
        &cert.fingerprint,
    )
    .await;
}

/// The same objects, made by hand through the API the way an admin would in the GUI.
async fn make_by_hand(c: &cairn_pfsense::PfSenseClient) {
    c.post(
        "/firewall/virtual_ip",
        &json!({"mode": "ipalias", "interface": "lan", "subnet": "10.0.20.99",
        "subnet_bits": 24, "descr": "k8s apiserver VIP"}),
    )
    .await
    .unwrap();
    c.post("/services/haproxy/backend", &json!({"name": "apiserver_nodes", "balance": "roundrobin",
        "check_type": "HTTP", "checkinter": 500, "httpcheck_method": "GET", "monitor_uri": "/readyz",
        "retries": 3, "advanced": "check-ssl verify none",
        "servers": [{"name": "k8s-master", "address": "10.0.20.100", "port": "6443"}]})).await.unwrap();
    c.post("/services/haproxy/frontend", &json!({"name": "apiserver_proxy_6443", "descr": "Kubernetes API",
        "type": "tcp", "backend_serverpool": "apiserver_nodes",
        "a_extaddr": [{"extaddr": "custom", "extaddr_custom": "10.0.20.99", "extaddr_port": "6443"}]})).await.unwrap();
    c.post(
        "/services/dns_resolver/host_override",
        &json!({"host": "k8s-apiserver", "domain": "home.arpa",
        "ip": ["10.0.20.99"], "descr": "apiserver VIP"}),
    )
    .await
    .unwrap();
    c.post(
        "/firewall/alias",
        &json!({"name": "k8s_masters", "type": "host", "descr": "control plane",
                "address": ["10.0.20.100", "10.0.20.110", "10.0.20.111"]}),
    )
    .await
    .unwrap();
    for s in [
        Subsystem::VirtualIp,
        Subsystem::Haproxy,
        Subsystem::DnsResolver,
        Subsystem::Firewall,
    ] {
        c.apply(s).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_made_by_hand_are_observed_unmarked_with_identical_values() {
    let sim = sim(65).await;
    let p = provider(&sim, Duration::from_secs(20));
    make_by_hand(p.client()).await;
    for (kind, key, want) in desired() {
        let o = observe_one(&p, kind, &key).await;
        assert_eq!(o.marker, None, "{kind} {key}");
        assert_eq!(o.value, want, "{kind} {key}");
    }
}

/// The scenario as a user writes it: references instead of repeated literals.
fn stack() -> cairn_core::Stack {
    let mut s = StackBuilder::new("homelab");
    let vip = s.add("k8s", vip());
    let pool = s.add("apiserver_nodes", pool());
    let mut fe = frontend();
    fe.addresses[0].address = vip.ip().into();
    fe.default_backend = pool.name().into();
    s.add("apiserver_proxy_6443", fe);
    let mut dns = host_override();
    dns.ip = vec![vip.ip().into()];
    s.add("k8s-apiserver", dns);
    s.add("k8s_masters", alias());
    s.build().expect("stack builds")
}

fn providers(p: PfSenseProvider) -> Providers {
    Providers::new().with(Arc::new(p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_creates_the_cutover_objects_and_a_second_plan_is_empty() {
    let sim = sim(66).await;
    let cert = SelfSigned::generate(&[]);
    let _master = Backend::start(mapped(&sim, "10.0.20.100"), 6443, Duration::ZERO, &cert).await;
    let providers = providers(provider(&sim, Duration::from_secs(20)));
    let stack = stack();
    let planned = cairn_core::plan(&stack, &providers).await.expect("plan");
    let actions: Vec<Action> = planned
        .plan
        .resource_changes
        .iter()
        .map(|c| c.action())
        .collect();
    assert_eq!(
        actions,
        vec![Action::Create; 5],
        "{:#?}",
        planned.plan.resource_changes
    );
    let pool_change = planned
        .plan
        .resource_changes
        .iter()
        .find(|c| c.kind == HaproxyBackend::KIND)
        .unwrap();
    assert!(
        pool_change
            .steps
            .iter()
            .any(|s| s.contains("gate: k8s-master health check passes")),
        "{:?}",
        pool_change.steps
    );
    let report = cairn_core::apply(
        &stack,
        &providers,
        &planned,
        cairn_core::ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    wait_serving(
        SocketAddr::new(mapped(&sim, "10.0.20.99"), 6443),
        &cert.fingerprint,
    )
    .await;

    let again = cairn_core::plan(&stack, &providers)
        .await
        .expect("second plan");
    let changes: Vec<_> = again
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action() != Action::NoOp)
        .collect();
    assert!(changes.is_empty(), "second plan not empty: {changes:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_adopts_objects_made_by_hand_without_replace() {
    let sim = sim(67).await;
    let p = provider(&sim, Duration::from_secs(20));
    make_by_hand(p.client()).await;
    let before = sim.counters().writes;
    let planned = cairn_core::plan(&stack(), &providers(p))
        .await
        .expect("plan");
    for c in &planned.plan.resource_changes {
        assert!(
            matches!(c.action(), Action::Update | Action::NoOp),
            "{} planned {:?}: {:?}",
            c.address,
            c.action(),
            c.changes
        );
        assert!(
            c.replace_paths.is_empty(),
            "{}: {:?}",
            c.address,
            c.replace_paths
        );
    }
    assert_eq!(sim.counters().writes, before, "planning wrote to pfSense");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_dropped_from_the_stack_are_deleted_users_first_and_unowned_ones_are_left_alone() {
    let sim = sim(82).await;
    let cert = SelfSigned::generate(&[]);
    let _master = Backend::start(mapped(&sim, "10.0.20.100"), 6443, Duration::ZERO, &cert).await;
    let p = provider(&sim, Duration::from_secs(20));
    // Something made by hand that this stack must never touch.
    p.client()
        .post(
            "/services/dns_resolver/host_override",
            &json!({"host": "nas", "domain": "home.arpa", "ip": ["10.0.20.5"]}),
        )
        .await
        .unwrap();
    let providers = providers(p);
    let full = stack();
    let planned = cairn_core::plan(&full, &providers).await.unwrap();
    let report = cairn_core::apply(
        &full,
        &providers,
        &planned,
        cairn_core::ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");

    // The same stack without the frontend, the pool and the DNS override.
    let mut s = StackBuilder::new("homelab");
    s.add("k8s", vip());
    s.add("k8s_masters", alias());
    let smaller = s.build().unwrap();
    let planned = cairn_core::plan(&smaller, &providers).await.unwrap();
    let mut deletes: Vec<String> = planned
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action() == Action::Delete)
        .map(|c| c.address.to_string())
        .collect();
    deletes.sort();
    assert_eq!(
        deletes,
        [
            "pfsense_dns_host_override.k8s-apiserver.home.arpa",
            "pfsense_haproxy_backend.apiserver_nodes",
            "pfsense_haproxy_frontend.apiserver_proxy_6443",
        ]
    );
    let report = cairn_core::apply(
        &smaller,
        &providers,
        &planned,
        cairn_core::ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    let w = sim.world();
    use cairn_pfsense_sim::model::Collection;
    assert!(w.list(Collection::Frontends).is_empty());
    assert!(w.list(Collection::Backends).is_empty());
    let overrides = w.list(Collection::HostOverrides);
    assert_eq!(overrides.len(), 1);
    assert_eq!(
        overrides[0]["host"], "nas",
        "the unowned override was touched"
    );
    assert!(
        !sim.haproxy_config().contains("apiserver"),
        "{}",
        sim.haproxy_config()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observing_is_one_list_call_per_kind_whatever_the_number_of_objects() {
    let sim = sim(87).await;
    let p = provider(&sim, Duration::from_secs(20));
    make_by_hand(p.client()).await;
    for i in 0..3 {
        p.client()
            .post(
                "/services/haproxy/backend",
                &json!({"name": format!("extra_{i}")}),
            )
            .await
            .unwrap();
    }
    sim.reset_counters();
    let keys: Vec<String> = (0..3)
        .map(|i| format!("extra_{i}"))
        .chain(["apiserver_nodes".into()])
        .collect();
    let found = p
        .observe(ObserveRequest {
            kind: HaproxyBackend::KIND,
            keys: &keys,
            stack: "homelab",
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 4);
    let c = sim.counters();
    assert_eq!(
        c.requests.get("GET /api/v2/services/haproxy/backends"),
        Some(&1),
        "{:?}",
        c.requests
    );
    assert_eq!(
        c.requests.values().sum::<u64>(),
        2,
        "one list + one runtime state read: {:?}",
        c.requests
    );
    assert_eq!(c.writes, 0);
}
