//! What the team backend costs a `stacks apply`, measured against the simulators: a stack
//! of 1,000 Hetzner SSH keys that already exist in the Hetzner simulator (created by one
//! apply at the start), applied again (a no-op: plan against the simulator, then apply), with
//! the backend calls `stacks apply` makes around it — connect and schema check, lock acquire
//! (which opens the run), plan digest, run close, lock release. Compared for the local
//! backend and for PostgreSQL (a throwaway cluster, directly and through PgBouncer in
//! transaction mode). Also prints lock acquire/release latency and the history write cost per
//! resource change (batched as `stacks apply` writes them, and one row at a time).
//!
//! Two scenarios: the simulator as it is (no latency: in-process, the strictest ratio) and
//! with 25 ms injected per API request. Every figure is measured `CAIRN_BENCH_RUNS` times
//! (default 7; half as many with latency); the minimum and the median are printed, and the
//! overhead is the backend's median share of the median no-op apply (the machine may be
//! shared: medians of interleaved runs compare like with like).
//!
//! Run: `cargo bench -p cairn-backend-pg --features testing --bench backend`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_backend_pg::PgBackend;
use cairn_backend_pg::testing::Cluster;
use cairn_core::apply::NoProgress;
use cairn_core::backend::local::LocalBackend;
use cairn_core::backend::{Backend, ChangeRecord, Holder, plan_digest, status};
use cairn_core::{ApplyOptions, Providers, Stack, StackBuilder, apply, plan};
use cairn_hetzner::HetznerProvider;
use cairn_hetzner::SshKey;
use cairn_hetzner::client::{ClientConfig, Token};
use cairn_hetzner_sim::{Capacities, FaultConfig, HetznerSim, SimConfig};

const RESOURCES: usize = 1_000;

fn runs() -> usize {
    std::env::var("CAIRN_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7)
        .max(1)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Minimum and median.
fn min_med(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    (d[0], d[d.len() / 2])
}

fn summary(name: &str, d: Vec<Duration>) {
    let n = d.len();
    let mut sorted = d;
    sorted.sort();
    let p95 = sorted[((n as f64 - 1.0) * 0.95).round() as usize];
    let (min, med) = min_med(sorted);
    println!(
        "  {name:<30} min {:6.2} ms  median {:6.2} ms  p95 {:6.2} ms  (n={n})",
        ms(min),
        ms(med),
        ms(p95)
    );
}

fn change(i: usize) -> ChangeRecord {
    ChangeRecord {
        address: format!("hetzner_ssh_key.key-{i:04}"),
        action: "update".into(),
        outcome: "done".into(),
        duration_ms: 7,
        error: None,
    }
}

/// 1,000 SSH keys, each with its own public key.
fn stack() -> Stack {
    let mut b = StackBuilder::new("bench");
    for i in 0..RESOURCES {
        b.add(
            &format!("key-{i:04}"),
            SshKey {
                name: format!("key-{i:04}"),
                public_key: format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBench{i:06} bench@cairn"),
                ..SshKey::default()
            },
        );
    }
    b.build().expect("valid stack")
}

/// A no-op apply as `stacks apply` makes it: plan against the simulator, then apply the
/// (empty) plan. Returns its time and the plan's digest.
async fn noop_apply(stack: &Stack, providers: &Providers) -> (Duration, String) {
    let t = Instant::now();
    let planned = plan(stack, providers).await.expect("plan");
    assert!(
        !planned.plan.has_changes(),
        "the world matches the stack: a no-op"
    );
    let report = apply(
        stack,
        providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(NoProgress),
    )
    .await;
    assert!(report.success());
    (t.elapsed(), plan_digest(&planned))
}

/// A backend under test: its name and how to make a fresh one (as each process does).
type Named<'a> = (&'static str, Box<dyn Fn() -> Box<dyn Backend> + 'a>);

/// The backend's calls in one team apply, each timed: connect and schema check, acquire,
/// plan digest, close the run, release.
type Parts = [Duration; 5];

const PART_NAMES: [&str; 5] = [
    "connect+check",
    "acquire",
    "plan digest",
    "close run",
    "release",
];

/// One team apply: the backend's calls around a no-op apply, timed apart from it.
/// Returns (backend time by part, apply time).
async fn team_apply(
    backend: &dyn Backend,
    stack: &Stack,
    providers: &Providers,
) -> (Parts, Duration) {
    let mut parts = Parts::default();
    let t = Instant::now();
    backend.check().await.expect("backend check");
    parts[0] = t.elapsed();
    let t = Instant::now();
    let lease = backend
        .acquire("bench", &Holder::current("apply"), Duration::ZERO)
        .await
        .expect("acquire");
    parts[1] = t.elapsed();
    let (applying, digest) = noop_apply(stack, providers).await;
    let t = Instant::now();
    lease.set_plan_digest(&digest).await.expect("plan digest");
    parts[2] = t.elapsed();
    let t = Instant::now();
    backend
        .finish_run(lease.run_id(), status::SUCCEEDED, "no changes")
        .await
        .expect("finish run");
    parts[3] = t.elapsed();
    let t = Instant::now();
    lease.release().await.expect("release");
    parts[4] = t.elapsed();
    (parts, applying)
}

/// Where a fresh connection's time goes: the connect (TCP, startup, SCRAM authentication,
/// and for PostgreSQL itself a forked server process) and a first query.
async fn connection_anatomy(name: &str, url: &str) {
    let (mut connect, mut first) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let t = Instant::now();
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let task = tokio::spawn(conn);
        connect.push(t.elapsed());
        let t = Instant::now();
        client.simple_query("SELECT 1").await.expect("select");
        first.push(t.elapsed());
        drop(client);
        let _ = task.await;
    }
    println!("{name}");
    summary("connect (auth included)", connect);
    summary("first query", first);
}

/// Lock latency and history write cost of one backend.
async fn latencies(b: &dyn Backend) {
    b.check().await.expect("backend check");
    let (mut acq, mut rel) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let t = Instant::now();
        let lease = b
            .acquire("lat", &Holder::current("apply"), Duration::ZERO)
            .await
            .expect("acquire");
        acq.push(t.elapsed());
        let t = Instant::now();
        lease.release().await.expect("release");
        rel.push(t.elapsed());
    }
    summary("lock acquire (opens the run)", acq);
    summary("lock release", rel);
    let run = b
        .start_run("hist", &Holder::current("apply"))
        .await
        .expect("run");
    let all: Vec<ChangeRecord> = (0..RESOURCES).map(change).collect();
    let t = Instant::now();
    for chunk in all.chunks(256) {
        b.record_changes(&run, chunk).await.expect("record");
    }
    let batched = t.elapsed();
    let t = Instant::now();
    for c in all.iter().take(200) {
        b.record_changes(&run, std::slice::from_ref(c))
            .await
            .expect("record");
    }
    let single = t.elapsed() / 200;
    println!(
        "  history write per change       batched {:6.3} ms  one at a time {:6.3} ms  (1,000 changes in batches of 256 as stacks apply writes them; 200 alone)",
        ms(batched) / RESOURCES as f64,
        ms(single)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = Cluster::with_pgbouncer();
    let state = tempfile::tempdir().expect("temp dir");
    rt.block_on(async {
        let sim = HetznerSim::start(SimConfig {
            capacities: Capacities {
                rate_limit: 1_000_000,
                rate_refill_per_sec: 1_000_000.0,
                ..Capacities::default()
            },
            ..SimConfig::default()
        })
        .await
        .expect("simulator");
        let mut cfg = ClientConfig::new(&sim.endpoint, Token::new(&sim.token));
        cfg.timeout = Duration::from_secs(60);
        let providers =
            Providers::new().with(Arc::new(HetznerProvider::new(cfg).expect("provider")));
        let stack = stack();
        // The world: the stack's 1,000 keys, made by one apply.
        let planned = plan(&stack, &providers).await.expect("plan");
        let report = apply(
            &stack,
            &providers,
            &planned,
            ApplyOptions {
                parallelism: 32,
                ..ApplyOptions::default()
            },
            Arc::new(NoProgress),
        )
        .await;
        assert!(report.success(), "seeding the simulator: {report:?}");
        sim.reset_counters();
        let (_, _) = noop_apply(&stack, &providers).await;
        println!(
            "no-op apply of {RESOURCES} hetzner_ssh_key against the Hetzner simulator: {} API requests",
            sim.counters().total
        );

        let backends: Vec<Named<'_>> = vec![
            (
                "local (file lock + JSON Lines)",
                Box::new(|| Box::new(LocalBackend::new(state.path())) as Box<dyn Backend>),
            ),
            (
                "PostgreSQL (direct, loopback)",
                Box::new(|| {
                    Box::new(PgBackend::new(&cluster.url()).expect("url")) as Box<dyn Backend>
                }),
            ),
            (
                "PostgreSQL through PgBouncer (transaction mode)",
                Box::new(|| {
                    Box::new(PgBackend::new(&cluster.bouncer_url()).expect("url"))
                        as Box<dyn Backend>
                }),
            ),
        ];
        connection_anatomy("PostgreSQL (direct): a fresh connection", &cluster.url()).await;
        connection_anatomy("PgBouncer: a fresh connection", &cluster.bouncer_url()).await;
        // The zero-latency in-process simulator first (the strictest ratio), then the same
        // with 25 ms per API request (as the Hetzner observe bench injects), closer to what
        // a no-op apply against a real API takes.
        for (latency_ms, rounds) in [(0u64, runs()), (25, runs().div_ceil(2))] {
            sim.set_faults(FaultConfig {
                latency_ms,
                ..FaultConfig::default()
            });
            println!(
                "\n== simulator latency {latency_ms} ms per API request ({rounds} interleaved rounds)"
            );
            compare(&backends, &stack, &providers, rounds, latency_ms == 0).await;
        }
    });
}

/// Runs `rounds` rounds of a bare no-op apply and a team apply with each backend,
/// interleaved so that a busy moment hits all alike, and prints the backend's share.
async fn compare(
    backends: &[Named<'_>],
    stack: &Stack,
    providers: &Providers,
    rounds: usize,
    with_latencies: bool,
) {
    let mut spent: Vec<Vec<Duration>> = vec![Vec::new(); backends.len()];
    let mut by_part: Vec<Vec<Parts>> = vec![Vec::new(); backends.len()];
    let mut applying: Vec<Vec<Duration>> = vec![Vec::new(); backends.len()];
    let mut bare = Vec::new();
    for _ in 0..rounds {
        bare.push(noop_apply(stack, providers).await.0);
        for (k, (_, make)) in backends.iter().enumerate() {
            // A fresh backend each time, as each `stacks apply` process connects anew.
            let b = make();
            let (p, a) = team_apply(b.as_ref(), stack, providers).await;
            spent[k].push(p.iter().sum());
            by_part[k].push(p);
            applying[k].push(a);
        }
    }
    let (bare_min, bare_med) = min_med(bare);
    println!(
        "no-op apply without a backend: min {:.1} ms, median {:.1} ms",
        ms(bare_min),
        ms(bare_med),
    );
    for (k, (name, make)) in backends.iter().enumerate() {
        let (s_min, s_med) = min_med(spent[k].clone());
        let (a_min, a_med) = min_med(applying[k].clone());
        let share = 100.0 * s_med.as_secs_f64() / a_med.as_secs_f64();
        println!("{name}");
        println!(
            "  backend part of a no-op apply  min {:6.2} ms  median {:6.2} ms = {share:.2}% of the median no-op apply ({:.1} ms; min {:.1} ms)  (target < 5%: {})",
            ms(s_min),
            ms(s_med),
            ms(a_med),
            ms(a_min),
            if share < 5.0 { "met" } else { "NOT met" }
        );
        let medians: Vec<String> = (0..PART_NAMES.len())
            .map(|i| {
                let (_, med) = min_med(by_part[k].iter().map(|p| p[i]).collect());
                format!("{} {:.2}", PART_NAMES[i], ms(med))
            })
            .collect();
        println!("  its parts (median ms)          {}", medians.join(", "));
        if with_latencies {
            let b = make();
            latencies(b.as_ref()).await;
        }
    }
}
