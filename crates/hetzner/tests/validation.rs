//! Bad input fails at plan time, naming the resource and the field, before a single request
//! reaches the API (the simulator's counters stay at zero).

mod common;

use cairn_core::{PlanError, StackBuilder, plan};
use cairn_hetzner::*;
use common::*;

#[tokio::test]
async fn bad_input_fails_at_plan_time_naming_resource_and_field_with_no_request_sent() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    let mut s = StackBuilder::new("k3s");
    let mut net = Network::new("k3s-net", "10.0.0.0/16", "10.0.1.0/24");
    net.subnets.push(Subnet {
        kind: SubnetType::Cloud,
        network_zone: "eu-central".into(),
        ip_range: "10.0.1.128/25".into(),
    });
    let net = s.add("k3s-net", net);
    let other = s.add(
        "other-net",
        Network::new("other-net", "10.1.0.0/16", "10.1.1.0/24"),
    );
    let mut w1 = Server::new("k3s-w1", "cax11", "ubuntu-24.04", "fsn1");
    w1.networks = Some(vec![ServerNetwork {
        network: other.id().into(),
        ip: None,
    }]);
    let w1 = s.add("k3s-w1", w1);
    s.add(
        "k3s-lb",
        LoadBalancer {
            name: "k3s-lb".into(),
            load_balancer_type: "lb11".into(),
            location: "fsn1".into(),
            algorithm: Algorithm::default(),
            labels: Labels::new(),
            private_net: Some(vec![LbNetwork {
                network: net.id().into(),
                ip: None,
            }]),
            services: vec![Service::tcp(80)],
            targets: vec![Target::private_server(w1.id())],
        },
    );
    s.add(
        "k3s-fw",
        Firewall {
            name: "k3s-fw".into(),
            labels: Labels::new(),
            rules: vec![Rule::tcp_in("70000", &["10.0.0.0/16"])],
            apply_to: vec![],
        },
    );
    s.add("docfast", Zone::primary("docfast.dev"));
    s.add(
        "apex",
        RRSet {
            records: vec![Record::text("300.1.2.3")],
            ..RRSet::a(
                "docfast.dev",
                "@",
                "203.0.113.1".parse::<std::net::Ipv4Addr>().unwrap(),
            )
        },
    );
    let stack = s
        .build()
        .expect("builds: the problems are values, not structure");

    let err = match plan(&stack, &providers).await {
        Err(PlanError::Invalid(d)) => d,
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("bad input was accepted"),
    };
    let found = |addr: &str, field: &str| {
        err.iter()
            .any(|d| d.address.0 == addr && d.error.field == field)
    };
    assert!(
        found("hetzner_network.k3s-net", "subnets[1].ip_range"),
        "overlapping subnets: {err:#?}"
    );
    assert!(
        found("hetzner_load_balancer.k3s-lb", "targets[0].server.id"),
        "target not in LB network: {err:#?}"
    );
    assert!(
        found("hetzner_firewall.k3s-fw", "rules[0].port"),
        "port 70000: {err:#?}"
    );
    assert!(
        found("hetzner_rrset.apex", "records[0].value"),
        "invalid IPv4: {err:#?}"
    );
    assert_eq!(err.len(), 4, "exactly the four problems: {err:#?}");
    let text = PlanError::Invalid(err).to_string();
    assert!(
        text.contains("hetzner_firewall.k3s-fw: rules[0].port"),
        "{text}"
    );
    let c = sim.counters();
    assert_eq!(
        (c.total, c.writes),
        (0, 0),
        "no request reached the API: {:?}",
        c.requests
    );
}

#[tokio::test]
async fn fixed_private_ip_outside_every_subnet_is_rejected_at_plan_time() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    let mut s = StackBuilder::new("k3s");
    let net = s.add("net", Network::new("net", "10.0.0.0/16", "10.0.1.0/24"));
    let mut srv = Server::new("a", "cax11", "ubuntu-24.04", "fsn1");
    srv.networks = Some(vec![ServerNetwork {
        network: net.id().into(),
        ip: Some("10.0.9.9".parse().unwrap()),
    }]);
    s.add("a", srv);
    let err = match plan(&s.build().unwrap(), &providers).await {
        Err(PlanError::Invalid(d)) => d,
        other => panic!("expected invalid input, got {:?}", other.map(|_| ())),
    };
    assert_eq!(err.len(), 1, "{err:#?}");
    assert_eq!(
        (err[0].address.0.as_str(), err[0].error.field.as_str()),
        ("hetzner_server.a", "networks[0].ip")
    );
    assert_eq!(sim.counters().total, 0);
}
