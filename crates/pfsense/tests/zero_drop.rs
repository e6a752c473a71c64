//! Real TCP traffic through the simulator's HAProxy while the provider changes the pool:
//! the safe add/remove never fails a probe nor sends a request to a server before its
//! health check passed; the naive add (server added `active`) does.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_core::tls::SelfSigned;
use cairn_core::{Address, Change, Provider, Resource};
use cairn_pfsense::{
    BackendServer, HaproxyBackend, HaproxyFrontend, PfSenseProvider, Subsystem, VirtualIp,
};
use common::*;
use serde_json::{Value, json};

struct Setup {
    sim: cairn_pfsense_sim::SimHandle,
    provider: PfSenseProvider,
    cert: SelfSigned,
    first: Backend,
    target: std::net::SocketAddr,
    pool: HaproxyBackend,
}

/// VIP 10.0.20.99, pool `apiserver_nodes` (HTTPS GET /readyz) with one ready master, and a
/// TCP frontend on the VIP; returns once the frontend serves.
async fn setup(octet: u8) -> Setup {
    setup_with_interval(octet, 300).await
}

/// [`setup`] with the pool's health-check interval in milliseconds.
async fn setup_with_interval(octet: u8, interval_ms: u32) -> Setup {
    let sim = sim(octet).await;
    let provider = provider(&sim, Duration::from_secs(30));
    let cert = SelfSigned::generate(&[]);
    let first = Backend::start(mapped(&sim, "10.0.20.100"), 0, Duration::ZERO, &cert).await;
    let vip = VirtualIp::ipalias("10.0.20.99".parse().unwrap(), 24, "lan", "k8s VIP");
    create(
        &provider,
        VirtualIp::KIND,
        &vip.key(),
        &serde_json::to_value(&vip).unwrap(),
        "t",
    )
    .await;
    let mut pool = HaproxyBackend::https_checked("apiserver_nodes", "/readyz", interval_ms);
    pool.servers = Some(vec![BackendServer::new(
        "k8s-master",
        "10.0.20.100".parse::<std::net::Ipv4Addr>().unwrap(),
        first.addr.port(),
    )]);
    create(
        &provider,
        HaproxyBackend::KIND,
        "apiserver_nodes",
        &serde_json::to_value(&pool).unwrap(),
        "t",
    )
    .await;
    let vip_ip = mapped(&sim, "10.0.20.99");
    let port = free_port(vip_ip);
    let fe = HaproxyFrontend::tcp(
        "apiserver_proxy",
        "10.0.20.99".parse::<std::net::Ipv4Addr>().unwrap(),
        port,
        "apiserver_nodes",
    );
    create(
        &provider,
        HaproxyFrontend::KIND,
        "apiserver_proxy",
        &serde_json::to_value(&fe).unwrap(),
        "t",
    )
    .await;
    let target = std::net::SocketAddr::new(vip_ip, port);
    wait_serving(target, &cert.fingerprint).await;
    Setup {
        sim,
        provider,
        cert,
        first,
        target,
        pool,
    }
}

async fn update_pool(
    p: &PfSenseProvider,
    desired: &HaproxyBackend,
) -> Result<Value, cairn_core::ProviderError> {
    let prior = p
        .observe(cairn_core::ObserveRequest {
            kind: HaproxyBackend::KIND,
            keys: std::slice::from_ref(&desired.name),
            stack: "t",
        })
        .await
        .unwrap()
        .pop()
        .expect("pool observed");
    let address = Address::new(HaproxyBackend::KIND, &desired.name);
    let m = marker("t");
    let want = serde_json::to_value(desired).unwrap();
    p.update(Change {
        address: &address,
        kind: HaproxyBackend::KIND,
        key: &desired.name,
        desired: Some(&want),
        prior: Some(&prior),
        marker: &m,
        changed: &["servers".to_string()],
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_add_and_remove_never_drop_a_probe_nor_reach_an_unready_server() {
    let s = setup(61).await;
    let ready = Backend::start(mapped(&s.sim, "10.0.20.110"), 0, Duration::ZERO, &s.cert).await;
    let slow = Backend::start(
        mapped(&s.sim, "10.0.20.111"),
        0,
        Duration::from_secs(3),
        &s.cert,
    )
    .await;

    let probes = ProbeLoop::start(s.target, s.cert.fingerprint.clone());
    let mut pool = s.pool.clone();
    pool.servers
        .get_or_insert_default()
        .push(BackendServer::new(
            "k8s-master-2",
            "10.0.20.110".parse::<std::net::Ipv4Addr>().unwrap(),
            ready.addr.port(),
        ));
    pool.servers
        .get_or_insert_default()
        .push(BackendServer::new(
            "k8s-master-3",
            "10.0.20.111".parse::<std::net::Ipv4Addr>().unwrap(),
            slow.addr.port(),
        ));
    let observed = update_pool(&s.provider, &pool).await.expect("safe add");
    assert_eq!(observed["servers"].as_array().unwrap().len(), 3);
    assert!(
        observed["servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "active")
    );

    // Let traffic reach the new servers, then remove the first master safely.
    tokio::time::sleep(Duration::from_millis(800)).await;
    pool.servers.as_mut().unwrap().remove(0);
    update_pool(&s.provider, &pool).await.expect("safe removal");
    let first_served = s.first.data.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (ok, failures) = probes.finish().await;

    assert!(
        failures.is_empty(),
        "{} failed probes: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 20, "only {ok} probes ran");
    for (name, b) in [("k8s-master-2", &ready), ("k8s-master-3", &slow)] {
        assert_eq!(
            b.before_ready.load(Ordering::SeqCst),
            0,
            "{name} got traffic before its check passed"
        );
        assert!(
            b.data.load(Ordering::SeqCst) > 0,
            "{name} never got traffic after being enabled"
        );
    }
    assert_eq!(
        s.first.data.load(Ordering::SeqCst),
        first_served,
        "removed master still got traffic"
    );
    assert!(
        !s.sim.haproxy_config().contains("k8s-master "),
        "{}",
        s.sim.haproxy_config()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn naive_add_as_active_sends_requests_to_a_server_before_its_check_passed() {
    // A slow check interval keeps the window in which the new server is wrongly UP wide
    // (it starts UP and needs 3 failed checks to go DOWN), so the proof holds under load.
    let s = setup_with_interval(63, 2000).await;
    let slow = Backend::start(
        mapped(&s.sim, "10.0.20.111"),
        0,
        Duration::from_secs(30),
        &s.cert,
    )
    .await;
    let probes = ProbeLoop::start(s.target, s.cert.fingerprint.clone());
    // The naive way: write the server `active` and apply, as a full-config push would.
    let client = s.provider.client();
    let (pid, _) = client
        .list(
            "/services/haproxy/backends",
            &[("name", "apiserver_nodes".into())],
        )
        .await
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_u64().unwrap(), ()))
        .next()
        .unwrap();
    client
        .post(
            "/services/haproxy/backend/server",
            &json!({"parent_id": pid, "name": "k8s-master-3", "address": "10.0.20.111",
                    "port": slow.addr.port().to_string(), "status": "active"}),
        )
        .await
        .unwrap();
    client.apply(Subsystem::Haproxy).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = probes.finish().await;
    assert!(
        slow.before_ready.load(Ordering::SeqCst) > 0,
        "expected the naive add to route requests to the not-ready server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_passes_stays_out_of_the_pool_and_the_error_says_so() {
    let s = setup(64).await;
    let provider = cairn_pfsense::PfSenseProvider::new(
        client(&s.sim, Duration::from_secs(10)),
        cairn_pfsense::ProviderOptions {
            server_check_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    );
    let never = Backend::start(
        mapped(&s.sim, "10.0.20.111"),
        0,
        Duration::from_secs(3600),
        &s.cert,
    )
    .await;
    let probes = ProbeLoop::start(s.target, s.cert.fingerprint.clone());
    let mut pool = s.pool.clone();
    pool.servers
        .get_or_insert_default()
        .push(BackendServer::new(
            "k8s-master-3",
            "10.0.20.111".parse::<std::net::Ipv4Addr>().unwrap(),
            never.addr.port(),
        ));
    let err = update_pool(&provider, &pool).await.unwrap_err();
    let (_, failures) = probes.finish().await;
    assert!(
        err.message.contains("k8s-master-3") && err.message.contains("health check"),
        "{err}"
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(never.data.load(Ordering::SeqCst), 0);
    let state = s.sim.world();
    let servers = &state.collections[&cairn_pfsense_sim::model::Collection::Backends][0]["servers"];
    assert_eq!(servers[1]["status"], "disabled", "{servers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_up_gate_fails_while_the_server_is_not_ready_and_passes_once_it_is() {
    use cairn_core::gate::Probe;
    let s = setup(78).await;
    let gate = s.provider.server_up("apiserver_nodes", "k8s-master");
    assert!(gate.describe().contains("apiserver_nodes/k8s-master"));
    gate.check().await.expect("the ready master is UP");
    let missing = s.provider.server_up("apiserver_nodes", "k8s-master-9");
    let why = missing.check().await.unwrap_err();
    assert!(why.contains("not in the running HAProxy"), "{why}");

    // A server that is in the pool but in maintenance is not UP.
    s.provider
        .client()
        .haproxy_runtime("set server apiserver_nodes_ipvANY/k8s-master state maint")
        .await
        .unwrap();
    let why = gate.check().await.unwrap_err();
    assert!(why.contains("admin_state"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_left_drained_by_an_interrupted_apply_is_observed_as_drift_and_restored() {
    let s = setup(79).await;
    // As if an apply died between "set active + apply" and "set state ready".
    s.provider
        .client()
        .haproxy_runtime("set server apiserver_nodes_ipvANY/k8s-master state drain")
        .await
        .unwrap();
    let observed = s
        .provider
        .observe(cairn_core::ObserveRequest {
            kind: HaproxyBackend::KIND,
            keys: &["apiserver_nodes".to_string()],
            stack: "t",
        })
        .await
        .unwrap();
    assert_eq!(observed[0].value["servers"][0]["status"], "drain");
    let restored = update_pool(&s.provider, &s.pool)
        .await
        .expect("update restores it");
    assert_eq!(restored["servers"][0]["status"], "active");
    let served = s.first.data.load(Ordering::SeqCst);
    wait_serving(s.target, &s.cert.fingerprint).await;
    assert!(s.first.data.load(Ordering::SeqCst) > served);
}

/// The cutover stack at a given pool membership: VIP, pool, frontend on the VIP.
fn cutover_stack(port: u16, servers: &[(&str, &str, u16)]) -> cairn_core::Stack {
    use cairn_pfsense::{HaproxyBackendRefs, VirtualIpRefs};
    let mut s = cairn_core::StackBuilder::new("t");
    let vip = s.add(
        "k8s",
        VirtualIp::ipalias("10.0.20.99".parse().unwrap(), 24, "lan", "k8s VIP"),
    );
    let mut pool = HaproxyBackend::https_checked("apiserver_nodes", "/readyz", 300);
    pool.servers = Some(
        servers
            .iter()
            .map(|(name, ip, port)| {
                BackendServer::new(name, ip.parse::<std::net::Ipv4Addr>().unwrap(), *port)
            })
            .collect(),
    );
    let pool = s.add("apiserver_nodes", pool);
    s.add(
        "apiserver_proxy",
        HaproxyFrontend::tcp("apiserver_proxy", vip.ip(), port, pool.name()),
    );
    s.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_apply_of_a_pool_change_shows_its_gates_and_drops_no_probe() {
    use cairn_core::{Action, ApplyOptions, Providers, apply::NoProgress};
    let sim = sim(80).await;
    let cert = SelfSigned::generate(&[]);
    let providers =
        Providers::new().with(std::sync::Arc::new(provider(&sim, Duration::from_secs(30))));
    let m1 = Backend::start(mapped(&sim, "10.0.20.100"), 0, Duration::ZERO, &cert).await;
    let m2 = Backend::start(
        mapped(&sim, "10.0.20.110"),
        0,
        Duration::from_secs(2),
        &cert,
    )
    .await;
    let vip_ip = mapped(&sim, "10.0.20.99");
    let port = free_port(vip_ip);
    let target = std::net::SocketAddr::new(vip_ip, port);

    let one = cutover_stack(port, &[("k8s-master", "10.0.20.100", m1.addr.port())]);
    let planned = cairn_core::plan(&one, &providers).await.unwrap();
    let report = cairn_core::apply(
        &one,
        &providers,
        &planned,
        ApplyOptions::default(),
        std::sync::Arc::new(NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    wait_serving(target, &cert.fingerprint).await;

    let probes = ProbeLoop::start(target, cert.fingerprint.clone());
    let two = cutover_stack(
        port,
        &[
            ("k8s-master", "10.0.20.100", m1.addr.port()),
            ("k8s-master-2", "10.0.20.110", m2.addr.port()),
        ],
    );
    let planned = cairn_core::plan(&two, &providers).await.unwrap();
    let change = planned
        .plan
        .resource_changes
        .iter()
        .find(|c| c.action() != Action::NoOp)
        .expect("one change");
    assert_eq!(
        change.address.to_string(),
        "pfsense_haproxy_backend.apiserver_nodes"
    );
    assert_eq!(change.action(), Action::Update);
    assert_eq!(
        change.steps,
        [
            "add k8s-master-2 disabled",
            "apply HAProxy",
            "gate: k8s-master-2 health check passes (HAProxy runtime API, show servers state)",
            "set k8s-master-2 active, apply HAProxy, runtime state ready",
        ]
    );
    let report = cairn_core::apply(
        &two,
        &providers,
        &planned,
        ApplyOptions::default(),
        std::sync::Arc::new(NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, failures) = probes.finish().await;
    assert!(failures.is_empty(), "{failures:?}");
    assert!(ok > 10);
    assert_eq!(m2.before_ready.load(Ordering::SeqCst), 0);
    assert!(m2.data.load(Ordering::SeqCst) > 0);
    let again = cairn_core::plan(&two, &providers).await.unwrap();
    assert!(
        again
            .plan
            .resource_changes
            .iter()
            .all(|c| c.action() == Action::NoOp)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrelated_changes_reload_haproxy_seamlessly_without_dropping_a_probe() {
    let s = setup(81).await;
    let probes = ProbeLoop::start(s.target, s.cert.fingerprint.clone());
    let pids_before = s.sim.haproxy_pids();
    for i in 0..4 {
        let other = HaproxyBackend::https_checked(&format!("other_{i}"), "/healthz", 1000);
        create(
            &s.provider,
            HaproxyBackend::KIND,
            &other.name,
            &serde_json::to_value(&other).unwrap(),
            "t",
        )
        .await;
    }
    let (ok, failures) = probes.finish().await;
    assert!(failures.is_empty(), "{failures:?}");
    assert!(ok > 10, "only {ok} probes");
    let current = s.sim.haproxy_pids();
    assert!(
        current.iter().any(|p| !pids_before.contains(p)),
        "HAProxy was never reloaded: {pids_before:?} → {current:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_the_only_server_in_one_change_is_make_before_break() {
    let s = setup(83).await;
    let next = Backend::start(
        mapped(&s.sim, "10.0.20.110"),
        0,
        Duration::from_secs(2),
        &s.cert,
    )
    .await;
    let probes = ProbeLoop::start(s.target, s.cert.fingerprint.clone());
    let mut pool = s.pool.clone();
    pool.servers = Some(vec![BackendServer::new(
        "k8s-master-2",
        "10.0.20.110".parse::<std::net::Ipv4Addr>().unwrap(),
        next.addr.port(),
    )]);
    update_pool(&s.provider, &pool).await.expect("replace");
    let (ok, failures) = probes.finish().await;
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(ok > 10);
    assert_eq!(next.before_ready.load(Ordering::SeqCst), 0);
    assert!(
        next.data.load(Ordering::SeqCst) > 0
            || probe_once(s.target, &s.cert.fingerprint).await.is_ok()
    );
    assert!(!s.sim.haproxy_config().contains("k8s-master "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_moved_to_a_new_port_is_gated_again_like_a_new_one() {
    let s = setup(84).await;
    let second = Backend::start(mapped(&s.sim, "10.0.20.110"), 0, Duration::ZERO, &s.cert).await;
    let mut pool = s.pool.clone();
    let ip: std::net::Ipv4Addr = "10.0.20.110".parse().unwrap();
    pool.servers
        .get_or_insert_default()
        .push(BackendServer::new("k8s-master-2", ip, second.addr.port()));
    update_pool(&s.provider, &pool).await.expect("add second");
    // The second master moves to a new port where it is not ready for its first seconds.
    let moved = Backend::start(
        mapped(&s.sim, "10.0.20.110"),
        0,
        Duration::from_secs(2),
        &s.cert,
    )
    .await;
    pool.servers.as_mut().unwrap()[1].port = moved.addr.port();
    let prior = s
        .provider
        .observe(cairn_core::ObserveRequest {
            kind: HaproxyBackend::KIND,
            keys: &["apiserver_nodes".to_string()],
            stack: "t",
        })
        .await
        .unwrap()
        .pop()
        .unwrap();
    let steps = s.provider.rollout_steps(
        HaproxyBackend::KIND,
        Some(&prior),
        Some(&serde_json::to_value(&pool).unwrap()),
    );
    assert!(
        steps[0].starts_with("move k8s-master-2 from 10.0.20.110:"),
        "{steps:?}"
    );
    let probes = ProbeLoop::start(s.target, s.cert.fingerprint.clone());
    update_pool(&s.provider, &pool).await.expect("move");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, failures) = probes.finish().await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(
        moved.before_ready.load(Ordering::SeqCst),
        0,
        "moved server got traffic before its check"
    );
    assert!(moved.data.load(Ordering::SeqCst) > 0);
}
