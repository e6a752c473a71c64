//! The node provider against simulated hosts — real sshd processes on mapped loopback
//! addresses: observe, diff, apply and drift of a worker's kubelet.conf; the apiserver
//! certificate's SANs; host keys that do not match; paths that are not files; sudo that
//! wants a password. Runs inside the loopback-only namespace of `scripts/test.sh`.

use std::net::Ipv4Addr;
use std::sync::Arc;

use cairn_core::apply::NoProgress;
use cairn_core::net::Dialer;
use cairn_core::{Action, ApplyOptions, Planned, Providers, StackBuilder, apply, plan};
use cairn_node::*;
use cairn_node_sim::{NodeSim, SimHost};

const OLD: &str = "https://10.0.20.100:6443";
const VIP: &str = "https://10.0.20.99:6443";

/// A worker's kubelet.conf as kubeadm writes it.
const KUBELET_CONF: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
    server: https://10.0.20.100:6443
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
kind: Config
preferences: {}
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
";

fn dialer() -> Dialer {
    Dialer::new("10.0.0.0/8=127.0.0.0/8".parse().unwrap(), true)
}

/// A simulator with one host per `(name, declared address)`, each with a worker's
/// kubelet.conf.
fn sim(hosts: &[(&str, [u8; 4])]) -> NodeSim {
    let mut sim = NodeSim::new(dialer().map().clone()).expect("node simulator");
    for (name, ip) in hosts {
        let h = sim.start_host(name, Ipv4Addr::from(*ip)).expect("sshd");
        h.write_etc_kubernetes("kubelet.conf", KUBELET_CONF.as_bytes())
            .unwrap();
    }
    sim
}

/// How the provider declares a simulated host (trusting the simulator's known-hosts file).
fn declared(sim: &NodeSim, h: &SimHost) -> Host {
    Host::new(
        h.name(),
        h.declared().to_string(),
        "root",
        HostKeyTrust::KnownHosts(sim.known_hosts()),
    )
    .port(h.port())
}

fn provider(sim: &NodeSim, hosts: Vec<Host>) -> Arc<NodeProvider> {
    let ssh = Ssh::new(SshOptions::new(sim.client_key()), dialer(), hosts).unwrap();
    Arc::new(node_provider(ssh))
}

fn all_hosts(sim: &NodeSim) -> Arc<NodeProvider> {
    provider(sim, sim.hosts().iter().map(|h| declared(sim, h)).collect())
}

fn stack(resources: Vec<(&str, KubeconfigServer)>) -> cairn_core::Stack {
    let mut s = StackBuilder::new("homelab-ha");
    for (name, r) in resources {
        s.add(name, r);
    }
    s.build().unwrap()
}

async fn plan_of(stack: &cairn_core::Stack, p: &Arc<NodeProvider>) -> Planned {
    let providers = Providers::new().with(p.clone());
    plan(stack, &providers).await.expect("plan")
}

fn read(h: &SimHost, rel: &str) -> String {
    std::fs::read_to_string(h.etc_kubernetes().join(rel)).unwrap()
}

#[tokio::test]
async fn observing_a_workers_kubelet_conf_takes_one_connection_and_one_command() {
    let sim = sim(&[("k8s-worker-1", [10, 0, 20, 110])]);
    let p = all_hosts(&sim);
    let keys = vec!["k8s-worker-1:/etc/kubernetes/kubelet.conf".to_string()];
    let seen = cairn_core::Provider::observe(
        p.as_ref(),
        cairn_core::ObserveRequest {
            kind: "node_kubeconfig_server",
            keys: &keys,
            stack: "homelab-ha",
        },
    )
    .await
    .unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].value["server"], OLD);
    assert_eq!(seen[0].value["cluster"], "default-cluster");
    assert_eq!(seen[0].marker, None, "never managed yet");
    assert_eq!(
        p.ctx().ssh().stats(),
        SshStats {
            connections: 1,
            commands: 1
        }
    );
}

#[tokio::test]
async fn moving_a_worker_to_the_vip_edits_only_server_keeps_a_backup_restarts_kubelet_once_and_converges()
 {
    let sim = sim(&[("k8s-worker-1", [10, 0, 20, 110])]);
    let h = sim.host("k8s-worker-1").unwrap();
    let p = all_hosts(&sim);
    let s = stack(vec![(
        "worker-1-kubelet",
        KubeconfigServer::kubelet("k8s-worker-1", VIP),
    )]);

    // The diff shows server moving, and the steps the apply will take.
    let planned = plan_of(&s, &p).await;
    let c = &planned.plan.resource_changes[0];
    assert_eq!(c.action(), Action::Update);
    let server = c.changes.iter().find(|f| f.path == "server").unwrap();
    assert_eq!(server.before.as_ref().unwrap(), OLD);
    assert_eq!(server.after.as_ref().unwrap(), VIP);
    assert_eq!(
        c.steps,
        vec![
            format!(
                "set server in /etc/kubernetes/kubelet.conf on k8s-worker-1: {OLD} -> {VIP} (atomic, with backup)"
            ),
            "systemctl restart kubelet on k8s-worker-1".to_string(),
        ]
    );
    assert_eq!(h.restarts("kubelet"), 0, "planning touches nothing");

    let providers = Providers::new().with(p.clone());
    let report = apply(
        &s,
        &providers,
        &planned,
        ApplyOptions::default(),
        Arc::new(NoProgress),
    )
    .await;
    assert!(report.success(), "{report:?}");

    // Only the server field changed; the backup holds the original; kubelet restarted once.
    assert_eq!(read(h, "kubelet.conf"), KUBELET_CONF.replace(OLD, VIP));
    let backups: Vec<_> = std::fs::read_dir(h.etc_kubernetes())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("kubelet.conf.cairn-backup-")
        })
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(
        std::fs::read_to_string(backups[0].path()).unwrap(),
        KUBELET_CONF
    );
    assert_eq!(h.restarts("kubelet"), 1);
    assert_eq!(h.systemctl_log(), vec!["restart kubelet"]);

    // A second plan is empty.
    let again = plan_of(&s, &p).await;
    assert!(
        !again.plan.has_changes(),
        "{:?}",
        again.plan.resource_changes
    );

    // Edited back by hand: reported as drift, changed outside cairn.
    h.write_etc_kubernetes("kubelet.conf", KUBELET_CONF.as_bytes())
        .unwrap();
    let drift = plan_of(&s, &p).await;
    let c = &drift.plan.resource_changes[0];
    assert_eq!(c.action(), Action::Update);
    assert_eq!(c.changes[0].path, "server");
    assert_eq!(
        c.action_reason.as_deref(),
        Some("changed outside cairn since the last apply")
    );
    assert_eq!(h.restarts("kubelet"), 1, "drift detection touches nothing");
}

#[tokio::test]
async fn a_host_whose_key_does_not_match_is_refused_before_any_command_runs() {
    let sim = sim(&[
        ("k8s-worker-1", [10, 0, 20, 110]),
        ("k8s-worker-2", [10, 0, 20, 111]),
    ]);
    let (w1, w2) = (
        sim.host("k8s-worker-1").unwrap(),
        sim.host("k8s-worker-2").unwrap(),
    );

    // A declared fingerprint that is another host's.
    let mut pinned = declared(&sim, w1);
    pinned.trust = HostKeyTrust::Fingerprint(w2.fingerprint().to_string());
    // A known-hosts file that holds another host's key under this host's address.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("known_hosts");
    let line = std::fs::read_to_string(sim.known_hosts())
        .unwrap()
        .lines()
        .find(|l| l.starts_with("[10.0.20.111]"))
        .unwrap()
        .replacen(
            &format!("[10.0.20.111]:{}", w2.port()),
            &format!("[10.0.20.110]:{}", w1.port()),
            1,
        );
    std::fs::write(&wrong, format!("{line}\n")).unwrap();
    let mut listed = declared(&sim, w1);
    listed.trust = HostKeyTrust::KnownHosts(wrong);

    for host in [pinned, listed] {
        let p = provider(&sim, vec![host]);
        let s = stack(vec![("w1", KubeconfigServer::kubelet("k8s-worker-1", VIP))]);
        let e = plan(&s, &Providers::new().with(p.clone()))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("host k8s-worker-1"), "{e}");
        assert!(e.contains("host key verification failed"), "{e}");
        assert!(e.contains(&format!("expected {}", w2.fingerprint())), "{e}");
        assert!(
            e.contains(&format!("presented {}", w1.fingerprint())),
            "{e}"
        );
        assert_eq!(p.ctx().ssh().stats().commands, 0);
    }
    assert_eq!(w1.logins(), 0, "no session was ever opened on the host");
    assert_eq!(read(w1, "kubelet.conf"), KUBELET_CONF);
}

#[tokio::test]
async fn a_kubeconfig_path_that_is_a_directory_is_an_error_naming_the_resource() {
    let sim = sim(&[("k8s-worker-1", [10, 0, 20, 110])]);
    let h = sim.host("k8s-worker-1").unwrap();
    std::fs::create_dir_all(h.etc_kubernetes().join("admin.conf")).unwrap();
    let p = all_hosts(&sim);
    let s = stack(vec![(
        "w1",
        KubeconfigServer {
            host: "k8s-worker-1".into(),
            path: "/etc/kubernetes/admin.conf".into(),
            server: VIP.into(),
        },
    )]);
    let e = plan(&s, &Providers::new().with(p))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("node_kubeconfig_server[k8s-worker-1:/etc/kubernetes/admin.conf]: /etc/kubernetes/admin.conf on host k8s-worker-1 is not a regular file (it is a directory)"),
        "{e}"
    );
}

#[tokio::test]
async fn a_resource_on_an_undeclared_host_is_refused_at_plan_time() {
    let sim = sim(&[("k8s-worker-1", [10, 0, 20, 110])]);
    let p = all_hosts(&sim);
    let s = stack(vec![("w9", KubeconfigServer::kubelet("k8s-worker-9", VIP))]);
    let e = plan(&s, &Providers::new().with(p.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("host \"k8s-worker-9\" is not declared"), "{e}");
    assert!(e.contains("w9"), "{e}");
    assert_eq!(p.ctx().ssh().stats().connections, 0);
}

#[tokio::test]
async fn sudo_never_waits_for_a_password() {
    let sim = sim(&[("k8s-worker-1", [10, 0, 20, 110])]);
    let h = sim.host("k8s-worker-1").unwrap();
    let mut host = declared(&sim, h);
    host.sudo = true;
    let p = provider(&sim, vec![host]);
    let ok = p
        .ctx()
        .ssh()
        .run(
            "k8s-worker-1",
            &Cmd::root("systemctl").args(["is-active", "kubelet"]),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "active");

    h.require_sudo_password(true).unwrap();
    let t = std::time::Instant::now();
    let e = p
        .ctx()
        .ssh()
        .run(
            "k8s-worker-1",
            &Cmd::root("systemctl").args(["restart", "kubelet"]),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("sudo: a password is required"), "{e}");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(h.restarts("kubelet"), 0);
}

#[tokio::test]
async fn arguments_reach_the_host_as_arguments_not_shell_text() {
    let sim = sim(&[("k8s-worker-1", [10, 0, 20, 110])]);
    let h = sim.host("k8s-worker-1").unwrap();
    let p = all_hosts(&sim);
    let evil = "kubelet; touch /etc/kubernetes/pwned $(touch /etc/kubernetes/pwned2)";
    let e = p
        .ctx()
        .ssh()
        .run(
            "k8s-worker-1",
            &Cmd::root("systemctl").args(["restart", evil]),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("exited with status 5"), "{e}");
    assert!(!h.etc_kubernetes().join("pwned").exists());
    assert!(!h.etc_kubernetes().join("pwned2").exists());
    let out = p
        .ctx()
        .ssh()
        .run(
            "k8s-worker-1",
            &Cmd::new("printf").args(["%s|", "a b", "'c'", "$HOME"]),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|'c'|$HOME|");
}

#[tokio::test]
async fn simulated_hosts_fail_like_real_ones_on_what_they_do_not_model() {
    let sim = sim(&[("k8s-worker-1", [10, 0, 20, 110])]);
    let p = all_hosts(&sim);
    let e = p
        .ctx()
        .ssh()
        .run("k8s-worker-1", &Cmd::root("kubeadm").args(["reset", "-f"]))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown command \"reset\""), "{e}");
    let e = p
        .ctx()
        .ssh()
        .run(
            "k8s-worker-1",
            &Cmd::root("systemctl").args(["restart", "nginx"]),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("Unit nginx.service not found"), "{e}");
}

#[tokio::test]
async fn the_apiserver_certificate_sans_are_read_over_ssh() {
    let sim = sim(&[("k8s-master", [10, 0, 20, 100])]);
    let h = sim.host("k8s-master").unwrap();
    let ca = cairn_core::tls::SelfSignedCa::generate("kubernetes");
    let cert = ca.issue(&[
        "k8s-master",
        "kubernetes.default",
        "10.96.0.1",
        "10.0.20.100",
    ]);
    h.write_etc_kubernetes("pki/apiserver.crt", cert.cert_pem.as_bytes())
        .unwrap();
    let p = all_hosts(&sim);
    let mut s = StackBuilder::new("homelab-ha");
    s.add("master-cert", ApiserverCertificate::on("k8s-master"));
    let s = s.build().unwrap();
    let planned = plan_of(&s, &p).await;
    let c = &planned.plan.resource_changes[0];
    assert_eq!(c.action(), Action::Read);
    let seen = planned.work[0].observed.as_ref().unwrap();
    let got: ApiserverCertificateObserved = serde_json::from_value(seen.value.clone()).unwrap();
    assert!(
        got.covers("10.0.20.100") && got.covers("kubernetes.default"),
        "{got:?}"
    );
    assert!(
        !got.covers("10.0.20.99"),
        "the VIP is not in it before phase 0"
    );
}

fn provider_with(sim: &NodeSim, f: impl FnOnce(&mut SshOptions)) -> Arc<NodeProvider> {
    let mut opts = SshOptions::new(sim.client_key());
    f(&mut opts);
    let hosts = sim.hosts().iter().map(|h| declared(sim, h)).collect();
    Arc::new(node_provider(Ssh::new(opts, dialer(), hosts).unwrap()))
}

#[tokio::test]
async fn more_commands_than_sshd_allows_sessions_wait_their_turn_on_one_connection() {
    let sim = sim(&[("k8s-worker-1", [10, 0, 20, 110])]);
    let p = provider_with(&sim, |o| o.max_sessions = 10);
    let ssh = p.ctx().ssh();
    let t = std::time::Instant::now();
    let sleep = Cmd::new("sleep").arg("0.3");
    let runs = (0..25).map(|_| ssh.run("k8s-worker-1", &sleep));
    for r in futures::future::join_all(runs).await {
        r.expect("every command gets a session");
    }
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(900),
        "25 commands at most 10 at a time take three rounds: {:?}",
        t.elapsed()
    );
    assert_eq!(
        ssh.stats(),
        SshStats {
            connections: 1,
            commands: 25
        }
    );
}

#[tokio::test]
async fn a_command_that_hangs_is_cut_off_by_the_command_timeout() {
    let sim = sim(&[("k8s-worker-1", [10, 0, 20, 110])]);
    let p = provider_with(&sim, |o| {
        o.command_timeout = std::time::Duration::from_secs(1)
    });
    let t = std::time::Instant::now();
    let e = p
        .ctx()
        .ssh()
        .run("k8s-worker-1", &Cmd::new("sleep").arg("30"))
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::Timeout { .. }), "{e}");
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn a_host_that_goes_away_is_a_connection_failure_and_is_redialled() {
    let mut sim = sim(&[("k8s-worker-1", [10, 0, 20, 110])]);
    let p = all_hosts(&sim);
    let ssh = p.ctx().ssh();
    ssh.run("k8s-worker-1", &Cmd::new("true")).await.unwrap();
    sim.stop_host("k8s-worker-1");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let e = ssh
        .run("k8s-worker-1", &Cmd::new("true"))
        .await
        .unwrap_err();
    assert!(e.is_connection(), "{e}");
    // The broken master is forgotten: the next command dials again (and is refused).
    let e = ssh
        .run("k8s-worker-1", &Cmd::new("true"))
        .await
        .unwrap_err();
    assert!(matches!(e, NodeError::Connect { .. }), "{e}");
    assert!(e.to_string().contains("k8s-worker-1"), "{e}");
    assert_eq!(ssh.stats().connections, 1);
}

#[tokio::test]
async fn accept_new_records_an_unknown_key_and_still_connects() {
    let sim = sim(&[("k8s-worker-1", [10, 0, 20, 110])]);
    let h = sim.host("k8s-worker-1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("known_hosts");
    let mut host = declared(&sim, h);
    host.trust = HostKeyTrust::AcceptNew(file.clone());
    let p = provider(&sim, vec![host]);
    p.ctx()
        .ssh()
        .run("k8s-worker-1", &Cmd::new("true"))
        .await
        .unwrap();
    let recorded = std::fs::read_to_string(&file).unwrap();
    assert!(
        recorded.starts_with(&format!("[10.0.20.110]:{} ssh-ed25519 ", h.port())),
        "recorded under the declared address: {recorded}"
    );
}

#[tokio::test]
async fn a_host_pinned_by_its_declared_fingerprint_is_reached_at_its_mapped_address() {
    let sim = sim(&[("k8s-worker-1", [10, 0, 20, 110])]);
    let h = sim.host("k8s-worker-1").unwrap();
    assert_eq!(h.listen().ip().to_string(), "127.0.20.110");
    let mut host = declared(&sim, h);
    host.trust = HostKeyTrust::Fingerprint(h.fingerprint().to_string());
    let p = provider(&sim, vec![host]);
    let out = p
        .ctx()
        .ssh()
        .run(
            "k8s-worker-1",
            &Cmd::root("systemctl").args(["is-active", "kubelet"]),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "active");
    assert_eq!(h.logins(), 1);
}
