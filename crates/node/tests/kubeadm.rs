//! The kubeadm kinds and the cluster gates against the cluster simulator: real sshd hosts
//! whose `kubeadm`, `systemctl` and kubelet act on a simulated cluster, reached through the
//! Kubernetes API over core's dialer. The VIP 10.0.20.99 is mapped onto the master's
//! address, as HAProxy in TCP mode would forward it. Runs inside the loopback-only
//! namespace of `scripts/test.sh`.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::apply::NoProgress;
use cairn_core::gate::Probe;
use cairn_core::net::Dialer;
use cairn_core::{
    Action, ApplyOptions, ApplyReport, Planned, Providers, Stack, StackBuilder, apply, plan,
};
use cairn_node::kinds::control_plane_member::ControlPlaneMember;
use cairn_node::kinds::kubeadm_config::KubeadmConfig;
use cairn_node::provider::{NodeContext, Waits, node_provider_for};
use cairn_node::*;
use cairn_node_sim::world::{Homelab, homelab};

const VIP: &str = "10.0.20.99:6443";
const MASTER: &str = "10.0.20.100:6443";

/// A ready homelab in its own loopback range, the VIP forwarded to the master.
struct Lab {
    lab: Homelab,
    dialer: Dialer,
}

impl Lab {
    fn start(net: u8) -> Lab {
        let map = format!("10.0.20.99/32=127.{net}.20.100/32,10.0.20.0/24=127.{net}.20.0/24");
        let dialer = Dialer::new(map.parse().unwrap(), true);
        let lab = homelab(dialer.map().clone()).expect("homelab");
        assert!(
            lab.wait_ready(Duration::from_secs(30)),
            "{:?}",
            lab.sim.nodes(lab.cluster)
        );
        Lab { lab, dialer }
    }

    /// A second master VM, booted but not joined.
    fn boot(&mut self, name: &str, ip: [u8; 4]) {
        self.lab
            .sim
            .start_host(name, Ipv4Addr::from(ip))
            .expect("sshd");
    }

    /// The node provider over every simulated host, with the cluster declared, and that
    /// cluster (for gates).
    fn provider(&self, timeout: Duration) -> (Arc<NodeProvider>, Arc<Cluster>) {
        let sim = &self.lab.sim;
        let hosts = sim
            .hosts()
            .iter()
            .map(|h| {
                Host::new(
                    h.name(),
                    h.declared().to_string(),
                    "root",
                    HostKeyTrust::KnownHosts(sim.known_hosts()),
                )
                .port(h.port())
            })
            .collect();
        let ssh = Arc::new(
            Ssh::new(
                SshOptions::new(sim.client_key()),
                self.dialer.clone(),
                hosts,
            )
            .unwrap(),
        );
        let mut cluster = Cluster::new(
            "homelab",
            MASTER,
            "k8s-master",
            ssh.clone(),
            self.dialer.clone(),
        );
        for h in sim.hosts() {
            cluster = cluster.node(h.name(), h.name());
        }
        let cluster = Arc::new(cluster);
        let ctx = NodeContext::new(ssh).cluster(cluster.clone()).waits(Waits {
            interval: Duration::from_millis(100),
            timeout,
        });
        (Arc::new(node_provider_for(ctx)), cluster)
    }
}

fn stack(f: impl FnOnce(&mut StackBuilder)) -> Stack {
    let mut s = StackBuilder::new("homelab-ha");
    f(&mut s);
    s.build().unwrap()
}

async fn plan_of(s: &Stack, p: &Arc<NodeProvider>) -> Planned {
    plan(s, &Providers::new().with(p.clone()))
        .await
        .expect("plan")
}

async fn apply_plan(s: &Stack, p: &Arc<NodeProvider>, planned: &Planned) -> ApplyReport {
    apply(
        s,
        &Providers::new().with(p.clone()),
        planned,
        ApplyOptions::default(),
        Arc::new(NoProgress),
    )
    .await
}

fn phase0() -> KubeadmConfig {
    KubeadmConfig::new("homelab", VIP, ["10.0.20.99", "k8s-apiserver.home.arpa"])
}

/// Runs Phase 0 through the provider and checks it converged.
async fn run_phase0(p: &Arc<NodeProvider>) {
    let s = stack(|s| {
        s.add("kubeadm", phase0());
    });
    let planned = plan_of(&s, p).await;
    let report = apply_plan(&s, p, &planned).await;
    assert!(report.success(), "{report:?}");
}

/// A bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`) anywhere in `text`.
fn holds_token(text: &str) -> bool {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(22)).any(|i| {
        let w = &b[i..i + 23];
        w[6] == b'.'
            && w.iter()
                .enumerate()
                .all(|(j, c)| j == 6 || c.is_ascii_lowercase() || c.is_ascii_digit())
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
    })
}

#[tokio::test]
async fn gates_see_nodes_etcd_members_and_which_addresses_the_apiserver_certificate_names() {
    let lab = Lab::start(141);
    let (_, cluster) = lab.provider(Duration::from_secs(5));
    assert_eq!(cluster.node_ready("k8s-worker-1").check().await, Ok(()));
    assert_eq!(cluster.etcd_members_ready(1).check().await, Ok(()));
    let e = cluster.etcd_members_ready(2).check().await.unwrap_err();
    assert!(
        e.contains("has 1 Ready members [k8s-master], want at least 2"),
        "{e}"
    );
    assert_eq!(cluster.apiserver_ready(MASTER).check().await, Ok(()));
    // The VIP reaches the same apiserver, whose certificate does not name it yet.
    let e = cluster.apiserver_ready(VIP).check().await.unwrap_err();
    assert!(e.contains("10.0.20.99"), "{e}");
    assert!(e.contains("10.0.20.100"), "the SANs it saw are listed: {e}");
    let e = cluster
        .node_ready("k8s-worker-9")
        .check()
        .await
        .unwrap_err();
    assert!(e.contains("has no node k8s-worker-9"), "{e}");
}

#[tokio::test]
async fn phase_zero_uploads_the_config_reissues_the_certificate_restarts_the_apiserver_and_converges()
 {
    let lab = Lab::start(142);
    let sim = &lab.lab.sim;
    let (p, cluster) = lab.provider(Duration::from_secs(30));
    let before = sim.cluster_configuration(lab.lab.cluster).unwrap();
    let s = stack(|s| {
        s.add("kubeadm", phase0());
    });
    let planned = plan_of(&s, &p).await;
    // Observing it: the credentials and the certificate with its marker, two commands on
    // one connection to the master (plus one API read).
    assert_eq!(
        p.ctx().ssh().stats(),
        SshStats {
            connections: 1,
            commands: 2
        }
    );
    let c = &planned.plan.resource_changes[0];
    assert_eq!(c.action(), Action::Update);
    assert_eq!(c.steps.len(), 6, "{:#?}", c.steps);
    assert!(c.steps[1].contains("upload-config kubeadm"));
    assert!(c.steps[3].contains("certs apiserver"));
    assert!(c.steps[4].contains("restart the kube-apiserver static pod on k8s-master"));
    let starts = sim.apiserver_starts("k8s-master");

    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");

    // The uploaded configuration has the two fields and everything else it had.
    let after = sim.cluster_configuration(lab.lab.cluster).unwrap();
    assert!(
        after.contains("controlPlaneEndpoint: \"10.0.20.99:6443\"")
            || after.contains("controlPlaneEndpoint: 10.0.20.99:6443"),
        "{after}"
    );
    for line in before.lines().filter(|l| !l.starts_with("apiServer")) {
        assert!(after.contains(line.trim()), "{line:?} was lost:\n{after}");
    }
    // The master restarted its apiserver, which now presents the VIP; the old certificate
    // and key were kept; the config file is private.
    assert!(sim.apiserver_starts("k8s-master") > starts);
    assert_eq!(cluster.apiserver_ready(VIP).check().await, Ok(()));
    let master = sim.host("k8s-master").unwrap();
    let pki: Vec<String> = std::fs::read_dir(master.etc_kubernetes().join("pki"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for f in ["apiserver.crt.cairn-backup-", "apiserver.key.cairn-backup-"] {
        assert_eq!(
            pki.iter().filter(|n| n.starts_with(f)).count(),
            1,
            "{pki:?}"
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(master.etc_kubernetes().join("cairn-kubeadm-config.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        master
            .etc_kubernetes()
            .join("manifests/kube-apiserver.yaml")
            .exists(),
        "the manifest is back"
    );

    // Nothing left to do.
    let again = plan_of(&s, &p).await;
    assert!(
        !again.plan.has_changes(),
        "{:?}",
        again.plan.resource_changes
    );
}

#[tokio::test]
async fn a_worker_moved_to_the_vip_is_ready_again_when_its_step_ends() {
    let lab = Lab::start(143);
    let sim = &lab.lab.sim;
    let (p, _) = lab.provider(Duration::from_secs(30));
    run_phase0(&p).await;
    let s = stack(|s| {
        s.add(
            "worker-1",
            KubeconfigServer::kubelet("k8s-worker-1", format!("https://{VIP}")),
        );
    });
    let planned = plan_of(&s, &p).await;
    let steps = &planned.plan.resource_changes[0].steps;
    assert_eq!(
        steps.last().unwrap(),
        "wait until node k8s-worker-1 of cluster homelab is Ready again"
    );
    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");
    let n = sim.node(lab.lab.cluster, "k8s-worker-1").unwrap();
    assert!(n.ready, "the step waited for Ready: {n:?}");
    assert_eq!(sim.host("k8s-worker-1").unwrap().restarts("kubelet"), 1);
}

#[tokio::test]
async fn a_worker_moved_to_an_address_its_apiserver_certificate_lacks_fails_naming_the_node() {
    let lab = Lab::start(144);
    let (p, _) = lab.provider(Duration::from_secs(3));
    // No Phase 0: the master's certificate does not name the VIP, so the kubelet cannot
    // verify it and the node stays NotReady.
    let s = stack(|s| {
        s.add(
            "worker-2",
            KubeconfigServer::kubelet("k8s-worker-2", format!("https://{VIP}")),
        );
    });
    let planned = plan_of(&s, &p).await;
    let report = apply_plan(&s, &p, &planned).await;
    assert!(!report.success());
    let e = format!("{report:?}");
    assert!(e.contains("node k8s-worker-2 is Ready again"), "{e}");
    assert!(
        e.contains("node_kubeconfig_server[k8s-worker-2:/etc/kubernetes/kubelet.conf]"),
        "{e}"
    );
}

#[tokio::test]
async fn a_master_joins_through_the_vip_and_is_ready_with_one_more_etcd_member() {
    let mut lab = Lab::start(145);
    lab.boot("k8s-master-2", [10, 0, 20, 110]);
    let (p, cluster) = lab.provider(Duration::from_secs(30));
    run_phase0(&p).await;
    let s = stack(|s| {
        s.add(
            "master-2",
            ControlPlaneMember::new("homelab", "k8s-master-2"),
        );
    });
    let planned = plan_of(&s, &p).await;
    let c = &planned.plan.resource_changes[0];
    assert_eq!(c.action(), Action::Create);
    assert_eq!(c.steps.len(), 6, "{:#?}", c.steps);
    let plan_json = serde_json::to_string(&planned.plan).unwrap();
    assert!(!holds_token(&plan_json), "no token in the plan");

    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");
    let sim = &lab.lab.sim;
    let n = sim.node(lab.lab.cluster, "k8s-master-2").unwrap();
    assert!(n.ready && n.control_plane, "{n:?}");
    assert_eq!(sim.etcd_members(lab.lab.cluster).len(), 2);
    assert_eq!(sim.joins("k8s-master-2"), 1);
    assert_eq!(cluster.etcd_members_ready(2).check().await, Ok(()));
    let again = plan_of(&s, &p).await;
    assert!(
        !again.plan.has_changes(),
        "{:?}",
        again.plan.resource_changes
    );
}

#[tokio::test]
async fn a_join_through_an_endpoint_the_certificate_does_not_name_runs_nothing() {
    let mut lab = Lab::start(146);
    lab.boot("k8s-master-2", [10, 0, 20, 110]);
    let (p, _) = lab.provider(Duration::from_secs(5));
    // The endpoint is uploaded, but the certificate is left as it is.
    let s = stack(|s| {
        let mut k = phase0();
        k.certificate_covers_sans = None;
        let k = s.add("kubeadm", k);
        let m = s.add(
            "master-2",
            ControlPlaneMember::new("homelab", "k8s-master-2"),
        );
        s.depends_on(&m, &k);
    });
    let planned = plan_of(&s, &p).await;
    let report = apply_plan(&s, &p, &planned).await;
    assert!(!report.success());
    let e = format!("{report:?}");
    assert!(
        e.contains("node_control_plane_member[homelab/k8s-master-2]"),
        "{e}"
    );
    assert!(
        e.contains("refusing to join through 10.0.20.99:6443"),
        "{e}"
    );
    assert!(e.contains("10.0.20.100"), "the SANs seen are named: {e}");
    assert_eq!(
        lab.lab.sim.joins("k8s-master-2"),
        0,
        "nothing ran on the new host"
    );
}

#[tokio::test]
async fn a_failed_join_fails_its_member_without_leaking_the_token_and_a_rerun_joins() {
    let mut lab = Lab::start(147);
    lab.boot("k8s-master-2", [10, 0, 20, 110]);
    let (p, _) = lab.provider(Duration::from_secs(30));
    run_phase0(&p).await;
    let sim = &lab.lab.sim;
    sim.fail_next_join("k8s-master-2");
    let s = stack(|s| {
        s.add(
            "master-2",
            ControlPlaneMember::new("homelab", "k8s-master-2"),
        );
    });
    let planned = plan_of(&s, &p).await;
    let report = apply_plan(&s, &p, &planned).await;
    assert!(!report.success());
    let e = format!("{report:?}");
    assert!(
        e.contains("kubeadm join 10.0.20.99:6443 --control-plane` on k8s-master-2 failed"),
        "{e}"
    );
    assert!(!holds_token(&e), "{e}");
    assert!(sim.node(lab.lab.cluster, "k8s-master-2").is_none());

    let planned = plan_of(&s, &p).await;
    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");
    assert_eq!(sim.etcd_members(lab.lab.cluster).len(), 2);
}

#[tokio::test]
async fn a_join_three_hours_after_the_last_one_uploads_a_fresh_certificate_key() {
    let mut lab = Lab::start(148);
    lab.boot("k8s-master-2", [10, 0, 20, 110]);
    lab.boot("k8s-master-3", [10, 0, 20, 111]);
    let (p, cluster) = lab.provider(Duration::from_secs(30));
    run_phase0(&p).await;
    let one = stack(|s| {
        s.add(
            "master-2",
            ControlPlaneMember::new("homelab", "k8s-master-2"),
        );
    });
    let report = apply_plan(&one, &p, &plan_of(&one, &p).await).await;
    assert!(report.success(), "{report:?}");
    // The key uploaded for master-2 is long expired when master-3 joins.
    lab.lab.sim.advance_clock(Duration::from_secs(3 * 3600));
    let both = stack(|s| {
        s.add(
            "master-2",
            ControlPlaneMember::new("homelab", "k8s-master-2"),
        );
        s.add(
            "master-3",
            ControlPlaneMember::new("homelab", "k8s-master-3"),
        );
    });
    let planned = plan_of(&both, &p).await;
    let actions: Vec<Action> = planned
        .plan
        .resource_changes
        .iter()
        .map(|c| c.action())
        .collect();
    assert_eq!(actions, [Action::NoOp, Action::Create]);
    let report = apply_plan(&both, &p, &planned).await;
    assert!(report.success(), "{report:?}");
    assert_eq!(lab.lab.sim.joins("k8s-master-3"), 1, "joined once");
    assert_eq!(cluster.etcd_members_ready(3).check().await, Ok(()));
}

#[tokio::test]
async fn a_phase_zero_interrupted_after_the_upload_resumes_with_the_certificate_only() {
    let lab = Lab::start(149);
    let (p, cluster) = lab.provider(Duration::from_secs(30));
    // The configuration was uploaded (by an earlier run that then died), the certificate
    // was not re-issued.
    let config = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.1\ncontrolPlaneEndpoint: 10.0.20.99:6443\napiServer:\n  certSANs:\n  - 10.0.20.99\n  - k8s-apiserver.home.arpa\n";
    let ssh = p.ctx().ssh();
    ssh.run(
        "k8s-master",
        &Cmd::root("sh")
            .args(["-c", "cat > /root/kubeadm.yaml"])
            .stdin(config.as_bytes().to_vec()),
    )
    .await
    .unwrap();
    ssh.run(
        "k8s-master",
        &Cmd::root("kubeadm").args([
            "init",
            "phase",
            "upload-config",
            "kubeadm",
            "--config",
            "/root/kubeadm.yaml",
        ]),
    )
    .await
    .unwrap();
    let s = stack(|s| {
        s.add("kubeadm", phase0());
    });
    let planned = plan_of(&s, &p).await;
    let c = &planned.plan.resource_changes[0];
    assert_eq!(c.action(), Action::Update);
    let paths: Vec<&str> = c.changes.iter().map(|f| f.path.as_str()).collect();
    assert!(paths.contains(&"certificate_covers_sans"), "{paths:?}");
    assert_eq!(c.steps.len(), 5, "{:#?}", c.steps);
    assert!(!c.steps.iter().any(|s| s.contains("upload-config")));
    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");
    assert_eq!(cluster.apiserver_ready(VIP).check().await, Ok(()));
    let again = plan_of(&s, &p).await;
    assert!(
        !again.plan.has_changes(),
        "{:?}",
        again.plan.resource_changes
    );
}

#[tokio::test]
async fn two_masters_declared_side_by_side_both_join_with_their_etcd_members() {
    let mut lab = Lab::start(150);
    lab.boot("k8s-master-2", [10, 0, 20, 110]);
    lab.boot("k8s-master-3", [10, 0, 20, 111]);
    let (p, cluster) = lab.provider(Duration::from_secs(30));
    run_phase0(&p).await;
    // No edge between them: the provider serialises the joins itself.
    let s = stack(|s| {
        s.add(
            "master-2",
            ControlPlaneMember::new("homelab", "k8s-master-2"),
        );
        s.add(
            "master-3",
            ControlPlaneMember::new("homelab", "k8s-master-3"),
        );
    });
    let report = apply_plan(&s, &p, &plan_of(&s, &p).await).await;
    assert!(report.success(), "{report:?}");
    let sim = &lab.lab.sim;
    assert_eq!(sim.etcd_members(lab.lab.cluster).len(), 3);
    assert_eq!(
        (sim.joins("k8s-master-2"), sim.joins("k8s-master-3")),
        (1, 1)
    );
    assert_eq!(cluster.etcd_members_ready(3).check().await, Ok(()));
}

#[tokio::test]
async fn an_apply_interrupted_before_the_kubelet_restart_restarts_it_on_the_rerun() {
    let lab = Lab::start(151);
    let sim = &lab.lab.sim;
    let w = "k8s-worker-1";
    let (p, _) = lab.provider(Duration::from_secs(30));
    let at = |server: &str| {
        let server = format!("https://{server}");
        stack(move |s| {
            s.add("worker-1", KubeconfigServer::kubelet(w, server));
        })
    };
    // A kubelet that read its file has nothing pending: claiming it only writes the marker.
    let unchanged = plan_of(&at(MASTER), &p).await;
    assert_eq!(unchanged.plan.resource_changes.len(), 1);
    let paths = |p: &Planned| -> Vec<String> {
        p.plan.resource_changes[0]
            .changes
            .iter()
            .map(|c| c.path.clone())
            .collect()
    };
    assert_eq!(paths(&unchanged), ["(ownership marker)"]);
    assert!(unchanged.plan.resource_changes[0].steps.is_empty());
    let report = apply_plan(&at(MASTER), &p, &unchanged).await;
    assert!(report.success(), "{report:?}");
    let host = sim.host(w).unwrap();
    assert_eq!(host.restarts("kubelet"), 0);
    let claimed = plan_of(&at(MASTER), &p).await;
    assert!(
        !claimed.plan.has_changes(),
        "{:?}",
        claimed.plan.resource_changes
    );
    run_phase0(&p).await;
    // The edit lands in a later second than the kubelet's start (both are whole seconds).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tokio::time::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()),
    ))
    .await;
    // What the interrupted apply did: the server edited, kubelet not restarted.
    let conf = std::fs::read_to_string(host.etc_kubernetes().join("kubelet.conf")).unwrap();
    assert!(conf.contains(&format!("https://{MASTER}")), "{conf}");
    let edited = conf.replace(&format!("https://{MASTER}"), &format!("https://{VIP}"));
    host.write_etc_kubernetes("kubelet.conf", edited.as_bytes())
        .unwrap();
    let s = at(VIP);
    let planned = plan_of(&s, &p).await;
    assert_eq!(planned.plan.resource_changes.len(), 1);
    assert_eq!(
        planned.plan.resource_changes[0].steps,
        [
            format!(
                "systemctl restart kubelet on {w} (kubelet started before kubelet.conf changed: restart pending)"
            ),
            format!("wait until node {w} of cluster homelab is Ready again"),
        ]
    );
    assert_eq!(
        paths(&planned),
        ["restart_pending"],
        "only the restart is pending"
    );
    assert_eq!(
        planned.plan.resource_changes[0].changes[0].before,
        Some(cairn_node::kinds::kubeconfig_server::RESTART_PENDING.into())
    );
    assert_eq!(host.restarts("kubelet"), 0);
    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");
    assert_eq!(host.restarts("kubelet"), 1);
    assert!(sim.node(lab.lab.cluster, w).unwrap().ready);
    let again = plan_of(&s, &p).await;
    assert!(
        !again.plan.has_changes(),
        "{:?}",
        again.plan.resource_changes
    );
}
