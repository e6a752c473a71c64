//! The plan: one action per resource with its field-level changes, the gates it will wait
//! on and the checks it ran. Serialised as the versioned JSON of `docs/plan-format.md`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::diff::FieldChange;
use crate::provider::CheckResult;
use crate::value::Address;

/// The version of the plan JSON format. Additive changes bump the minor number.
pub const FORMAT_VERSION: &str = "1.2";

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
    /// Released: cairn's marker removed, the object left as it is (an adopted object that
    /// is no longer declared).
    Release,
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
            Action::Release => vec!["release"],
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

/// The planned change of one resource. In memory `after` is unredacted (apply needs it);
/// serialising redacts sensitive paths, and `Debug` shows no values at all.
#[derive(Clone, PartialEq, Deserialize)]
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
    /// Observed value, absent when the object does not exist. Filled in only for output
    /// ([`crate::planner::Planned::to_json`]); the observed object itself lives in the plan's work.
    pub before: Option<Value>,
    /// Desired value (unknowns as `$ref` markers), absent for deletes.
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
    /// Sensitive path patterns of the kind (redacted whenever values are shown).
    #[serde(skip)]
    pub sensitive: &'static [&'static str],
}

impl std::fmt::Debug for ResourceChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceChange")
            .field("address", &self.address)
            .field("actions", &self.actions)
            .field(
                "changes",
                &self.changes.iter().map(|c| &c.path).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Serialize for ResourceChange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out<'a> {
            address: &'a Address,
            kind: &'a str,
            provider: &'a str,
            key: &'a str,
            actions: &'a [String],
            before: Option<Value>,
            after: Option<Value>,
            after_unknown: &'a Value,
            replace_paths: &'a [String],
            action_reason: &'a Option<String>,
            changes: &'a [FieldChange],
            steps: &'a [String],
            observed_digest: &'a str,
            desired_digest: &'a str,
        }
        let red = |v: &Option<Value>| v.as_ref().map(|v| redact(v, self.sensitive));
        Out {
            address: &self.address,
            kind: &self.kind,
            provider: &self.provider,
            key: &self.key,
            actions: &self.actions,
            before: red(&self.before),
            after: red(&self.after),
            after_unknown: &self.after_unknown,
            replace_paths: &self.replace_paths,
            action_reason: &self.action_reason,
            changes: &self.changes,
            steps: &self.steps,
            observed_digest: &self.observed_digest,
            desired_digest: &self.desired_digest,
        }
        .serialize(s)
    }
}

/// Replaces values at sensitive paths with `"(sensitive)"`.
pub fn redact(v: &Value, sensitive: &[&str]) -> Value {
    fn go(v: &Value, path: String, sensitive: &[&str]) -> Value {
        if !path.is_empty()
            && sensitive
                .iter()
                .any(|p| crate::diff::path_matches(&path, p))
            && !v.is_null()
        {
            return Value::String("(sensitive)".into());
        }
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, c)| {
                        let p = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        (k.clone(), go(c, p, sensitive))
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, c)| go(c, format!("{path}[{i}]"), sensitive))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    if sensitive.is_empty() {
        v.clone()
    } else {
        go(v, String::new(), sensitive)
    }
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
        ["release"] => Action::Release,
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
    /// Releases (marker removed, object kept).
    #[serde(default)]
    pub release: usize,
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
    /// Things a reader must know that change nothing, e.g. an object carrying a marker
    /// copied from another object (not owned, left alone).
    #[serde(default)]
    pub warnings: Vec<String>,
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
                Action::Release => s.release += 1,
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
        let release = match self.summary.release {
            0 => String::new(),
            n => format!(", {n} to release"),
        };
        format!(
            "Plan: {} to add, {} to change, {} to destroy{release}.",
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

/// A short stable digest of a JSON value (16 hex digits of SHA-256), independent of object
/// key order. Streams the value into the hasher: no copy, no serialisation buffer.
pub fn digest(v: &Value) -> String {
    let mut h = Sha256::new();
    feed(&mut h, v);
    hex::encode(&h.finalize()[..8])
}

/// The digest of a spec with its sensitive paths left out, for the ownership marker's
/// fingerprint and the plan's `desired_digest`. Both are readable by anyone who can read the
/// object or the plan file; a digest over a secret would let them test guesses offline.
/// Equal to [`digest`] of [`redact`]ed `v`, hashed as it is walked (no redacted copy).
pub fn spec_digest(v: &Value, sensitive: &[&str]) -> String {
    if sensitive.is_empty() {
        return digest(v);
    }
    let mut h = Sha256::new();
    feed_redacted(&mut h, v, &mut String::new(), sensitive);
    hex::encode(&h.finalize()[..8])
}

/// [`feed`] of what [`redact`] makes of `v` at `path`: a non-null value at a sensitive path
/// (below the root) is fed as the string `(sensitive)`.
fn feed_redacted(h: &mut impl Sink, v: &Value, path: &mut String, sensitive: &[&str]) {
    if !path.is_empty()
        && !v.is_null()
        && sensitive.iter().any(|p| crate::diff::path_matches(path, p))
    {
        // What `feed` puts for the string `(sensitive)`.
        const REDACTED: &str = "(sensitive)";
        h.put(b"s");
        h.put(&(REDACTED.len() as u64).to_le_bytes());
        h.put(REDACTED.as_bytes());
        return;
    }
    match v {
        Value::Object(m) => {
            h.put(b"{");
            // Keys in sorted order; small objects sort on the stack.
            let mut small: [Option<(&String, &Value)>; 16] = [None; 16];
            let mut large: Vec<(&String, &Value)> = Vec::new();
            let entries: &mut [Option<(&String, &Value)>] = if m.len() <= small.len() {
                for (slot, kv) in small.iter_mut().zip(m.iter()) {
                    *slot = Some(kv);
                }
                &mut small[..m.len()]
            } else {
                large.extend(m.iter());
                large.sort_unstable_by(|a, b| a.0.cmp(b.0));
                &mut []
            };
            entries.sort_unstable_by(|a, b| a.map(|a| a.0).cmp(&b.map(|b| b.0)));
            let sorted = entries.iter().flatten().copied().chain(large);
            for (k, c) in sorted {
                h.put(&(k.len() as u64).to_le_bytes());
                h.put(k.as_bytes());
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                feed_redacted(h, c, path, sensitive);
                path.truncate(len);
            }
            h.put(b"}");
        }
        Value::Array(a) => {
            h.put(b"[");
            for (i, c) in a.iter().enumerate() {
                let len = path.len();
                {
                    use std::fmt::Write;
                    let _ = write!(path, "[{i}]");
                }
                feed_redacted(h, c, path, sensitive);
                path.truncate(len);
            }
            h.put(b"]");
        }
        other => feed(h, other),
    }
}

/// Digest of several values taken together.
pub fn digest_all(vs: &[&Value]) -> String {
    let mut h = Sha256::new();
    for v in vs {
        feed(&mut h, v);
    }
    hex::encode(&h.finalize()[..8])
}

/// Digest of an observed object and its marker (`stack/fingerprint`), the same as
/// [`digest_all`] of the value and the marker as a string (or null without one).
pub fn digest_observed(v: &Value, marker: Option<(&str, &str)>) -> String {
    let parts = marker.map(|(stack, fp)| (stack, [fp]));
    digest_observed_parts(v, parts.as_ref().map(|(stack, fp)| (*stack, fp.as_slice())))
}

/// [`digest_observed`] with the fingerprint given as parts joined by `/` (hashed without
/// joining them).
pub(crate) fn digest_observed_parts(v: &Value, marker: Option<(&str, &[&str])>) -> String {
    digest_observed_redacted(v, &[], marker)
}

/// [`digest_observed_parts`] of [`redact`]ed `v`, hashed as it is walked (no redacted copy:
/// a large plan digests every observed object).
pub(crate) fn digest_observed_redacted(
    v: &Value,
    sensitive: &[&str],
    marker: Option<(&str, &[&str])>,
) -> String {
    let mut h = Sha256::new();
    if sensitive.is_empty() {
        feed(&mut h, v);
    } else {
        feed_redacted(&mut h, v, &mut String::new(), sensitive);
    }
    match marker {
        Some((stack, parts)) => {
            let len = parts.iter().map(|p| p.len() + 1).sum::<usize>();
            h.put(b"s");
            h.put(&((stack.len() + len) as u64).to_le_bytes());
            h.put(stack.as_bytes());
            for p in parts {
                h.put(b"/");
                h.put(p.as_bytes());
            }
        }
        None => h.put(b"n"),
    }
    hex::encode(&h.finalize()[..8])
}

/// Appends the byte stream that [`digest`] hashes for `v` (so a digest can also be built
/// from a stream, see [`crate::spec::Spec`]).
pub(crate) fn feed_bytes(out: &mut Vec<u8>, v: &Value) {
    feed(out, v);
}

/// Where the digest stream goes: the hasher, or a buffer.
trait Sink {
    fn put(&mut self, b: &[u8]);
}

impl Sink for Sha256 {
    fn put(&mut self, b: &[u8]) {
        self.update(b);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

fn feed(h: &mut impl Sink, v: &Value) {
    match v {
        Value::Null => h.put(b"n"),
        Value::Bool(b) => h.put(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            h.put(b"#");
            match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => h.put(itoa(u as u128, false, &mut [0; 40])),
                (None, Some(i)) => h.put(itoa(i.unsigned_abs() as u128, i < 0, &mut [0; 40])),
                _ => h.put(n.to_string().as_bytes()),
            }
            h.put(b";");
        }
        Value::String(s) => {
            h.put(b"s");
            h.put(&(s.len() as u64).to_le_bytes());
            h.put(s.as_bytes());
        }
        Value::Array(a) => {
            h.put(b"[");
            a.iter().for_each(|c| feed(h, c));
            h.put(b"]");
        }
        Value::Object(m) => {
            h.put(b"{");
            // Keys in sorted order; small objects sort on the stack.
            let mut small: [Option<(&String, &Value)>; 16] = [None; 16];
            if m.len() <= small.len() {
                for (slot, kv) in small.iter_mut().zip(m.iter()) {
                    *slot = Some(kv);
                }
                let entries = &mut small[..m.len()];
                entries.sort_unstable_by(|a, b| a.map(|a| a.0).cmp(&b.map(|b| b.0)));
                for (k, c) in entries.iter().flatten() {
                    h.put(&(k.len() as u64).to_le_bytes());
                    h.put(k.as_bytes());
                    feed(h, c);
                }
            } else {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort_unstable();
                for k in keys {
                    h.put(&(k.len() as u64).to_le_bytes());
                    h.put(k.as_bytes());
                    feed(h, &m[k]);
                }
            }
            h.put(b"}");
        }
    }
}

/// Decimal digits of an integer, without allocating.
fn itoa(mut n: u128, negative: bool, buf: &mut [u8; 40]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_digest_hashes_the_redacted_value_without_copying_it() {
        let v = json!({
            "name": "a", "secret": "hunter2", "nothing": null,
            "users": [{"name": "u", "password": "p1"}, {"name": "v", "password": null}],
            "auth": {"token": "t", "user": "me"}, "list": [[1, 2], [3]]
        });
        for sensitive in [
            &["secret"][..],
            &["nothing", "users[*].password"],
            &["auth", "list[*]"],
            &["users"],
            &["missing"],
        ] {
            assert_eq!(
                spec_digest(&v, sensitive),
                digest(&redact(&v, sensitive)),
                "{sensitive:?}"
            );
        }
        let mut other = v.clone();
        other["secret"] = json!("other");
        assert_eq!(
            spec_digest(&v, &["secret"]),
            spec_digest(&other, &["secret"])
        );
        assert_ne!(spec_digest(&v, &[]), spec_digest(&other, &[]));
    }

    #[test]
    fn observed_digest_with_secrets_hashes_the_redacted_value_without_copying_it() {
        let mut v = json!({
            "name": "a", "secret": "hunter2", "nothing": null,
            "users": [{"name": "u", "password": "p1"}, {"name": "v", "password": null}],
            "auth": {"token": "t", "user": "me"}, "list": [[1, 2], [3]]
        });
        // An object of more keys than are sorted on the stack.
        v["wide"] = (0..40)
            .map(|i| (format!("k{}", 40 - i), json!(i)))
            .collect();
        v["wide"]["k7"] = json!({"secret": "s"});
        let marker = Some(("stack", &["fp", "created", ""][..]));
        for sensitive in [
            &["secret"][..],
            &["nothing", "users[*].password"],
            &["auth", "list[*]"],
            &["wide.k7.secret", "wide.k9"],
            &["missing"],
            &[],
        ] {
            for marker in [marker, None] {
                assert_eq!(
                    digest_observed_redacted(&v, sensitive, marker),
                    digest_observed_parts(&redact(&v, sensitive), marker),
                    "{sensitive:?}"
                );
            }
        }
        let mut other = v.clone();
        other["wide"]["k7"]["secret"] = json!("other");
        assert_eq!(
            digest_observed_redacted(&v, &["wide.k7.secret"], marker),
            digest_observed_redacted(&other, &["wide.k7.secret"], marker),
            "a secret's value never reaches the digest"
        );
        assert_ne!(
            digest_observed_redacted(&v, &[], marker),
            digest_observed_redacted(&other, &[], marker)
        );
    }

    #[test]
    fn observed_digest_streams_what_digest_all_hashes() {
        let v = json!({"b": [1, -2, 2.5, null], "a": {"z": true, "y": "s"}, "id": 18446744073709551615u64});
        let with = Value::String("stack/fp".into());
        assert_eq!(
            digest_observed(&v, Some(("stack", "fp"))),
            digest_all(&[&v, &with])
        );
        assert_eq!(digest_observed(&v, None), digest_all(&[&v, &Value::Null]));
        assert_eq!(
            digest_observed_parts(&v, Some(("stack", &["fp", "created", ""]))),
            digest_all(&[&v, &Value::String("stack/fp/created/".into())])
        );
        assert_ne!(digest(&json!({"a": 1})), digest(&json!({"a": "1"})));
    }
}
