//! The kit's own errors: a refused or broken client configuration, or a request that got
//! no HTTP answer (classified for the retry policy). Never the URL's secrets or a header.

use crate::retry::{Class, TransportKind};

/// Why a client could not be built or a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The endpoint, TLS trust or a header was refused before any connection.
    #[error("configuration: {0}")]
    Config(String),
    /// No HTTP answer.
    #[error("transport: {message}")]
    Transport {
        /// What the failure says about the request.
        kind: TransportKind,
        /// What happened (URL removed, causes appended).
        message: String,
    },
}

impl HttpError {
    /// How the retry policy sees this error.
    pub fn class(&self) -> Class {
        match self {
            HttpError::Config(_) => Class::Transport(TransportKind::Permanent),
            HttpError::Transport { kind, .. } => Class::Transport(*kind),
        }
    }

    /// Classifies a reqwest error: a connection that was never made is `NotSent`, a
    /// certificate that is not trusted is `Permanent`, anything else `Unknown`.
    pub fn from_reqwest(e: reqwest::Error) -> Self {
        let message = describe(&e);
        let kind = if e.is_builder() || e.is_redirect() || is_tls_trust_failure(&e, &message) {
            TransportKind::Permanent
        } else if e.is_connect() {
            TransportKind::NotSent
        } else {
            TransportKind::Unknown
        };
        HttpError::Transport { kind, message }
    }
}

/// The error without its URL, followed by its causes (which say e.g. which certificate
/// check failed).
fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), "<url>");
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}

/// Whether a connect failure is the TLS trust refusing the server, which no retry fixes.
fn is_tls_trust_failure(e: &reqwest::Error, message: &str) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if s.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        // io::Error::source skips the wrapped error itself; look inside.
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        src = s.source();
    }
    message.contains("certificate")
}
