//! The embedded simulators, seeded with the stacks' "before" worlds: what `diff` targets
//! without credentials, and what `stacks sim` serves until stopped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_core::net::{ADDR_MAP_ENV, AddrMap};

/// The address map of simulator mode: every 10.x data-plane address lives on 127.x.
pub const SIM_ADDR_MAP: &str = "10.0.0.0/8=127.0.0.0/8";

/// Environment variable naming the apiserver CA the readiness gates trust (the Proxmox
/// simulator's `env()` sets it).
pub const K8S_CA_FILE_ENV: &str = cairn_proxmox_sim::K8S_CA_FILE_ENV;

/// Simulator knobs read from the environment (for rehearsals and failure tests).
#[derive(Debug, Clone)]
pub struct SimKnobs {
    /// Time from a master VM's start until its `/readyz` answers 200
    /// (`CAIRN_SIM_APISERVER_BOOT_MS`, default 3000).
    pub boot_delay: Duration,
    /// VMIDs whose apiserver never becomes ready (`CAIRN_SIM_NEVER_READY=206,…`).
    pub never_ready: Vec<u32>,
}

impl SimKnobs {
    /// Reads the knobs.
    pub fn from_env() -> anyhow::Result<Self> {
        let boot_ms: u64 = match std::env::var("CAIRN_SIM_APISERVER_BOOT_MS") {
            Ok(v) => v
                .parse()
                .context("CAIRN_SIM_APISERVER_BOOT_MS must be milliseconds")?,
            Err(_) => 3000,
        };
        let never_ready = match std::env::var("CAIRN_SIM_NEVER_READY") {
            Ok(v) => v
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.trim()
                        .parse()
                        .context("CAIRN_SIM_NEVER_READY must list VMIDs")
                })
                .collect::<anyhow::Result<_>>()?,
            Err(_) => Vec::new(),
        };
        Ok(SimKnobs {
            boot_delay: Duration::from_millis(boot_ms),
            never_ready,
        })
    }
}

/// The homelab simulators: Proxmox (node `pve`, master VM 200, workers, the template; 262 of
/// 267 GiB committed, fake apiservers whose certificates carry the VIP) and an empty pfSense
/// driving a real HAProxy on loopback.
pub struct Homelab {
    /// Proxmox VE.
    pub proxmox: cairn_proxmox_sim::SimHandle,
    /// pfSense.
    pub pfsense: cairn_pfsense_sim::SimHandle,
}

impl Homelab {
    /// Starts both, with fake apiservers on running VMs whose certificates carry the VIP.
    /// `addr_map` says where the data plane lives on loopback ([`SIM_ADDR_MAP`] by default;
    /// worlds that run side by side need disjoint maps).
    pub async fn start(
        knobs: &SimKnobs,
        vip: &str,
        dns_name: &str,
        addr_map: &str,
    ) -> anyhow::Result<Homelab> {
        let addr_map: AddrMap = addr_map.parse()?;
        let proxmox = cairn_proxmox_sim::ProxmoxSim::start(cairn_proxmox_sim::SimConfig {
            apiserver: Some(cairn_proxmox_sim::ApiserverConfig {
                addr_map: addr_map.clone(),
                boot_delay: knobs.boot_delay,
                never_ready: knobs.never_ready.iter().copied().collect(),
                extra_sans: vec![vip.to_string(), dns_name.to_string()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .context("starting the Proxmox simulator")?;
        let pfsense = cairn_pfsense_sim::PfSenseSim::start(cairn_pfsense_sim::SimConfig {
            addr_map,
            ..Default::default()
        })
        .await
        .context("starting the pfSense simulator")?;
        Ok(Homelab { proxmox, pfsense })
    }

    /// The apiserver CA file the gates trust.
    pub fn ca_file(&self) -> PathBuf {
        self.proxmox
            .apiserver_ca_file()
            .expect("the homelab Proxmox simulator serves apiservers")
    }

    /// Environment that points the normal CLI at these simulators.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = self.proxmox.env();
        env.extend(self.pfsense.env());
        env
    }
}

/// The homelab's hosts and cluster (`cairn-node-sim`: a real sshd per host, so root only),
/// following the Proxmox simulator's VMs: a VM that boots (cloud-init done) becomes a host
/// accepting its `sshkeys`, a stopped VM's host stops, a destroyed VM's host is removed.
/// Optional: nothing starts it unless asked.
pub struct HomelabNodes {
    /// The hosts and the cluster.
    pub nodes: std::sync::Arc<std::sync::Mutex<cairn_node_sim::NodeSim>>,
    /// The homelab cluster.
    pub cluster: cairn_node_sim::ClusterId,
    follower: tokio::task::JoinHandle<()>,
}

impl HomelabNodes {
    /// Starts the before world's hosts and cluster on `addr_map` (master without
    /// controlPlaneEndpoint, four workers at the master) and follows `proxmox`'s VMs, counting
    /// a VM booted `boot_delay` after it starts. Must run inside a tokio runtime.
    pub fn start(
        addr_map: &str,
        proxmox: &cairn_proxmox_sim::SimHandle,
        boot_delay: Duration,
    ) -> anyhow::Result<HomelabNodes> {
        use cairn_proxmox_sim::VmEvent;
        let lab = cairn_node_sim::world::homelab(addr_map.parse()?)
            .context("starting the simulated hosts (needs root, sshd and curl)")?;
        let nodes = std::sync::Arc::new(std::sync::Mutex::new(lab.sim));
        let mut rx = proxmox.vm_events(boot_delay);
        let n = nodes.clone();
        let follower = tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                let n = n.clone();
                let res = tokio::task::spawn_blocking(move || {
                    let mut sim = n.lock().unwrap_or_else(|p| p.into_inner());
                    match ev {
                        VmEvent::Booted(vm) => match vm.ip {
                            Some(ip) => sim
                                .boot_machine(&cairn_node_sim::Machine {
                                    name: vm.name,
                                    ip,
                                    user: vm.ciuser,
                                    authorized_keys: vm.sshkeys,
                                })
                                .map(|_| ()),
                            None => Ok(()),
                        },
                        VmEvent::Stopped { name, .. } => {
                            sim.stop_host(&name);
                            Ok(())
                        }
                        VmEvent::Destroyed { name, .. } => {
                            sim.remove_host(&name);
                            Ok(())
                        }
                    }
                })
                .await;
                if let Ok(Err(e)) = res {
                    tracing::warn!("simulated host did not follow its VM: {e}");
                }
            }
        });
        Ok(HomelabNodes {
            nodes,
            cluster: lab.cluster,
            follower,
        })
    }
}

impl Drop for HomelabNodes {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// `stacks sim`: serves every simulator, seeded with the stacks' "before" worlds, until
/// Ctrl-C or SIGTERM. The first stdout line is one JSON object describing them (endpoint,
/// token, fingerprint each), with an `env` map that points the normal CLI (and other tools)
/// at this world.
pub async fn serve() -> anyhow::Result<()> {
    use crate::stacks::homelab_ha::{DNS_HOST, DOMAIN, VIP};
    let knobs = SimKnobs::from_env()?;
    let map = std::env::var(ADDR_MAP_ENV).unwrap_or_else(|_| SIM_ADDR_MAP.to_string());
    let homelab = Homelab::start(
        &knobs,
        &VIP.to_string(),
        &format!("{DNS_HOST}.{DOMAIN}"),
        &map,
    )
    .await?;
    let hetzner = Hetzner::start().await?;
    let mut env = homelab.env();
    env.extend(hetzner.handle.env());
    let mut proxmox = homelab.proxmox.describe();
    proxmox["apiserver_ca_file"] = homelab.ca_file().display().to_string().into();
    let info = serde_json::json!({
        "hetzner": hetzner.handle.describe(),
        "proxmox": proxmox,
        "pfsense": homelab.pfsense.describe(),
        "env": env,
    });
    println!("{info}");
    eprintln!(
        "cairn: simulators serving on loopback until Ctrl-C; the first stdout line holds their endpoints and the environment for `stacks diff`/`apply`/`drift`"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// The Hetzner Cloud simulator, seeded with the hetzner-k3s "before" world: the cluster as
/// it was made by hand (no labels), without the `staging` record.
pub struct Hetzner {
    /// The running simulator.
    pub handle: cairn_hetzner_sim::SimHandle,
}

impl Hetzner {
    /// Starts it, seeded with the "before" world.
    pub async fn start() -> anyhow::Result<Hetzner> {
        let fixture: serde_json::Value =
            serde_json::from_str(HETZNER_K3S_BEFORE).context("the hetzner-k3s fixture is JSON")?;
        Self::start_with(Some(fixture)).await
    }

    /// Starts it with the given state (`None`: an empty project).
    pub async fn start_with(fixture: Option<serde_json::Value>) -> anyhow::Result<Hetzner> {
        let handle = cairn_hetzner_sim::HetznerSim::start(cairn_hetzner_sim::SimConfig {
            fixture,
            ..Default::default()
        })
        .await
        .context("starting the Hetzner simulator")?;
        Ok(Hetzner { handle })
    }
}

/// The hetzner-k3s "before" world (simulator state JSON): the cluster as it was made by hand —
/// no cairn labels, and no `staging` record. Regenerate with [`make_hetzner_k3s_before`].
pub const HETZNER_K3S_BEFORE: &str = include_str!("../fixtures/hetzner-k3s-before.json");

/// Builds the "before" world: applies the stack without `staging` to an empty simulator, then
/// strips every label cairn wrote, as if a person had clicked it together.
pub async fn make_hetzner_k3s_before() -> anyhow::Result<serde_json::Value> {
    use std::sync::Arc;

    use crate::stacks::hetzner_k3s;
    let sim = Hetzner::start_with(None).await?;
    let provider = hetzner_k3s::provider_for(&sim.handle.endpoint, &sim.handle.token)?;
    let providers = cairn_core::Providers::new().with(Arc::new(provider));
    let stack = hetzner_k3s::build(false)?;
    let planned = cairn_core::plan(&stack, &providers).await?;
    let report = cairn_core::apply(
        &stack,
        &providers,
        &planned,
        Default::default(),
        Arc::new(cairn_core::apply::NoProgress),
    )
    .await;
    anyhow::ensure!(
        report.success(),
        "building the before world failed: {report:?}"
    );
    let mut state = sim.handle.dump_state();
    strip_cairn_labels(&mut state);
    Ok(state)
}

/// Removes every `cairn.dev/…` label anywhere in a JSON document.
fn strip_cairn_labels(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::Object(labels)) = m.get_mut("labels") {
                labels.retain(|k, _| !k.starts_with("cairn.dev/"));
            }
            m.values_mut().for_each(strip_cairn_labels);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_cairn_labels),
        _ => {}
    }
}
