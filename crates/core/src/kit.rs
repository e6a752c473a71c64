//! The provider kit: a kind is implemented once as typed code ([`Kind`]), and a provider is
//! assembled by registering its kinds ([`ProviderBuilder`]). The registry derives dispatch,
//! [`Provider::kinds`], decoding of resolved specs and prior observations, error mapping and
//! the staged steps shown in plans, so no provider matches on kind strings or indexes JSON.
//!
//! ```ignore
//! let provider = ProviderBuilder::new("hetzner", ctx)
//!     .kind(Servers)
//!     .kind(Networks)
//!     .build();
//! ```
//!
//! The engine still speaks JSON ([`Observed::value`], [`Change::desired`]): the kit is the one
//! place where those values become the kind's typed spec and observed form and back.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::provider::{
    Change, CheckResult, Declared, Diagnostic, Marker, ObserveRequest, Observed, Pending,
    PlannedChange, Provider, ProviderError,
};
use crate::resource::{FieldError, Resource, Schema};
use crate::value::Address;

/// One object found by a kind's observe, in the kind's typed observed form.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<O> {
    /// The natural key (same as `Resource::key` of the matching spec).
    pub key: String,
    /// The object in spec shape plus computed fields.
    pub value: O,
    /// The ownership marker found on the object, if any.
    pub marker: Option<Marker>,
    /// Other objects this one uses, as `(kind, key)`: orders deletes of undeclared objects.
    pub uses: Vec<(String, String)>,
    /// What could not be told about the object (plan warnings, see [`Observed::warnings`]).
    pub warnings: Vec<String>,
}

impl<O> Found<O> {
    /// An object with its key and marker, using nothing.
    pub fn new(key: impl Into<String>, value: O, marker: Option<Marker>) -> Self {
        Found {
            key: key.into(),
            value,
            marker,
            uses: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The same object with these warnings.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings = warnings;
        self
    }
}

/// What a kind is asked to observe: the declared keys, plus everything owned by `stack`.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// Keys of the declared resources of this kind.
    pub keys: &'a [String],
    /// The stack whose owned objects must also be reported.
    pub stack: &'a str,
}

/// Everything a kind needs to perform one change besides the typed values: who it is, the
/// marker to write, what changed, and the staged steps to execute — the very list the plan
/// showed, computed by [`Kind::steps`] from the same inputs.
#[derive(Debug)]
pub struct Op<'a, S> {
    /// The resource's address in the stack (for messages and logs).
    pub address: &'a Address,
    /// The natural key.
    pub key: &'a str,
    /// The marker to write (stack + fingerprint of the desired spec).
    pub marker: &'a Marker,
    /// For updates: the changed field paths, e.g. `labels`, `services[443].destination_port`.
    pub changed: &'a [String],
    /// The staged steps to execute, in order (empty for single-step changes).
    pub steps: Vec<S>,
}

impl<S> Op<'_, S> {
    /// Whether the field at `path` (or anything below it) changed.
    pub fn changed(&self, path: &str) -> bool {
        self.changed.iter().any(|c| {
            c == path
                || c.strip_prefix(path)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }
}

/// The step type of a kind whose changes are a single step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoStep {}

impl fmt::Display for NoStep {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

/// What a provider shares between its kinds: the API client, caches, and the provider-wide
/// hooks. Kinds return `Self::Error`; the registry maps it to a [`ProviderError`] that names
/// the operation.
#[async_trait]
pub trait Context: Send + Sync + 'static {
    /// The error kinds return (usually the client's error type).
    type Error: fmt::Display + Send + Sync + 'static;

    /// Maps a kind's error to the engine's error for `operation` (e.g. `create
    /// hetzner_server.web`): the API's own code, the message, whether the engine may retry.
    fn provider_error(&self, operation: String, error: Self::Error) -> ProviderError;

    /// How many changes this provider runs at once.
    fn concurrency(&self) -> usize {
        8
    }

    /// Cross-resource validation over all declared resources of this provider.
    fn validate(&self, _declared: &[Declared<'_>]) -> Vec<Diagnostic> {
        Vec::new()
    }

    /// Plan-time checks (policies) over the proposed changes of this provider's kinds.
    async fn check_plan(
        &self,
        _changes: &[PlannedChange<'_>],
        _settings: &BTreeMap<String, String>,
    ) -> Result<Vec<CheckResult>, ProviderError> {
        Ok(Vec::new())
    }

    /// Changes written but not in effect ([`Provider::pending`]); default none.
    async fn pending(&self) -> Result<Vec<Pending>, Self::Error> {
        Ok(Vec::new())
    }

    /// Puts pending changes `id` into effect ([`Provider::apply_pending`]); `None` (the
    /// default): this provider never reports any.
    async fn apply_pending(&self, _id: &str) -> Option<Result<(), Self::Error>> {
        None
    }
}

/// A resource kind implemented once, as typed code, for a provider context `C`.
///
/// `Observed` is the kind's observed form: the spec's shape plus computed fields (ids,
/// assigned addresses), serialised the same way as the spec so the engine can diff them.
#[async_trait]
pub trait Kind<C: Context>: Send + Sync + 'static {
    /// The spec a stack author writes; its `Resource::KIND` is the kind's name.
    type Spec: Resource;
    /// What the API reports, in spec shape plus computed fields.
    type Observed: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// A staged step of a change, shown in the plan and executed by the change ([`NoStep`]
    /// for single-step kinds).
    type Step: fmt::Display + Send + Sync + 'static;

    /// Observes every object whose key is in `q.keys` or that carries `q.stack`'s marker,
    /// with as few list calls as the API allows.
    async fn observe(&self, ctx: &C, q: Query<'_>) -> Result<Vec<Found<Self::Observed>>, C::Error>;

    /// The staged steps of a change from `before` (absent for creates) to `after` (absent
    /// for deletes). The same list is shown in the plan and handed to the change in
    /// [`Op::steps`], so what is shown and what is done cannot disagree.
    fn steps(
        &self,
        _ctx: &C,
        _before: Option<&Self::Observed>,
        _after: Option<&Self::Spec>,
    ) -> Vec<Self::Step> {
        Vec::new()
    }

    /// Plan-time checks of one change against what was observed (e.g. a size that may only
    /// grow). Each problem names the field; any problem refuses the plan before anything is
    /// touched.
    fn check(
        &self,
        _ctx: &C,
        _before: Option<&Self::Observed>,
        _after: Option<&Self::Spec>,
    ) -> Vec<FieldError> {
        Vec::new()
    }

    /// Creates the object and returns what was observed after.
    async fn create(
        &self,
        ctx: &C,
        spec: &Self::Spec,
        op: Op<'_, Self::Step>,
    ) -> Result<Self::Observed, C::Error>;

    /// Brings the object to `spec` in place and returns what was observed after.
    async fn update(
        &self,
        ctx: &C,
        prior: &Self::Observed,
        spec: &Self::Spec,
        op: Op<'_, Self::Step>,
    ) -> Result<Self::Observed, C::Error>;

    /// Deletes the object.
    async fn delete(
        &self,
        ctx: &C,
        prior: &Self::Observed,
        op: Op<'_, Self::Step>,
    ) -> Result<(), C::Error>;

    /// Releases the object: removes cairn's marker and changes nothing else. Used for
    /// adopted objects whose declaration disappeared (a release is not a delete). `None`
    /// (the default) means the kind cannot release; the registry reports that as an error
    /// naming the kind, and nothing is touched.
    async fn release(
        &self,
        _ctx: &C,
        _prior: &Self::Observed,
        _op: Op<'_, Self::Step>,
    ) -> Option<Result<(), C::Error>> {
        None
    }

    /// The object's identity beyond its key (a Hetzner id, a pfSense pool server's place in
    /// its backend), if the API has one. A delete re-reads the object first and deletes only
    /// the object with the planned identity and ownership marker.
    fn identity(_observed: &Self::Observed) -> Option<String> {
        None
    }

    /// A fully populated spec: every optional field set, every list with at least one item.
    /// The schema check ([`check_schema`]) walks the kind's schema paths through it, so a
    /// typo in a path fails a test instead of silently doing nothing.
    fn example() -> Self::Spec;

    /// A fully populated observed value, if the kind declares computed fields that are not
    /// part of the spec (ids, assigned addresses): computed paths are checked against it.
    fn example_observed() -> Option<Self::Observed> {
        None
    }
}

/// Declares a provider's kind modules and its registration in one place: one line per kind
/// names the module, the kind handler and what the module exports, and the macro writes the
/// `mod`, the `pub use` and a `register` function that adds every kind to a
/// [`ProviderBuilder`] in the order given. Adding a kind is one line here (plus its file).
///
/// ```ignore
/// cairn_core::kinds! {
///     context: Hetzner;
///     mod ssh_key::SshKeys => { SshKey, SshKeyAttrs };
///     pub mod volume::Volumes => { Volume, VolumeObserved };
/// }
/// // crate code: kinds::register(ProviderBuilder::new("hetzner", ctx)).build()
/// ```
#[macro_export]
macro_rules! kinds {
    (
        context: $ctx:ty;
        $( $vis:vis mod $module:ident :: $kind:ident => { $($export:ident),* $(,)? }; )*
    ) => {
        $(
            $vis mod $module;
            pub use $module::{$($export),*};
        )*

        /// Registers every kind of this provider, in order: the one place a kind is added.
        pub(crate) fn register(
            b: $crate::kit::ProviderBuilder<$ctx>,
        ) -> $crate::kit::ProviderBuilder<$ctx> {
            b $( .kind($module::$kind) )*
        }
    };
}

/// A kind with its types erased, as the registry holds it.
#[async_trait]
trait ErasedKind<C: Context>: Send + Sync {
    fn name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    fn check_schema(&self) -> Vec<String>;
    async fn observe(&self, ctx: &C, q: Query<'_>) -> Result<Vec<Observed>, ProviderError>;
    fn steps(&self, ctx: &C, before: Option<&Observed>, after: Option<&Value>) -> Vec<String>;
    fn check(&self, ctx: &C, before: Option<&Observed>, after: Option<&Value>) -> Vec<FieldError>;
    async fn create(&self, ctx: &C, change: &Change<'_>) -> Result<Value, ProviderError>;
    async fn update(&self, ctx: &C, change: &Change<'_>) -> Result<Value, ProviderError>;
    async fn delete(&self, ctx: &C, change: &Change<'_>) -> Result<(), ProviderError>;
    async fn release(&self, ctx: &C, change: &Change<'_>) -> Result<(), ProviderError>;
}

struct Erased<K, C>(K, std::marker::PhantomData<fn() -> C>);

fn operation(verb: &str, change: &Change<'_>) -> String {
    format!("{verb} {} ({})", change.address, change.kind)
}

fn decode<T: DeserializeOwned>(what: &str, op: &str, v: &Value) -> Result<T, ProviderError> {
    serde_json::from_value(v.clone())
        .map_err(|e| ProviderError::new(op, format!("cannot read the {what}: {e}")))
}

fn encode<T: Serialize>(op: &str, v: &T) -> Result<Value, ProviderError> {
    serde_json::to_value(v)
        .map_err(|e| ProviderError::new(op, format!("cannot serialise the observed value: {e}")))
}

impl<K: Kind<C>, C: Context> Erased<K, C> {
    fn desired(&self, op: &str, change: &Change<'_>) -> Result<K::Spec, ProviderError> {
        let v = change
            .desired
            .ok_or_else(|| ProviderError::new(op, "no desired spec"))?;
        decode("desired spec", op, v)
    }

    fn prior(&self, op: &str, change: &Change<'_>) -> Result<K::Observed, ProviderError> {
        let p = change
            .prior
            .ok_or_else(|| ProviderError::new(op, "nothing was observed"))?;
        decode("observed object", op, &p.value)
    }

    fn op<'a>(
        &self,
        ctx: &C,
        change: &'a Change<'_>,
        before: Option<&K::Observed>,
        after: Option<&K::Spec>,
    ) -> Op<'a, K::Step> {
        Op {
            address: change.address,
            key: change.key,
            marker: change.marker,
            changed: change.changed,
            steps: self.0.steps(ctx, before, after),
        }
    }
}

#[async_trait]
impl<K: Kind<C>, C: Context> ErasedKind<C> for Erased<K, C> {
    fn name(&self) -> &'static str {
        K::Spec::KIND
    }

    fn schema(&self) -> Schema {
        K::Spec::schema()
    }

    fn check_schema(&self) -> Vec<String> {
        let spec = serde_json::to_value(K::example()).unwrap_or(Value::Null);
        let observed = K::example_observed().and_then(|o| serde_json::to_value(o).ok());
        check_schema(&K::Spec::schema(), &spec, observed.as_ref())
            .into_iter()
            .map(|e| format!("{}: {e}", K::Spec::KIND))
            .collect()
    }

    async fn observe(&self, ctx: &C, q: Query<'_>) -> Result<Vec<Observed>, ProviderError> {
        let op = format!("observe {}", K::Spec::KIND);
        let found = self
            .0
            .observe(ctx, q)
            .await
            .map_err(|e| ctx.provider_error(op.clone(), e))?;
        found
            .into_iter()
            .map(|f| {
                Ok(Observed {
                    value: encode(&op, &f.value)?,
                    key: f.key,
                    marker: f.marker,
                    uses: f.uses,
                    warnings: f.warnings,
                })
            })
            .collect()
    }

    fn steps(&self, ctx: &C, before: Option<&Observed>, after: Option<&Value>) -> Vec<String> {
        let before: Option<K::Observed> = match before
            .map(|o| K::Observed::deserialize_value(&o.value))
        {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                tracing::warn!(kind = K::Spec::KIND, %e, "cannot read the observed object to list its steps");
                return Vec::new();
            }
            None => None,
        };
        let after: Option<K::Spec> = match after.map(K::Spec::deserialize_value) {
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                tracing::warn!(kind = K::Spec::KIND, %e, "cannot read the desired spec to list its steps");
                return Vec::new();
            }
            None => None,
        };
        self.0
            .steps(ctx, before.as_ref(), after.as_ref())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn check(&self, ctx: &C, before: Option<&Observed>, after: Option<&Value>) -> Vec<FieldError> {
        let before = match before.map(|o| K::Observed::deserialize_value(&o.value)) {
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                tracing::warn!(kind = K::Spec::KIND, %e, "cannot read the observed object to check the change");
                return Vec::new();
            }
            None => None,
        };
        let after = match after.map(K::Spec::deserialize_value) {
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                tracing::warn!(kind = K::Spec::KIND, %e, "cannot read the desired spec to check the change");
                return Vec::new();
            }
            None => None,
        };
        self.0.check(ctx, before.as_ref(), after.as_ref())
    }

    async fn create(&self, ctx: &C, change: &Change<'_>) -> Result<Value, ProviderError> {
        let op = operation("create", change);
        let spec = self.desired(&op, change)?;
        let o = self.op(ctx, change, None, Some(&spec));
        let observed = self
            .0
            .create(ctx, &spec, o)
            .await
            .map_err(|e| ctx.provider_error(op.clone(), e))?;
        encode(&op, &observed)
    }

    async fn update(&self, ctx: &C, change: &Change<'_>) -> Result<Value, ProviderError> {
        let op = operation("update", change);
        let spec = self.desired(&op, change)?;
        let prior = self.prior(&op, change)?;
        let o = self.op(ctx, change, Some(&prior), Some(&spec));
        let observed = self
            .0
            .update(ctx, &prior, &spec, o)
            .await
            .map_err(|e| ctx.provider_error(op.clone(), e))?;
        encode(&op, &observed)
    }

    async fn delete(&self, ctx: &C, change: &Change<'_>) -> Result<(), ProviderError> {
        let op = operation("delete", change);
        let Some(current) = self.recheck(ctx, &op, change).await? else {
            return Ok(());
        };
        let o = self.op(ctx, change, Some(&current), None);
        self.0
            .delete(ctx, &current, o)
            .await
            .map_err(|e| ctx.provider_error(op, e))
    }

    async fn release(&self, ctx: &C, change: &Change<'_>) -> Result<(), ProviderError> {
        let op = operation("release", change);
        let Some(current) = self.recheck(ctx, &op, change).await? else {
            return Ok(());
        };
        let o = self.op(ctx, change, Some(&current), None);
        match self.0.release(ctx, &current, o).await {
            Some(r) => r.map_err(|e| ctx.provider_error(op, e)),
            None => Err(ProviderError::new(
                op,
                format!(
                    "{} objects cannot be released yet; nothing was changed",
                    K::Spec::KIND
                ),
            )),
        }
    }
}

impl<K: Kind<C>, C: Context> Erased<K, C> {
    /// Re-reads the object right before a delete or release: what is touched must be the
    /// very object the plan saw (same identity) with the same ownership marker. `None` when
    /// that object is gone (whatever holds its key now is left alone).
    async fn recheck(
        &self,
        ctx: &C,
        op: &str,
        change: &Change<'_>,
    ) -> Result<Option<K::Observed>, ProviderError> {
        let planned = self.prior(op, change)?;
        let planned_marker = change.prior.and_then(|p| p.marker.as_ref());
        // Re-read the object right before deleting it: what is deleted must be the very
        // object the plan saw (same identity) with the same ownership marker.
        let keys = [change.key.to_string()];
        let fresh = self
            .0
            .observe(
                ctx,
                Query {
                    keys: &keys,
                    stack: &change.marker.stack,
                },
            )
            .await
            .map_err(|e| ctx.provider_error(op.to_string(), e))?;
        let identity = K::identity(&planned);
        let Some(current) = fresh.into_iter().find(|f| {
            f.key == change.key && (identity.is_none() || K::identity(&f.value) == identity)
        }) else {
            tracing::info!(
                address = %change.address,
                "the object planned for {op} is gone already; whatever holds its key now is left alone"
            );
            return Ok(None);
        };
        let stack_of = |m: Option<&Marker>| m.map(|m| m.stack.clone());
        if stack_of(current.marker.as_ref()) != stack_of(planned_marker) {
            let says = |m: Option<String>| {
                m.map_or("no marker".to_string(), |s| format!("stack {s:?}'s marker"))
            };
            return Err(ProviderError::new(
                op,
                format!(
                    "refusing: the object carried {} when planned and carries {} now",
                    says(stack_of(planned_marker)),
                    says(stack_of(current.marker.as_ref()))
                ),
            ));
        }
        Ok(Some(current.value))
    }
}

/// Deserialising from a borrowed JSON value (the engine keeps ownership of its values).
trait DeserializeValue: Sized {
    fn deserialize_value(v: &Value) -> Result<Self, serde_json::Error>;
}

impl<T: DeserializeOwned> DeserializeValue for T {
    fn deserialize_value(v: &Value) -> Result<Self, serde_json::Error> {
        T::deserialize(v)
    }
}

/// Assembles a provider from its kinds.
pub struct ProviderBuilder<C: Context> {
    name: &'static str,
    ctx: C,
    kinds: Vec<Box<dyn ErasedKind<C>>>,
}

impl<C: Context> ProviderBuilder<C> {
    /// A provider named `name` (matching `Resource::PROVIDER` of its kinds) over `ctx`.
    pub fn new(name: &'static str, ctx: C) -> Self {
        ProviderBuilder {
            name,
            ctx,
            kinds: Vec::new(),
        }
    }

    /// Registers a kind.
    ///
    /// # Panics
    /// If the kind's provider is not this provider or the kind is registered twice: both are
    /// programming errors that every test constructing the provider catches.
    pub fn kind<K: Kind<C>>(mut self, kind: K) -> Self {
        assert_eq!(
            K::Spec::PROVIDER,
            self.name,
            "kind {} belongs to provider {}",
            K::Spec::KIND,
            K::Spec::PROVIDER
        );
        assert!(
            self.kinds.iter().all(|k| k.name() != K::Spec::KIND),
            "kind {} registered twice",
            K::Spec::KIND
        );
        self.kinds
            .push(Box::new(Erased(kind, std::marker::PhantomData)));
        self
    }

    /// The provider.
    pub fn build(self) -> KitProvider<C> {
        let names = self.kinds.iter().map(|k| k.name()).collect();
        let index = self
            .kinds
            .iter()
            .enumerate()
            .map(|(i, k)| (k.name(), i))
            .collect();
        KitProvider {
            name: self.name,
            ctx: self.ctx,
            kinds: self.kinds,
            names,
            index,
        }
    }
}

/// A provider assembled from registered kinds. Implements [`Provider`].
pub struct KitProvider<C: Context> {
    name: &'static str,
    ctx: C,
    kinds: Vec<Box<dyn ErasedKind<C>>>,
    names: Vec<&'static str>,
    index: HashMap<&'static str, usize>,
}

impl<C: Context> fmt::Debug for KitProvider<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KitProvider")
            .field("name", &self.name)
            .field("kinds", &self.names)
            .finish_non_exhaustive()
    }
}

impl<C: Context> KitProvider<C> {
    /// The shared context (client, caches).
    pub fn ctx(&self) -> &C {
        &self.ctx
    }

    /// Checks every registered kind's schema paths against its example values; each problem
    /// names the kind and the path. Every provider runs this in a test.
    pub fn check_schemas(&self) -> Vec<String> {
        self.kinds.iter().flat_map(|k| k.check_schema()).collect()
    }

    fn kind(&self, kind: &str, verb: &str) -> Result<&dyn ErasedKind<C>, ProviderError> {
        self.index
            .get(kind)
            .map(|&i| self.kinds[i].as_ref())
            .ok_or_else(|| {
                ProviderError::new(
                    format!("{verb} {kind}"),
                    format!("provider {} has no kind {kind}", self.name),
                )
            })
    }
}

#[async_trait]
impl<C: Context> Provider for KitProvider<C> {
    fn name(&self) -> &str {
        self.name
    }

    fn kinds(&self) -> &[&'static str] {
        &self.names
    }

    fn concurrency(&self) -> usize {
        self.ctx.concurrency()
    }

    fn schema(&self, kind: &str) -> Option<Schema> {
        self.index.get(kind).map(|&i| self.kinds[i].schema())
    }

    async fn observe(&self, req: ObserveRequest<'_>) -> Result<Vec<Observed>, ProviderError> {
        let q = Query {
            keys: req.keys,
            stack: req.stack,
        };
        self.kind(req.kind, "observe")?.observe(&self.ctx, q).await
    }

    async fn create(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        self.kind(change.kind, "create")?
            .create(&self.ctx, &change)
            .await
    }

    async fn update(&self, change: Change<'_>) -> Result<Value, ProviderError> {
        self.kind(change.kind, "update")?
            .update(&self.ctx, &change)
            .await
    }

    async fn delete(&self, change: Change<'_>) -> Result<(), ProviderError> {
        self.kind(change.kind, "delete")?
            .delete(&self.ctx, &change)
            .await
    }

    async fn release(&self, change: Change<'_>) -> Result<(), ProviderError> {
        self.kind(change.kind, "release")?
            .release(&self.ctx, &change)
            .await
    }

    async fn pending(&self) -> Result<Vec<Pending>, ProviderError> {
        self.ctx
            .pending()
            .await
            .map_err(|e| self.ctx.provider_error("read pending changes".into(), e))
    }

    async fn apply_pending(&self, id: &str) -> Result<(), ProviderError> {
        let operation = format!("apply pending {id} changes");
        match self.ctx.apply_pending(id).await {
            Some(r) => r.map_err(|e| self.ctx.provider_error(operation, e)),
            None => Err(ProviderError::new(
                operation,
                format!("provider {} has no pending changes to apply", self.name),
            )),
        }
    }

    fn rollout_steps(
        &self,
        kind: &str,
        before: Option<&Observed>,
        after: Option<&Value>,
    ) -> Vec<String> {
        match self.index.get(kind) {
            Some(&i) => self.kinds[i].steps(&self.ctx, before, after),
            None => Vec::new(),
        }
    }

    fn validate(&self, declared: &[Declared<'_>]) -> Vec<Diagnostic> {
        self.ctx.validate(declared)
    }

    async fn check_plan(
        &self,
        changes: &[PlannedChange<'_>],
        settings: &BTreeMap<String, String>,
    ) -> Result<Vec<CheckResult>, ProviderError> {
        let mut out: Vec<CheckResult> = Vec::new();
        for c in changes {
            let Some(&i) = self.index.get(c.kind) else {
                continue;
            };
            for e in self.kinds[i].check(&self.ctx, c.before, c.after) {
                out.push(CheckResult {
                    name: format!("{}.{}", c.address, e.field),
                    passed: false,
                    message: format!("{}: {e}", c.address),
                });
            }
        }
        out.extend(self.ctx.check_plan(changes, settings).await?);
        Ok(out)
    }
}

/// Checks a kind's schema paths against example values: every path of `replace`,
/// `sensitive`, `unordered`, `restart` and `keyed` (list and item keys) must exist in the
/// serialised example spec; every `computed` path in the example spec or the example observed
/// value. Returns one message per path that does not resolve.
pub fn check_schema(schema: &Schema, spec: &Value, observed: Option<&Value>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |fact: &str, path: &str, roots: &[&Value]| {
        let mut last = String::new();
        for root in roots {
            match walk(root, path) {
                Ok(()) => return,
                Err(e) => last = e,
            }
        }
        problems.push(format!("{fact} path {path:?}: {last}"));
    };
    for (fact, paths) in [
        ("replace", schema.replace),
        ("sensitive", schema.sensitive),
        ("unordered", schema.unordered),
        ("restart", schema.restart),
    ] {
        for p in paths {
            check(fact, p, &[spec]);
        }
    }
    for k in schema.keyed {
        check("keyed", k.path, &[spec]);
        for field in k.key {
            check("keyed", &format!("{}[*].{field}", k.path), &[spec]);
        }
    }
    let computed_roots: Vec<&Value> = std::iter::once(spec).chain(observed).collect();
    for p in schema.computed {
        check("computed", p, &computed_roots);
    }
    // An attribute must be readable from what observe reports (spec fields or computed).
    let observed_roots: Vec<&Value> = observed.into_iter().chain(std::iter::once(spec)).collect();
    for p in schema.attributes {
        check("attribute", p, &observed_roots);
    }
    problems
}

/// Walks `path` (dots for fields, `*` for any field of an object, `[*]` for every item of a
/// list, `[N]` for item N, as core's `get_path` reads attributes) through `v`.
fn walk(v: &Value, path: &str) -> Result<(), String> {
    let mut cur = v;
    let mut seen = String::new();
    for seg in path.split('.') {
        let (field, index) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !field.is_empty() {
            let obj = cur
                .as_object()
                .ok_or_else(|| format!("{seen:?} is not an object in the example"))?;
            cur = if field == "*" {
                obj.values()
                    .next()
                    .ok_or_else(|| format!("the example's {seen:?} is empty; give it a field"))?
            } else {
                obj.get(field)
                    .ok_or_else(|| format!("no field {field:?} in the example"))?
            };
            if !seen.is_empty() {
                seen.push('.');
            }
            seen.push_str(field);
        }
        for part in index.split(']').filter(|p| !p.is_empty()) {
            let part = part.trim_start_matches('[');
            let items = cur
                .as_array()
                .ok_or_else(|| format!("{seen:?} is not a list in the example"))?;
            let n = match part {
                "*" => 0,
                n => n
                    .parse::<usize>()
                    .map_err(|_| format!("{part:?} in {path:?} is neither `*` nor an index"))?,
            };
            cur = items.get(n).ok_or_else(|| match items.is_empty() {
                true => format!("the example's {seen:?} is empty; give it an item"),
                false => format!("the example's {seen:?} has no item {n}; give it one"),
            })?;
            seen.push_str(&format!("[{part}]"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::KeyedList;
    use serde_json::json;

    #[test]
    fn schema_paths_that_exist_pass() {
        let schema = Schema {
            replace: &["name", "services[*].protocol"],
            computed: &["id", "public_net.ipv4"],
            sensitive: &["password"],
            keyed: &[KeyedList {
                path: "services",
                key: &["listen_port"],
            }],
            ..Schema::default()
        };
        let spec = json!({"name": "a", "password": "x",
            "services": [{"protocol": "tcp", "listen_port": 80}]});
        let observed = json!({"id": 1, "public_net": {"ipv4": "1.2.3.4"}});
        assert_eq!(
            check_schema(&schema, &spec, Some(&observed)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_typo_in_a_sensitive_path_is_reported() {
        let schema = Schema {
            sensitive: &["pasword"],
            ..Schema::default()
        };
        let problems = check_schema(&schema, &json!({"password": "x"}), None);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("sensitive path \"pasword\""),
            "{problems:?}"
        );
    }

    #[test]
    fn an_empty_example_list_cannot_vouch_for_item_paths() {
        let schema = Schema {
            replace: &["subnets[*].type"],
            ..Schema::default()
        };
        let problems = check_schema(&schema, &json!({"subnets": []}), None);
        assert!(problems[0].contains("is empty"), "{problems:?}");
    }

    #[test]
    fn computed_paths_may_live_in_the_observed_example_only() {
        let schema = Schema {
            computed: &["id"],
            ..Schema::default()
        };
        assert!(!check_schema(&schema, &json!({}), None).is_empty());
        assert!(check_schema(&schema, &json!({}), Some(&json!({"id": 3}))).is_empty());
    }

    /// A tiny kind over an in-memory map, to prove the registry's dispatch and decoding.
    #[derive(Debug, Clone, Serialize, serde::Deserialize)]
    struct Note {
        name: String,
        text: String,
    }

    impl Resource for Note {
        const KIND: &'static str = "test_note";
        const PROVIDER: &'static str = "test";
        fn key(&self) -> String {
            self.name.clone()
        }
        fn schema() -> Schema {
            Schema {
                computed: &["id"],
                ..Schema::default()
            }
        }
    }

    #[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
    struct NoteObserved {
        name: String,
        text: String,
        id: u64,
    }

    #[derive(Default)]
    struct Ctx(std::sync::Mutex<BTreeMap<String, (NoteObserved, Option<Marker>)>>);

    #[derive(Debug)]
    struct Boom(String);
    impl fmt::Display for Boom {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl Context for Ctx {
        type Error = Boom;
        fn provider_error(&self, operation: String, error: Boom) -> ProviderError {
            ProviderError::new(operation, error.0).with_code("boom")
        }
    }

    /// A change of `text` is two steps: `clear`, then `write <text>`.
    #[derive(Debug, PartialEq)]
    enum NoteStep {
        Clear,
        Write(String),
    }
    impl fmt::Display for NoteStep {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                NoteStep::Clear => f.write_str("clear"),
                NoteStep::Write(t) => write!(f, "write {t:?}"),
            }
        }
    }

    struct Notes;

    #[async_trait]
    impl Kind<Ctx> for Notes {
        type Spec = Note;
        type Observed = NoteObserved;
        type Step = NoteStep;

        async fn observe(&self, ctx: &Ctx, q: Query<'_>) -> Result<Vec<Found<NoteObserved>>, Boom> {
            let m = ctx.0.lock().unwrap();
            Ok(q.keys
                .iter()
                .filter_map(|k| m.get(k))
                .map(|(o, marker)| Found::new(&o.name, o.clone(), marker.clone()))
                .collect())
        }

        fn steps(
            &self,
            _: &Ctx,
            before: Option<&NoteObserved>,
            after: Option<&Note>,
        ) -> Vec<NoteStep> {
            match (before, after) {
                (Some(b), Some(a)) if b.text != a.text => {
                    vec![NoteStep::Clear, NoteStep::Write(a.text.clone())]
                }
                _ => Vec::new(),
            }
        }

        /// A note may not lose its text once written.
        fn check(
            &self,
            _: &Ctx,
            before: Option<&NoteObserved>,
            after: Option<&Note>,
        ) -> Vec<FieldError> {
            match (before, after) {
                (Some(b), Some(a)) if !b.text.is_empty() && a.text.is_empty() => {
                    vec![FieldError::new("text", "may not be emptied")]
                }
                _ => Vec::new(),
            }
        }

        async fn create(
            &self,
            ctx: &Ctx,
            spec: &Note,
            op: Op<'_, NoteStep>,
        ) -> Result<NoteObserved, Boom> {
            if spec.text == "fail" {
                return Err(Boom("refused".into()));
            }
            let o = NoteObserved {
                name: spec.name.clone(),
                text: spec.text.clone(),
                id: 7,
            };
            ctx.0
                .lock()
                .unwrap()
                .insert(spec.name.clone(), (o.clone(), Some(op.marker.clone())));
            Ok(o)
        }

        async fn update(
            &self,
            ctx: &Ctx,
            prior: &NoteObserved,
            _: &Note,
            op: Op<'_, NoteStep>,
        ) -> Result<NoteObserved, Boom> {
            let mut o = prior.clone();
            for s in op.steps {
                match s {
                    NoteStep::Clear => o.text.clear(),
                    NoteStep::Write(t) => o.text = t,
                }
            }
            ctx.0
                .lock()
                .unwrap()
                .insert(o.name.clone(), (o.clone(), Some(op.marker.clone())));
            Ok(o)
        }

        async fn delete(
            &self,
            ctx: &Ctx,
            prior: &NoteObserved,
            _: Op<'_, NoteStep>,
        ) -> Result<(), Boom> {
            ctx.0.lock().unwrap().remove(&prior.name);
            Ok(())
        }

        fn identity(o: &NoteObserved) -> Option<String> {
            Some(o.id.to_string())
        }

        fn example() -> Note {
            Note {
                name: "n".into(),
                text: "t".into(),
            }
        }

        fn example_observed() -> Option<NoteObserved> {
            Some(NoteObserved {
                name: "n".into(),
                text: "t".into(),
                id: 1,
            })
        }
    }

    fn change<'a>(
        address: &'a Address,
        marker: &'a Marker,
        desired: Option<&'a Value>,
        prior: Option<&'a Observed>,
    ) -> Change<'a> {
        Change {
            address,
            kind: "test_note",
            key: "n",
            desired,
            prior,
            marker,
            changed: &[],
        }
    }

    #[tokio::test]
    async fn a_registered_kind_is_dispatched_decoded_and_listed() {
        let p = ProviderBuilder::new("test", Ctx::default())
            .kind(Notes)
            .build();
        assert_eq!(p.kinds(), &["test_note"]);
        assert!(p.check_schemas().is_empty(), "{:?}", p.check_schemas());
        let addr = Address::new("test_note", "n");
        let marker = Marker::created("s", None);
        let want = json!({"name": "n", "text": "hello"});
        let created = p
            .create(change(&addr, &marker, Some(&want), None))
            .await
            .unwrap();
        assert_eq!(created, json!({"name": "n", "text": "hello", "id": 7}));

        let keys = vec!["n".to_string()];
        let seen = p
            .observe(ObserveRequest {
                kind: "test_note",
                keys: &keys,
                stack: "s",
            })
            .await
            .unwrap();
        assert_eq!(seen[0].value["text"], "hello");

        // The steps shown in the plan are the steps the update executes.
        let next = json!({"name": "n", "text": "bye"});
        assert_eq!(
            p.rollout_steps("test_note", Some(&seen[0]), Some(&next)),
            vec!["clear".to_string(), "write \"bye\"".to_string()]
        );
        let updated = p
            .update(change(&addr, &marker, Some(&next), Some(&seen[0])))
            .await
            .unwrap();
        assert_eq!(updated["text"], "bye");
    }

    #[tokio::test]
    async fn errors_name_the_operation_and_keep_the_api_code() {
        let p = ProviderBuilder::new("test", Ctx::default())
            .kind(Notes)
            .build();
        let addr = Address::new("test_note", "n");
        let marker = Marker::created("s", None);
        let bad = json!({"name": "n", "text": "fail"});
        let e = p
            .create(change(&addr, &marker, Some(&bad), None))
            .await
            .unwrap_err();
        assert_eq!(e.operation, "create test_note.n (test_note)");
        assert_eq!(e.code.as_deref(), Some("boom"));

        let undecodable = json!({"name": "n", "text": 3});
        let e = p
            .create(change(&addr, &marker, Some(&undecodable), None))
            .await
            .unwrap_err();
        assert!(e.message.contains("cannot read the desired spec"), "{e}");

        let mut other = change(&addr, &marker, Some(&bad), None);
        other.kind = "test_other";
        let e = p.create(other).await.unwrap_err();
        assert!(e.message.contains("has no kind test_other"), "{e}");
    }

    async fn created_and_observed(p: &KitProvider<Ctx>) -> Observed {
        let addr = Address::new("test_note", "n");
        let marker = Marker::created("s", None);
        let want = json!({"name": "n", "text": "hello"});
        p.create(change(&addr, &marker, Some(&want), None))
            .await
            .unwrap();
        let keys = vec!["n".to_string()];
        p.observe(ObserveRequest {
            kind: "test_note",
            keys: &keys,
            stack: "s",
        })
        .await
        .unwrap()
        .remove(0)
    }

    #[tokio::test]
    async fn a_delete_refuses_when_the_marker_changed_since_the_plan() {
        let p = ProviderBuilder::new("test", Ctx::default())
            .kind(Notes)
            .build();
        let planned = created_and_observed(&p).await;
        // Someone released the object by hand between plan and apply.
        p.ctx().0.lock().unwrap().get_mut("n").unwrap().1 = None;
        let addr = Address::new("test_note", "n");
        let marker = Marker::created("s", None);
        let e = p
            .delete(change(&addr, &marker, None, Some(&planned)))
            .await
            .unwrap_err();
        assert_eq!(e.code, None, "cairn's own refusals carry no API code: {e}");
        assert!(
            e.message
                .contains("carried stack \"s\"'s marker when planned and carries no marker now"),
            "{e}"
        );
        assert!(
            p.ctx().0.lock().unwrap().contains_key("n"),
            "nothing was deleted"
        );
    }

    #[tokio::test]
    async fn a_delete_leaves_alone_another_object_that_took_the_key() {
        let p = ProviderBuilder::new("test", Ctx::default())
            .kind(Notes)
            .build();
        let planned = created_and_observed(&p).await;
        // The planned object went away and another one (id 8) now has its key.
        p.ctx().0.lock().unwrap().get_mut("n").unwrap().0.id = 8;
        let addr = Address::new("test_note", "n");
        let marker = Marker::created("s", None);
        p.delete(change(&addr, &marker, None, Some(&planned)))
            .await
            .unwrap();
        assert_eq!(
            p.ctx().0.lock().unwrap()["n"].0.id,
            8,
            "the other object is untouched"
        );
        // The planned object itself is deleted when it is still there.
        p.ctx().0.lock().unwrap().get_mut("n").unwrap().0.id = 7;
        p.delete(change(&addr, &marker, None, Some(&planned)))
            .await
            .unwrap();
        assert!(p.ctx().0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_kind_check_refuses_the_change_naming_resource_and_field() {
        let p = ProviderBuilder::new("test", Ctx::default())
            .kind(Notes)
            .build();
        let addr = Address::new("test_note", "n");
        let before = Observed {
            key: "n".into(),
            value: json!({"name": "n", "text": "hello", "id": 7}),
            marker: None,
            uses: Vec::new(),
            warnings: Vec::new(),
        };
        let emptied = json!({"name": "n", "text": ""});
        let change = |after| PlannedChange {
            kind: "test_note",
            key: "n",
            address: &addr,
            before: Some(&before),
            after,
        };
        let refused = p
            .check_plan(&[change(Some(&emptied))], &BTreeMap::new())
            .await
            .unwrap();
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(!refused[0].passed);
        assert_eq!(refused[0].name, "test_note.n.text");
        assert!(
            refused[0].message.contains("test_note.n") && refused[0].message.contains("text"),
            "{}",
            refused[0].message
        );
        let fine = json!({"name": "n", "text": "bye"});
        assert!(
            p.check_plan(&[change(Some(&fine)), change(None)], &BTreeMap::new())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn op_changed_matches_a_path_and_what_is_below_it() {
        let addr = Address::new("k", "a");
        let marker = Marker::created("s", None);
        let changed = vec!["services[443].port".to_string(), "labels".to_string()];
        let op: Op<'_, NoStep> = Op {
            address: &addr,
            key: "a",
            marker: &marker,
            changed: &changed,
            steps: Vec::new(),
        };
        assert!(op.changed("services"));
        assert!(op.changed("labels"));
        assert!(!op.changed("label"));
        assert!(!op.changed("name"));
    }
}
