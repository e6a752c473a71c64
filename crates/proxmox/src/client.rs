//! The Proxmox VE HTTP client: token or ticket auth, TLS via [`TlsTrust`], the `{"data"}`
//! envelope (including `null`), errors from the reason phrase, retries of "can't lock file
//! … got timeout" with capped backoff, UPID task polling, waiting for config locks, and
//! per-node write serialisation. It implements `proxmox_api::client::Client`, so the
//! generated typed endpoints of the `proxmox-api` crate run over it where their types are
//! right (see `api.rs` for the parts replaced).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_core::tls::{self, TlsTrust};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Environment variable with the endpoint, e.g. `https://pve.lan:8006`.
pub const ENDPOINT_ENV: &str = "PROXMOX_VE_ENDPOINT";
/// Environment variable with the API token `user@realm!tokenid=secret`.
pub const TOKEN_ENV: &str = "PROXMOX_VE_API_TOKEN";
/// Ticket auth alternative: user (`root@pam`).
pub const USERNAME_ENV: &str = "PROXMOX_VE_USERNAME";
/// Ticket auth alternative: password.
pub const PASSWORD_ENV: &str = "PROXMOX_VE_PASSWORD";
/// A PEM file to trust (CA or the server's own certificate).
pub const CA_FILE_ENV: &str = "PROXMOX_VE_CA_FILE";
/// A pinned SHA-256 certificate fingerprint.
pub const FINGERPRINT_ENV: &str = "PROXMOX_VE_FINGERPRINT";
/// `1` turns certificate checks off (warns).
pub const INSECURE_ENV: &str = "PROXMOX_VE_INSECURE";

/// How to authenticate. Secrets never appear in `Debug` output.
#[derive(Clone)]
pub enum Auth {
    /// API token `user@realm!tokenid=secret`.
    Token(String),
    /// Ticket auth with user and password.
    Ticket {
        /// `user@realm`.
        user: String,
        /// The password.
        password: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Token(t) => {
                let id = t.split_once('=').map_or("?", |(id, _)| id);
                write!(f, "Token({id}=<redacted>)")
            }
            Auth::Ticket { user, .. } => write!(f, "Ticket({user}, <redacted>)"),
        }
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://host:8006` (with or without `/api2/json`).
    pub endpoint: String,
    /// Credentials.
    pub auth: Auth,
    /// Certificate trust.
    pub trust: TlsTrust,
    /// How many writes may run at once per node (1 = serialised, the default).
    pub node_write_concurrency: usize,
    /// How many config reads observe runs at once.
    pub observe_concurrency: usize,
    /// Pause between task status polls.
    pub poll_interval: Duration,
    /// Give up waiting for a task or a lock after this long.
    pub task_timeout: Duration,
    /// Attempts for "can't lock file" and transient errors.
    pub retries: u32,
    /// First backoff delay (doubles, capped at 2 s).
    pub backoff: Duration,
}

/// Why a configuration could not be built from the environment.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is missing.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// The token has the wrong shape.
    #[error("{TOKEN_ENV} must look like user@realm!tokenid=secret")]
    BadToken,
}

impl ClientConfig {
    /// A configuration with defaults for everything but endpoint, auth and trust.
    pub fn new(endpoint: impl Into<String>, auth: Auth, trust: TlsTrust) -> Self {
        ClientConfig {
            endpoint: endpoint.into(),
            auth,
            trust,
            node_write_concurrency: 1,
            observe_concurrency: 8,
            poll_interval: Duration::from_millis(500),
            task_timeout: Duration::from_secs(600),
            retries: 6,
            backoff: Duration::from_millis(200),
        }
    }

    /// Reads `PROXMOX_VE_ENDPOINT`, `PROXMOX_VE_API_TOKEN` (or `PROXMOX_VE_USERNAME` +
    /// `PROXMOX_VE_PASSWORD`) and the trust (`PROXMOX_VE_CA_FILE`, `PROXMOX_VE_FINGERPRINT`,
    /// or `PROXMOX_VE_INSECURE=1`; default: the CA file must be given).
    pub fn from_env() -> Result<Self, ConfigError> {
        let endpoint =
            std::env::var(ENDPOINT_ENV).map_err(|_| ConfigError::Missing(ENDPOINT_ENV))?;
        let auth = match std::env::var(TOKEN_ENV) {
            Ok(t) => {
                if !t.contains('!') || !t.contains('=') || !t.contains('@') {
                    return Err(ConfigError::BadToken);
                }
                Auth::Token(t)
            }
            Err(_) => Auth::Ticket {
                user: std::env::var(USERNAME_ENV).map_err(|_| ConfigError::Missing(TOKEN_ENV))?,
                password: std::env::var(PASSWORD_ENV)
                    .map_err(|_| ConfigError::Missing(PASSWORD_ENV))?,
            },
        };
        let trust = if let Ok(f) = std::env::var(FINGERPRINT_ENV) {
            TlsTrust::Fingerprint(f)
        } else if let Ok(p) = std::env::var(CA_FILE_ENV) {
            TlsTrust::CaFile(p.into())
        } else if std::env::var(INSECURE_ENV).is_ok_and(|v| v == "1") {
            TlsTrust::Insecure
        } else {
            return Err(ConfigError::Missing(FINGERPRINT_ENV));
        };
        Ok(ClientConfig::new(endpoint, auth, trust))
    }
}

/// An error from the Proxmox API or the transport.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PveError {
    /// The API answered with an error status.
    #[error("{status} {message}{}", errors.as_ref().map(|e| format!(" {e:?}")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// The message (reason phrase).
        message: String,
        /// Per-parameter errors of a 400.
        errors: Option<BTreeMap<String, String>>,
    },
    /// A task stopped with an error.
    #[error("task {upid} failed: {exitstatus}{}", if log_tail.is_empty() { String::new() } else { format!("\n  log tail:\n    {}", log_tail.join("\n    ")) })]
    Task {
        /// The task.
        upid: String,
        /// Its exit status (the task's own error text).
        exitstatus: String,
        /// The last lines of its log.
        log_tail: Vec<String>,
    },
    /// Connection or protocol failure.
    #[error("transport: {0}")]
    Transport(String),
    /// Waited too long.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The response did not have the expected shape.
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl PveError {
    /// Whether this is lock contention ("can't lock file … got timeout").
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self, PveError::Api { message, .. } if message.contains("can't lock file") && message.contains("got timeout"))
    }

    /// Whether the config changed since its digest was read.
    pub fn is_checksum_mismatch(&self) -> bool {
        matches!(self, PveError::Api { message, .. } if message.contains("checksum mismatch") || message.contains("detected modified configuration"))
    }

    /// Whether the VM does not exist (Proxmox says 500 "… does not exist").
    pub fn is_missing(&self) -> bool {
        matches!(self, PveError::Api { message, .. } if message.contains("does not exist"))
    }

    /// Whether a retry might help (5xx other than a definite answer, transport).
    pub fn is_transient(&self) -> bool {
        match self {
            PveError::Api {
                status, message, ..
            } => {
                *status >= 500
                    && !message.contains("does not exist")
                    && !self.is_checksum_mismatch()
            }
            PveError::Transport(_) => true,
            _ => false,
        }
    }
}

struct Inner {
    http: reqwest::Client,
    base: String,
    cfg: ClientConfig,
    ticket: tokio::sync::Mutex<Option<(String, String)>>,
    nodes: Mutex<HashMap<String, Arc<Semaphore>>>,
    requests: std::sync::atomic::AtomicU64,
}

/// The client. Cheap to clone.
#[derive(Clone)]
pub struct PveClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for PveClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PveClient")
            .field("base", &self.inner.base)
            .field("auth", &self.inner.cfg.auth)
            .finish_non_exhaustive()
    }
}

impl PveClient {
    /// Builds a client.
    pub fn new(cfg: ClientConfig) -> Result<Self, PveError> {
        let tls = tls::client_config(&cfg.trust).map_err(|e| PveError::Transport(e.to_string()))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| PveError::Transport(e.to_string()))?;
        let ep = cfg.endpoint.trim_end_matches('/');
        let base = if ep.ends_with("/api2/json") {
            ep.to_string()
        } else {
            format!("{ep}/api2/json")
        };
        Ok(PveClient {
            inner: Arc::new(Inner {
                http,
                base,
                cfg,
                ticket: tokio::sync::Mutex::new(None),
                nodes: Mutex::new(HashMap::new()),
                requests: Default::default(),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// Requests sent so far (for benchmarks).
    pub fn request_count(&self) -> u64 {
        self.inner
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits for the write slot of `node` (per-node serialisation).
    pub async fn node_permit(&self, node: &str) -> OwnedSemaphorePermit {
        let sem = self
            .inner
            .nodes
            .lock()
            .expect("node semaphores")
            .entry(node.to_string())
            .or_insert_with(|| {
                Arc::new(Semaphore::new(self.inner.cfg.node_write_concurrency.max(1)))
            })
            .clone();
        sem.acquire_owned().await.expect("semaphore never closed")
    }

    async fn ticket(&self) -> Result<Option<(String, String)>, PveError> {
        let Auth::Ticket { user, password } = &self.inner.cfg.auth else {
            return Ok(None);
        };
        let mut guard = self.inner.ticket.lock().await;
        if guard.is_none() {
            let resp = self
                .inner
                .http
                .post(format!("{}/access/ticket", self.inner.base))
                .form(&[("username", user.as_str()), ("password", password.as_str())])
                .send()
                .await
                .map_err(|e| PveError::Transport(e.without_url().to_string()))?;
            let data = decode(resp).await?;
            let t = data["ticket"].as_str().unwrap_or_default().to_string();
            let c = data["CSRFPreventionToken"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            *guard = Some((t, c));
        }
        Ok(guard.clone())
    }

    /// One request, no retries. `params` go in the query for GET/DELETE and as a form body
    /// otherwise.
    pub async fn request_once(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Value, PveError> {
        self.inner
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = format!("{}{}", self.inner.base, path);
        let mut req = self.inner.http.request(method.clone(), &url);
        req = if method == Method::GET || method == Method::DELETE {
            req.query(params)
        } else {
            req.form(params)
        };
        match &self.inner.cfg.auth {
            Auth::Token(t) => req = req.header("Authorization", format!("PVEAPIToken={t}")),
            Auth::Ticket { .. } => {
                if let Some((ticket, csrf)) = self.ticket().await? {
                    let cookie: String =
                        form_urlencoded::byte_serialize(ticket.as_bytes()).collect();
                    req = req.header("Cookie", format!("PVEAuthCookie={cookie}"));
                    if method != Method::GET {
                        req = req.header("CSRFPreventionToken", csrf);
                    }
                }
            }
        }
        let resp = req
            .send()
            .await
            .map_err(|e| PveError::Transport(e.without_url().to_string()))?;
        decode(resp).await
    }

    /// A request with retries: lock contention always (it never took effect), other
    /// transient failures only for GET (a write may have happened).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Value, PveError> {
        let mut delay = self.inner.cfg.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.request_once(method.clone(), path, params).await {
                // Tickets expire after 2 h: log in again once.
                Err(PveError::Api { status: 401, .. })
                    if attempt == 1 && matches!(self.inner.cfg.auth, Auth::Ticket { .. }) =>
                {
                    *self.inner.ticket.lock().await = None;
                }
                Err(e)
                    if attempt < self.inner.cfg.retries
                        && (e.is_lock_timeout() || (method == Method::GET && e.is_transient())) =>
                {
                    tracing::warn!(%method, path, attempt, error = %e, "retrying Proxmox request");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// GET with query parameters.
    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, PveError> {
        let p: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.request(Method::GET, path, &p).await
    }

    /// Polls a task until it stops. `OK` and `WARNINGS: n` succeed; anything else fails
    /// with the exit status and the tail of the task log.
    pub async fn wait_task(&self, node: &str, upid: &str) -> Result<(), PveError> {
        let enc: String = form_urlencoded::byte_serialize(upid.as_bytes()).collect();
        let deadline = tokio::time::Instant::now() + self.inner.cfg.task_timeout;
        loop {
            let st = self
                .get(&format!("/nodes/{node}/tasks/{enc}/status"), &[])
                .await?;
            if st["status"] == "stopped" {
                let exit = st["exitstatus"].as_str().unwrap_or("unknown").to_string();
                if exit == "OK" || exit.starts_with("WARNINGS") {
                    if exit != "OK" {
                        tracing::warn!(upid, exit, "Proxmox task finished with warnings");
                    }
                    return Ok(());
                }
                let log = self
                    .get(
                        &format!("/nodes/{node}/tasks/{enc}/log"),
                        &[("start", "0"), ("limit", "500")],
                    )
                    .await
                    .unwrap_or(Value::Null);
                let lines: Vec<String> = log
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|l| l["t"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let tail = lines[lines.len().saturating_sub(5)..].to_vec();
                return Err(PveError::Task {
                    upid: upid.to_string(),
                    exitstatus: exit,
                    log_tail: tail,
                });
            }
            if tokio::time::Instant::now() > deadline {
                return Err(PveError::Timeout(format!("task {upid} still running")));
            }
            tokio::time::sleep(self.inner.cfg.poll_interval).await;
        }
    }

    /// Waits until the VM's config has no `lock` (after clone/create). Returns the config.
    pub async fn wait_unlocked(&self, node: &str, vmid: u32) -> Result<Value, PveError> {
        let deadline = tokio::time::Instant::now() + self.inner.cfg.task_timeout;
        loop {
            let cfg = self
                .get(&format!("/nodes/{node}/qemu/{vmid}/config"), &[])
                .await?;
            match cfg.get("lock").and_then(Value::as_str) {
                None => return Ok(cfg),
                Some(l) if tokio::time::Instant::now() > deadline => {
                    return Err(PveError::Timeout(format!("VM {vmid} still locked ({l})")));
                }
                Some(_) => tokio::time::sleep(self.inner.cfg.poll_interval).await,
            }
        }
    }
}

/// Reads the envelope: `data` on success (may be null); on error the reason phrase (or
/// the body's `message`) and `errors`.
async fn decode(resp: reqwest::Response) -> Result<Value, PveError> {
    let status = resp.status();
    let reason = resp
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
    let body = resp
        .bytes()
        .await
        .map_err(|e| PveError::Transport(e.without_url().to_string()))?;
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status.is_success() {
        return match json.get("data") {
            Some(d) => Ok(d.clone()),
            None => Err(PveError::Decode(format!(
                "no data envelope: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))),
        };
    }
    let message = reason
        .or_else(|| json["message"].as_str().map(|m| m.trim().to_string()))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let errors = json.get("errors").and_then(|e| {
        e.as_object().map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or(v.to_string(), |s| s.trim().to_string()),
                    )
                })
                .collect()
        })
    });
    Err(PveError::Api {
        status: status.as_u16(),
        message,
        errors,
    })
}

/// Flattens a serialised parameter struct into form pairs (booleans as 1/0, null skipped).
pub fn to_pairs<T: Serialize + ?Sized>(v: &T) -> Result<Vec<(String, String)>, PveError> {
    let v = serde_json::to_value(v).map_err(|e| PveError::Decode(e.to_string()))?;
    let mut out = Vec::new();
    if let Value::Object(m) = v {
        for (k, v) in m {
            let s = match v {
                Value::Null => continue,
                Value::Bool(b) => if b { "1" } else { "0" }.to_string(),
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.push((k, s));
        }
    }
    Ok(out)
}

impl proxmox_api::client::Client for PveClient {
    type Error = PveError;

    async fn request_with_body_and_query<B, Q, R>(
        &self,
        method: proxmox_api::client::Method,
        path: &str,
        body: Option<&B>,
        query: Option<&Q>,
    ) -> Result<R, Self::Error>
    where
        B: Serialize,
        Q: Serialize,
        R: DeserializeOwned,
    {
        let method = match method {
            proxmox_api::client::Method::Get => Method::GET,
            proxmox_api::client::Method::Post => Method::POST,
            proxmox_api::client::Method::Put => Method::PUT,
            proxmox_api::client::Method::Delete => Method::DELETE,
        };
        let mut params = match body {
            Some(b) => to_pairs(b)?,
            None => Vec::new(),
        };
        if let Some(q) = query {
            params.extend(to_pairs(q)?);
        }
        let data = self.request(method, path, &params).await?;
        serde_json::from_value(data).map_err(|e| PveError::Decode(format!("{path}: {e}")))
    }
}
