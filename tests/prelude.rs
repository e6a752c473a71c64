//! `use cairn::prelude::*` is the one import a stack's code needs: the kinds, their
//! builders and every provider's accessor traits (`srv.ipv4()`, `vm.vmid()`, `vip.ip()`).

use std::sync::Arc;

use cairn::hetzner::client::{ClientConfig, Token};
use cairn::hetzner::sim::{HetznerSim, SimConfig};

/// The stack, written with nothing but the prelude in scope.
mod stack {
    use cairn::prelude::*;

    /// A network, three servers, a load balancer over them, a firewall, a zone and one A
    /// record per server by reference; no `depends_on`, no string attribute path.
    pub fn three_servers() -> Stack {
        let mut s = StackBuilder::new("prelude");
        let net = s.add("net", Network::new("net", "10.0.0.0/16", "10.0.1.0/24"));
        let servers: Vec<Handle<Server>> = (1..=3u8)
            .map(|i| {
                let name = format!("web-{i}");
                s.add(
                    &name,
                    Server::new(&name, "cax11", "ubuntu-24.04", "fsn1")
                        .label("role", "web")
                        .network(&net, [10, 0, 1, 10 + i]),
                )
            })
            .collect();
        let lb = servers.iter().fold(
            LoadBalancer::new("lb", "lb11", "fsn1")
                .network(&net, [10, 0, 1, 2])
                .service(Service::tcp(443).check(HealthCheck::tcp(443).interval(10))),
            |lb, srv| lb.target(srv),
        );
        let lb = s.add("lb", lb);
        let fw = Firewall::new("fw").allow_tcp_in(6443, ["10.0.0.0/16"]);
        s.add("fw", servers.iter().fold(fw, |fw, srv| fw.apply_to(srv)));
        let zone = s.add("zone", Zone::new("example.com"));
        s.add("apex", RRSet::a(&zone, "@", lb.ipv4()));
        for (i, srv) in servers.iter().enumerate() {
            let name = format!("web-{}", i + 1);
            s.add(&name, RRSet::a(&zone, &name, srv.ipv4()));
        }
        s.build().expect("the stack builds")
    }

    /// Every provider's accessors are in scope too.
    pub fn other_providers_accessors(vm: &Handle<Vm>, vip: &Handle<VirtualIp>) -> [String; 2] {
        [vm.vmid().raw().to_string(), vip.ip().raw().to_string()]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_using_only_the_prelude_plans_against_the_simulator() {
    let stack = stack::three_servers();
    let sim = HetznerSim::start(SimConfig::default())
        .await
        .expect("simulator");
    let provider = cairn::hetzner::HetznerProvider::new(ClientConfig::new(
        &sim.endpoint,
        Token::new(&sim.token),
    ))
    .expect("provider");
    let providers = cairn::Providers::new().with(Arc::new(provider));
    let planned = cairn::plan(&stack, &providers).await.expect("plan");
    assert_eq!(
        planned.plan.summary_line(),
        "Plan: 11 to add, 0 to change, 0 to destroy."
    );
    assert_eq!(sim.counters().writes, 0);
}

#[test]
fn accessors_of_every_provider_come_with_the_prelude() {
    let mut s = cairn::StackBuilder::new("refs");
    let vm = s.add("vm", cairn::proxmox::Vm::cloned(205, "k8s-2", "pve", 9000));
    let vip = s.add(
        "vip",
        cairn::pfsense::VirtualIp::ipalias([10, 0, 20, 99].into(), 24, "lan", "k8s VIP"),
    );
    let [vmid, ip] = stack::other_providers_accessors(&vm, &vip);
    assert_eq!(vmid, "proxmox_vm.vm.vmid");
    assert_eq!(ip, "pfsense_virtual_ip.vip.address");
}
