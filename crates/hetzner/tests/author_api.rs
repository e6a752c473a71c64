//! The author's API: builders make the same specs as the field-level literals, objects named
//! by handle are ordered after what they name (no `depends_on`), and a reference to an
//! attribute the kind does not have is refused at plan time, before any request.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use cairn_core::{
    Action, ApplyOptions, AttrRef, BuildError, NodeRef, PlanError, StackBuilder, apply, plan,
};
use cairn_hetzner::prelude::*;
use cairn_hetzner::{
    Algorithm, ApplyToType, Direction, Labels, LbNetwork, ServerNetwork, TargetSelector, TargetType,
};
use common::*;

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

#[test]
fn builders_make_the_same_specs_as_the_literal_form() {
    let mut s = StackBuilder::new("t");
    let net = s.add("net", Network::new("net", "10.0.0.0/16", "10.0.1.0/24"));
    let key = s.add(
        "ops",
        SshKey::new("ops", "ssh-ed25519 AAAAC3Nza ops@example"),
    );

    let built = Server::new("web-1", "cax11", "ubuntu-24.04", "fsn1")
        .label("role", "web")
        .network(&net, [10, 0, 1, 5])
        .ssh_key(&key)
        .user_data("#cloud-config\n");
    let mut literal = Server::new("web-1", "cax11", "ubuntu-24.04", "fsn1");
    literal.labels.insert("role".into(), "web".into());
    literal.networks = Some(vec![ServerNetwork {
        network: net.id().into(),
        ip: Some(Ipv4Addr::new(10, 0, 1, 5)),
    }]);
    literal.ssh_keys = Some(vec!["ops".into()]);
    literal.user_data = Some("#cloud-config\n".into());
    assert_eq!(json(&built), json(&literal));
    let srv = s.add("web-1", built);

    // Targets added before the network are reached over it too.
    let built = LoadBalancer::new("lb", "lb11", "fsn1")
        .target(&srv)
        .network(&net, [10, 0, 1, 10])
        .service(Service::tcp(80))
        .service(Service::tcp(443).check(HealthCheck::tcp(443).interval(10).timeout(5)))
        .target_selector("role=web");
    let mut check443 = Service::tcp(443);
    check443.health_check.interval = 10;
    check443.health_check.timeout = 5;
    let literal = LoadBalancer {
        name: "lb".into(),
        load_balancer_type: "lb11".into(),
        location: "fsn1".into(),
        algorithm: Algorithm::default(),
        labels: Labels::new(),
        private_net: Some(vec![LbNetwork {
            network: net.id().into(),
            ip: Some(Ipv4Addr::new(10, 0, 1, 10)),
        }]),
        services: vec![Service::tcp(80), check443],
        targets: vec![
            Target::private_server(srv.id()),
            Target {
                kind: TargetType::LabelSelector,
                server: None,
                label_selector: Some(TargetSelector {
                    selector: "role=web".into(),
                }),
                ip: None,
                use_private_ip: Some(true),
            },
        ],
    };
    assert_eq!(json(&built), json(&literal));
    assert_eq!(json(&literal.services[0].health_check)["interval"], 15);

    let built = Firewall::new("fw")
        .allow_tcp_in(6443, ["10.0.0.0/16", "203.0.113.7/32"])
        .apply_to(&srv)
        .apply_to_selector("role=web");
    let literal = Firewall {
        name: "fw".into(),
        labels: Labels::new(),
        rules: vec![Rule::tcp_in("6443", &["10.0.0.0/16", "203.0.113.7/32"])],
        apply_to: vec![
            ApplyTo::server(srv.id()),
            ApplyTo {
                kind: ApplyToType::LabelSelector,
                server: None,
                label_selector: Some(TargetSelector {
                    selector: "role=web".into(),
                }),
            },
        ],
    };
    assert_eq!(json(&built), json(&literal));
    assert_eq!(literal.rules[0].direction, Direction::In);

    let zone = s.add("zone", Zone::new("example.com"));
    assert_eq!(
        json(&Zone::new("example.com")),
        json(&Zone::primary("example.com"))
    );
    let built = RRSet::new(&zone, "@", RecordType::MX)
        .value("10 mail.example.com.")
        .ttl(600);
    let literal = RRSet {
        zone: "example.com".into(),
        name: "@".into(),
        kind: RecordType::MX,
        ttl: Some(600),
        labels: Labels::new(),
        records: vec![Record::text("10 mail.example.com.")],
    };
    assert_eq!(json(&built), json(&literal));
    assert_eq!(
        json(&RRSet::a(&zone, "www", srv.ipv4())),
        json(&RRSet::a("example.com", "www", srv.ipv4()))
    );
}

#[test]
fn a_record_naming_its_zone_by_handle_is_ordered_after_it_without_depends_on() {
    let mut s = StackBuilder::new("t");
    let zone = s.add("zone", Zone::new("example.com"));
    let srv = s.add("web", Server::new("web", "cax11", "ubuntu-24.04", "fsn1"));
    let key = s.add(
        "ops",
        SshKey::new("ops", "ssh-ed25519 AAAAC3Nza ops@example"),
    );
    let other = s.add(
        "other",
        Server::new("other", "cax11", "ubuntu-24.04", "fsn1").ssh_key(&key),
    );
    let www = s.add("www", RRSet::a(&zone, "www", Ipv4Addr::new(203, 0, 113, 1)));
    let stack = s.build().expect("builds");
    let index = |a: &cairn_core::Address| stack.index_of(a).unwrap();
    // The record waits for the zone (and nothing else); the server for its SSH key.
    assert_eq!(stack.deps(index(www.address())), [index(zone.address())]);
    assert_eq!(stack.deps(index(other.address())), [index(key.address())]);
    assert!(stack.deps(index(srv.address())).is_empty());

    // A zone handle from another stack is not declared here: the build names the field.
    let mut elsewhere = StackBuilder::new("other");
    let foreign = elsewhere.add("zone", Zone::new("example.org"));
    let mut s = StackBuilder::new("t");
    s.add(
        "www",
        RRSet::a(&foreign, "www", Ipv4Addr::new(203, 0, 113, 1)),
    );
    match s.build() {
        Err(BuildError::Dangling { from, to, via }) => {
            assert_eq!(from.0, "hetzner_rrset.www");
            assert_eq!(to.0, "hetzner_zone.zone");
            assert_eq!(via, "zone");
        }
        other => panic!("expected a dangling reference, got {:?}", other.err()),
    }
}

/// A small stack in the builders, with no `depends_on`: applied against the simulator in
/// one go (every record created after its zone, every target after its server), then
/// planned again with nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_builder_stack_without_depends_on_applies_and_then_plans_no_changes() {
    let build = || {
        let mut s = StackBuilder::new("author");
        let net = s.add("net", Network::new("net", "10.0.0.0/16", "10.0.1.0/24"));
        let servers: Vec<_> = (1..=3u8)
            .map(|i| {
                let name = format!("web-{i}");
                let srv = Server::new(&name, "cax11", "ubuntu-24.04", "fsn1")
                    .label("role", "web")
                    .network(&net, [10, 0, 1, 10 + i]);
                s.add(&name, srv)
            })
            .collect();
        let mut lb = LoadBalancer::new("lb", "lb11", "fsn1")
            .network(&net, [10, 0, 1, 2])
            .service(Service::tcp(443));
        for srv in &servers {
            lb = lb.target(srv);
        }
        let lb = s.add("lb", lb);
        s.add(
            "fw",
            Firewall::new("fw")
                .allow_tcp_in(6443, ["10.0.0.0/16"])
                .apply_to(&servers[0]),
        );
        let zone = s.add("zone", Zone::new("example.com"));
        s.add("apex", RRSet::a(&zone, "@", lb.ipv4()));
        for (i, srv) in servers.iter().enumerate() {
            s.add(
                &format!("web-{i}"),
                RRSet::a(&zone, &format!("web-{i}"), srv.ipv4()),
            );
        }
        s.build().expect("builds")
    };
    let sim = sim().await;
    let providers = providers(provider(&sim));
    let stack = build();
    let planned = plan(&stack, &providers).await.expect("plan");
    let report = apply(
        &stack,
        &providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    let again = plan(&build(), &providers).await.expect("second plan");
    let changes: Vec<_> = again
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action() != Action::NoOp)
        .map(|c| (c.address.0.clone(), c.actions.clone()))
        .collect();
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(again.plan.resource_changes.len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_to_an_attribute_the_kind_lacks_is_refused_before_any_request() {
    let sim = sim().await;
    let providers = providers(provider(&sim));
    let mut s = StackBuilder::new("t");
    let srv = s.add("web", Server::new("web", "cax11", "ubuntu-24.04", "fsn1"));
    let zone = s.add("zone", Zone::new("example.com"));
    // Built by other means than the typed accessors (which have no such attribute).
    let wrong: AttrRef<Ipv4Addr> = AttrRef::new(srv.address().clone(), "public_net.ipv4");
    s.add("www", RRSet::a(&zone, "www", wrong));
    s.add("ok", RRSet::a(&zone, "ok", srv.ipv4()));
    let stack = s.build().expect("the graph itself is fine");
    sim.reset_counters();
    let err = plan(&stack, &providers).await.expect_err("refused");
    let PlanError::Invalid(diags) = &err else {
        panic!("expected invalid input, got {err}");
    };
    assert_eq!(diags.len(), 1, "{err}");
    assert_eq!(diags[0].address.0, "hetzner_rrset.www");
    assert_eq!(diags[0].error.field, "records[0].value");
    let text = err.to_string();
    assert!(text.contains("\"public_net.ipv4\""), "{text}");
    assert!(text.contains("hetzner_server.web"), "{text}");
    assert!(text.contains("id, ipv4"), "{text}");
    let counters = sim.counters();
    assert_eq!(counters.writes, 0, "{counters:?}");
    assert_eq!(counters.total, 0, "refused before observing: {counters:?}");
}
