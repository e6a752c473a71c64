//! Client errors: the API's own code and message, or a transport failure. Never the token.

use cairn_http::{Class, Classify, GaveUp, HttpError, TransportKind};
use serde_json::Value;

/// Hetzner's codes for "busy, nothing was done, try again".
const BUSY_CODES: &[&str] = &["locked", "conflict"];

/// Hetzner's code for "this resource's protection refuses the action" (HTTP 423, like
/// `locked`, but never worth a retry).
const PROTECTED: &str = "protected";

/// An error from the Hetzner API or the transport to it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error envelope.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's error code, e.g. `uniqueness_error` (empty if it sent none).
        code: String,
        /// The API's message.
        message: String,
        /// `error.details`.
        details: Value,
    },
    /// The request may or may not have reached the API (connection dropped, timeout, bad
    /// body): the outcome of a write is unknown.
    #[error("transport: {0}")]
    Transport(String),
    /// No answer, classified by the client kit (never sent, unknown, or hopeless).
    #[error("{0}")]
    Http(HttpError),
    /// An action finished with status `error`.
    #[error("action {command} failed: {message}{}", if code.is_empty() { String::new() } else { format!(" ({code})") })]
    Action {
        /// The action's command.
        command: String,
        /// Its error code (empty if the API sent none).
        code: String,
        /// Its error message.
        message: String,
    },
    /// Configuration problem (bad endpoint, missing token, refused address).
    #[error("configuration: {0}")]
    Config(String),
    /// The retry policy stopped retrying a retryable failure (attempts or deadline).
    #[error("{why}; last error: {last}")]
    GaveUp {
        /// When and why it stopped.
        why: GaveUp,
        /// The last failure.
        last: Box<ApiError>,
    },
}

impl From<HttpError> for ApiError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Config(m) => ApiError::Config(m),
            other => ApiError::Http(other),
        }
    }
}

impl Classify for ApiError {
    fn class(&self) -> Class {
        match self {
            ApiError::Api { status, code, .. } => Class::Answer {
                status: *status,
                // 423 is both `locked` (busy) and `protected` (final: retrying cannot help).
                busy: BUSY_CODES.contains(&code.as_str()) || (*status == 423 && code != PROTECTED),
            },
            ApiError::Transport(_) => Class::Transport(TransportKind::Unknown),
            ApiError::Http(e) => e.class(),
            ApiError::Action { .. } | ApiError::Config(_) | ApiError::GaveUp { .. } => Class::Final,
        }
    }

    fn gave_up(self, why: GaveUp) -> Self {
        ApiError::GaveUp {
            why,
            last: Box::new(self),
        }
    }
}

impl ApiError {
    /// The error the retry policy gave up on, or this one.
    fn last(&self) -> &ApiError {
        match self {
            ApiError::GaveUp { last, .. } => last.last(),
            other => other,
        }
    }

    /// The description without the error code (for errors that carry the code apart).
    pub fn message_without_code(&self) -> String {
        match self {
            ApiError::Api {
                status, message, ..
            } => format!("{message} (HTTP {status})"),
            ApiError::Action {
                command, message, ..
            } => format!("action {command} failed: {message}"),
            ApiError::GaveUp { why, last } => {
                format!("{why}; last error: {}", last.message_without_code())
            }
            other => other.to_string(),
        }
    }

    /// The API's own error code, if it sent one.
    pub fn code(&self) -> Option<&str> {
        match self.last() {
            ApiError::Api { code, .. } | ApiError::Action { code, .. } if !code.is_empty() => {
                Some(code)
            }
            _ => None,
        }
    }

    /// The HTTP status of the API's answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self.last() {
            ApiError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the request certainly was not applied and may be repeated as is
    /// (`rate_limit_exceeded`, `locked`, `conflict`, `unavailable`, never connected).
    pub fn retry_safe(&self) -> bool {
        self.last().class().safe_to_repeat()
    }

    /// Whether the outcome of the request is unknown (5xx other than 503, a transport
    /// failure after the request may have been sent).
    pub fn ambiguous(&self) -> bool {
        match self.last().class() {
            Class::Transport(k) => k == TransportKind::Unknown,
            Class::Answer { status, busy } => !busy && status >= 500 && status != 503,
            Class::Final => false,
        }
    }

    /// Whether this is HTTP 404.
    pub fn not_found(&self) -> bool {
        matches!(self.last(), ApiError::Api { status: 404, .. })
    }

    /// The engine's error for `operation`: the API's code, the HTTP status, and
    /// `retryable` when the failure is safe to repeat (see `cairn_http::provider_error`).
    pub fn into_provider(self, operation: impl Into<String>) -> cairn_core::ProviderError {
        cairn_http::provider_error(
            operation,
            self.message_without_code(),
            self.code(),
            self.status(),
            self.last().class(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, code: &str) -> ApiError {
        ApiError::Api {
            status,
            code: code.into(),
            message: "m".into(),
            details: Value::Null,
        }
    }

    #[test]
    fn a_protected_answer_is_final_though_it_shares_locked_s_status() {
        assert!(answer(423, "locked").retry_safe());
        assert!(answer(409, "conflict").retry_safe());
        assert!(!answer(423, "protected").retry_safe());
        assert!(!answer(423, "protected").ambiguous());
    }
}
