//! Simulated hosts declared as on real hardware — `10.0.20.110`, port 22 — reached through
//! the dialer's port map that the node simulator publishes (its sshds listen on free ports).

use std::net::Ipv4Addr;

use cairn_core::net::Dialer;
use cairn_node::*;
use cairn_node_sim::NodeSim;

#[tokio::test]
async fn a_host_declared_on_port_22_is_reached_through_the_simulators_port_map() {
    let map: cairn_core::net::AddrMap = "10.0.20.0/24=127.211.20.0/24".parse().unwrap();
    let mut sim = NodeSim::new(map.clone()).expect("node simulator");
    let h = sim
        .start_host("k8s-worker-1", Ipv4Addr::new(10, 0, 20, 110))
        .expect("sshd");
    assert_ne!(h.port(), 22, "the simulator listens on a free port");
    let host = Host::new(
        "k8s-worker-1",
        "10.0.20.110",
        "root",
        HostKeyTrust::KnownHosts(sim.known_hosts()),
    );
    assert_eq!(host.port, 22);
    let dialer = Dialer::new(map.clone(), true).with_ports(sim.port_map());
    let ssh = Ssh::new(
        SshOptions::new(sim.client_key()),
        dialer,
        vec![host.clone()],
    )
    .unwrap();
    let out = ssh
        .run(
            "k8s-worker-1",
            &Cmd::root("kubeadm").args(["version", "-o", "short"]),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v1.34.1\n");
    // Without the port map, port 22 of the mapped address has no sshd of this simulator.
    let ssh = Ssh::new(
        SshOptions::new(sim.client_key()),
        Dialer::new(map, true),
        vec![host],
    )
    .unwrap();
    assert!(
        ssh.run("k8s-worker-1", &Cmd::root("true")).await.is_err(),
        "nothing answers at the declared port itself"
    );
}
