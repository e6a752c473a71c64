//! `rotate`: replaces a stack's machines one node at a time under the stack's apply lock.
//! Per node: the rotation's preflight, a check that the stack has no changes of its own
//! (they would run alongside the rotation), `before` (cordon, drain, leave), an apply of the
//! stack's plan with the node's machine forced to be replaced, `after` (gates, uncordon).
//! The whole rotation's plan is shown once and approved before anything is touched; each
//! phase is journalled in the run history ([`super::journal`]), so a rerun resumes an
//! unfinished rotation: done nodes are skipped, and a node whose machine was already
//! replaced is not replaced again.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use cairn_core::backend::{Backend, ChangeRecord, Holder, Lease, Redactor, plan_digest, status};
use cairn_core::render::{render_plan, render_report, use_color};
use cairn_core::rotation::Rotation;
use cairn_core::{Address, ApplyOptions, PlanOptions, Planned, apply, plan_with};
use serde_json::{Value, json};

use super::journal::{self, Journal, NO_MACHINE, Phase, Unfinished};
use super::progress::Lines;
use super::record::Recorder;
use super::stack_def::Loaded;

/// Which nodes to rotate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Select {
    /// One node.
    Node(String),
    /// Every node, in the rotation's order.
    All,
    /// The nodes whose last rotation is older than the rotation's period (or never ran).
    Due,
    /// No node: give up the unfinished rotation, so the next one starts afresh.
    Abandon,
}

/// What `rotate` was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct RotateArgs {
    /// The nodes.
    pub select: Select,
    /// Approved on the command line (`--approve`).
    pub approve: bool,
    /// How long to wait for the stack's lock.
    pub lock_wait: Duration,
    /// JSON Lines on stdout instead of text.
    pub json: bool,
    /// Whether stdin is a terminal to ask for approval on.
    pub terminal: bool,
}

/// How one node is rotated, decided from the journal and the live machine.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    /// From the preflight.
    Fresh,
    /// Started before with this same machine: again from `before` (preflight passed then).
    Again,
    /// Started before and its machine has been replaced since (`was` → now): only the
    /// apply, `after` and `done` are left.
    Replaced { was: String },
}

/// One node's part of the rotation's plan.
struct NodePlan {
    node: String,
    machine: Address,
    machine_id: String,
    start: Start,
    planned: Planned,
}

/// Runs `rotate` on a loaded stack: its exit code (0 rotated or nothing to do; errors
/// are returned, so the caller exits 1).
pub(crate) async fn rotate(
    loaded: &Loaded,
    backend: Arc<dyn Backend>,
    args: &RotateArgs,
) -> anyhow::Result<u8> {
    let name = loaded.stack.name();
    let Some(rotation) = loaded.rotation.clone() else {
        bail!("stack {name} has no rotation: it declares no nodes to rotate");
    };
    let all = rotation.nodes();
    if let Select::Node(n) = &args.select
        && !all.contains(n)
    {
        bail!(
            "stack {name} has no node {n:?} to rotate; its nodes: {}",
            all.join(", ")
        );
    }
    if args.select == Select::Due && rotation.period().is_none() {
        bail!(
            "stack {name} declares no rotation period, so no node is ever due; use --node or --all"
        );
    }
    let lease = backend
        .acquire(name, &Holder::current(journal::OPERATION), args.lock_wait)
        .await?;
    if let Some(prev) = lease.took_over() {
        eprintln!(
            "cairn: took over the lock of stack {name} from {prev}: its lease expired; its run is closed as interrupted"
        );
    }
    let run = lease.run_id().to_string();
    let r = Rotator {
        loaded,
        rotation: rotation.as_ref(),
        backend: &backend,
        lease: lease.as_ref(),
        run: &run,
        args,
    };
    let result = tokio::select! {
        r = r.locked() => r,
        reason = lease.lost() => Err(anyhow::anyhow!("lost the lock of stack {name}: {reason}; stopped the rotation")),
    };
    let (st, summary) = match &result {
        Ok(summary) => (status::SUCCEEDED, summary.clone()),
        Err(e) => (status::FAILED, format!("{e:#}")),
    };
    if let Err(e) = lease.finish(backend.as_ref(), st, &summary).await {
        eprintln!(
            "warning: could not close run {run} or release the lock of stack {name} in {}: {e}; the lock expires with its lease",
            backend.describe()
        );
    }
    result.map(|_| 0)
}

/// A rotation under the stack's lock.
struct Rotator<'a> {
    loaded: &'a Loaded,
    rotation: &'a dyn Rotation,
    backend: &'a Arc<dyn Backend>,
    lease: &'a dyn Lease,
    run: &'a str,
    args: &'a RotateArgs,
}

impl Rotator<'_> {
    /// The whole rotation; the run's summary.
    async fn locked(&self) -> anyhow::Result<String> {
        let name = self.loaded.stack.name();
        let all = self.rotation.nodes();
        // When each node was last rotated matters to `--due` only (it may read far back).
        let due_nodes = if self.args.select == Select::Due {
            &all[..]
        } else {
            &[]
        };
        let journal = journal::load(self.backend.as_ref(), name, self.run, due_nodes).await?;
        if self.args.select == Select::Abandon {
            return self.abandon(journal.unfinished.as_ref()).await;
        }
        let requested = self.requested(&all, &journal)?;
        let resumed = journal
            .unfinished
            .filter(|u| requested.iter().any(|n| u.nodes.contains(n)));
        let (rotation_id, mut listed) = match &resumed {
            Some(u) => (u.id.clone(), u.nodes.clone()),
            None => (self.run.to_string(), Vec::new()),
        };
        listed.retain(|n| all.contains(n));
        for n in &requested {
            if !listed.contains(n) {
                listed.push(n.clone());
            }
        }
        let skipped: Vec<&String> = requested
            .iter()
            .filter(|n| resumed.as_ref().is_some_and(|u| u.done(n)))
            .collect();
        let todo: Vec<&String> = requested.iter().filter(|n| !skipped.contains(n)).collect();
        if let Some(u) = &resumed {
            self.note(&format!(
                "resuming the unfinished rotation of run {} ({}); already rotated: {}",
                u.id,
                u.nodes.join(", "),
                if skipped.is_empty() {
                    "none".to_string()
                } else {
                    skipped
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
        if todo.is_empty() {
            if resumed.is_some() {
                self.record(&[journal::rotation_record(&rotation_id, &listed)])
                    .await?;
            }
            let why = if self.args.select == Select::Due {
                "no node is due".to_string()
            } else {
                "every requested node is already rotated".to_string()
            };
            self.note(&format!("nothing to rotate in stack {name}: {why}"));
            return Ok(format!("nothing to rotate: {why}"));
        }
        let mut plans = Vec::new();
        for node in &todo {
            plans.push(self.node_plan(node, resumed.as_ref()).await?);
        }
        self.show(&plans);
        self.approve()?;
        self.record(&[journal::rotation_record(&rotation_id, &listed)])
            .await?;
        let mut done = Vec::new();
        for p in &plans {
            self.rotate_node(p).await?;
            done.push(p.node.as_str());
        }
        let summary = format!("rotated {}", done.join(", "));
        self.note(&format!("stack {name}: {summary}"));
        Ok(summary)
    }

    /// `--abandon`: records that the unfinished rotation is given up (its nodes not done are
    /// named), so the next `rotate` starts a new one; no node is touched.
    async fn abandon(&self, unfinished: Option<&Unfinished>) -> anyhow::Result<String> {
        let name = self.loaded.stack.name();
        let Some(u) = unfinished else {
            bail!("stack {name} has no unfinished rotation to abandon");
        };
        let left: Vec<&str> = u
            .nodes
            .iter()
            .filter(|n| !u.done(n))
            .map(String::as_str)
            .collect();
        self.record(&[journal::abandoned_record(&u.id, &left)])
            .await?;
        let summary = format!(
            "abandoned the rotation of run {} (not rotated: {}); the next rotate starts a new one",
            u.id,
            left.join(", ")
        );
        self.note(&format!("stack {name}: {summary}"));
        Ok(summary)
    }

    /// The nodes asked for, in the rotation's order.
    fn requested(&self, all: &[String], journal: &Journal) -> anyhow::Result<Vec<String>> {
        Ok(match &self.args.select {
            Select::Node(n) => vec![n.clone()],
            Select::All => all.to_vec(),
            Select::Abandon => Vec::new(),
            Select::Due => {
                let period = self.rotation.period().unwrap_or_default().as_millis() as i64;
                let now = cairn_core::backend::now_ms();
                all.iter()
                    .filter(|n| {
                        journal
                            .last_done
                            .get(*n)
                            .is_none_or(|t| now.saturating_sub(*t) >= period)
                    })
                    .cloned()
                    .collect()
            }
        })
    }

    /// Plans `node`'s replacement as it stands now (and, for a resumed node, whether its
    /// machine was already replaced).
    async fn node_plan(
        &self,
        node: &str,
        resumed: Option<&Unfinished>,
    ) -> anyhow::Result<NodePlan> {
        let machine = self.rotation.machine(node).ok_or_else(|| {
            anyhow::anyhow!(
                "the rotation of stack {} names no machine for node {node}",
                self.loaded.stack.name()
            )
        })?;
        let planned = self.plan(std::slice::from_ref(&machine)).await?;
        let machine_id = observed_id(&planned, &machine);
        let started = resumed
            .and_then(|u| u.states.get(node))
            .and_then(|s| s.machine.clone());
        let start = match started {
            None => Start::Fresh,
            Some(was) if was == machine_id => Start::Again,
            Some(was) => Start::Replaced { was },
        };
        let planned = match start {
            Start::Replaced { .. } => self.plan(&[]).await?,
            _ => planned,
        };
        Ok(NodePlan {
            node: node.to_string(),
            machine,
            machine_id,
            start,
            planned,
        })
    }

    async fn plan(&self, replace: &[Address]) -> anyhow::Result<Planned> {
        let opts = PlanOptions {
            replace: replace.to_vec(),
        };
        Ok(plan_with(&self.loaded.stack, &self.loaded.providers, &opts).await?)
    }

    /// Shows the rotation's plan: per node its before steps, the replacement's plan, its
    /// after steps.
    fn show(&self, plans: &[NodePlan]) {
        let name = self.loaded.stack.name();
        if self.args.json {
            let nodes: Vec<Value> = plans
                .iter()
                .map(|p| {
                    json!({
                        "node": p.node,
                        "machine": p.machine.0,
                        "machine_id": p.machine_id,
                        "resume": match &p.start {
                            Start::Fresh => Value::Null,
                            Start::Again => json!("from before"),
                            Start::Replaced { .. } => json!("machine already replaced"),
                        },
                        "before_steps": self.before_steps(p),
                        "plan": p.planned.to_json(),
                        "after_steps": self.rotation.after_steps(&p.node),
                    })
                })
                .collect();
            println!("{}", json!({"rotation": {"stack": name, "nodes": nodes}}));
            return;
        }
        print!(
            "{}",
            self.render(plans, use_color(std::io::stdout().is_terminal()))
        );
    }

    /// The rotation's plan as text.
    fn render(&self, plans: &[NodePlan], color: bool) -> String {
        let name = self.loaded.stack.name();
        let mut out = String::new();
        macro_rules! line {
            ($($t:tt)*) => {{
                out.push_str(&format!($($t)*));
                out.push('\n');
            }};
        }
        let names: Vec<&str> = plans.iter().map(|p| p.node.as_str()).collect();
        line!(
            "Rotation of stack {name:?}: {} node(s), one at a time: {}\n",
            plans.len(),
            names.join(", ")
        );
        for (i, p) in plans.iter().enumerate() {
            line!(
                "{}. node {} — machine {} (id {})",
                i + 1,
                p.node,
                p.machine,
                p.machine_id
            );
            match &p.start {
                Start::Fresh => {}
                Start::Again => line!(
                    "   resuming: started before with this machine; rotated again from `before`"
                ),
                Start::Replaced { was } => line!(
                    "   resuming: its machine was replaced already ({was} → {}); not replaced again",
                    p.machine_id
                ),
            }
            line!("   before:");
            let before = self.before_steps(p);
            if before.is_empty() {
                line!("     (nothing)");
            }
            for s in before {
                line!("     » {s}");
            }
            let destroys: Vec<&str> = p
                .planned
                .plan
                .resource_changes
                .iter()
                .filter(|c| c.actions.iter().any(|a| a == "delete"))
                .map(|c| c.address.0.as_str())
                .collect();
            if destroys.is_empty() {
                line!("   replace:");
            } else {
                line!("   replace (DESTROYS {}):", destroys.join(", "));
            }
            for line in render_plan(&p.planned.plan, color).lines() {
                line!("     {line}");
            }
            line!("   after:");
            for s in self.rotation.after_steps(&p.node) {
                line!("     » {s}");
            }
            out.push('\n');
        }
        out
    }

    fn before_steps(&self, p: &NodePlan) -> Vec<String> {
        match p.start {
            Start::Replaced { .. } => Vec::new(),
            _ => self.rotation.before_steps(&p.node),
        }
    }

    /// The approval gate: `--approve`, or the stack's name typed on a terminal.
    fn approve(&self) -> anyhow::Result<()> {
        let name = self.loaded.stack.name();
        if self.args.approve {
            return Ok(());
        }
        if !self.args.terminal {
            bail!(
                "refusing to rotate stack {name} without approval: stdin is not a terminal; pass --approve"
            );
        }
        eprint!(
            "\nThis replaces the machines above, one node at a time. Type the stack name to approve: "
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != name {
            bail!("rotation of stack {name} not approved; nothing was changed");
        }
        Ok(())
    }

    /// One node, start to end. Any failure is journalled and stops the rotation.
    async fn rotate_node(&self, p: &NodePlan) -> anyhow::Result<()> {
        let node = p.node.as_str();
        let t0 = Instant::now();
        let replace = match &p.start {
            Start::Replaced { was } => {
                self.progress(
                    node,
                    "replace",
                    "skipped",
                    Some(&format!("machine {was} was already replaced")),
                );
                Vec::new()
            }
            start => {
                if *start == Start::Fresh {
                    self.progress(node, "preflight", "started", None);
                    if let Err(why) = self.rotation.preflight(node).await {
                        let why = format!("preflight refused: {why}");
                        return self.fail(node, why, t0).await;
                    }
                    if let Err(why) = self.no_other_changes().await {
                        return self.fail(node, why, t0).await;
                    }
                }
                // The machine as planned a moment ago, under this lock: the one `before`
                // takes out and the apply replaces.
                let detail = journal::machine_detail(&p.machine_id);
                self.record(&[journal::phase_record(
                    node,
                    Phase::Started,
                    Some(detail.clone()),
                    Duration::ZERO,
                )])
                .await?;
                self.progress(node, "started", "done", Some(&detail));
                self.progress(node, "before", "started", None);
                if let Err(why) = self.rotation.before(node).await {
                    return self.fail(node, format!("before failed: {why}"), t0).await;
                }
                vec![p.machine.clone()]
            }
        };
        self.progress(node, "apply", "started", None);
        let planned = match self.plan(&replace).await {
            Ok(planned) => planned,
            Err(e) => return self.fail(node, format!("planning failed: {e:#}"), t0).await,
        };
        if let Err(why) = self.apply(&planned).await {
            return self.fail(node, why, t0).await;
        }
        let replaced = match &p.start {
            Start::Replaced { was } => was,
            _ => &p.machine_id,
        };
        self.record(&[journal::phase_record(
            node,
            Phase::Replaced,
            Some(journal::machine_detail(replaced)),
            t0.elapsed(),
        )])
        .await?;
        self.progress(node, "after", "started", None);
        if let Err(why) = self.rotation.after(node).await {
            return self.fail(node, format!("after failed: {why}"), t0).await;
        }
        self.record(&[journal::phase_record(node, Phase::Done, None, t0.elapsed())])
            .await?;
        self.progress(node, "done", "done", None);
        Ok(())
    }

    /// Refuses to start a node while the stack's plan has changes of its own (code not yet
    /// applied, drift): the apply that replaces the machine would carry them out too — a
    /// pending version change would upgrade other nodes while this one is out.
    async fn no_other_changes(&self) -> Result<(), String> {
        let planned = self
            .plan(&[])
            .await
            .map_err(|e| format!("planning failed: {e:#}"))?;
        let pending: Vec<String> = planned
            .plan
            .resource_changes
            .iter()
            .filter(|c| c.action.is_some_and(|a| a.is_change()))
            .map(|c| c.address.to_string())
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        const SHOWN: usize = 8;
        let more = pending.len().saturating_sub(SHOWN);
        Err(format!(
            "stack {} has {} change(s) that are not part of the rotation ({}{}): apply them first (`apply`), so the rotation replaces only its nodes and nothing else runs alongside it",
            self.loaded.stack.name(),
            pending.len(),
            pending[..pending.len().min(SHOWN)].join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ))
    }

    /// Applies one node's plan, recording its resource changes in the run; the error says
    /// what failed.
    async fn apply(&self, planned: &Planned) -> Result<(), String> {
        self.lease
            .set_plan_digest(&plan_digest(planned))
            .await
            .map_err(|e| e.to_string())?;
        let color = use_color(std::io::stdout().is_terminal());
        if !self.args.json {
            print!("{}", render_plan(&planned.plan, color));
        }
        let lines = Arc::new(Lines::new(use_color(std::io::stderr().is_terminal())));
        let (recorder, writer) =
            Recorder::start(self.backend.clone(), self.run.to_string(), planned, lines);
        let report = apply(
            &self.loaded.stack,
            &self.loaded.providers,
            planned,
            ApplyOptions::default(),
            recorder.clone(),
        )
        .await;
        recorder.close();
        if !self.args.json {
            print!("{}", render_report(&report, color));
        }
        if let Err(e) = writer.finish().await {
            eprintln!("warning: history incomplete: {e}");
        }
        if report.success() {
            return Ok(());
        }
        let (done, failed, skipped) = report.counts();
        let first = report.entries.iter().find_map(|e| match &e.outcome {
            cairn_core::Outcome::Failed(why) => Some(format!("; {}: {why}", e.address)),
            _ => None,
        });
        let why = format!(
            "apply failed ({done} done, {failed} failed, {skipped} skipped{})",
            first.unwrap_or_default()
        );
        Err(Redactor::for_plan(planned).redact(&why))
    }

    /// Journals `node`'s failure and stops the rotation with an error naming it.
    async fn fail(&self, node: &str, why: String, t0: Instant) -> anyhow::Result<()> {
        self.progress(node, "failed", "failed", Some(&why));
        self.record(&[journal::phase_record(
            node,
            Phase::Failed,
            Some(why.clone()),
            t0.elapsed(),
        )])
        .await?;
        bail!("rotation of node {node} stopped: {why}; no further node was touched")
    }

    async fn record(&self, records: &[ChangeRecord]) -> anyhow::Result<()> {
        self.backend.record_changes(self.run, records).await?;
        Ok(())
    }

    /// A progress event: a JSON line on stdout under `--json`, a line on stderr otherwise.
    fn progress(&self, node: &str, phase: &str, state: &str, detail: Option<&str>) {
        if self.args.json {
            println!(
                "{}",
                json!({
                    "rotate": {
                        "stack": self.loaded.stack.name(),
                        "node": node,
                        "phase": phase,
                        "status": state,
                        "detail": detail,
                    }
                })
            );
        } else {
            match detail {
                Some(d) => eprintln!("rotate {node}: {phase} {state}: {d}"),
                None => eprintln!("rotate {node}: {phase} {state}"),
            }
        }
    }

    /// A line for people (stderr), also under `--json`.
    fn note(&self, text: &str) {
        eprintln!("cairn: {text}");
    }
}

/// The id of `machine` as observed in `planned` (what the provider calls `id`), or
/// [`NO_MACHINE`] when it does not exist.
fn observed_id(planned: &Planned, machine: &Address) -> String {
    planned
        .plan
        .resource_changes
        .iter()
        .position(|c| &c.address == machine)
        .and_then(|i| planned.work[i].observed.as_ref())
        .and_then(|o| o.value.get("id"))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        })
        .unwrap_or_else(|| NO_MACHINE.to_string())
}

#[cfg(all(test, feature = "testing"))]
#[path = "rotate_tests.rs"]
mod tests;
