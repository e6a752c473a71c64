//! hetzner-k3s: the Hetzner Cloud k3s cluster as code, down to k3s. Half of it was made by
//! hand; the first plan adopts that without replacing anything, adds the missing `staging`
//! record and grows the control plane to three servers.
//!
//! Five CAX11 servers on a private network — `k3s-mgr`, `k3s-cp2`, `k3s-cp3` k3s servers
//! tainted against workloads, `k3s-w1`/`k3s-w2` agents carrying them — each with cairn's SSH
//! key and a cloud-init that puts k3s's install script (pinned) on it; a load balancer
//! forwarding 80/443 to the workers with TCP health checks, a firewall opening the k3s API
//! only to the network and the CI runner on the servers, and DNS records that point at the
//! load balancer's IPv4 by reference.
//!
//! Down to k3s (when the join token is known: `K3S_TOKEN`, or the simulated world's): k3s
//! [`K3S_VERSION`] with flannel on the private interface [`FLANNEL_IFACE`], each node's IP
//! the Hetzner server's private IP by reference. The hand-made `k3s-mgr` (a single server
//! on SQLite) is converted to embedded etcd by `--cluster-init`; `k3s-cp2`/`k3s-cp3` join it;
//! a gate then wants three Ready etcd members and every node Ready before the agents are
//! touched. The k3s resources are chained mgr → cp2 → cp3 → w1 → w2, so a version change
//! upgrades one node at a time, servers first. Its hosts are reached over SSH at their
//! private addresses. `stacks rotate` replaces the servers one at a time (`Loaded.rotation`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_core::gate::GateTiming;
use cairn_core::net::Dialer;
use cairn_core::{NodeRef, Providers, Stack, StackBuilder};
use cairn_hetzner::client::{ClientConfig, Token};
use cairn_hetzner::prelude::*;
use cairn_node::kinds::k3s::{INSTALL_SCRIPT, K3S_YAML};
use cairn_node::provider::{NodeContext, Waits, node_provider_for};
use cairn_node::rotation::K3sRotation;
use cairn_node::{Cluster, Host, HostKeyTrust, K3sAgent, K3sServer, NodeProvider, Ssh, SshOptions};

use super::probes::{QuorumAndNodesReady, SshAnswers};
use super::{Loaded, StackDef};
use cairn::cli::Target as Where;

/// The stack's definition: Hetzner Cloud with `HCLOUD_TOKEN` (and k3s on its servers with
/// `K3S_TOKEN`), else the Hetzner simulator seeded with the "before" world plus the node
/// simulator's hand-made k3s cluster, whose hosts follow the simulated servers.
pub fn def() -> StackDef {
    StackDef::custom("hetzner-k3s", &["HCLOUD_TOKEN"], load)
}

/// The zone.
pub const ZONE: &str = "docfast.dev";
/// The CI runner allowed to reach the k3s API.
pub const CI_RUNNER: &str = "178.115.247.134/32";

/// The k3s release the cluster runs.
pub const K3S_VERSION: &str = "v1.34.4+k3s1";
/// Where cloud-init fetches k3s's install script from: the script as released with
/// v1.34.4+k3s1, by its tag (`+` written `%2B`), not the moving `https://get.k3s.io`. It is
/// pinned apart from [`K3S_VERSION`] on purpose: the script installs whatever
/// `INSTALL_K3S_VERSION` says, and changing a server's `user_data` replaces the server.
pub const INSTALL_SCRIPT_URL: &str =
    "https://raw.githubusercontent.com/k3s-io/k3s/v1.34.4%2Bk3s1/install.sh";
/// The private interface flannel uses.
pub const FLANNEL_IFACE: &str = "enp7s0";
/// The taint that keeps workloads off the servers.
pub const SERVER_TAINT: &str = "node-role.kubernetes.io/control-plane:NoSchedule";
/// The cluster's name in the node provider.
pub const CLUSTER: &str = "hetzner-k3s";
/// The Hetzner servers: name, private IP, k3s role — in the order the k3s nodes are chained
/// (upgraded and rotated): the servers first, `k3s-mgr` (`--cluster-init`) leading.
pub const SERVERS: [(&str, &str, &str); 5] = [
    ("k3s-mgr", "10.0.1.5", "server"),
    ("k3s-cp2", "10.0.1.8", "server"),
    ("k3s-cp3", "10.0.1.9", "server"),
    ("k3s-w1", "10.0.1.6", "agent"),
    ("k3s-w2", "10.0.1.7", "agent"),
];
/// The servers made by hand before cairn (the "before" world): the others are new.
pub const HAND_MADE: [&str; 3] = ["k3s-mgr", "k3s-w1", "k3s-w2"];
/// The API every node joins through: the first server's.
pub const JOIN_URL: &str = "https://10.0.1.5:6443";
/// Environment variable holding the cluster's join token (sensitive; never printed).
pub const K3S_TOKEN_ENV: &str = "K3S_TOKEN";
/// The name of cairn's SSH key in the project.
pub const SSH_KEY_NAME: &str = "cairn";

/// The cloud-config every server boots with: it puts k3s's install script (pinned, see
/// [`INSTALL_SCRIPT_URL`]) at [`INSTALL_SCRIPT`]; cairn runs it over SSH with the node's
/// version, flags and token (the `node_k3s_*` resources), so no secret is in `user_data`.
pub fn user_data() -> String {
    format!(
        "#cloud-config\n\
         # k3s's install script, pinned; cairn runs it over SSH (node_k3s_server/node_k3s_agent).\n\
         runcmd:\n  \
         - [curl, -sfL, --retry, \"5\", -o, {INSTALL_SCRIPT}, \"{INSTALL_SCRIPT_URL}\"]\n  \
         - [chmod, \"0755\", {INSTALL_SCRIPT}]\n"
    )
}

/// What the k3s part of the stack needs: the join token and the cluster (for its gates).
#[derive(Clone)]
pub struct K3sPart {
    /// The cluster's join token (sensitive).
    pub token: String,
    /// The cluster, as the node provider reaches it.
    pub cluster: Arc<Cluster>,
    /// The hosts (for the new servers' SSH gates).
    pub ssh: Arc<Ssh>,
    /// How the stack's gates wait.
    pub timing: GateTiming,
}

/// Declares the stack's cloud part. `with_staging: false` leaves out the `staging` record.
/// Without cairn's public key the servers declare no SSH key.
pub fn build(with_staging: bool) -> anyhow::Result<Stack> {
    build_with_k3s(with_staging, None, None)
}

/// The cloud objects as they were made by hand (the "before" world): three servers without
/// SSH keys or cloud-init, the firewall on `k3s-mgr` only, no `staging` record.
pub fn build_hand_made() -> anyhow::Result<Stack> {
    let mut s = StackBuilder::new("hetzner-k3s");
    let net = s.add(
        "k3s-net",
        Network::new("k3s-net", "10.0.0.0/16", "10.0.1.0/24"),
    );
    let mut servers = Vec::new();
    for (name, ip, role) in SERVERS.iter().filter(|(n, _, _)| HAND_MADE.contains(n)) {
        let ip: std::net::Ipv4Addr = ip.parse()?;
        let srv = Server::new(name, "cax11", "ubuntu-24.04", "nbg1")
            .label("k3s-role", role)
            .network(&net, ip);
        servers.push(s.add(name, srv));
    }
    cloud_rest(&mut s, &net, &servers[1..], &servers[..1], false);
    Ok(s.build()?)
}

/// The load balancer (to `workers`), the firewall (on `servers`) and the zone.
fn cloud_rest(
    s: &mut StackBuilder,
    net: &cairn_core::Handle<Network>,
    workers: &[cairn_core::Handle<Server>],
    servers: &[cairn_core::Handle<Server>],
    with_staging: bool,
) {
    // TCP services with Hetzner's default checks: 15 s interval, 10 s timeout, 3 retries.
    // The targets are reached over the private network the load balancer is attached to.
    let mut lb = LoadBalancer::new("k3s-lb", "lb11", "nbg1")
        .network(net, [10, 0, 1, 10])
        .service(Service::tcp(80))
        .service(Service::tcp(443));
    for w in workers {
        lb = lb.target(w);
    }
    let lb = s.add("k3s-lb", lb);

    let mut fw = Firewall::new("coolify-fw")
        .rule(Rule::tcp_in("6443", &["10.0.0.0/16"]).describe("k3s API from the private network"))
        .rule(Rule::tcp_in("6443", &[CI_RUNNER]).describe("k3s API from the CI runner"));
    for srv in servers {
        fw = fw.apply_to(srv);
    }
    s.add("coolify-fw", fw);

    // Records name their zone by handle: each is ordered after the zone.
    let zone = s.add("docfast", Zone::new(ZONE));
    s.add("apex-a", RRSet::a(&zone, "@", lb.ipv4()));
    s.add(
        "apex-mx",
        // The zone's mail is hosted by cloonar.com (the record as it is in the zone).
        RRSet::new(&zone, "@", RecordType::MX).value("10 mail.cloonar.com."),
    );
    if with_staging {
        s.add("staging-a", RRSet::a(&zone, "staging", lb.ipv4()));
    }
}

/// Declares the stack: every server with cairn's SSH key when `public_key` is given (an
/// OpenSSH public key line), and the k3s part when `k3s` is given.
pub fn build_with_k3s(
    with_staging: bool,
    public_key: Option<&str>,
    k3s: Option<&K3sPart>,
) -> anyhow::Result<Stack> {
    build_with_k3s_version(with_staging, public_key, k3s, K3S_VERSION)
}

/// [`build_with_k3s`] with k3s `version` on every node instead of [`K3S_VERSION`] (a
/// version change is a rolling upgrade, servers first).
pub fn build_with_k3s_version(
    with_staging: bool,
    public_key: Option<&str>,
    k3s: Option<&K3sPart>,
    version: &str,
) -> anyhow::Result<Stack> {
    let mut s = StackBuilder::new("hetzner-k3s");
    let net = s.add(
        "k3s-net",
        Network::new("k3s-net", "10.0.0.0/16", "10.0.1.0/24"),
    );
    let key = public_key.map(|k| s.add(SSH_KEY_NAME, SshKey::new(SSH_KEY_NAME, k.trim())));

    let mut servers = Vec::new();
    for (name, ip, role) in SERVERS {
        let ip: std::net::Ipv4Addr = ip.parse()?;
        let mut srv = Server::new(name, "cax11", "ubuntu-24.04", "nbg1")
            .label("k3s-role", role)
            .network(&net, ip)
            .user_data(user_data());
        if let Some(key) = &key {
            srv = srv.ssh_key(key);
        }
        servers.push(s.add(name, srv));
    }
    let is_server = |i: &usize| SERVERS[*i].2 == "server";
    let (ctl, workers): (Vec<usize>, Vec<usize>) = (0..SERVERS.len()).partition(is_server);
    let pick = |idx: &[usize]| idx.iter().map(|i| servers[*i].clone()).collect::<Vec<_>>();
    cloud_rest(&mut s, &net, &pick(&workers), &pick(&ctl), with_staging);

    if let Some(k3s) = k3s {
        let mut previous: Option<cairn_core::Address> = None;
        for ((name, _, role), srv) in SERVERS.iter().zip(&servers) {
            let node = if *role == "server" {
                let mut k = K3sServer::new(*name, version, &k3s.token);
                if previous.is_none() {
                    k.cluster_init = true;
                } else {
                    k.server = Some(JOIN_URL.into());
                }
                k.flannel_iface = Some(FLANNEL_IFACE.into());
                k.node_taints = vec![SERVER_TAINT.into()];
                k.node_ip = Some(srv.private_ipv4().into());
                s.add(name, k).address().clone()
            } else {
                let mut k = K3sAgent::new(*name, version, JOIN_URL, &k3s.token);
                k.flannel_iface = Some(FLANNEL_IFACE.into());
                k.node_ip = Some(srv.private_ipv4().into());
                s.add(name, k).address().clone()
            };
            // A new (or rebuilt) server is reachable once it has booted: wait for its SSH.
            let ssh = s.gate(
                &format!("{name}-ssh"),
                SshAnswers {
                    ssh: k3s.ssh.clone(),
                    host: (*name).into(),
                },
                k3s.timing,
            );
            s.depends_on(&ssh, srv);
            s.depends_on(&node, &ssh);
            if let Some(p) = &previous {
                s.depends_on(&node, p);
            }
            previous = Some(node.clone());
            // After the last server: a highly available control plane before any agent.
            if *name == SERVERS[ctl[ctl.len() - 1]].0 {
                let ha = s.gate(
                    "k3s-ha",
                    QuorumAndNodesReady {
                        cluster: k3s.cluster.clone(),
                        members: ctl.len(),
                    },
                    k3s.timing,
                );
                s.depends_on(&ha, &node);
                previous = Some(ha.address().clone());
            }
        }
    }
    Ok(s.build()?)
}

/// The cluster's hosts over SSH at their private addresses through `dialer` as `user`
/// with `identity`, host keys checked against `known_hosts`.
pub fn ssh(
    dialer: &Dialer,
    identity: PathBuf,
    known_hosts: PathBuf,
    user: &str,
) -> anyhow::Result<Arc<Ssh>> {
    let hosts = SERVERS
        .iter()
        .map(|(name, ip, _)| {
            Host::new(
                *name,
                ip.to_string(),
                user,
                HostKeyTrust::KnownHosts(known_hosts.clone()),
            )
        })
        .collect();
    let mut opts = SshOptions::new(identity);
    opts.connect_timeout = Duration::from_secs(5);
    Ok(Arc::new(Ssh::new(opts, dialer.clone(), hosts)?))
}

/// The cluster: its API at the first server's private address, failing over to the other
/// servers' (so it stays reachable while one server is rebuilt), with k3s's admin
/// kubeconfig read from the first server that answers; each host's node has the host's
/// name.
pub fn cluster(ssh: &Arc<Ssh>, dialer: &Dialer) -> Arc<Cluster> {
    let servers: Vec<_> = SERVERS.iter().filter(|(_, _, r)| *r == "server").collect();
    let mut cluster = Cluster::new(
        CLUSTER,
        format!("{}:6443", servers[0].1),
        servers[0].0,
        ssh.clone(),
        dialer.clone(),
    )
    .admin_conf(K3S_YAML)
    .endpoints(servers.iter().map(|(_, ip, _)| format!("{ip}:6443")))
    .admin_hosts(servers.iter().map(|(name, _, _)| *name));
    for (name, _, _) in SERVERS {
        cluster = cluster.node(name, name);
    }
    Arc::new(cluster)
}

/// How often each node is rotated (`stacks rotate --due`): weekly, the workplan's "Phoenix"
/// rotation that rebuilds nodes to kill configuration drift.
pub const ROTATION_PERIOD: Duration = Duration::from_secs(7 * 24 * 3600);

/// The cluster's rotation: every node in [`SERVERS`] order (servers first, `k3s-mgr`
/// leading), each rebuilt by replacing its Hetzner server; drains time out after
/// `CAIRN_DRAIN_TIMEOUT_SECS` (300), gates wait as the stack's.
pub fn rotation(cluster: &Arc<Cluster>, timing: GateTiming) -> anyhow::Result<K3sRotation> {
    let drain = match std::env::var("CAIRN_DRAIN_TIMEOUT_SECS") {
        Ok(v) => v
            .parse()
            .context("CAIRN_DRAIN_TIMEOUT_SECS must be seconds")?,
        Err(_) => 300,
    };
    Ok(K3sRotation::new(
        cluster.clone(),
        SERVERS.iter().map(|(name, _, role)| {
            (
                *name,
                *name,
                cairn_core::Address::new("hetzner_server", name),
                *role == "server",
            )
        }),
    )
    .drain_timeout(Duration::from_secs(drain))
    .gates(Waits {
        interval: timing.interval,
        timeout: timing.timeout,
    })
    .period(ROTATION_PERIOD))
}

/// The node provider over these hosts and the cluster.
pub fn node_provider(ssh: &Arc<Ssh>, cluster: &Arc<Cluster>) -> NodeProvider {
    node_provider_for(NodeContext::new(ssh.clone()).cluster(cluster.clone()))
}

/// cairn's public key: the `.pub` next to the private key `identity`.
pub fn public_key_of(identity: &std::path::Path) -> anyhow::Result<String> {
    let mut p = identity.as_os_str().to_owned();
    p.push(".pub");
    let text = std::fs::read_to_string(&p)
        .with_context(|| format!("reading cairn's public key {}", PathBuf::from(&p).display()))?;
    Ok(text.trim().to_string())
}

/// How the stack's gates wait: every half second, up to `CAIRN_GATE_TIMEOUT_SECS` (600).
fn gate_timing() -> anyhow::Result<GateTiming> {
    let timeout = match std::env::var("CAIRN_GATE_TIMEOUT_SECS") {
        Ok(v) => v
            .parse()
            .context("CAIRN_GATE_TIMEOUT_SECS must be seconds")?,
        Err(_) => 600,
    };
    Ok(GateTiming {
        interval: Duration::from_millis(500),
        timeout: Duration::from_secs(timeout),
    })
}

/// A provider for the simulator at `endpoint`.
pub fn provider_for(endpoint: &str, token: &str) -> anyhow::Result<HetznerProvider> {
    Ok(HetznerProvider::new(ClientConfig::new(
        endpoint,
        Token::new(token),
    ))?)
}

async fn load(target: Where) -> anyhow::Result<Loaded> {
    match target {
        Where::Simulated => {
            let map = std::env::var(cairn_core::net::ADDR_MAP_ENV)
                .unwrap_or_else(|_| crate::sims::hetzner_k3s_addr_map());
            let world =
                crate::sims::HetznerK3sWorld::start(&crate::sims::SimKnobs::from_env()?, &map)
                    .await?;
            let provider =
                provider_for(&world.hetzner.handle.endpoint, &world.hetzner.handle.token)?;
            let dialer = world.dialer()?;
            let ssh = ssh(&dialer, world.client_key(), world.known_hosts(), "root")?;
            let cluster = cluster(&ssh, &dialer);
            let k3s = K3sPart {
                token: world.nodes.token.clone(),
                cluster: cluster.clone(),
                ssh: ssh.clone(),
                timing: gate_timing()?,
            };
            let public_key = public_key_of(&world.client_key())?;
            let rotation = rotation(&cluster, k3s.timing)?;
            Ok(Loaded {
                stack: build_with_k3s(true, Some(&public_key), Some(&k3s))?,
                providers: Providers::new()
                    .with(Arc::new(provider))
                    .with(Arc::new(node_provider(&ssh, &cluster))),
                keep: vec![Box::new(world)],
                rotation: Some(Arc::new(rotation)),
            })
        }
        Where::Real => {
            let provider = HetznerProvider::from_env().context(
                "configuring the Hetzner Cloud client from HCLOUD_TOKEN / HCLOUD_ENDPOINT",
            )?;
            let mut providers = Providers::new().with(Arc::new(provider));
            // cairn's key goes on every server; without it the servers declare none (a
            // server made then could not be logged in to: the plan says so).
            let identity = std::env::var_os(crate::sims::SSH_IDENTITY_ENV).map(PathBuf::from);
            let public_key = identity.as_deref().map(public_key_of).transpose()?;
            // The k3s part needs the join token and SSH access; without the token the
            // stack stays at the cloud objects, and says so.
            let token = std::env::var(K3S_TOKEN_ENV).ok().filter(|t| !t.is_empty());
            let mut k3s = None;
            match token {
                Some(token) => {
                    let identity = identity.with_context(|| {
                        format!("{} is not set: the k3s part of hetzner-k3s logs in to its hosts over SSH", crate::sims::SSH_IDENTITY_ENV)
                    })?;
                    let known = std::env::var_os(crate::sims::SSH_KNOWN_HOSTS_ENV)
                        .map(PathBuf::from)
                        .with_context(|| {
                            format!(
                                "{} is not set: the k3s part of hetzner-k3s checks its hosts' keys",
                                crate::sims::SSH_KNOWN_HOSTS_ENV
                            )
                        })?;
                    let dialer = Dialer::from_env()?;
                    let ssh = ssh(
                        &dialer,
                        identity,
                        known,
                        &std::env::var("HETZNER_SSH_USER").unwrap_or_else(|_| "root".into()),
                    )?;
                    let cluster = cluster(&ssh, &dialer);
                    providers = providers.with(Arc::new(node_provider(&ssh, &cluster)));
                    k3s = Some(K3sPart {
                        token,
                        cluster,
                        ssh,
                        timing: gate_timing()?,
                    });
                }
                None => eprintln!(
                    "cairn: {K3S_TOKEN_ENV} is not set: hetzner-k3s plans its cloud objects only, not k3s on its servers"
                ),
            }
            if public_key.is_none() {
                eprintln!(
                    "cairn: {} is not set: hetzner-k3s declares no SSH key on its servers",
                    crate::sims::SSH_IDENTITY_ENV
                );
            }
            let rotation = match &k3s {
                Some(k) => Some(Arc::new(rotation(&k.cluster, k.timing)?) as Arc<_>),
                None => None,
            };
            Ok(Loaded {
                stack: build_with_k3s(true, public_key.as_deref(), k3s.as_ref())?,
                providers,
                keep: Vec::new(),
                rotation,
            })
        }
    }
}
