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
use cairn_hetzner::prelude::*;

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
        ("k3s-mgr", [10, 0, 1, 5], "server"),
        ("k3s-w1", [10, 0, 1, 6], "agent"),
        ("k3s-w2", [10, 0, 1, 7], "agent"),
    ] {
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
        RRSet::new(&zone, "@", RecordType::MX).value("10 mail.docfast.dev."),
    );
    if with_staging {
        s.add("staging-a", RRSet::a(&zone, "staging", lb.ipv4()));
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
