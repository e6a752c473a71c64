//! k3s hosts: the hand-made Hetzner cluster comes up from its installs (Nodes Ready only
//! because their units run and joined), a node whose unit stops goes NotReady, and an agent
//! joining with a wrong token fails with k3s's own message. Needs root; runs in a
//! loopback-only namespace.

use std::time::Duration;

use cairn_core::net::AddrMap;
use cairn_node_sim::world::{K3S_VERSION, hetzner_k3s};

fn map(net: u8) -> AddrMap {
    format!("10.0.1.0/24=127.{net}.1.0/24").parse().unwrap()
}

#[test]
fn the_hand_made_cluster_comes_up_from_its_installs() {
    let w = hetzner_k3s(map(221)).expect("world");
    assert!(
        w.wait_ready(Duration::from_secs(30)),
        "{:?}",
        w.sim.nodes(w.cluster)
    );
    let nodes = w.sim.nodes(w.cluster);
    let names: Vec<_> = nodes
        .iter()
        .map(|n| (n.name.as_str(), n.control_plane))
        .collect();
    assert_eq!(
        names,
        [("k3s-mgr", true), ("k3s-w1", false), ("k3s-w2", false)]
    );
    let mgr = w.sim.host("k3s-mgr").unwrap();
    let unit = std::fs::read_to_string(mgr.etc_systemd_system().join("k3s.service")).unwrap();
    assert!(
        unit.contains("\t'--flannel-iface' \\\n\t'enp7s0' \\\n"),
        "{unit}"
    );
    let env = mgr.etc_systemd_system().join("k3s.service.env");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !unit.contains(&w.token),
        "the token is in the env file, not the unit"
    );
    assert!(mgr.etc_rancher().join("k3s/k3s.yaml").exists());
    assert_eq!(w.sim.k3s_starts("k3s-w1"), 1);
    assert!(K3S_VERSION.starts_with("v1.34"));
}

#[test]
fn an_agent_with_a_wrong_token_fails_as_k3s_does_and_never_registers() {
    let mut w = hetzner_k3s(map(222)).expect("world");
    assert!(w.wait_ready(Duration::from_secs(30)));
    w.sim
        .start_k3s_host("k3s-w3", "10.0.1.8".parse().unwrap())
        .unwrap();
    let err = w
        .sim
        .k3s_install(
            "k3s-w3",
            &[
                ("INSTALL_K3S_VERSION", K3S_VERSION),
                ("K3S_URL", "https://10.0.1.5:6443"),
                ("K3S_TOKEN", "not-the-token"),
            ],
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Job for k3s-agent.service failed")
            && err.contains(
                "failed to get CA certs: https://10.0.1.5:6443/cacerts: 401 Unauthorized"
            ),
        "{err}"
    );
    assert!(!err.contains("not-the-token"));
    assert!(w.sim.node(w.cluster, "k3s-w3").is_none());
}
