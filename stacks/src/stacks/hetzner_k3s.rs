//! hetzner-k3s: the Hetzner Cloud k3s cluster as code. Half of it was made by hand; the
//! first plan adopts everything without replacing anything and adds only the missing
//! `staging` record.
//!
//! Three CAX11 servers on a private network, a load balancer forwarding 80/443 to the
//! workers with TCP health checks, a firewall opening the k3s API only to the network and
//! the CI runner, and DNS records that point at the load balancer's IPv4 by reference.

use std::sync::Arc;

use anyhow::Context;
use cairn_core::{Providers, Stack, StackBuilder};
use cairn_hetzner::client::{ClientConfig, Token};
use cairn_hetzner::{
    Algorithm, ApplyTo, Firewall, HetznerProvider, Labels, LbNetwork, LoadBalancer,
    LoadBalancerAttrs, Network, NetworkAttrs, RRSet, Record, RecordType, Rule, Server, ServerAttrs,
    ServerNetwork, Service, Target, Zone,
};

use super::{Loaded, StackDef, Target as Where};
use crate::sims::Hetzner;

/// The stack's definition.
pub const DEF: StackDef = StackDef {
    name: "hetzner-k3s",
    credentials: &["HCLOUD_TOKEN"],
    load: |target| Box::pin(load(target)),
};

/// The zone.
pub const ZONE: &str = "docfast.dev";
/// The CI runner allowed to reach the k3s API.
pub const CI_RUNNER: &str = "178.115.247.134/32";

/// Declares the stack. `with_staging: false` gives the world as it was made by hand.
pub fn build(with_staging: bool) -> anyhow::Result<Stack> {
    let mut s = StackBuilder::new("hetzner-k3s");
    let net = s.add(
        "k3s-net",
        Network::new("k3s-net", "10.0.0.0/16", "10.0.1.0/24"),
    );

    let mut servers = Vec::new();
    for (name, ip, role) in [
        ("k3s-mgr", "10.0.1.5", "server"),
        ("k3s-w1", "10.0.1.6", "agent"),
        ("k3s-w2", "10.0.1.7", "agent"),
    ] {
        let mut srv = Server::new(name, "cax11", "ubuntu-24.04", "nbg1");
        srv.labels.insert("k3s-role".into(), role.into());
        srv.networks = Some(vec![ServerNetwork {
            network: net.id().into(),
            ip: Some(ip.parse()?),
        }]);
        servers.push(s.add(name, srv));
    }

    let lb = s.add(
        "k3s-lb",
        LoadBalancer {
            name: "k3s-lb".into(),
            load_balancer_type: "lb11".into(),
            location: "nbg1".into(),
            algorithm: Algorithm::default(),
            labels: Labels::new(),
            private_net: vec![LbNetwork {
                network: net.id().into(),
                ip: Some("10.0.1.10".parse()?),
            }],
            // TCP health checks: 15 s interval, 10 s timeout, 3 retries.
            services: vec![Service::tcp(80, 15, 10, 3), Service::tcp(443, 15, 10, 3)],
            targets: vec![
                Target::private_server(servers[1].id()),
                Target::private_server(servers[2].id()),
            ],
        },
    );

    let mut from_network = Rule::tcp_in("6443", &["10.0.0.0/16"]);
    from_network.description = Some("k3s API from the private network".into());
    let mut from_ci = Rule::tcp_in("6443", &[CI_RUNNER]);
    from_ci.description = Some("k3s API from the CI runner".into());
    s.add(
        "coolify-fw",
        Firewall {
            name: "coolify-fw".into(),
            labels: Labels::new(),
            rules: vec![from_network, from_ci],
            apply_to: vec![ApplyTo::server(servers[0].id())],
        },
    );

    let zone = s.add("docfast", Zone::primary(ZONE));
    let apex = s.add("apex-a", RRSet::a(ZONE, "@", lb.ipv4()));
    s.depends_on(&apex, &zone);
    let mx = s.add(
        "apex-mx",
        RRSet {
            zone: ZONE.into(),
            name: "@".into(),
            kind: RecordType::MX,
            ttl: None,
            labels: Labels::new(),
            // The zone's mail is hosted by cloonar.com (the record as it is in the zone).
            records: vec![Record::text("10 mail.cloonar.com.")],
        },
    );
    s.depends_on(&mx, &zone);
    if with_staging {
        let staging = s.add("staging-a", RRSet::a(ZONE, "staging", lb.ipv4()));
        s.depends_on(&staging, &zone);
    }
    Ok(s.build()?)
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
            Ok(Loaded {
                stack: build(true)?,
                providers: Providers::new().with(Arc::new(provider)),
                keep: vec![Box::new(sim)],
            })
        }
        Where::Real => {
            let provider = HetznerProvider::from_env().context(
                "configuring the Hetzner Cloud client from HCLOUD_TOKEN / HCLOUD_ENDPOINT",
            )?;
            Ok(Loaded {
                stack: build(true)?,
                providers: Providers::new().with(Arc::new(provider)),
                keep: Vec::new(),
            })
        }
    }
}
