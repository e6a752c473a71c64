//! The stack: a private network, three servers on it, a load balancer over them, a firewall
//! that opens HTTPS to the load balancer's network only, a zone, and one A record per server.

use std::net::Ipv4Addr;

use cairn::hetzner::{
    Algorithm, ApplyTo, Firewall, Labels, LbNetwork, LoadBalancer, Network, NetworkAttrs, RRSet,
    Rule, Server, ServerAttrs, ServerNetwork, Service, Target, Zone,
};
use cairn::{BuildError, Stack, StackBuilder};

/// The zone the records live in.
pub const ZONE: &str = "three-phoenix.example";

/// Declares the stack.
pub fn build() -> Result<Stack, BuildError> {
    let mut s = StackBuilder::new("three-phoenix");
    let net = s.add(
        "net",
        Network::new("phoenix-net", "10.0.0.0/16", "10.0.1.0/24"),
    );
    let zone = s.add("zone", Zone::primary(ZONE));

    let mut servers = Vec::new();
    for i in 1..=3u8 {
        let name = format!("phoenix-{i}");
        let mut srv = Server::new(&name, "cax11", "ubuntu-24.04", "nbg1");
        srv.labels.insert("role".into(), "web".into());
        srv.networks = Some(vec![ServerNetwork {
            network: net.id().into(),
            ip: Some(Ipv4Addr::new(10, 0, 1, 10 + i)),
        }]);
        let srv = s.add(&name, srv);
        let a = s.add(&format!("{name}-a"), RRSet::a(ZONE, &name, srv.ipv4()));
        s.depends_on(&a, &zone);
        servers.push(srv);
    }

    s.add(
        "lb",
        LoadBalancer {
            name: "phoenix-lb".into(),
            load_balancer_type: "lb11".into(),
            location: "nbg1".into(),
            algorithm: Algorithm::default(),
            labels: Labels::new(),
            private_net: vec![LbNetwork {
                network: net.id().into(),
                ip: Some(Ipv4Addr::new(10, 0, 1, 2)),
            }],
            services: vec![Service::tcp(443, 15, 10, 3)],
            targets: servers
                .iter()
                .map(|s| Target::private_server(s.id()))
                .collect(),
        },
    );

    s.add(
        "fw",
        Firewall {
            name: "phoenix-fw".into(),
            labels: Labels::new(),
            rules: vec![Rule::tcp_in("443", &["10.0.0.0/16"])],
            apply_to: servers.iter().map(|s| ApplyTo::server(s.id())).collect(),
        },
    );
    s.build()
}
