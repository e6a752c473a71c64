//! What apply would refuse, the plan refuses first, naming the resource, the field and the
//! valid choices, with nothing written: server types, images and locations checked against
//! the live catalog, subnets against their members, and zones an rrset names against the
//! stack and the world. The catalog is read once per plan, and only what the plan needs.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use cairn_core::{
    ApplyOptions, CheckResult, PlanError, Providers, Stack, StackBuilder, apply, plan,
};
use cairn_hetzner::*;
use cairn_hetzner_sim::SimHandle;
use common::*;

async fn apply_all(stack: &Stack, providers: &Providers) {
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

/// The plan's refusal: its failed checks.
async fn refused(stack: &Stack, sim: &SimHandle) -> Vec<CheckResult> {
    let providers = providers(provider(sim));
    match plan(stack, &providers).await {
        Err(PlanError::ChecksFailed { failed, .. }) => failed,
        Err(e) => panic!("expected a refused plan, got: {e}"),
        Ok(_) => panic!("the plan was accepted"),
    }
}

fn one_server(server_type: &str, image: &str) -> Stack {
    let mut s = StackBuilder::new("cat");
    s.add("web1", Server::new("web1", server_type, image, "fsn1"));
    s.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_type_that_does_not_exist_is_refused_naming_the_field_and_the_types_of_its_location()
 {
    let sim = sim().await;
    let failed = refused(&one_server("cx21", "ubuntu-24.04"), &sim).await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].name, "hetzner_server.web1.server_type");
    assert_eq!(
        failed[0].message,
        "hetzner_server.web1: server_type \"cx21\" does not exist; valid in fsn1: cax11, cax21, \
         cax31, cax41, ccx13, ccx23, ccx33, cpx11, cpx21, cpx31, cpx41, cpx51, cx22, cx32, cx42, cx52"
    );
    let c = sim.counters();
    assert_eq!(c.writes, 0, "nothing written: {:?}", c.requests);
    assert_eq!(c.matching("POST"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arm_image_on_an_x86_server_type_is_refused_naming_the_images_that_fit() {
    let sim = sim().await;
    // 161547270 is ubuntu-24.04 built for Arm; a cx22 is x86.
    let failed = refused(&one_server("cx22", "161547270"), &sim).await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].name, "hetzner_server.web1.image");
    assert!(
        failed[0].message.starts_with(
            "hetzner_server.web1: image \"161547270\" is built for arm only, but server_type \"cx22\" is x86; valid for cx22 (x86): "
        ) && failed[0].message.contains("ubuntu-24.04"),
        "{}",
        failed[0].message
    );
    assert_eq!(sim.counters().writes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arm_type_outside_the_locations_it_is_offered_in_is_refused() {
    let sim = sim().await;
    let mut s = StackBuilder::new("cat");
    s.add("web1", Server::new("web1", "cax11", "ubuntu-24.04", "ash"));
    let failed = refused(&s.build().unwrap(), &sim).await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert!(
        failed[0]
            .message
            .starts_with("hetzner_server.web1: server_type \"cax11\" is not offered in ash (offered in fsn1, hel1, nbg1); valid in ash: ccx13"),
        "{}",
        failed[0].message
    );
    assert_eq!(sim.counters().writes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_subnet_for_four_servers_is_refused_before_any_request() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    let mut s = StackBuilder::new("cat");
    let net = s.add("net", Network::new("net", "10.0.0.0/16", "10.0.1.0/30"));
    for n in ["a", "b", "c", "d"] {
        let mut srv = Server::new(n, "cx22", "ubuntu-24.04", "fsn1");
        srv.networks = Some(vec![ServerNetwork {
            network: net.id().into(),
            ip: None,
        }]);
        s.add(n, srv);
    }
    let err = match plan(&s.build().unwrap(), &providers).await {
        Err(PlanError::Invalid(d)) => d,
        other => panic!("expected invalid input, got {:?}", other.map(|_| ())),
    };
    assert_eq!(err.len(), 1, "{err:#?}");
    assert_eq!(
        (err[0].address.0.as_str(), err[0].error.field.as_str()),
        ("hetzner_network.net", "subnets[0].ip_range")
    );
    assert_eq!(
        err[0].error.message,
        "10.0.1.0/30 has room for 1 more member (in each subnet the network address, the \
         gateway and the last address are reserved), but 4 are attached without a fixed IP: \
         hetzner_server.a, hetzner_server.b, hetzner_server.c, hetzner_server.d"
    );
    assert_eq!(sim.counters().total, 0, "not even a read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_ip_on_the_subnets_gateway_or_taken_twice_is_refused() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    let mut s = StackBuilder::new("cat");
    let net = s.add("net", Network::new("net", "10.0.0.0/16", "10.0.1.0/24"));
    for (n, ip) in [("a", "10.0.1.1"), ("b", "10.0.1.7"), ("c", "10.0.1.7")] {
        let mut srv = Server::new(n, "cx22", "ubuntu-24.04", "fsn1");
        srv.networks = Some(vec![ServerNetwork {
            network: net.id().into(),
            ip: Some(ip.parse::<Ipv4Addr>().unwrap()),
        }]);
        s.add(n, srv);
    }
    let err = match plan(&s.build().unwrap(), &providers).await {
        Err(PlanError::Invalid(d)) => d,
        other => panic!("expected invalid input, got {:?}", other.map(|_| ())),
    };
    let text: Vec<String> = err.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        text,
        [
            "hetzner_server.a: networks[0].ip: 10.0.1.1 is reserved in 10.0.1.0/24 of \
             hetzner_network.net: its network address and its gateway 10.0.1.1 cannot be used; \
             the first usable address is 10.0.1.2",
            "hetzner_server.c: networks[0].ip: 10.0.1.7 in hetzner_network.net is already \
             declared for hetzner_server.b (networks[0].ip)",
        ]
    );
    assert_eq!(sim.counters().total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rrset_in_a_zone_neither_declared_nor_existing_is_refused_and_an_existing_one_is_fine() {
    let sim = sim().await;
    let p = provider(&sim);
    create(&p, &Zone::primary("existing.dev")).await;
    let ip: Ipv4Addr = "203.0.113.9".parse().unwrap();
    let mut s = StackBuilder::new("cat");
    s.add("declared", Zone::primary("declared.dev"));
    s.add("www", RRSet::a("nowhere.dev", "www", ip));
    sim.reset_counters();
    let failed = refused(&s.build().unwrap(), &sim).await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].name, "hetzner_rrset.www.zone");
    assert_eq!(
        failed[0].message,
        "hetzner_rrset.www: zone \"nowhere.dev\" is neither declared in this stack nor an \
         existing zone; declared: declared.dev; existing: existing.dev"
    );
    assert_eq!(sim.counters().writes, 0);

    let mut s = StackBuilder::new("cat");
    s.add("www", RRSet::a("existing.dev", "www", ip));
    let planned = plan(&s.build().unwrap(), &providers(p))
        .await
        .expect("a zone that exists needs no declaration");
    assert!(planned.plan.checks.is_empty(), "{:?}", planned.plan.checks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_is_read_once_per_plan_and_a_no_op_plan_reads_none_of_it() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    let stack = k3s_stack("k3s");
    let first = plan(&stack, &providers).await.expect("the k3s stack plans");
    assert!(first.plan.checks.is_empty(), "{:?}", first.plan.checks);
    let c = sim.counters();
    for list in [
        "GET /v1/server_types",
        "GET /v1/images",
        "GET /v1/locations",
        "GET /v1/datacenters",
        "GET /v1/load_balancer_types",
    ] {
        assert_eq!(c.get(list), 1, "{list}: {:?}", c.requests);
    }
    apply_all(&stack, &providers).await;
    sim.reset_counters();
    let again = plan(&stack, &providers).await.expect("second plan");
    assert!(!again.plan.has_changes());
    let c = sim.counters();
    assert_eq!(
        c.matching("GET /v1/server_types")
            + c.matching("GET /v1/images")
            + c.matching("GET /v1/locations")
            + c.matching("GET /v1/datacenters")
            + c.matching("GET /v1/load_balancer_types"),
        0,
        "{:?}",
        c.requests
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_outside_the_network_zone_of_its_networks_subnets_is_refused() {
    let sim = sim().await;
    let mut s = StackBuilder::new("cat");
    let net = s.add("net", Network::new("net", "10.0.0.0/16", "10.0.1.0/24"));
    let mut srv = Server::new("web1", "cpx11", "ubuntu-24.04", "ash");
    srv.networks = Some(vec![ServerNetwork {
        network: net.id().into(),
        ip: None,
    }]);
    s.add("web1", srv);
    let failed = refused(&s.build().unwrap(), &sim).await;
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].name, "hetzner_server.web1.networks[0].network");
    assert_eq!(
        failed[0].message,
        "hetzner_server.web1: networks[0].network hetzner_network.net has subnets only in \
         eu-central, but location ash is in us-east; add a subnet in us-east or use a location \
         in its zone: fsn1, hel1, nbg1"
    );
    assert_eq!(sim.counters().writes, 0);
}
