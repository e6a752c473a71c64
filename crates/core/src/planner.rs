//! Making a plan: validate, observe every kind in bulk (concurrently), resolve references
//! that are already known, diff, find owned objects no longer declared, refuse protected
//! destroys and failed checks — all before anything is touched.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::future::join_all;
use serde_json::Value;

use crate::diff::{FieldChange, diff, path_matches};
use crate::plan::{Action, FORMAT_VERSION, GatePlan, Plan, ResourceChange, Summary, digest};
use crate::provider::{
    CheckResult, Declared, Diagnostic, ObserveRequest, Observed, PlannedChange, Provider,
    ProviderError,
};
use crate::resource::FieldError;
use crate::stack::{NodeDef, ResourceDef, Stack};
use crate::value::{Address, RawRef, get_path, substitute_refs};

/// The providers a stack uses, by name.
#[derive(Clone, Default)]
pub struct Providers(HashMap<String, Arc<dyn Provider>>);

impl Providers {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a provider under its own name.
    pub fn with(mut self, p: Arc<dyn Provider>) -> Self {
        self.0.insert(p.name().to_string(), p);
        self
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.0.get(name)
    }
}

/// Why no plan could be made. Nothing was touched in any case.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Specs failed validation.
    #[error("invalid input, nothing was changed:\n  {}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n  "))]
    Invalid(Vec<Diagnostic>),
    /// A resource names a provider that is not configured.
    #[error("{address}: provider {provider:?} is not configured")]
    UnknownProvider {
        /// The resource.
        address: Address,
        /// The provider it needs.
        provider: String,
    },
    /// Observing failed.
    #[error("observing {kind}: {source}")]
    Observe {
        /// The kind being observed.
        kind: String,
        /// The provider's error.
        source: ProviderError,
    },
    /// The plan would destroy protected resources.
    #[error("plan refused: it would destroy protected {}: {}", if .0.len() == 1 { "resource" } else { "resources" }, .0.iter().map(|(a, why)| format!("{a} ({why})")).collect::<Vec<_>>().join(", "))]
    Protected(Vec<(Address, String)>),
    /// A plan-time check refused the plan.
    #[error("plan refused by {}:\n  {}", if .failed.len() == 1 { "a check" } else { "checks" }, .failed.iter().map(|c| format!("{}: {}", c.name, c.message)).collect::<Vec<_>>().join("\n  "))]
    ChecksFailed {
        /// The checks that failed.
        failed: Vec<CheckResult>,
        /// The plan that was refused (for display).
        plan: Box<Plan>,
    },
    /// A saved plan no longer matches the world or the code.
    #[error("saved plan is stale, nothing was changed; run diff again. Changed since it was made: {}", .0.iter().map(|(a, why)| format!("{a} ({why})")).collect::<Vec<_>>().join(", "))]
    Stale(Vec<(Address, String)>),
}

/// Per-resource data the apply needs beyond the (redacted) plan.
#[derive(Debug, Clone)]
pub struct Work {
    /// The stack node, for declared resources.
    pub node: Option<usize>,
    /// What was observed.
    pub observed: Option<Observed>,
    /// The desired value, with references resolved where they were known at plan time.
    pub desired: Option<Value>,
}

/// A plan plus what apply needs to carry it out.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The plan as shown and saved.
    pub plan: Plan,
    /// Parallel to `plan.resource_changes`.
    pub work: Vec<Work>,
}

/// Makes a plan for `stack` against the live world.
pub async fn plan(stack: &Stack, providers: &Providers) -> Result<Planned, PlanError> {
    validate(stack, providers)?;
    let observed = observe_all(stack, providers).await?;
    build_plan(stack, providers, observed).await
}

fn provider_of<'a>(
    providers: &'a Providers,
    r: &ResourceDef,
) -> Result<&'a Arc<dyn Provider>, PlanError> {
    providers
        .get(r.provider)
        .ok_or_else(|| PlanError::UnknownProvider {
            address: r.address.clone(),
            provider: r.provider.to_string(),
        })
}

fn validate(stack: &Stack, providers: &Providers) -> Result<(), PlanError> {
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut by_provider: BTreeMap<&str, Vec<Declared<'_>>> = BTreeMap::new();
    for r in stack.resources() {
        provider_of(providers, r)?;
        diags.extend(r.field_errors.iter().map(|e| Diagnostic {
            address: r.address.clone(),
            error: e.clone(),
        }));
        by_provider.entry(r.provider).or_default().push(Declared {
            address: &r.address,
            kind: r.kind,
            key: &r.key,
            spec: &r.spec,
        });
    }
    for (name, declared) in &by_provider {
        if let Some(p) = providers.get(name) {
            diags.extend(p.validate(declared));
        }
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(PlanError::Invalid(diags))
    }
}

type ObservedByKind = HashMap<String, Vec<Observed>>;

async fn observe_all(stack: &Stack, providers: &Providers) -> Result<ObservedByKind, PlanError> {
    let mut keys: BTreeMap<(&str, String), Vec<String>> = BTreeMap::new();
    for r in stack.resources() {
        keys.entry((r.provider, r.kind.to_string()))
            .or_default()
            .push(r.key.clone());
    }
    for (name, p) in &providers.0 {
        for kind in p.kinds() {
            keys.entry((name.as_str(), kind.to_string())).or_default();
        }
    }
    let name = stack.name();
    let calls = keys.iter().map(|((provider, kind), keys)| async move {
        let p = providers.get(provider).expect("validated above");
        let req = ObserveRequest {
            kind,
            keys,
            stack: name,
        };
        (kind.clone(), p.observe(req).await)
    });
    let mut out = HashMap::new();
    for (kind, res) in join_all(calls).await {
        let list = res.map_err(|source| PlanError::Observe {
            kind: kind.clone(),
            source,
        })?;
        out.insert(kind, list);
    }
    Ok(out)
}

/// Looks up a reference against what the plan already knows.
fn lookup(
    stack: &Stack,
    after: &[Option<Value>],
    keeps: &[Option<&Observed>],
    raw: &RawRef,
) -> Option<Value> {
    let i = stack.index_of(&raw.address)?;
    if let Some(v) = after[i].as_ref().and_then(|a| get_path(a, &raw.attr))
        && !crate::value::collect_refs(v).iter().any(|_| true)
        && !v.is_null()
    {
        return Some(v.clone());
    }
    keeps[i]
        .and_then(|o| get_path(&o.value, &raw.attr))
        .filter(|v| !v.is_null())
        .cloned()
}

async fn build_plan(
    stack: &Stack,
    providers: &Providers,
    observed: ObservedByKind,
) -> Result<Planned, PlanError> {
    let n = stack.nodes().len();
    let mut after: Vec<Option<Value>> = vec![None; n];
    let mut keeps: Vec<Option<&Observed>> = vec![None; n];
    let mut entries: Vec<Option<(ResourceChange, Work)>> = vec![None; n];
    let mut diags = Vec::new();
    let mut protected = Vec::new();

    for &i in stack.order() {
        let NodeDef::Resource(r) = &stack.nodes()[i] else {
            continue;
        };
        let obs = observed
            .get(r.kind)
            .and_then(|l| l.iter().find(|o| o.key == r.key));
        let mut desired = r.spec.clone();
        substitute_refs(&mut desired, &|raw| lookup(stack, &after, &keeps, raw));
        let provider = provider_of(providers, r)?;
        let (action, changes, reason) = decide(stack.name(), r, obs, &desired, &mut diags);
        if action.is_replace() && r.protect {
            protected.push((r.address.clone(), "forces replacement".to_string()));
        }
        if matches!(action, Action::NoOp | Action::Update | Action::Read) {
            keeps[i] = obs;
        }
        let steps = if action.is_change() {
            provider.rollout_steps(r.kind, obs, Some(&desired))
        } else {
            Vec::new()
        };
        let change = ResourceChange {
            address: r.address.clone(),
            kind: r.kind.to_string(),
            provider: r.provider.to_string(),
            key: r.key.clone(),
            actions: action.as_list().into_iter().map(String::from).collect(),
            action: Some(action),
            before: obs.map(|o| redact(&o.value, r.schema.sensitive)),
            after: Some(redact(&desired, r.schema.sensitive)),
            after_unknown: unknown_mirror(&desired),
            replace_paths: changes
                .iter()
                .filter(|c| c.forces_replace)
                .map(|c| c.path.clone())
                .collect(),
            action_reason: reason,
            changes: changes.into_iter().map(redact_change).collect(),
            steps,
            observed_digest: obs.map_or_else(|| "absent".into(), observed_digest),
            desired_digest: digest(&r.spec),
        };
        after[i] = Some(desired.clone());
        entries[i] = Some((
            change,
            Work {
                node: Some(i),
                observed: obs.cloned(),
                desired: Some(desired),
            },
        ));
    }
    if !diags.is_empty() {
        return Err(PlanError::Invalid(diags));
    }
    if !protected.is_empty() {
        return Err(PlanError::Protected(protected));
    }

    let mut changes = Vec::new();
    let mut work = Vec::new();
    for (c, w) in entries.into_iter().flatten() {
        changes.push(c);
        work.push(w);
    }
    // Owned objects that are no longer declared are deleted.
    let declared: HashSet<(&str, &str)> = stack
        .resources()
        .map(|r| (r.kind, r.key.as_str()))
        .collect();
    let mut kinds: Vec<_> = observed.keys().collect();
    kinds.sort();
    for kind in kinds {
        for o in &observed[kind] {
            let owned = o.marker.as_ref().is_some_and(|m| m.stack == stack.name());
            if owned && !declared.contains(&(kind.as_str(), o.key.as_str())) {
                let provider = providers
                    .0
                    .values()
                    .find(|p| p.kinds().contains(&kind.as_str()))
                    .or_else(|| {
                        stack
                            .resources()
                            .find(|r| r.kind == kind)
                            .and_then(|r| providers.get(r.provider))
                    });
                let provider_name = provider.map(|p| p.name().to_string()).unwrap_or_default();
                changes.push(ResourceChange {
                    address: Address::new(kind, &o.key),
                    kind: kind.clone(),
                    provider: provider_name,
                    key: o.key.clone(),
                    actions: vec!["delete".into()],
                    action: Some(Action::Delete),
                    before: Some(o.value.clone()),
                    after: None,
                    after_unknown: Value::Bool(false),
                    replace_paths: Vec::new(),
                    action_reason: Some("owned by this stack but no longer declared".into()),
                    changes: Vec::new(),
                    steps: provider
                        .map(|p| p.rollout_steps(kind, Some(o), None))
                        .unwrap_or_default(),
                    observed_digest: observed_digest(o),
                    desired_digest: "absent".into(),
                });
                work.push(Work {
                    node: None,
                    observed: Some(o.clone()),
                    desired: None,
                });
            }
        }
    }

    let gates = plan_gates(stack, &changes);
    let mut plan = Plan {
        format_version: FORMAT_VERSION.to_string(),
        stack: stack.name().to_string(),
        resource_changes: changes,
        gates,
        checks: Vec::new(),
        errored: false,
        errors: Vec::new(),
        summary: Summary::default(),
    };
    plan.summarize();
    plan.checks = run_checks(stack, providers, &plan, &work).await?;
    let failed: Vec<CheckResult> = plan.checks.iter().filter(|c| !c.passed).cloned().collect();
    if !failed.is_empty() {
        plan.errored = true;
        plan.errors = failed
            .iter()
            .map(|c| format!("{}: {}", c.name, c.message))
            .collect();
        return Err(PlanError::ChecksFailed {
            failed,
            plan: Box::new(plan),
        });
    }
    Ok(Planned { plan, work })
}

/// Decides the action for one declared resource.
fn decide(
    stack: &str,
    r: &ResourceDef,
    obs: Option<&Observed>,
    desired: &Value,
    diags: &mut Vec<Diagnostic>,
) -> (Action, Vec<FieldChange>, Option<String>) {
    let Some(obs) = obs else {
        if r.schema.read_only {
            diags.push(Diagnostic {
                address: r.address.clone(),
                error: FieldError::new(
                    "key",
                    format!(
                        "no {} with key {:?} exists (read-only lookup)",
                        r.kind, r.key
                    ),
                ),
            });
            return (Action::Read, Vec::new(), None);
        }
        return (
            Action::Create,
            Vec::new(),
            Some("not found: will be created".into()),
        );
    };
    if r.schema.read_only {
        return (Action::Read, Vec::new(), None);
    }
    if let Some(m) = &obs.marker
        && m.stack != stack
    {
        diags.push(Diagnostic {
            address: r.address.clone(),
            error: FieldError::new(
                "key",
                format!(
                    "{:?} is owned by stack {:?}; refusing to adopt it into {stack:?}",
                    r.key, m.stack
                ),
            ),
        });
    }
    let changes = diff(desired, &obs.value, &r.schema, &r.ignore_changes);
    let adopting = obs.marker.is_none();
    let replace = changes.iter().any(|c| c.forces_replace);
    let drift_reason = || match &obs.marker {
        None => "adopt: not yet managed by cairn".to_string(),
        Some(m)
            if m.fingerprint.is_some() && m.fingerprint.as_deref() == Some(&digest(desired)) =>
        {
            "changed outside cairn since the last apply".to_string()
        }
        Some(_) => "the stack's code changed since the last apply".to_string(),
    };
    if replace {
        let paths: Vec<_> = changes
            .iter()
            .filter(|c| c.forces_replace)
            .map(|c| c.path.as_str())
            .collect();
        let action = if r.schema.create_before_destroy {
            Action::CreateDelete
        } else {
            Action::DeleteCreate
        };
        return (
            action,
            changes.clone(),
            Some(format!(
                "{} forces replacement ({})",
                paths.join(", "),
                drift_reason()
            )),
        );
    }
    if !changes.is_empty() {
        return (Action::Update, changes, Some(drift_reason()));
    }
    if adopting {
        let marker = FieldChange {
            path: "(ownership marker)".into(),
            before: None,
            after: Some(Value::String(format!("stack {stack}"))),
            unknown: false,
            forces_replace: false,
            needs_restart: false,
            sensitive: false,
        };
        return (
            Action::Update,
            vec![marker],
            Some("adopt: matches the spec; only the ownership marker is added".into()),
        );
    }
    (Action::NoOp, Vec::new(), None)
}

fn observed_digest(o: &Observed) -> String {
    digest(&serde_json::json!({"value": o.value, "marker": o.marker}))
}

/// Gates run when anything after them changes.
fn plan_gates(stack: &Stack, changes: &[ResourceChange]) -> Vec<GatePlan> {
    let n = stack.nodes().len();
    let mut dependents = vec![Vec::new(); n];
    for i in 0..n {
        for &d in stack.deps(i) {
            dependents[d].push(i);
        }
    }
    let changing: HashSet<&Address> = changes
        .iter()
        .filter(|c| c.action().is_change())
        .map(|c| &c.address)
        .collect();
    let mut out = Vec::new();
    for (i, node) in stack.nodes().iter().enumerate() {
        let NodeDef::Gate(g) = node else { continue };
        let mut seen = vec![false; n];
        let mut stack_: Vec<usize> = dependents[i].clone();
        let mut will_run = false;
        while let Some(j) = stack_.pop() {
            if std::mem::replace(&mut seen[j], true) {
                continue;
            }
            will_run |= changing.contains(stack.nodes()[j].address());
            stack_.extend(&dependents[j]);
        }
        out.push(GatePlan {
            address: g.address.clone(),
            description: g.probe.describe(),
            interval_secs: g.timing.interval.as_secs_f64(),
            timeout_secs: g.timing.timeout.as_secs_f64(),
            will_run,
            after: stack
                .deps(i)
                .iter()
                .map(|&d| stack.nodes()[d].address().clone())
                .collect(),
        });
    }
    out
}

async fn run_checks(
    stack: &Stack,
    providers: &Providers,
    plan: &Plan,
    work: &[Work],
) -> Result<Vec<CheckResult>, PlanError> {
    let mut names: Vec<&str> = plan
        .resource_changes
        .iter()
        .map(|c| c.provider.as_str())
        .collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let Some(p) = providers.get(name) else {
            continue;
        };
        let changes: Vec<PlannedChange<'_>> = plan
            .resource_changes
            .iter()
            .zip(work)
            .filter(|(c, _)| c.provider == name)
            .map(|(c, w)| PlannedChange {
                kind: &c.kind,
                key: &c.key,
                address: &c.address,
                before: w.observed.as_ref(),
                after: if c.action() == Action::Delete {
                    None
                } else {
                    w.desired.as_ref()
                },
            })
            .collect();
        let results = p
            .check_plan(&changes, stack.settings())
            .await
            .map_err(|source| PlanError::Observe {
                kind: format!("{name} plan checks"),
                source,
            })?;
        out.extend(results);
    }
    Ok(out)
}

/// Replaces values at sensitive paths with `"(sensitive)"`.
pub fn redact(v: &Value, sensitive: &[&str]) -> Value {
    fn go(v: &Value, path: String, sensitive: &[&str]) -> Value {
        if !path.is_empty() && sensitive.iter().any(|p| path_matches(&path, p)) && !v.is_null() {
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

fn redact_change(mut c: FieldChange) -> FieldChange {
    if c.sensitive {
        let hide = |v: &mut Option<Value>| {
            if v.is_some() {
                *v = Some(Value::String("(sensitive)".into()));
            }
        };
        hide(&mut c.before);
        hide(&mut c.after);
    }
    c
}

/// Terraform's `after_unknown`: `true` where a value is known only after apply.
fn unknown_mirror(v: &Value) -> Value {
    if RawRef::from_marker(v).is_some() {
        return Value::Bool(true);
    }
    match v {
        Value::Object(m) => {
            let inner: serde_json::Map<_, _> = m
                .iter()
                .map(|(k, c)| (k.clone(), unknown_mirror(c)))
                .filter(|(_, c)| c != &Value::Bool(false))
                .collect();
            if inner.is_empty() {
                Value::Bool(false)
            } else {
                Value::Object(inner)
            }
        }
        Value::Array(a) => {
            let inner: Vec<_> = a.iter().map(unknown_mirror).collect();
            if inner.iter().all(|c| c == &Value::Bool(false)) {
                Value::Bool(false)
            } else {
                Value::Array(inner)
            }
        }
        _ => Value::Bool(false),
    }
}

/// Compares a saved plan with a fresh one; returns what changed since it was made.
pub fn stale_entries(saved: &Plan, fresh: &Plan) -> Vec<(Address, String)> {
    let mut out = Vec::new();
    if saved.stack != fresh.stack {
        out.push((
            Address(saved.stack.clone()),
            "made for another stack".into(),
        ));
    }
    for s in &saved.resource_changes {
        match fresh.change(&s.address.0) {
            None => out.push((s.address.clone(), "no longer in the plan".into())),
            Some(f) if f.observed_digest != s.observed_digest => {
                out.push((s.address.clone(), "its live state changed".into()))
            }
            Some(f) if f.desired_digest != s.desired_digest => {
                out.push((s.address.clone(), "its declared spec changed".into()))
            }
            Some(f) if f.actions != s.actions => {
                out.push((s.address.clone(), "its planned action changed".into()))
            }
            Some(_) => {}
        }
    }
    for f in &fresh.resource_changes {
        if saved.change(&f.address.0).is_none() && f.action().is_change() {
            out.push((f.address.clone(), "new change not in the saved plan".into()));
        }
    }
    out
}
