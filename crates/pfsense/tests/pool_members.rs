//! Pool members (`pfsense_haproxy_pool_member`) through the engine, with real traffic
//! through the simulator's HAProxy: servers join a pool one at a time, each behind its own
//! gate, with the safe add and removal; a member that never gets ready fails naming itself
//! while the pool keeps serving; hand-made servers are observed as unowned members; a pool
//! with inline servers and members is refused at plan time; a pool moving from inline
//! servers to members hands its servers over untouched.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_core::apply::NoProgress;
use cairn_core::gate::GateTiming;
use cairn_core::tls::SelfSigned;
use cairn_core::{
    Action, ApplyOptions, ApplyReport, ObserveRequest, Outcome, PlanError, Planned, Provider,
    Providers, Resource, Stack, StackBuilder,
};
use cairn_pfsense::{
    BackendServer, HaproxyBackend, HaproxyBackendRefs, HaproxyFrontend, HaproxyPoolMember,
    PfSenseProvider, Subsystem, VirtualIp, VirtualIpRefs,
};
use common::*;
use serde_json::json;

const POOL: &str = "apiserver_nodes";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// One member to declare: name, simulated address, port.
struct M<'a> {
    name: &'a str,
    addr: &'a str,
    port: u16,
}

/// VIP → pool (servers as members) + frontend on the VIP → the members in order, each after
/// a `HaproxyServerUp` gate on the one before it (the cutover order of the homelab stack).
fn stack(p: &PfSenseProvider, port: u16, members: &[M<'_>]) -> Stack {
    let mut s = StackBuilder::new("homelab");
    let vip = s.add(
        "k8s",
        VirtualIp::ipalias(ip("10.0.20.99"), 24, "lan", "k8s VIP"),
    );
    let pool = s.add(
        POOL,
        HaproxyBackend::https_checked(POOL, "/readyz", 300).servers_managed_as_members(),
    );
    s.add(
        "apiserver_proxy",
        HaproxyFrontend::tcp("apiserver_proxy", vip.ip(), port, pool.name()),
    );
    let mut previous_gate = None;
    for m in members {
        let member = s.add(
            &format!("{POOL}/{}", m.name),
            HaproxyPoolMember::new(pool.name(), m.name, ip(m.addr), m.port),
        );
        if let Some(g) = &previous_gate {
            s.depends_on(&member, g);
        }
        previous_gate = Some(s.gate(
            &format!("{}-up", m.name),
            p.member_up(&HaproxyPoolMember::new(POOL, m.name, ip(m.addr), m.port)),
            GateTiming {
                interval: Duration::from_millis(200),
                timeout: Duration::from_secs(30),
            },
        ));
        s.depends_on(previous_gate.as_ref().unwrap(), &member);
    }
    s.build().expect("stack builds")
}

async fn run(stack: &Stack, providers: &Providers, planned: &Planned) -> ApplyReport {
    cairn_core::apply(
        stack,
        providers,
        planned,
        ApplyOptions::default(),
        Arc::new(NoProgress),
    )
    .await
}

async fn assert_second_plan_empty(stack: &Stack, providers: &Providers) {
    let again = cairn_core::plan(stack, providers)
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

fn member_address(name: &str) -> String {
    format!("{}.{POOL}/{name}", HaproxyPoolMember::KIND)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_one_at_a_time_behind_their_gates_without_a_failed_probe() {
    let sim = sim(90).await;
    let cert = SelfSigned::generate(&[]);
    let p = provider(&sim, Duration::from_secs(30));
    let m1 = Backend::start(mapped(&sim, "10.0.20.100"), 0, Duration::ZERO, &cert).await;
    // The second master is slow to get ready: it must not see a request before that.
    let m2 = Backend::start(
        mapped(&sim, "10.0.20.110"),
        0,
        Duration::from_secs(4),
        &cert,
    )
    .await;
    let vip_ip = mapped(&sim, "10.0.20.99");
    let port = free_port(vip_ip);
    let target = SocketAddr::new(vip_ip, port);
    let stack = stack(
        &p,
        port,
        &[
            M {
                name: "k8s-master",
                addr: "10.0.20.100",
                port: m1.addr.port(),
            },
            M {
                name: "k8s-master-2",
                addr: "10.0.20.110",
                port: m2.addr.port(),
            },
        ],
    );
    let providers = Providers::new().with(Arc::new(p));
    let planned = cairn_core::plan(&stack, &providers).await.expect("plan");
    let second = planned
        .plan
        .change(&member_address("k8s-master-2"))
        .expect("member 2 planned");
    assert_eq!(second.action(), Action::Create);
    assert_eq!(
        second.steps,
        [
            format!("add k8s-master-2 disabled to pool {POOL} (looked up by name)"),
            "apply HAProxy".into(),
            "gate: k8s-master-2 health check passes (HAProxy runtime API, show servers state)"
                .into(),
            "set k8s-master-2 active, apply HAProxy, runtime state ready".into(),
        ]
    );
    let pool_steps = &planned
        .plan
        .change(&format!("{}.{POOL}", HaproxyBackend::KIND));
    assert_eq!(
        pool_steps.unwrap().steps,
        [format!(
            "create pool {POOL} without servers (they are pool members), apply HAProxy"
        )]
    );

    // The whole cutover in one apply; probes run from the moment the frontend serves.
    let apply = {
        let (stack, providers, planned) = (stack.clone(), providers.clone(), planned.clone());
        tokio::spawn(async move { run(&stack, &providers, &planned).await })
    };
    wait_serving(target, &cert.fingerprint).await;
    let probes = ProbeLoop::start(target, cert.fingerprint.clone());
    let report = apply.await.unwrap();
    assert!(report.success(), "{report:#?}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (ok, failures) = probes.finish().await;

    assert!(
        failures.is_empty(),
        "{} failed probes: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 10, "only {ok} probes ran");
    assert!(m2.check_passed.load(Ordering::SeqCst));
    assert_eq!(
        m2.before_ready.load(Ordering::SeqCst),
        0,
        "k8s-master-2 got traffic before its check passed"
    );
    assert!(
        m2.data.load(Ordering::SeqCst) > 0,
        "k8s-master-2 never served"
    );
    // The gate on the first member ran before the second member was touched.
    let pos = |a: &str| {
        report
            .entries
            .iter()
            .position(|e| e.address.to_string() == a)
            .unwrap_or_else(|| panic!("{a} not in {report:#?}"))
    };
    assert!(pos("gate.k8s-master-up") < pos(&member_address("k8s-master-2")));
    let cfg = sim.haproxy_config();
    assert!(cfg.contains("k8s-master-2"), "{cfg}");
    assert_second_plan_empty(&stack, &providers).await;
}

/// Applies the first stage (pool, frontend, the first ready member) and waits until the
/// frontend serves.
async fn first_stage(
    sim: &cairn_pfsense_sim::SimHandle,
    p: &PfSenseProvider,
    cert: &SelfSigned,
    members: &[M<'_>],
) -> (Providers, SocketAddr, u16) {
    let vip_ip = mapped(sim, "10.0.20.99");
    let port = free_port(vip_ip);
    let providers = Providers::new().with(Arc::new(p.clone()));
    let one = stack(p, port, members);
    let planned = cairn_core::plan(&one, &providers).await.expect("plan");
    let report = run(&one, &providers, &planned).await;
    assert!(report.success(), "{report:#?}");
    let target = SocketAddr::new(vip_ip, port);
    wait_serving(target, &cert.fingerprint).await;
    (providers, target, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_never_gets_ready_fails_naming_itself_and_the_pool_keeps_serving() {
    let sim = sim(91).await;
    let cert = SelfSigned::generate(&[]);
    let p = provider(&sim, Duration::from_secs(30));
    let m1 = Backend::start(mapped(&sim, "10.0.20.100"), 0, Duration::ZERO, &cert).await;
    let never = Backend::start(
        mapped(&sim, "10.0.20.111"),
        0,
        Duration::from_secs(3600),
        &cert,
    )
    .await;
    let first = M {
        name: "k8s-master",
        addr: "10.0.20.100",
        port: m1.addr.port(),
    };
    let (_, target, port) = first_stage(&sim, &p, &cert, &[first]).await;

    // From here on a server gets 3 s to pass its check.
    let p = provider(&sim, Duration::from_secs(3));
    let providers = Providers::new().with(Arc::new(p.clone()));
    let probes = ProbeLoop::start(target, cert.fingerprint.clone());
    let two = stack(
        &p,
        port,
        &[
            M {
                name: "k8s-master",
                addr: "10.0.20.100",
                port: m1.addr.port(),
            },
            M {
                name: "k8s-master-3",
                addr: "10.0.20.111",
                port: never.addr.port(),
            },
        ],
    );
    let planned = cairn_core::plan(&two, &providers).await.expect("plan");
    let report = run(&two, &providers, &planned).await;
    let (ok, failures) = probes.finish().await;

    assert!(!report.success(), "{report:#?}");
    let entry = report
        .entries
        .iter()
        .find(|e| e.address.to_string() == member_address("k8s-master-3"))
        .expect("the member has a report entry");
    let Outcome::Failed(why) = &entry.outcome else {
        panic!("expected a failure: {entry:#?}");
    };
    assert!(
        why.contains("k8s-master-3") && why.contains("health check"),
        "{why}"
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert!(ok > 5, "only {ok} probes ran");
    assert_eq!(never.data.load(Ordering::SeqCst), 0);
    // Left in the pool, not active (both members are owned through the pool).
    let observed = p
        .observe(ObserveRequest {
            kind: HaproxyPoolMember::KIND,
            keys: &[format!("{POOL}/k8s-master-3")],
            stack: "homelab",
        })
        .await
        .unwrap();
    let status = |key: &str| {
        observed
            .iter()
            .find(|o| o.key == key)
            .map(|o| o.value["status"].clone())
    };
    assert_eq!(
        status("apiserver_nodes/k8s-master-3"),
        Some(json!("disabled")),
        "{observed:?}"
    );
    assert_eq!(
        status("apiserver_nodes/k8s-master"),
        Some(json!("active")),
        "{observed:?}"
    );
    probe_once(target, &cert.fingerprint)
        .await
        .expect("the pool still serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_dropped_from_the_stack_is_drained_and_deleted_without_a_failed_probe() {
    let sim = sim(92).await;
    let cert = SelfSigned::generate(&[]);
    let p = provider(&sim, Duration::from_secs(30));
    let m1 = Backend::start(mapped(&sim, "10.0.20.100"), 0, Duration::ZERO, &cert).await;
    let m2 = Backend::start(mapped(&sim, "10.0.20.110"), 0, Duration::ZERO, &cert).await;
    let both = [
        M {
            name: "k8s-master",
            addr: "10.0.20.100",
            port: m1.addr.port(),
        },
        M {
            name: "k8s-master-2",
            addr: "10.0.20.110",
            port: m2.addr.port(),
        },
    ];
    let (providers, target, port) = first_stage(&sim, &p, &cert, &both).await;

    let probes = ProbeLoop::start(target, cert.fingerprint.clone());
    let smaller = stack(&p, port, &both[1..]);
    let planned = cairn_core::plan(&smaller, &providers).await.expect("plan");
    let gone = planned
        .plan
        .change(&member_address("k8s-master"))
        .expect("the dropped member is planned");
    assert_eq!(gone.action(), Action::Delete);
    assert_eq!(
        gone.steps,
        [
            "drain k8s-master (HAProxy runtime API)",
            "gate: k8s-master holds no sessions",
            "delete k8s-master",
            "apply HAProxy",
        ]
    );
    let others: Vec<_> = planned
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action() != Action::NoOp && c.address != gone.address)
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    let report = run(&smaller, &providers, &planned).await;
    assert!(report.success(), "{report:#?}");
    let served = m1.data.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (ok, failures) = probes.finish().await;
    assert!(failures.is_empty(), "{failures:?}");
    assert!(ok > 10, "only {ok} probes ran");
    assert_eq!(
        m1.data.load(Ordering::SeqCst),
        served,
        "the removed member still got traffic"
    );
    let cfg = sim.haproxy_config();
    assert!(!cfg.contains("k8s-master "), "{cfg}");
    assert!(cfg.contains("k8s-master-2 "), "{cfg}");
    assert_second_plan_empty(&smaller, &providers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_added_by_hand_to_an_owned_pool_is_never_touched() {
    let sim = sim(63).await;
    let cert = SelfSigned::generate(&[]);
    let p = provider(&sim, Duration::from_secs(30));
    let m1 = Backend::start(mapped(&sim, "10.0.20.100"), 0, Duration::ZERO, &cert).await;
    let m2 = Backend::start(mapped(&sim, "10.0.20.110"), 0, Duration::ZERO, &cert).await;
    let both = [
        M {
            name: "k8s-master",
            addr: "10.0.20.100",
            port: m1.addr.port(),
        },
        M {
            name: "k8s-master-2",
            addr: "10.0.20.110",
            port: m2.addr.port(),
        },
    ];
    let (providers, _, port) = first_stage(&sim, &p, &cert, &both).await;

    // During an incident, someone adds a server to the pool by hand.
    let c = p.client();
    let pid = c
        .list("/services/haproxy/backends", &[])
        .await
        .unwrap()
        .iter()
        .find(|b| b["name"] == POOL)
        .and_then(|b| b["id"].as_u64())
        .unwrap();
    c.post(
        "/services/haproxy/backend/server",
        &json!({"parent_id": pid, "name": "incident-1", "address": "10.0.20.120",
                "port": "6443", "status": "active"}),
    )
    .await
    .unwrap();
    c.apply(Subsystem::Haproxy).await.unwrap();

    // The same stack: nothing to do.
    let full = stack(&p, port, &both);
    let planned = cairn_core::plan(&full, &providers).await.expect("plan");
    assert!(
        !planned.plan.has_changes(),
        "{:#?}",
        planned.plan.resource_changes
    );
    // A stack that drops k8s-master removes it, and only it.
    let smaller = stack(&p, port, &both[1..]);
    let planned = cairn_core::plan(&smaller, &providers).await.expect("plan");
    let changing: Vec<&str> = planned
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action().is_change())
        .map(|c| c.address.0.as_str())
        .collect();
    assert_eq!(changing, [member_address("k8s-master")]);
    let report = run(&smaller, &providers, &planned).await;
    assert!(report.success(), "{report:#?}");
    let cfg = sim.haproxy_config();
    assert!(
        cfg.contains("incident-1 "),
        "the hand-added server stays: {cfg}"
    );
    assert!(!cfg.contains("k8s-master "), "{cfg}");
    assert_second_plan_empty(&smaller, &providers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_observed_as_members_owned_through_their_backend() {
    let sim = sim(93).await;
    let p = provider(&sim, Duration::from_secs(20));
    let c = p.client();
    // By hand: a backend with one server, no marker anywhere.
    c.post(
        "/services/haproxy/backend",
        &json!({"name": POOL, "check_type": "none",
                "servers": [{"name": "k8s-master", "address": "10.0.20.100", "port": "6443"}]}),
    )
    .await
    .unwrap();
    c.apply(Subsystem::Haproxy).await.unwrap();
    let observe = |keys: Vec<String>| {
        let p = p.clone();
        async move {
            p.observe(ObserveRequest {
                kind: HaproxyPoolMember::KIND,
                keys: &keys,
                stack: "homelab",
            })
            .await
            .unwrap()
        }
    };
    let found = observe(vec![format!("{POOL}/k8s-master")]).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "apiserver_nodes/k8s-master");
    assert_eq!(found[0].marker, None);
    let want = HaproxyPoolMember::new(POOL, "k8s-master", ip("10.0.20.100"), 6443);
    assert_eq!(found[0].value, serde_json::to_value(&want).unwrap());
    assert!(
        observe(Vec::new()).await.is_empty(),
        "an unowned pool's servers are not reported unasked"
    );

    // An owned pool with inline servers: its servers belong to the backend, not reported
    // as owned members (they would be deleted as undeclared).
    let inline = HaproxyBackend {
        check_type: cairn_pfsense::CheckType::None,
        ..HaproxyBackend::https_checked("inline_pool", "/", 1000)
    }
    .with_servers(vec![BackendServer::new("a", ip("10.0.20.101"), 8443)]);
    create(
        &p,
        HaproxyBackend::KIND,
        "inline_pool",
        &serde_json::to_value(&inline).unwrap(),
        "homelab",
    )
    .await;
    assert!(observe(Vec::new()).await.is_empty());

    // An owned pool whose servers are members: every server is reported, with the
    // backend's marker and no fingerprint.
    let members = HaproxyBackend {
        check_type: cairn_pfsense::CheckType::None,
        ..HaproxyBackend::https_checked("member_pool", "/", 1000)
    }
    .servers_managed_as_members();
    create(
        &p,
        HaproxyBackend::KIND,
        "member_pool",
        &serde_json::to_value(&members).unwrap(),
        "homelab",
    )
    .await;
    let m = HaproxyPoolMember::new("member_pool", "b", ip("10.0.20.102"), 8443);
    create(
        &p,
        HaproxyPoolMember::KIND,
        &m.key(),
        &serde_json::to_value(&m).unwrap(),
        "homelab",
    )
    .await;
    let owned = observe(Vec::new()).await;
    assert_eq!(owned.len(), 1, "{owned:?}");
    assert_eq!(owned[0].key, "member_pool/b");
    assert_eq!(
        owned[0].marker,
        Some(cairn_core::Marker::created("homelab", None))
    );
    assert_eq!(
        owned[0].uses,
        [(HaproxyBackend::KIND.to_string(), "member_pool".to_string())]
    );
}

#[tokio::test]
async fn inline_servers_and_members_of_one_pool_are_refused_at_plan_time_naming_both() {
    let sim = sim(94).await;
    let providers = Providers::new().with(Arc::new(provider(&sim, Duration::from_secs(5))));
    let mut s = StackBuilder::new("homelab");
    let pool = s.add(
        POOL,
        HaproxyBackend::https_checked(POOL, "/readyz", 1000).with_servers(vec![
            BackendServer::new("k8s-master", ip("10.0.20.100"), 6443),
        ]),
    );
    s.add(
        "m2",
        HaproxyPoolMember::new(pool.name(), "k8s-master-2", ip("10.0.20.110"), 6443),
    );
    s.add(
        "bad",
        HaproxyPoolMember::new("other_pool", "", ip("10.0.20.111"), 0),
    );
    let stack = s.build().unwrap();
    let diags = match cairn_core::plan(&stack, &providers).await {
        Err(PlanError::Invalid(diags)) => diags,
        other => panic!("expected invalid input, got {other:?}"),
    };
    let found: Vec<(String, String)> = diags
        .iter()
        .map(|d| (d.address.to_string(), d.error.field.clone()))
        .collect();
    for (address, field) in [
        ("pfsense_haproxy_pool_member.m2", "pool"),
        ("pfsense_haproxy_pool_member.bad", "name"),
        ("pfsense_haproxy_pool_member.bad", "port"),
    ] {
        assert!(
            found.contains(&(address.to_string(), field.to_string())),
            "missing {address} {field} in {diags:#?}"
        );
    }
    let conflict = diags
        .iter()
        .find(|d| d.address.to_string() == "pfsense_haproxy_pool_member.m2")
        .unwrap();
    assert!(
        conflict
            .error
            .message
            .contains("pfsense_haproxy_backend.apiserver_nodes")
            && conflict.error.message.contains("inline"),
        "{conflict}"
    );
    assert_eq!(sim.counters().writes, 0);
    assert!(sim.counters().requests.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_moving_from_inline_servers_to_members_hands_them_over_untouched() {
    let sim = sim(95).await;
    let providers = Providers::new().with(Arc::new(provider(&sim, Duration::from_secs(20))));
    let servers = ["web-1", "web-2"];
    let addr = |i: usize| ip(&format!("10.0.20.{}", 100 + i));
    let inline = HaproxyBackend {
        check_type: cairn_pfsense::CheckType::None,
        ..HaproxyBackend::https_checked(POOL, "/", 1000)
    }
    .with_servers(
        servers
            .iter()
            .enumerate()
            .map(|(i, n)| BackendServer::new(n, addr(i), 8443))
            .collect(),
    );
    let mut s = StackBuilder::new("homelab");
    s.add(POOL, inline.clone());
    let before = s.build().unwrap();
    let planned = cairn_core::plan(&before, &providers).await.unwrap();
    assert!(run(&before, &providers, &planned).await.success());

    let with_members = |names: &[&str]| {
        let mut s = StackBuilder::new("homelab");
        let pool = s.add(POOL, inline.clone().servers_managed_as_members());
        for (i, n) in names.iter().enumerate() {
            s.add(
                &format!("{POOL}/{n}"),
                HaproxyPoolMember::new(pool.name(), n, addr(i), 8443),
            );
        }
        s.build().unwrap()
    };
    let both = with_members(&servers);
    let planned = cairn_core::plan(&both, &providers).await.unwrap();
    for c in &planned.plan.resource_changes {
        let want = if c.kind == HaproxyPoolMember::KIND {
            Action::Update // adopted: the pool switches to members, servers untouched
        } else {
            Action::NoOp
        };
        assert_eq!(c.action(), want, "{c:#?}");
    }
    let report = run(&both, &providers, &planned).await;
    assert!(report.success(), "{report:#?}");
    let cfg = sim.haproxy_config();
    assert!(
        cfg.contains("web-1 ") && cfg.contains("web-2 ") && !cfg.contains("disabled"),
        "{cfg}"
    );
    assert_second_plan_empty(&both, &providers).await;

    // Now a member dropped from the stack is found and removed.
    let one = with_members(&servers[..1]);
    let planned = cairn_core::plan(&one, &providers).await.unwrap();
    let dropped = planned
        .plan
        .change(&member_address("web-2"))
        .expect("web-2 planned");
    assert_eq!(dropped.action(), Action::Delete);
    let report = run(&one, &providers, &planned).await;
    assert!(report.success(), "{report:#?}");
    let cfg = sim.haproxy_config();
    assert!(cfg.contains("web-1 ") && !cfg.contains("web-2 "), "{cfg}");
    assert_second_plan_empty(&one, &providers).await;
}
