//! A pfSense REST API v2 simulator with a real data plane: an axum server
//! over HTTPS on 127.0.0.1 serving the paths the provider uses (and their plural forms),
//! and a Debian `haproxy` it renders, checks and reloads seamlessly on every HAProxy apply.
//!
//! ```no_run
//! # async fn demo() {
//! use cairn_pfsense_sim::{PfSenseSim, SimConfig};
//! let sim = PfSenseSim::start(SimConfig::default()).await.unwrap();
//! println!("{} key={} fp={:?}", sim.endpoint, sim.token, sim.fingerprint);
//! # }
//! ```
//!
//! Behaviour: the package's envelope `{code, status, response_id, message, data}`,
//! `X-API-Key`, basic auth or a bearer token from `POST /api/v2/auth/jwt`, validation errors with the package's response ids, 404
//! `MODEL_OBJECT_NOT_FOUND`, IDs that are array indexes and renumber on delete, filters by
//! any field (`?name=…`), `limit`/`offset`, per-subsystem dirty flags and async apply
//! (`GET …/apply` → `{"applied": bool}`: a write leaves its subsystem pending until an
//! apply of it succeeds; a configuration `haproxy -c` rejects, or an apply failed by the
//! simulator's own fault ([`faults`]), stays pending and the running HAProxy keeps serving
//! what was last applied). Virtual IPs and every HAProxy
//! address are mapped into 127.0.0.0/8 with [`cairn_core::net::AddrMap`]; an address
//! that does not map into loopback makes the apply fail. The control API under `/_sim/` is
//! the kit's (`cairn_sim_kit`; it needs the API key like the REST API), plus `GET
//! /_sim/haproxy` ([`control`]); `/_sim/capacities` holds [`Capacities`] (pf's table-entries
//! limit: a firewall apply over it fails to load the rules and stays dirty). Counters count
//! every request by `METHOD /path`; writes are POST/PATCH/PUT/DELETE under `/api/v2` except
//! `command_prompt`. [`api_error`] builds an injected error in the package's envelope.
//! Requests are routed by axum ([`api::router`]): an unknown endpoint is 404
//! `ENDPOINT_NOT_FOUND`, a method an endpoint does not serve 405 `METHOD_NOT_ALLOWED`, both
//! after authentication. HAProxy's files live in a scratch directory named after this
//! process ([`cairn_sim_kit::workdir()`]), swept by the next simulator if the process is killed.

pub mod api;
pub mod command;
pub mod control;
pub mod dataplane;
pub mod faults;
pub mod model;
pub mod render;
pub mod world;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method};
use cairn_core::net::AddrMap;
use cairn_core::tls::SelfSigned;
use cairn_sim_kit::{Fault, Kit, Route, Simulator, Spec};
use serde_json::{Value, json};

pub use cairn_sim_kit::{Counters, FaultConfig, FaultRule, SimError};
use dataplane::DataPlane;
use model::Subsystem;
pub use world::World;

/// A running pfSense simulator.
pub type SimHandle = cairn_sim_kit::SimHandle<SimState>;

/// An injected error in the package's envelope (`{code, status, response_id, message, data}`).
pub fn api_error(status: u16, response_id: &str) -> Fault {
    let text = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
        .to_ascii_lowercase();
    Fault::error(
        status,
        json!({"code": status, "status": text, "response_id": response_id,
               "message": "Fault injected by the simulator.", "data": []}),
    )
}

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

/// Limits of the simulated firewall, the JSON of `/_sim/capacities`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capacities {
    /// "Firewall Maximum Table Entries" (pf's `table-entries` limit), 400,000 by default as
    /// on pfSense: a firewall apply whose aliases hold more entries in total fails to load
    /// the rules, and the firewall stays dirty.
    pub max_table_entries: u64,
}

impl Default for Capacities {
    fn default() -> Self {
        Capacities {
            max_table_entries: 400_000,
        }
    }
}

/// Shared state behind the HTTP handlers.
#[derive(Debug)]
pub struct SimState {
    pub(crate) world: Mutex<World>,
    initial: World,
    pub(crate) dataplane: DataPlane,
    pub(crate) last_apply_error: Mutex<Option<String>>,
    api_key: String,
    basic: String,
    map: AddrMap,
    apply_delay: Duration,
    seq: Mutex<BTreeMap<Subsystem, u64>>,
    faults: faults::Faults,
    tokens: Mutex<std::collections::HashSet<String>>,
    dir: cairn_sim_kit::WorkDir,
    capacities: Mutex<Capacities>,
}

impl SimState {
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

    /// Whether the aliases fit pf's table-entries limit; the error is the filter reload's.
    fn check_tables(&self) -> Result<(), String> {
        let limit = self
            .capacities
            .lock()
            .expect("capacities")
            .max_table_entries;
        let w = self.world.lock().expect("world");
        let mut total = 0u64;
        for (i, alias) in w.list(model::Collection::Aliases).iter().enumerate() {
            total += match &alias["address"] {
                Value::Array(a) => a.len() as u64,
                Value::String(s) => s.split_whitespace().count() as u64,
                _ => 0,
            };
            if total > limit {
                let name = alias["name"].as_str().unwrap_or_default();
                let line = 12 + i;
                return Err(format!(
                    "There were error(s) loading the rules: /tmp/rules.debug:{line}: cannot define table {name}: Cannot allocate memory - The line in question reads [{line}]: table <{name}> persist file \"/var/db/aliastables/{name}.txt\""
                ));
            }
        }
        Ok(())
    }

    /// Performs an apply: for HAProxy, render → `haproxy -c` → seamless reload; for the
    /// firewall, the aliases checked against the table-entries limit.
    pub(crate) async fn run_apply(&self, sub: Subsystem) {
        tokio::time::sleep(self.apply_delay).await;
        let seq = self.seq.lock().expect("seq").get(&sub).copied();
        if let Some(why) = self.faults.take_apply_failure(sub) {
            tracing::warn!(?sub, "simulated apply failed: {why}");
            if sub == Subsystem::Haproxy {
                *self.last_apply_error.lock().expect("err") = Some(why);
            }
            return;
        }
        if sub == Subsystem::Firewall {
            if let Err(e) = self.check_tables() {
                tracing::warn!("simulated firewall apply failed: {e}");
                *self.last_apply_error.lock().expect("err") = Some(e);
                return;
            }
            *self.last_apply_error.lock().expect("err") = None;
        }
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

impl SimState {
    /// A copy of the configuration.
    pub fn world(&self) -> World {
        self.world.lock().expect("world").clone()
    }

    /// The scratch directory (HAProxy's configuration, socket and logs), removed when the
    /// simulator stops, or by the next simulator to start if this process died first.
    pub fn workdir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Pids of the HAProxy processes alive now.
    pub fn haproxy_pids(&self) -> Vec<u32> {
        self.dataplane.pids()
    }

    /// The live `haproxy.cfg`.
    pub fn haproxy_config(&self) -> String {
        std::fs::read_to_string(self.dataplane.config_file()).unwrap_or_default()
    }

    /// The reason the last HAProxy or firewall apply failed, if it did.
    pub fn last_apply_error(&self) -> Option<String> {
        self.last_apply_error.lock().expect("err").clone()
    }

    /// Sends a runtime API command to the simulator's HAProxy stats socket.
    pub async fn haproxy_runtime(&self, cmd: &str) -> Result<String, String> {
        self.dataplane.runtime(cmd).await
    }

    /// The temp dir holding the HAProxy files.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// How simulated addresses map into loopback.
    pub fn addr_map(&self) -> &AddrMap {
        &self.map
    }

    fn load(&self, w: World) {
        let mut world = self.world.lock().expect("world");
        *world = w;
        for s in [
            Subsystem::Haproxy,
            Subsystem::VirtualIp,
            Subsystem::DnsResolver,
            Subsystem::Firewall,
        ] {
            world.set_dirty(s, true);
        }
    }
}

impl Simulator for SimState {
    fn route(&self, method: &Method, path: &str) -> Option<Route> {
        Some(Route {
            route: path.to_string(),
            write: *method != Method::GET
                && path.starts_with("/api/v2/")
                && !path.starts_with("/api/v2/diagnostics/command_prompt"),
        })
    }

    fn dump_state(&self) -> Value {
        json!(*self.world.lock().expect("world"))
    }

    /// Loads a dump; every subsystem is marked dirty (apply to take effect).
    fn load_state(&self, state: Value) -> Result<(), String> {
        let w: World = serde_json::from_value(state).map_err(|e| e.to_string())?;
        self.load(w);
        Ok(())
    }

    fn reset(&self) {
        self.load(self.initial.clone());
        self.faults.set(faults::SimFaults::default());
        *self.capacities.lock().expect("capacities") = Capacities::default();
    }

    fn sim_faults(&self) -> Value {
        json!(self.faults.get())
    }

    /// `{"fail_applies": [{"subsystem": "haproxy", "count": 1}]}` (see [`faults`]).
    fn set_sim_faults(&self, faults: Value) -> Result<(), String> {
        let f = if faults.is_null() {
            faults::SimFaults::default()
        } else {
            serde_json::from_value(faults).map_err(|e| e.to_string())?
        };
        self.faults.set(f);
        Ok(())
    }

    fn capacities(&self) -> Value {
        json!(*self.capacities.lock().expect("capacities"))
    }

    fn set_capacities(&self, changes: Value) -> Result<(), String> {
        let Value::Object(changes) = changes else {
            return Err("capacities must be a JSON object".into());
        };
        let mut cur = self.capacities.lock().expect("capacities");
        let mut merged = json!(*cur);
        for (k, v) in changes {
            merged[k] = v;
        }
        *cur = serde_json::from_value(merged).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn control_allowed(&self, headers: &HeaderMap) -> bool {
        self.authorized(headers)
    }

    fn shutdown(&self) {
        self.dataplane.stop_all();
        cairn_sim_kit::workdir::sweep_dead(WORKDIR_PREFIX);
    }
}

/// The name every scratch directory of this simulator starts with (in the temp dir).
const WORKDIR_PREFIX: &str = "cairn-pfsense-sim";

/// The simulator.
#[derive(Debug)]
pub struct PfSenseSim;

impl PfSenseSim {
    /// Starts a simulator on `127.0.0.1:<free port>`; it stops (HAProxy included) when the
    /// returned handle is dropped.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let dir = cairn_sim_kit::workdir(WORKDIR_PREFIX)?;
        let cert = SelfSigned::generate(&[]);
        let api_key = config.api_key.unwrap_or_else(random_key);
        let (user, pass) = &config.basic_auth;
        let state = Arc::new(SimState {
            initial: config.world.clone(),
            world: Mutex::new(config.world),
            dataplane: DataPlane::new(dir.path().to_path_buf(), config.haproxy_bin.clone()),
            last_apply_error: Mutex::default(),
            api_key: api_key.clone(),
            basic: base64(format!("{user}:{pass}").as_bytes()),
            map: config.addr_map.clone(),
            apply_delay: config.apply_delay,
            seq: Mutex::default(),
            faults: faults::Faults::default(),
            tokens: Mutex::default(),
            dir,
            capacities: Mutex::default(),
        });
        let api = api::router(state.clone());
        let handle = cairn_sim_kit::start(
            Kit::default(),
            state.clone(),
            Spec {
                name: "pfsense",
                tls: Some(cert),
                base_path: "",
                token: api_key,
                basic_auth: Some(config.basic_auth.clone()),
                api,
                control: control::routes(state),
            },
        )
        .await?;
        let env = [
            ("PFSENSE_URL", handle.endpoint.clone()),
            ("PFSENSE_API_KEY", handle.token.clone()),
            (
                "PFSENSE_TLS_FINGERPRINT",
                handle.fingerprint.clone().unwrap_or_default(),
            ),
            (cairn_core::net::ADDR_MAP_ENV, config.addr_map.to_string()),
            (cairn_core::net::LOOPBACK_ONLY_ENV, "1".into()),
        ];
        Ok(handle.with_env(env))
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
