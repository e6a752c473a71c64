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
//! file 'nodes/N/qemu-server/ID.conf' does not exist`; unknown routes and bodies on GET are
//! 501. Async work returns a UPID whose task stops after a configurable time, with
//! `exitstatus` only once stopped. A clone holds `lock: clone` until its task ends; a second
//! clone of the same source while one runs fails with `can't lock file
//! '/var/lock/qemu-server/lock-<source>.conf' - got timeout`. Writes accept a `digest` and
//! fail with a checksum mismatch when the config changed. Tags are normalised (lowercase,
//! dedup, sorted, `;`); `sshkeys` must be percent-encoded; changes to a running VM that need
//! a restart go to the pending config (returned by `GET config` unless `current=1`).
//!
//! # Control API (under `/_sim/`, no auth, never counted)
//! - `GET /_sim/counters` → `{"requests": {"GET /cluster/resources": 1, …}, "total": n, "writes": n,
//!   "injected": {"lock": n, "error": n, "task": n}}`;
//!   `DELETE /_sim/counters` resets them.
//! - `GET /_sim/faults`, `PUT /_sim/faults` with a [`Faults`] JSON object.
//! - `GET /_sim/state` dumps the [`World`] as JSON; `PUT /_sim/state` loads one.
//!
//! # Data plane
//! With [`SimConfig::apiserver`] set, every running VM with an `ipconfig0` address serves a
//! fake apiserver `GET /readyz` over HTTPS on its loopback-mapped address (10.0.20.110 →
//! 127.0.20.110:6443): 503 until the boot delay has passed since the VM started, then 200;
//! or never, for VMs listed in `never_ready`.
//!
//! # Rust API
//! [`ProxmoxSim::start`] takes a [`SimConfig`] and returns a [`SimHandle`] with the base URL,
//! the API token, the certificate (PEM and SHA-256 fingerprint); dropping it stops the server.

mod api;
mod apiserver;
mod control;
mod http;
mod propstr;
pub mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde::{Deserialize, Serialize};

pub use apiserver::ApiserverConfig;
pub use world::World;

/// Faults to inject, deterministic for a given seed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Faults {
    /// Seed of the fault RNG (reseeded whenever faults are set).
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
    /// Fake apiservers on running VMs' mapped addresses (off when `None`).
    pub apiserver: Option<ApiserverConfig>,
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
            apiserver: None,
        }
    }
}

/// State shared by all requests.
pub(crate) struct Shared {
    pub world: Mutex<World>,
    pub faults: Mutex<(Faults, u64)>,
    pub counters: Mutex<BTreeMap<String, u64>>,
    pub injected: Mutex<BTreeMap<String, u64>>,
    pub apiservers: apiserver::Apiservers,
    pub tickets: Mutex<BTreeMap<String, String>>,
    pub token: String,
    pub password: String,
    pub task_duration: Duration,
    pub clone_duration: Duration,
    pub lock_timeout: Duration,
}

impl Shared {
    /// A deterministic random number in [0, 1) from the fault RNG (xorshift64*).
    pub fn roll(&self) -> f64 {
        let mut g = self.faults.lock().expect("faults lock");
        let mut x = g.1.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        g.1 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn faults(&self) -> Faults {
        self.faults.lock().expect("faults lock").0.clone()
    }

    pub fn set_faults(&self, f: Faults) {
        let seed = f.seed ^ 0x5DEE_CE66_D1CE_4E5B;
        *self.faults.lock().expect("faults lock") = (f, seed);
    }

    /// Counts one injected fault of a kind (`latency`, `error`, `lock`, `task`).
    pub fn injected(&self, kind: &str) {
        *self
            .injected
            .lock()
            .expect("injected")
            .entry(kind.to_string())
            .or_default() += 1;
    }

    /// Takes the out-of-band edits queued for `vmid`.
    pub fn take_tamper(&self, vmid: u32) -> Vec<Tamper> {
        let mut g = self.faults.lock().expect("faults lock");
        let (mine, rest): (Vec<Tamper>, Vec<Tamper>) =
            g.0.tamper.drain(..).partition(|t| t.vmid == vmid);
        g.0.tamper = rest;
        mine
    }

    /// Takes one failure for a task of `kind`, if one is configured.
    pub fn take_task_fault(&self, kind: &str) -> Option<String> {
        let mut g = self.faults.lock().expect("faults lock");
        let tf =
            g.0.fail_tasks
                .iter_mut()
                .find(|t| t.kind == kind && t.count > 0)?;
        tf.count -= 1;
        let msg = tf.message.clone();
        drop(g);
        self.injected("task");
        Some(msg)
    }
}

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    /// `https://127.0.0.1:PORT/api2/json`.
    pub base_url: String,
    /// `https://127.0.0.1:PORT` (what `PROXMOX_VE_ENDPOINT` holds).
    pub endpoint: String,
    /// The socket address.
    pub addr: SocketAddr,
    /// The API token `user@realm!tokenid=secret`.
    pub token: String,
    /// `root@pam` password for ticket auth.
    pub password: String,
    /// SHA-256 fingerprint of the server certificate (`AA:BB:…`).
    pub fingerprint: String,
    /// The server certificate, PEM (usable as a CA bundle).
    pub cert_pem: String,
    shared: Arc<Shared>,
    server: axum_server::Handle<SocketAddr>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.base_url)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// The environment that points the provider's `from_env` at this simulator
    /// (`PROXMOX_VE_ENDPOINT`, `PROXMOX_VE_API_TOKEN`, `PROXMOX_VE_FINGERPRINT`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PROXMOX_VE_ENDPOINT", self.endpoint.clone()),
            ("PROXMOX_VE_API_TOKEN", self.token.clone()),
            ("PROXMOX_VE_FINGERPRINT", self.fingerprint.clone()),
        ]
    }

    /// The CA (PEM) that signs every fake apiserver certificate: gates trust it as a CA file.
    pub fn apiserver_ca_pem(&self) -> String {
        self.shared.apiservers.ca_pem().to_string()
    }

    /// Request counters by `METHOD /route`.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.shared.counters.lock().expect("counters").clone()
    }

    /// Number of non-GET requests to the real API so far.
    pub fn writes(&self) -> u64 {
        self.counters()
            .iter()
            .filter(|(k, _)| !k.starts_with("GET "))
            .map(|(_, n)| n)
            .sum()
    }

    /// Faults injected so far by kind (`error`, `lock`, `task`).
    pub fn injected(&self) -> BTreeMap<String, u64> {
        self.shared.injected.lock().expect("injected").clone()
    }

    /// Where the fake apiserver of VM `vmid` listens, once the VM runs (needs
    /// [`SimConfig::apiserver`]).
    pub fn apiserver_addr(&self, vmid: u32) -> Option<SocketAddr> {
        self.shared.apiservers.addr(vmid)
    }

    /// Resets the request counters.
    pub fn reset_counters(&self) {
        self.shared.counters.lock().expect("counters").clear();
    }

    /// Replaces the fault configuration.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// A copy of the current world.
    pub fn world(&self) -> World {
        self.shared.world.lock().expect("world").clone()
    }

    /// Mutates the world directly (out-of-band changes in tests).
    pub fn with_world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.shared.world.lock().expect("world"))
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.server.shutdown();
        self.shared.apiservers.stop_all();
    }
}

/// The simulator.
pub struct ProxmoxSim;

impl ProxmoxSim {
    /// Starts the simulator on `127.0.0.1:0` with a fresh self-signed certificate.
    pub async fn start(config: SimConfig) -> std::io::Result<SimHandle> {
        let cert = cairn_core::tls::SelfSigned::generate(&[]);
        let shared = Arc::new(Shared {
            world: Mutex::new(config.world),
            faults: Mutex::new((Faults::default(), 1)),
            counters: Mutex::new(BTreeMap::new()),
            injected: Mutex::new(BTreeMap::new()),
            apiservers: Default::default(),
            tickets: Mutex::new(BTreeMap::new()),
            token: config.token.clone(),
            password: config.password.clone(),
            task_duration: config.task_duration,
            clone_duration: config.clone_duration,
            lock_timeout: config.lock_timeout,
        });
        shared.set_faults(config.faults);
        if let Some(api) = config.apiserver {
            apiserver::spawn_reconciler(Arc::downgrade(&shared), api);
        }
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let tls =
            axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cert.server_config()));
        let server = axum_server::Handle::new();
        let srv = axum_server::from_tcp_rustls(listener, tls)?.handle(server.clone());
        tokio::spawn(async move {
            if let Err(e) = srv.serve(app.into_make_service()).await {
                tracing::error!(error = %e, "proxmox simulator stopped");
            }
        });
        tracing::info!(%addr, fingerprint = %cert.fingerprint, "proxmox simulator listening");
        let endpoint = format!("https://{addr}");
        Ok(SimHandle {
            base_url: format!("{endpoint}/api2/json"),
            endpoint,
            addr,
            token: config.token,
            password: config.password,
            fingerprint: cert.fingerprint,
            cert_pem: cert.cert_pem,
            shared,
            server,
        })
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if let Some(rest) = path.strip_prefix("/_sim/") {
        return control::handle(&shared, &method, rest, &body);
    }
    api::handle(&shared, method, &path, uri.query(), &headers, &body).await
}
