//! Server lifecycle events for glue code that brings simulated machines up and down with
//! their servers (e.g. a host simulator starting an sshd when a new server has booted),
//! without this simulator knowing anything about it.
//!
//! A subscriber gets [`ServerEvent::Booted`] once a server has been running for the
//! subscriber's boot delay (cloud-init done), with what cloud-init would have applied: its
//! private IPs, the public keys of the SSH keys it was created with, and its `user_data`.
//! A server is running when its status is `running` and its create action has finished; its
//! first boot counts from when no action on it runs any more (cairn attaches a server's
//! private network with a fixed IP right after creating it). A rebuild boots it again (stopped, then booted after the delay). It gets
//! [`ServerEvent::Stopped`] when a booted server stops and [`ServerEvent::Deleted`] when a
//! server it was told about is deleted. A server stopped before its boot delay passed never
//! booted, so nothing is sent for it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Weak;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::HetznerState;
use crate::world::World;

/// What happened to a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The server runs and cloud-init has finished.
    Booted(BootedServer),
    /// A booted server stopped (powered off, or being rebuilt).
    Stopped {
        /// The server's id.
        id: u64,
        /// Its name.
        name: String,
    },
    /// A server that had been announced was deleted.
    Deleted {
        /// The server's id.
        id: u64,
        /// Its name.
        name: String,
    },
}

/// A server that has booted, with what cloud-init applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootedServer {
    /// The server's id.
    pub id: u64,
    /// Its name (the guest's host name).
    pub name: String,
    /// Its addresses in its private networks, in attachment order.
    pub private_ips: Vec<Ipv4Addr>,
    /// The public keys (OpenSSH lines) of the SSH keys it was created with.
    pub public_keys: Vec<String>,
    /// Its cloud-init `user_data`, if it was given one.
    pub user_data: Option<String>,
}

/// What a server was created with that the API never shows again (write-only): kept apart
/// from its API object, for its boot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CloudInit {
    /// The public keys of the SSH keys named at create, as they were then.
    pub public_keys: Vec<String>,
    /// The `user_data` given at create.
    pub user_data: Option<String>,
    /// Bumped by each rebuild: the server boots afresh.
    pub generation: u64,
}

struct Subscriber {
    tx: mpsc::UnboundedSender<ServerEvent>,
    boot_delay: Duration,
    /// Since when a server has run, per (id, generation).
    running_since: BTreeMap<u64, (u64, Instant)>,
    /// Announced servers: name, generation, whether up.
    booted: BTreeMap<u64, (String, u64, bool)>,
}

/// The subscribers of one simulator.
#[derive(Default)]
pub(crate) struct Subscribers(std::sync::Mutex<Vec<Subscriber>>);

impl Subscribers {
    pub(crate) fn add(&self, boot_delay: Duration) -> mpsc::UnboundedReceiver<ServerEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        crate::lock(&self.0).push(Subscriber {
            tx,
            boot_delay,
            running_since: BTreeMap::new(),
            booted: BTreeMap::new(),
        });
        rx
    }
}

struct Snapshot {
    name: String,
    running: bool,
    /// An action on it is running (e.g. the attachment of its private network, which cairn
    /// makes right after the create): its first boot counts from when they are done.
    busy: bool,
    generation: u64,
    private_ips: Vec<Ipv4Addr>,
    cloud_init: CloudInit,
}

fn snapshot(w: &World) -> BTreeMap<u64, Snapshot> {
    w.coll("servers")
        .iter()
        .map(|(id, s)| {
            let on_it = |cmd: Option<&str>| {
                w.actions.values().any(|a| {
                    a.running()
                        && cmd.is_none_or(|c| a.command == c)
                        && a.resources.iter().any(|(i, _)| i == id)
                })
            };
            let creating = on_it(Some("create_server"));
            let busy = on_it(None);
            let ci = w.cloud_init.get(id).cloned().unwrap_or_default();
            let snap = Snapshot {
                name: s["name"].as_str().unwrap_or_default().to_string(),
                running: s["status"] == "running" && !creating,
                busy,
                generation: ci.generation,
                private_ips: s["private_net"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["ip"].as_str()?.parse().ok())
                    .collect(),
                cloud_init: ci,
            };
            (*id, snap)
        })
        .collect()
}

/// Watches the project for the subscribers until the simulator is dropped.
pub(crate) fn spawn_watcher(state: Weak<HetznerState>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let Some(state) = state.upgrade() else {
                return;
            };
            let mut subs = crate::lock(&state.server_events.0);
            subs.retain(|s| !s.tx.is_closed());
            if subs.is_empty() {
                continue;
            }
            let servers = snapshot(&crate::lock(&state.world));
            let now = Instant::now();
            for s in subs.iter_mut() {
                notify(s, &servers, now);
            }
        }
    });
}

fn notify(s: &mut Subscriber, servers: &BTreeMap<u64, Snapshot>, now: Instant) {
    for (id, v) in servers {
        // A rebuilt server (new generation) went down and boots again.
        if let Some((name, generation, up)) = s.booted.get_mut(id)
            && *generation != v.generation
        {
            if *up {
                let _ = s.tx.send(ServerEvent::Stopped {
                    id: *id,
                    name: name.clone(),
                });
            }
            *up = false;
            *generation = v.generation;
            s.running_since.remove(id);
        }
        let announced = s.booted.get(id).is_some_and(|(_, _, up)| *up);
        let first_boot = !s.booted.contains_key(id);
        if v.running && first_boot && v.busy {
            // Still being set up: its boot has not started.
            s.running_since.remove(id);
        } else if v.running {
            let (_, since) = *s.running_since.entry(*id).or_insert((v.generation, now));
            if !announced && now.duration_since(since) >= s.boot_delay {
                s.booted.insert(*id, (v.name.clone(), v.generation, true));
                let _ = s.tx.send(ServerEvent::Booted(BootedServer {
                    id: *id,
                    name: v.name.clone(),
                    private_ips: v.private_ips.clone(),
                    public_keys: v.cloud_init.public_keys.clone(),
                    user_data: v.cloud_init.user_data.clone(),
                }));
            }
        } else {
            s.running_since.remove(id);
            if let Some((name, _, up)) = s.booted.get_mut(id)
                && *up
            {
                *up = false;
                let _ = s.tx.send(ServerEvent::Stopped {
                    id: *id,
                    name: name.clone(),
                });
            }
        }
    }
    let gone: BTreeSet<u64> = s
        .booted
        .keys()
        .chain(s.running_since.keys())
        .filter(|id| !servers.contains_key(id))
        .copied()
        .collect();
    for id in gone {
        s.running_since.remove(&id);
        if let Some((name, _, up)) = s.booted.remove(&id) {
            if up {
                let _ = s.tx.send(ServerEvent::Stopped {
                    id,
                    name: name.clone(),
                });
            }
            let _ = s.tx.send(ServerEvent::Deleted { id, name });
        }
    }
}
