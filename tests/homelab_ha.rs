//! homelab-ha end to end, against the Proxmox and pfSense simulators and a real HAProxy:
//! the cutover never drops a probe through the VIP, DNS flips only after the VIP serves,
//! a master that never becomes ready stops only its own branch, and an over-committed
//! host is refused before anything is written.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn::gate::HttpProbe;
use cairn::net::Dialer;
use cairn::pfsense::{ApiKey, PfSenseClient, PfSenseProvider};
use cairn::proxmox::{Auth, ClientConfig, ProxmoxProvider, PveClient};
use cairn::tls::TlsTrust;
use cairn::{Action, ApplyOptions, Outcome, PlanError, Providers, apply, plan};
use common::{ProbeLoop, Recorder, failures_since, first_success};
use stacks::sims::{Homelab, SimKnobs};
use stacks::stacks::homelab_ha::{self, DNS_HOST, DOMAIN, Params, VIP};

struct World {
    sims: Homelab,
    providers: Providers,
    dialer: Dialer,
    trust: TlsTrust,
}

/// Each test's world lives on its own loopback /16 (10.0.x.y → 127.<net>.x.y), so worlds
/// running side by side never share a listening address.
async fn world(net: u8, never_ready: Vec<u32>) -> World {
    let map = format!("10.0.0.0/16=127.{net}.0.0/16");
    let knobs = SimKnobs {
        boot_delay: Duration::from_millis(1500),
        never_ready,
    };
    let sims = Homelab::start(
        &knobs,
        &VIP.to_string(),
        &format!("{DNS_HOST}.{DOMAIN}"),
        &map,
    )
    .await
    .unwrap();
    let mut cfg = ClientConfig::new(
        sims.proxmox.endpoint.clone(),
        Auth::Token(sims.proxmox.token.clone()),
        TlsTrust::Fingerprint(sims.proxmox.fingerprint.clone().unwrap()),
    );
    cfg.poll_interval = Duration::from_millis(50);
    let proxmox = ProxmoxProvider::new(PveClient::new(cfg).unwrap());
    let pfsense = PfSenseProvider::new(
        PfSenseClient::new(
            &sims.pfsense.endpoint,
            ApiKey::new(sims.pfsense.token.clone()),
            &TlsTrust::Fingerprint(sims.pfsense.fingerprint.clone().unwrap()),
        )
        .unwrap(),
        Default::default(),
    );
    let trust = TlsTrust::CaFile(sims.ca_file());
    World {
        providers: Providers::new()
            .with(Arc::new(proxmox))
            .with(Arc::new(pfsense)),
        dialer: Dialer::new(map.parse().unwrap(), true),
        trust,
        sims,
    }
}

fn params(memory_gib: u64, gate_timeout: Duration) -> Params {
    Params {
        master_memory_gib: memory_gib,
        gate_timeout,
        gate_interval: Duration::from_millis(200),
    }
}

/// The server names in the running HAProxy configuration.
fn pool_servers(w: &World) -> Vec<String> {
    w.sims
        .pfsense
        .haproxy_config()
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("server")).then(|| words.next().unwrap_or_default().to_string())
        })
        .collect()
}

fn vip_probe(w: &World) -> HttpProbe {
    HttpProbe::get(&format!("https://{VIP}:6443/readyz"), w.dialer.clone()).trust(w.trust.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutover_never_drops_a_probe_and_flips_dns_only_after_the_vip_serves() {
    let w = world(41, Vec::new()).await;
    let stack = homelab_ha::build(
        &params(2, Duration::from_secs(60)),
        &w.dialer,
        Some(&w.trust),
    )
    .unwrap();
    let planned = plan(&stack, &w.providers).await.unwrap();
    assert_eq!(
        planned.plan.summary_line(),
        "Plan: 9 to add, 1 to change, 0 to destroy."
    );

    let probes = ProbeLoop::start(vip_probe(&w), Duration::from_millis(25));
    let progress = Arc::new(Recorder::default());
    let report = apply(
        &stack,
        &w.providers,
        &planned,
        ApplyOptions::default(),
        progress.clone(),
    )
    .await;
    // Keep probing a little after the last pool change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let samples = probes.finish().await;

    assert!(
        report.success(),
        "{}",
        cairn::render::render_report(&report, false)
    );
    // From the moment the VIP first serves, every probe through it must succeed; clients
    // move (the DNS flip) only after that.
    let first_served = first_success(&samples).expect("the VIP served at some point");
    let dns = progress
        .started_at("pfsense_dns_host_override.k8s-apiserver")
        .unwrap();
    assert!(first_served <= dns, "DNS flipped before the VIP served");
    let failures = failures_since(&samples, first_served);
    assert!(
        failures.is_empty(),
        "{} probes failed after the VIP first served:\n{}",
        failures.len(),
        progress.timeline(&samples)
    );
    let served = samples
        .iter()
        .filter(|s| s.at >= dns && s.result.is_ok())
        .count();
    assert!(
        served > 100,
        "only {served} probes were answered after the DNS flip"
    );
    for name in ["k8s-master-2", "k8s-master-3"] {
        let gate = progress.started_at(&format!("gate.{name}-ready")).unwrap();
        let member = progress
            .started_at(&format!(
                "pfsense_haproxy_pool_member.apiserver_nodes/{name}"
            ))
            .unwrap();
        assert!(
            gate < member,
            "{name} joined the pool before its readiness gate"
        );
    }
    assert_eq!(
        pool_servers(&w),
        ["k8s-master", "k8s-master-2", "k8s-master-3"]
    );

    let again = plan(&stack, &w.providers).await.unwrap();
    assert!(
        !again.plan.has_changes(),
        "{}",
        cairn::render::render_plan(&again.plan, false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_never_becomes_ready_stops_its_branch_while_the_vip_keeps_serving() {
    let w = world(42, vec![206]).await;
    let stack = homelab_ha::build(
        &params(2, Duration::from_secs(4)),
        &w.dialer,
        Some(&w.trust),
    )
    .unwrap();
    let planned = plan(&stack, &w.providers).await.unwrap();
    let probes = ProbeLoop::start(vip_probe(&w), Duration::from_millis(25));
    let progress = Arc::new(Recorder::default());
    let report = apply(
        &stack,
        &w.providers,
        &planned,
        ApplyOptions::default(),
        progress.clone(),
    )
    .await;
    let samples = probes.finish().await;

    let text = cairn::render::render_report(&report, false);
    assert!(!report.success());
    assert!(
        matches!(progress.outcome("gate.k8s-master-3-ready"), Some(Outcome::Failed(why)) if why.contains("10.0.20.111") && why.contains("503")),
        "{text}\n{:?}",
        progress.outcome("gate.k8s-master-3-ready")
    );
    assert_eq!(
        progress.outcome("pfsense_haproxy_pool_member.apiserver_nodes/k8s-master-3"),
        Some(Outcome::Skipped("gate.k8s-master-3-ready failed".into())),
        "{text}"
    );
    assert!(text.contains("run apply again"), "{text}");
    let dns = progress
        .started_at("pfsense_dns_host_override.k8s-apiserver")
        .expect("DNS flipped: the VIP was ready");
    let first_served = first_success(&samples).expect("the VIP served");
    assert!(first_served <= dns);
    let failures = failures_since(&samples, first_served);
    assert!(
        failures.is_empty(),
        "probe failures after the VIP first served:\n{}",
        progress.timeline(&samples)
    );
    assert_eq!(
        pool_servers(&w),
        ["k8s-master", "k8s-master-2"],
        "206 must not be in the pool"
    );

    // The next plan still wants 206 in the pool — and nothing else.
    let next = plan(&stack, &w.providers).await.unwrap();
    let pending: Vec<_> = next
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action().is_change())
        .map(|c| c.address.0.clone())
        .collect();
    assert_eq!(
        pending,
        ["pfsense_haproxy_pool_member.apiserver_nodes/k8s-master-3"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_gib_masters_are_refused_with_the_numbers_and_nothing_is_written() {
    let w = world(43, Vec::new()).await;
    let stack = homelab_ha::build(
        &params(32, Duration::from_secs(4)),
        &w.dialer,
        Some(&w.trust),
    )
    .unwrap();
    let err = plan(&stack, &w.providers)
        .await
        .expect_err("plan is refused");
    assert!(matches!(err, PlanError::ChecksFailed { .. }));
    assert!(
        err.to_string().contains(
            "node pve: 262 GiB committed + 64 GiB planned = 326 GiB > 267 GiB physical (ratio 1.00)"
        ),
        "{err}"
    );
    assert_eq!(w.sims.proxmox.counters().writes, 0, "Proxmox saw a write");
    assert_eq!(w.sims.pfsense.counters().writes, 0, "pfSense saw a write");
    // The right-sized default passes the same check.
    let ok = homelab_ha::build(
        &params(2, Duration::from_secs(4)),
        &w.dialer,
        Some(&w.trust),
    )
    .unwrap();
    let planned = plan(&ok, &w.providers).await.unwrap();
    assert!(planned.plan.checks.iter().all(|c| c.passed));
    assert!(
        planned
            .plan
            .resource_changes
            .iter()
            .all(|c| c.action() != Action::DeleteCreate)
    );
}
