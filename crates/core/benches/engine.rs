//! Engine benchmark (`cargo bench -p cairn-core --features testing`): plan time and peak
//! memory for 1k/10k/100k resources on the in-memory provider, and apply wall time against
//! the graph's critical path with a fixed per-action latency. Engine time is build + plan
//! minus the provider's own observe time, as wall time and as this thread's CPU time (the
//! latter is what to compare on a busy machine). `CAIRN_BENCH_SIZES=1000,10000` picks sizes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::apply::NoProgress;
use cairn_core::testing::{MemoryProvider, Thing};
use cairn_core::{ApplyOptions, Handle, Marker, Provider, Providers, StackBuilder, apply, plan};

/// A memory figure of this process from `/proc/self/status` (`VmHWM` = peak, `VmRSS` = now), MB.
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// CPU time this thread has run (`/proc/thread-self/schedstat`), which a busy machine does
/// not inflate the way it inflates wall time. The plan runs on this thread (`block_on`).
fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn thing(i: usize) -> Thing {
    Thing {
        name: format!("r{i}"),
        size: i as i64,
        zone: "fsn1".into(),
        labels: [("team".to_string(), "infra".to_string())].into(),
        ..Default::default()
    }
}

/// Plans a stack of `n` resources (each referencing the id of resource i/2) against a world
/// where all exist and 1% drifted.
async fn bench_plan(n: usize) {
    let base_mb = rss_mb();
    let m = Arc::new(MemoryProvider::new());
    let mut ids: Vec<cairn_core::Field<String>> = Vec::with_capacity(n);
    for i in 0..n {
        let mut t = thing(i);
        if i > 0 {
            t.inputs = vec![ids[i / 2].clone()];
        }
        if i % 100 == 0 {
            t.size += 1;
        }
        let id = m.seed(&t, Some(Marker::created("bench", None)));
        ids.push(cairn_core::Field::Known(id));
    }
    let world_mb = rss_mb() - base_mb;
    let t0 = Instant::now();
    let c0 = cpu_time();
    let mut b = StackBuilder::new("bench");
    let mut handles: Vec<Handle<Thing>> = Vec::with_capacity(n);
    for i in 0..n {
        let mut t = thing(i);
        if i > 0 {
            t.inputs = vec![handles[i / 2].id().into()];
        }
        handles.push(b.add(&format!("r{i}"), t));
    }
    let stack = b.build().expect("valid stack");
    let built = t0.elapsed();
    let built_cpu = cpu_time() - c0;
    // What the provider alone costs (the in-memory "API" copying out every object), so the
    // engine's own share can be told apart.
    let keys: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    let t_obs = Instant::now();
    let c_obs = cpu_time();
    let observed = m
        .observe(cairn_core::ObserveRequest {
            kind: "test_thing",
            keys: &keys,
            stack: "bench",
        })
        .await
        .expect("observe");
    let observe_only = t_obs.elapsed();
    let observe_cpu = cpu_time() - c_obs;
    drop(observed);
    let t1 = Instant::now();
    let c1 = cpu_time();
    let planned = plan(&stack, &Providers::new().with(m.clone()))
        .await
        .expect("plan");
    let planned_in = t1.elapsed();
    let planned_cpu = cpu_time() - c1;
    assert_eq!(planned.plan.summary.change, n.div_ceil(100));
    let engine = built + planned_in.saturating_sub(observe_only);
    let engine_cpu = built_cpu + planned_cpu.saturating_sub(observe_cpu);
    println!(
        "plan  {n:>7} resources: engine time {:>7.1} ms (CPU {:>7.1} ms) = build {:>7.1} ms + plan {:>7.1} ms - provider observe {:>6.1} ms; peak RSS {:>6.1} MB (the provider's own world: {:>5.1} MB)",
        ms(engine),
        ms(engine_cpu),
        ms(built),
        ms(planned_in),
        ms(observe_only),
        peak_rss_mb(),
        world_mb
    );
}

/// Applies a layered DAG of `n` creates (`depth` layers, each node depending on two of the
/// previous layer) with `latency` per action and compares wall time with the critical path.
async fn bench_apply(n: usize, depth: usize, latency: Duration) {
    let m = Arc::new(
        MemoryProvider::new()
            .with_latency(latency)
            .with_concurrency(n),
    );
    let width = n / depth;
    let mut b = StackBuilder::new("bench");
    let mut prev: Vec<Handle<Thing>> = Vec::new();
    for layer in 0..depth {
        let mut cur = Vec::with_capacity(width);
        for j in 0..width {
            let mut t = thing(layer * width + j);
            if !prev.is_empty() {
                t.inputs = vec![
                    prev[j % prev.len()].id().into(),
                    prev[(j * 7 + 3) % prev.len()].id().into(),
                ];
            }
            cur.push(b.add(&format!("r{}", layer * width + j), t));
        }
        prev = cur;
    }
    let stack = b.build().expect("valid stack");
    let providers = Providers::new().with(m.clone());
    let planned = plan(&stack, &providers).await.expect("plan");
    let t = Instant::now();
    let report = apply(
        &stack,
        &providers,
        &planned,
        ApplyOptions {
            parallelism: n,
            ..ApplyOptions::default()
        },
        Arc::new(NoProgress),
    )
    .await;
    let wall = t.elapsed();
    assert!(report.success());
    let critical = latency * depth as u32;
    let calls = m.calls();
    let action = calls.iter().map(|c| c.end - c.start).sum::<Duration>() / calls.len() as u32;
    println!(
        "apply {n:>7} creates, {depth} layers, {} ms/action: wall {:>7.1} ms, critical path {:>7.1} ms, overhead {:>5.1}% (an action took {:.2} ms on average)",
        latency.as_millis(),
        ms(wall),
        ms(critical),
        (wall.as_secs_f64() / critical.as_secs_f64() - 1.0) * 100.0,
        ms(action)
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sizes: Vec<usize> = std::env::var("CAIRN_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000]);
    for n in sizes {
        rt.block_on(bench_plan(n));
    }
    rt.block_on(bench_apply(1_000, 10, Duration::from_millis(50)));
    rt.block_on(bench_apply(5_000, 20, Duration::from_millis(25)));
}
