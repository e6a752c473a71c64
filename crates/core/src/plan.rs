//! The plan: one action per resource with its field-level changes, the gates it will wait
//! on and the checks it ran. Serialised as the versioned JSON of `docs/plan-format.md`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diff::FieldChange;
use crate::provider::CheckResult;
use crate::value::Address;

/// The version of the plan JSON format. Additive changes bump the minor number.
pub const FORMAT_VERSION: &str = "1.0";

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Already as desired.
    NoOp,
    /// A read-only lookup.
    Read,
    /// Created.
    Create,
    /// Updated in place (including adopting: writing the ownership marker).
    Update,
    /// Destroyed, then created again.
    DeleteCreate,
    /// Created anew, then the old one destroyed.
    CreateDelete,
    /// Destroyed.
    Delete,
}

impl Action {
    /// Terraform-style action list: `["create"]`, `["delete", "create"]`, …
    pub fn as_list(self) -> Vec<&'static str> {
        match self {
            Action::NoOp => vec!["no-op"],
            Action::Read => vec!["read"],
            Action::Create => vec!["create"],
            Action::Update => vec!["update"],
            Action::DeleteCreate => vec!["delete", "create"],
            Action::CreateDelete => vec!["create", "delete"],
            Action::Delete => vec!["delete"],
        }
    }

    /// Whether this action changes the world.
    pub fn is_change(self) -> bool {
        !matches!(self, Action::NoOp | Action::Read)
    }

    /// Whether this action is a replace.
    pub fn is_replace(self) -> bool {
        matches!(self, Action::DeleteCreate | Action::CreateDelete)
    }
}

/// The planned change of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// `kind.name` (undeclared objects: `kind.key`).
    pub address: Address,
    /// The kind.
    pub kind: String,
    /// The provider.
    pub provider: String,
    /// The natural key.
    pub key: String,
    /// The action, Terraform-style.
    pub actions: Vec<String>,
    /// The action as an enum (not part of the JSON; derived from `actions`).
    #[serde(skip)]
    pub action: Option<Action>,
    /// Observed value (sensitive fields redacted), absent when the object does not exist.
    pub before: Option<Value>,
    /// Desired value (sensitive fields redacted, unknowns as `$ref` markers), absent for deletes.
    pub after: Option<Value>,
    /// Mirror of `after` with `true` where the value is known only after apply.
    pub after_unknown: Value,
    /// Paths whose change forces the replace.
    pub replace_paths: Vec<String>,
    /// Why this action: `adopt`, `changed outside cairn`, `code changed`, `not declared`, …
    pub action_reason: Option<String>,
    /// Field-level changes.
    pub changes: Vec<FieldChange>,
    /// Staged steps and gates the provider goes through for this change.
    #[serde(default)]
    pub steps: Vec<String>,
    /// Digest of what was observed (staleness check for saved plans).
    pub observed_digest: String,
    /// Digest of the desired spec (staleness check for saved plans).
    pub desired_digest: String,
}

impl ResourceChange {
    /// The action of this change.
    pub fn action(&self) -> Action {
        self.action
            .unwrap_or_else(|| action_from_list(&self.actions))
    }
}

fn action_from_list(list: &[String]) -> Action {
    match list
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["create"] => Action::Create,
        ["update"] => Action::Update,
        ["delete", "create"] => Action::DeleteCreate,
        ["create", "delete"] => Action::CreateDelete,
        ["delete"] => Action::Delete,
        ["read"] => Action::Read,
        _ => Action::NoOp,
    }
}

/// A gate in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatePlan {
    /// `gate.name`.
    pub address: Address,
    /// What it waits for.
    pub description: String,
    /// Seconds between attempts.
    pub interval_secs: f64,
    /// Seconds before it fails.
    pub timeout_secs: f64,
    /// Whether it will run (something after it changes).
    pub will_run: bool,
    /// The nodes it waits on.
    pub after: Vec<Address>,
}

/// Counts for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Creates plus replaces.
    pub add: usize,
    /// Updates.
    pub change: usize,
    /// Deletes plus replaces.
    pub destroy: usize,
}

/// A whole plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Format version of this JSON.
    pub format_version: String,
    /// The stack.
    pub stack: String,
    /// One entry per declared resource and per owned undeclared object.
    pub resource_changes: Vec<ResourceChange>,
    /// Gates in the graph.
    pub gates: Vec<GatePlan>,
    /// Plan-time checks that ran.
    pub checks: Vec<CheckResult>,
    /// Whether planning failed (then `errors` says why and nothing may be applied).
    pub errored: bool,
    /// Errors that made the plan fail.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Counts.
    pub summary: Summary,
}

impl Plan {
    /// Whether applying would change anything.
    pub fn has_changes(&self) -> bool {
        self.resource_changes.iter().any(|c| c.action().is_change())
    }

    /// Recomputes the summary counts from the changes.
    pub fn summarize(&mut self) {
        let mut s = Summary::default();
        for c in &self.resource_changes {
            match c.action() {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Delete => s.destroy += 1,
                Action::DeleteCreate | Action::CreateDelete => {
                    s.add += 1;
                    s.destroy += 1;
                }
                Action::NoOp | Action::Read => {}
            }
        }
        self.summary = s;
    }

    /// The stable summary line.
    pub fn summary_line(&self) -> String {
        format!(
            "Plan: {} to add, {} to change, {} to destroy.",
            self.summary.add, self.summary.change, self.summary.destroy
        )
    }

    /// The change for an address.
    pub fn change(&self, address: &str) -> Option<&ResourceChange> {
        self.resource_changes
            .iter()
            .find(|c| c.address.0 == address)
    }
}

/// A short stable digest of a JSON value (16 hex digits of SHA-256 over its compact form).
pub fn digest(v: &Value) -> String {
    let bytes = serde_json::to_vec(&canonical(v)).expect("JSON values serialise");
    hex::encode(&Sha256::digest(&bytes)[..8])
}

/// Sorts object keys recursively so digests do not depend on key order.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<_> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), canonical(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        other => other.clone(),
    }
}
