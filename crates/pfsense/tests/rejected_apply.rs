//! An apply that pfSense rejects (the simulator's `haproxy -c` fails) is reported as failed
//! with HAProxy's reason, and the running HAProxy keeps serving the previous config.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use cairn_core::tls::SelfSigned;
use cairn_core::{Address, Change, ObserveRequest, Provider, Resource};
use cairn_pfsense::{
    BackendServer, HaproxyBackend, HaproxyFrontend, PfSenseProvider, ProviderOptions, VirtualIp,
};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_config_is_reported_with_the_reason_and_the_old_config_keeps_serving() {
    let sim = sim(68).await;
    let cert = SelfSigned::generate(&[]);
    let master = Backend::start(mapped(&sim, "10.0.20.100"), 0, Duration::ZERO, &cert).await;
    let p = PfSenseProvider::new(
        client(&sim, Duration::from_secs(3)),
        ProviderOptions {
            server_check_timeout: Duration::from_secs(20),
            ..Default::default()
        },
    );
    let vip = VirtualIp::ipalias("10.0.20.99".parse().unwrap(), 24, "lan", "");
    create(
        &p,
        VirtualIp::KIND,
        &vip.key(),
        &serde_json::to_value(&vip).unwrap(),
        "t",
    )
    .await;
    let mut pool = HaproxyBackend::https_checked("apiserver_nodes", "/readyz", 500);
    let addr: Ipv4Addr = "10.0.20.100".parse().unwrap();
    pool.servers = Some(vec![BackendServer::new(
        "k8s-master",
        addr,
        master.addr.port(),
    )]);
    create(
        &p,
        HaproxyBackend::KIND,
        "apiserver_nodes",
        &serde_json::to_value(&pool).unwrap(),
        "t",
    )
    .await;
    let port = free_port(mapped(&sim, "10.0.20.99"));
    let fe = HaproxyFrontend::tcp(
        "fe",
        "10.0.20.99".parse::<Ipv4Addr>().unwrap(),
        port,
        "apiserver_nodes",
    );
    create(
        &p,
        HaproxyFrontend::KIND,
        "fe",
        &serde_json::to_value(&fe).unwrap(),
        "t",
    )
    .await;
    let target = SocketAddr::new(mapped(&sim, "10.0.20.99"), port);
    wait_serving(target, &cert.fingerprint).await;
    let serving_pid = sim.haproxy_pids();
    let config_before = sim.haproxy_config();

    // A pass-through option HAProxy does not know: the package accepts it, haproxy -c does not.
    pool.advanced = "check-ssl verify none bogus-keyword".into();
    let prior = p
        .observe(ObserveRequest {
            kind: HaproxyBackend::KIND,
            keys: &["apiserver_nodes".into()],
            stack: "t",
        })
        .await
        .unwrap()
        .pop()
        .unwrap();
    let address = Address::new(HaproxyBackend::KIND, "apiserver_nodes");
    let m = marker("t");
    let want = serde_json::to_value(&pool).unwrap();
    let probes = ProbeLoop::start(target, cert.fingerprint.clone());
    let err = p
        .update(Change {
            address: &address,
            kind: HaproxyBackend::KIND,
            key: "apiserver_nodes",
            desired: Some(&want),
            prior: Some(&prior),
            marker: &m,
            changed: &["advanced".to_string()],
        })
        .await
        .expect_err("pfSense must reject the config");
    let (ok, failures) = probes.finish().await;

    assert!(err.message.contains("pfSense rejected the config"), "{err}");
    assert!(
        err.message.contains("bogus-keyword"),
        "reason missing: {err}"
    );
    // A rejected apply is not an API error code: `code` holds only codes the API sent.
    assert_eq!(err.code, None, "{err:?}");
    assert!(!err.retryable, "a rejected config is not retried");
    assert!(
        failures.is_empty(),
        "old HAProxy stopped serving: {failures:?}"
    );
    assert!(ok > 0);
    assert_eq!(sim.haproxy_pids(), serving_pid, "HAProxy was restarted");
    assert_eq!(sim.haproxy_config(), config_before);
    assert!(sim.last_apply_error().unwrap().contains("bogus-keyword"));
    probe_once(target, &cert.fingerprint)
        .await
        .expect("still serving");
}
