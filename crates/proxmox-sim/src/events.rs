//! VM lifecycle events for glue code that brings simulated machines up and down with their
//! VMs (e.g. a host simulator starting an sshd when a cloned VM has booted), without this
//! simulator knowing anything about it.
//!
//! A subscriber gets [`VmEvent::Booted`] once a VM has been running for the subscriber's boot
//! delay (cloud-init done), with what cloud-init would have applied: the `ipconfig0`
//! address, `ciuser` and the decoded `sshkeys`. It gets [`VmEvent::Stopped`] when a booted VM
//! stops and [`VmEvent::Destroyed`] when a VM it was told about is deleted. A VM stopped
//! before its boot delay passed never booted, so nothing is sent for it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Weak;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::Shared;

/// What happened to a VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEvent {
    /// The VM runs and cloud-init has finished.
    Booted(BootedVm),
    /// A booted VM stopped.
    Stopped {
        /// The VM.
        vmid: u32,
        /// Its name.
        name: String,
    },
    /// A VM that had booted was destroyed.
    Destroyed {
        /// The VM.
        vmid: u32,
        /// Its name.
        name: String,
    },
}

/// A VM that has booted, with its cloud-init settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootedVm {
    /// The VM ID.
    pub vmid: u32,
    /// Its name (the guest's host name).
    pub name: String,
    /// The address from `ipconfig0` (`ip=10.0.20.110/24,...`), if static.
    pub ip: Option<Ipv4Addr>,
    /// `ciuser`, if set.
    pub ciuser: Option<String>,
    /// `sshkeys`, decoded: OpenSSH `authorized_keys` lines.
    pub sshkeys: String,
}

pub(crate) struct Subscriber {
    tx: mpsc::UnboundedSender<VmEvent>,
    boot_delay: Duration,
    running_since: BTreeMap<u32, Instant>,
    booted: BTreeMap<u32, (String, bool)>,
}

/// The subscribers of one simulator.
#[derive(Default)]
pub(crate) struct Subscribers(std::sync::Mutex<Vec<Subscriber>>);

impl Subscribers {
    pub(crate) fn add(&self, boot_delay: Duration) -> mpsc::UnboundedReceiver<VmEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.0.lock().expect("subscribers").push(Subscriber {
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
    ip: Option<Ipv4Addr>,
    ciuser: Option<String>,
    sshkeys: String,
}

/// Watches the world for the subscribers until the simulator is dropped.
pub(crate) fn spawn_watcher(shared: Weak<Shared>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let mut subs = shared.vm_events.0.lock().expect("subscribers");
            subs.retain(|s| !s.tx.is_closed());
            if subs.is_empty() {
                continue;
            }
            let vms: BTreeMap<u32, Snapshot> = {
                let w = shared.world.lock().expect("world");
                w.vms
                    .iter()
                    .map(|(id, v)| {
                        let ip = v.config.get("ipconfig0").and_then(|s| {
                            let p = crate::propstr::parse(s, None);
                            crate::propstr::get(&p, "ip")?
                                .split('/')
                                .next()?
                                .parse()
                                .ok()
                        });
                        let snap = Snapshot {
                            name: v.config.get("name").cloned().unwrap_or_default(),
                            running: v.running,
                            ip,
                            ciuser: v.config.get("ciuser").cloned(),
                            sshkeys: v
                                .config
                                .get("sshkeys")
                                .and_then(|k| crate::propstr::decode_sshkeys(k))
                                .unwrap_or_default(),
                        };
                        (*id, snap)
                    })
                    .collect()
            };
            let now = Instant::now();
            for s in subs.iter_mut() {
                for (id, v) in &vms {
                    if v.running {
                        let since = *s.running_since.entry(*id).or_insert(now);
                        let announced = s.booted.get(id).is_some_and(|(_, up)| *up);
                        if !announced && now.duration_since(since) >= s.boot_delay {
                            s.booted.insert(*id, (v.name.clone(), true));
                            let _ = s.tx.send(VmEvent::Booted(BootedVm {
                                vmid: *id,
                                name: v.name.clone(),
                                ip: v.ip,
                                ciuser: v.ciuser.clone(),
                                sshkeys: v.sshkeys.clone(),
                            }));
                        }
                    } else {
                        s.running_since.remove(id);
                        if let Some((name, up)) = s.booted.get_mut(id)
                            && *up
                        {
                            *up = false;
                            let _ = s.tx.send(VmEvent::Stopped {
                                vmid: *id,
                                name: name.clone(),
                            });
                        }
                    }
                }
                let gone: BTreeSet<u32> = s
                    .booted
                    .keys()
                    .filter(|id| !vms.contains_key(id))
                    .copied()
                    .collect();
                for id in gone {
                    s.running_since.remove(&id);
                    if let Some((name, up)) = s.booted.remove(&id) {
                        if up {
                            let _ = s.tx.send(VmEvent::Stopped {
                                vmid: id,
                                name: name.clone(),
                            });
                        }
                        let _ = s.tx.send(VmEvent::Destroyed { vmid: id, name });
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProxmoxSim, SimConfig};

    async fn next(rx: &mut mpsc::UnboundedReceiver<VmEvent>) -> VmEvent {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("an event within 10 s")
            .expect("channel open")
    }

    #[tokio::test]
    async fn a_vm_boots_stops_and_is_destroyed_with_its_cloud_init_settings() {
        let sim = ProxmoxSim::start(SimConfig::default()).await.unwrap();
        let mut rx = sim.vm_events(Duration::from_millis(50));
        // The homelab's running VMs boot for a new subscriber.
        let mut booted = Vec::new();
        for _ in 0..sim.world().vms.values().filter(|v| v.running).count() {
            match next(&mut rx).await {
                VmEvent::Booted(b) => booted.push(b.name),
                other => panic!("{other:?}"),
            }
        }
        assert!(booted.contains(&"k8s-master".to_string()), "{booted:?}");
        sim.with_world(|w| {
            let mut vm = w.vms[&200].clone();
            vm.running = false;
            vm.config.insert("name".into(), "k8s-master-2".into());
            vm.config
                .insert("ipconfig0".into(), "ip=10.0.20.110/24,gw=10.0.20.1".into());
            vm.config.insert("ciuser".into(), "debian".into());
            vm.config.insert(
                "sshkeys".into(),
                "ssh-ed25519%20AAAAC3Nza%20me%40lab%0A".into(),
            );
            w.vms.insert(250, vm);
        });
        sim.with_world(|w| w.vms.get_mut(&250).unwrap().running = true);
        assert_eq!(
            next(&mut rx).await,
            VmEvent::Booted(BootedVm {
                vmid: 250,
                name: "k8s-master-2".into(),
                ip: Some(Ipv4Addr::new(10, 0, 20, 110)),
                ciuser: Some("debian".into()),
                sshkeys: "ssh-ed25519 AAAAC3Nza me@lab\n".into(),
            })
        );
        sim.with_world(|w| w.vms.get_mut(&250).unwrap().running = false);
        assert_eq!(
            next(&mut rx).await,
            VmEvent::Stopped {
                vmid: 250,
                name: "k8s-master-2".into()
            }
        );
        sim.with_world(|w| w.vms.remove(&250));
        assert_eq!(
            next(&mut rx).await,
            VmEvent::Destroyed {
                vmid: 250,
                name: "k8s-master-2".into()
            }
        );
    }

    #[tokio::test]
    async fn a_vm_stopped_before_its_boot_delay_never_boots() {
        let sim = ProxmoxSim::start(SimConfig::default()).await.unwrap();
        sim.with_world(|w| w.vms.values_mut().for_each(|v| v.running = false));
        let mut rx = sim.vm_events(Duration::from_secs(3600));
        sim.with_world(|w| w.vms.get_mut(&200).unwrap().running = true);
        tokio::time::sleep(Duration::from_millis(200)).await;
        sim.with_world(|w| w.vms.get_mut(&200).unwrap().running = false);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(rx.try_recv().is_err());
    }
}
