//! A thin HTTP layer over the Hetzner Cloud API, built on the `cairn-http` kit (checked
//! endpoint, no proxies or redirects, the token as a sensitive header, the shared retry
//! policy) plus what is Hetzner's own: rate-limit pacing from the `RateLimit-*` headers,
//! `locked`/`conflict` as "busy, try again", concurrent paging and batched action
//! polling. Bodies use the `hcloud` crate's models where they fit and JSON values
//! elsewhere.

mod error;
mod rate;

use std::sync::Mutex;
use std::time::Duration;

use cairn_http::{ApiClient, Failure, RetryPolicy};
use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;

pub use cairn_http::is_loopback_url;
pub use error::ApiError;
pub use rate::RateState;

/// The real API endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.hetzner.cloud/v1";

/// An API token; never printed.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(t: impl Into<String>) -> Self {
        Token(t.into())
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL ending in `/v1`.
    pub endpoint: String,
    /// The API token.
    pub token: Token,
    /// Attempts per request for retry-safe failures.
    pub max_attempts: u32,
    /// First backoff step.
    pub backoff: Duration,
    /// Backoff cap.
    pub max_backoff: Duration,
    /// No retry of a request starts later than this after its first attempt.
    pub retry_deadline: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Concurrent page fetches after the first page.
    pub page_concurrency: usize,
    /// First action poll interval (doubles up to `max_backoff`).
    pub poll_interval: Duration,
    /// Refuse non-loopback endpoints. Defaults to `CAIRN_LOOPBACK_ONLY=1`; the
    /// environment's switch applies even when this is `false`.
    pub loopback_only: bool,
}

impl ClientConfig {
    /// Settings for an endpoint and token with the default retry policy.
    pub fn new(endpoint: impl Into<String>, token: Token) -> Self {
        ClientConfig {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            token,
            max_attempts: 12,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3),
            retry_deadline: Duration::from_secs(120),
            timeout: Duration::from_secs(30),
            page_concurrency: 64,
            poll_interval: Duration::from_millis(50),
            loopback_only: std::env::var(cairn_core::net::LOOPBACK_ONLY_ENV)
                .is_ok_and(|v| v == "1" || v == "true"),
        }
    }

    /// From `HCLOUD_TOKEN` and `HCLOUD_ENDPOINT` (default: the real API). With
    /// `CAIRN_LOOPBACK_ONLY=1`, a non-loopback endpoint is refused.
    pub fn from_env() -> Result<Self, ApiError> {
        let token = std::env::var("HCLOUD_TOKEN")
            .map_err(|_| ApiError::Config("HCLOUD_TOKEN is not set".into()))?;
        let endpoint =
            std::env::var("HCLOUD_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_string());
        Ok(Self::new(endpoint, Token::new(token)))
    }

    /// The retry policy these settings describe.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            first_backoff: self.backoff,
            max_backoff: self.max_backoff,
            deadline: self.retry_deadline,
        }
    }
}

/// Shared action polling state.
#[derive(Debug, Default)]
struct Poller {
    /// Action id → outcome once finished.
    pending: Mutex<std::collections::HashMap<u64, Option<Result<(), ApiError>>>>,
    /// Held by the waiter currently polling for everyone.
    leader: tokio::sync::Mutex<()>,
    /// Wakes the other waiters after a poll round.
    notify: tokio::sync::Notify,
}

/// The HTTP client.
#[derive(Debug)]
pub struct Client {
    cfg: ClientConfig,
    http: ApiClient,
    policy: RetryPolicy,
    rate: Mutex<RateState>,
    poller: Poller,
}

impl Client {
    /// Builds a client through the kit: the endpoint passes the address map and the
    /// loopback-only switch (`loopback_only` or `CAIRN_LOOPBACK_ONLY=1`), `http://` only
    /// to loopback. Nothing is sent.
    pub fn new(cfg: ClientConfig) -> Result<Self, ApiError> {
        let http = ApiClient::builder(&cfg.endpoint)
            .loopback_only(cfg.loopback_only)
            .auth_header("authorization", &format!("Bearer {}", cfg.token.0))?
            .timeout(cfg.timeout)
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Client {
            policy: cfg.retry_policy(),
            cfg,
            http,
            rate: Mutex::new(RateState::default()),
            poller: Poller::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    fn rate(&self) -> std::sync::MutexGuard<'_, RateState> {
        self.rate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One request, no retries. `path` starts with `/`, `query` is appended as is.
    pub async fn send_once(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        self.attempt(method, path, query, body)
            .await
            .map_err(|f| f.error)
    }

    /// One attempt: waits out the rate-limit pacing, sends, records the budget headers;
    /// a failed answer carries the server's wait for the retry policy.
    async fn attempt(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<Value, Failure<ApiError>> {
        let delay = self.rate().delay();
        if !delay.is_zero() {
            tracing::debug!(?delay, "pacing for the rate limit");
            tokio::time::sleep(delay).await;
        }
        let mut rb = self.http.request(method.clone(), path).query(query);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = self.http.send(rb).await.map_err(ApiError::Http)?;
        let status = resp.status().as_u16();
        self.rate().observe(resp.headers(), status);
        let wait = cairn_http::server_wait(status, resp.headers());
        let bytes = resp.bytes().await.map_err(|e| {
            ApiError::Transport(format!(
                "{method} {path}: reading body: {}",
                e.without_url()
            ))
        })?;
        let v: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::Transport(format!("{method} {path}: invalid JSON ({e})")))?
        };
        if (200..300).contains(&status) {
            return Ok(v);
        }
        let e = &v["error"];
        Err(Failure {
            error: ApiError::Api {
                status,
                code: e["code"].as_str().unwrap_or_default().to_string(),
                message: e["message"].as_str().unwrap_or("no message").to_string(),
                details: e["details"].clone(),
            },
            wait,
        })
    }

    /// A request under the shared retry policy: retry-safe failures always (429, 503,
    /// `locked`, `conflict`, connection never made); unknown outcomes and other 5xx only
    /// when `idempotent` (GET, PUT, DELETE).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<Value, ApiError> {
        self.policy
            .run(idempotent, || {
                self.attempt(method.clone(), path, query, body)
            })
            .await
    }

    /// `GET` with retries.
    pub async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Value, ApiError> {
        self.request(Method::GET, path, query, None, true).await
    }

    /// Lists every object of a collection matching `query`: the first page, then the
    /// remaining pages concurrently. Returns the items under `key`.
    pub async fn list_all(
        &self,
        path: &str,
        key: &str,
        query: &[(String, String)],
    ) -> Result<Vec<Value>, ApiError> {
        let page_q = |p: u64| {
            let mut q = query.to_vec();
            q.push(("page".into(), p.to_string()));
            q.push(("per_page".into(), "50".into()));
            q
        };
        let first = self.get(path, &page_q(1)).await?;
        let last = first["meta"]["pagination"]["last_page"]
            .as_u64()
            .unwrap_or(1);
        let mut items = take_items(first, key);
        if last > 1 {
            let pages: Vec<Result<(u64, Vec<Value>), ApiError>> = futures::stream::iter(2..=last)
                .map(|p| {
                    let q = page_q(p);
                    async move { self.get(path, &q).await.map(|v| (p, take_items(v, key))) }
                })
                .buffer_unordered(self.cfg.page_concurrency.max(1))
                .collect()
                .await;
            let mut pages = pages.into_iter().collect::<Result<Vec<_>, _>>()?;
            pages.sort_by_key(|(p, _)| *p);
            for (_, mut v) in pages {
                items.append(&mut v);
            }
        }
        Ok(items)
    }

    /// Waits for actions. Every concurrent waiter shares one poller: whoever holds the
    /// poll lock fetches `GET /actions?id=…&id=…` for *all* pending ids (50 per request),
    /// with backoff, and wakes the others. An action that ends in `error` fails with its
    /// code and message.
    pub async fn wait_actions(&self, ids: &[u64]) -> Result<(), ApiError> {
        if ids.is_empty() {
            return Ok(());
        }
        {
            let mut p = self
                .poller
                .pending
                .lock()
                .unwrap_or_else(|x| x.into_inner());
            for id in ids {
                p.entry(*id).or_insert(None);
            }
        }
        let mut interval = self.cfg.poll_interval;
        loop {
            let notified = self.poller.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut p = self
                    .poller
                    .pending
                    .lock()
                    .unwrap_or_else(|x| x.into_inner());
                // An id missing here was already collected by another waiter on the same action.
                if ids.iter().all(|i| p.get(i).is_none_or(Option::is_some)) {
                    let mut out = Ok(());
                    for i in ids {
                        if let Some(Some(Err(e))) = p.remove(i) {
                            out = Err(e);
                        }
                    }
                    return out;
                }
            }
            match self.poller.leader.try_lock() {
                Ok(_guard) => {
                    tokio::time::sleep(interval).await;
                    interval = (interval * 2).min(Duration::from_secs(1));
                    let result = self.poll_pending().await;
                    self.poller.notify.notify_waiters();
                    if let Err(e) = result {
                        let mut p = self
                            .poller
                            .pending
                            .lock()
                            .unwrap_or_else(|x| x.into_inner());
                        for i in ids {
                            p.remove(i);
                        }
                        return Err(e);
                    }
                }
                Err(_) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
                }
            }
        }
    }

    /// One poll round over every pending action id.
    async fn poll_pending(&self) -> Result<(), ApiError> {
        let todo: Vec<u64> = {
            let p = self
                .poller
                .pending
                .lock()
                .unwrap_or_else(|x| x.into_inner());
            p.iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| *k)
                .collect()
        };
        for chunk in todo.chunks(50) {
            let mut q: Vec<(String, String)> = chunk
                .iter()
                .map(|i| ("id".to_string(), i.to_string()))
                .collect();
            q.push(("per_page".into(), "50".into()));
            let v = self.get("/actions", &q).await?;
            let resp: hcloud::models::ListActionsResponse = serde_json::from_value(v)
                .map_err(|e| ApiError::Transport(format!("bad actions list: {e}")))?;
            let mut p = self
                .poller
                .pending
                .lock()
                .unwrap_or_else(|x| x.into_inner());
            for id in chunk {
                let outcome = match resp.actions.iter().find(|a| a.id as u64 == *id) {
                    // Unknown to the API (e.g. garbage-collected): finished.
                    None => Some(Ok(())),
                    Some(a) => match a.status {
                        hcloud::models::action::Status::Running => None,
                        hcloud::models::action::Status::Success => Some(Ok(())),
                        hcloud::models::action::Status::Error => {
                            let (code, message) = a.error.as_ref().map_or_else(
                                || (String::new(), "no error details".to_string()),
                                |e| (e.code.clone(), e.message.clone()),
                            );
                            Some(Err(ApiError::Action {
                                command: a.command.clone(),
                                code,
                                message,
                            }))
                        }
                    },
                };
                if let Some(slot) = p.get_mut(id) {
                    *slot = outcome;
                }
            }
        }
        Ok(())
    }
}

fn take_items(mut v: Value, key: &str) -> Vec<Value> {
    match v.get_mut(key).map(Value::take) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

/// The action ids in a response (`action`, `actions`, `next_actions`).
pub fn action_ids(v: &Value) -> Vec<u64> {
    let mut out = Vec::new();
    if let Some(id) = v["action"]["id"].as_u64() {
        out.push(id);
    }
    for k in ["actions", "next_actions"] {
        for a in v[k].as_array().into_iter().flatten() {
            if let Some(id) = a["id"].as_u64() {
                out.push(id);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted_in_debug_output() {
        let cfg = ClientConfig::new("http://127.0.0.1:1/v1", Token::new("s3cr3t-token"));
        let c = Client::new(cfg).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }
}
