//! The node provider's one error type: every variant names the host (and, where there is
//! one, the resource), so an operator can act on it without reading logs.

use cairn_core::net::DialError;

/// Why a step on a host failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The host is not in the provider's host list.
    #[error("host {0:?} is not declared")]
    UnknownHost(String),
    /// The dialer refused the address (loopback-only mode) before `ssh` was spawned.
    #[error("host {host}: {source}")]
    Dial {
        /// The host's name.
        host: String,
        /// What the dialer said.
        source: DialError,
    },
    /// The host presented a key that matches neither the known-hosts file nor the declared
    /// fingerprint; no command was run.
    #[error(
        "host {host} ({target}): host key verification failed: expected {}, presented {}; refusing to connect",
        list(expected),
        list(presented)
    )]
    HostKeyMismatch {
        /// The host's name.
        host: String,
        /// The address and port that were dialled.
        target: String,
        /// Fingerprints that would have been accepted (`SHA256:…`).
        expected: Vec<String>,
        /// Fingerprints the host presented (`SHA256:…`).
        presented: Vec<String>,
    },
    /// The SSH connection could not be made (refused, timed out, authentication failed).
    #[error("host {host} ({target}): ssh connection failed: {detail}")]
    Connect {
        /// The host's name.
        host: String,
        /// The address and port that were dialled.
        target: String,
        /// What `ssh` reported.
        detail: String,
    },
    /// The connection dropped while a command ran (`ssh` exit status 255).
    #[error("host {host}: connection lost while running `{program}`: {detail}")]
    ConnectionLost {
        /// The host's name.
        host: String,
        /// The remote program.
        program: String,
        /// What was observed.
        detail: String,
    },
    /// A command ran longer than the per-command timeout.
    #[error("host {host}: `{program}` did not finish within {secs} s")]
    Timeout {
        /// The host's name.
        host: String,
        /// The remote program.
        program: String,
        /// The timeout.
        secs: u64,
    },
    /// A command ran and failed.
    #[error("host {host}: `{program}` exited with status {status}: {stderr}")]
    Command {
        /// The host's name.
        host: String,
        /// The remote program.
        program: String,
        /// Its exit status.
        status: i32,
        /// Its standard error, trimmed and cut to a few hundred characters.
        stderr: String,
    },
    /// The path of a resource exists on the host but is not a regular file.
    #[error("{resource}: {path} on host {host} is not a regular file (it is a {what})")]
    NotAFile {
        /// The resource's kind and key.
        resource: String,
        /// The host's name.
        host: String,
        /// The path.
        path: String,
        /// What it is instead (`directory`, `fifo`, …).
        what: String,
    },
    /// A file on the host could not be understood or changed as declared.
    #[error("{resource}: {message}")]
    Resource {
        /// The resource's kind and key.
        resource: String,
        /// What is wrong.
        message: String,
    },
    /// The Kubernetes API of a declared cluster failed or answered something unusable.
    #[error("cluster {cluster}: {message}")]
    Kube {
        /// The cluster's declared name.
        cluster: String,
        /// What happened (never a credential).
        message: String,
    },
    /// A drain did not finish in time: a pod could not be evicted (a PodDisruptionBudget
    /// refused it) or did not go away. The node stays cordoned.
    #[error("{0}")]
    DrainTimeout(Box<DrainTimeout>),
    /// A local failure (spawning `ssh`, writing the control directory).
    #[error("{context}: {source}")]
    Local {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why a drain timed out (see [`NodeError::DrainTimeout`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "drain of node {node} timed out after {after}: pod {pod} {}; node {node} of cluster {cluster} stays cordoned",
    blocked(budget, detail)
)]
pub struct DrainTimeout {
    /// The cluster's declared name.
    pub cluster: String,
    /// The node being drained.
    pub node: String,
    /// The drain timeout, as shown (`300 s`).
    pub after: String,
    /// The pod that blocked, `namespace/name`.
    pub pod: String,
    /// The PodDisruptionBudget that refused its eviction, `namespace/name`, if one did.
    pub budget: Option<String>,
    /// The apiserver's last word on it.
    pub detail: String,
}

fn blocked(budget: &Option<String>, detail: &str) -> String {
    match budget {
        Some(b) => format!("is blocked by PodDisruptionBudget {b} ({detail})"),
        None => format!("was not evicted ({detail})"),
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

impl NodeError {
    /// Whether the failure is the transport's (the command may not have run at all).
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            NodeError::Connect { .. } | NodeError::ConnectionLost { .. }
        )
    }

    pub(crate) fn local(context: impl Into<String>, source: std::io::Error) -> Self {
        NodeError::Local {
            context: context.into(),
            source,
        }
    }
}

/// Cuts a command's standard error to something that fits in one error line.
pub(crate) fn trim_stderr(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let s = s.trim();
    match s.char_indices().nth(400) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
