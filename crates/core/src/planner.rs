//! Making a plan: validate, observe every kind in bulk (concurrently), resolve references
//! that are already known, diff, find owned objects no longer declared, refuse protected
//! destroys and failed checks — all before anything is touched.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::future::join_all;
use serde_json::Value;

use crate::diff::{FieldChange, diff_json};
use crate::plan::{Action, FORMAT_VERSION, GatePlan, Plan, ResourceChange, Summary, spec_digest};
use crate::provider::{
    CheckResult, Declared, Diagnostic, Marker, ObserveRequest, Observed, Origin, Pending,
    PlannedChange, Provider, ProviderError,
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
    #[error("plan refused: it would destroy or restart protected {}: {}", if .0.len() == 1 { "resource" } else { "resources" }, .0.iter().map(|(a, why)| format!("{a} ({why})")).collect::<Vec<_>>().join(", "))]
    Protected(Vec<(Address, String)>),
    /// A plan-time check refused the plan.
    #[error("plan refused by {}:\n  {}", if .failed.len() == 1 { "a check" } else { "checks" }, .failed.iter().map(|c| format!("{}: {}", c.name, c.message)).collect::<Vec<_>>().join("\n  "))]
    ChecksFailed {
        /// The checks that failed.
        failed: Vec<CheckResult>,
        /// The plan that was refused (for display).
        plan: Box<Plan>,
    },
    /// A forced replacement names resources the stack does not declare.
    #[error("cannot replace {}: not declared in stack {stack:?}", .addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "))]
    NotInStack {
        /// The stack.
        stack: String,
        /// The addresses it does not declare.
        addresses: Vec<Address>,
    },
    /// A saved plan no longer matches the world or the code.
    #[error("saved plan is stale, nothing was changed; run diff again. Changed since it was made: {}", .0.iter().map(|(a, why)| format!("{a} ({why})")).collect::<Vec<_>>().join(", "))]
    Stale(Vec<(Address, String)>),
}

/// Per-resource data the apply needs beyond the plan: the node and the observed object.
/// (The desired value is the change's `after`; each value is held once.)
#[derive(Debug, Clone)]
pub struct Work {
    /// The stack node, for declared resources.
    pub node: Option<usize>,
    /// What was observed.
    pub observed: Option<Observed>,
    /// The entry puts a provider's pending changes into effect ([`Pending`]): apply calls
    /// [`Provider::apply_pending`] with its key.
    pub pending: bool,
}

/// A plan plus what apply needs to carry it out.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The plan as shown and saved.
    pub plan: Plan,
    /// Parallel to `plan.resource_changes`.
    pub work: Vec<Work>,
}

impl Planned {
    /// The plan as JSON (`docs/plan-format.md`): `before` filled in from what was observed,
    /// sensitive values redacted.
    pub fn to_json(&self) -> Value {
        let mut plan = self.plan.clone();
        for (c, w) in plan.resource_changes.iter_mut().zip(&self.work) {
            c.before = w.observed.as_ref().map(|o| o.value.clone());
            if !c.action().is_change() {
                c.after = c.before.clone();
            }
        }
        serde_json::to_value(&plan).expect("plans serialise")
    }
}

/// How a plan is made beyond the stack and the live world.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Resources to replace even though nothing forces it (a machine rotation): each one
    /// that exists is planned as a replace (create-before-destroy where its kind declares
    /// it) with the reason [`REPLACEMENT_REQUESTED`], and every attribute of it is unknown
    /// until the new one exists, so the resources that reference it are planned as
    /// updates. One that does not exist yet is simply created. Protection still refuses.
    pub replace: Vec<Address>,
}

/// The reason a plan shows for a replacement asked for with [`PlanOptions::replace`].
pub const REPLACEMENT_REQUESTED: &str = "replacement requested";

/// Makes a plan for `stack` against the live world.
pub async fn plan(stack: &Stack, providers: &Providers) -> Result<Planned, PlanError> {
    plan_with(stack, providers, &PlanOptions::default()).await
}

/// Makes a plan for `stack` against the live world, with `options` (e.g. forced
/// replacements). An address to replace that the stack does not declare is an error
/// before anything is observed.
pub async fn plan_with(
    stack: &Stack,
    providers: &Providers,
    options: &PlanOptions,
) -> Result<Planned, PlanError> {
    let mut forced = vec![false; stack.nodes().len()];
    let mut missing = Vec::new();
    for a in &options.replace {
        match stack
            .index_of(a)
            .filter(|&i| matches!(stack.nodes()[i], NodeDef::Resource(_)))
        {
            Some(i) => forced[i] = true,
            None => missing.push(a.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(PlanError::NotInStack {
            stack: stack.name().to_string(),
            addresses: missing,
        });
    }
    validate(stack, providers)?;
    let (observed, pending) = futures::join!(observe_all(stack, providers), pending_all(providers));
    build_plan(stack, providers, observed?, pending?, &forced).await
}

/// Every provider's pending changes (written, not in effect), by provider name.
async fn pending_all(providers: &Providers) -> Result<Vec<(String, Pending)>, PlanError> {
    let calls = providers
        .0
        .iter()
        .map(|(name, p)| async move { (name, p.pending().await) });
    let mut out = Vec::new();
    for (name, res) in join_all(calls).await {
        let list = res.map_err(|source| PlanError::Observe {
            kind: format!("{name} pending changes"),
            source,
        })?;
        out.extend(list.into_iter().map(|p| (name.clone(), p)));
    }
    out.sort_by(|a, b| (&a.0, &a.1.id).cmp(&(&b.0, &b.1.id)));
    Ok(out)
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
    let mut by_provider: BTreeMap<&str, Vec<&ResourceDef>> = BTreeMap::new();
    for r in stack.resources() {
        provider_of(providers, r)?;
        diags.extend(r.field_errors.iter().map(|e| Diagnostic {
            address: r.address.clone(),
            error: e.clone(),
        }));
        by_provider.entry(r.provider).or_default().push(r);
    }
    for (name, defs) in &by_provider {
        if let Some(p) = providers.get(name).filter(|p| p.validates()) {
            // Cross-resource validation reads the specs as values: materialised for this
            // provider only, and dropped right after.
            let specs: Vec<Value> = defs.iter().map(|r| r.spec.to_value()).collect();
            let declared: Vec<Declared<'_>> = defs
                .iter()
                .zip(&specs)
                .map(|(r, spec)| Declared {
                    address: &r.address,
                    kind: r.kind,
                    key: &r.key,
                    spec,
                })
                .collect();
            diags.extend(p.validate(&declared));
        }
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(PlanError::Invalid(diags))
    }
}

type ObservedByKind = HashMap<String, Vec<Observed>>;

/// Puts plan entries made in dependency order into declaration order, moving each entry
/// once (no second copy of the plan).
fn sort_by_node(changes: &mut [ResourceChange], work: &mut [Work]) {
    let mut src: Vec<usize> = (0..work.len()).collect();
    src.sort_unstable_by_key(|&k| work[k].node);
    // Position t takes the entry now at src[t]; walk each cycle of the permutation.
    for start in 0..src.len() {
        let mut t = start;
        while src[t] != usize::MAX {
            let s = std::mem::replace(&mut src[t], usize::MAX);
            if s == start || src[s] == usize::MAX {
                break;
            }
            changes.swap(t, s);
            work.swap(t, s);
            t = s;
        }
    }
}

async fn observe_all(stack: &Stack, providers: &Providers) -> Result<ObservedByKind, PlanError> {
    let mut keys: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for r in stack.resources() {
        keys.entry((r.provider, r.kind))
            .or_default()
            .push(r.key.clone());
    }
    for (name, p) in &providers.0 {
        for kind in p.kinds() {
            keys.entry((name.as_str(), *kind)).or_default();
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
        (kind.to_string(), p.observe(req).await)
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
    keeps: &[bool],
    observed: &[Option<Observed>],
    forced: &[bool],
    raw: &RawRef,
) -> Option<Value> {
    let i = stack.index_of(&raw.address)?;
    if forced[i] {
        // A requested replacement is a new object: none of its attributes is known yet.
        return None;
    }
    if let Some(v) = after[i].as_ref().and_then(|a| get_path(a, &raw.attr))
        && crate::value::collect_refs(v).is_empty()
        && !v.is_null()
    {
        return Some(v.clone());
    }
    if !keeps[i] {
        return None;
    }
    observed[i]
        .as_ref()
        .and_then(|o| get_path(&o.value, &raw.attr))
        .filter(|v| !v.is_null())
        .cloned()
}

async fn build_plan(
    stack: &Stack,
    providers: &Providers,
    by_kind: ObservedByKind,
    pending: Vec<(String, Pending)>,
    forced: &[bool],
) -> Result<Planned, PlanError> {
    let n = stack.nodes().len();
    // Each declared resource takes its observed object; what is left over are undeclared
    // objects (by kind and key: a later duplicate replaces an earlier one).
    let mut slot: crate::stack::FastMap<(&str, &str), usize> = crate::stack::FastMap::default();
    slot.reserve(n);
    for (i, node) in stack.nodes().iter().enumerate() {
        if let NodeDef::Resource(r) = node {
            slot.insert((r.kind, r.key.as_str()), i);
        }
    }
    let mut observed: Vec<Option<Observed>> = std::iter::repeat_with(|| None).take(n).collect();
    let mut undeclared: BTreeMap<(String, String), Observed> = BTreeMap::new();
    for (kind, list) in by_kind {
        for o in list {
            match slot.get(&(kind.as_str(), o.key.as_str())) {
                Some(&i) => observed[i] = Some(o),
                None => {
                    undeclared.insert((kind.clone(), o.key.clone()), o);
                }
            }
        }
    }
    drop(slot);
    let mut warnings = Vec::new();
    for (node, obs) in stack.nodes().iter().zip(observed.iter_mut()) {
        let (NodeDef::Resource(r), Some(o)) = (node, obs.as_mut()) else {
            continue;
        };
        warnings.extend(o.warnings.drain(..).map(|w| format!("{}: {w}", r.address)));
        if let Some(m) = o.marker.as_ref().filter(|m| m.copied_from.is_some()) {
            warnings.push(copied_warning(r.kind, &r.key, m));
            o.marker = None;
        }
    }
    let mut after: Vec<Option<Value>> = vec![None; n];
    let mut keeps = vec![false; n];
    let declared = stack.resources().count();
    let mut changes: Vec<ResourceChange> = Vec::with_capacity(declared + undeclared.len());
    let mut work: Vec<Work> = Vec::with_capacity(declared + undeclared.len());
    let mut diags = Vec::new();
    let mut protected = Vec::new();

    // Stacks use few providers: the last one looked up is almost always the next one.
    let mut last: Option<(&str, &Arc<dyn Provider>)> = None;
    for &i in stack.order() {
        let NodeDef::Resource(r) = &stack.nodes()[i] else {
            continue;
        };
        let obs = observed[i].as_ref();
        let provider = match last {
            Some((name, p)) if name == r.provider => p,
            _ => {
                let p = provider_of(providers, r)?;
                last = Some((r.provider, p));
                p
            }
        };
        let resolve = |raw: &RawRef| lookup(stack, &after, &keeps, &observed, forced, raw);
        let (action, field_changes, reason) = decide(stack.name(), r, obs, &resolve, &mut diags);
        let (action, mut reason) = if forced[i] {
            force_replace(r, obs, action, reason, &mut diags)
        } else {
            let follows = follows_replacement(stack, forced, action, &field_changes);
            (action, follows.or(reason))
        };
        // Only a changing resource needs its desired value materialised (refs substituted):
        // apply uses it and dependents read it. A no-op's dependents read its observed value.
        let desired = action.is_change().then(|| {
            let mut d = r.spec.to_value();
            substitute_refs(&mut d, &resolve);
            d
        });
        if action.is_replace() && r.protect {
            let why = if forced[i] {
                REPLACEMENT_REQUESTED
            } else {
                "forces replacement"
            };
            protected.push((r.address.clone(), why.to_string()));
        }
        let restarts: Vec<&str> = field_changes
            .iter()
            .filter(|c| c.needs_restart)
            .map(|c| c.path.as_str())
            .collect();
        if action == Action::Update && r.protect && !restarts.is_empty() {
            let paths = restarts.join(", ");
            if r.restart_acknowledged {
                let why = format!("{paths} restarts this protected resource (acknowledged)");
                reason = Some(match reason {
                    Some(r) => format!("{r}; {why}"),
                    None => why,
                });
            } else {
                protected.push((
                    r.address.clone(),
                    format!("{paths} restarts it; acknowledge_restart to allow"),
                ));
            }
        }
        keeps[i] = matches!(action, Action::NoOp | Action::Update | Action::Read);
        let steps = match &desired {
            Some(d) => provider.rollout_steps(r.kind, obs, Some(d)),
            None => Vec::new(),
        };
        changes.push(ResourceChange {
            address: r.address.clone(),
            kind: r.kind.to_string(),
            provider: r.provider.to_string(),
            key: r.key.clone(),
            actions: action.as_list().into_iter().map(String::from).collect(),
            action: Some(action),
            before: None,
            after: None,
            after_unknown: desired.as_ref().map_or(Value::Bool(false), unknown_mirror),
            replace_paths: field_changes
                .iter()
                .filter(|c| c.forces_replace)
                .map(|c| c.path.clone())
                .collect(),
            action_reason: reason,
            changes: field_changes.into_iter().map(redact_change).collect(),
            steps,
            observed_digest: obs.map_or_else(
                || "absent".into(),
                |o| observed_digest(o, r.schema.sensitive),
            ),
            desired_digest: r.spec.digest(),
            sensitive: r.schema.sensitive,
        });
        work.push(Work {
            node: Some(i),
            observed: None,
            pending: false,
        });
        after[i] = desired;
    }
    if !diags.is_empty() {
        return Err(PlanError::Invalid(diags));
    }
    if !protected.is_empty() {
        return Err(PlanError::Protected(protected));
    }
    // Entries were made in dependency order; the plan lists them in declaration order.
    sort_by_node(&mut changes, &mut work);
    for (c, w) in changes.iter_mut().zip(work.iter_mut()) {
        let i = w.node.expect("declared");
        // A no-op's desired value equals what was observed on every managed field; the
        // JSON shows `after` = `before` for it, so no second copy is kept in memory.
        c.after = after[i].take();
        w.observed = observed[i].take();
    }
    drop((after, observed));
    // Owned objects that are no longer declared: what cairn created is deleted, what it
    // adopted is released (marker removed) unless the stack asks for deletion. A marker
    // copied onto another object (a clone, a restored backup) owns nothing: warn, touch nothing.
    let mut leftovers: Vec<((String, String), Observed)> = Vec::new();
    for ((kind, key), o) in undeclared {
        match &o.marker {
            Some(m) if m.owned_by(stack.name()) => leftovers.push(((kind, key), o)),
            Some(m) if m.stack == stack.name() => warnings.push(copied_warning(&kind, &key, m)),
            _ => {}
        }
    }
    warnings.sort();
    let delete_adopted = stack
        .settings()
        .get(DELETE_ADOPTED_SETTING)
        .is_some_and(|v| v == "true");
    for ((kind, key), o) in leftovers {
        let adopted = o
            .marker
            .as_ref()
            .is_some_and(|m| m.origin == Origin::Adopted);
        let (action, reason) = match (adopted, delete_adopted) {
            (false, _) => (
                Action::Delete,
                "created by this stack and no longer declared".to_string(),
            ),
            (true, false) => (
                Action::Release,
                "adopted by this stack and no longer declared: cairn removes its marker and leaves the object".to_string(),
            ),
            (true, true) => (
                Action::Delete,
                "adopted by this stack and no longer declared; the stack deletes adopted objects (delete_adopted_when_undeclared)".to_string(),
            ),
        };
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
        // Redacted by the kind's schema even though nothing declares it any more.
        let sensitive = provider
            .and_then(|p| p.schema(&kind))
            .map_or(&[][..], |s| s.sensitive);
        changes.push(ResourceChange {
            address: Address::new(&kind, &key),
            provider: provider.map(|p| p.name().to_string()).unwrap_or_default(),
            key,
            actions: action.as_list().into_iter().map(String::from).collect(),
            action: Some(action),
            before: None,
            after: None,
            after_unknown: Value::Bool(false),
            replace_paths: Vec::new(),
            action_reason: Some(reason),
            changes: if action == Action::Release {
                vec![FieldChange {
                    path: "(ownership marker)".into(),
                    before: Some(Value::String(format!("stack {}", stack.name()))),
                    after: None,
                    unknown: false,
                    forces_replace: false,
                    needs_restart: false,
                    sensitive: false,
                }]
            } else {
                Vec::new()
            },
            steps: match (action, provider) {
                (Action::Delete, Some(p)) => p.rollout_steps(&kind, Some(&o), None),
                _ => Vec::new(),
            },
            observed_digest: observed_digest(&o, sensitive),
            desired_digest: "absent".into(),
            sensitive,
            kind,
        });
        work.push(Work {
            node: None,
            observed: Some(o),
            pending: false,
        });
    }

    plan_pending(stack, pending, &mut changes, &mut work, &mut warnings);

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
        warnings,
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

/// The reason of an update that only follows a requested replacement (every change is a
/// value of a replaced resource, unknown until it exists); `None` for any other change.
fn follows_replacement(
    stack: &Stack,
    forced: &[bool],
    action: Action,
    changes: &[FieldChange],
) -> Option<String> {
    if action != Action::Update || changes.is_empty() || !changes.iter().all(|c| c.unknown) {
        return None;
    }
    let mut replaced: Vec<&str> = Vec::new();
    for c in changes {
        let refs = c
            .after
            .as_ref()
            .map(crate::value::collect_refs)
            .unwrap_or_default();
        if refs.is_empty() {
            return None;
        }
        for (_, raw) in refs {
            let i = stack.index_of(&raw.address)?;
            if !forced[i] {
                return None;
            }
            let a = stack.nodes()[i].address().0.as_str();
            if !replaced.contains(&a) {
                replaced.push(a);
            }
        }
    }
    Some(format!(
        "follows the requested replacement of {}: the values it uses are known after apply",
        replaced.join(", ")
    ))
}

/// Turns the action decided for a resource whose replacement was requested into a replace
/// (an absent one is still just created; a read-only lookup cannot be replaced).
fn force_replace(
    r: &ResourceDef,
    obs: Option<&Observed>,
    action: Action,
    reason: Option<String>,
    diags: &mut Vec<Diagnostic>,
) -> (Action, Option<String>) {
    if obs.is_none() {
        return (action, reason);
    }
    if r.schema.read_only {
        diags.push(Diagnostic {
            address: r.address.clone(),
            error: FieldError::new(
                "key",
                "replacement requested, but it is a read-only lookup cairn does not manage",
            ),
        });
        return (action, reason);
    }
    let action = if r.schema.create_before_destroy {
        Action::CreateDelete
    } else {
        Action::DeleteCreate
    };
    let reason = match reason {
        Some(also) => format!("{REPLACEMENT_REQUESTED}; also {also}"),
        None => REPLACEMENT_REQUESTED.to_string(),
    };
    (action, Some(reason))
}

/// Decides the action for one declared resource.
fn decide(
    stack: &str,
    r: &ResourceDef,
    obs: Option<&Observed>,
    resolve: &dyn Fn(&RawRef) -> Option<Value>,
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
    let changes = diff_json(
        r.spec.json(),
        &obs.value,
        &r.schema,
        &r.ignore_changes,
        resolve,
    );
    let fingerprint = || {
        let mut d = r.spec.to_value();
        substitute_refs(&mut d, resolve);
        spec_digest(&d, r.schema.sensitive)
    };
    let adopting = obs.marker.is_none();
    let replace = changes.iter().any(|c| c.forces_replace);
    let drift_reason = || match &obs.marker {
        None => "adopt: not yet managed by cairn".to_string(),
        Some(m) if m.fingerprint.is_some() && m.fingerprint.as_deref() == Some(&fingerprint()) => {
            "changed outside cairn since the last apply".to_string()
        }
        Some(m) if m.fingerprint.is_none() => {
            "differs from the spec (no applied fingerprint on record to tell why)".to_string()
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

/// Pending changes (written, not in effect) become plan entries where the stack declares a
/// resource of one of their kinds, and warnings elsewhere: the plan is what gets executed,
/// and a stack that manages nothing there has no business applying someone else's edits.
fn plan_pending(
    stack: &Stack,
    pending: Vec<(String, Pending)>,
    changes: &mut Vec<ResourceChange>,
    work: &mut Vec<Work>,
    warnings: &mut Vec<String>,
) {
    let declared: HashSet<(&str, &str)> = stack.resources().map(|r| (r.provider, r.kind)).collect();
    for (provider, p) in pending {
        let ours = p
            .kinds
            .iter()
            .any(|k| declared.contains(&(provider.as_str(), k.as_str())));
        if !ours {
            warnings.push(format!(
                "{}: this stack declares none of {} there, so cairn leaves them unapplied; review them and apply or revert them in {provider} itself, or apply the stack that manages them",
                p.description,
                p.kinds.join(", ")
            ));
            continue;
        }
        let observed = Observed {
            key: p.id.clone(),
            value: serde_json::json!({"applied": false}),
            marker: None,
            uses: Vec::new(),
            warnings: Vec::new(),
        };
        let kind = format!("{provider}_pending");
        changes.push(ResourceChange {
            address: Address::new(&kind, &p.id),
            kind,
            provider,
            key: p.id,
            actions: Action::Update.as_list().into_iter().map(String::from).collect(),
            action: Some(Action::Update),
            before: None,
            after: Some(serde_json::json!({"applied": true})),
            after_unknown: Value::Bool(false),
            replace_paths: Vec::new(),
            action_reason: Some(format!(
                "{}: a rejected or interrupted apply, or a write made without applying (possibly outside cairn); applying puts every pending change there into effect",
                p.description
            )),
            changes: vec![FieldChange {
                path: "applied".into(),
                before: Some(Value::Bool(false)),
                after: Some(Value::Bool(true)),
                unknown: false,
                forces_replace: false,
                needs_restart: false,
                sensitive: false,
            }],
            steps: vec![p.step],
            observed_digest: observed_digest(&observed, &[]),
            desired_digest: crate::plan::digest(&serde_json::json!({"applied": true})),
            sensitive: &[],
        });
        work.push(Work {
            node: None,
            observed: Some(observed),
            pending: true,
        });
    }
    warnings.sort();
}

/// The setting that makes undeclared adopted objects deleted instead of released.
pub const DELETE_ADOPTED_SETTING: &str = "cairn.delete_adopted";

fn copied_warning(kind: &str, key: &str, m: &Marker) -> String {
    format!(
        "{kind}.{key} carries stack {:?}'s marker copied from {}: it is not owned by this stack and is left alone",
        m.stack,
        m.copied_from.as_deref().unwrap_or("another object")
    )
}

/// The digest of what was observed, with the kind's sensitive paths left out: it is saved
/// in plan files next to the redacted `before`, and a digest over a secret whose every other
/// field is known would let a reader test guesses offline. (A secret changed outside cairn
/// between `diff --out` and `apply FILE` is then not noticed as staleness; the apply writes
/// the declared secret where it changes the resource, and the next plan shows the rest.)
fn observed_digest(o: &Observed, sensitive: &[&str]) -> String {
    // The marker as `stack/fingerprint/origin/copied_from`, hashed without formatting it.
    let parts = o.marker.as_ref().map(|m| {
        (
            m.stack.as_str(),
            [
                m.fingerprint.as_deref().unwrap_or_default(),
                m.origin.as_str(),
                m.copied_from.as_deref().unwrap_or_default(),
            ],
        )
    });
    let marker = parts.as_ref().map(|(stack, p)| (*stack, p.as_slice()));
    crate::plan::digest_observed_redacted(&o.value, sensitive, marker)
}

/// Gates run when anything after them changes; a gate nothing comes after (a verification)
/// runs when anything before it changes.
fn plan_gates(stack: &Stack, changes: &[ResourceChange]) -> Vec<GatePlan> {
    if !stack.nodes().iter().any(|n| matches!(n, NodeDef::Gate(_))) {
        return Vec::new();
    }
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
        // A gate nothing waits for verifies what came before it (e.g. "three etcd members"
        // at the end of a rollout): it runs when anything before it changes.
        if dependents[i].is_empty() {
            let mut stack_: Vec<usize> = stack.deps(i).to_vec();
            while let Some(j) = stack_.pop() {
                if std::mem::replace(&mut seen[j], true) {
                    continue;
                }
                will_run |= changing.contains(stack.nodes()[j].address());
                stack_.extend(stack.deps(j));
            }
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
                    c.after.as_ref()
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
