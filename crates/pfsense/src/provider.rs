//! The pfSense provider, assembled from its kinds ([`cairn_core::kit::ProviderBuilder`]):
//! every kind is registered once, by its line in [`crate::kinds`]'s `kinds!`; dispatch, `kinds()`, decoding, error mapping and the
//! rollout steps shown in plans come from the registry. [`PfSenseProvider`] is a cheap,
//! clonable handle over it that adds the gates stacks use.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::kit::{KitProvider, ProviderBuilder};
use cairn_core::{
    Change, CheckResult, Declared, Diagnostic, ObserveRequest, Observed, PlannedChange, Provider,
    ProviderError,
};
use serde_json::Value;

use crate::client::{ClientError, PfSenseClient};
use crate::context::PfCtx;
pub use crate::context::ProviderOptions;
use crate::gate::HaproxyServerUp;
use crate::kinds::{self, HaproxyPoolMember};

/// The pfSense provider (clones share one registry, context and step journal).
#[derive(Debug, Clone)]
pub struct PfSenseProvider {
    inner: Arc<KitProvider<PfCtx>>,
}

impl PfSenseProvider {
    /// A provider over this client.
    pub fn new(client: PfSenseClient, opts: ProviderOptions) -> Self {
        let kit = kinds::register(ProviderBuilder::new(
            kinds::PROVIDER,
            PfCtx::new(client, opts),
        ))
        .build();
        PfSenseProvider {
            inner: Arc::new(kit),
        }
    }

    /// A provider configured from the environment (`PFSENSE_URL`, `PFSENSE_API_KEY`, and
    /// `PFSENSE_CA_FILE` or `PFSENSE_TLS_FINGERPRINT`), with default options.
    pub fn from_env() -> Result<Self, ClientError> {
        Ok(Self::new(
            PfSenseClient::from_env()?,
            ProviderOptions::default(),
        ))
    }

    /// The client.
    pub fn client(&self) -> &PfSenseClient {
        &self.inner.ctx().client
    }

    /// The registry (e.g. for [`KitProvider::check_schemas`]).
    pub fn kit(&self) -> &KitProvider<PfCtx> {
        &self.inner
    }

    /// The rollout steps executed for the resource at `address` (e.g.
    /// `pfsense_haproxy_backend.apiserver_nodes`), in order, as the plan shows them.
    pub fn executed_steps(&self, address: &str) -> Vec<String> {
        self.inner.ctx().executed_steps(address)
    }

    /// A "HAProxy backend server UP" gate probe for server `server` of pool `pool`.
    pub fn server_up(&self, pool: &str, server: &str) -> HaproxyServerUp {
        HaproxyServerUp::new(self.client().clone(), pool, server)
    }

    /// The [`Self::server_up`] gate for a pool member (its pool name as in its key).
    pub fn member_up(&self, member: &HaproxyPoolMember) -> HaproxyServerUp {
        self.server_up(&member.pool_name(), &member.name)
    }
}

#[async_trait]
impl Provider for PfSenseProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn kinds(&self) -> &[&'static str] {
        self.inner.kinds()
    }

    fn concurrency(&self) -> usize {
        self.inner.concurrency()
    }

    async fn observe(&self, req: ObserveRequest<'_>) -> Result<Vec<Observed>, ProviderError> {
        self.inner.observe(req).await
    }

    async fn create(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        self.inner.create(change).await
    }

    async fn update(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        self.inner.update(change).await
    }

    async fn delete(&self, change: Change<'_>) -> Result<(), ProviderError> {
        self.inner.delete(change).await
    }

    async fn pending(&self) -> Result<Vec<cairn_core::Pending>, ProviderError> {
        self.inner.pending().await
    }

    async fn apply_pending(&self, id: &str) -> Result<(), ProviderError> {
        self.inner.apply_pending(id).await
    }

    fn rollout_steps(
        &self,
        kind: &str,
        before: Option<&Observed>,
        after: Option<&Value>,
    ) -> Vec<String> {
        self.inner.rollout_steps(kind, before, after)
    }

    fn validate(&self, declared: &[Declared<'_>]) -> Vec<Diagnostic> {
        self.inner.validate(declared)
    }

    async fn check_plan(
        &self,
        changes: &[PlannedChange<'_>],
        settings: &BTreeMap<String, String>,
    ) -> Result<Vec<CheckResult>, ProviderError> {
        self.inner.check_plan(changes, settings).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ApiKey;
    use cairn_core::Resource;
    use cairn_core::tls::TlsTrust;

    fn provider() -> PfSenseProvider {
        let client = PfSenseClient::new(
            "https://127.0.0.1:1",
            ApiKey::new("k"),
            &TlsTrust::Fingerprint(["AB"; 32].join(":")),
        )
        .unwrap();
        PfSenseProvider::new(client, ProviderOptions::default())
    }

    #[test]
    fn every_kind_schema_path_exists() {
        assert_eq!(provider().kit().check_schemas(), Vec::<String>::new());
    }

    #[test]
    fn every_kind_is_registered() {
        let p = provider();
        assert_eq!(p.kinds().len(), 6);
        assert!(p.kinds().contains(&HaproxyPoolMember::KIND));
    }
}
