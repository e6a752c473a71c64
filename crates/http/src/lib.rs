//! `cairn-http`: the client kit every provider's API client is built on, so the three of
//! them (and every later one) connect, retry, trust certificates and report errors the
//! same way.
//!
//! - **Endpoint** ([`ApiClient::builder`], [`resolve_endpoint`]): the API endpoint goes
//!   through the same address map and loopback-only switch as the data plane
//!   (`cairn_core::net`: `CAIRN_ADDR_MAP`, `CAIRN_LOOPBACK_ONLY`). An IP literal inside a
//!   mapped range is dialled on its loopback address; with the switch on, a non-loopback
//!   endpoint (or any host name but `localhost`) is refused before any connection. Plain
//!   `http://` is refused unless the dialled address is loopback.
//! - **Client** ([`ApiClient`]): proxies off (`no_proxy`), redirects never followed (a
//!   redirect could carry credentials to another host), connect and request timeouts, TLS
//!   trust from `cairn_core::tls`, auth headers marked sensitive so no `Debug` output of
//!   the client or a request shows them. Transport failures carry no URL and are
//!   classified: [`TransportKind::NotSent`] (never reached the server),
//!   [`TransportKind::Unknown`], [`TransportKind::Permanent`] (e.g. untrusted certificate).
//! - **Retry** ([`RetryPolicy`]): one set of rules, numbers per provider. Retried for every
//!   request: transport failures that certainly did not reach the server, 429, 503 and the
//!   API-specific "busy" answers a provider recognises ([`Class::Answer`] `busy`, e.g.
//!   Hetzner `locked`/`conflict`, Proxmox "can't lock file … got timeout"). Retried only
//!   for idempotent requests: transport failures with an unknown outcome and other 5xx
//!   (500, 502, 504). Waits are capped exponential backoff with jitter, or longer when the
//!   server says so (`Retry-After`, `RateLimit-Reset` on a 429, see [`server_wait`]); an
//!   overall deadline ends it with [`GaveUp`] wrapped into the provider's error.
//! - **TLS trust from the environment** ([`TrustVars`]): the same precedence for every
//!   provider — exactly one of CA file, fingerprint, or the explicit insecure switch (`1`,
//!   warns); two set is an error, none set is an error naming all three.
//! - **Errors into the engine** ([`provider_error`]): builds `cairn_core::ProviderError`
//!   with one meaning per field — `code` only the API's own error code, `status` the HTTP
//!   status, `retryable` = [`Class::safe_to_repeat`] (the engine may retry the whole
//!   change).
//!
//! A provider keeps its own specifics as parameters: its auth header or per-request
//! credentials ([`sensitive`]), its "busy" answers (its [`Classify`] impl), its pacing
//! (Hetzner's rate-limit budget), its envelope decoding.

mod client;
mod endpoint;
mod error;
mod retry;
mod trust;

pub use client::{ApiClient, ApiClientBuilder, sensitive};
pub use endpoint::{is_loopback_url, resolve_endpoint};
pub use error::HttpError;
pub use retry::{
    Class, Classify, Failure, GaveUp, RetryPolicy, TransportKind, server_wait, server_wait_at,
};
pub use trust::{TrustError, TrustVars};

/// Builds the engine's error for `operation`: `code` is the API's own error code (never
/// an HTTP status or a made-up word), `status` the HTTP status of the answer if there was
/// one, and `retryable` whether the failure is one [`Class::safe_to_repeat`] — nothing was
/// applied and the condition is transient — so the engine may retry the whole change.
pub fn provider_error(
    operation: impl Into<String>,
    message: impl Into<String>,
    code: Option<&str>,
    status: Option<u16>,
    class: Class,
) -> cairn_core::ProviderError {
    let mut e = cairn_core::ProviderError::new(operation, message);
    e.code = code.map(str::to_string);
    e.status = status;
    e.retryable = class.safe_to_repeat();
    e
}
