//! The stack: a private network, three servers on it, a load balancer over them, a firewall
//! that opens HTTPS to the load balancer's network only, a zone, and one A record per server.

use cairn::prelude::*;

/// The zone the records live in.
pub const ZONE: &str = "three-phoenix.example";

/// Declares the stack.
pub fn build() -> Result<Stack, BuildError> {
    let mut s = StackBuilder::new("three-phoenix");
    let net = s.add(
        "net",
        Network::new("phoenix-net", "10.0.0.0/16", "10.0.1.0/24"),
    );
    let zone = s.add("zone", Zone::new(ZONE));
    let mut lb = LoadBalancer::new("phoenix-lb", "lb11", "nbg1")
        .network(&net, [10, 0, 1, 2])
        .service(Service::tcp(443));
    let mut fw = Firewall::new("phoenix-fw").allow_tcp_in(443, ["10.0.0.0/16"]);

    for i in 1..=3u8 {
        let name = format!("phoenix-{i}");
        let srv = s.add(
            &name,
            Server::new(&name, "cax11", "ubuntu-24.04", "nbg1")
                .label("role", "web")
                .network(&net, [10, 0, 1, 10 + i]),
        );
        s.add(&format!("{name}-a"), RRSet::a(&zone, &name, srv.ipv4()));
        lb = lb.target(&srv);
        fw = fw.apply_to(&srv);
    }
    s.add("lb", lb);
    s.add("fw", fw);
    s.build()
}
