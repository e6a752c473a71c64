//! A small client for the pfSense REST API package v2, built on the `cairn-http` kit
//! (checked endpoint, no proxies or redirects, TLS trust from the shared environment
//! rules, the shared retry policy). pfSense's own parts: `X-API-Key` auth (a sensitive
//! header), the response envelope, the two-phase apply with polling, and the HAProxy
//! runtime API through `command_prompt`.

use std::fmt;
use std::time::{Duration, Instant};

use cairn_core::tls::TlsTrust;
use cairn_http::{
    ApiClient, Class, Classify, Failure, GaveUp, HttpError, RetryPolicy, TransportKind, TrustVars,
};
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

/// The trust variables; exactly one may be set (the same rule as every provider).
pub const TRUST_VARS: TrustVars = TrustVars {
    ca_file: CA_FILE_ENV,
    fingerprint: FINGERPRINT_ENV,
    insecure: INSECURE_ENV,
};

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
    /// Every subsystem cairn writes to.
    pub const ALL: [Subsystem; 4] = [
        Subsystem::Haproxy,
        Subsystem::VirtualIp,
        Subsystem::DnsResolver,
        Subsystem::Firewall,
    ];

    /// A stable id (`haproxy`, `virtual_ip`, `dns_resolver`, `firewall`): the key of a
    /// plan's `pfsense_pending` entry.
    pub fn id(self) -> &'static str {
        match self {
            Subsystem::Haproxy => "haproxy",
            Subsystem::VirtualIp => "virtual_ip",
            Subsystem::DnsResolver => "dns_resolver",
            Subsystem::Firewall => "firewall",
        }
    }

    /// The subsystem with this [`id`](Self::id).
    pub fn from_id(id: &str) -> Option<Subsystem> {
        Subsystem::ALL.into_iter().find(|s| s.id() == id)
    }

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
    /// The request did not get an answer (or the runtime command it carried failed).
    #[error("{method} {path}: {message}")]
    Transport {
        /// HTTP method.
        method: String,
        /// Path below `/api/v2`.
        path: String,
        /// What happened.
        message: String,
        /// What the failure says about the request (for the retry policy).
        kind: TransportKind,
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
    /// The TLS trust variables are missing or contradict each other.
    #[error("pfSense client configuration: {0}")]
    Trust(#[from] cairn_http::TrustError),
    /// The retry policy stopped retrying a retryable failure (attempts or deadline).
    #[error("{why}; last error: {last}")]
    GaveUp {
        /// When and why it stopped.
        why: GaveUp,
        /// The last failure.
        last: Box<ClientError>,
    },
}

impl Classify for ClientError {
    fn class(&self) -> Class {
        match self {
            ClientError::Api { code, .. } => Class::Answer {
                status: *code,
                busy: false,
            },
            ClientError::Transport { kind, .. } => Class::Transport(*kind),
            ClientError::Rejected { .. }
            | ClientError::Config(_)
            | ClientError::Trust(_)
            | ClientError::GaveUp { .. } => Class::Final,
        }
    }

    fn gave_up(self, why: GaveUp) -> Self {
        ClientError::GaveUp {
            why,
            last: Box::new(self),
        }
    }
}

impl ClientError {
    /// The error the retry policy gave up on, or this one.
    fn last(&self) -> &ClientError {
        match self {
            ClientError::GaveUp { last, .. } => last.last(),
            other => other,
        }
    }

    /// The package's `response_id`, if the API answered with one.
    pub fn response_id(&self) -> Option<&str> {
        match self.last() {
            ClientError::Api { response_id, .. } if !response_id.is_empty() => Some(response_id),
            _ => None,
        }
    }

    /// The HTTP status of the API's answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self.last() {
            ClientError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether this is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self.last(), ClientError::Api { code: 404, .. })
    }

    /// Converts into the engine's error for `operation`: `code` is the package's
    /// `response_id`, `status` the HTTP status, `retryable` when the failure is safe to
    /// repeat (see `cairn_http::provider_error`).
    pub fn into_provider(self, operation: impl Into<String>) -> cairn_core::ProviderError {
        cairn_http::provider_error(
            operation,
            self.to_string(),
            self.response_id(),
            self.status(),
            self.last().class(),
        )
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
    http: ApiClient,
    policy: RetryPolicy,
    key: ApiKey,
    timing: Timing,
    pipe: String,
}

impl fmt::Debug for PfSenseClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PfSenseClient")
            .field("base", &self.http.base().as_str())
            .field("key", &self.key)
            .finish()
    }
}

impl PfSenseClient {
    /// A client for `base_url` (e.g. `https://10.0.20.1`) with this key and TLS trust,
    /// built through the kit: the endpoint passes the address map and the loopback-only
    /// switch, `http://` only to loopback. Nothing is sent.
    pub fn new(base_url: &str, api_key: ApiKey, trust: &TlsTrust) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').trim_end_matches("/api/v2");
        let http = ApiClient::builder(format!("{base}/api/v2"))
            .trust(trust.clone())
            .auth_header("x-api-key", &api_key.0)
            .and_then(|b| b.header("accept", "application/json").build())
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(PfSenseClient {
            http,
            policy: RetryPolicy {
                max_attempts: 5,
                first_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_millis(1600),
                deadline: Duration::from_secs(30),
            },
            key: api_key,
            timing: Timing::default(),
            pipe: format!("socat stdio {HAPROXY_SOCKET}"),
        })
    }

    /// A client from `PFSENSE_URL`, `PFSENSE_API_KEY` and exactly one of
    /// `PFSENSE_CA_FILE`, `PFSENSE_TLS_FINGERPRINT` or `PFSENSE_TLS_INSECURE=1` (two set is
    /// an error, the same rule as every provider).
    pub fn from_env() -> Result<Self, ClientError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ClientError> {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        let url =
            get(URL_ENV).ok_or_else(|| ClientError::Config(format!("{URL_ENV} is not set")))?;
        let key = get(API_KEY_ENV)
            .ok_or_else(|| ClientError::Config(format!("{API_KEY_ENV} is not set")))?;
        let trust = TRUST_VARS.read(&var)?;
        let client = PfSenseClient::new(&url, ApiKey::new(key), &trust)?;
        Ok(match get(RUNTIME_PIPE_ENV) {
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

    /// Changes the retry policy (rules shared by every provider; the numbers are ours).
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// One call; returns the envelope's `data`. Under the shared retry policy: GETs are
    /// retried on transport errors and 5xx; writes on 429, 503 and connections never made
    /// (the request did not happen). An untrusted certificate is never retried.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        self.policy
            .run(method == Method::GET, || {
                self.call_once(method.clone(), path, query, body)
            })
            .await
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, Failure<ClientError>> {
        let transport = |kind: TransportKind, message: String| ClientError::Transport {
            method: method.to_string(),
            path: path.to_string(),
            message,
            kind,
        };
        let mut req = self.http.request(method.clone(), path);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = self.http.send(req).await.map_err(|e| match e {
            HttpError::Transport { kind, message } => transport(kind, message),
            HttpError::Config(m) => ClientError::Config(m),
        })?;
        let code = resp.status().as_u16();
        let wait = cairn_http::server_wait(code, resp.headers());
        let text = resp
            .text()
            .await
            .map_err(|e| transport(TransportKind::Unknown, e.without_url().to_string()))?;
        let env: Value = serde_json::from_str(&text).map_err(|_| {
            transport(
                TransportKind::Unknown,
                format!("HTTP {code}, not a JSON envelope: {:.200}", text),
            )
        })?;
        if (200..300).contains(&code) {
            Ok(env.get("data").cloned().unwrap_or(Value::Null))
        } else {
            Err(Failure {
                error: ClientError::Api {
                    method: method.to_string(),
                    path: path.to_string(),
                    code,
                    response_id: env["response_id"].as_str().unwrap_or("").to_string(),
                    message: env["message"].as_str().unwrap_or("").to_string(),
                },
                wait,
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

    /// Whether a subsystem's changes are all in effect (`GET …/apply` → `applied`); `false`
    /// when something was written and not applied (a rejected or interrupted apply, or a
    /// write without one). A `null` answer counts as applied.
    pub async fn applied(&self, sub: Subsystem) -> Result<bool, ClientError> {
        let status = self.call(Method::GET, sub.apply_path(), &[], None).await?;
        Ok(status["applied"] != json!(false))
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

    /// Sends one HAProxy runtime API command to the stats socket. The command travels
    /// through pfSense's shell, so one holding anything but letters, digits, spaces and
    /// `_-.:/` is refused before anything is sent (names are checked with
    /// [`crate::runtime::safe_name`] long before they get here).
    pub async fn haproxy_runtime(&self, cmd: &str) -> Result<String, ClientError> {
        if !cmd
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.' | ':' | '/'))
        {
            return Err(ClientError::Config(format!(
                "refusing to send HAProxy runtime command {cmd:?}: it holds characters a shell would interpret"
            )));
        }
        let (out, code) = self
            .command(&format!("echo \"{cmd}\" | {}", self.pipe))
            .await?;
        if code != 0 {
            return Err(ClientError::Transport {
                method: "POST".into(),
                path: "/diagnostics/command_prompt".into(),
                message: format!("HAProxy runtime command {cmd:?} failed: {}", out.trim()),
                kind: TransportKind::Permanent,
            });
        }
        Ok(out)
    }
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

    #[tokio::test]
    async fn a_runtime_command_with_shell_characters_is_refused_before_anything_is_sent() {
        // Port 1 on loopback: were anything sent, the error would be a connection failure.
        let c = PfSenseClient::new(
            "https://127.0.0.1:1",
            ApiKey::new("k"),
            &TlsTrust::Fingerprint(["AB"; 32].join(":")),
        )
        .unwrap();
        for cmd in [
            "set server p_ipvANY/a\"; reboot; echo \" state ready",
            "set server p_ipvANY/$(id) state ready",
        ] {
            let e = c.haproxy_runtime(cmd).await.unwrap_err();
            assert!(matches!(e, ClientError::Config(_)), "{e}");
            assert!(e.to_string().contains("a shell would interpret"), "{e}");
        }
    }
}
