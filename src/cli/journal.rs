//! The rotation journal: how `rotate` writes each node's phases into the backend's run
//! history, and reads them back to resume an unfinished rotation or to find the nodes
//! that are due. No new storage: a rotation is a run with command `rotate`, and its
//! phases are ordinary change records (`rotation.<node>`, action `started`, `replaced`,
//! `done` or `failed`, the machine's id in the detail), so every backend keeps them and
//! `history RUN` shows them. `rotate --abandon` records `rotation`/`abandoned` for a
//! rotation, which then is no longer resumed.

use std::collections::HashMap;
use std::time::Duration;

use cairn_core::backend::{Backend, BackendError, ChangeRecord};

/// The run kind (`Holder::operation`) of a rotation.
pub(crate) const OPERATION: &str = "rotate";
/// The address of the record that names a run's rotation and its nodes.
const ROTATION: &str = "rotation";
/// The machine id recorded when the machine's resource was not found.
pub(crate) const NO_MACHINE: &str = "(none)";
/// How many of a stack's newest runs are searched for rotations.
const SCAN: usize = 500;

/// A node's phase in a rotation, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Preflight passed and the node is being taken out; the machine's id is recorded.
    Started,
    /// The apply that replaced the machine succeeded.
    Replaced,
    /// The node is back (after steps passed).
    Done,
    /// A phase failed; the rotation stopped there.
    Failed,
}

impl Phase {
    /// The record's action.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Started => "started",
            Phase::Replaced => "replaced",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "started" => Phase::Started,
            "replaced" => Phase::Replaced,
            "done" => Phase::Done,
            "failed" => Phase::Failed,
            _ => return None,
        })
    }
}

/// The record of `node` reaching `phase`; `detail` is the machine's id (`machine ID`) or
/// why it failed (already redacted).
pub(crate) fn phase_record(
    node: &str,
    phase: Phase,
    detail: Option<String>,
    took: Duration,
) -> ChangeRecord {
    ChangeRecord {
        address: format!("{ROTATION}.{node}"),
        action: phase.as_str().into(),
        outcome: if phase == Phase::Failed {
            "failed"
        } else {
            "done"
        }
        .into(),
        duration_ms: took.as_millis() as i64,
        error: detail,
    }
}

/// The detail of a `started` record.
pub(crate) fn machine_detail(id: &str) -> String {
    format!("machine {id}")
}

/// The record naming the rotation a run belongs to (`id`: the run that began it) and the
/// nodes it rotates.
pub(crate) fn rotation_record(id: &str, nodes: &[String]) -> ChangeRecord {
    ChangeRecord {
        address: ROTATION.into(),
        action: OPERATION.into(),
        outcome: "done".into(),
        duration_ms: 0,
        error: Some(format!("rotation {id}: {}", nodes.join(" "))),
    }
}

/// The action of the record that gives a rotation up (`rotate --abandon`).
const ABANDONED: &str = "abandoned";

/// The record that gives up the rotation begun by run `id`, naming the nodes it left.
pub(crate) fn abandoned_record(id: &str, left: &[&str]) -> ChangeRecord {
    ChangeRecord {
        address: ROTATION.into(),
        action: ABANDONED.into(),
        outcome: "done".into(),
        duration_ms: 0,
        error: Some(format!("rotation {id}: {}", left.join(" "))),
    }
}

fn parse_abandoned(c: &ChangeRecord) -> Option<&str> {
    if c.address != ROTATION || c.action != ABANDONED {
        return None;
    }
    let rest = c.error.as_deref()?.strip_prefix("rotation ")?;
    Some(rest.split_once(": ").map_or(rest, |(id, _)| id))
}

fn parse_rotation(c: &ChangeRecord) -> Option<(String, Vec<String>)> {
    if c.address != ROTATION || c.action != OPERATION {
        return None;
    }
    let rest = c.error.as_deref()?.strip_prefix("rotation ")?;
    let (id, nodes) = rest.split_once(": ")?;
    Some((
        id.to_string(),
        nodes.split_whitespace().map(String::from).collect(),
    ))
}

fn parse_phase(c: &ChangeRecord) -> Option<(&str, Phase)> {
    let node = c.address.strip_prefix(ROTATION)?.strip_prefix('.')?;
    Some((node, Phase::parse(&c.action)?))
}

/// Where a node of an unfinished rotation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeState {
    /// Its last recorded phase.
    pub phase: Phase,
    /// The machine id recorded when it started, if it did.
    pub machine: Option<String>,
}

/// A rotation whose nodes are not all done.
#[derive(Debug, Clone)]
pub(crate) struct Unfinished {
    /// The run that began it.
    pub id: String,
    /// Its nodes, in the order they were listed.
    pub nodes: Vec<String>,
    /// The nodes that reached a phase.
    pub states: HashMap<String, NodeState>,
}

impl Unfinished {
    /// Whether `node` was rotated in this rotation.
    pub fn done(&self, node: &str) -> bool {
        self.states
            .get(node)
            .is_some_and(|s| s.phase == Phase::Done)
    }
}

/// What the history says about a stack's rotations.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    /// The newest rotation, when some of its nodes are not done.
    pub unfinished: Option<Unfinished>,
    /// When each node was last rotated (the start of the run that finished it, Unix ms).
    pub last_done: HashMap<String, i64>,
}

/// Reads the stack's rotation runs newest first (ignoring `own_run`, the run just opened):
/// the newest rotation folded over every run that worked on it, and — for `nodes` — when
/// each was last rotated (reading on until each of them is found or the runs end).
pub(crate) async fn load(
    backend: &dyn Backend,
    stack: &str,
    own_run: &str,
    nodes: &[String],
) -> Result<Journal, BackendError> {
    let runs = backend.runs(Some(stack), SCAN).await?;
    let mut journal = Journal::default();
    let mut target: Option<String> = None;
    let mut chain: Vec<Vec<ChangeRecord>> = Vec::new();
    let mut chain_complete = false;
    let mut abandoned: Vec<String> = Vec::new();
    for r in runs
        .iter()
        .filter(|r| r.holder.operation == OPERATION && r.id != own_run)
    {
        if chain_complete && nodes.iter().all(|n| journal.last_done.contains_key(n)) {
            break;
        }
        let (_, changes) = backend.run(&r.id).await?;
        for c in &changes {
            if let Some((node, Phase::Done)) = parse_phase(c) {
                journal
                    .last_done
                    .entry(node.to_string())
                    .or_insert(r.holder.started_at_ms);
            }
        }
        if chain_complete {
            continue;
        }
        abandoned.extend(changes.iter().filter_map(parse_abandoned).map(String::from));
        let Some((id, _)) = changes.iter().find_map(parse_rotation) else {
            // A rotate run that stopped before rotating anything (not approved).
            continue;
        };
        match &target {
            Some(t) if *t != id => chain_complete = true,
            _ => {
                chain_complete = id == r.id;
                target = Some(id);
                chain.push(changes);
            }
        }
    }
    let Some(id) = target else {
        return Ok(journal);
    };
    if abandoned.contains(&id) {
        // Given up with `rotate --abandon`: nothing to resume.
        return Ok(journal);
    }
    let mut nodes_of: Vec<String> = Vec::new();
    let mut states: HashMap<String, NodeState> = HashMap::new();
    for changes in chain.iter().rev() {
        for c in changes {
            if let Some((_, listed)) = parse_rotation(c) {
                for n in listed {
                    if !nodes_of.contains(&n) {
                        nodes_of.push(n);
                    }
                }
            } else if let Some((node, phase)) = parse_phase(c) {
                let s = states.entry(node.to_string()).or_insert(NodeState {
                    phase,
                    machine: None,
                });
                s.phase = phase;
                if phase == Phase::Started {
                    s.machine = c
                        .error
                        .as_deref()
                        .and_then(|d| d.strip_prefix("machine "))
                        .map(String::from);
                }
            }
        }
    }
    let unfinished = Unfinished {
        id,
        nodes: nodes_of,
        states,
    };
    if unfinished.nodes.iter().any(|n| !unfinished.done(n)) {
        journal.unfinished = Some(unfinished);
    }
    Ok(journal)
}
