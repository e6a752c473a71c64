//! What the PostgreSQL backend costs: lock acquire and release latency, history write cost per
//! resource change (batched as `stacks apply` writes them, and one row at a time), and the
//! backend's whole overhead on a 1,000-resource no-op apply compared with that apply itself.
//! Runs against a throwaway cluster (directly and through PgBouncer in transaction mode).

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_backend_pg::PgBackend;
use cairn_backend_pg::testing::Cluster;
use cairn_core::apply::NoProgress;
use cairn_core::backend::{Backend, ChangeRecord, Holder, plan_digest, status};
use cairn_core::testing::{MemoryProvider, Thing};
use cairn_core::{ApplyOptions, Marker, Providers, StackBuilder, apply, plan};

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(name: &str, mut d: Vec<Duration>) {
    d.sort();
    let mean = d.iter().sum::<Duration>().as_secs_f64() * 1000.0 / d.len() as f64;
    println!(
        "  {name:<28} mean {mean:6.2} ms  p50 {:6.2} ms  p95 {:6.2} ms  (n={})",
        pct(&d, 0.5),
        pct(&d, 0.95),
        d.len()
    );
}

fn change(i: usize) -> ChangeRecord {
    ChangeRecord {
        address: format!("test_thing.r{i}"),
        action: "update".into(),
        outcome: "done".into(),
        duration_ms: 7,
        error: None,
    }
}

/// The backend's part of one no-op apply: connect and check, then acquire, plan digest,
/// close, release. Returns both parts.
async fn apply_overhead(url: &str, digest: &str) -> (Duration, Duration) {
    let t = Instant::now();
    let b = PgBackend::new(url).unwrap();
    b.check().await.unwrap();
    let connect = t.elapsed();
    let t = Instant::now();
    let lease = b
        .acquire("bench", &Holder::current("apply"), Duration::ZERO)
        .await
        .unwrap();
    lease.set_plan_digest(digest).await.unwrap();
    b.finish_run(lease.run_id(), status::SUCCEEDED, "no changes")
        .await
        .unwrap();
    lease.release().await.unwrap();
    (connect, t.elapsed())
}

async fn bench(label: &str, url: &str, noop_apply: Duration, digest: &str) {
    println!("{label}");
    let b = PgBackend::new(url).unwrap();
    b.check().await.unwrap();
    let (mut acq, mut rel) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let t = Instant::now();
        let lease = b
            .acquire("lat", &Holder::current("apply"), Duration::ZERO)
            .await
            .unwrap();
        acq.push(t.elapsed());
        let t = Instant::now();
        lease.release().await.unwrap();
        rel.push(t.elapsed());
    }
    summary("lock acquire", acq);
    summary("lock release", rel);

    let run = b
        .start_run("hist", &Holder::current("apply"))
        .await
        .unwrap();
    let all: Vec<ChangeRecord> = (0..1000).map(change).collect();
    let t = Instant::now();
    for chunk in all.chunks(256) {
        b.record_changes(&run, chunk).await.unwrap();
    }
    let batched = t.elapsed();
    let t = Instant::now();
    for c in &all {
        b.record_changes(&run, std::slice::from_ref(c))
            .await
            .unwrap();
    }
    let single = t.elapsed();
    println!(
        "  history write per change      batched {:6.3} ms  one at a time {:6.3} ms  (1,000 changes)",
        batched.as_secs_f64(),
        single.as_secs_f64()
    );
    let mut over = Vec::new();
    for _ in 0..20 {
        over.push(apply_overhead(url, digest).await);
    }
    over.sort_by_key(|(c, l)| *c + *l);
    let (connect, locked) = over[over.len() / 2];
    let total = connect + locked;
    println!(
        "  no-op apply overhead          {:6.2} ms (median of 20: connect+schema check {:.2} ms, lock+run+release {:.2} ms) = {:.2}% of a {:.0} ms in-memory 1,000-resource no-op apply",
        total.as_secs_f64() * 1000.0,
        connect.as_secs_f64() * 1000.0,
        locked.as_secs_f64() * 1000.0,
        100.0 * total.as_secs_f64() / noop_apply.as_secs_f64(),
        noop_apply.as_secs_f64() * 1000.0
    );
}

/// Plans and applies a 1,000-resource stack that is already in place, in memory (no
/// latency: the cheapest possible apply, so the ratio above is a worst case).
async fn noop_apply() -> (Duration, String) {
    let m = Arc::new(MemoryProvider::new());
    let mut sb = StackBuilder::new("bench");
    for i in 0..1000 {
        let t = Thing {
            name: format!("r{i}"),
            size: i as i64,
            zone: "fsn1".into(),
            ..Default::default()
        };
        m.seed(&t, Some(Marker::created("bench", None)));
        sb.add(&format!("r{i}"), t);
    }
    let stack = sb.build().unwrap();
    let p = Providers::new().with(m);
    let t = Instant::now();
    let planned = plan(&stack, &p).await.unwrap();
    assert!(!planned.plan.has_changes());
    let report = apply(
        &stack,
        &p,
        &planned,
        ApplyOptions::default(),
        Arc::new(NoProgress),
    )
    .await;
    assert!(report.success());
    (t.elapsed(), plan_digest(&planned))
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cluster = Cluster::with_pgbouncer();
    rt.block_on(async {
        let (noop, digest) = noop_apply().await;
        bench(
            "PostgreSQL (direct, loopback)",
            &cluster.url(),
            noop,
            &digest,
        )
        .await;
        bench(
            "PostgreSQL through PgBouncer (transaction mode)",
            &cluster.bouncer_url(),
            noop,
            &digest,
        )
        .await;
    });
}
