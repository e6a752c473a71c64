//! The Proxmox VE HTTP client, built on the `cairn-http` kit (checked endpoint, no proxies
//! or redirects, TLS trust from the shared environment rules, credentials as sensitive
//! headers, the shared retry policy). Proxmox's own parts: token or ticket auth, the
//! `{"data"}` envelope (including `null`), errors from the reason phrase, "can't lock file
//! … got timeout" as "busy, try again", UPID task polling, waiting for config locks, and
//! per-node write serialisation. It implements `proxmox_api::client::Client`, so the
//! generated typed endpoints of the `proxmox-api` crate run over it where their types are
//! right (see `api.rs` for the parts replaced).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_core::tls::TlsTrust;
use cairn_http::{
    ApiClient, Class, Classify, Failure, GaveUp, HttpError, RetryPolicy, TransportKind, TrustVars,
};
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

/// The trust variables; exactly one may be set (the same rule as every provider).
pub const TRUST_VARS: TrustVars = TrustVars {
    ca_file: CA_FILE_ENV,
    fingerprint: FINGERPRINT_ENV,
    insecure: INSECURE_ENV,
};

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
    /// No retry of a request starts later than this after its first attempt.
    pub retry_deadline: Duration,
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
    /// The TLS trust variables are missing or contradict each other.
    #[error(transparent)]
    Trust(#[from] cairn_http::TrustError),
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
            retry_deadline: Duration::from_secs(60),
        }
    }

    /// The retry policy these settings describe.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.retries.max(1),
            first_backoff: self.backoff,
            max_backoff: Duration::from_secs(2),
            deadline: self.retry_deadline,
        }
    }

    /// Reads `PROXMOX_VE_ENDPOINT`, `PROXMOX_VE_API_TOKEN` (or `PROXMOX_VE_USERNAME` +
    /// `PROXMOX_VE_PASSWORD`) and the trust: exactly one of `PROXMOX_VE_CA_FILE`,
    /// `PROXMOX_VE_FINGERPRINT` or `PROXMOX_VE_INSECURE=1` (two set is an error).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let endpoint = var(ENDPOINT_ENV).ok_or(ConfigError::Missing(ENDPOINT_ENV))?;
        let auth = match var(TOKEN_ENV) {
            Some(t) => {
                if !t.contains('!') || !t.contains('=') || !t.contains('@') {
                    return Err(ConfigError::BadToken);
                }
                Auth::Token(t)
            }
            None => Auth::Ticket {
                user: var(USERNAME_ENV).ok_or(ConfigError::Missing(TOKEN_ENV))?,
                password: var(PASSWORD_ENV).ok_or(ConfigError::Missing(PASSWORD_ENV))?,
            },
        };
        let trust = TRUST_VARS.read(&var)?;
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
    /// No answer, classified by the client kit (never sent, unknown, or hopeless).
    #[error("{0}")]
    Http(HttpError),
    /// The retry policy stopped retrying a retryable failure (attempts or deadline).
    #[error("{why}; last error: {last}")]
    GaveUp {
        /// When and why it stopped.
        why: GaveUp,
        /// The last failure.
        last: Box<PveError>,
    },
    /// Waited too long.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The response did not have the expected shape.
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl PveError {
    /// The error the retry policy gave up on, or this one.
    fn last(&self) -> &PveError {
        match self {
            PveError::GaveUp { last, .. } => last.last(),
            other => other,
        }
    }

    /// Whether this is lock contention ("can't lock file … got timeout").
    pub fn is_lock_timeout(&self) -> bool {
        matches!(self.last(), PveError::Api { message, .. } if message.contains("can't lock file") && message.contains("got timeout"))
    }

    /// Whether the config changed since its digest was read.
    pub fn is_checksum_mismatch(&self) -> bool {
        matches!(self.last(), PveError::Api { message, .. } if message.contains("checksum mismatch") || message.contains("detected modified configuration"))
    }

    /// Whether the VM does not exist (Proxmox says 500 "… does not exist").
    pub fn is_missing(&self) -> bool {
        matches!(self.last(), PveError::Api { message, .. } if message.contains("does not exist"))
    }

    /// Whether a retry might help (5xx other than a definite answer, transport).
    pub fn is_transient(&self) -> bool {
        match self.last().class() {
            Class::Transport(k) => k != TransportKind::Permanent,
            Class::Answer { status, busy } => busy || status >= 500,
            Class::Final => false,
        }
    }

    /// The HTTP status of the API's answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self.last() {
            PveError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The engine's error for `operation`. Proxmox has no error codes, so `code` stays
    /// empty; the status goes in `status`; `retryable` when the failure is safe to repeat.
    pub fn into_provider(self, operation: impl Into<String>) -> cairn_core::ProviderError {
        cairn_http::provider_error(
            operation,
            self.to_string(),
            None,
            self.status(),
            self.last().class(),
        )
    }
}

impl Classify for PveError {
    fn class(&self) -> Class {
        match self {
            // Proxmox answers definite errors with 500 too; those are final.
            PveError::Api { .. } if self.is_missing() || self.is_checksum_mismatch() => {
                Class::Final
            }
            PveError::Api { status, .. } => Class::Answer {
                status: *status,
                busy: self.is_lock_timeout(),
            },
            PveError::Transport(_) => Class::Transport(TransportKind::Unknown),
            PveError::Http(e) => e.class(),
            PveError::Task { .. }
            | PveError::Timeout(_)
            | PveError::Decode(_)
            | PveError::GaveUp { .. } => Class::Final,
        }
    }

    fn gave_up(self, why: GaveUp) -> Self {
        PveError::GaveUp {
            why,
            last: Box::new(self),
        }
    }
}

impl From<HttpError> for PveError {
    fn from(e: HttpError) -> Self {
        PveError::Http(e)
    }
}

struct Inner {
    http: ApiClient,
    policy: RetryPolicy,
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
            .field("base", &self.inner.http.base().as_str())
            .field("auth", &self.inner.cfg.auth)
            .finish_non_exhaustive()
    }
}

impl PveClient {
    /// Builds a client through the kit: the endpoint passes the address map and the
    /// loopback-only switch, `http://` only to loopback, the certificate checked by
    /// `cfg.trust`, a token as a sensitive header. Nothing is sent.
    pub fn new(cfg: ClientConfig) -> Result<Self, PveError> {
        let ep = cfg.endpoint.trim_end_matches('/');
        let base = if ep.ends_with("/api2/json") {
            ep.to_string()
        } else {
            format!("{ep}/api2/json")
        };
        let mut b = ApiClient::builder(base)
            .trust(cfg.trust.clone())
            .timeout(Duration::from_secs(60));
        if let Auth::Token(t) = &cfg.auth {
            b = b.auth_header("authorization", &format!("PVEAPIToken={t}"))?;
        }
        Ok(PveClient {
            inner: Arc::new(Inner {
                http: b.build()?,
                policy: cfg.retry_policy(),
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
            let http = &self.inner.http;
            let resp = http
                .send(
                    http.request(Method::POST, "/access/ticket")
                        .form(&[("username", user.as_str()), ("password", password.as_str())]),
                )
                .await?;
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
        self.attempt(method, path, params)
            .await
            .map_err(|f| f.error)
    }

    /// One attempt; a failed answer carries the server's wait for the retry policy.
    async fn attempt(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Value, Failure<PveError>> {
        self.inner
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut req = self.inner.http.request(method.clone(), path);
        req = if method == Method::GET || method == Method::DELETE {
            req.query(params)
        } else {
            req.form(params)
        };
        if let Some((ticket, csrf)) = self.ticket().await? {
            let cookie: String = form_urlencoded::byte_serialize(ticket.as_bytes()).collect();
            req = req.header(
                "Cookie",
                cairn_http::sensitive(&format!("PVEAuthCookie={cookie}"))
                    .map_err(PveError::from)?,
            );
            if method != Method::GET {
                req = req.header(
                    "CSRFPreventionToken",
                    cairn_http::sensitive(&csrf).map_err(PveError::from)?,
                );
            }
        }
        let resp = self.inner.http.send(req).await.map_err(PveError::from)?;
        let wait = cairn_http::server_wait(resp.status().as_u16(), resp.headers());
        decode(resp).await.map_err(|error| Failure { error, wait })
    }

    /// A request under the shared retry policy: lock contention, 429, 503 and connections
    /// never made always (they never took effect); other transient failures only for GET
    /// (a write may have happened). An expired ticket is renewed once.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Value, PveError> {
        let once = || {
            self.inner.policy.run(method == Method::GET, || {
                self.attempt(method.clone(), path, params)
            })
        };
        match once().await {
            // Tickets expire after 2 h: log in again once.
            Err(PveError::Api { status: 401, .. })
                if matches!(self.inner.cfg.auth, Auth::Ticket { .. }) =>
            {
                *self.inner.ticket.lock().await = None;
                once().await
            }
            other => other,
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
