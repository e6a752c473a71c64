//! A pfSense REST API v2 simulator with a real data plane: an axum server
//! over HTTPS on 127.0.0.1 serving the paths the provider uses (and their plural forms),
//! and a Debian `haproxy` it renders, checks and reloads seamlessly on every HAProxy apply.
//!
//! ```no_run
//! # async fn demo() {
//! use cairn_pfsense_sim::{PfSenseSim, SimConfig};
//! let sim = PfSenseSim::start(SimConfig::default()).await.unwrap();
//! println!("{} key={} fp={}", sim.base_url, sim.api_key, sim.fingerprint);
//! # }
//! ```
//!
//! Behaviour: the package's envelope `{code, status, response_id, message, data}`,
//! `X-API-Key`, basic auth or a bearer token from `POST /api/v2/auth/jwt`, validation errors with the package's response ids, 404
//! `MODEL_OBJECT_NOT_FOUND`, IDs that are array indexes and renumber on delete, filters by
//! any field (`?name=…`), `limit`/`offset`, per-subsystem dirty flags and async apply
//! (`GET …/apply` → `{"applied": bool}`; a configuration `haproxy -c` rejects stays
//! unapplied and the running HAProxy keeps serving). Virtual IPs and every HAProxy
//! address are mapped into 127.0.0.0/8 with [`cairn_core::net::AddrMap`]; an address
//! that does not map into loopback makes the apply fail. The control API under `/_sim/` is
//! documented in [`control`].

pub mod api;
pub mod command;
pub mod control;
pub mod dataplane;
pub mod model;
pub mod render;
pub mod world;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use cairn_core::net::AddrMap;
use cairn_core::tls::{SelfSigned, TlsTrust};
use serde_json::json;

use dataplane::DataPlane;
use model::Subsystem;
pub use world::{Counters, Fault, World};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The API key clients send as `X-API-Key` (random when absent).
    pub api_key: Option<String>,
    /// Basic-auth user and password accepted besides the key.
    pub basic_auth: (String, String),
    /// How simulated addresses map into loopback (default `10.0.0.0/8=127.0.0.0/8`).
    pub addr_map: AddrMap,
    /// How long an apply takes before it is done (it is asynchronous, as on pfSense).
    pub apply_delay: Duration,
    /// The configuration to start with (empty by default).
    pub world: World,
    /// The `haproxy` binary (default: `CAIRN_HAPROXY_BIN`, else found on `PATH`).
    pub haproxy_bin: Option<std::path::PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            api_key: None,
            basic_auth: ("admin".into(), "pfsense".into()),
            addr_map: "10.0.0.0/8=127.0.0.0/8".parse().expect("valid map"),
            apply_delay: Duration::from_millis(100),
            world: World::new(),
            haproxy_bin: None,
        }
    }
}

/// Why a simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding, temp dir or TLS setup failed.
    #[error("pfSense simulator: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared state behind the HTTP handlers.
#[derive(Debug)]
pub struct SimState {
    pub(crate) world: Mutex<World>,
    pub(crate) counters: Mutex<Counters>,
    pub(crate) faults: Mutex<Vec<Fault>>,
    pub(crate) dataplane: DataPlane,
    pub(crate) last_apply_error: Mutex<Option<String>>,
    api_key: String,
    basic: String,
    map: AddrMap,
    apply_delay: Duration,
    seq: Mutex<BTreeMap<Subsystem, u64>>,
    tokens: Mutex<std::collections::HashSet<String>>,
}

impl SimState {
    pub(crate) fn count(&self, method: &Method, path: &str) {
        let mut c = self.counters.lock().expect("counters");
        *c.requests.entry(format!("{method} {path}")).or_default() += 1;
        if *method != Method::GET
            && path.starts_with("/api/v2/")
            && !path.starts_with("/api/v2/diagnostics/command_prompt")
        {
            c.writes += 1;
        }
    }

    pub(crate) fn authorized(&self, h: &HeaderMap) -> bool {
        let key = h.get("x-api-key").and_then(|v| v.to_str().ok());
        let basic = h
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "));
        let bearer = h
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        key == Some(self.api_key.as_str())
            || basic == Some(self.basic.as_str())
            || bearer.is_some_and(|t| self.tokens.lock().expect("tokens").contains(t))
    }

    /// Whether the request authenticated with basic auth (required for `/auth/jwt`).
    pub(crate) fn basic_auth(&self, h: &HeaderMap) -> bool {
        h.get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            == Some(self.basic.as_str())
    }

    /// Issues a bearer token (`POST /api/v2/auth/jwt`).
    pub(crate) fn issue_token(&self) -> String {
        let token = random_key();
        self.tokens.lock().expect("tokens").insert(token.clone());
        token
    }

    pub(crate) async fn injected_fault(&self, method: &Method, path: &str) -> Option<Response> {
        let fault = {
            let mut faults = self.faults.lock().expect("faults");
            let idx = faults.iter().position(|f| {
                path.starts_with(&f.path_prefix)
                    && f.method
                        .as_deref()
                        .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
            })?;
            let f = faults[idx].clone();
            if let Some(r) = &mut faults[idx].remaining {
                *r = r.saturating_sub(1);
                if *r == 0 {
                    faults.remove(idx);
                }
            }
            f
        };
        api::delay(fault.latency_ms).await;
        (fault.status != 0).then(|| {
            api::envelope(
                fault.status,
                fault.response_id.as_deref().unwrap_or("SIM_INJECTED_FAULT"),
                "Fault injected by the simulator.",
                json!([]),
            )
        })
    }

    pub(crate) fn mark_dirty(&self, sub: Subsystem) {
        self.world.lock().expect("world").set_dirty(sub, true);
        *self.seq.lock().expect("seq").entry(sub).or_default() += 1;
    }

    pub(crate) fn assign_server_id(&self, field: &str, obj: &mut serde_json::Value) {
        if field == "servers" {
            let mut w = self.world.lock().expect("world");
            obj["serverid"] = json!(w.next_server_id);
            w.next_server_id += 1;
        }
    }

    pub(crate) fn render_current(&self) -> Result<String, String> {
        let w = self.world.lock().expect("world").clone();
        let socket = self.dataplane.socket();
        let state_file = self.dataplane.state_file();
        render::render(
            &w,
            &self.map,
            &render::RenderPaths {
                socket: &socket,
                state_file: &state_file,
            },
        )
    }

    /// Performs an apply: for HAProxy, render → `haproxy -c` → seamless reload.
    pub(crate) async fn run_apply(&self, sub: Subsystem) {
        tokio::time::sleep(self.apply_delay).await;
        let seq = self.seq.lock().expect("seq").get(&sub).copied();
        if sub == Subsystem::Haproxy {
            let enabled =
                self.world.lock().expect("world").haproxy_settings["enable"] != json!(false);
            let result = if enabled {
                match self.render_current() {
                    Ok(cfg) => self.dataplane.reload(&cfg).await,
                    Err(e) => Err(e),
                }
            } else {
                self.dataplane.stop_all();
                Ok(())
            };
            if let Err(e) = result {
                tracing::warn!("simulated HAProxy apply failed: {e}");
                *self.last_apply_error.lock().expect("err") = Some(e);
                return;
            }
            *self.last_apply_error.lock().expect("err") = None;
        }
        if self.seq.lock().expect("seq").get(&sub).copied() == seq {
            self.world.lock().expect("world").set_dirty(sub, false);
        }
    }
}

/// The simulator.
#[derive(Debug)]
pub struct PfSenseSim;

impl PfSenseSim {
    /// Starts a simulator on `127.0.0.1:<free port>`; it stops (HAProxy included) when the
    /// returned handle is dropped.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let dir = tempfile::Builder::new()
            .prefix("cairn-pfsense-sim")
            .tempdir()?;
        let cert = SelfSigned::generate(&[]);
        let api_key = config.api_key.unwrap_or_else(random_key);
        let (user, pass) = &config.basic_auth;
        let state = Arc::new(SimState {
            world: Mutex::new(config.world),
            counters: Mutex::default(),
            faults: Mutex::default(),
            dataplane: DataPlane::new(dir.path().to_path_buf(), config.haproxy_bin.clone()),
            last_apply_error: Mutex::default(),
            api_key: api_key.clone(),
            basic: base64(format!("{user}:{pass}").as_bytes()),
            map: config.addr_map.clone(),
            apply_delay: config.apply_delay,
            seq: Mutex::default(),
            tokens: Mutex::default(),
        });
        let app = Router::new()
            .merge(control::routes())
            .fallback(api::api)
            .with_state(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let tls =
            axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cert.server_config()));
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, tls)?.handle(handle.clone());
        tokio::spawn(async move {
            if let Err(e) = server.serve(app.into_make_service()).await {
                tracing::error!("pfSense simulator stopped: {e}");
            }
        });
        Ok(SimHandle {
            base_url: format!("https://127.0.0.1:{}", addr.port()),
            addr,
            api_key,
            fingerprint: cert.fingerprint.clone(),
            cert_pem: cert.cert_pem.clone(),
            addr_map: config.addr_map,
            state,
            server: handle,
            dir,
        })
    }
}

/// A running simulator. Dropping it stops the HTTP server and kills every HAProxy process
/// it started.
#[derive(Debug)]
pub struct SimHandle {
    /// `https://127.0.0.1:<port>`.
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// The API key (`X-API-Key`).
    pub api_key: String,
    /// SHA-256 fingerprint of the server certificate (`AA:BB:…`).
    pub fingerprint: String,
    /// The server certificate, PEM.
    pub cert_pem: String,
    /// How simulated addresses map into loopback.
    pub addr_map: AddrMap,
    state: Arc<SimState>,
    server: axum_server::Handle<SocketAddr>,
    dir: tempfile::TempDir,
}

impl SimHandle {
    /// TLS trust that pins this simulator's certificate.
    pub fn trust(&self) -> TlsTrust {
        TlsTrust::Fingerprint(self.fingerprint.clone())
    }

    /// The request counters.
    pub fn counters(&self) -> Counters {
        self.state.counters.lock().expect("counters").clone()
    }

    /// A copy of the configuration.
    pub fn world(&self) -> World {
        self.state.world.lock().expect("world").clone()
    }

    /// Zeroes the request counters.
    pub fn reset_counters(&self) {
        *self.state.counters.lock().expect("counters") = Counters::default();
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        *self.state.faults.lock().expect("faults") = faults;
    }

    /// Pids of the HAProxy processes alive now.
    pub fn haproxy_pids(&self) -> Vec<u32> {
        self.state.dataplane.pids()
    }

    /// The live `haproxy.cfg`.
    pub fn haproxy_config(&self) -> String {
        std::fs::read_to_string(self.state.dataplane.config_file()).unwrap_or_default()
    }

    /// The reason the last HAProxy apply failed, if it did.
    pub fn last_apply_error(&self) -> Option<String> {
        self.state.last_apply_error.lock().expect("err").clone()
    }

    /// Sends a runtime API command to the simulator's HAProxy stats socket.
    pub async fn haproxy_runtime(&self, cmd: &str) -> Result<String, String> {
        self.state.dataplane.runtime(cmd).await
    }

    /// The temp dir holding the HAProxy files.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Environment variables that point the provider at this simulator.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PFSENSE_URL".into(), self.base_url.clone()),
            ("PFSENSE_API_KEY".into(), self.api_key.clone()),
            ("PFSENSE_TLS_FINGERPRINT".into(), self.fingerprint.clone()),
            (
                cairn_core::net::ADDR_MAP_ENV.into(),
                self.addr_map.to_string(),
            ),
            (cairn_core::net::LOOPBACK_ONLY_ENV.into(), "1".into()),
        ]
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.server.shutdown();
        self.state.dataplane.stop_all();
    }
}

fn random_key() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .elapsed()
                .map_or(0, |d| d.as_nanos()),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// Standard base64 with padding (for the basic-auth comparison).
pub(crate) fn base64(input: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(super::base64(b"admin:pfsense"), "YWRtaW46cGZzZW5zZQ==");
        assert_eq!(super::base64(b"foob"), "Zm9vYg==");
        assert_eq!(super::base64(b"foo"), "Zm9v");
    }
}
