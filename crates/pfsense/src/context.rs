//! What the pfSense kinds share ([`PfCtx`]): the client, the provider's options, which pools
//! are health-checked (learnt from observations and declarations, so a pool member's plan
//! shows the health gate its change will really go through), and the journal of executed
//! rollout steps; plus the error kinds return ([`PfError`]) and its mapping.

use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::Duration;

use cairn_core::kit::Context;
use cairn_core::{Declared, Diagnostic, Pending, ProviderError};

use crate::client::{ClientError, PfSenseClient};

/// Tunables of the provider's staged changes.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// How long a new server may take to pass its health check.
    pub server_check_timeout: Duration,
    /// How long a draining server may keep sessions before it is deleted anyway.
    pub drain_timeout: Duration,
    /// Interface addresses a frontend may bind besides declared VIPs.
    pub interface_addresses: Vec<Ipv4Addr>,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        ProviderOptions {
            server_check_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(60),
            interface_addresses: Vec::new(),
        }
    }
}

/// What a kind's change can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PfError {
    /// An API call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The change could not be completed (a health check that never passed, a pool that is
    /// not there): cairn's own finding, so it carries no API code.
    #[error("{message}")]
    Failed {
        /// What went wrong and what to do.
        message: String,
    },
}

impl PfError {
    /// A failure cairn found itself (no API code: `ProviderError.code` is the API's only).
    pub fn failed(message: impl Into<String>) -> Self {
        PfError::Failed {
            message: message.into(),
        }
    }
}

/// Which pools are health-checked.
#[derive(Debug, Default)]
struct Checked {
    declared: BTreeMap<String, bool>,
    observed: BTreeMap<String, bool>,
}

/// How many executed steps the journal keeps.
const JOURNAL_LEN: usize = 1000;

/// The context every pfSense kind runs with.
#[derive(Debug)]
pub struct PfCtx {
    /// The REST client.
    pub(crate) client: PfSenseClient,
    /// The provider's options.
    pub(crate) opts: ProviderOptions,
    /// Pool name → whether its servers are health-checked, as declared (wins: it is what
    /// the pool will be when the change runs) and as observed.
    checked: Mutex<Checked>,
    /// `(address, step)` of the last executed rollout steps, oldest first.
    journal: Mutex<VecDeque<(String, String)>>,
}

impl PfCtx {
    /// A context over this client.
    pub fn new(client: PfSenseClient, opts: ProviderOptions) -> Self {
        PfCtx {
            client,
            opts,
            checked: Mutex::new(Checked::default()),
            journal: Mutex::new(VecDeque::new()),
        }
    }

    /// Remembers whether a declared `pool` is health-checked.
    pub(crate) fn learn_declared_pool(&self, pool: &str, checked: bool) {
        if let Ok(mut m) = self.checked.lock() {
            m.declared.insert(pool.to_string(), checked);
        }
    }

    /// Remembers whether an observed `pool` is health-checked.
    pub(crate) fn learn_observed_pool(&self, pool: &str, checked: bool) {
        if let Ok(mut m) = self.checked.lock() {
            m.observed.insert(pool.to_string(), checked);
        }
    }

    /// Whether `pool` is health-checked: as declared, else as last observed, else assumed
    /// (a gate on an unchecked pool fails loudly; a missing gate on a checked one would
    /// send traffic to a server before its check passed).
    pub(crate) fn pool_checked(&self, pool: &str) -> bool {
        self.checked
            .lock()
            .ok()
            .and_then(|m| m.declared.get(pool).or(m.observed.get(pool)).copied())
            .unwrap_or(true)
    }

    /// Records one executed step of the change of `address`.
    pub(crate) fn record_step(&self, address: &str, step: &str) {
        tracing::info!(address, step, "rollout step");
        if let Ok(mut j) = self.journal.lock() {
            if j.len() == JOURNAL_LEN {
                j.pop_front();
            }
            j.push_back((address.to_string(), step.to_string()));
        }
    }

    /// The executed steps of `address`'s changes, in order (the last `JOURNAL_LEN` steps
    /// of all changes are kept).
    pub fn executed_steps(&self, address: &str) -> Vec<String> {
        self.journal
            .lock()
            .map(|j| {
                j.iter()
                    .filter(|(a, _)| a == address)
                    .map(|(_, s)| s.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Context for PfCtx {
    type Error = PfError;

    fn provider_error(&self, operation: String, error: PfError) -> ProviderError {
        match error {
            PfError::Client(e) => e.into_provider(operation),
            PfError::Failed { message } => ProviderError::new(operation, message),
        }
    }

    /// pfSense holds one config and one apply queue: changes run one at a time.
    fn concurrency(&self) -> usize {
        1
    }

    fn validate(&self, declared: &[Declared<'_>]) -> Vec<Diagnostic> {
        crate::validate::validate(self, declared)
    }

    async fn pending(&self) -> Result<Vec<Pending>, PfError> {
        crate::pending::read(self).await
    }

    async fn apply_pending(&self, id: &str) -> Option<Result<(), PfError>> {
        Some(crate::pending::apply(self, id).await)
    }
}
