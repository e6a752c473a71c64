//! The provider contract: bulk observe, create, update, delete, plus plan-time validation
//! and checks. Providers work on JSON values shaped like their kinds' specs; references in
//! the desired value are already resolved when a provider sees it.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resource::FieldError;
use crate::value::Address;

/// The ownership marker cairn writes on objects it manages (Hetzner labels, Proxmox tags,
/// pfSense `descr`): the stack's name, a fingerprint of the spec last applied, and whether
/// cairn created the object or adopted one that existed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// The stack that owns the object.
    pub stack: String,
    /// Fingerprint of the desired spec at the last apply (hex, short), if the API can hold it.
    pub fingerprint: Option<String>,
    /// Created by cairn, or adopted (existed before and was brought under management). An
    /// adopted object whose declaration disappears is released, not deleted.
    #[serde(default)]
    pub origin: Origin,
    /// Set by the provider when the marker sits on another object than the one it was
    /// written for (a clone or restored backup of an owned VM copies its description): such
    /// an object is **not** owned, is never deleted, and the plan warns about it. Says which
    /// object the marker belongs to, e.g. `VM 205`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copied_from: Option<String>,
}

impl Marker {
    /// A marker of `stack` for an object cairn created.
    pub fn created(stack: impl Into<String>, fingerprint: Option<String>) -> Self {
        Marker {
            stack: stack.into(),
            fingerprint,
            origin: Origin::Created,
            copied_from: None,
        }
    }

    /// A marker of `stack` for an object cairn adopted.
    pub fn adopted(stack: impl Into<String>, fingerprint: Option<String>) -> Self {
        Marker {
            origin: Origin::Adopted,
            ..Marker::created(stack, fingerprint)
        }
    }

    /// Whether this marker makes the object owned by `stack` (a copied marker never does).
    pub fn owned_by(&self, stack: &str) -> bool {
        self.stack == stack && self.copied_from.is_none()
    }
}

/// How an object came under cairn's management.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// cairn created it; when its declaration disappears, cairn deletes it.
    Created,
    /// It existed and cairn adopted it; when its declaration disappears, cairn releases it
    /// (removes its marker) unless the stack asks for adopted objects to be deleted. A
    /// marker that does not say is read as adopted: a release is never a loss.
    #[default]
    Adopted,
}

impl Origin {
    /// The spelling stored on objects: `created` or `adopted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Created => "created",
            Origin::Adopted => "adopted",
        }
    }

    /// Reads the stored spelling; anything else is [`Origin::Adopted`].
    pub fn parse(s: &str) -> Origin {
        if s == "created" {
            Origin::Created
        } else {
            Origin::Adopted
        }
    }
}

/// One object as it exists remotely.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// The natural key (same as `Resource::key` of the matching spec).
    pub key: String,
    /// The object in spec shape plus computed fields. Marker data is *not* part of it.
    pub value: Value,
    /// The ownership marker found on the object, if any.
    pub marker: Option<Marker>,
    /// Other objects this one uses, as `(kind, key)`: orders deletes of undeclared objects.
    #[serde(default)]
    pub uses: Vec<(String, String)>,
    /// What the provider could not tell about the object and a reader must know (e.g. a
    /// write-only value's digest made with another machine's key): plan warnings naming it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What to observe for one kind: the declared keys, plus everything owned by `stack`.
#[derive(Debug, Clone)]
pub struct ObserveRequest<'a> {
    /// The kind to observe.
    pub kind: &'a str,
    /// Keys of the declared resources of this kind.
    pub keys: &'a [String],
    /// The stack whose owned objects must also be reported.
    pub stack: &'a str,
}

/// Everything a provider needs to perform one change.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// The resource's address in the stack (for error messages and logs).
    pub address: &'a Address,
    /// The kind.
    pub kind: &'a str,
    /// The natural key.
    pub key: &'a str,
    /// The desired spec with every reference resolved (absent for deletes).
    pub desired: Option<&'a Value>,
    /// The object as observed before the change (absent for creates).
    pub prior: Option<&'a Observed>,
    /// The marker to write (stack + fingerprint of `desired`).
    pub marker: &'a Marker,
    /// For updates: the changed field paths, e.g. `labels`, `services[443].destination_port`.
    pub changed: &'a [String],
}

/// Changes a provider holds written but not in effect: e.g. a pfSense subsystem whose
/// `…/apply` reports `applied: false` because an apply was rejected or interrupted, or
/// because someone wrote without applying. Observed at plan time ([`Provider::pending`]).
///
/// A stack that declares a resource of one of `kinds` gets a plan entry
/// `<provider>_pending.<id>` (an update, "applied: false → true") that `apply` carries out
/// with [`Provider::apply_pending`]; any other stack gets a warning and nothing is applied,
/// because the plan is what gets executed and such a stack manages nothing there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// Stable id within the provider, e.g. `haproxy`: the plan entry's key.
    pub id: String,
    /// What is pending, for people, e.g. `HAProxy has changes written but not applied`.
    pub description: String,
    /// What applying does, shown as the entry's step (e.g. the apply call it makes).
    pub step: String,
    /// The kinds whose objects the pending changes belong to.
    pub kinds: Vec<String>,
}

/// A declared resource as validation hooks see it (references still unresolved).
#[derive(Debug, Clone)]
pub struct Declared<'a> {
    /// Its address.
    pub address: &'a Address,
    /// Its kind.
    pub kind: &'a str,
    /// Its key.
    pub key: &'a str,
    /// The serialised spec (references appear as `$ref` markers).
    pub spec: &'a Value,
}

/// A problem found at plan time, naming the resource and field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The resource at fault.
    pub address: Address,
    /// The field and message.
    pub error: FieldError,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.address, self.error)
    }
}

/// The outcome of a plan-time check (policy), e.g. host RAM commitment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// A stable name, e.g. `proxmox.host_capacity[pve]`.
    pub name: String,
    /// Whether the plan may proceed.
    pub passed: bool,
    /// The numbers and the reason, e.g. `node pve: 262 GiB committed + 64 GiB planned = …`.
    pub message: String,
}

/// A proposed change as plan-time checks see it.
#[derive(Debug, Clone)]
pub struct PlannedChange<'a> {
    /// Kind of the object.
    pub kind: &'a str,
    /// Its key.
    pub key: &'a str,
    /// Its address (undeclared objects get `kind.key`).
    pub address: &'a Address,
    /// The observed object, if it exists.
    pub before: Option<&'a Observed>,
    /// The desired value (references resolved where known), if it will exist after apply.
    pub after: Option<&'a Value>,
}

/// An error from a provider. Each field means one thing for every provider:
/// - `operation`: what cairn was doing, in its own words (`create server k3s-mgr`).
/// - `code`: the API's own error code string, exactly as the API sent it
///   (`uniqueness_error`, `MODEL_OBJECT_NOT_FOUND`, …); `None` when the API has no codes
///   or sent none. Never an HTTP status and never a word cairn made up.
/// - `status`: the HTTP status of the API's answer, if there was one.
/// - `message`: the API's message, or a description of the transport failure.
/// - `retryable`: the engine may retry the whole change — nothing was applied by the
///   failed request and the condition is transient (rate limit, busy, unavailable,
///   connection never made). The provider already retried single requests itself.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize, PartialEq)]
#[error("{operation} failed: {message}{}", code.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct ProviderError {
    /// What was being done, e.g. `create server k3s-mgr`.
    pub operation: String,
    /// The API's own error code, if it sent one (never an HTTP status or a cairn word).
    pub code: Option<String>,
    /// The HTTP status of the API's answer, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The API's message, or a description of the transport failure.
    pub message: String,
    /// Whether the engine may retry the whole change (see the type's documentation).
    #[serde(default)]
    pub retryable: bool,
}

impl ProviderError {
    /// Builds an error for an operation with a message.
    pub fn new(operation: impl Into<String>, message: impl Into<String>) -> Self {
        ProviderError {
            operation: operation.into(),
            code: None,
            status: None,
            message: message.into(),
            retryable: false,
        }
    }

    /// Adds the API's error code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Marks the error as one after which the engine may retry the whole change.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }
}

/// A provider turns kinds into API calls. Implementations must: observe in bulk (one list
/// per kind where the API allows), wait for async work, retry what is retryable, never
/// create a duplicate on retry, and keep credentials out of every error.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The provider's name, matching `Resource::PROVIDER`.
    fn name(&self) -> &str;

    /// Every kind this provider manages, so owned objects of kinds a stack no longer
    /// declares at all are still found (and planned for deletion).
    fn kinds(&self) -> &[&'static str] {
        &[]
    }

    /// The schema of one of this provider's kinds. The engine redacts objects of kinds a
    /// stack no longer declares (planned deletes) by it, so a secret never reaches a plan
    /// because its declaration was removed.
    fn schema(&self, _kind: &str) -> Option<crate::resource::Schema> {
        None
    }

    /// How many changes this provider runs at once (the engine also has a global limit).
    fn concurrency(&self) -> usize {
        8
    }

    /// Observes every object of `req.kind` whose key is in `req.keys` or that carries the
    /// marker of `req.stack`.
    async fn observe(&self, req: ObserveRequest<'_>) -> Result<Vec<Observed>, ProviderError>;

    /// Creates the object and returns its observed value (with computed fields).
    async fn create(&self, change: Change<'_>) -> Result<Value, ProviderError>;

    /// Updates the object in place and returns its observed value.
    async fn update(&self, change: Change<'_>) -> Result<Value, ProviderError>;

    /// Deletes the object.
    async fn delete(&self, change: Change<'_>) -> Result<(), ProviderError>;

    /// Releases the object: removes cairn's marker and leaves the object itself alone. The
    /// plan uses it for adopted objects that are no longer declared.
    async fn release(&self, change: Change<'_>) -> Result<(), ProviderError> {
        Err(ProviderError::new(
            format!("release {}", change.address),
            format!(
                "provider {} cannot release {} objects yet",
                self.name(),
                change.kind
            ),
        ))
    }

    /// Changes this provider holds written but not in effect (see [`Pending`]); observed
    /// once per plan, next to the kinds. Default: none.
    async fn pending(&self) -> Result<Vec<Pending>, ProviderError> {
        Ok(Vec::new())
    }

    /// Puts the pending changes `id` (from [`Provider::pending`]) into effect and waits until
    /// the provider reports them in effect. Only a plan entry for them calls it.
    async fn apply_pending(&self, id: &str) -> Result<(), ProviderError> {
        Err(ProviderError::new(
            format!("apply pending {id}"),
            format!("provider {} has no pending changes to apply", self.name()),
        ))
    }

    /// The staged steps (and the gates between them) a change will go through, shown under
    /// the resource in `diff`, e.g. for a new pool server: `add web-2 disabled`, `gate: web-2
    /// health check passes (HAProxy runtime API)`, `set web-2 active`. The provider performs
    /// them inside `create`/`update`/`delete`; an empty list means a single step.
    fn rollout_steps(
        &self,
        _kind: &str,
        _before: Option<&Observed>,
        _after: Option<&Value>,
    ) -> Vec<String> {
        Vec::new()
    }

    /// Cross-resource validation over all declared resources of this provider (e.g. an LB
    /// target server that is not in the LB's network). Runs before anything is observed.
    fn validate(&self, _declared: &[Declared<'_>]) -> Vec<Diagnostic> {
        Vec::new()
    }

    /// Whether [`Provider::validate`] reads the declared resources. The engine builds every
    /// declared spec of this provider as a JSON value only to call `validate` (costly in
    /// large stacks), so a provider without cross-resource validation returns `false` and
    /// is spared it. A provider that overrides `validate` must leave this `true`.
    fn validates(&self) -> bool {
        true
    }

    /// Plan-time checks over the proposed changes of this provider's kinds, e.g. host
    /// capacity. A failed check refuses the whole plan before anything is touched.
    async fn check_plan(
        &self,
        _changes: &[PlannedChange<'_>],
        _settings: &BTreeMap<String, String>,
    ) -> Result<Vec<CheckResult>, ProviderError> {
        Ok(Vec::new())
    }
}
