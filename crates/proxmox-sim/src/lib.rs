//! A faithful Proxmox VE API simulator: HTTPS on 127.0.0.1 with a
//! certificate generated at start, serving `/api2/json` as pveproxy does.
//!
//! # Real API (under `/api2/json`)
//! `/version`, `/access/ticket`, `/cluster/resources`, `/cluster/nextid`, `/nodes`,
//! `/nodes/{node}/status`, `/nodes/{node}/qemu` (list, create), and per VM `clone`,
//! `config` (GET/POST/PUT), `pending`, `resize`, `status/current`, `status/start|stop|shutdown`,
//! `DELETE` (destroy), plus `/nodes/{node}/tasks/{upid}/status|log`.
//!
//! Behaviour follows `shared/API-NOTES.md`: token auth (`PVEAPIToken=user@realm!id=secret`)
//! or ticket cookie + `CSRFPreventionToken` on writes; form or JSON bodies; booleans 1/0;
//! `{"data": …}` envelopes (also `null`); the error message as HTTP reason phrase;
//! `400 Parameter verification failed.` with `errors`; a missing VM is `500 Configuration
//! file 'nodes/N/qemu-server/ID.conf' does not exist`; unknown routes (paths or methods,
//! before auth) and bodies on GET are 501. Routes are axum routes built from one table
//! (`routes::ROUTES`) that also names the counters' routes. Async work returns a UPID whose task stops after a configurable time, with
//! `exitstatus` only once stopped. A clone holds `lock: clone` until its task ends; a second
//! clone of the same source while one runs fails with `can't lock file
//! '/var/lock/qemu-server/lock-<source>.conf' - got timeout`. Writes accept a `digest` and
//! fail with a checksum mismatch when the config changed. Tags are normalised (lowercase,
//! dedup, sorted, `;`); `sshkeys` must be percent-encoded; changes to a running VM that need
//! a restart go to the pending config (returned by `GET config` unless `current=1`).
//!
//! # Control API (under `/_sim/`, no auth, never counted)
//! The kit's `/_sim/` API (`cairn_sim_kit`): counters by route without the `/api2/json`
//! prefix (`"GET /cluster/resources"`), faults (this simulator's own, [`SimFaults`], under
//! `sim`; [`Faults`] builds a whole setting), state (the [`World`] as JSON), reset, and
//! capacities: `{"nodes": {"pve": {"memory_total": <bytes>, "cpus": 48}}}`, settable (naming a
//! new node adds it). A start needing more vCPUs than its node has fails its task with `MAX
//! n vcpus allowed per VM on this node`, one needing more memory than the whole node with
//! `start failed: QEMU exited with code 1` (running VMs may add up to more than the node
//! has: Linux overcommits guest RAM).
//!
//! # Data plane
//! None: a VM serves nothing by itself. What runs inside a booted VM (an sshd, a kubelet, an
//! apiserver once a node has joined) is another simulator's business, driven by the events
//! below (in cairn, `cairn-node-sim`, wired by the `stacks` glue).
//!
//! # VM lifecycle events
//! [`ProxmoxState::vm_events`] tells glue code when a VM has booted (with its `ipconfig0`
//! address, `ciuser` and `sshkeys`), stopped or been destroyed ([`events`]), so a host
//! simulator can bring a machine up and down with its VM without this crate knowing it.
//!
//! # Rust API
//! [`ProxmoxSim::start`] takes a [`SimConfig`] and returns a [`SimHandle`] (the kit's handle
//! over [`ProxmoxState`]) with the endpoint, the API token, `root@pam`'s password as
//! `basic_auth`, the certificate (PEM and SHA-256 fingerprint) and `env()`
//! (`PROXMOX_VE_ENDPOINT`, `PROXMOX_VE_API_TOKEN`, `PROXMOX_VE_FINGERPRINT`); dropping it
//! stops the server.

mod api;
pub mod events;
mod http;
mod propstr;
mod routes;
pub mod world;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::Method;
use cairn_sim_kit::{Fault, FaultConfig, FaultRule, Kit, Route, Simulator, Spec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use cairn_sim_kit::{Counters, SimError};
pub use events::{BootedVm, VmEvent};
pub use world::World;

/// A running Proxmox simulator.
pub type SimHandle = cairn_sim_kit::SimHandle<ProxmoxState>;

/// Faults in the shape tests think in; converts into the kit's [`FaultConfig`]: the rates
/// become rules (a 500 `injected fault`, and `lock` on writes under `/nodes/`), the task
/// failures and tampering go to the simulator's own part ([`SimFaults`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Faults {
    /// Seed of the fault generator.
    pub seed: u64,
    /// Added latency per API request, milliseconds.
    pub latency_ms: u64,
    /// Probability (0..1) that a request fails with `500 injected fault`.
    pub error_rate: f64,
    /// Probability (0..1) that a write on a VM fails with `can't lock file … got timeout`.
    pub lock_contention_rate: f64,
    /// The next tasks of these kinds fail with the given exit status.
    pub fail_tasks: Vec<TaskFault>,
    /// Out-of-band edits applied just before the next config write to their VM (each once),
    /// to provoke a checksum mismatch deterministically.
    pub tamper: Vec<Tamper>,
}

/// The fault a 500 `injected fault` is: pveproxy's envelope and reason phrase.
pub fn injected_error() -> Fault {
    let message = "injected fault: internal server error";
    Fault::Error {
        status: 500,
        body: json!({"data": null, "message": format!("{message}\n")}),
        reason: Some(message.into()),
    }
}

impl From<Faults> for FaultConfig {
    fn from(f: Faults) -> FaultConfig {
        let mut rules = Vec::new();
        if f.error_rate > 0.0 {
            rules.push(FaultRule {
                rate: f.error_rate,
                fault: Some(injected_error()),
                ..FaultRule::default()
            });
        }
        if f.lock_contention_rate > 0.0 {
            rules.push(FaultRule {
                methods: vec!["POST".into(), "PUT".into(), "DELETE".into()],
                path_prefix: "/api2/json/nodes/".into(),
                rate: f.lock_contention_rate,
                fault: Some(Fault::sim("lock")),
                ..FaultRule::default()
            });
        }
        FaultConfig {
            seed: f.seed,
            latency_ms: f.latency_ms,
            rules,
            sim: serde_json::to_value(SimFaults {
                fail_tasks: f.fail_tasks,
                tamper: f.tamper,
            })
            .unwrap_or_default(),
            ..FaultConfig::default()
        }
    }
}

/// This simulator's own faults (the `sim` member of `/_sim/faults`). The kit's fault
/// `"lock"` (a `Fault::Sim`) makes a write on a VM fail with `can't lock file … got timeout`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SimFaults {
    /// The next tasks of these kinds fail with the given exit status.
    pub fail_tasks: Vec<TaskFault>,
    /// Out-of-band edits applied just before the next config write to their VM (each once).
    pub tamper: Vec<Tamper>,
}

/// Sets `key = value` in VM `vmid`'s config right before the next config write to it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tamper {
    /// The VM.
    pub vmid: u32,
    /// Config key.
    pub key: String,
    /// New raw value.
    pub value: String,
}

/// Makes the next `count` tasks of `kind` (e.g. `qmclone`) fail with `message`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskFault {
    /// Task type, e.g. `qmclone`, `qmstart`.
    pub kind: String,
    /// The task's exit status (its error text).
    pub message: String,
    /// How many tasks fail.
    pub count: u32,
}

/// How to start the simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The world to serve.
    pub world: World,
    /// The API token, `user@realm!tokenid=secret`.
    pub token: String,
    /// Password of `root@pam` for ticket auth.
    pub password: String,
    /// How long ordinary tasks (start, stop, config, resize, destroy) run.
    pub task_duration: Duration,
    /// How long clone/create tasks run.
    pub clone_duration: Duration,
    /// How long a contended lock is waited for before "got timeout".
    pub lock_timeout: Duration,
    /// Initial faults.
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            world: World::homelab(),
            token: "root@pam!cairn=5e1f0c1d-5a11-4b0b-9d6e-c0ffee000001".into(),
            password: "cairn-sim".into(),
            task_duration: Duration::from_millis(100),
            clone_duration: Duration::from_millis(400),
            lock_timeout: Duration::from_millis(50),
            faults: Faults::default(),
        }
    }
}

/// The simulator's state behind the kit: the world, tasks, tickets, VM event subscribers.
pub struct ProxmoxState {
    pub(crate) world: Mutex<World>,
    pub(crate) sim_faults: Mutex<SimFaults>,
    pub(crate) kit: Kit,
    pub(crate) vm_events: events::Subscribers,
    pub(crate) tickets: Mutex<BTreeMap<String, String>>,
    pub(crate) token: String,
    pub(crate) password: String,
    pub(crate) task_duration: Duration,
    pub(crate) clone_duration: Duration,
    pub(crate) lock_timeout: Duration,
    initial: World,
}

pub(crate) type Shared = ProxmoxState;

impl std::fmt::Debug for ProxmoxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxmoxState").finish_non_exhaustive()
    }
}

impl ProxmoxState {
    /// Counts one fault the simulator applied itself (`task`, `tamper`, `lock`).
    pub(crate) fn injected(&self, kind: &str) {
        self.kit.count_fault(kind);
    }

    /// Takes the out-of-band edits queued for `vmid`.
    pub(crate) fn take_tamper(&self, vmid: u32) -> Vec<Tamper> {
        let mut g = self.sim_faults.lock().expect("faults lock");
        let (mine, rest): (Vec<Tamper>, Vec<Tamper>) =
            g.tamper.drain(..).partition(|t| t.vmid == vmid);
        g.tamper = rest;
        mine
    }

    /// Takes one failure for a task of `kind`, if one is configured.
    pub(crate) fn take_task_fault(&self, kind: &str) -> Option<String> {
        let mut g = self.sim_faults.lock().expect("faults lock");
        let tf = g
            .fail_tasks
            .iter_mut()
            .find(|t| t.kind == kind && t.count > 0)?;
        tf.count -= 1;
        let msg = tf.message.clone();
        drop(g);
        self.injected("task");
        Some(msg)
    }

    /// VM lifecycle events from now on: a VM running for `boot_delay` is
    /// [`VmEvent::Booted`] (cloud-init done), then [`VmEvent::Stopped`] or
    /// [`VmEvent::Destroyed`]. VMs already running count from the subscription. Dropping the
    /// receiver unsubscribes.
    pub fn vm_events(&self, boot_delay: Duration) -> tokio::sync::mpsc::UnboundedReceiver<VmEvent> {
        self.vm_events.add(boot_delay)
    }

    /// A copy of the current world.
    pub fn world(&self) -> World {
        self.world.lock().expect("world").clone()
    }

    /// Mutates the world directly (out-of-band changes in tests).
    pub fn with_world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.world.lock().expect("world"))
    }
}

impl Simulator for ProxmoxState {
    fn route(&self, method: &Method, path: &str) -> Option<Route> {
        // Every request to the API counts: a served one under its route template, one
        // pveproxy would refuse with 501 under its own path.
        let segs = api::segments(path)?;
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let route = routes::route_of(method, &segs).map_or_else(
            || path.trim_start_matches("/api2/json").to_string(),
            str::to_string,
        );
        Some(Route::new(method, route))
    }

    fn dump_state(&self) -> Value {
        json!(*self.world.lock().expect("world"))
    }

    fn load_state(&self, state: Value) -> Result<(), String> {
        let w: World = serde_json::from_value(state).map_err(|e| e.to_string())?;
        *self.world.lock().expect("world") = w;
        Ok(())
    }

    /// The nodes' capacities: `{"nodes": {"pve": {"memory_total": <bytes>, "cpus": 48}}}`.
    fn capacities(&self) -> Value {
        json!({"nodes": self.world.lock().expect("world").nodes})
    }

    /// Changes node capacities; naming a node that does not exist adds it (with both
    /// `memory_total` and `cpus`), so a bench can spread a large world over many hosts.
    fn set_capacities(&self, changes: Value) -> Result<(), String> {
        let Value::Object(changes) = changes else {
            return Err("capacities must be a JSON object".into());
        };
        let mut w = self.world.lock().expect("world");
        let mut nodes = w.nodes.clone();
        for (k, v) in changes {
            if k != "nodes" {
                return Err(format!("unknown capacity {k:?}"));
            }
            let Value::Object(v) = v else {
                return Err("nodes must be an object of node name to capacities".into());
            };
            for (name, caps) in v {
                let mut merged = nodes
                    .get(&name)
                    .map(|n| json!(n))
                    .unwrap_or_else(|| json!({}));
                let Value::Object(caps) = caps else {
                    return Err(format!("node {name:?}: capacities must be an object"));
                };
                for (ck, cv) in caps {
                    if ck != "memory_total" && ck != "cpus" {
                        return Err(format!("node {name:?}: unknown capacity {ck:?}"));
                    }
                    merged[ck] = cv;
                }
                let node: world::Node =
                    serde_json::from_value(merged).map_err(|e| format!("node {name:?}: {e}"))?;
                if node.cpus == 0 || node.memory_total == 0 {
                    return Err(format!(
                        "node {name:?}: cpus and memory_total must be positive"
                    ));
                }
                nodes.insert(name, node);
            }
        }
        w.nodes = nodes;
        Ok(())
    }

    fn reset(&self) {
        *self.world.lock().expect("world") = self.initial.clone();
        *self.sim_faults.lock().expect("faults lock") = SimFaults::default();
        self.tickets.lock().expect("tickets").clear();
    }

    fn sim_faults(&self) -> Value {
        json!(*self.sim_faults.lock().expect("faults lock"))
    }

    fn set_sim_faults(&self, faults: Value) -> Result<(), String> {
        let f: SimFaults = if faults.is_null() {
            SimFaults::default()
        } else {
            serde_json::from_value(faults).map_err(|e| e.to_string())?
        };
        *self.sim_faults.lock().expect("faults lock") = f;
        Ok(())
    }
}

/// The simulator.
pub struct ProxmoxSim;

impl ProxmoxSim {
    /// Starts the simulator on `127.0.0.1:0` with a fresh self-signed certificate.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let cert = cairn_core::tls::SelfSigned::generate(&[]);
        let kit = Kit::default();
        let state = Arc::new(ProxmoxState {
            initial: config.world.clone(),
            world: Mutex::new(config.world),
            sim_faults: Mutex::default(),
            kit: kit.clone(),
            vm_events: events::Subscribers::default(),
            tickets: Mutex::new(BTreeMap::new()),
            token: config.token.clone(),
            password: config.password.clone(),
            task_duration: config.task_duration,
            clone_duration: config.clone_duration,
            lock_timeout: config.lock_timeout,
        });
        let faults: FaultConfig = config.faults.into();
        state
            .set_sim_faults(faults.sim.clone())
            .map_err(SimError::State)?;
        kit.set_faults(faults);
        events::spawn_watcher(Arc::downgrade(&state));
        let api = routes::router(state.clone());
        let handle = cairn_sim_kit::start(
            kit,
            state,
            Spec {
                name: "proxmox",
                tls: Some(cert),
                base_path: "",
                token: config.token,
                basic_auth: Some(("root@pam".into(), config.password)),
                api,
                control: Router::new(),
            },
        )
        .await?;
        let env = vec![
            ("PROXMOX_VE_ENDPOINT".to_string(), handle.endpoint.clone()),
            ("PROXMOX_VE_API_TOKEN".to_string(), handle.token.clone()),
            (
                "PROXMOX_VE_FINGERPRINT".to_string(),
                handle.fingerprint.clone().unwrap_or_default(),
            ),
        ];
        Ok(handle.with_env(env))
    }
}
