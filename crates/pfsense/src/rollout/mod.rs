//! Zero-drop pool server changes as data: [`server_steps`] turns a pool's servers before and
//! after into the typed list of [`PoolStep`]s that the plan shows (through `Display`) and
//! that [`run`] executes one by one, so what is shown and what is done cannot drift apart.
//! The same steps serve a backend's inline servers and pool members.
//!
//! Make before break: a server that moves (address, port, TLS) is drained and deleted first
//! (HAProxy restores address and port from its state file on reload); new servers are added
//! `disabled` and enabled only after their health check passed; leaving servers are drained
//! until they hold no session before they are deleted or disabled.

pub mod run;
pub mod runtime;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use cairn_core::Field;
use serde::{Deserialize, Serialize};

use crate::kinds::values::{LiveStatus, ServerStatus};

/// One server of a pool as a change wants it (inline server or pool member).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolServer {
    /// Unique within the pool.
    pub name: String,
    /// Its address (known at apply time).
    pub address: Field<Ipv4Addr>,
    /// Its port.
    pub port: u16,
    /// Load-balancing weight.
    pub weight: u32,
    /// TLS towards the server.
    pub ssl: bool,
    /// The status it ends with.
    pub status: ServerStatus,
}

impl PoolServer {
    /// `address:port` (plus ` ssl`), `?` for an address not known yet.
    pub fn endpoint(&self) -> String {
        let address = self
            .address
            .known()
            .map_or_else(|| "?".to_string(), ToString::to_string);
        endpoint(&address, Some(self.port), self.ssl)
    }
}

/// One server of a pool as observed (configured status, or the runtime's drain/maint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerObserved {
    /// Unique within the pool.
    pub name: String,
    /// Its address as the API reports it.
    pub address: String,
    /// Its port.
    pub port: Option<u16>,
    /// Load-balancing weight.
    pub weight: Option<u32>,
    /// TLS towards the server.
    pub ssl: bool,
    /// Its status.
    pub status: LiveStatus,
}

impl ServerObserved {
    /// `address:port` (plus ` ssl`).
    pub fn endpoint(&self) -> String {
        endpoint(&self.address, self.port, self.ssl)
    }
}

fn endpoint(address: &str, port: Option<u16>, ssl: bool) -> String {
    let port = port.map_or_else(|| "null".to_string(), |p| p.to_string());
    format!("{address}:{port}{}", if ssl { " ssl" } else { "" })
}

/// One staged step of a pool change. `Display` is the text the plan shows.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolStep {
    /// Create the pool without servers and apply (servers follow as their own steps, or as
    /// pool members when `members`).
    CreatePool {
        /// The pool's name.
        pool: String,
        /// Whether its servers are managed as pool members.
        members: bool,
    },
    /// A server at a new endpoint: runtime drain (if it serves), wait for no sessions,
    /// delete, apply; it is then added again like a new server.
    Move {
        /// The server.
        server: String,
        /// Its old endpoint.
        from: String,
        /// Whether it took traffic (only then is it drained).
        serving: bool,
    },
    /// Add the server `disabled`: in the config, no traffic, until its gate passed.
    AddDisabled {
        /// The server as wanted.
        server: PoolServer,
        /// Its new endpoint, when it moved.
        at: Option<String>,
        /// The pool, named when a member is added (looked up by name).
        to_pool: Option<String>,
    },
    /// Add the server with its status right away (the pool has no health check, or the
    /// server does not take traffic).
    Add {
        /// The server as wanted.
        server: PoolServer,
        /// Its new endpoint, when it moved.
        at: Option<String>,
        /// The pool, named when a member is added (looked up by name).
        to_pool: Option<String>,
    },
    /// An existing server that will take traffic only after its gate: it stays out of
    /// traffic (an `inactive` one becomes `disabled`, so HAProxy knows it); other edits
    /// (weight) are written now.
    KeepDisabled {
        /// The server as wanted.
        server: PoolServer,
        /// Its status now.
        now: LiveStatus,
        /// The other fields that change, e.g. `weight 1 → 5`.
        edits: Vec<String>,
    },
    /// Write a staying server's changed fields in place.
    Edit {
        /// The server as wanted.
        server: PoolServer,
        /// What changes, e.g. `weight 1 → 5`.
        changes: Vec<String>,
    },
    /// Apply the HAProxy configuration (a seamless reload).
    Apply,
    /// Runtime `drain` (checks run, no traffic), then wait until `show servers state` says
    /// UP with a passed check. A server that never passes is put in `maint` and the change
    /// fails naming it, before any server is removed.
    AwaitHealthy {
        /// The server.
        server: String,
    },
    /// Runtime `ready`, then its status in the config and apply (the runtime state is set
    /// first: the state file saved before the reload carries it into the new process).
    Activate {
        /// The server as wanted.
        server: PoolServer,
    },
    /// Runtime `drain`: no new connections.
    Drain {
        /// The server.
        server: String,
    },
    /// Wait until the server holds no session (bounded by the drain timeout).
    AwaitDrained {
        /// The server.
        server: String,
    },
    /// Delete the server from the config.
    Remove {
        /// The server.
        server: String,
    },
    /// Write a drained server's new status (`disabled`, `inactive`) and fields.
    SetStatus {
        /// The server as wanted.
        server: PoolServer,
    },
}

impl PoolStep {
    /// Whether the step changes the configuration (so an apply must follow).
    fn writes(&self) -> bool {
        match self {
            PoolStep::AddDisabled { .. } | PoolStep::Add { .. } | PoolStep::Edit { .. } => true,
            PoolStep::KeepDisabled { now, edits, .. } => {
                *now == LiveStatus::Inactive || !edits.is_empty()
            }
            _ => false,
        }
    }
}

impl fmt::Display for PoolStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |at: &Option<String>| at.as_ref().map(|e| format!(" at {e}")).unwrap_or_default();
        let to = |p: &Option<String>| {
            p.as_ref()
                .map(|p| format!(" to pool {p} (looked up by name)"))
                .unwrap_or_default()
        };
        match self {
            PoolStep::CreatePool {
                pool,
                members: true,
            } => write!(
                f,
                "create pool {pool} without servers (they are pool members), apply HAProxy"
            ),
            PoolStep::CreatePool { pool, .. } => {
                write!(f, "create pool {pool} without servers, apply HAProxy")
            }
            PoolStep::Move { server, from, .. } => write!(
                f,
                "move {server} from {from}: drain, wait for no sessions, delete, apply HAProxy"
            ),
            PoolStep::AddDisabled {
                server,
                at: a,
                to_pool,
            } => write!(f, "add {}{} disabled{}", server.name, at(a), to(to_pool)),
            PoolStep::Add {
                server,
                at: a,
                to_pool,
            } => write!(
                f,
                "add {}{} as {}{}",
                server.name,
                at(a),
                server.status,
                to(to_pool)
            ),
            PoolStep::KeepDisabled { server, now, edits } => {
                match now {
                    LiveStatus::Disabled => write!(f, "keep {} disabled", server.name)?,
                    LiveStatus::Inactive => write!(f, "set {} disabled", server.name)?,
                    other => write!(f, "keep {} out of traffic ({other})", server.name)?,
                }
                if !edits.is_empty() {
                    write!(f, ", update {}", edits.join(", "))?;
                }
                Ok(())
            }
            PoolStep::Edit { server, changes } => {
                write!(f, "update {}: {}", server.name, changes.join(", "))
            }
            PoolStep::Apply => f.write_str("apply HAProxy"),
            PoolStep::AwaitHealthy { server } => write!(
                f,
                "gate: {server} health check passes (HAProxy runtime API, show servers state)"
            ),
            PoolStep::Activate { server } => write!(
                f,
                "set {} {}, apply HAProxy, runtime state ready",
                server.name, server.status
            ),
            PoolStep::Drain { server } => write!(f, "drain {server} (HAProxy runtime API)"),
            PoolStep::AwaitDrained { server } => write!(f, "gate: {server} holds no sessions"),
            PoolStep::Remove { server } => write!(f, "delete {server}"),
            PoolStep::SetStatus { server } => write!(f, "set {} {}", server.name, server.status),
        }
    }
}

/// The changed in-place fields of a staying server: weight, and status unless `gated`.
fn edits(have: &ServerObserved, want: &PoolServer, gated: bool) -> Vec<String> {
    let mut out = Vec::new();
    if have.weight != Some(want.weight) {
        let was = have.weight.map_or_else(|| "?".into(), |w| w.to_string());
        out.push(format!("weight {was} → {}", want.weight));
    }
    if !gated && have.status != LiveStatus::from(want.status) {
        out.push(format!("status {} → {}", have.status, want.status));
    }
    out
}

/// The staged steps that bring a pool's servers from `before` to `after` without dropping
/// traffic. `checks`: whether the pool health-checks its servers (only then are entering
/// servers gated). `to_pool`: the pool's name, shown on the first add (pool members).
pub fn server_steps(
    before: &[ServerObserved],
    after: &[PoolServer],
    checks: bool,
    to_pool: Option<&str>,
) -> Vec<PoolStep> {
    let mut b: BTreeMap<&str, &ServerObserved> =
        before.iter().map(|s| (s.name.as_str(), s)).collect();
    let a: BTreeMap<&str, &PoolServer> = after.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut steps = Vec::new();

    // 0. Moves first: the old endpoint goes, the server comes back as a new one.
    let moved: Vec<&str> = b
        .iter()
        .filter(|(n, have)| {
            a.get(*n)
                .is_some_and(|want| want.endpoint() != have.endpoint())
        })
        .map(|(n, _)| *n)
        .collect();
    for name in &moved {
        let have = b[name];
        steps.push(PoolStep::Move {
            server: name.to_string(),
            from: have.endpoint(),
            serving: have.status.serving(),
        });
        b.remove(name);
    }

    // 1. Adds and in-place edits; entering servers of a checked pool are staged disabled.
    let leaving: Vec<&str> = b
        .iter()
        .filter(|(n, have)| {
            have.status.serving() && a.get(*n).is_none_or(|want| !want.status.serving())
        })
        .map(|(n, _)| *n)
        .collect();
    let mut to_pool = to_pool.map(str::to_string);
    let mut gated = Vec::new();
    let mut first = Vec::new();
    for (name, want) in &a {
        if leaving.contains(name) {
            continue; // changed after it is drained
        }
        let entering =
            want.status.serving() && b.get(name).is_none_or(|have| !have.status.serving());
        let gate = checks && entering;
        let at = moved.contains(name).then(|| want.endpoint());
        let server = (*want).clone();
        match b.get(name) {
            None if gate => first.push(PoolStep::AddDisabled {
                server,
                at,
                to_pool: to_pool.take(),
            }),
            None => first.push(PoolStep::Add {
                server,
                at,
                to_pool: to_pool.take(),
            }),
            Some(have) if gate => first.push(PoolStep::KeepDisabled {
                server,
                now: have.status,
                edits: edits(have, want, true),
            }),
            Some(have) => {
                let changes = edits(have, want, false);
                if !changes.is_empty() {
                    first.push(PoolStep::Edit { server, changes });
                }
            }
        }
        if gate {
            gated.push((*want).clone());
        }
    }
    let apply = first.iter().any(PoolStep::writes);
    steps.extend(first);
    if apply {
        steps.push(PoolStep::Apply);
    }

    // 2. Gates: each entering server proves healthy, then takes traffic.
    for server in gated {
        steps.push(PoolStep::AwaitHealthy {
            server: server.name.clone(),
        });
        steps.push(PoolStep::Activate { server });
    }

    // 3. Leaving servers drain, then go (or stay with their new status); one apply.
    for name in &leaving {
        steps.push(PoolStep::Drain {
            server: name.to_string(),
        });
        steps.push(PoolStep::AwaitDrained {
            server: name.to_string(),
        });
    }
    let removed: Vec<&str> = b.keys().filter(|n| !a.contains_key(*n)).copied().collect();
    for name in &removed {
        steps.push(PoolStep::Remove {
            server: name.to_string(),
        });
    }
    for name in leaving.iter().filter(|n| a.contains_key(**n)) {
        steps.push(PoolStep::SetStatus {
            server: a[name].clone(),
        });
    }
    if !removed.is_empty() || !leaving.is_empty() {
        steps.push(PoolStep::Apply);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(name: &str, port: u16, status: ServerStatus) -> PoolServer {
        PoolServer {
            name: name.into(),
            address: Field::Known(Ipv4Addr::new(10, 0, 0, 1)),
            port,
            weight: 1,
            ssl: false,
            status,
        }
    }

    fn have(name: &str, port: u16, status: LiveStatus) -> ServerObserved {
        ServerObserved {
            name: name.into(),
            address: "10.0.0.1".into(),
            port: Some(port),
            weight: Some(1),
            ssl: false,
            status,
        }
    }

    fn texts(steps: &[PoolStep]) -> Vec<String> {
        steps.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_gated_add_comes_before_the_drained_removal() {
        let before = [
            have("old", 1, LiveStatus::Active),
            have("keep", 1, LiveStatus::Active),
        ];
        let after = [
            want("keep", 1, ServerStatus::Active),
            want("new", 1, ServerStatus::Active),
        ];
        assert_eq!(
            texts(&server_steps(&before, &after, true, None)),
            [
                "add new disabled",
                "apply HAProxy",
                "gate: new health check passes (HAProxy runtime API, show servers state)",
                "set new active, apply HAProxy, runtime state ready",
                "drain old (HAProxy runtime API)",
                "gate: old holds no sessions",
                "delete old",
                "apply HAProxy",
            ]
        );
    }

    #[test]
    fn without_checks_a_new_server_is_added_as_it_is() {
        let after = [want("n", 1, ServerStatus::Active)];
        assert_eq!(
            texts(&server_steps(&[], &after, false, Some("p"))),
            [
                "add n as active to pool p (looked up by name)",
                "apply HAProxy"
            ]
        );
    }

    #[test]
    fn a_moved_server_is_removed_first_and_added_again_through_the_gate() {
        let before = [have("m", 1, LiveStatus::Active)];
        let after = [want("m", 2, ServerStatus::Active)];
        assert_eq!(
            texts(&server_steps(&before, &after, true, None)),
            [
                "move m from 10.0.0.1:1: drain, wait for no sessions, delete, apply HAProxy",
                "add m at 10.0.0.1:2 disabled",
                "apply HAProxy",
                "gate: m health check passes (HAProxy runtime API, show servers state)",
                "set m active, apply HAProxy, runtime state ready",
            ]
        );
    }

    #[test]
    fn a_disabled_server_is_deleted_without_a_drain() {
        let before = [have("m", 1, LiveStatus::Disabled)];
        assert_eq!(
            texts(&server_steps(&before, &[], true, None)),
            ["delete m", "apply HAProxy"]
        );
    }

    #[test]
    fn a_weight_change_is_one_edit_and_a_drained_server_is_gated_back_in() {
        let before = [
            have("a", 1, LiveStatus::Active),
            have("b", 1, LiveStatus::Drain),
        ];
        let mut heavier = want("a", 1, ServerStatus::Active);
        heavier.weight = 5;
        let after = [heavier, want("b", 1, ServerStatus::Active)];
        assert_eq!(
            texts(&server_steps(&before, &after, true, None)),
            [
                "update a: weight 1 → 5",
                "keep b out of traffic (drain)",
                "apply HAProxy",
                "gate: b health check passes (HAProxy runtime API, show servers state)",
                "set b active, apply HAProxy, runtime state ready",
            ]
        );
    }
}
