//! Bad input fails at plan time, naming the resource and the field, before the simulator
//! sees a single request.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::{PlanError, Providers, StackBuilder};
use cairn_pfsense::{
    BackendServer, HaproxyBackend, HaproxyBackendRefs, HaproxyFrontend, VirtualIp,
};
use common::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[tokio::test]
async fn bad_input_fails_at_plan_time_naming_resource_and_field_with_no_request_sent() {
    let sim = sim(69).await;
    let providers = Providers::new().with(Arc::new(provider(&sim, Duration::from_secs(5))));
    let mut s = StackBuilder::new("homelab");
    s.add("k8s", VirtualIp::ipalias(ip("10.0.20.99"), 24, "lan", ""));
    let mut pool = HaproxyBackend::https_checked("apiserver_nodes", "/readyz", 1000);
    pool.monitor_uri = "readyz".into();
    pool.servers = Some(vec![
        BackendServer::new("k8s-master", ip("10.0.20.100"), 0),
        BackendServer::new("k8s-master", ip("10.0.20.110"), 6443),
    ]);
    let pool = s.add("apiserver_nodes", pool);
    s.add(
        "apiserver_proxy_6443",
        HaproxyFrontend::tcp("apiserver_proxy_6443", ip("10.0.20.98"), 6443, pool.name()),
    );
    let stack = s.build().expect("graph is fine; the specs are not");

    let err = match cairn_core::plan(&stack, &providers).await {
        Err(PlanError::Invalid(diags)) => diags,
        other => panic!("expected invalid input, got {other:?}"),
    };
    let found: Vec<(String, String)> = err
        .iter()
        .map(|d| (d.address.to_string(), d.error.field.clone()))
        .collect();
    for (address, field) in [
        ("pfsense_haproxy_backend.apiserver_nodes", "monitor_uri"),
        ("pfsense_haproxy_backend.apiserver_nodes", "servers[0].port"),
        ("pfsense_haproxy_backend.apiserver_nodes", "servers[1].name"),
        (
            "pfsense_haproxy_frontend.apiserver_proxy_6443",
            "addresses[0].address",
        ),
    ] {
        assert!(
            found.contains(&(address.to_string(), field.to_string())),
            "missing {address} {field} in {err:#?}"
        );
    }
    let frontend = err
        .iter()
        .find(|d| d.error.field == "addresses[0].address")
        .unwrap();
    assert!(frontend.error.message.contains("10.0.20.98"), "{frontend}");
    let counters = sim.counters();
    assert_eq!(counters.writes, 0);
    assert!(counters.requests.is_empty(), "{:?}", counters.requests);
}

#[tokio::test]
async fn a_frontend_bound_by_reference_to_a_declared_vip_passes_validation() {
    use cairn_pfsense::VirtualIpRefs;
    let sim = sim(70).await;
    let p = provider(&sim, Duration::from_secs(5));
    let mut s = StackBuilder::new("homelab");
    let vip = s.add("k8s", VirtualIp::ipalias(ip("10.0.20.99"), 24, "lan", ""));
    let pool = s.add("p", HaproxyBackend::https_checked("p", "/readyz", 1000));
    s.add(
        "fe",
        HaproxyFrontend::tcp("fe", vip.ip(), 6443, pool.name()),
    );
    let stack = s.build().unwrap();
    let planned = cairn_core::plan(&stack, &Providers::new().with(Arc::new(p)))
        .await
        .expect("valid stack plans");
    assert_eq!(planned.plan.resource_changes.len(), 3);
    assert_eq!(sim.counters().writes, 0);
}
