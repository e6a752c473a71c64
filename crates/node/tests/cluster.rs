//! Kubernetes API access through simulated hosts: the cluster-admin credentials are read
//! over SSH (real sshd) from the declared control-plane host, once, and never shown; a
//! credentials path that is not a file and a credentials host that is not declared are
//! errors naming the cluster. Runs inside the loopback-only namespace of `scripts/test.sh`.

use std::net::Ipv4Addr;
use std::sync::Arc;

use base64::Engine;
use cairn_core::net::Dialer;
use cairn_core::tls::SelfSignedCa;
use cairn_node::*;
use cairn_node_sim::NodeSim;

fn dialer() -> Dialer {
    Dialer::new("10.0.0.0/8=127.0.0.0/8".parse().unwrap(), true)
}

fn admin_conf(ca: &SelfSignedCa) -> String {
    let admin = ca.issue(&["kubernetes-admin"]);
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://10.0.20.100:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\nkind: Config\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b(&ca.cert_pem),
        b(&admin.cert_pem),
        b(&admin.key_pem)
    )
}

/// One simulated master holding `admin.conf`, and the transport that reaches it.
fn master(ip: [u8; 4]) -> (NodeSim, Arc<Ssh>, String) {
    let mut sim = NodeSim::new(dialer().map().clone()).expect("node simulator");
    let ca = SelfSignedCa::generate("kubernetes");
    let conf = admin_conf(&ca);
    sim.start_host("k8s-master-1", Ipv4Addr::from(ip))
        .expect("sshd");
    let h = sim.host("k8s-master-1").unwrap();
    h.write_etc_kubernetes("admin.conf", conf.as_bytes())
        .unwrap();
    h.write_etc_kubernetes("not-a-file/x", b"").unwrap();
    let host = Host::new(
        h.name(),
        h.declared().to_string(),
        "root",
        HostKeyTrust::KnownHosts(sim.known_hosts()),
    )
    .port(h.port());
    let ssh = Arc::new(Ssh::new(SshOptions::new(sim.client_key()), dialer(), vec![host]).unwrap());
    let key = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-key-data: "))
        .unwrap()
        .to_string();
    (sim, ssh, key)
}

#[tokio::test]
async fn admin_credentials_are_read_over_ssh_once_and_never_shown() {
    let (_sim, ssh, key_b64) = master([10, 0, 31, 100]);
    let cluster = Cluster::new(
        "homelab",
        "10.0.31.100:6443",
        "k8s-master-1",
        ssh.clone(),
        dialer(),
    );
    let creds = cluster.credentials().await.expect("credentials");
    let again = cluster.credentials().await.expect("credentials");
    assert!(Arc::ptr_eq(&creds, &again));
    assert_eq!(ssh.stats().commands, 1, "read once, then held in memory");
    assert!(
        String::from_utf8_lossy(creds.ca_pem()).contains("BEGIN CERTIFICATE"),
        "the cluster CA came from certificate-authority-data"
    );
    let key = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&key_b64)
            .unwrap(),
    )
    .unwrap();
    let key_line = key.lines().nth(1).unwrap();
    for shown in [format!("{creds:?}"), format!("{cluster:?}")] {
        assert!(
            !shown.contains(key_line) && !shown.contains(&key_b64),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn a_credentials_path_that_is_not_a_file_is_an_error_naming_the_cluster() {
    let (_sim, ssh, _) = master([10, 0, 32, 100]);
    let cluster = Cluster::new("homelab", "10.0.32.100:6443", "k8s-master-1", ssh, dialer())
        .admin_conf("/etc/kubernetes/not-a-file");
    let e = cluster.credentials().await.unwrap_err().to_string();
    assert!(
        e.contains("cluster[homelab]") && e.contains("not a regular file"),
        "{e}"
    );
    let e = cluster.node_ready_error().await;
    assert!(e.contains("cluster[homelab]"), "a gate reports it too: {e}");
}

#[tokio::test]
async fn a_credentials_host_that_is_not_declared_is_named() {
    let (_sim, ssh, _) = master([10, 0, 33, 100]);
    let cluster = Cluster::new("homelab", "10.0.33.100:6443", "k8s-master-9", ssh, dialer());
    let e = cluster.credentials().await.unwrap_err().to_string();
    assert_eq!(e, "host \"k8s-master-9\" is not declared");
}

/// What the node-Ready gate says when the cluster cannot be reached.
trait GateError {
    async fn node_ready_error(self) -> String;
}

impl GateError for Cluster {
    async fn node_ready_error(self) -> String {
        use cairn_core::gate::Probe;
        Arc::new(self)
            .node_ready("k8s-master-1")
            .check()
            .await
            .unwrap_err()
    }
}
