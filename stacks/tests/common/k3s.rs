//! Shared set-up for the hetzner-k3s end-to-end tests: the simulated world kept by the test
//! (so the CLI, run in-process, works on a world that outlives each command), the real CLI
//! run against it, Hetzner server ids read through the simulator's own API, and a sampler
//! that records the cluster every ~100 ms while something runs.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use cairn::cli::{App, Cli, Loaded, StackDef, Target};
use cairn_core::{Action, ApplyOptions, apply, plan};
use cairn_node_sim::{ClusterId, NodeSim};
use clap::Parser;
use stacks::sims::HetznerK3sWorld;
use stacks::stacks::hetzner_k3s;

/// The nodes in the order `rotate --all` and the rolling upgrade take them (servers first).
pub const NODES: [&str; 5] = ["k3s-mgr", "k3s-cp2", "k3s-cp3", "k3s-w1", "k3s-w2"];
/// The k3s servers (etcd members once bootstrapped).
pub const SERVERS: [&str; 3] = ["k3s-mgr", "k3s-cp2", "k3s-cp3"];
/// The agents, carrying the workload.
pub const AGENTS: [&str; 2] = ["k3s-w1", "k3s-w2"];
/// The seeded workload's namespace and Deployment (and PodDisruptionBudget) name.
pub const DOCFAST: &str = "docfast";
/// The k3s release the upgrade tests move to (the before world runs
/// [`hetzner_k3s::K3S_VERSION`]).
pub const NEXT_VERSION: &str = "v1.34.5+k3s1";

/// The process-wide settings every test of these files needs before any thread starts: a
/// temporary state directory (locks, the run history; never the source tree or `$HOME`),
/// and permission to simulate under `CI=true`.
fn process_env() -> &'static tempfile::TempDir {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    static SET: Once = Once::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    SET.call_once(|| {
        // SAFETY: called from `run` before the test's runtime (and so any other thread of
        // this test) exists; nextest runs each test in its own process.
        unsafe {
            std::env::set_var(cairn_core::lock::STATE_DIR_ENV, dir.path());
            std::env::set_var("CAIRN_SIMULATE", "1");
            std::env::set_var("NO_COLOR", "1");
            // A gate that never opens fails the test in minutes, not the default ten.
            std::env::set_var("CAIRN_GATE_TIMEOUT_SECS", "120");
            // Drains wait for replacement pods (ready within a second or two here).
            std::env::set_var("CAIRN_DRAIN_TIMEOUT_SECS", "60");
        }
    });
    dir
}

/// Runs a test body on a fresh multi-threaded runtime, after [`process_env`].
pub fn run<F: std::future::Future<Output = ()>>(body: F) {
    run_with_env(&[], body)
}

/// [`run`], with `env` set first (e.g. a short drain timeout).
pub fn run_with_env<F: std::future::Future<Output = ()>>(env: &[(&str, &str)], body: F) {
    process_env();
    for (k, v) in env {
        // SAFETY: as in `process_env`: no other thread of this test exists yet.
        unsafe { std::env::set_var(k, v) };
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(body)
}

/// The state directory of this test process (where the run history is).
pub fn state_dir() -> std::path::PathBuf {
    process_env().path().to_path_buf()
}

/// The simulated hetzner-k3s world, loaded once and kept by the test.
pub struct World {
    /// The stack, providers and rotation (its `keep` moved into `worlds`).
    pub loaded: Loaded,
    /// The simulators (Hetzner, the k3s hosts), alive as long as the test.
    pub sims: Arc<Sims>,
}

/// The simulators of a [`World`], shared with the sampler.
pub struct Sims {
    /// Whatever the stack's simulated load keeps alive.
    keep: Mutex<Vec<Box<dyn std::any::Any + Send>>>,
    /// The Hetzner simulator's endpoint (`…/v1`).
    pub hetzner_endpoint: String,
    /// Its token.
    pub hetzner_token: String,
}

impl World {
    /// Loads hetzner-k3s in simulator mode: the "before" world (the hand-made single-server
    /// cluster) on the Hetzner simulator and real sshd hosts.
    pub async fn before() -> World {
        let mut loaded = hetzner_k3s::def()
            .load(Target::Simulated)
            .await
            .expect("simulated hetzner-k3s");
        let keep = std::mem::take(&mut loaded.keep);
        let world = keep
            .iter()
            .find_map(|k| k.downcast_ref::<HetznerK3sWorld>())
            .expect("the simulated hetzner-k3s world is kept");
        let (hetzner_endpoint, hetzner_token) = (
            world.hetzner.handle.endpoint.clone(),
            world.hetzner.handle.token.clone(),
        );
        World {
            loaded,
            sims: Arc::new(Sims {
                keep: Mutex::new(keep),
                hetzner_endpoint,
                hetzner_token,
            }),
        }
    }

    /// The world bootstrapped to three etcd servers: its first plan applied (asserted to
    /// succeed and converge: a second plan is empty).
    pub async fn bootstrapped() -> World {
        let w = World::before().await;
        let report = w.apply_stack(&w.loaded.stack).await;
        assert!(report.is_empty(), "bootstrap apply failed: {report}");
        let left = w.pending(&w.loaded.stack).await;
        assert!(left.is_empty(), "a second plan still changes {left:?}");
        w
    }

    /// Plans and applies `stack` with this world's providers; the failures, one per line
    /// (empty when it succeeded).
    pub async fn apply_stack(&self, stack: &cairn_core::Stack) -> String {
        let planned = plan(stack, &self.loaded.providers).await.expect("plan");
        let report = apply(
            stack,
            &self.loaded.providers,
            &planned,
            ApplyOptions::default(),
            Arc::new(cairn_core::apply::NoProgress),
        )
        .await;
        if report.success() {
            String::new()
        } else {
            format!("{report:?}")
        }
    }

    /// The addresses a plan of `stack` would change (empty: converged).
    pub async fn pending(&self, stack: &cairn_core::Stack) -> Vec<String> {
        plan(stack, &self.loaded.providers)
            .await
            .expect("plan")
            .plan
            .resource_changes
            .iter()
            .filter(|c| c.action != Some(Action::NoOp))
            .map(|c| format!("{} {:?}", c.address, c.action))
            .collect()
    }

    /// Runs the real CLI in-process (`stacks --stack hetzner-k3s ARGS…`) against this
    /// world: the exit code, or the error that stopped the command.
    pub async fn cli(&self, args: &[&str]) -> Result<u8, String> {
        let (stack, providers, rotation) = (
            self.loaded.stack.clone(),
            self.loaded.providers.clone(),
            self.loaded.rotation.clone(),
        );
        let def = StackDef::custom(hetzner_k3s::def().name(), &[], move |_| {
            let loaded = Loaded {
                stack: stack.clone(),
                providers: providers.clone(),
                keep: Vec::new(),
                rotation: rotation.clone(),
            };
            async move { Ok(loaded) }
        });
        let argv = ["stacks", "--stack", "hetzner-k3s"]
            .iter()
            .chain(args)
            .copied();
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        App::new(vec![def])
            .run(cli)
            .await
            .map_err(|e| cairn::cli::chain(e.as_ref()))
    }

    /// Runs `f` on the node simulator and the k3s cluster's id.
    pub fn with_sim<T>(&self, f: impl FnOnce(&NodeSim, ClusterId) -> T) -> T {
        self.sims.with_sim(f)
    }

    /// The cluster's join token (to build the stack again, e.g. with another version).
    pub fn token(&self) -> String {
        self.sims.world(|w| w.nodes.token.clone())
    }

    /// The stack as [`hetzner_k3s`] declares it in simulator mode, but with k3s `version`
    /// on every node (its gates reach the world's hosts and cluster as the loaded stack's do).
    pub fn stack_with_version(&self, version: &str) -> anyhow::Result<cairn_core::Stack> {
        self.sims.world(|w| {
            let dialer = w.dialer()?;
            let ssh = hetzner_k3s::ssh(&dialer, w.client_key(), w.known_hosts(), "root")?;
            let k3s = hetzner_k3s::K3sPart {
                token: w.nodes.token.clone(),
                cluster: hetzner_k3s::cluster(&ssh, &dialer),
                ssh,
                timing: cairn_core::gate::GateTiming {
                    interval: Duration::from_millis(500),
                    timeout: Duration::from_secs(120),
                },
            };
            let key = hetzner_k3s::public_key_of(&w.client_key())?;
            hetzner_k3s::build_with_k3s_version(true, Some(&key), Some(&k3s), version)
        })
    }

    /// The Hetzner server ids by name, through the simulator's API.
    pub async fn server_ids(&self) -> BTreeMap<String, u64> {
        server_ids(&self.sims.hetzner_endpoint, &self.sims.hetzner_token).await
    }
}

impl Sims {
    /// Runs `f` on the node simulator and the k3s cluster's id.
    pub fn with_sim<T>(&self, f: impl FnOnce(&NodeSim, ClusterId) -> T) -> T {
        self.world(|w| f(&w.nodes.lock(), w.nodes.cluster))
    }

    /// Runs `f` on the simulated world.
    fn world<T>(&self, f: impl FnOnce(&HetznerK3sWorld) -> T) -> T {
        let keep = self.keep.lock().unwrap();
        f(keep
            .iter()
            .find_map(|k| k.downcast_ref::<HetznerK3sWorld>())
            .expect("the simulated hetzner-k3s world is kept"))
    }

    /// One sample of the cluster as the simulator sees it.
    pub fn snapshot(&self) -> Snapshot {
        self.with_sim(|sim, c| {
            let (healthy, members) = sim.etcd_health(c);
            Snapshot {
                cordoned: sim.cordoned(c),
                ready_replicas: u64::from(sim.ready_replicas(c, DOCFAST, DOCFAST)),
                etcd_healthy: healthy as u64,
                etcd_members: members as u64,
                k3s_starts: NODES
                    .iter()
                    .map(|n| (n.to_string(), sim.k3s_starts(n)))
                    .collect(),
                pods: sim
                    .pods(c, DOCFAST)
                    .into_iter()
                    .map(|p| (p.name, p.node))
                    .collect(),
                ids: BTreeMap::new(),
            }
        })
    }
}

/// The Hetzner server ids by name, listed through the simulator's own API.
pub async fn server_ids(endpoint: &str, token: &str) -> BTreeMap<String, u64> {
    try_server_ids(endpoint, token)
        .await
        .unwrap_or_else(|e| panic!("listing servers: {e}"))
}

/// [`server_ids`], or why the listing failed (e.g. rate-limited).
pub async fn try_server_ids(endpoint: &str, token: &str) -> Result<BTreeMap<String, u64>, String> {
    let resp = reqwest::Client::new()
        .get(format!("{endpoint}/servers?per_page=50"))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    let servers = v["servers"]
        .as_array()
        .ok_or_else(|| format!("{status}: {v}"))?;
    Ok(servers
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["id"].as_u64().unwrap_or_default(),
            )
        })
        .collect())
}

/// The cluster at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The cordoned nodes.
    pub cordoned: Vec<String>,
    /// docfast's ready replicas.
    pub ready_replicas: u64,
    /// Healthy etcd members.
    pub etcd_healthy: u64,
    /// etcd members.
    pub etcd_members: u64,
    /// Hetzner server ids by name (empty when not sampled).
    pub ids: BTreeMap<String, u64>,
    /// docfast's pods and the nodes they are bound to.
    pub pods: Vec<(String, Option<String>)>,
    /// How often k3s started on each node's host (an upgrade restarts it).
    pub k3s_starts: BTreeMap<String, u32>,
}

impl Snapshot {
    /// Whether etcd has quorum (a majority of its members healthy).
    pub fn quorum(&self) -> bool {
        self.etcd_healthy * 2 > self.etcd_members
    }
}

/// Samples the cluster every ~100 ms on its own thread until [`Sampler::finish`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Snapshot>>,
}

impl Sampler {
    /// Starts sampling `sims` (and the Hetzner server ids).
    pub fn start(sims: Arc<Sims>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let mut out = Vec::new();
            let mut ids = BTreeMap::new();
            let mut n = 0u64;
            while !s.load(Ordering::SeqCst) {
                // Server ids every ~500 ms (the simulated API is rate-limited like the real
                // one); the cluster every ~100 ms.
                if n.is_multiple_of(5)
                    && let Ok(now) =
                        rt.block_on(try_server_ids(&sims.hetzner_endpoint, &sims.hetzner_token))
                {
                    ids = now;
                }
                n += 1;
                let mut snap = sims.snapshot();
                snap.ids = ids.clone();
                out.push(snap);
                std::thread::sleep(Duration::from_millis(100));
            }
            out
        });
        Sampler { stop, thread }
    }

    /// Stops and returns every sample.
    pub fn finish(self) -> Vec<Snapshot> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the sampler panicked")
    }
}

/// For each node, the distinct server ids it had in the samples, in order.
pub fn id_history(samples: &[Snapshot]) -> BTreeMap<String, Vec<u64>> {
    let mut h: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for s in samples {
        for (name, id) in &s.ids {
            let seen = h.entry(name.clone()).or_default();
            if seen.last() != Some(id) {
                seen.push(*id);
            }
        }
    }
    h
}

/// The docfast pods seen in the samples that were not there in the first one (pods a drain
/// evicted were replaced: the workload really moved).
pub fn new_pods(samples: &[Snapshot]) -> Vec<String> {
    let Some(first) = samples.first() else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for s in samples {
        for (name, _) in &s.pods {
            if !first.pods.iter().any(|(n, _)| n == name) && !out.contains(name) {
                out.push(name.clone());
            }
        }
    }
    out
}

/// The rotation's record of `node`'s `phase` (`started`, `replaced`, `done`, `failed`) in a
/// rotate run's changes.
pub fn phase<'a>(
    changes: &'a [cairn_core::backend::ChangeRecord],
    node: &str,
    phase: &str,
) -> Option<&'a cairn_core::backend::ChangeRecord> {
    changes
        .iter()
        .find(|c| c.address == format!("rotation.{node}") && c.action == phase)
}

/// Whether the nodes seen cordoned were cordoned in [`NODES`] order (a fast node may be
/// cordoned between two samples and not be seen).
pub fn cordoned_in_order(samples: &[Snapshot]) -> bool {
    let order = cordon_order(samples);
    let pos: Vec<usize> = order
        .iter()
        .filter_map(|n| NODES.iter().position(|m| m == n))
        .collect();
    pos.len() == order.len() && pos.windows(2).all(|w| w[0] < w[1])
}

/// The index of the first sample where `f` differs from the first sample's value, per node.
pub fn first_change<T: PartialEq>(
    samples: &[Snapshot],
    f: impl Fn(&Snapshot, &str) -> T,
) -> BTreeMap<String, Option<usize>> {
    NODES
        .iter()
        .map(|n| {
            let at = samples
                .first()
                .and_then(|first| samples.iter().position(|s| f(s, n) != f(first, n)));
            (n.to_string(), at)
        })
        .collect()
}

/// The nodes in the order they were first seen cordoned.
pub fn cordon_order(samples: &[Snapshot]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for s in samples {
        for n in &s.cordoned {
            if !order.contains(n) {
                order.push(n.clone());
            }
        }
    }
    order
}

/// The `rotate` runs of hetzner-k3s in this process's run history (newest first), each with
/// its change records.
pub async fn rotate_runs() -> Vec<(
    cairn_core::backend::RunRecord,
    Vec<cairn_core::backend::ChangeRecord>,
)> {
    use cairn_core::backend::Backend;
    let b = cairn_core::backend::local::LocalBackend::new(state_dir());
    let mut out = Vec::new();
    for r in b.runs(Some("hetzner-k3s"), 100).await.expect("runs") {
        if r.holder.operation == "rotate" {
            out.push(b.run(&r.id).await.expect("run"));
        }
    }
    out
}

/// Waits (polling, bounded) until `check` holds on the node simulator; false if it never did.
pub async fn wait_until(
    sims: &Sims,
    bound: Duration,
    check: impl Fn(&NodeSim, ClusterId) -> bool,
) -> bool {
    let deadline = std::time::Instant::now() + bound;
    while std::time::Instant::now() < deadline {
        if sims.with_sim(&check) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
