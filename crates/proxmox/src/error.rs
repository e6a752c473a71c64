//! The error the provider's kinds return: the client's error, or a refusal the provider
//! makes itself; [`crate::provider::ProxmoxCtx`] maps both to core's `ProviderError`.

use crate::client::PveError;

/// What a Proxmox kind can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API or the transport failed.
    #[error(transparent)]
    Client(#[from] PveError),
    /// The VMID to create is taken by a VM another stack (or a person) owns.
    #[error("VMID {vmid} is already taken by VM '{name}' not owned by stack {stack}")]
    VmidTaken {
        /// The VMID.
        vmid: u32,
        /// The name of the VM that holds it.
        name: String,
        /// The stack that wanted it.
        stack: String,
    },
    /// The VM was gone when it was read back after a change.
    #[error("{0}")]
    Vanished(String),
    /// A write was asked of a read-only kind.
    #[error("{0} is a read-only lookup")]
    ReadOnly(&'static str),
}

impl Error {
    /// The code reported as `ProviderError.code`: the HTTP status or task exit status of
    /// an API error, or a name for the provider's own refusals.
    pub fn code(&self) -> Option<String> {
        match self {
            Error::Client(PveError::Api { status, .. }) => Some(status.to_string()),
            Error::Client(PveError::Task { exitstatus, .. }) => Some(format!("task: {exitstatus}")),
            Error::Client(_) => None,
            Error::VmidTaken { .. } => Some("vmid_taken".into()),
            Error::Vanished(_) => None,
            Error::ReadOnly(_) => Some("read_only".into()),
        }
    }

    /// Whether the engine may retry.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Client(e) => e.is_transient() || e.is_checksum_mismatch(),
            _ => false,
        }
    }
}
