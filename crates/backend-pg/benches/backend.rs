//! What the team backend costs a `stacks apply`, as a user sees it: the wall time of a
//! no-op apply of a stack of 1,000 Hetzner SSH keys that already exist in the Hetzner
//! simulator, each apply a fresh process (this bench binary re-executed as a child) doing
//! what `stacks apply` does — select the backend and start its check (connect, authenticate,
//! schema) in the background, build the stack and its provider client, wait for the check
//! before the first provider call, take the lock (which opens the run), plan against the
//! simulator, record the plan digest, print the plan, and close the run and release the lock
//! before exiting. The same child without a backend is the baseline; the backend's overhead
//! is the difference of the median wall times. Compared: no backend, the local backend,
//! PostgreSQL (a throwaway cluster on loopback) directly and through PgBouncer in
//! transaction mode, and PostgreSQL checked before building the stack (no overlap: the
//! order before this bench's change) to show what the overlap saves.
//!
//! Also printed: where a fresh connection's time goes (TCP connect; startup, SCRAM-SHA-256
//! and the server's session start; the client's PBKDF2 alone; a query round trip), each
//! child's own breakdown (building the stack, waiting for the backend check after that,
//! acquire, plan, close+release), lock acquire/release latency and the history write cost
//! per resource change.
//!
//! Two scenarios: the simulator as it is (no latency: in-process, the strictest ratio) and
//! with 25 ms injected per API request. `CAIRN_BENCH_RUNS` rounds (default 25; a third as
//! many with latency), interleaved so that a busy moment hits every variant alike.
//!
//! Run: `cargo bench -p cairn-backend-pg --features testing --bench backend`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_backend_pg::PgBackend;
use cairn_backend_pg::testing::Cluster;
use cairn_core::backend::local::LocalBackend;
use cairn_core::backend::{Backend, ChangeRecord, Checking, Holder, plan_digest, status};
use cairn_core::render::render_plan;
use cairn_core::{ApplyOptions, Providers, Stack, StackBuilder, apply, plan};
use cairn_hetzner::HetznerProvider;
use cairn_hetzner::SshKey;
use cairn_hetzner::client::{ClientConfig, Token};
use cairn_hetzner_sim::{Capacities, FaultConfig, HetznerSim, SimConfig, SimHandle};

const RESOURCES: usize = 1_000;

/// Set in a child: which backend it uses (`none`, `local`, `pg`, `pg-sequential`).
const CHILD_ENV: &str = "CAIRN_BENCH_CHILD";

fn runs() -> usize {
    std::env::var("CAIRN_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25)
        .max(1)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn summary(name: &str, d: Vec<Duration>) {
    let n = d.len();
    let mut sorted: Vec<f64> = d.into_iter().map(ms).collect();
    sorted.sort_by(f64::total_cmp);
    let p95 = sorted[((n as f64 - 1.0) * 0.95).round() as usize];
    println!(
        "  {name:<36} min {:6.3} ms  median {:6.3} ms  p95 {:6.3} ms  (n={n})",
        sorted[0],
        sorted[n / 2],
        p95
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

fn providers(endpoint: &str, token: &str) -> Providers {
    let mut cfg = ClientConfig::new(endpoint, Token::new(token));
    cfg.timeout = Duration::from_secs(60);
    Providers::new().with(Arc::new(HetznerProvider::new(cfg).expect("provider")))
}

// ---------------------------------------------------------------------------------------
// The child: one `stacks apply` of the bench stack, as the CLI makes it.

/// The phases a child reports, in milliseconds since it started.
const PHASES: [&str; 6] = [
    "build stack+client",
    "wait for check",
    "acquire",
    "plan",
    "print plan",
    "close+release",
];

fn child(mode: &str) {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by the parent"));
    // As `stacks`' main: a multi-threaded runtime, the command in `block_on`, then exit.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let phases = rt.block_on(async {
        let mut phases = [0.0f64; PHASES.len()];
        let mut t = Instant::now();
        let mut lap = |i: usize, t: &mut Instant| {
            phases[i] = ms(t.elapsed());
            *t = Instant::now();
        };
        // Select the backend and start its check at once (connect, auth, schema).
        let backend: Option<Arc<dyn Backend>> = match mode {
            "none" => None,
            "local" => Some(Arc::new(LocalBackend::new(env("CAIRN_BENCH_STATE")))),
            _ => Some(Arc::new(
                PgBackend::new(&env("CAIRN_BENCH_URL")).expect("url"),
            )),
        };
        let mut checking = backend.map(Checking::start);
        let mut ready = None;
        let mut sequential_check = 0.0;
        if mode == "pg-sequential" {
            // The order before the overlap: the check completes before the stack is built.
            ready = Some(checking.take().unwrap().ready().await.expect("check"));
            sequential_check = ms(t.elapsed());
            t = Instant::now();
        }
        // Load: the stack and its provider client.
        let stack = stack();
        let providers = providers(&env("CAIRN_BENCH_ENDPOINT"), &env("CAIRN_BENCH_TOKEN"));
        lap(0, &mut t);
        // Before the first provider call: the backend must be known good.
        if let Some(c) = checking {
            ready = Some(c.ready().await.expect("check"));
        }
        lap(1, &mut t);
        let lease = match &ready {
            Some(b) => Some(
                b.acquire("bench", &Holder::current("apply"), Duration::ZERO)
                    .await
                    .expect("acquire"),
            ),
            None => None,
        };
        lap(2, &mut t);
        let planned = plan(&stack, &providers).await.expect("plan");
        assert!(!planned.plan.has_changes(), "a no-op: the world matches");
        if let Some(l) = &lease {
            l.set_plan_digest(&plan_digest(&planned))
                .await
                .expect("digest");
        }
        lap(3, &mut t);
        // No changes: `stacks apply` prints the plan and stops there.
        print!("{}", render_plan(&planned.plan, false));
        lap(4, &mut t);
        if let (Some(b), Some(l)) = (&ready, lease) {
            l.finish(b.as_ref(), status::SUCCEEDED, "no changes")
                .await
                .expect("finish");
        }
        lap(5, &mut t);
        phases[1] += sequential_check;
        phases
    });
    drop(rt);
    let line: Vec<String> = phases.iter().map(|p| format!("{p:.4}")).collect();
    println!("\nPHASES {}", line.join(" "));
}

// ---------------------------------------------------------------------------------------
// The parent.

/// A variant: its name, the child mode and the backend URL.
struct Variant {
    name: &'static str,
    mode: &'static str,
    url: String,
}

/// One child run: its wall time as the parent saw it (spawn to exit) and its phases.
async fn run_child(
    v: &Variant,
    sim: &SimHandle,
    state: &std::path::Path,
) -> (f64, [f64; PHASES.len()]) {
    let exe = std::env::current_exe().expect("own path");
    let t = Instant::now();
    let out = tokio::process::Command::new(exe)
        .env(CHILD_ENV, v.mode)
        .env("CAIRN_BENCH_URL", &v.url)
        .env("CAIRN_BENCH_STATE", state)
        .env("CAIRN_BENCH_ENDPOINT", &sim.endpoint)
        .env("CAIRN_BENCH_TOKEN", &sim.token)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run child");
    let wall = ms(t.elapsed());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child {} failed: {stdout}{}",
        v.mode,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PHASES "))
        .expect("the child reports its phases");
    let mut phases = [0.0; PHASES.len()];
    for (p, x) in phases.iter_mut().zip(line.split(' ')) {
        *p = x.parse().expect("a number");
    }
    (wall, phases)
}

/// Where a fresh connection's time goes.
async fn connection_anatomy(name: &str, url: &str) {
    let config: tokio_postgres::Config = url.parse().expect("url");
    let port = config.get_ports()[0];
    let (mut tcp, mut login, mut first) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        let t = Instant::now();
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("tcp");
        stream.set_nodelay(true).expect("nodelay");
        tcp.push(t.elapsed());
        let t = Instant::now();
        let (client, conn) = config
            .connect_raw(stream, tokio_postgres::NoTls)
            .await
            .expect("login");
        let task = tokio::spawn(conn);
        login.push(t.elapsed());
        let t = Instant::now();
        client.simple_query("SELECT 1").await.expect("select");
        first.push(t.elapsed());
        drop(client);
        let _ = task.await;
    }
    println!("{name}");
    summary("TCP connect", tcp);
    summary("startup + SCRAM + session start", login);
    summary("a query round trip", first);
}

/// The client's share of SCRAM-SHA-256: PBKDF2-HMAC-SHA-256 with the server's 4,096
/// iterations (PostgreSQL's default), computed by the driver's own protocol crate.
fn client_pbkdf2() {
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    let mut d = Vec::new();
    for _ in 0..20 {
        let mut scram = ScramSha256::new(b"cairn-test-pw", ChannelBinding::unsupported());
        let first = String::from_utf8(scram.message().to_vec()).expect("utf-8");
        // `n,,n=,r=NONCE`; a nonce never holds a comma (but may hold `r=`).
        let (_, nonce) = first.rsplit_once(",r=").expect("client nonce");
        let server_first = format!("r={nonce}server,s=c2FsdHNhbHRzYWx0,i=4096");
        let t = Instant::now();
        scram.update(server_first.as_bytes()).expect("scram");
        d.push(t.elapsed());
    }
    println!("SCRAM-SHA-256 on the client");
    summary("PBKDF2, 4096 iterations", d);
}

/// Lock latency and history write cost of one backend on a warm connection.
async fn latencies(b: &dyn Backend) {
    b.check().await.expect("backend check");
    let (mut acq, mut rel, mut fin, mut two) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
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
        let lease = b
            .acquire("lat", &Holder::current("apply"), Duration::ZERO)
            .await
            .expect("acquire");
        let t = Instant::now();
        lease
            .finish(b, status::SUCCEEDED, "no changes")
            .await
            .expect("finish");
        fin.push(t.elapsed());
        let lease = b
            .acquire("lat", &Holder::current("apply"), Duration::ZERO)
            .await
            .expect("acquire");
        let t = Instant::now();
        b.finish_run(lease.run_id(), status::SUCCEEDED, "no changes")
            .await
            .expect("finish run");
        lease.release().await.expect("release");
        two.push(t.elapsed());
    }
    summary("lock acquire (opens the run)", acq);
    summary("lock release", rel);
    summary("close run + release (one call)", fin);
    summary("close run, then release (two calls)", two);
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
        "  history write per change             batched {:6.3} ms  one at a time {:6.3} ms  (1,000 changes in batches of 256 as stacks apply writes them; 200 alone)",
        ms(batched) / RESOURCES as f64,
        ms(single)
    );
}

fn main() {
    if let Ok(mode) = std::env::var(CHILD_ENV) {
        child(&mode);
        return;
    }
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
        let providers = providers(&sim.endpoint, &sim.token);
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
            Arc::new(cairn_core::apply::NoProgress),
        )
        .await;
        assert!(report.success(), "seeding the simulator: {report:?}");
        sim.reset_counters();
        let planned = plan(&stack, &providers).await.expect("plan");
        assert!(!planned.plan.has_changes());
        println!(
            "no-op apply of {RESOURCES} hetzner_ssh_key against the Hetzner simulator: {} API requests",
            sim.counters().total
        );

        client_pbkdf2();
        connection_anatomy("PostgreSQL (direct): a fresh connection", &cluster.url()).await;
        connection_anatomy("PgBouncer: a fresh connection", &cluster.bouncer_url()).await;
        for (name, url) in [
            ("PostgreSQL (direct), warm connection", cluster.url()),
            ("PgBouncer (transaction mode), warm connection", cluster.bouncer_url()),
        ] {
            println!("{name}");
            latencies(&PgBackend::new(&url).expect("url")).await;
        }

        let variants = [
            Variant {
                name: "no backend (baseline)",
                mode: "none",
                url: String::new(),
            },
            Variant {
                name: "local (file lock + JSON Lines)",
                mode: "local",
                url: String::new(),
            },
            Variant {
                name: "PostgreSQL (direct, loopback)",
                mode: "pg",
                url: cluster.url(),
            },
            Variant {
                name: "PgBouncer (transaction mode)",
                mode: "pg",
                url: cluster.bouncer_url(),
            },
            Variant {
                name: "PostgreSQL, check before building (old order)",
                mode: "pg-sequential",
                url: cluster.url(),
            },
        ];
        for (latency_ms, rounds) in [(0u64, runs()), (25, runs().div_ceil(3))] {
            sim.set_faults(FaultConfig {
                latency_ms,
                ..FaultConfig::default()
            });
            println!(
                "\n== `stacks apply` no-op, one process each, simulator latency {latency_ms} ms per API request ({rounds} interleaved rounds)"
            );
            compare(&variants, &sim, state.path(), rounds).await;
        }
    });
}

/// Runs `rounds` interleaved rounds of every variant and prints wall times, the overhead
/// against the baseline and each variant's own breakdown.
async fn compare(variants: &[Variant], sim: &SimHandle, state: &std::path::Path, rounds: usize) {
    let mut walls: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut phases: Vec<Vec<[f64; PHASES.len()]>> = vec![Vec::new(); variants.len()];
    // One warm-up round (page cache, the simulator's first requests).
    for v in variants {
        run_child(v, sim, state).await;
    }
    for _ in 0..rounds {
        for (k, v) in variants.iter().enumerate() {
            let (w, p) = run_child(v, sim, state).await;
            walls[k].push(w);
            phases[k].push(p);
        }
    }
    let base = median(walls[0].clone());
    let build0 = median(phases[0].iter().map(|p| p[0]).collect());
    for (k, v) in variants.iter().enumerate() {
        let med = median(walls[k].clone());
        println!("{}", v.name);
        if k == 0 {
            println!(
                "  wall time (spawn to exit)      median {med:7.2} ms  min {:7.2} ms",
                min(&walls[k])
            );
        } else {
            // Paired: each round's difference to the baseline run just before it.
            let over = median(walls[k].iter().zip(&walls[0]).map(|(w, b)| w - b).collect());
            let share = 100.0 * over / base;
            println!(
                "  wall time (spawn to exit)      median {med:7.2} ms  min {:7.2} ms  overhead (median of paired differences) {over:+6.2} ms = {share:+5.1}% of the baseline's median  (target < 5%: {})",
                min(&walls[k]),
                if share < 5.0 { "met" } else { "NOT met" }
            );
        }
        let medians: Vec<String> = (0..PHASES.len())
            .map(|i| {
                format!(
                    "{} {:.2}",
                    PHASES[i],
                    median(phases[k].iter().map(|p| p[i]).collect())
                )
            })
            .collect();
        println!("  in the child (median ms)       {}", medians.join(", "));
        if k > 0 {
            // What the backend put on the path: waiting for its check, acquire, close, and
            // what its check running alongside cost the stack build (on a shared machine
            // the check's CPU — the client's PBKDF2 — competes with it).
            let slower_build = (median(phases[k].iter().map(|p| p[0]).collect()) - build0).max(0.0);
            let own: Vec<f64> = phases[k]
                .iter()
                .map(|p| p[1] + p[2] + p[5] + slower_build)
                .collect();
            let total: Vec<f64> = phases[k].iter().map(|p| p.iter().sum()).collect();
            let share: Vec<f64> = own.iter().zip(&total).map(|(o, t)| 100.0 * o / t).collect();
            println!(
                "  backend on the child's path    median {:.2} ms = {:.1}% of the child's median {:.2} ms  (wait for check + acquire + close + slower build {slower_build:.2})",
                median(own),
                median(share),
                median(total)
            );
        }
    }
}
