//! hetzner-k3s: the Hetzner Cloud k3s cluster as code. Half of it was made by hand; the
//! first plan adopts everything without replacing anything and adds only the missing
//! `staging` record.
//!
//! Three CAX11 servers on a private network, a load balancer forwarding 80/443 to the
//! workers with TCP health checks, a firewall opening the k3s API only to the network and
//! the CI runner, and DNS records that point at the load balancer's IPv4 by reference.
//!
//! Down to k3s (when the join token is known: `K3S_TOKEN`, or the simulated world's): the
//! hand-made cluster as it runs — `k3s-mgr` a single server tainted against workloads,
//! `k3s-w1`/`k3s-w2` agents joined to it, k3s [`K3S_VERSION`], flannel on the private
//! interface [`FLANNEL_IFACE`], each node's IP the Hetzner server's private IP by reference —
//! adopted as found; its hosts are reached over SSH at their private addresses.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cairn_core::net::Dialer;
use cairn_core::{Providers, Stack, StackBuilder};
use cairn_hetzner::client::{ClientConfig, Token};
use cairn_hetzner::prelude::*;
use cairn_node::kinds::k3s::K3S_YAML;
use cairn_node::provider::{NodeContext, node_provider_for};
use cairn_node::{Cluster, Host, HostKeyTrust, K3sAgent, K3sServer, NodeProvider, Ssh, SshOptions};

use super::{Loaded, StackDef};
use crate::sims::Hetzner;
use cairn::cli::Target as Where;

/// The stack's definition: Hetzner Cloud with `HCLOUD_TOKEN` (and k3s on its servers with
/// `K3S_TOKEN`), else the Hetzner simulator seeded with the "before" world plus the node
/// simulator's hand-made k3s cluster.
pub fn def() -> StackDef {
    StackDef::custom("hetzner-k3s", &["HCLOUD_TOKEN"], load)
}

/// The zone.
pub const ZONE: &str = "docfast.dev";
/// The CI runner allowed to reach the k3s API.
pub const CI_RUNNER: &str = "178.115.247.134/32";

/// The k3s release the cluster runs.
pub const K3S_VERSION: &str = "v1.34.4+k3s1";
/// The private interface flannel uses.
pub const FLANNEL_IFACE: &str = "enp7s0";
/// The taint that keeps workloads off the server.
pub const SERVER_TAINT: &str = "node-role.kubernetes.io/control-plane:NoSchedule";
/// The cluster's name in the node provider.
pub const CLUSTER: &str = "hetzner-k3s";
/// The servers: name, private IP, k3s role.
pub const SERVERS: [(&str, &str, &str); 3] = [
    ("k3s-mgr", "10.0.1.5", "server"),
    ("k3s-w1", "10.0.1.6", "agent"),
    ("k3s-w2", "10.0.1.7", "agent"),
];
/// Environment variable holding the cluster's join token (sensitive; never printed).
pub const K3S_TOKEN_ENV: &str = "K3S_TOKEN";

/// Declares the stack's cloud part. `with_staging: false` gives the world as it was made by
/// hand.
pub fn build(with_staging: bool) -> anyhow::Result<Stack> {
    build_with_k3s(with_staging, None)
}

/// Declares the stack, with the k3s part when the join `token` is given.
pub fn build_with_k3s(with_staging: bool, token: Option<&str>) -> anyhow::Result<Stack> {
    let mut s = StackBuilder::new("hetzner-k3s");
    let net = s.add(
        "k3s-net",
        Network::new("k3s-net", "10.0.0.0/16", "10.0.1.0/24"),
    );

    let mut servers = Vec::new();
    for (name, ip, role) in SERVERS {
        let ip: std::net::Ipv4Addr = ip.parse()?;
        let srv = Server::new(name, "cax11", "ubuntu-24.04", "nbg1")
            .label("k3s-role", role)
            .network(&net, ip);
        servers.push(s.add(name, srv));
    }

    // TCP services with Hetzner's default checks: 15 s interval, 10 s timeout, 3 retries.
    // The targets are reached over the private network the load balancer is attached to.
    let lb = s.add(
        "k3s-lb",
        LoadBalancer::new("k3s-lb", "lb11", "nbg1")
            .network(&net, [10, 0, 1, 10])
            .service(Service::tcp(80))
            .service(Service::tcp(443))
            .target(&servers[1])
            .target(&servers[2]),
    );

    s.add(
        "coolify-fw",
        Firewall::new("coolify-fw")
            .rule(
                Rule::tcp_in("6443", &["10.0.0.0/16"]).describe("k3s API from the private network"),
            )
            .rule(Rule::tcp_in("6443", &[CI_RUNNER]).describe("k3s API from the CI runner"))
            .apply_to(&servers[0]),
    );

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
    if let Some(token) = token {
        let url = format!("https://{}:6443", SERVERS[0].1);
        for ((name, _, role), srv) in SERVERS.iter().zip(&servers) {
            if *role == "server" {
                let mut k = K3sServer::new(*name, K3S_VERSION, token);
                k.flannel_iface = Some(FLANNEL_IFACE.into());
                k.node_taints = vec![SERVER_TAINT.into()];
                k.node_ip = Some(srv.private_ipv4().into());
                s.add(name, k);
            } else {
                let mut k = K3sAgent::new(*name, K3S_VERSION, url.clone(), token);
                k.flannel_iface = Some(FLANNEL_IFACE.into());
                k.node_ip = Some(srv.private_ipv4().into());
                s.add(name, k);
            }
        }
    }
    Ok(s.build()?)
}

/// The node provider for the cluster's hosts, reached at their private addresses through
/// `dialer` as `user` with `identity`, host keys checked against `known_hosts`; the cluster
/// API at the server's private address with k3s's admin kubeconfig read from it.
pub fn node_provider(
    dialer: &Dialer,
    identity: PathBuf,
    known_hosts: PathBuf,
    user: &str,
) -> anyhow::Result<NodeProvider> {
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
    let ssh = Arc::new(Ssh::new(opts, dialer.clone(), hosts)?);
    let mut cluster = Cluster::new(
        CLUSTER,
        format!("{}:6443", SERVERS[0].1),
        SERVERS[0].0,
        ssh.clone(),
        dialer.clone(),
    )
    .admin_conf(K3S_YAML);
    for (name, _, _) in SERVERS {
        cluster = cluster.node(name, name);
    }
    Ok(node_provider_for(
        NodeContext::new(ssh).cluster(Arc::new(cluster)),
    ))
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
            let sim = Hetzner::start().await?;
            let provider = provider_for(&sim.handle.endpoint, &sim.handle.token)?;
            let map = std::env::var(cairn_core::net::ADDR_MAP_ENV)
                .unwrap_or_else(|_| crate::sims::hetzner_k3s_addr_map());
            let world = crate::sims::hetzner_k3s_nodes(&map)?;
            let dialer = Dialer::new(map.parse()?, true).with_ports(world.sim.port_map());
            let nodes = node_provider(
                &dialer,
                world.sim.client_key(),
                world.sim.known_hosts(),
                "root",
            )?;
            Ok(Loaded {
                stack: build_with_k3s(true, Some(&world.token))?,
                providers: Providers::new()
                    .with(Arc::new(provider))
                    .with(Arc::new(nodes)),
                keep: vec![Box::new(sim), Box::new(world)],
                rotation: None,
            })
        }
        Where::Real => {
            let provider = HetznerProvider::from_env().context(
                "configuring the Hetzner Cloud client from HCLOUD_TOKEN / HCLOUD_ENDPOINT",
            )?;
            let mut providers = Providers::new().with(Arc::new(provider));
            // The k3s part needs the join token and SSH access; without the token the
            // stack stays at the cloud objects, and says so.
            let token = std::env::var(K3S_TOKEN_ENV).ok().filter(|t| !t.is_empty());
            match &token {
                Some(_) => {
                    let var = |name: &str| -> anyhow::Result<PathBuf> {
                        std::env::var_os(name).map(PathBuf::from).with_context(|| {
                            format!("{name} is not set: the k3s part of hetzner-k3s logs in to its hosts over SSH")
                        })
                    };
                    let dialer = Dialer::from_env()?;
                    let nodes = node_provider(
                        &dialer,
                        var(crate::sims::SSH_IDENTITY_ENV)?,
                        var(crate::sims::SSH_KNOWN_HOSTS_ENV)?,
                        &std::env::var("HETZNER_SSH_USER").unwrap_or_else(|_| "root".into()),
                    )?;
                    providers = providers.with(Arc::new(nodes));
                }
                None => eprintln!(
                    "cairn: {K3S_TOKEN_ENV} is not set: hetzner-k3s plans its cloud objects only, not k3s on its servers"
                ),
            }
            Ok(Loaded {
                stack: build_with_k3s(true, token.as_deref())?,
                providers,
                keep: Vec::new(),
                rotation: None,
            })
        }
    }
}
