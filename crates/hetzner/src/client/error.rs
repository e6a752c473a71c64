//! Client errors: the API's own code and message, or a transport failure. Never the token.

use serde_json::Value;

/// An error from the Hetzner API or the transport to it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The API answered with an error envelope.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's error code, e.g. `uniqueness_error`.
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
    /// An action finished with status `error`.
    #[error("action {command} failed: {message} ({code})")]
    Action {
        /// The action's command.
        command: String,
        /// Its error code.
        code: String,
        /// Its error message.
        message: String,
    },
    /// Configuration problem (bad endpoint, missing token, refused address).
    #[error("configuration: {0}")]
    Config(String),
}

impl ApiError {
    /// The description without the error code (for errors that carry the code apart).
    pub fn message_without_code(&self) -> String {
        match self {
            ApiError::Api {
                status, message, ..
            } => format!("{message} (HTTP {status})"),
            ApiError::Action {
                command, message, ..
            } => format!("action {command} failed: {message}"),
            other => other.to_string(),
        }
    }

    /// The API error code, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Api { code, .. } | ApiError::Action { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the request certainly was not applied and may be repeated as is
    /// (`rate_limit_exceeded`, `locked`, `conflict`, `unavailable`).
    pub fn retry_safe(&self) -> bool {
        matches!(self, ApiError::Api { status, code, .. }
            if *status == 429 || *status == 423 || code == "conflict" || code == "locked" || *status == 503)
    }

    /// Whether the outcome of the request is unknown (5xx other than 503, transport).
    pub fn ambiguous(&self) -> bool {
        match self {
            ApiError::Transport(_) => true,
            ApiError::Api { status, .. } => *status >= 500 && *status != 503,
            _ => false,
        }
    }

    /// Whether this is HTTP 404.
    pub fn not_found(&self) -> bool {
        matches!(self, ApiError::Api { status: 404, .. })
    }
}
