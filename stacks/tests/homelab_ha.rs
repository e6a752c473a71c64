//! homelab-ha end to end: the whole kubeadm cutover against the Proxmox and pfSense
//! simulators (a real HAProxy) and the cluster simulator (a real sshd per host, kubeadm and
//! kubelets that act on a simulated cluster). Needs root; runs in the loopback-only
//! namespace. The VIP never drops a probe once it serves, workers move only after the three
//! masters are ready behind it and one at a time, a failed join stops only its own branch,
//! a host with the wrong key is refused before any command, and an over-committed host is
//! refused before anything is written.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cairn_core::gate::HttpProbe;
use cairn_core::net::Dialer;
use cairn_core::tls::TlsTrust;
use cairn_core::{Action, ApplyOptions, Outcome, PlanError, Providers, apply, plan};
use cairn_node::Cmd;
use cairn_pfsense::{ApiKey, PfSenseClient, PfSenseProvider};
use cairn_proxmox::{Auth, ClientConfig, ProxmoxProvider, PveClient};
use common::{ProbeLoop, Recorder, failures_since, first_success};
use stacks::sims::{Homelab, SimKnobs};
use stacks::stacks::homelab_ha::{self, MASTER, NEW_MASTERS, Nodes, Params, VIP, WORKERS};

struct World {
    sims: Homelab,
    providers: Providers,
    nodes: Nodes,
    dialer: Dialer,
    params: Params,
}

fn params(memory_gib: u64, gate_timeout: Duration) -> Params {
    Params {
        master_memory_gib: memory_gib,
        gate_timeout,
        gate_interval: Duration::from_millis(200),
    }
}

/// Each test's world lives on its own loopback /16 (10.0.x.y → 127.<net>.x.y), so worlds
/// running side by side never share a listening address.
async fn world(net: u8, knobs: SimKnobs, p: Params) -> World {
    let map = format!("10.0.0.0/16=127.{net}.0.0/16");
    let sims = Homelab::start(&knobs, &map).await.unwrap();
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
    let dialer = sims.dialer().unwrap();
    let nodes = Nodes::new(&dialer, &sims.client_key(), &sims.known_hosts(), "root").unwrap();
    World {
        providers: Providers::new()
            .with(Arc::new(proxmox))
            .with(Arc::new(pfsense))
            .with(Arc::new(nodes.provider(&p))),
        nodes,
        dialer,
        sims,
        params: p,
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
    HttpProbe::get(&format!("https://{VIP}:6443/readyz"), w.dialer.clone())
        .trust(TlsTrust::CaFile(w.sims.ca_file()))
}

/// A host's `/etc/kubernetes/<rel>` as the simulator holds it.
fn host_file(w: &World, host: &str, rel: &str) -> Option<Vec<u8>> {
    let sim = w.sims.nodes.lock();
    std::fs::read(sim.host(host)?.etc_kubernetes().join(rel)).ok()
}

fn kubelet_at_vip(w: &World, host: &str) -> bool {
    host_file(w, host, "kubelet.conf")
        .is_some_and(|b| String::from_utf8_lossy(&b).contains("https://10.0.20.99:6443"))
}

/// What a watcher saw while the apply ran.
#[derive(Debug, Default)]
struct Watch {
    /// The most workers NotReady at once during the worker loop.
    max_workers_not_ready: usize,
    /// Ready control-plane nodes when a worker's kubelet first pointed at the VIP.
    control_plane_ready_at_first_flip: Option<usize>,
    /// Pool servers in HAProxy at that moment.
    pool_at_first_flip: Option<usize>,
}

/// Watches the cluster simulator and the workers' files every 20 ms until stopped.
fn watch(w: &Arc<World>) -> (Arc<AtomicBool>, std::thread::JoinHandle<Watch>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (s, w) = (stop.clone(), w.clone());
    let t = std::thread::spawn(move || {
        let mut seen = Watch::default();
        while !s.load(Ordering::SeqCst) {
            let nodes = {
                let sim = w.sims.nodes.lock();
                sim.nodes(w.sims.nodes.cluster)
            };
            let not_ready = nodes
                .iter()
                .filter(|n| n.name.starts_with("k8s-worker") && !n.ready)
                .count();
            // From the first flip on (Phase 0 restarts the master's apiserver, which every
            // worker reaches before the loop: they may all blink then, as on hardware).
            if seen.control_plane_ready_at_first_flip.is_some() {
                seen.max_workers_not_ready = seen.max_workers_not_ready.max(not_ready);
            } else if WORKERS.iter().any(|(h, _)| kubelet_at_vip(&w, h)) {
                seen.max_workers_not_ready = not_ready;
                seen.control_plane_ready_at_first_flip =
                    Some(nodes.iter().filter(|n| n.control_plane && n.ready).count());
                seen.pool_at_first_flip = Some(pool_servers(&w).len());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        seen
    });
    (stop, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_cutover_keeps_the_vip_serving_moves_workers_one_at_a_time_and_converges() {
    let w = Arc::new(world(51, SimKnobs::default(), params(2, Duration::from_secs(120))).await);
    let stack = homelab_ha::build(&w.params, &w.nodes).unwrap();
    let planned = plan(&stack, &w.providers).await.unwrap();
    assert_eq!(
        planned.plan.summary_line(),
        "Plan: 11 to add, 6 to change, 0 to destroy."
    );
    let text = cairn_core::render::render_plan(&planned.plan, false);
    assert!(
        text.contains("accept-new"),
        "the new hosts' trust is announced:\n{text}"
    );
    let master_kubelet = host_file(&w, MASTER.0, "kubelet.conf").unwrap();

    let probes = ProbeLoop::start(vip_probe(&w), Duration::from_millis(25));
    let (stop, watcher) = watch(&w);
    let progress = Arc::new(Recorder::default());
    let report = apply(
        &stack,
        &w.providers,
        &planned,
        ApplyOptions::default(),
        progress.clone(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let samples = probes.finish().await;
    stop.store(true, Ordering::SeqCst);
    let seen = watcher.join().unwrap();

    assert!(
        report.success(),
        "{}",
        cairn_core::render::render_report(&report, false)
    );
    // From the moment the VIP first serves, every probe through it succeeds; DNS moves
    // only after that.
    let first_served = first_success(&samples).expect("the VIP served at some point");
    let dns = progress
        .started_at("pfsense_dns_host_override.k8s-apiserver")
        .unwrap();
    // The gate through the VIP passed before DNS moved (the probe loop samples every 25 ms,
    // so its own first success may land just after).
    let gate = progress.started_at("gate.vip-serves").unwrap();
    assert_eq!(progress.outcome("gate.vip-serves"), Some(Outcome::Done));
    // The verification gates at the end ran and passed: every kubelet at the VIP, three
    // control-plane nodes Ready, three etcd members.
    for g in [
        "gate.verify-kubelets-at-vip",
        "gate.verify-control-plane-nodes",
        "gate.verify-etcd-members",
    ] {
        assert_eq!(progress.outcome(g), Some(Outcome::Done), "{g}");
    }
    assert!(gate < dns, "DNS flipped before the VIP served");
    assert!(
        failures_since(&samples, dns).is_empty(),
        "a probe failed after DNS moved"
    );
    let failures = failures_since(&samples, first_served);
    assert!(
        failures.is_empty(),
        "{} probes failed after the VIP first served:\n{}",
        failures.len(),
        progress.timeline(&samples)
    );
    // Each master joined before its pool add, after its SSH answered.
    for (name, _, _) in NEW_MASTERS {
        let ssh = progress.started_at(&format!("gate.{name}-ssh")).unwrap();
        let join = progress
            .started_at(&format!("node_control_plane_member.{name}"))
            .unwrap();
        let member = progress
            .started_at(&format!(
                "pfsense_haproxy_pool_member.apiserver_nodes/{name}"
            ))
            .unwrap();
        assert!(ssh < join && join < member, "{name}: ssh → join → pool");
    }
    // No worker pointed at the VIP before three masters were ready behind it, and never
    // were two workers NotReady at once.
    assert_eq!(seen.control_plane_ready_at_first_flip, Some(3), "{seen:?}");
    assert_eq!(seen.pool_at_first_flip, Some(3), "{seen:?}");
    assert!(seen.max_workers_not_ready <= 1, "{seen:?}");
    let m3_member = progress
        .started_at("pfsense_haproxy_pool_member.apiserver_nodes/k8s-master-3")
        .unwrap();
    let first_flip = progress
        .started_at("node_kubeconfig_server.k8s-worker-1")
        .unwrap();
    assert!(m3_member < first_flip);
    for (name, _) in WORKERS {
        assert!(kubelet_at_vip(&w, name), "{name}");
        let sim = w.sims.nodes.lock();
        assert_eq!(sim.host(name).unwrap().restarts("kubelet"), 1, "{name}");
    }
    assert_eq!(
        pool_servers(&w),
        ["k8s-master", "k8s-master-2", "k8s-master-3"]
    );
    // The masters' kubelet.conf is untouched: same bytes on the old one, no backup or
    // ownership sidecar anywhere; every master's certificate names the VIP.
    assert_eq!(
        host_file(&w, MASTER.0, "kubelet.conf").unwrap(),
        master_kubelet
    );
    for m in std::iter::once(MASTER.0).chain(NEW_MASTERS.iter().map(|m| m.0)) {
        let sim = w.sims.nodes.lock();
        let dir = sim.host(m).unwrap().etc_kubernetes();
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with("kubelet.conf.cairn")),
            "{m}: {names:?}"
        );
        let pem = std::fs::read(dir.join("pki/apiserver.crt")).unwrap();
        let cert = cairn_node::kinds::apiserver_cert::parse(m, "apiserver.crt", &pem).unwrap();
        assert!(cert.covers("10.0.20.99"), "{m}: {:?}", cert.sans);
    }

    // Nothing left to do.
    let again = plan(&stack, &w.providers).await.unwrap();
    assert!(
        !again.plan.has_changes(),
        "{}",
        cairn_core::render::render_plan(&again.plan, false)
    );

    // A kubelet.conf edited back by hand over SSH is drift on exactly that resource.
    w.nodes
        .ssh
        .run(
            "k8s-worker-2",
            &Cmd::root("sed").args([
                "-i",
                "s#https://10.0.20.99:6443#https://10.0.20.100:6443#",
                "/etc/kubernetes/kubelet.conf",
            ]),
        )
        .await
        .unwrap();
    let drift = plan(&stack, &w.providers).await.unwrap();
    let changed: Vec<_> = drift
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action().is_change())
        .map(|c| (c.address.0.clone(), c.action()))
        .collect();
    assert_eq!(
        changed,
        [(
            "node_kubeconfig_server.k8s-worker-2".to_string(),
            Action::Update
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_join_stops_exactly_its_dependents_and_leaves_the_pool_without_that_master() {
    let knobs = SimKnobs {
        fail_join: vec!["k8s-master-3".into()],
        ..Default::default()
    };
    let w = world(52, knobs, params(2, Duration::from_secs(60))).await;
    let stack = homelab_ha::build(&w.params, &w.nodes).unwrap();
    let planned = plan(&stack, &w.providers).await.unwrap();
    let progress = Arc::new(Recorder::default());
    let report = apply(
        &stack,
        &w.providers,
        &planned,
        ApplyOptions::default(),
        progress.clone(),
    )
    .await;
    let text = cairn_core::render::render_report(&report, false);
    assert!(!report.success());
    assert!(
        matches!(progress.outcome("node_control_plane_member.k8s-master-3"), Some(Outcome::Failed(why)) if why.contains("kubeadm join 10.0.20.99:6443 --control-plane` on k8s-master-3 failed")),
        "{text}"
    );
    // Exactly its dependents are skipped; everything before and beside it is done.
    for skipped in [
        "gate.k8s-master-3-node-ready",
        "gate.k8s-master-3-etcd",
        "gate.k8s-master-3-ready",
        "pfsense_haproxy_pool_member.apiserver_nodes/k8s-master-3",
        "gate.control-plane-ready",
        "node_kubeconfig_server.k8s-worker-1",
        "node_kubeconfig_server.k8s-worker-4",
        "gate.verify-etcd-members",
    ] {
        assert!(
            matches!(progress.outcome(skipped), Some(Outcome::Skipped(_)) | None),
            "{skipped}: {:?}\n{text}",
            progress.outcome(skipped)
        );
    }
    for done in [
        "node_kubeadm_config.kubeadm",
        "gate.vip-serves",
        "node_control_plane_member.k8s-master-2",
        "pfsense_haproxy_pool_member.apiserver_nodes/k8s-master-2",
        "proxmox_vm.k8s-master-3",
        "gate.k8s-master-3-ssh",
    ] {
        assert_eq!(
            progress.outcome(done),
            Some(Outcome::Done),
            "{done}\n{text}"
        );
    }
    assert_eq!(pool_servers(&w), ["k8s-master", "k8s-master-2"]);
    for (name, _) in WORKERS {
        assert!(!kubelet_at_vip(&w, name), "{name} moved");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_whose_key_does_not_match_is_refused_before_any_command_runs() {
    let w = world(53, SimKnobs::default(), params(2, Duration::from_secs(30))).await;
    // The known-hosts file says worker-3 has another key (worker-1's).
    let (known, theirs, ours) = {
        let sim = w.sims.nodes.lock();
        (
            sim.known_hosts(),
            sim.host("k8s-worker-1").unwrap().fingerprint().to_string(),
            sim.host("k8s-worker-3").unwrap().fingerprint().to_string(),
        )
    };
    let kh = std::fs::read_to_string(&known).unwrap();
    let key_of = |ip: &str| {
        kh.lines()
            .find(|l| l.starts_with(&format!("{ip} ")))
            .unwrap()
            .split_once(' ')
            .unwrap()
            .1
            .to_string()
    };
    let w1 = key_of("10.0.20.101");
    let tampered: String = kh
        .lines()
        .map(|l| {
            if l.starts_with("10.0.20.103 ") || l.starts_with("[10.0.20.103]") {
                format!("{} {w1}\n", l.split_once(' ').unwrap().0)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&known, tampered).unwrap();
    let before = w.sims.nodes.lock().host("k8s-worker-3").unwrap().logins();

    let stack = homelab_ha::build(&w.params, &w.nodes).unwrap();
    let err = match plan(&stack, &w.providers).await {
        Ok(_) => panic!("a plan was made with a mismatched host key"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("k8s-worker-3"), "{err}");
    assert!(err.contains(&theirs) && err.contains(&ours), "{err}");
    assert_eq!(
        w.sims.nodes.lock().host("k8s-worker-3").unwrap().logins(),
        before,
        "no session was opened on the host"
    );
    assert_eq!(w.sims.proxmox.counters().writes, 0);
    assert_eq!(w.sims.pfsense.counters().writes, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_gib_masters_are_refused_with_the_numbers_and_nothing_is_written() {
    let w = world(54, SimKnobs::default(), params(32, Duration::from_secs(4))).await;
    let stack = homelab_ha::build(&w.params, &w.nodes).unwrap();
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
    {
        let sim = w.sims.nodes.lock();
        assert!(
            !sim.cluster_configuration(w.sims.nodes.cluster)
                .unwrap_or_default()
                .contains("10.0.20.99"),
            "kubeadm-config untouched"
        );
        assert_eq!(sim.host(MASTER.0).unwrap().restarts("kubelet"), 0);
    }
    // The right-sized default passes the same check.
    let ok = homelab_ha::build(&params(2, Duration::from_secs(4)), &w.nodes).unwrap();
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
