//! Applying a plan: a topological walk of the stack graph with a global concurrency bound
//! and per-provider bounds. A failed node skips exactly its descendants while independent
//! branches finish; undeclared objects are deleted after everything that used them; a
//! create-before-destroy replace deletes the old object after the new one's dependents ran;
//! references are resolved from real results just before a node runs.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::plan::{Action, spec_digest};
use crate::planner::{Planned, Providers};
use crate::provider::{Change, Marker, Observed, Origin, ProviderError};
use crate::stack::{GateDef, NodeDef, Stack};
use crate::value::{Address, RawRef, get_path};

/// Apply settings.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// How many changes run at once across all providers (default 10).
    pub parallelism: usize,
    /// How often a provider call whose error is `retryable` is tried again before the
    /// change counts as failed (default 2).
    pub retries: u32,
    /// The wait before the first such retry; it doubles for each further one (default 1 s).
    pub retry_backoff: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            parallelism: 10,
            retries: 2,
            retry_backoff: Duration::from_secs(1),
        }
    }
}

/// How one node ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "lowercase")]
pub enum Outcome {
    /// The change was made (or the gate passed).
    Done,
    /// Nothing to do.
    Unchanged,
    /// The change or gate failed, with the reason.
    Failed(String),
    /// Not attempted because something it depends on failed.
    Skipped(String),
}

/// Receives progress events (a terminal UI, a log, a test).
pub trait Progress: Send + Sync {
    /// A node started doing real work (`create`, `update`, `gate`, …).
    fn started(&self, address: &Address, what: &str);
    /// A node ended.
    fn finished(&self, address: &Address, outcome: &Outcome, elapsed: Duration);
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {
    fn started(&self, _: &Address, _: &str) {}
    fn finished(&self, _: &Address, _: &Outcome, _: Duration) {}
}

/// One line of the final report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportEntry {
    /// The node.
    pub address: Address,
    /// What was done (`create`, `delete old`, `gate`, …).
    pub what: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Seconds it took.
    pub elapsed_secs: f64,
}

/// The final report of an apply.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// Every node that had work, in completion order.
    pub entries: Vec<ReportEntry>,
}

impl ApplyReport {
    /// Whether every node succeeded.
    pub fn success(&self) -> bool {
        self.entries
            .iter()
            .all(|e| matches!(e.outcome, Outcome::Done | Outcome::Unchanged))
    }

    /// Counts of done, failed and skipped nodes.
    pub fn counts(&self) -> (usize, usize, usize) {
        let c = |f: fn(&Outcome) -> bool| self.entries.iter().filter(|e| f(&e.outcome)).count();
        (
            c(|o| matches!(o, Outcome::Done)),
            c(|o| matches!(o, Outcome::Failed(_))),
            c(|o| matches!(o, Outcome::Skipped(_))),
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Task {
    /// Nothing to do; publish the observed value for references.
    Pass(Option<usize>),
    /// Carry out the change at this index of the plan.
    Change(usize),
    /// Delete the old object of a create-before-destroy replace.
    DeleteOld(usize),
    /// Run a gate (stack node index).
    Gate(usize),
    /// A gate nothing after it needs.
    SkipGate,
}

struct ExecNode {
    address: Address,
    task: Task,
    deps: Vec<usize>,
}

/// Builds the execution graph from the stack and the plan.
fn exec_graph(stack: &Stack, planned: &Planned) -> Vec<ExecNode> {
    let changes = &planned.plan.resource_changes;
    let by_node: HashMap<usize, usize> = planned
        .work
        .iter()
        .enumerate()
        .filter_map(|(ci, w)| w.node.map(|n| (n, ci)))
        .collect();
    let gate_runs: HashMap<&Address, bool> = planned
        .plan
        .gates
        .iter()
        .map(|g| (&g.address, g.will_run))
        .collect();
    let mut nodes: Vec<ExecNode> = stack
        .nodes()
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let task = match n {
                NodeDef::Resource(_) => match by_node.get(&i) {
                    Some(&ci) if changes[ci].action().is_change() => Task::Change(ci),
                    ci => Task::Pass(ci.copied()),
                },
                NodeDef::Gate(g) if gate_runs.get(&g.address).copied().unwrap_or(false) => {
                    Task::Gate(i)
                }
                NodeDef::Gate(_) => Task::SkipGate,
            };
            ExecNode {
                address: n.address().clone(),
                task,
                deps: stack.deps(i).to_vec(),
            }
        })
        .collect();
    let n = nodes.len();
    let mut dependents = vec![Vec::new(); n];
    for (i, node) in nodes.iter().enumerate() {
        for &d in &node.deps {
            dependents[d].push(i);
        }
    }
    // Create-before-destroy: the old object goes after the new one and its dependents.
    for i in 0..n {
        if let Task::Change(ci) = nodes[i].task
            && changes[ci].action() == Action::CreateDelete
        {
            let mut deps = vec![i];
            deps.extend(&dependents[i]);
            nodes.push(ExecNode {
                address: nodes[i].address.clone(),
                task: Task::DeleteOld(ci),
                deps,
            });
        }
    }
    // Undeclared objects: deleted after everything that uses them has changed.
    let uses_of = |ci: usize| -> Vec<(String, String)> {
        planned.work[ci]
            .observed
            .as_ref()
            .map(|o| o.uses.clone())
            .unwrap_or_default()
    };
    let deletes: Vec<usize> = (0..changes.len())
        .filter(|&ci| planned.work[ci].node.is_none())
        .collect();
    let first_delete = nodes.len();
    for &ci in &deletes {
        nodes.push(ExecNode {
            address: changes[ci].address.clone(),
            task: Task::Change(ci),
            deps: Vec::new(),
        });
    }
    for (di, &ci) in deletes.iter().enumerate() {
        let target = (changes[ci].kind.clone(), changes[ci].key.clone());
        let users: Vec<usize> = nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != first_delete + di)
            .filter(|(_, node)| match node.task {
                Task::Change(cj) | Task::Pass(Some(cj)) => uses_of(cj).contains(&target),
                _ => false,
            })
            .map(|(j, _)| j)
            .collect();
        nodes[first_delete + di].deps.extend(users);
    }
    nodes
}

/// Applies a plan. Never returns early: the report tells what was done, failed and skipped.
pub async fn apply(
    stack: &Stack,
    providers: &Providers,
    planned: &Planned,
    opts: ApplyOptions,
    progress: Arc<dyn Progress>,
) -> ApplyReport {
    let nodes = exec_graph(stack, planned);
    let n = nodes.len();
    let mut dependents = vec![Vec::new(); n];
    let mut remaining: Vec<usize> = nodes.iter().map(|x| x.deps.len()).collect();
    for (i, node) in nodes.iter().enumerate() {
        for &d in &node.deps {
            dependents[d].push(i);
        }
    }
    let mut per_provider: HashMap<String, Semaphore> = HashMap::new();
    for c in &planned.plan.resource_changes {
        if let Some(p) = providers.get(&c.provider) {
            per_provider
                .entry(c.provider.clone())
                .or_insert_with(|| Semaphore::new(p.concurrency().max(1)));
        }
    }
    let ctx = Ctx {
        stack,
        providers,
        planned,
        outputs: Mutex::new(vec![None; stack.nodes().len()]),
        global: Semaphore::new(opts.parallelism.max(1)),
        per_provider,
        progress: progress.as_ref(),
        change_timeout: stack.change_timeout(),
        opts,
    };

    let mut report = ApplyReport::default();
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    let mut skipped = vec![false; n];
    // Futures borrow the context and are polled on this task: no copies of the stack or plan.
    let mut running = FuturesUnordered::new();
    loop {
        while let Some(i) = ready.pop_front() {
            let ctx = &ctx;
            let node = &nodes[i];
            running.push(async move {
                let start = Instant::now();
                let outcome = ctx.run(i, &node.address, node.task).await;
                (i, outcome, start.elapsed())
            });
        }
        let Some((i, outcome, elapsed)) = running.next().await else {
            break;
        };
        let what = describe(&nodes[i].task, &planned.plan.resource_changes);
        if what != "none" {
            progress.finished(&nodes[i].address, &outcome, elapsed);
            report.entries.push(ReportEntry {
                address: nodes[i].address.clone(),
                what: what.to_string(),
                outcome: outcome.clone(),
                elapsed_secs: elapsed.as_secs_f64(),
            });
        }
        match outcome {
            Outcome::Failed(_) => {
                let mut stack_ = dependents[i].clone();
                while let Some(j) = stack_.pop() {
                    if std::mem::replace(&mut skipped[j], true) {
                        continue;
                    }
                    let what = describe(&nodes[j].task, &planned.plan.resource_changes);
                    if what != "none" {
                        let outcome = Outcome::Skipped(format!("{} failed", nodes[i].address));
                        progress.finished(&nodes[j].address, &outcome, Duration::ZERO);
                        report.entries.push(ReportEntry {
                            address: nodes[j].address.clone(),
                            what: what.to_string(),
                            outcome,
                            elapsed_secs: 0.0,
                        });
                    }
                    stack_.extend(&dependents[j]);
                }
            }
            _ => {
                for &j in &dependents[i] {
                    remaining[j] -= 1;
                    if remaining[j] == 0 && !skipped[j] {
                        ready.push_back(j);
                    }
                }
            }
        }
    }
    report
}

fn describe(task: &Task, changes: &[crate::plan::ResourceChange]) -> &'static str {
    match task {
        Task::Pass(_) | Task::SkipGate => "none",
        Task::Change(ci) => match changes[*ci].action() {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Release => "release",
            Action::DeleteCreate => "replace (delete, then create)",
            Action::CreateDelete => "replace (create new)",
            Action::NoOp | Action::Read => "none",
        },
        Task::DeleteOld(_) => "replace (delete old)",
        Task::Gate(_) => "gate",
    }
}

struct Ctx<'a> {
    stack: &'a Stack,
    providers: &'a Providers,
    planned: &'a Planned,
    /// Values published for references, by stack node: observed ones borrowed from the
    /// plan, results of changes owned.
    outputs: Mutex<Vec<Option<Cow<'a, Value>>>>,
    global: Semaphore,
    per_provider: HashMap<String, Semaphore>,
    progress: &'a dyn Progress,
    /// How long one change may take before it fails (and its dependents are skipped).
    change_timeout: std::time::Duration,
    opts: ApplyOptions,
}

impl<'a> Ctx<'a> {
    /// Runs execution node `node` (the first nodes of the execution graph are the stack's,
    /// index for index).
    async fn run(&self, node: usize, address: &Address, task: Task) -> Outcome {
        match task {
            Task::SkipGate => Outcome::Unchanged,
            Task::Pass(ci) => {
                let planned: &'a Planned = self.planned;
                if let Some(o) = ci.and_then(|ci| planned.work[ci].observed.as_ref()) {
                    self.publish(node, Cow::Borrowed(&o.value));
                }
                Outcome::Unchanged
            }
            Task::Gate(i) => {
                let NodeDef::Gate(g) = &self.stack.nodes()[i] else {
                    unreachable!("gate task on a gate node")
                };
                self.progress.started(address, "gate");
                run_gate(g).await
            }
            Task::Change(ci) | Task::DeleteOld(ci) => {
                let change = &self.planned.plan.resource_changes[ci];
                let Some(provider) = self.providers.get(&change.provider) else {
                    return Outcome::Failed(format!(
                        "provider {:?} is not configured",
                        change.provider
                    ));
                };
                let _p = match self.per_provider.get(&change.provider) {
                    Some(s) => Some(s.acquire().await.expect("semaphore open")),
                    None => None,
                };
                let _g = self.global.acquire().await.expect("semaphore open");
                let what = describe(&task, &self.planned.plan.resource_changes);
                self.progress.started(address, what);
                // A provider call that never returns (an action stuck in `running`, a hung
                // connection) must not hold the apply lock forever: past the deadline the
                // change fails, exactly its dependents are skipped, and apply ends.
                let call = self.change(provider.as_ref(), ci, matches!(task, Task::DeleteOld(_)));
                match tokio::time::timeout(self.change_timeout, call).await {
                    Ok(Ok(Some(v))) => {
                        self.publish(node, Cow::Owned(v));
                        Outcome::Done
                    }
                    Ok(Ok(None)) => Outcome::Done,
                    Ok(Err(e)) => Outcome::Failed(e.to_string()),
                    Err(_) => Outcome::Failed(format!(
                        "{what} did not finish within {:?} (the stack's change timeout)",
                        self.change_timeout
                    )),
                }
            }
        }
    }

    /// Publishes execution node `node`'s value for references, when it is a stack node
    /// (what is added after them — old objects of replaces, undeclared objects — publishes
    /// nothing).
    fn publish(&self, node: usize, v: Cow<'a, Value>) {
        if let Some(slot) = self.outputs.lock().expect("outputs lock").get_mut(node) {
            *slot = Some(v);
        }
    }

    /// The desired value with every reference replaced by its real value: borrowed from the
    /// plan when it has none, else copied once with the values put in.
    fn resolve<'v>(
        &self,
        address: &Address,
        desired: &'v Value,
        has_refs: bool,
    ) -> Result<Cow<'v, Value>, ProviderError> {
        if !has_refs {
            return Ok(Cow::Borrowed(desired));
        }
        let outputs = self.outputs.lock().expect("outputs lock");
        let mut missing: Vec<RawRef> = Vec::new();
        let lookup = |raw: &RawRef| {
            self.stack
                .index_of(&raw.address)
                .and_then(|i| outputs[i].as_deref())
                .and_then(|o| get_path(o, &raw.attr))
                .filter(|v| !v.is_null())
                .cloned()
        };
        // A copy (which keeps the objects' hash tables) with the references put in place.
        let mut v = desired.clone();
        if crate::value::substitute_refs(&mut v, &lookup) {
            missing.extend(crate::value::collect_refs(&v).into_iter().map(|(_, r)| r));
            let list: Vec<String> = missing.iter().map(|r| r.to_string()).collect();
            return Err(ProviderError::new(
                format!("resolve references of {address}"),
                format!(
                    "no value for {} after its resource was applied",
                    list.join(", ")
                ),
            ));
        }
        Ok(Cow::Owned(v))
    }

    async fn change(
        &self,
        p: &dyn crate::provider::Provider,
        ci: usize,
        delete_old: bool,
    ) -> Result<Option<Value>, ProviderError> {
        let c = &self.planned.plan.resource_changes[ci];
        let w = &self.planned.work[ci];
        let prior: Option<&Observed> = w.observed.as_ref();
        let changed: Vec<String> = c.changes.iter().map(|f| f.path.clone()).collect();
        let desired = match &c.after {
            Some(d) if !delete_old && c.action() != Action::Delete => {
                Some(self.resolve(&c.address, d, c.after_unknown != Value::Bool(false))?)
            }
            _ => None,
        };
        // What cairn makes is marked created; what it takes over keeps (or gets) adopted.
        let origin = match c.action() {
            Action::Create | Action::DeleteCreate | Action::CreateDelete => Origin::Created,
            _ => prior
                .and_then(|o| o.marker.as_ref())
                .filter(|m| m.copied_from.is_none())
                .map_or(Origin::Adopted, |m| m.origin),
        };
        let marker = Marker {
            stack: self.planned.plan.stack.clone(),
            fingerprint: desired.as_deref().map(|d| spec_digest(d, c.sensitive)),
            origin,
            copied_from: None,
        };
        let mk = |desired, prior| Change {
            address: &c.address,
            kind: &c.kind,
            key: &c.key,
            desired,
            prior,
            marker: &marker,
            changed: &changed,
        };
        let desired = desired.as_deref();
        if delete_old {
            self.retrying(&c.address, || p.delete(mk(None, prior)))
                .await?;
            return Ok(None);
        }
        if w.pending {
            return self
                .retrying(&c.address, || p.apply_pending(&c.key))
                .await
                .map(|()| None);
        }
        match c.action() {
            Action::Create | Action::CreateDelete => self
                .retrying(&c.address, || p.create(mk(desired, None)))
                .await
                .map(Some),
            Action::Update => self
                .retrying(&c.address, || p.update(mk(desired, prior)))
                .await
                .map(Some),
            Action::DeleteCreate => {
                self.retrying(&c.address, || p.delete(mk(None, prior)))
                    .await?;
                self.retrying(&c.address, || p.create(mk(desired, None)))
                    .await
                    .map(Some)
            }
            Action::Delete => self
                .retrying(&c.address, || p.delete(mk(None, prior)))
                .await
                .map(|_| None),
            Action::Release => self
                .retrying(&c.address, || p.release(mk(None, prior)))
                .await
                .map(|_| None),
            Action::NoOp | Action::Read => Ok(prior.map(|o| o.value.clone())),
        }
    }

    /// Runs one provider call; while it fails with a `retryable` error, tries again up to
    /// `retries` times with doubling waits. Other errors end it at once.
    async fn retrying<T, F, Fut>(&self, address: &Address, mut call: F) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let mut wait = self.opts.retry_backoff;
        let mut retry = 0u32;
        loop {
            match call().await {
                Err(e) if e.retryable && retry < self.opts.retries => {
                    retry += 1;
                    tracing::warn!(%address, error = %e, retry, ?wait, "retrying the change");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                }
                other => return other,
            }
        }
    }
}

async fn run_gate(g: &GateDef) -> Outcome {
    let start = Instant::now();
    let mut last = String::from("not attempted");
    loop {
        let left = g.timing.timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Outcome::Failed(format!(
                "gate timed out after {:.0?} waiting for {}: {last}",
                g.timing.timeout,
                g.probe.describe()
            ));
        }
        let attempt = g.timing.attempt_timeout().min(left);
        match tokio::time::timeout(attempt, g.probe.check()).await {
            Ok(Ok(())) => return Outcome::Done,
            Ok(Err(reason)) => last = reason,
            Err(_) => last = format!("probe did not answer within {attempt:.0?}"),
        }
        let left = g.timing.timeout.saturating_sub(start.elapsed());
        tokio::time::sleep(g.timing.interval.min(left)).await;
    }
}
