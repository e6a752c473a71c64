//! The `proxmox` provider, assembled by registering its kinds ([`crate::kinds`]) over a
//! shared [`ProxmoxCtx`] (the client); the context also carries the plan-time checks
//! (disk shrink, host capacity) as its `check_plan` hook.

use std::collections::BTreeMap;
use std::ops::Deref;

use async_trait::async_trait;
use cairn_core::kit::{Context, KitProvider, ProviderBuilder};
use cairn_core::{
    Change, CheckResult, Declared, Diagnostic, ObserveRequest, Observed, PlannedChange, Provider,
    ProviderError, Schema,
};
use serde_json::Value;

use crate::capacity;
use crate::client::{ClientConfig, PveClient};
use crate::error::Error;

/// What the Proxmox kinds share: the API client.
#[derive(Debug, Clone)]
pub struct ProxmoxCtx {
    client: PveClient,
}

impl ProxmoxCtx {
    /// The client.
    pub fn client(&self) -> &PveClient {
        &self.client
    }
}

#[async_trait]
impl Context for ProxmoxCtx {
    type Error = Error;

    fn provider_error(&self, operation: String, error: Error) -> ProviderError {
        match error {
            Error::Client(e) => e.into_provider(operation),
            // cairn's own refusals carry no code: `code` is only ever the API's.
            other => ProviderError::new(operation, other.to_string()),
        }
    }

    async fn check_plan(
        &self,
        changes: &[PlannedChange<'_>],
        settings: &BTreeMap<String, String>,
    ) -> Result<Vec<CheckResult>, ProviderError> {
        let mut out = capacity::disk_shrinks(changes);
        out.extend(
            capacity::check(&self.client, changes, settings)
                .await
                .map_err(|e| self.provider_error("check host capacity".into(), e.into()))?,
        );
        Ok(out)
    }
}

/// The Proxmox VE provider: the kit provider with the `proxmox_vm` and `proxmox_template`
/// kinds registered (a thin newtype so callers keep `ProxmoxProvider::new(client)`).
#[derive(Debug)]
pub struct ProxmoxProvider(KitProvider<ProxmoxCtx>);

impl ProxmoxProvider {
    /// A provider over a client.
    pub fn new(client: PveClient) -> Self {
        ProxmoxProvider(
            crate::kinds::register(ProviderBuilder::new("proxmox", ProxmoxCtx { client })).build(),
        )
    }

    /// A provider configured from the environment (see [`ClientConfig::from_env`]).
    pub fn from_env() -> Result<Self, ProviderError> {
        let cfg = ClientConfig::from_env()
            .map_err(|e| ProviderError::new("configure proxmox", e.to_string()))?;
        let client = PveClient::new(cfg).map_err(|e| e.into_provider("configure proxmox"))?;
        Ok(ProxmoxProvider::new(client))
    }

    /// The client.
    pub fn client(&self) -> &PveClient {
        self.0.ctx().client()
    }
}

impl Deref for ProxmoxProvider {
    type Target = KitProvider<ProxmoxCtx>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

#[async_trait]
impl Provider for ProxmoxProvider {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn kinds(&self) -> &[&'static str] {
        self.0.kinds()
    }

    fn concurrency(&self) -> usize {
        self.0.concurrency()
    }

    fn schema(&self, kind: &str) -> Option<Schema> {
        self.0.schema(kind)
    }

    async fn observe(&self, req: ObserveRequest<'_>) -> Result<Vec<Observed>, ProviderError> {
        self.0.observe(req).await
    }

    async fn create(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        self.0.create(change).await
    }

    async fn update(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        self.0.update(change).await
    }

    async fn delete(&self, change: Change<'_>) -> Result<(), ProviderError> {
        self.0.delete(change).await
    }

    fn rollout_steps(
        &self,
        kind: &str,
        before: Option<&Observed>,
        after: Option<&Value>,
    ) -> Vec<String> {
        self.0.rollout_steps(kind, before, after)
    }

    fn validate(&self, declared: &[Declared<'_>]) -> Vec<Diagnostic> {
        self.0.validate(declared)
    }

    async fn check_plan(
        &self,
        changes: &[PlannedChange<'_>],
        settings: &BTreeMap<String, String>,
    ) -> Result<Vec<CheckResult>, ProviderError> {
        self.0.check_plan(changes, settings).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::tls::TlsTrust;

    fn provider() -> ProxmoxProvider {
        let cfg = ClientConfig::new(
            "https://127.0.0.1:1",
            crate::client::Auth::Token("root@pam!t=x".into()),
            TlsTrust::Insecure,
        );
        ProxmoxProvider::new(PveClient::new(cfg).unwrap())
    }

    #[test]
    fn every_kind_schema_path_exists() {
        let p = provider();
        assert_eq!(p.check_schemas(), Vec::<String>::new());
        assert_eq!(p.kinds(), ["proxmox_vm", "proxmox_template"]);
        // The newtype forwards the registry's answers (the engine redacts by this schema).
        assert!(Provider::schema(&p, "proxmox_template").is_some_and(|s| s.read_only));
        assert!(Provider::schema(&p, "proxmox_vm").is_some_and(|s| !s.read_only));
    }
}
