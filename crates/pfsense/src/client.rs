//! A small client for the pfSense REST API package v2: `X-API-Key` auth, the response
//! envelope, TLS trust through [`cairn_core::tls`], retries of what is safe to retry, the
//! two-phase apply with polling, and the HAProxy runtime API through `command_prompt`.

use std::fmt;
use std::time::{Duration, Instant};

use cairn_core::tls::{TlsTrust, client_config};
use reqwest::Method;
use serde_json::{Value, json};

/// `PFSENSE_URL`: e.g. `https://10.0.20.1` (the `/api/v2` prefix is added).
pub const URL_ENV: &str = "PFSENSE_URL";
/// `PFSENSE_API_KEY`: the REST API key.
pub const API_KEY_ENV: &str = "PFSENSE_API_KEY";
/// `PFSENSE_CA_FILE`: trust the certificates in this PEM file.
pub const CA_FILE_ENV: &str = "PFSENSE_CA_FILE";
/// `PFSENSE_TLS_FINGERPRINT`: pin the server certificate's SHA-256.
pub const FINGERPRINT_ENV: &str = "PFSENSE_TLS_FINGERPRINT";
/// `PFSENSE_TLS_INSECURE=1`: trust any certificate (warns loudly).
pub const INSECURE_ENV: &str = "PFSENSE_TLS_INSECURE";

/// The pfSense stats socket path the runtime commands are piped to.
pub const HAPROXY_SOCKET: &str = "/tmp/haproxy.socket";
/// `PFSENSE_HAPROXY_PIPE`: the command runtime commands are piped into (default
/// `socat stdio /tmp/haproxy.socket`; `nc -U /tmp/haproxy.socket` on a box without socat).
pub const RUNTIME_PIPE_ENV: &str = "PFSENSE_HAPROXY_PIPE";

/// A subsystem with its own apply endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subsystem {
    /// HAProxy.
    Haproxy,
    /// Virtual IPs.
    VirtualIp,
    /// DNS Resolver (unbound).
    DnsResolver,
    /// Firewall (aliases).
    Firewall,
}

impl Subsystem {
    /// The apply path below `/api/v2`.
    pub fn apply_path(self) -> &'static str {
        match self {
            Subsystem::Haproxy => "/services/haproxy/apply",
            Subsystem::VirtualIp => "/firewall/virtual_ip/apply",
            Subsystem::DnsResolver => "/services/dns_resolver/apply",
            Subsystem::Firewall => "/firewall/apply",
        }
    }
}

impl fmt::Display for Subsystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Subsystem::Haproxy => "HAProxy",
            Subsystem::VirtualIp => "virtual IPs",
            Subsystem::DnsResolver => "DNS Resolver",
            Subsystem::Firewall => "firewall",
        })
    }
}

/// An API key; never shown by `Debug` or `Display`.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// A failed API call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error envelope.
    #[error("{method} {path}: HTTP {code} {response_id}: {message}")]
    Api {
        /// HTTP method.
        method: String,
        /// Path below `/api/v2`.
        path: String,
        /// HTTP status.
        code: u16,
        /// The package's `response_id`.
        response_id: String,
        /// The package's message.
        message: String,
    },
    /// The request did not get an answer.
    #[error("{method} {path}: {message}")]
    Transport {
        /// HTTP method.
        method: String,
        /// Path below `/api/v2`.
        path: String,
        /// What happened.
        message: String,
    },
    /// The apply did not finish: pfSense rejected the configuration.
    #[error(
        "pfSense rejected the config: {subsystem} changes still not applied after {waited:?}{reason}"
    )]
    Rejected {
        /// The subsystem.
        subsystem: Subsystem,
        /// How long was waited.
        waited: Duration,
        /// `: <haproxy -c output>` when it could be read.
        reason: String,
    },
    /// Missing or invalid configuration (environment, TLS).
    #[error("pfSense client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The package's `response_id`, if the API answered.
    pub fn response_id(&self) -> Option<&str> {
        match self {
            ClientError::Api { response_id, .. } => Some(response_id),
            ClientError::Rejected { .. } => Some("APPLY_REJECTED"),
            _ => None,
        }
    }

    /// Whether this is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { code: 404, .. })
    }

    /// Converts into the engine's error for `operation`.
    pub fn into_provider(self, operation: impl Into<String>) -> cairn_core::ProviderError {
        let retryable = matches!(
            &self,
            ClientError::Transport { .. } | ClientError::Api { code: 503, .. }
        );
        let code = self.response_id().map(str::to_string);
        let mut e = cairn_core::ProviderError::new(operation, self.to_string());
        e.code = code;
        e.retryable = retryable;
        e
    }
}

/// Timing of applies and waits.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long an apply may take before it counts as rejected.
    pub apply_timeout: Duration,
    /// Pause between polls (apply status, runtime state).
    pub poll: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            apply_timeout: Duration::from_secs(60),
            poll: Duration::from_millis(250),
        }
    }
}

/// The REST client.
#[derive(Clone)]
pub struct PfSenseClient {
    http: reqwest::Client,
    base: String,
    key: ApiKey,
    timing: Timing,
    pipe: String,
}

impl fmt::Debug for PfSenseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PfSenseClient")
            .field("base", &self.base)
            .field("key", &self.key)
            .finish()
    }
}

impl PfSenseClient {
    /// A client for `base_url` (e.g. `https://10.0.20.1`) with this key and TLS trust.
    pub fn new(base_url: &str, api_key: ApiKey, trust: &TlsTrust) -> Result<Self, ClientError> {
        let tls = client_config(trust).map_err(|e| ClientError::Config(e.to_string()))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let base = base_url.trim_end_matches('/').trim_end_matches("/api/v2");
        Ok(PfSenseClient {
            http,
            base: format!("{base}/api/v2"),
            key: api_key,
            timing: Timing::default(),
            pipe: format!("socat stdio {HAPROXY_SOCKET}"),
        })
    }

    /// A client from `PFSENSE_URL`, `PFSENSE_API_KEY` and one of `PFSENSE_CA_FILE`,
    /// `PFSENSE_TLS_FINGERPRINT` or `PFSENSE_TLS_INSECURE=1`.
    pub fn from_env() -> Result<Self, ClientError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let url =
            var(URL_ENV).ok_or_else(|| ClientError::Config(format!("{URL_ENV} is not set")))?;
        let key = var(API_KEY_ENV)
            .ok_or_else(|| ClientError::Config(format!("{API_KEY_ENV} is not set")))?;
        let trust = if let Some(f) = var(CA_FILE_ENV) {
            TlsTrust::CaFile(f.into())
        } else if let Some(fp) = var(FINGERPRINT_ENV) {
            TlsTrust::Fingerprint(fp)
        } else if var(INSECURE_ENV).as_deref() == Some("1") {
            TlsTrust::Insecure
        } else {
            return Err(ClientError::Config(format!(
                "set {CA_FILE_ENV} or {FINGERPRINT_ENV} to trust pfSense's certificate ({INSECURE_ENV}=1 turns checks off)"
            )));
        };
        let client = PfSenseClient::new(&url, ApiKey::new(key), &trust)?;
        Ok(match var(RUNTIME_PIPE_ENV) {
            Some(pipe) => client.with_runtime_pipe(&pipe),
            None => client,
        })
    }

    /// Changes the command HAProxy runtime commands are piped into.
    pub fn with_runtime_pipe(mut self, pipe: &str) -> Self {
        self.pipe = pipe.to_string();
        self
    }

    /// Changes apply/poll timing.
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// The timing in use.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// One call; returns the envelope's `data`. GETs are retried on transport errors and
    /// 5xx; writes only on 503 (the request was not queued, so it did not happen).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut attempt = 0u32;
        loop {
            let result = self.call_once(method.clone(), path, query, body).await;
            let retry = match &result {
                // A certificate that is not trusted will not become trusted by retrying.
                Err(ClientError::Transport { message, .. }) => {
                    method == Method::GET
                        && !message.contains("certificate")
                        && !message.contains("fingerprint")
                }
                Err(ClientError::Api { code, .. }) => {
                    *code == 503 || (method == Method::GET && *code >= 500)
                }
                _ => false,
            };
            if !retry || attempt >= 4 {
                return result;
            }
            attempt += 1;
            let wait = Duration::from_millis(100 << attempt);
            tracing::debug!(?wait, path, "retrying pfSense call");
            tokio::time::sleep(wait).await;
        }
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let transport = |message: String| ClientError::Transport {
            method: method.to_string(),
            path: path.to_string(),
            message,
        };
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("X-API-Key", &self.key.0)
            .header("Accept", "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| transport(without_url(&e)))?;
        let code = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| transport(without_url(&e)))?;
        let env: Value = serde_json::from_str(&text)
            .map_err(|_| transport(format!("HTTP {code}, not a JSON envelope: {:.200}", text)))?;
        if (200..300).contains(&code) {
            Ok(env.get("data").cloned().unwrap_or(Value::Null))
        } else {
            Err(ClientError::Api {
                method: method.to_string(),
                path: path.to_string(),
                code,
                response_id: env["response_id"].as_str().unwrap_or("").to_string(),
                message: env["message"].as_str().unwrap_or("").to_string(),
            })
        }
    }

    /// Lists a plural endpoint (one call), optionally filtered (`name=…`).
    pub async fn list(
        &self,
        plural: &str,
        filter: &[(&str, String)],
    ) -> Result<Vec<Value>, ClientError> {
        match self.call(Method::GET, plural, filter, None).await? {
            Value::Array(items) => Ok(items),
            Value::Null => Ok(Vec::new()),
            other => Ok(vec![other]),
        }
    }

    /// Creates an object.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, path, &[], Some(body)).await
    }

    /// Patches an object (the body carries `id`, and `parent_id` for nested objects).
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::PATCH, path, &[], Some(body)).await
    }

    /// Deletes an object by id (and parent id for nested objects).
    pub async fn delete(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ClientError> {
        self.call(Method::DELETE, path, query, None).await
    }

    /// Applies a subsystem's pending changes and waits until pfSense reports them applied;
    /// a timeout means pfSense rejected the configuration (for HAProxy the reason is read
    /// with `haproxy -c`).
    pub async fn apply(&self, sub: Subsystem) -> Result<(), ClientError> {
        let started = Instant::now();
        self.call(Method::POST, sub.apply_path(), &[], Some(&json!({})))
            .await?;
        loop {
            tokio::time::sleep(self.timing.poll).await;
            let status = self.call(Method::GET, sub.apply_path(), &[], None).await?;
            if status["applied"] == json!(true) {
                tracing::debug!(%sub, elapsed = ?started.elapsed(), "applied");
                return Ok(());
            }
            if started.elapsed() > self.timing.apply_timeout {
                let reason = if sub == Subsystem::Haproxy {
                    match self
                        .command("haproxy -c -f /var/etc/haproxy_test/haproxy.cfg")
                        .await
                    {
                        Ok((out, code)) if code != 0 => format!(": {}", out.trim()),
                        _ => String::new(),
                    }
                } else {
                    String::new()
                };
                return Err(ClientError::Rejected {
                    subsystem: sub,
                    waited: started.elapsed(),
                    reason,
                });
            }
        }
    }

    /// Runs a shell command through `/diagnostics/command_prompt`: (output, result code).
    pub async fn command(&self, command: &str) -> Result<(String, i64), ClientError> {
        let data = self
            .call(
                Method::POST,
                "/diagnostics/command_prompt",
                &[],
                Some(&json!({ "command": command })),
            )
            .await?;
        Ok((
            data["output"].as_str().unwrap_or("").to_string(),
            data["result_code"].as_i64().unwrap_or(0),
        ))
    }

    /// Sends one HAProxy runtime API command to the stats socket.
    pub async fn haproxy_runtime(&self, cmd: &str) -> Result<String, ClientError> {
        let (out, code) = self
            .command(&format!("echo \"{cmd}\" | {}", self.pipe))
            .await?;
        if code != 0 {
            return Err(ClientError::Transport {
                method: "POST".into(),
                path: "/diagnostics/command_prompt".into(),
                message: format!("HAProxy runtime command {cmd:?} failed: {}", out.trim()),
            });
        }
        Ok(out)
    }
}

/// reqwest errors include the URL; keep only the reason.
fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), "<url>");
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_key_never_appears_in_debug_output() {
        let c = PfSenseClient::new(
            "https://10.0.20.1",
            ApiKey::new("s3cr3t-key"),
            &TlsTrust::Fingerprint(["AB"; 32].join(":")),
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-key"), "{shown}");
        assert!(shown.contains("https://10.0.20.1/api/v2"), "{shown}");
    }
}
