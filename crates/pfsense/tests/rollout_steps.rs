//! What the plan shows is what apply does: the rollout steps listed under a pool change (or
//! a pool member change) are, in order, the steps the provider executed — read back from the
//! provider's step journal after a real apply through the simulator's HAProxy. And a kind
//! whose declarations all left the stack still has its owned objects planned for deletion.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::apply::NoProgress;
use cairn_core::tls::SelfSigned;
use cairn_core::{Action, ApplyOptions, Planned, Providers, Resource, Stack, StackBuilder};
use cairn_pfsense::{
    AliasType, BackendServer, DnsHostOverride, FirewallAlias, HaproxyBackend, HaproxyBackendRefs,
    HaproxyFrontend, HaproxyPoolMember, PfSenseProvider, VirtualIp, VirtualIpRefs,
};
use common::*;

const POOL: &str = "apiserver_nodes";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// VIP + frontend on it + pool `apiserver_nodes` with these inline servers, or with its
/// servers managed as these members.
fn stack(port: u16, servers: &[(&str, &str, u16)], members: bool) -> Stack {
    let mut s = StackBuilder::new("steps");
    let vip = s.add(
        "k8s",
        VirtualIp::ipalias(ip("10.0.20.99"), 24, "lan", "k8s VIP"),
    );
    let pool = HaproxyBackend::https_checked(POOL, "/readyz", 300);
    let pool = if members {
        s.add(POOL, pool.servers_managed_as_members())
    } else {
        s.add(
            POOL,
            pool.with_servers(
                servers
                    .iter()
                    .map(|(n, a, p)| BackendServer::new(n, ip(a), *p))
                    .collect(),
            ),
        )
    };
    s.add(
        "apiserver_proxy",
        HaproxyFrontend::tcp("apiserver_proxy", vip.ip(), port, pool.name()),
    );
    if members {
        for (n, a, p) in servers {
            s.add(
                &format!("{POOL}/{n}"),
                HaproxyPoolMember::new(pool.name(), n, ip(a), *p),
            );
        }
    }
    s.build().expect("stack builds")
}

/// Plans and applies `stack`; returns the plan.
async fn plan_and_apply(stack: &Stack, providers: &Providers) -> Planned {
    let planned = cairn_core::plan(stack, providers).await.expect("plan");
    let report = cairn_core::apply(
        stack,
        providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(NoProgress),
    )
    .await;
    assert!(report.success(), "{report:#?}");
    planned
}

/// Asserts that every change of `planned` with steps executed exactly those steps (the
/// journal's entries for its address after `before[address]` entries).
fn assert_shown_is_done(p: &PfSenseProvider, planned: &Planned, before: &[(String, usize)]) {
    let mut checked = 0;
    for c in &planned.plan.resource_changes {
        let address = c.address.to_string();
        let skip = before
            .iter()
            .find(|(a, _)| *a == address)
            .map_or(0, |(_, n)| *n);
        let done: Vec<String> = p.executed_steps(&address).into_iter().skip(skip).collect();
        assert_eq!(
            done, c.steps,
            "{address}: executed steps differ from the plan"
        );
        checked += usize::from(!c.steps.is_empty());
    }
    assert!(checked > 0, "no change had steps: {:#?}", planned.plan);
}

/// How many steps the journal holds per address of `planned`.
fn journal_sizes(p: &PfSenseProvider, planned: &Planned) -> Vec<(String, usize)> {
    planned
        .plan
        .resource_changes
        .iter()
        .map(|c| {
            let a = c.address.to_string();
            let n = p.executed_steps(&a).len();
            (a, n)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_pool_steps_shown_in_the_plan_are_the_steps_executed_in_order() {
    let sim = sim(96).await;
    let cert = SelfSigned::generate(&[]);
    let p = provider(&sim, Duration::from_secs(30));
    let providers = Providers::new().with(Arc::new(p.clone()));
    let m1 = Backend::start(mapped(&sim, "10.0.20.100"), 0, Duration::ZERO, &cert).await;
    let m2 = Backend::start(
        mapped(&sim, "10.0.20.110"),
        0,
        Duration::from_secs(1),
        &cert,
    )
    .await;
    let port = free_port(mapped(&sim, "10.0.20.99"));

    // Create: the pool without servers, then the first server through its gate.
    let one = stack(
        port,
        &[("k8s-master", "10.0.20.100", m1.addr.port())],
        false,
    );
    let planned = plan_and_apply(&one, &providers).await;
    let pool = format!("{}.{POOL}", HaproxyBackend::KIND);
    let created = planned.plan.change(&pool).expect("pool planned");
    assert_eq!(
        created.steps[0],
        format!("create pool {POOL} without servers, apply HAProxy")
    );
    assert_shown_is_done(&p, &planned, &[]);

    // Swap: the new server through its gate, then the old one drained and deleted.
    let before = journal_sizes(&p, &planned);
    let two = stack(
        port,
        &[("k8s-master-2", "10.0.20.110", m2.addr.port())],
        false,
    );
    let planned = plan_and_apply(&two, &providers).await;
    let swapped = planned.plan.change(&pool).expect("pool planned");
    assert_eq!(swapped.action(), Action::Update);
    assert_eq!(
        swapped.steps,
        [
            "add k8s-master-2 disabled",
            "apply HAProxy",
            "gate: k8s-master-2 health check passes (HAProxy runtime API, show servers state)",
            "set k8s-master-2 active, apply HAProxy, runtime state ready",
            "drain k8s-master (HAProxy runtime API)",
            "gate: k8s-master holds no sessions",
            "delete k8s-master",
            "apply HAProxy",
        ]
    );
    assert_shown_is_done(&p, &planned, &before);
    let cfg = sim.haproxy_config();
    assert!(
        cfg.contains("k8s-master-2 ") && !cfg.contains("k8s-master "),
        "{cfg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_steps_shown_in_the_plan_are_the_steps_executed_in_order() {
    let sim = sim(97).await;
    let cert = SelfSigned::generate(&[]);
    let p = provider(&sim, Duration::from_secs(30));
    let providers = Providers::new().with(Arc::new(p.clone()));
    let m1 = Backend::start(mapped(&sim, "10.0.20.100"), 0, Duration::ZERO, &cert).await;
    let m2 = Backend::start(mapped(&sim, "10.0.20.110"), 0, Duration::ZERO, &cert).await;
    let port = free_port(mapped(&sim, "10.0.20.99"));
    let both = [
        ("k8s-master", "10.0.20.100", m1.addr.port()),
        ("k8s-master-2", "10.0.20.110", m2.addr.port()),
    ];

    let planned = plan_and_apply(&stack(port, &both, true), &providers).await;
    let member = format!("{}.{POOL}/k8s-master-2", HaproxyPoolMember::KIND);
    assert_eq!(
        planned.plan.change(&member).expect("member planned").steps[0],
        format!("add k8s-master-2 disabled to pool {POOL} (looked up by name)")
    );
    assert_shown_is_done(&p, &planned, &[]);

    // Dropping a member: drained, then deleted (an undeclared owned member).
    let before = journal_sizes(&p, &planned);
    let planned = plan_and_apply(&stack(port, &both[..1], true), &providers).await;
    let gone = planned
        .plan
        .change(&member)
        .expect("dropped member planned");
    assert_eq!(gone.action(), Action::Delete);
    assert_eq!(
        gone.steps,
        [
            "drain k8s-master-2 (HAProxy runtime API)",
            "gate: k8s-master-2 holds no sessions",
            "delete k8s-master-2",
            "apply HAProxy",
        ]
    );
    assert_shown_is_done(&p, &planned, &before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_every_declaration_of_a_kind_plans_the_deletion_of_its_owned_objects() {
    let sim = sim(98).await;
    let providers = Providers::new().with(Arc::new(provider(&sim, Duration::from_secs(5))));
    let with_all = |aliases: bool, overrides: bool| {
        let mut s = StackBuilder::new("kinds");
        let vip = s.add(
            "k8s",
            VirtualIp::ipalias(ip("10.0.20.99"), 24, "lan", "k8s VIP"),
        );
        if aliases {
            s.add(
                "masters",
                FirewallAlias {
                    name: "k8s_masters".into(),
                    kind: AliasType::Host,
                    address: vec!["10.0.20.100".into()],
                    descr: String::new(),
                },
            );
        }
        if overrides {
            s.add(
                "k8s-apiserver",
                DnsHostOverride {
                    host: "k8s-apiserver".into(),
                    domain: "home.arpa".into(),
                    ip: vec![vip.ip().into()],
                    descr: String::new(),
                },
            );
        }
        s.build().unwrap()
    };
    plan_and_apply(&with_all(true, true), &providers).await;

    let planned = cairn_core::plan(&with_all(false, false), &providers)
        .await
        .unwrap();
    for (kind, key) in [
        (FirewallAlias::KIND, "k8s_masters"),
        (DnsHostOverride::KIND, "k8s-apiserver.home.arpa"),
    ] {
        let c = planned
            .plan
            .change(&format!("{kind}.{key}"))
            .unwrap_or_else(|| panic!("{kind} {key} not planned: {:#?}", planned.plan));
        assert_eq!(c.action(), Action::Delete, "{c:#?}");
    }
    let fewer = with_all(false, false);
    plan_and_apply(&fewer, &providers).await;
    let again = cairn_core::plan(&fewer, &providers).await.unwrap();
    assert!(
        again
            .plan
            .resource_changes
            .iter()
            .all(|c| c.action() == Action::NoOp),
        "{:#?}",
        again.plan
    );
}
