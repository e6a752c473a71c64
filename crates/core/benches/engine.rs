//! Engine benchmark (`cargo bench -p cairn-core --features testing`): plan time and peak
//! memory for 1k/10k/100k resources on the in-memory provider, and apply wall time against
//! the graph's critical path with a fixed per-action latency.
//!
//! Engine time is build + plan minus the provider's own observe time, reported as wall time
//! and as CPU time (`getrusage(RUSAGE_SELF)` user + system of the measured section, every
//! thread of the process). The machine the bench runs on may be shared: CPU time is what a
//! busy machine does not inflate, so it is the figure to compare. Every figure is the
//! minimum of `CAIRN_BENCH_RUNS` runs (default 5). `CAIRN_BENCH_SIZES=1000,10000` picks plan
//! sizes, `CAIRN_BENCH_ONLY=plan` or `=apply` one half.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_core::apply::NoProgress;
use cairn_core::testing::{MemoryProvider, Thing};
use cairn_core::{ApplyOptions, Handle, Marker, Provider, Providers, StackBuilder, apply, plan};

/// The allocator the CLI binaries use (`cairn`'s `mimalloc` feature), so the engine is
/// measured as users run it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// Resets the peak RSS to the current RSS (Linux: `5` to `/proc/self/clear_refs`), so each
/// size reports its own peak rather than the largest so far.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// User + system CPU time of the whole process so far (`getrusage(RUSAGE_SELF)`).
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Wall and CPU time of one measured section.
#[derive(Clone, Copy, Default)]
struct Took {
    wall: Duration,
    cpu: Duration,
}

impl Took {
    fn start() -> (Instant, Duration) {
        (Instant::now(), cpu_time())
    }

    fn since((t, c): (Instant, Duration)) -> Took {
        Took {
            wall: t.elapsed(),
            cpu: cpu_time().saturating_sub(c),
        }
    }

    fn minus(self, o: Took) -> Took {
        Took {
            wall: self.wall.saturating_sub(o.wall),
            cpu: self.cpu.saturating_sub(o.cpu),
        }
    }

    fn plus(self, o: Took) -> Took {
        Took {
            wall: self.wall + o.wall,
            cpu: self.cpu + o.cpu,
        }
    }

    /// The field-wise minimum (wall and CPU each over all runs).
    fn min(self, o: Took) -> Took {
        Took {
            wall: self.wall.min(o.wall),
            cpu: self.cpu.min(o.cpu),
        }
    }
}

fn runs() -> usize {
    std::env::var("CAIRN_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1)
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
/// where all exist and 1% drifted, `runs()` times; prints the minimum of each figure.
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
    drop(ids);
    let world_mb = rss_mb() - base_mb;
    reset_peak_rss();
    let far = Took {
        wall: Duration::MAX,
        cpu: Duration::MAX,
    };
    let (mut engine, mut build, mut planning, mut observing, mut freeing) =
        (far, far, far, far, far);
    for _ in 0..runs() {
        let t0 = Took::start();
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
        let built = Took::since(t0);
        drop(handles);
        // What the provider alone costs (the in-memory "API" copying out every object), so
        // the engine's own share can be told apart.
        let keys: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
        let t1 = Took::start();
        let observed = m
            .observe(cairn_core::ObserveRequest {
                kind: "test_thing",
                keys: &keys,
                stack: "bench",
            })
            .await
            .expect("observe");
        let observe_only = Took::since(t1);
        drop(observed);
        drop(keys);
        let t2 = Took::start();
        let planned = plan(&stack, &Providers::new().with(m.clone()))
            .await
            .expect("plan");
        let planned_in = Took::since(t2);
        assert_eq!(planned.plan.summary.change, n.div_ceil(100));
        // Freeing the plan and the stack, shown apart (a CLI may simply exit instead).
        let t3 = Took::start();
        drop(planned);
        drop(stack);
        let dropped = Took::since(t3);
        engine = engine.min(built.plus(planned_in).minus(observe_only));
        build = build.min(built);
        planning = planning.min(planned_in);
        observing = observing.min(observe_only);
        freeing = freeing.min(dropped);
    }
    println!(
        "plan  {n:>7} resources: engine CPU {:>7.1} ms, wall {:>7.1} ms (min of {}; CPU: build {:.1} + plan {:.1} - provider observe {:.1}; wall: {:.1} + {:.1} - {:.1}; freeing it after: CPU {:.1}); peak RSS {:>6.1} MB (the provider's own world: {:>5.1} MB)",
        ms(engine.cpu),
        ms(engine.wall),
        runs(),
        ms(build.cpu),
        ms(planning.cpu),
        ms(observing.cpu),
        ms(build.wall),
        ms(planning.wall),
        ms(observing.wall),
        ms(freeing.cpu),
        peak_rss_mb(),
        world_mb
    );
}

/// Applies a layered DAG of `n` creates (`depth` layers, each node depending on two of the
/// previous layer) with `latency` per action and compares wall time with the critical path,
/// `runs()` times; prints the run with the least wall time and the least CPU time.
async fn bench_apply(n: usize, depth: usize, latency: Duration) {
    let width = n / depth;
    let mut best_wall = Duration::MAX;
    let mut best_cpu = Duration::MAX;
    let mut best_real = f64::MAX;
    let mut action = Duration::ZERO;
    for _ in 0..runs() {
        let m = Arc::new(
            MemoryProvider::new()
                .with_latency(latency)
                .with_concurrency(n),
        );
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
        let t = Took::start();
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
        let took = Took::since(t);
        assert!(report.success());
        let calls = m.calls();
        // The critical path with the durations the actions really had: on a busy machine a
        // provider's sleep overshoots, which is not the engine's doing; the gaps between
        // dependent actions are.
        let mut took_of = vec![Duration::ZERO; n];
        for c in &calls {
            let k: usize = c.key[1..].parse().expect("key r<i>");
            took_of[k] = c.end - c.start;
        }
        let mut path = vec![Duration::ZERO; n];
        for layer in 0..depth {
            for j in 0..width {
                let k = layer * width + j;
                let before = if layer == 0 {
                    Duration::ZERO
                } else {
                    let p = (layer - 1) * width;
                    path[p + j % width].max(path[p + (j * 7 + 3) % width])
                };
                path[k] = before + took_of[k];
            }
        }
        let real_critical = path.iter().copied().max().unwrap_or_default();
        if took.wall < best_wall {
            best_wall = took.wall;
            action = calls.iter().map(|c| c.end - c.start).sum::<Duration>() / calls.len() as u32;
        }
        best_real = best_real.min(took.wall.as_secs_f64() / real_critical.as_secs_f64() - 1.0);
        best_cpu = best_cpu.min(took.cpu);
    }
    let critical = latency * depth as u32;
    println!(
        "apply {n:>7} creates, {depth} layers, {} ms/action: wall {:>7.1} ms (min of {}), critical path {:>7.1} ms, overhead {:>5.1}% (an action took {:.2} ms on average; over the critical path of the actions' real durations: {:.1}%); CPU {:>6.1} ms (min), {:.1} µs per node",
        latency.as_millis(),
        ms(best_wall),
        runs(),
        ms(critical),
        (best_wall.as_secs_f64() / critical.as_secs_f64() - 1.0) * 100.0,
        ms(action),
        best_real * 100.0,
        ms(best_cpu),
        best_cpu.as_secs_f64() * 1e6 / n as f64,
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
    let only = std::env::var("CAIRN_BENCH_ONLY").unwrap_or_default();
    if only != "apply" {
        for n in sizes {
            rt.block_on(bench_plan(n));
        }
    }
    if only != "plan" {
        rt.block_on(bench_apply(1_000, 10, Duration::from_millis(50)));
        rt.block_on(bench_apply(5_000, 20, Duration::from_millis(25)));
    }
}
