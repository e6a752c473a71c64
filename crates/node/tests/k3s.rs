//! The k3s kinds against real sshd hosts and the k3s simulator: the hand-made Hetzner
//! cluster is adopted without touching k3s, a flag edited by hand shows as drift naming the
//! field, a fresh host installs, joins and converges, a wrong token fails with k3s's own
//! message, and the token appears in no plan, report or unit file. Runs inside the
//! loopback-only namespace of `scripts/test.sh`.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::apply::NoProgress;
use cairn_core::net::Dialer;
use cairn_core::{
    Action, ApplyOptions, ApplyReport, Planned, Providers, Stack, StackBuilder, apply, plan,
};
use cairn_node::kinds::k3s::K3S_YAML;
use cairn_node::provider::{NodeContext, Waits, node_provider_for};
use cairn_node::*;
use cairn_node_sim::world::{
    HetznerK3s, K3S_AGENTS, K3S_FLANNEL_IFACE, K3S_SERVER, K3S_SERVER_TAINT, K3S_VERSION,
    hetzner_k3s,
};

const URL: &str = "https://10.0.1.5:6443";

/// The hand-made cluster in its own loopback range.
struct Lab {
    w: HetznerK3s,
    dialer: Dialer,
}

impl Lab {
    fn start(net: u8) -> Lab {
        let dialer = Dialer::new(
            format!("10.0.1.0/24=127.{net}.1.0/24").parse().unwrap(),
            true,
        );
        let w = hetzner_k3s(dialer.map().clone()).expect("hetzner k3s world");
        assert!(
            w.wait_ready(Duration::from_secs(30)),
            "{:?}",
            w.sim.nodes(w.cluster)
        );
        Lab { w, dialer }
    }

    /// The node provider over every host, the cluster declared with k3s's admin kubeconfig.
    fn provider(&self) -> Arc<NodeProvider> {
        let sim = &self.w.sim;
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
            "hetzner-k3s",
            "10.0.1.5:6443",
            K3S_SERVER.0,
            ssh.clone(),
            self.dialer.clone(),
        )
        .admin_conf(K3S_YAML);
        for h in sim.hosts() {
            cluster = cluster.node(h.name(), h.name());
        }
        let ctx = NodeContext::new(ssh)
            .cluster(Arc::new(cluster))
            .waits(Waits {
                interval: Duration::from_millis(100),
                timeout: Duration::from_secs(30),
            });
        Arc::new(node_provider_for(ctx))
    }
}

/// The hand-made cluster as declared: the tainted server and the two agents.
fn hand_made(s: &mut StackBuilder, token: &str) {
    let (mgr, mgr_ip) = K3S_SERVER;
    let mut server = K3sServer::new(mgr, K3S_VERSION, token);
    server.flannel_iface = Some(K3S_FLANNEL_IFACE.into());
    server.node_taints = vec![K3S_SERVER_TAINT.into()];
    server.node_ip = Some(mgr_ip.into());
    s.add(mgr, server);
    for (name, ip) in K3S_AGENTS {
        s.add(name, agent(name, ip, token));
    }
}

fn agent(name: &str, ip: Ipv4Addr, token: &str) -> K3sAgent {
    let mut a = K3sAgent::new(name, K3S_VERSION, URL, token);
    a.flannel_iface = Some(K3S_FLANNEL_IFACE.into());
    a.node_ip = Some(ip.into());
    a
}

fn stack(f: impl FnOnce(&mut StackBuilder)) -> Stack {
    let mut s = StackBuilder::new("hetzner-k3s");
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

/// Everything a user could see of a plan: its JSON, its steps and reasons.
fn shown(planned: &Planned) -> String {
    let mut t = serde_json::to_string(&planned.plan).unwrap();
    for c in &planned.plan.resource_changes {
        t.push_str(&format!(
            "{:?} {:?} {:?}",
            c.steps, c.action_reason, c.changes
        ));
    }
    t.push_str(&format!("{:?}", planned.plan.warnings));
    t
}

#[tokio::test]
async fn the_hand_made_cluster_is_adopted_without_touching_k3s() {
    let lab = Lab::start(231);
    let p = lab.provider();
    let token = lab.w.token.clone();
    let s = stack(|s| hand_made(s, &token));
    let planned = plan_of(&s, &p).await;
    assert_eq!(planned.plan.resource_changes.len(), 3);
    for c in &planned.plan.resource_changes {
        assert_eq!(c.action, Some(Action::Update), "{c:?}");
        let paths: Vec<_> = c.changes.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["(ownership marker)"],
            "only adoption for {}",
            c.address
        );
        assert!(
            c.steps.is_empty(),
            "nothing runs on the host: {:?}",
            c.steps
        );
    }
    assert!(
        !shown(&planned).contains(&token),
        "the token is never shown"
    );
    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");
    assert!(!format!("{report:?}").contains(&token));
    let again = plan_of(&s, &p).await;
    assert!(
        !again.plan.has_changes(),
        "{:?}",
        again.plan.resource_changes
    );
    for h in ["k3s-mgr", "k3s-w1", "k3s-w2"] {
        assert_eq!(
            lab.w.sim.k3s_starts(h),
            1,
            "k3s on {h} was not restarted or reinstalled"
        );
    }
}

#[tokio::test]
async fn a_flag_edited_by_hand_in_config_yaml_shows_as_drift_naming_the_field_and_is_not_clobbered()
{
    let lab = Lab::start(232);
    let p = lab.provider();
    let token = lab.w.token.clone();
    let s = stack(|s| hand_made(s, &token));
    let report = apply_plan(&s, &p, &plan_of(&s, &p).await).await;
    assert!(report.success(), "{report:?}");
    let mgr = lab.w.sim.host("k3s-mgr").unwrap();
    std::fs::write(
        mgr.etc_rancher().join("k3s/config.yaml"),
        "tls-san:\n  - k3s.docfast.dev\n",
    )
    .unwrap();
    let planned = plan_of(&s, &p).await;
    let changed: Vec<_> = planned
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action != Some(Action::NoOp) && c.action.is_some())
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    let c = changed[0];
    assert_eq!(c.address.to_string(), "node_k3s_server.k3s-mgr");
    let paths: Vec<_> = c.changes.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["tls_sans"], "{:?}", c.changes);
    assert_eq!(
        c.action_reason.as_deref(),
        Some("changed outside cairn since the last apply")
    );
    assert!(
        c.steps.len() == 1
            && c.steps[0].contains("tls_sans: set in /etc/rancher/k3s/config.yaml on host k3s-mgr"),
        "{:?}",
        c.steps
    );
    let report = apply_plan(&s, &p, &planned).await;
    assert!(!report.success());
    assert_eq!(
        lab.w.sim.k3s_starts("k3s-mgr"),
        1,
        "nothing was reinstalled"
    );
}

#[tokio::test]
async fn a_fresh_host_installs_joins_and_a_second_plan_is_empty() {
    let mut lab = Lab::start(233);
    let ip = Ipv4Addr::new(10, 0, 1, 8);
    lab.w.sim.start_k3s_host("k3s-w3", ip).unwrap();
    let p = lab.provider();
    let token = lab.w.token.clone();
    let s = stack(|s| {
        s.add("k3s-w3", agent("k3s-w3", ip, &token));
    });
    let planned = plan_of(&s, &p).await;
    let c = &planned.plan.resource_changes[0];
    assert_eq!(c.action, Some(Action::Create));
    assert_eq!(c.steps.len(), 2, "{:?}", c.steps);
    assert!(
        c.steps[0].contains("INSTALL_K3S_VERSION=v1.34.4+k3s1")
            && c.steps[0]
                .contains("INSTALL_K3S_EXEC='agent --flannel-iface enp7s0 --node-ip 10.0.1.8'")
            && c.steps[0].contains("K3S_URL=https://10.0.1.5:6443"),
        "{}",
        c.steps[0]
    );
    assert_eq!(
        c.steps[1],
        "wait until node k3s-w3 of cluster hetzner-k3s is Ready"
    );
    assert!(!shown(&planned).contains(&token));
    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");
    assert!(
        lab.w
            .sim
            .node(lab.w.cluster, "k3s-w3")
            .is_some_and(|n| n.ready)
    );
    let again = plan_of(&s, &p).await;
    assert!(
        !again.plan.has_changes(),
        "{:?}",
        again.plan.resource_changes
    );
    // On the host the token is only in the 0600 environment file.
    let host = lab.w.sim.host("k3s-w3").unwrap();
    let unit =
        std::fs::read_to_string(host.etc_systemd_system().join("k3s-agent.service")).unwrap();
    assert!(!unit.contains(&token));
    let env =
        std::fs::read_to_string(host.etc_systemd_system().join("k3s-agent.service.env")).unwrap();
    assert!(env.contains(&token));
}

#[tokio::test]
async fn an_agent_with_a_wrong_token_fails_with_k3s_wording_and_the_token_never_shows() {
    let mut lab = Lab::start(234);
    let ip = Ipv4Addr::new(10, 0, 1, 9);
    lab.w.sim.start_k3s_host("k3s-w4", ip).unwrap();
    let p = lab.provider();
    let wrong = "K10notthetoken0123456789";
    let s = stack(|s| {
        s.add("k3s-w4", agent("k3s-w4", ip, wrong));
    });
    let planned = plan_of(&s, &p).await;
    assert!(!shown(&planned).contains(wrong));
    let report = apply_plan(&s, &p, &planned).await;
    assert!(!report.success());
    let e = format!("{report:?}");
    assert!(
        e.contains("k3s's install script failed on host k3s-w4")
            && e.contains("Job for k3s-agent.service failed")
            && e.contains("401 Unauthorized"),
        "{e}"
    );
    assert!(!e.contains(wrong), "{e}");
    assert!(lab.w.sim.node(lab.w.cluster, "k3s-w4").is_none());
}

#[tokio::test]
async fn a_stopped_agent_is_planned_to_start_and_is_ready_again_after_the_apply() {
    let lab = Lab::start(235);
    let p = lab.provider();
    let token = lab.w.token.clone();
    let s = stack(|s| hand_made(s, &token));
    let report = apply_plan(&s, &p, &plan_of(&s, &p).await).await;
    assert!(report.success(), "{report:?}");
    p.ctx()
        .ssh()
        .run(
            "k3s-w1",
            &Cmd::root("systemctl").args(["stop", "k3s-agent"]),
        )
        .await
        .unwrap();
    let planned = plan_of(&s, &p).await;
    let c = planned
        .plan
        .resource_changes
        .iter()
        .find(|c| c.address.to_string() == "node_k3s_agent.k3s-w1")
        .unwrap();
    assert_eq!(c.action, Some(Action::Update), "{c:?}");
    let paths: Vec<_> = c.changes.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["not_running"], "{:?}", c.changes);
    assert_eq!(
        c.steps,
        [
            "systemctl start k3s-agent on k3s-w1",
            "wait until node k3s-w1 of cluster hetzner-k3s is Ready"
        ]
    );
    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");
    assert!(
        lab.w
            .sim
            .node(lab.w.cluster, "k3s-w1")
            .is_some_and(|n| n.ready)
    );
    assert_eq!(
        lab.w.sim.k3s_starts("k3s-w1"),
        2,
        "started once more, not reinstalled"
    );
    let again = plan_of(&s, &p).await;
    assert!(
        !again.plan.has_changes(),
        "{:?}",
        again.plan.resource_changes
    );
}
