//! [`SimHandle`]: a running simulator (endpoint, credentials, TLS fingerprint, environment,
//! the control API as methods), and the server behind it, stopped on drop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use cairn_core::tls::TlsTrust;
use serde_json::{Value, json};

use crate::{Counters, FaultConfig, Kit, Shared, SimError, Simulator, Spec, control, faults};

/// A running simulator; it stops when dropped. Dereferences to the simulator's own state
/// type `S` for what only that simulator has (its world, its data plane).
pub struct SimHandle<S: Simulator> {
    /// What clients are pointed at: `http://127.0.0.1:<port>/v1` (Hetzner),
    /// `https://127.0.0.1:<port>` (Proxmox, pfSense).
    pub endpoint: String,
    /// The listening address.
    pub addr: SocketAddr,
    /// The credential clients send (API token or key).
    pub token: String,
    /// User and password the simulator also accepts, where it does.
    pub basic_auth: Option<(String, String)>,
    /// SHA-256 fingerprint of the server certificate (`AA:BB:…`), when it speaks TLS.
    pub fingerprint: Option<String>,
    /// The server certificate (PEM, usable as a CA file), when it speaks TLS.
    pub cert_pem: Option<String>,
    env: BTreeMap<String, String>,
    shared: Shared,
    sim: Arc<S>,
    server: axum_server::Handle<SocketAddr>,
}

impl<S: Simulator> std::fmt::Debug for SimHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("endpoint", &self.endpoint)
            .field("token", &"<redacted>")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl<S: Simulator> std::ops::Deref for SimHandle<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.sim
    }
}

impl<S: Simulator> SimHandle<S> {
    /// Sets the environment that points cairn's CLI at this simulator (done by the simulator
    /// at start).
    pub fn with_env<K: Into<String>>(mut self, env: impl IntoIterator<Item = (K, String)>) -> Self {
        self.env = env.into_iter().map(|(k, v)| (k.into(), v)).collect();
        self
    }

    /// The environment that points cairn's CLI at this simulator: endpoint, credentials, TLS
    /// fingerprint, and for simulators with a data plane the loopback address map and switch.
    pub fn env(&self) -> BTreeMap<String, String> {
        self.env.clone()
    }

    /// `scheme://127.0.0.1:<port>`, the root of the control API (`/_sim/…`).
    pub fn root_url(&self) -> String {
        let scheme = if self.fingerprint.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// TLS trust that pins this simulator's certificate (`None` for plain HTTP).
    pub fn trust(&self) -> Option<TlsTrust> {
        self.fingerprint.clone().map(TlsTrust::Fingerprint)
    }

    /// Endpoint, token and fingerprint as JSON (what `stacks sim` prints per simulator).
    pub fn describe(&self) -> Value {
        json!({"endpoint": self.endpoint, "token": self.token, "fingerprint": self.fingerprint})
    }

    /// A snapshot of the request counters.
    pub fn counters(&self) -> Counters {
        self.shared.kit.counters()
    }

    /// Zeroes the request counters.
    pub fn reset_counters(&self) {
        self.shared.kit.reset_counters();
    }

    /// The fault settings, the simulator's own part under `sim`.
    pub fn faults(&self) -> FaultConfig {
        control::current_faults(&self.shared)
    }

    /// Replaces the fault settings and restarts the generator from their seed.
    ///
    /// # Panics
    /// If the simulator-specific part (`sim`) is not valid for this simulator.
    pub fn set_faults(&self, faults: impl Into<FaultConfig>) {
        if let Err(e) = control::apply_faults(&self.shared, faults.into()) {
            panic!("invalid simulator-specific faults: {e}");
        }
    }

    /// Dumps the whole state as JSON (the `/_sim/state` format).
    pub fn dump_state(&self) -> Value {
        self.sim.dump_state()
    }

    /// Loads a state (the `/_sim/state` format).
    pub fn load_state(&self, state: Value) -> Result<(), SimError> {
        self.sim.load_state(state).map_err(SimError::State)
    }

    /// Back to the initial state, counters zeroed, no faults, default capacities.
    pub fn reset(&self) {
        control::reset_all(&self.shared);
    }

    /// Capacities and budgets as JSON.
    pub fn capacities(&self) -> Value {
        self.sim.capacities()
    }

    /// Changes the capacities named in `changes`.
    pub fn set_capacities(&self, changes: Value) -> Result<(), SimError> {
        self.sim.set_capacities(changes).map_err(SimError::State)
    }

    /// The kit state (counters, generator) this simulator shares with its handlers.
    pub fn kit(&self) -> &Kit {
        &self.shared.kit
    }
}

impl<S: Simulator> Drop for SimHandle<S> {
    fn drop(&mut self) {
        self.server.shutdown();
        self.sim.shutdown();
    }
}

pub(crate) async fn start<S: Simulator>(
    kit: Kit,
    sim: Arc<S>,
    spec: Spec,
) -> Result<SimHandle<S>, SimError> {
    let shared = Shared {
        kit,
        sim: sim.clone(),
    };
    let app = Router::new()
        .nest("/_sim", control::routes(shared.clone()).merge(spec.control))
        .merge(spec.api)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            faults::layer,
        ));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let server = axum_server::Handle::new();
    let name = spec.name;
    let (scheme, fingerprint, cert_pem) = match spec.tls {
        Some(cert) => {
            let tls =
                axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(cert.server_config()));
            let srv = axum_server::from_tcp_rustls(listener, tls)?.handle(server.clone());
            tokio::spawn(async move {
                if let Err(e) = srv.serve(app.into_make_service()).await {
                    tracing::error!(error = %e, "{name} simulator stopped");
                }
            });
            ("https", Some(cert.fingerprint), Some(cert.cert_pem))
        }
        None => {
            let srv = axum_server::from_tcp(listener)?.handle(server.clone());
            tokio::spawn(async move {
                if let Err(e) = srv.serve(app.into_make_service()).await {
                    tracing::error!(error = %e, "{name} simulator stopped");
                }
            });
            ("http", None, None)
        }
    };
    tracing::info!(%addr, "{name} simulator listening");
    Ok(SimHandle {
        endpoint: format!("{scheme}://{addr}{}", spec.base_path),
        addr,
        token: spec.token,
        basic_auth: spec.basic_auth,
        fingerprint,
        cert_pem,
        env: BTreeMap::new(),
        shared,
        sim,
        server,
    })
}
