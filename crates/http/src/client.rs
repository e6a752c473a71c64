//! The API client every provider builds on: a checked endpoint, no proxies, no redirects,
//! TLS trust from `cairn_core::tls`, connect and request timeouts, and auth headers marked
//! sensitive so `Debug` output never shows them.

use std::time::Duration;

use cairn_core::net::Dialer;
use cairn_core::tls::{self, TlsTrust};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, Url};

use crate::endpoint::resolve_endpoint;
use crate::error::HttpError;

/// An HTTP client bound to one API endpoint. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
}

/// Builds an [`ApiClient`]; see [`ApiClient::builder`].
#[derive(Debug)]
pub struct ApiClientBuilder {
    endpoint: String,
    trust: Option<TlsTrust>,
    headers: HeaderMap,
    connect_timeout: Duration,
    timeout: Duration,
    net: Option<Dialer>,
    loopback_only: bool,
    pool_max_idle_per_host: Option<usize>,
}

/// A header value that `Debug` output shows as `Sensitive` (auth tokens, cookies, keys).
pub fn sensitive(value: &str) -> Result<HeaderValue, HttpError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        HttpError::Config("a credential holds characters not allowed in an HTTP header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

impl ApiClient {
    /// Starts a client for `endpoint` (e.g. `https://api.hetzner.cloud/v1`). Defaults:
    /// the system's web PKI roots, connect timeout 10 s, request timeout 30 s, the address
    /// map and loopback-only switch from the environment (`CAIRN_ADDR_MAP`,
    /// `CAIRN_LOOPBACK_ONLY`).
    pub fn builder(endpoint: impl Into<String>) -> ApiClientBuilder {
        ApiClientBuilder {
            endpoint: endpoint.into(),
            trust: None,
            headers: HeaderMap::new(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            net: None,
            loopback_only: false,
            pool_max_idle_per_host: None,
        }
    }

    /// The URL requests go to (after the address map), without a trailing `/`.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// A request to `base + path` (`path` starts with `/`), carrying the client's headers.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(
            method,
            format!("{}{path}", self.base.as_str().trim_end_matches('/')),
        )
    }

    /// Sends a request; a failure without an HTTP answer is classified for the retry
    /// policy and carries no URL.
    pub async fn send(&self, req: RequestBuilder) -> Result<Response, HttpError> {
        req.send().await.map_err(HttpError::from_reqwest)
    }
}

impl ApiClientBuilder {
    /// Trust for the server certificate (CA file, pinned fingerprint, or explicitly
    /// insecure). Without it, the web PKI roots are used.
    pub fn trust(mut self, trust: TlsTrust) -> Self {
        self.trust = Some(trust);
        self
    }

    /// Adds a header sent with every request, marked sensitive (never in `Debug`).
    pub fn auth_header(mut self, name: &'static str, value: &str) -> Result<Self, HttpError> {
        self.headers
            .insert(HeaderName::from_static(name), sensitive(value)?);
        Ok(self)
    }

    /// Adds a plain header sent with every request (e.g. `Accept`).
    pub fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
        self
    }

    /// How long connecting (TCP and TLS) may take.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long one request may take in all.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Uses this address map and switch instead of the environment's.
    pub fn net(mut self, net: Dialer) -> Self {
        self.net = Some(net);
        self
    }

    /// Turns the loopback-only switch on even if the environment does not (it can only be
    /// added, never removed).
    pub fn loopback_only(mut self, on: bool) -> Self {
        self.loopback_only |= on;
        self
    }

    /// Idle connections kept per host.
    pub fn pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.pool_max_idle_per_host = Some(n);
        self
    }

    /// Checks the endpoint (see [`resolve_endpoint`](crate::resolve_endpoint)) and builds
    /// the client. Nothing is sent.
    pub fn build(self) -> Result<ApiClient, HttpError> {
        let net = match self.net {
            Some(n) => n,
            None => Dialer::from_env().map_err(|e| HttpError::Config(e.to_string()))?,
        };
        let net = Dialer::new(net.map().clone(), net.loopback_only() || self.loopback_only);
        let base = resolve_endpoint(&self.endpoint, &net)?;
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .default_headers(self.headers);
        if let Some(n) = self.pool_max_idle_per_host {
            b = b.pool_max_idle_per_host(n);
        }
        if let Some(trust) = &self.trust {
            let tls = tls::client_config(trust).map_err(|e| HttpError::Config(e.to_string()))?;
            b = b.use_preconfigured_tls(tls);
        }
        let http = b
            .build()
            .map_err(|e| HttpError::Config(format!("HTTP client: {}", e.without_url())))?;
        Ok(ApiClient { http, base })
    }
}
