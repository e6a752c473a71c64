//! The cairn [`Provider`] for Hetzner Cloud, assembled by the provider kit from the kinds in
//! [`crate::kinds`]: the shared context ([`Hetzner`]: client, declared specs for write-only
//! fields, error mapping, cross-resource validation) and the public [`HetznerProvider`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use async_trait::async_trait;
use cairn_core::digest_key::DigestKey;
use cairn_core::kit::{Context, KitProvider, ProviderBuilder};
use cairn_core::{
    Change, CheckResult, Declared, Diagnostic, FieldError, ObserveRequest, Observed, PlannedChange,
    Provider, ProviderError, Resource,
};
use serde_json::Value;

use crate::client::{ApiError, Client, ClientConfig};
use crate::kinds::Ops;

/// What every Hetzner kind shares: the client, and the declared specs seen by `validate`
/// (write-only fields such as `user_data` are compared against them when observing).
pub struct Hetzner {
    client: Arc<Client>,
    declared: Mutex<HashMap<(String, String), Value>>,
    concurrency: AtomicUsize,
    /// The key of the write-only fields' digest labels, loaded on first use
    /// ([`DigestKey::load`]) unless given ([`HetznerProvider::with_digest_key`]).
    digest_key: OnceLock<Result<DigestKey, String>>,
}

impl Hetzner {
    /// The HTTP client.
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// Request helpers over the client.
    pub(crate) fn ops(&self) -> Ops<'_> {
        Ops { c: &self.client }
    }

    /// The digest key (`CAIRN_DIGEST_KEY`, else the state directory's key file, made on
    /// first use).
    pub(crate) fn digest_key(&self) -> Result<&DigestKey, ApiError> {
        self.digest_key
            .get_or_init(|| DigestKey::load().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| ApiError::Config(e.clone()))
    }

    /// Remembers `spec` as the declared spec of its key (after a change, so observing right
    /// after knows the write-only values just written).
    pub(crate) fn remember<R: Resource>(&self, spec: &R) {
        if let Ok(v) = serde_json::to_value(spec) {
            lock(&self.declared).insert((R::KIND.to_string(), spec.key()), v);
        }
    }

    /// The declared spec of kind `R` with key `key`, as last seen by `validate`.
    pub(crate) fn declared<R: Resource>(&self, key: &str) -> Option<R> {
        let v = lock(&self.declared)
            .get(&(R::KIND.to_string(), key.to_string()))
            .cloned()?;
        serde_json::from_value(v).ok()
    }
}

fn perr(op: String, e: ApiError) -> ProviderError {
    e.into_provider(op)
}

#[async_trait]
impl Context for Hetzner {
    type Error = ApiError;

    fn provider_error(&self, operation: String, error: ApiError) -> ProviderError {
        perr(operation, error)
    }

    fn concurrency(&self) -> usize {
        self.concurrency.load(Ordering::Relaxed)
    }

    fn validate(&self, declared: &[Declared<'_>]) -> Vec<Diagnostic> {
        {
            let mut cache = lock(&self.declared);
            for d in declared {
                cache.insert((d.kind.to_string(), d.key.to_string()), d.spec.clone());
            }
        }
        crate::validate::cross_check(declared)
    }

    async fn check_plan(
        &self,
        changes: &[PlannedChange<'_>],
        _settings: &BTreeMap<String, String>,
    ) -> Result<Vec<CheckResult>, ProviderError> {
        crate::checks::check_plan(&self.client, changes)
            .await
            .map_err(|e| perr("read the Hetzner catalog for plan checks".into(), e))
    }
}

/// The Hetzner provider: the kit's provider over [`Hetzner`], plus the load-balancer gate.
pub struct HetznerProvider(KitProvider<Hetzner>);

impl std::fmt::Debug for HetznerProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HetznerProvider")
            .field("endpoint", &self.client().config().endpoint)
            .field("kinds", &self.0.kinds())
            .finish_non_exhaustive()
    }
}

impl HetznerProvider {
    /// A provider over a client.
    pub fn new(cfg: ClientConfig) -> Result<Self, ApiError> {
        let ctx = Hetzner {
            client: Arc::new(Client::new(cfg)?),
            declared: Mutex::new(HashMap::new()),
            concurrency: AtomicUsize::new(8),
            digest_key: OnceLock::new(),
        };
        Ok(HetznerProvider(
            crate::kinds::register(ProviderBuilder::new("hetzner", ctx)).build(),
        ))
    }

    /// From `HCLOUD_TOKEN` / `HCLOUD_ENDPOINT`.
    pub fn from_env() -> Result<Self, ApiError> {
        Self::new(ClientConfig::from_env()?)
    }

    /// Uses `key` for the digest labels of write-only fields instead of loading this
    /// machine's ([`DigestKey::load`]) on first use.
    pub fn with_digest_key(self, key: DigestKey) -> Self {
        let _ = self.0.ctx().digest_key.set(Ok(key));
        self
    }

    /// Sets how many changes run at once.
    pub fn with_concurrency(self, n: usize) -> Self {
        self.0.ctx().concurrency.store(n.max(1), Ordering::Relaxed);
        self
    }

    /// The HTTP client.
    pub fn client(&self) -> &Client {
        &self.0.ctx().client
    }

    /// A gate probe that passes when every target of load balancer `name` is healthy.
    pub fn lb_targets_healthy(&self, name: &str) -> crate::gate::LbTargetsHealthy {
        crate::gate::LbTargetsHealthy::new(self.0.ctx().client.clone(), name)
    }

    /// Every kind's schema paths checked against its example values (empty = all resolve).
    pub fn check_schemas(&self) -> Vec<String> {
        self.0.check_schemas()
    }
}

#[async_trait]
impl Provider for HetznerProvider {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn kinds(&self) -> &[&'static str] {
        self.0.kinds()
    }

    fn schema(&self, kind: &str) -> Option<cairn_core::Schema> {
        self.0.schema(kind)
    }

    fn concurrency(&self) -> usize {
        self.0.concurrency()
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

    async fn release(&self, change: Change<'_>) -> Result<(), ProviderError> {
        self.0.release(change).await
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A diagnostic for a resource and field.
pub(crate) fn diag(d: &Declared<'_>, field: String, message: String) -> Diagnostic {
    Diagnostic {
        address: d.address.clone(),
        error: FieldError::new(field, message),
    }
}
