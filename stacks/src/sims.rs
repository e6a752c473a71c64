//! The embedded simulators, seeded with the stacks' "before" worlds: what `diff` targets
//! without credentials, and the world `stacks sim` serves until stopped ([`world`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cairn_core::net::{ADDR_MAP_ENV, AddrMap};

/// The address map of simulator mode: every 10.x data-plane address lives on 127.x.
pub const SIM_ADDR_MAP: &str = "10.0.0.0/8=127.0.0.0/8";

/// Environment variable naming the cluster CA file (PEM) the probes through the VIP may
/// trust (the simulators' `env()` sets it; the stack's own gates read the CA from the
/// cluster's admin kubeconfig over SSH).
pub const K8S_CA_FILE_ENV: &str = "K8S_CA_FILE";
/// Environment variable naming the private key cairn logs in to hosts with (its `.pub`
/// goes into the new VMs' cloud-init `sshkeys`).
pub const SSH_IDENTITY_ENV: &str = "CAIRN_SSH_IDENTITY";
/// Environment variable naming the known-hosts file host keys are checked against.
pub const SSH_KNOWN_HOSTS_ENV: &str = "CAIRN_SSH_KNOWN_HOSTS";

/// Simulator knobs read from the environment (for rehearsals and failure tests).
#[derive(Debug, Clone)]
pub struct SimKnobs {
    /// Time from a VM's start until cloud-init has finished and its host's sshd is up
    /// (`CAIRN_SIM_BOOT_MS`, default 1500).
    pub boot_delay: Duration,
    /// Hosts whose next `kubeadm join` fails, as a failed join on that machine would
    /// (`CAIRN_SIM_FAIL_JOIN=k8s-master-3,…`): the cluster simulator's failure hook.
    pub fail_join: Vec<String>,
}

impl Default for SimKnobs {
    fn default() -> Self {
        SimKnobs {
            boot_delay: Duration::from_millis(1500),
            fail_join: Vec::new(),
        }
    }
}

impl SimKnobs {
    /// Reads the knobs.
    pub fn from_env() -> anyhow::Result<Self> {
        let boot_ms: u64 = match std::env::var("CAIRN_SIM_BOOT_MS") {
            Ok(v) => v
                .parse()
                .context("CAIRN_SIM_BOOT_MS must be milliseconds")?,
            Err(_) => 1500,
        };
        let fail_join = match std::env::var("CAIRN_SIM_FAIL_JOIN") {
            Ok(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            Err(_) => Vec::new(),
        };
        Ok(SimKnobs {
            boot_delay: Duration::from_millis(boot_ms),
            fail_join,
        })
    }
}

/// The homelab simulators: Proxmox (node `pve`, master VM 200, workers, the template; 262 of
/// 267 GiB committed), an empty pfSense driving a real HAProxy on loopback, and the
/// cluster simulator with the before world's hosts (real sshds: the master without
/// controlPlaneEndpoint, four workers at the master), whose machines follow the VMs.
pub struct Homelab {
    /// Proxmox VE.
    pub proxmox: cairn_proxmox_sim::SimHandle,
    /// pfSense.
    pub pfsense: cairn_pfsense_sim::SimHandle,
    /// The hosts and the cluster.
    pub nodes: HomelabNodes,
    map: String,
    ca: tempfile::TempDir,
}

impl Homelab {
    /// Starts all three. `addr_map` says where the data plane lives on loopback
    /// ([`SIM_ADDR_MAP`] by default; worlds that run side by side need disjoint maps).
    /// Needs root, `sshd` and `curl` for the hosts; says so when they cannot start.
    pub async fn start(knobs: &SimKnobs, addr_map: &str) -> anyhow::Result<Homelab> {
        let map: AddrMap = addr_map.parse()?;
        let proxmox = cairn_proxmox_sim::ProxmoxSim::start(Default::default())
            .await
            .context("starting the Proxmox simulator")?;
        let pfsense = cairn_pfsense_sim::PfSenseSim::start(cairn_pfsense_sim::SimConfig {
            addr_map: map,
            ..Default::default()
        })
        .await
        .context("starting the pfSense simulator")?;
        let nodes = HomelabNodes::start(addr_map, &proxmox, knobs.boot_delay)?;
        {
            let mut sim = nodes.lock();
            // The new masters' sshds get their ports now, so the port map handed out
            // before they exist already holds them.
            for (_, _, ip) in crate::stacks::homelab_ha::NEW_MASTERS {
                sim.reserve_port(ip)
                    .context("reserving an SSH port for a new master")?;
            }
            for h in &knobs.fail_join {
                sim.fail_next_join(h);
            }
        }
        let ca = tempfile::Builder::new().prefix("cairn-k8s-ca").tempdir()?;
        let pem = nodes.lock().cluster_ca_pem(nodes.cluster);
        std::fs::write(ca.path().join("ca.crt"), pem)?;
        Ok(Homelab {
            proxmox,
            pfsense,
            nodes,
            map: addr_map.to_string(),
            ca,
        })
    }

    /// The cluster CA file (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.ca.path().join("ca.crt")
    }

    /// Where each host's declared `address:22` really listens, the new masters' included.
    pub fn port_map(&self) -> cairn_core::net::PortMap {
        self.nodes.lock().port_map()
    }

    /// The data-plane dialer of this world: its address map, loopback only, its port map.
    pub fn dialer(&self) -> anyhow::Result<cairn_core::net::Dialer> {
        Ok(cairn_core::net::Dialer::new(self.map.parse()?, true).with_ports(self.port_map()))
    }

    /// The private key every host of the before world accepts (cairn's client key).
    pub fn client_key(&self) -> PathBuf {
        self.nodes.lock().client_key()
    }

    /// The known-hosts file listing the hosts' keys under their declared addresses.
    pub fn known_hosts(&self) -> PathBuf {
        self.nodes.lock().known_hosts()
    }

    /// Environment that points the normal CLI at these simulators: the APIs, the address
    /// and port maps with the loopback-only switch, the SSH identity and known hosts, the
    /// cluster CA.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = self.proxmox.env();
        env.extend(self.pfsense.env());
        env.insert(ADDR_MAP_ENV.into(), self.map.clone());
        env.insert(cairn_core::net::LOOPBACK_ONLY_ENV.into(), "1".into());
        env.insert(
            cairn_core::net::PORT_MAP_ENV.into(),
            self.port_map().to_string(),
        );
        env.insert(
            SSH_IDENTITY_ENV.into(),
            self.client_key().display().to_string(),
        );
        env.insert(
            SSH_KNOWN_HOSTS_ENV.into(),
            self.known_hosts().display().to_string(),
        );
        env.insert(K8S_CA_FILE_ENV.into(), self.ca_file().display().to_string());
        env
    }
}

/// The homelab's hosts and cluster (`cairn-node-sim`: a real sshd per host, so root only),
/// following the Proxmox simulator's VMs: a VM that boots (cloud-init done) with `sshkeys`
/// becomes a host accepting exactly them, a stopped VM's host stops, a destroyed VM's host
/// is removed. (A VM without keys boots too, but nobody could log in: no host is made.)
pub struct HomelabNodes {
    /// The hosts and the cluster.
    pub nodes: std::sync::Arc<std::sync::Mutex<cairn_node_sim::NodeSim>>,
    /// The homelab cluster.
    pub cluster: cairn_node_sim::ClusterId,
    follower: tokio::task::JoinHandle<()>,
}

impl HomelabNodes {
    /// Starts the before world's hosts and cluster on `addr_map` (master without
    /// controlPlaneEndpoint, four workers at the master), waits until its Nodes are Ready,
    /// and follows `proxmox`'s VMs, counting a VM booted `boot_delay` after it starts.
    /// Must run inside a multi-threaded tokio runtime.
    pub fn start(
        addr_map: &str,
        proxmox: &cairn_proxmox_sim::SimHandle,
        boot_delay: Duration,
    ) -> anyhow::Result<HomelabNodes> {
        use cairn_proxmox_sim::VmEvent;
        let map: AddrMap = addr_map.parse()?;
        let lab = tokio::task::block_in_place(|| {
            let lab = cairn_node_sim::world::homelab(map).context(
                "starting the simulated hosts failed (the node simulator needs root, Debian's openssh-server and curl)",
            )?;
            anyhow::ensure!(
                lab.wait_ready(Duration::from_secs(60)),
                "the simulated homelab's nodes did not become Ready: {:?}",
                lab.sim.nodes(lab.cluster)
            );
            Ok(lab)
        })?;
        let nodes = std::sync::Arc::new(std::sync::Mutex::new(lab.sim));
        let follower = follow(
            proxmox.vm_events(boot_delay),
            nodes.clone(),
            "VM",
            |sim, ev| match ev {
                VmEvent::Booted(vm) => match vm.ip {
                    Some(ip) if !vm.sshkeys.trim().is_empty() => sim
                        .boot_machine(&cairn_node_sim::Machine {
                            name: vm.name,
                            ip,
                            user: vm.ciuser,
                            authorized_keys: vm.sshkeys,
                        })
                        .map(|_| ()),
                    _ => Ok(()),
                },
                VmEvent::Stopped { name, .. } => {
                    sim.stop_host(&name);
                    Ok(())
                }
                VmEvent::Destroyed { name, .. } => {
                    sim.remove_host(&name);
                    Ok(())
                }
            },
        );
        Ok(HomelabNodes {
            nodes,
            cluster: lab.cluster,
            follower,
        })
    }

    /// The node simulator, locked.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, cairn_node_sim::NodeSim> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for HomelabNodes {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// The world `stacks sim` serves: every simulator, seeded with the stacks' "before" worlds
/// (the homelab's hosts following its VMs; the hetzner-k3s project with its hand-made k3s
/// hosts, which follow its servers), described per simulator (endpoint, token, fingerprint;
/// the hosts, their keys and the cluster CA) with the `env` that points the normal CLI (and
/// other tools) at it. Both worlds' data planes live on loopback: the homelab
/// on [`SIM_ADDR_MAP`] (or `CAIRN_ADDR_MAP`), hetzner-k3s's hosts among the homelab's (one
/// identity, known-hosts file and port map; `10.0.1.0/24` maps within the same range).
pub fn world() -> cairn::cli::BoxFuture<'static, anyhow::Result<cairn::cli::World>> {
    Box::pin(async {
        let knobs = SimKnobs::from_env()?;
        let map = std::env::var(ADDR_MAP_ENV).unwrap_or_else(|_| SIM_ADDR_MAP.to_string());
        let homelab = Homelab::start(&knobs, &map).await?;
        // hetzner-k3s's hosts live among the homelab's: one identity, one known-hosts file,
        // one address and port map for both worlds.
        let k3s = HetznerK3sWorld::start_on(&knobs, &homelab.nodes.nodes, &map).await?;
        let mut env = homelab.env();
        env.extend(k3s.hetzner.handle.env());
        env.insert(
            crate::stacks::hetzner_k3s::K3S_TOKEN_ENV.into(),
            k3s.nodes.token.clone(),
        );
        let host_info = |sim: &cairn_node_sim::NodeSim| -> Vec<serde_json::Value> {
            sim.hosts()
                .iter()
                .map(|h| {
                    serde_json::json!({
                        "name": h.name(), "address": h.declared().to_string(),
                        "listen": h.listen().to_string(), "fingerprint": h.fingerprint(),
                        "etc_kubernetes": h.etc_kubernetes().display().to_string(),
                    })
                })
                .collect()
        };
        let hosts = host_info(&homelab.nodes.lock());
        let mut info = serde_json::Map::new();
        info.insert("hetzner".into(), k3s.hetzner.handle.describe());
        info.insert("proxmox".into(), homelab.proxmox.describe());
        info.insert("pfsense".into(), homelab.pfsense.describe());
        info.insert(
            "nodes".into(),
            serde_json::json!({
                "hosts": hosts,
                "cluster_ca_file": homelab.ca_file().display().to_string(),
                "ssh_identity": homelab.client_key().display().to_string(),
                "known_hosts": homelab.known_hosts().display().to_string(),
            }),
        );
        Ok(cairn::cli::World {
            info,
            env,
            keep: vec![Box::new(homelab), Box::new(k3s)],
        })
    })
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

/// Builds the "before" world: applies the hand-made cloud objects
/// ([`hetzner_k3s::build_hand_made`](crate::stacks::hetzner_k3s::build_hand_made)) to an
/// empty simulator, then strips every label cairn wrote, as if a person had clicked it
/// together.
pub async fn make_hetzner_k3s_before() -> anyhow::Result<serde_json::Value> {
    use std::sync::Arc;

    use crate::stacks::hetzner_k3s;
    let sim = Hetzner::start_with(None).await?;
    let provider = hetzner_k3s::provider_for(&sim.handle.endpoint, &sim.handle.token)?;
    let providers = cairn_core::Providers::new().with(Arc::new(provider));
    let stack = hetzner_k3s::build_hand_made()?;
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

/// The hetzner-k3s cluster's hosts as they were made by hand (`cairn-node-sim`: real sshds at
/// the servers' private addresses on `addr_map`, k3s installed with its install script:
/// `k3s-mgr` a tainted server, `k3s-w1`/`k3s-w2` agents), started and Ready. Root only.
/// Must run inside a multi-threaded tokio runtime.
pub fn hetzner_k3s_nodes(addr_map: &str) -> anyhow::Result<cairn_node_sim::world::HetznerK3s> {
    let map: AddrMap = addr_map.parse()?;
    tokio::task::block_in_place(|| {
        let w = cairn_node_sim::world::hetzner_k3s(map).context(
            "starting the simulated k3s hosts failed (the node simulator needs root, Debian's openssh-server and curl)",
        )?;
        anyhow::ensure!(
            w.wait_ready(Duration::from_secs(60)),
            "the simulated k3s nodes did not become Ready: {:?}",
            w.sim.nodes(w.cluster)
        );
        Ok(w)
    })
}

/// An address map for the hetzner-k3s hosts of this process: `10.0.1.0/24` onto a
/// `127.X.1.0/24` whose apiserver address is free now, so embedded worlds of processes that
/// run side by side (tests, a rehearsal next to `stacks sim`) never share a listening address.
pub fn hetzner_k3s_addr_map() -> String {
    let start = std::process::id() as usize;
    (0..150)
        .map(|i| 100 + (start + i) % 150)
        .find(|x| std::net::TcpListener::bind((format!("127.{x}.1.5"), 6443)).is_ok())
        .map_or_else(
            || SIM_ADDR_MAP.to_string(),
            |x| format!("10.0.1.0/24=127.{x}.1.0/24"),
        )
}

/// hetzner-k3s's simulated world: the Hetzner simulator seeded with the "before" world, and
/// the node simulator's hand-made k3s cluster, whose hosts follow the servers
/// ([`K3sNodes`]).
pub struct HetznerK3sWorld {
    /// The Hetzner Cloud simulator.
    pub hetzner: Hetzner,
    /// The hosts and the cluster.
    pub nodes: K3sNodes,
    /// The address map its data plane lives on.
    pub map: String,
    /// The private key cairn logs in with (the hosts accept it).
    identity: PathBuf,
}

impl HetznerK3sWorld {
    /// Starts both on `addr_map` (e.g. [`hetzner_k3s_addr_map`]), the servers' hosts
    /// counting as booted `knobs.boot_delay` after their servers run. Root only; must run
    /// inside a multi-threaded tokio runtime.
    pub async fn start(knobs: &SimKnobs, addr_map: &str) -> anyhow::Result<HetznerK3sWorld> {
        let hetzner = Hetzner::start().await?;
        let nodes = K3sNodes::start(addr_map, &hetzner.handle, knobs.boot_delay)?;
        // cairn's key goes on the servers, so it is in the plan: one kept in the state
        // directory keeps a plan saved in one run current in the next.
        let identity = simulated_identity()?;
        let public = crate::stacks::hetzner_k3s::public_key_of(&identity)?;
        nodes
            .lock()
            .authorize_client_key(&public)
            .context("authorizing the simulated identity on the hand-made hosts")?;
        Ok(HetznerK3sWorld {
            hetzner,
            nodes,
            map: addr_map.to_string(),
            identity,
        })
    }

    /// Like [`HetznerK3sWorld::start`], with the hosts among those of `nodes`, whose
    /// address map is `addr_map` (e.g. the homelab's, in `stacks sim`).
    pub async fn start_on(
        knobs: &SimKnobs,
        nodes: &std::sync::Arc<std::sync::Mutex<cairn_node_sim::NodeSim>>,
        addr_map: &str,
    ) -> anyhow::Result<HetznerK3sWorld> {
        let hetzner = Hetzner::start().await?;
        let nodes = K3sNodes::start_on(nodes.clone(), &hetzner.handle, knobs.boot_delay)?;
        let identity = nodes.lock().client_key();
        Ok(HetznerK3sWorld {
            hetzner,
            nodes,
            map: addr_map.to_string(),
            identity,
        })
    }

    /// Where each host's declared `address:22` really listens, the servers cairn will
    /// create included.
    pub fn port_map(&self) -> cairn_core::net::PortMap {
        self.nodes.lock().port_map()
    }

    /// The data-plane dialer of this world: its address map, loopback only, its port map.
    pub fn dialer(&self) -> anyhow::Result<cairn_core::net::Dialer> {
        Ok(cairn_core::net::Dialer::new(self.map.parse()?, true).with_ports(self.port_map()))
    }

    /// The private key the hand-made hosts accept: cairn's (its `.pub` goes on the servers).
    pub fn client_key(&self) -> PathBuf {
        self.identity.clone()
    }

    /// The known-hosts file listing the hosts' keys under their declared addresses (a
    /// booted server's host adds its own).
    pub fn known_hosts(&self) -> PathBuf {
        self.nodes.lock().known_hosts()
    }

    /// Environment that points the normal CLI at this world: the Hetzner API, the k3s join
    /// token, the SSH identity and known hosts, the address and port maps with the
    /// loopback-only switch.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = self.hetzner.handle.env();
        env.insert(
            crate::stacks::hetzner_k3s::K3S_TOKEN_ENV.into(),
            self.nodes.token.clone(),
        );
        env.insert(ADDR_MAP_ENV.into(), self.map.clone());
        env.insert(cairn_core::net::LOOPBACK_ONLY_ENV.into(), "1".into());
        env.insert(
            cairn_core::net::PORT_MAP_ENV.into(),
            self.port_map().to_string(),
        );
        env.insert(
            SSH_IDENTITY_ENV.into(),
            self.client_key().display().to_string(),
        );
        env.insert(
            SSH_KNOWN_HOSTS_ENV.into(),
            self.known_hosts().display().to_string(),
        );
        env
    }
}

/// The hetzner-k3s cluster's hosts (`cairn-node-sim`: a real sshd per host, so root only),
/// following the Hetzner simulator's servers: a server that boots with SSH keys becomes a
/// fresh host at its private IP accepting exactly those keys, with k3s's install script when
/// its cloud-init `user_data` installs it; a stopped server's host stops; a deleted server's
/// host vanishes. The hand-made servers boot without keys: their hosts are the before
/// world's, made by hand.
pub struct K3sNodes {
    /// The hosts and the cluster.
    pub nodes: std::sync::Arc<std::sync::Mutex<cairn_node_sim::NodeSim>>,
    /// The cluster `k3s-mgr` made.
    pub cluster: cairn_node_sim::ClusterId,
    /// The join token the cluster was made with (a secret: never printed).
    pub token: String,
    follower: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for K3sNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K3sNodes")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl K3sNodes {
    /// Starts the hand-made hosts and cluster on `addr_map` in a node simulator of their
    /// own and follows `hetzner`'s servers ([`K3sNodes::follow`]). Must run inside a
    /// multi-threaded tokio runtime.
    pub fn start(
        addr_map: &str,
        hetzner: &cairn_hetzner_sim::SimHandle,
        boot_delay: Duration,
    ) -> anyhow::Result<K3sNodes> {
        let w = hetzner_k3s_nodes(addr_map)?;
        let nodes = std::sync::Arc::new(std::sync::Mutex::new(w.sim));
        Self::follow(nodes, w.cluster, w.token, hetzner, boot_delay)
    }

    /// Starts the hand-made hosts and cluster among the hosts of `nodes` (e.g. the
    /// homelab's, so one identity, known-hosts file and port map serve both), waits until
    /// they are Ready, and follows `hetzner`'s servers. Must run inside a multi-threaded
    /// tokio runtime.
    pub fn start_on(
        nodes: std::sync::Arc<std::sync::Mutex<cairn_node_sim::NodeSim>>,
        hetzner: &cairn_hetzner_sim::SimHandle,
        boot_delay: Duration,
    ) -> anyhow::Result<K3sNodes> {
        let (cluster, token) = tokio::task::block_in_place(|| {
            let mut sim = nodes.lock().unwrap_or_else(|p| p.into_inner());
            let (cluster, token) = cairn_node_sim::world::hetzner_k3s_on(&mut sim)
                .context("starting the simulated k3s hosts failed")?;
            drop(sim);
            let ready = || {
                let sim = nodes.lock().unwrap_or_else(|p| p.into_inner());
                cairn_node_sim::world::hetzner_k3s_ready(&sim, cluster, Duration::from_millis(50))
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !ready() {
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "the simulated k3s nodes did not become Ready"
                );
                std::thread::sleep(Duration::from_millis(25));
            }
            Ok::<_, anyhow::Error>((cluster, token))
        })?;
        Self::follow(nodes, cluster, token, hetzner, boot_delay)
    }

    /// Reserves SSH ports for every declared server's address (a server rebuilt there
    /// listens where the port map handed out already says) and follows `hetzner`'s servers,
    /// counting a server booted `boot_delay` after it runs.
    fn follow(
        nodes: std::sync::Arc<std::sync::Mutex<cairn_node_sim::NodeSim>>,
        cluster: cairn_node_sim::ClusterId,
        token: String,
        hetzner: &cairn_hetzner_sim::SimHandle,
        boot_delay: Duration,
    ) -> anyhow::Result<K3sNodes> {
        use cairn_hetzner_sim::ServerEvent;
        {
            let mut sim = nodes.lock().unwrap_or_else(|p| p.into_inner());
            for (_, ip, _) in crate::stacks::hetzner_k3s::SERVERS {
                sim.reserve_port(ip.parse()?)
                    .context("reserving an SSH port for a server")?;
            }
        }
        let follower = follow(
            hetzner.server_events(boot_delay),
            nodes.clone(),
            "server",
            |sim, ev| match ev {
                ServerEvent::Booted(b) => boot_server(sim, b),
                ServerEvent::Stopped { name, .. } => {
                    sim.stop_host(&name);
                    Ok(())
                }
                ServerEvent::Deleted { name, .. } => {
                    sim.remove_host(&name);
                    Ok(())
                }
            },
        );
        Ok(K3sNodes {
            nodes,
            cluster,
            token,
            follower,
        })
    }

    /// The node simulator, locked.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, cairn_node_sim::NodeSim> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for K3sNodes {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// Brings up the host of a server that has booted. A server without SSH keys or a private
/// IP boots too, but nobody could log in to it over the private network: no host is made
/// (the hand-made servers, whose hosts exist already).
/// Makes the node simulator follow a simulator's machine lifecycle events: each event is
/// handed to `apply` with the simulator locked, off the async threads (starting an sshd
/// blocks); a machine that cannot follow is a warning naming `what` (`VM`, `server`).
fn follow<E: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<E>,
    nodes: std::sync::Arc<std::sync::Mutex<cairn_node_sim::NodeSim>>,
    what: &'static str,
    apply: fn(&mut cairn_node_sim::NodeSim, E) -> std::io::Result<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let n = nodes.clone();
            let res = tokio::task::spawn_blocking(move || {
                let mut sim = n.lock().unwrap_or_else(|p| p.into_inner());
                apply(&mut sim, ev)
            })
            .await;
            if let Ok(Err(e)) = res {
                tracing::warn!("simulated host did not follow its {what}: {e}");
            }
        }
    })
}

fn boot_server(
    sim: &mut cairn_node_sim::NodeSim,
    b: cairn_hetzner_sim::BootedServer,
) -> std::io::Result<()> {
    let Some(ip) = b.private_ips.first().copied() else {
        return Ok(());
    };
    if b.public_keys.is_empty() {
        return Ok(());
    }
    // cloud-init ran the `user_data`: k3s's install script is there only if it put it there.
    let install_script = b
        .user_data
        .as_deref()
        .is_some_and(|u| u.contains(cairn_node::kinds::k3s::INSTALL_SCRIPT));
    let keys = b.public_keys.join("\n") + "\n";
    boot_k3s_machine(sim, &b.name, ip, &keys, install_script)
}

/// A fresh k3s-capable host for a booted server, accepting exactly its keys. Without the
/// install script (a server whose cloud-init did not fetch it) no k3s host can be made: the
/// node simulator's cloud hosts always carry it, so such a server gets no host, and says so.
fn boot_k3s_machine(
    sim: &mut cairn_node_sim::NodeSim,
    name: &str,
    ip: std::net::Ipv4Addr,
    authorized_keys: &str,
    install_script: bool,
) -> std::io::Result<()> {
    if !install_script {
        return Err(std::io::Error::other(format!(
            "server {name}: its user_data does not install k3s's install script ({}); no k3s host",
            cairn_node::kinds::k3s::INSTALL_SCRIPT
        )));
    }
    sim.boot_k3s_host(name, ip, authorized_keys).map(|_| ())
}

/// The SSH identity simulator mode logs in to hetzner-k3s's hosts with: an ed25519 key kept
/// in the state directory (`sim/hetzner-k3s/id_ed25519`, made on first use), so its public
/// key — declared as `hetzner_ssh_key.cairn` — is the same in every run.
pub fn simulated_identity() -> anyhow::Result<PathBuf> {
    let dir = cairn_core::lock::state_dir()?.join("sim");
    let keys = dir.join("hetzner-k3s");
    let key = keys.join("id_ed25519");
    if key.exists() {
        return Ok(key);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::Builder::new().prefix(".key").tempdir_in(&dir)?;
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "cairn-sim", "-f"])
        .arg(tmp.path().join("id_ed25519"))
        .stdin(std::process::Stdio::null())
        .status()
        .context("running ssh-keygen for the simulated identity")?;
    anyhow::ensure!(st.success(), "ssh-keygen failed: {st}");
    // Both files appear at once; a run that made its own at the same time keeps the first.
    let made = tmp.keep();
    if std::fs::rename(&made, &keys).is_err() {
        let _ = std::fs::remove_dir_all(&made);
    }
    anyhow::ensure!(
        key.exists(),
        "the simulated identity {} is missing",
        key.display()
    );
    Ok(key)
}
