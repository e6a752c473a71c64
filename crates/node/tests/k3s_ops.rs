//! Rolling upgrades and rotation of the hand-made Hetzner k3s cluster through the node
//! provider, against the k3s simulator's apiserver and real sshd hosts: an agent's version
//! change cordons, drains (its pod moves to the other worker), upgrades and uncordons; a
//! drain a PodDisruptionBudget blocks times out naming the pod and budget and leaves the
//! node cordoned; `K3sRotation` refuses while a node is NotReady or for the only server, and
//! takes an agent out (`before`) and back (`after`); the cluster made highly available
//! through the kinds (k3s-mgr migrated to etcd, two servers joining) upgrades a server with
//! the etcd gate, and the first server rotated away and rebuilt joins the remaining members
//! (the API answering through the other servers meanwhile) with a second plan empty. Runs
//! inside the loopback-only namespace
//! of `scripts/test.sh`.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use cairn_core::apply::NoProgress;
use cairn_core::net::Dialer;
use cairn_core::rotation::Rotation;
use cairn_core::value::Address;
use cairn_core::{
    Action, ApplyOptions, ApplyReport, NodeRef, Planned, Providers, Stack, StackBuilder, apply,
    plan,
};
use cairn_node::kinds::k3s::K3S_YAML;
use cairn_node::provider::{NodeContext, Waits, node_provider_for};
use cairn_node::rotation::K3sRotation;
use cairn_node::*;
use cairn_node_sim::world::{
    DOCFAST, DOCFAST_NAMESPACE, HetznerK3s, K3S_AGENTS, K3S_FLANNEL_IFACE, K3S_SERVER,
    K3S_SERVER_TAINT, K3S_VERSION, hetzner_k3s,
};

const URL: &str = "https://10.0.1.5:6443";
const NEXT: &str = "v1.34.5+k3s1";
const WAITS: Waits = Waits {
    interval: Duration::from_millis(100),
    timeout: Duration::from_secs(30),
};

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

    fn ssh(&self) -> Arc<Ssh> {
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
        Arc::new(
            Ssh::new(
                SshOptions::new(sim.client_key()),
                self.dialer.clone(),
                hosts,
            )
            .unwrap(),
        )
    }

    fn cluster(&self) -> Arc<Cluster> {
        let sim = &self.w.sim;
        let mut cluster = Cluster::new(
            "hetzner-k3s",
            "10.0.1.5:6443",
            K3S_SERVER.0,
            self.ssh(),
            self.dialer.clone(),
        )
        .admin_conf(K3S_YAML)
        .endpoints(["10.0.1.8:6443", "10.0.1.9:6443"])
        .admin_hosts(["k3s-cp2", "k3s-cp3"])
        .drain_retry(Duration::from_millis(200));
        for h in sim.hosts() {
            cluster = cluster.node(h.name(), h.name());
        }
        Arc::new(cluster)
    }

    fn provider(&self, cluster: &Arc<Cluster>, drain: Duration) -> Arc<NodeProvider> {
        let ctx = NodeContext::new(cluster.ssh().clone())
            .cluster(cluster.clone())
            .waits(WAITS)
            .drain_timeout(drain);
        Arc::new(node_provider_for(ctx))
    }

    /// Where the docfast pods run.
    fn docfast_nodes(&self) -> Vec<Option<String>> {
        let mut v: Vec<_> = self
            .w
            .sim
            .pods(self.w.cluster, DOCFAST_NAMESPACE)
            .into_iter()
            .map(|p| p.node)
            .collect();
        v.sort();
        v
    }
}

fn hand_made(s: &mut StackBuilder, token: &str, w1_version: &str) {
    let (mgr, mgr_ip) = K3S_SERVER;
    let mut server = K3sServer::new(mgr, K3S_VERSION, token);
    server.flannel_iface = Some(K3S_FLANNEL_IFACE.into());
    server.node_taints = vec![K3S_SERVER_TAINT.into()];
    server.node_ip = Some(mgr_ip.into());
    s.add(mgr, server);
    for (name, ip) in K3S_AGENTS {
        let v = if name == "k3s-w1" {
            w1_version
        } else {
            K3S_VERSION
        };
        s.add(name, agent(name, ip, token, v));
    }
}

fn agent(name: &str, ip: Ipv4Addr, token: &str, version: &str) -> K3sAgent {
    let mut a = K3sAgent::new(name, version, URL, token);
    a.flannel_iface = Some(K3S_FLANNEL_IFACE.into());
    a.node_ip = Some(ip.into());
    a
}

fn stack(token: &str, w1_version: &str) -> Stack {
    let mut s = StackBuilder::new("hetzner-k3s");
    hand_made(&mut s, token, w1_version);
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

/// Adopts the hand-made cluster as declared (nothing runs on the hosts).
async fn adopt(lab: &Lab, p: &Arc<NodeProvider>) {
    let s = stack(&lab.w.token, K3S_VERSION);
    let report = apply_plan(&s, p, &plan_of(&s, p).await).await;
    assert!(report.success(), "{report:?}");
}

#[tokio::test]
async fn upgrading_an_agent_cordons_drains_its_pod_to_the_other_worker_upgrades_and_uncordons() {
    let lab = Lab::start(236);
    let cluster = lab.cluster();
    let p = lab.provider(&cluster, Duration::from_secs(30));
    adopt(&lab, &p).await;
    let s = stack(&lab.w.token, NEXT);
    let planned = plan_of(&s, &p).await;
    let c = planned
        .plan
        .resource_changes
        .iter()
        .find(|c| c.address.to_string() == "node_k3s_agent.k3s-w1")
        .unwrap();
    assert_eq!(c.action, Some(Action::Update), "{c:?}");
    assert_eq!(c.steps.len(), 5, "{:?}", c.steps);
    assert_eq!(c.steps[0], "cordon node k3s-w1 of cluster hetzner-k3s");
    assert!(
        c.steps[1].starts_with("drain node k3s-w1"),
        "{}",
        c.steps[1]
    );
    assert!(
        c.steps[2].contains(&format!("INSTALL_K3S_VERSION={NEXT}")),
        "{}",
        c.steps[2]
    );
    assert_eq!(
        c.steps[3],
        "wait until node k3s-w1 of cluster hetzner-k3s is Ready"
    );
    assert_eq!(c.steps[4], "uncordon node k3s-w1 of cluster hetzner-k3s");
    let others: Vec<_> = planned
        .plan
        .resource_changes
        .iter()
        .filter(|c| c.action.is_some_and(|a| a != Action::NoOp))
        .map(|c| c.address.to_string())
        .collect();
    assert_eq!(others, ["node_k3s_agent.k3s-w1"], "only w1 changes");
    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");
    // The evicted pod's replacement was scheduled on the other worker.
    assert_eq!(
        lab.docfast_nodes(),
        [Some("k3s-w2".to_string()), Some("k3s-w2".to_string())]
    );
    assert!(lab.w.sim.cordoned(lab.w.cluster).is_empty(), "uncordoned");
    assert_eq!(lab.w.sim.k3s_starts("k3s-w1"), 2, "reinstalled once");
    let again = plan_of(&s, &p).await;
    assert!(
        !again.plan.has_changes(),
        "{:?}",
        again.plan.resource_changes
    );
}

#[tokio::test]
async fn a_drain_blocked_by_the_budget_times_out_naming_pod_and_budget_and_leaves_the_node_cordoned()
 {
    let lab = Lab::start(237);
    let cluster = lab.cluster();
    let p = lab.provider(&cluster, Duration::from_secs(2));
    adopt(&lab, &p).await;
    lab.w
        .sim
        .set_pdb_min_available(lab.w.cluster, DOCFAST_NAMESPACE, DOCFAST, 2);
    let s = stack(&lab.w.token, NEXT);
    let report = apply_plan(&s, &p, &plan_of(&s, &p).await).await;
    assert!(!report.success());
    let e = format!("{report:?}");
    assert!(
        e.contains("drain of node k3s-w1 timed out after 2 s: pod docfast/docfast-")
            && e.contains("is blocked by PodDisruptionBudget docfast/docfast"),
        "{e}"
    );
    assert_eq!(lab.w.sim.cordoned(lab.w.cluster), ["k3s-w1"]);
    assert_eq!(lab.w.sim.k3s_starts("k3s-w1"), 1, "nothing was installed");
    assert_eq!(
        lab.w
            .sim
            .ready_replicas(lab.w.cluster, DOCFAST_NAMESPACE, DOCFAST),
        2,
        "no pod was evicted"
    );
}

fn rotation(cluster: Arc<Cluster>) -> K3sRotation {
    let nodes = [("k3s-mgr", true), ("k3s-w1", false), ("k3s-w2", false)];
    K3sRotation::new(
        cluster,
        nodes
            .into_iter()
            .map(|(n, server)| (n, n, Address::new("hetzner_server", n), server)),
    )
    .drain_timeout(Duration::from_secs(20))
    .gates(WAITS)
    .period(Duration::from_secs(30 * 24 * 3600))
}

#[tokio::test]
async fn rotation_preflight_names_a_not_ready_node_and_refuses_the_only_server() {
    let lab = Lab::start(238);
    let r = rotation(lab.cluster());
    assert_eq!(r.preflight("k3s-w1").await, Ok(()));
    let e = r.preflight("k3s-mgr").await.unwrap_err();
    assert!(
        e.contains("k3s-mgr is the only server of cluster hetzner-k3s"),
        "{e}"
    );
    lab.w.sim.stop_k3s("k3s-w2");
    // The node goes NotReady once the apiserver notices the kubelet stopped.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while lab
        .w
        .sim
        .node(lab.w.cluster, "k3s-w2")
        .is_some_and(|n| n.ready)
    {
        assert!(std::time::Instant::now() < deadline, "k3s-w2 stayed Ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = r.preflight("k3s-w1").await.unwrap_err();
    assert!(
        e.starts_with("node k3s-w2 of cluster hetzner-k3s is NotReady"),
        "{e}"
    );
}

#[tokio::test]
async fn an_agent_leaves_in_before_and_comes_back_uncordoned_in_after() {
    let lab = Lab::start(239);
    let cluster = lab.cluster();
    let p = lab.provider(&cluster, Duration::from_secs(20));
    adopt(&lab, &p).await;
    let r = rotation(cluster.clone());
    r.preflight("k3s-w1").await.unwrap();
    r.before("k3s-w1").await.unwrap();
    assert!(
        lab.w.sim.node(lab.w.cluster, "k3s-w1").is_none(),
        "the Node was deleted"
    );
    assert_eq!(
        lab.docfast_nodes(),
        [Some("k3s-w2".to_string()), Some("k3s-w2".to_string())]
    );
    // Interrupted and run again: the node is already gone, which is fine.
    r.before("k3s-w1").await.unwrap();
    // The machine's replacement is the stack's apply (here: the same host, its unit
    // started again, registering the node anew).
    let s = stack(&lab.w.token, K3S_VERSION);
    let report = apply_plan(&s, &p, &plan_of(&s, &p).await).await;
    assert!(report.success(), "{report:?}");
    r.after("k3s-w1").await.unwrap();
    let n = lab.w.sim.node(lab.w.cluster, "k3s-w1").unwrap();
    assert!(n.ready);
    assert!(lab.w.sim.cordoned(lab.w.cluster).is_empty());
}

const CP: [(&str, Ipv4Addr); 2] = [
    ("k3s-cp2", Ipv4Addr::new(10, 0, 1, 8)),
    ("k3s-cp3", Ipv4Addr::new(10, 0, 1, 9)),
];

/// The HA shape: k3s-mgr with `cluster_init`, k3s-cp2 and k3s-cp3 joining it one after the
/// other, the agents as they are; k3s-cp3 at `cp3_version`.
fn ha_stack(token: &str, cp3_version: &str) -> Stack {
    let mut s = StackBuilder::new("hetzner-k3s");
    let server = |name: &str, ip: Ipv4Addr, version: &str| {
        let mut v = K3sServer::new(name, version, token);
        v.flannel_iface = Some(K3S_FLANNEL_IFACE.into());
        v.node_taints = vec![K3S_SERVER_TAINT.into()];
        v.node_ip = Some(ip.into());
        v
    };
    let (mgr, mgr_ip) = K3S_SERVER;
    let mut first = server(mgr, mgr_ip, K3S_VERSION);
    first.cluster_init = true;
    let mut prev = s.add(mgr, first).address().clone();
    for (name, ip) in CP {
        let mut v = server(
            name,
            ip,
            if name == "k3s-cp3" {
                cp3_version
            } else {
                K3S_VERSION
            },
        );
        v.server = Some(URL.into());
        let h = s.add(name, v);
        s.depends_on(&h, &prev);
        prev = h.address().clone();
    }
    for (name, ip) in K3S_AGENTS {
        s.add(name, agent(name, ip, token, K3S_VERSION));
    }
    s.build().unwrap()
}

fn steps_of(planned: &Planned, address: &str) -> (Option<Action>, Vec<String>) {
    let c = planned
        .plan
        .resource_changes
        .iter()
        .find(|c| c.address.to_string() == address)
        .unwrap_or_else(|| panic!("no change for {address}"));
    (c.action, c.steps.clone())
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_first_server_rotated_away_and_rebuilt_joins_the_remaining_members_and_a_second_plan_is_empty()
 {
    let mut lab = Lab::start(240);
    for (name, ip) in CP {
        lab.w.sim.start_k3s_host(name, ip).unwrap();
    }
    let token = lab.w.token.clone();
    let cluster = lab.cluster();
    let p = lab.provider(&cluster, Duration::from_secs(20));
    // Made highly available through the kinds: the migration, then the joins in order.
    let s = ha_stack(&token, K3S_VERSION);
    let report = apply_plan(&s, &p, &plan_of(&s, &p).await).await;
    assert!(report.success(), "{report:?}");
    wait_for("three healthy members", || {
        lab.w.sim.etcd_health(lab.w.cluster) == (3, 3)
    })
    .await;
    let members = cluster.etcd_members().await.unwrap();
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(members.iter().all(|m| m.ready), "{members:?}");

    // A server's upgrade waits for etcd to be whole again before it uncordons.
    let s = ha_stack(&token, NEXT);
    let planned = plan_of(&s, &p).await;
    let (_, steps) = steps_of(&planned, "node_k3s_server.k3s-cp3");
    assert_eq!(steps.len(), 6, "{steps:?}");
    assert_eq!(
        steps[4],
        "wait until k3s-cp3 is a healthy etcd member of cluster hetzner-k3s and every member is healthy"
    );
    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");

    // The first server leaves; the API answers through the others meanwhile.
    let r = K3sRotation::new(
        cluster.clone(),
        [("k3s-mgr", true), ("k3s-cp2", true), ("k3s-cp3", true)]
            .map(|(n, srv)| (n, n, Address::new("hetzner_server", n), srv)),
    )
    .drain_timeout(Duration::from_secs(20))
    .gates(WAITS);
    r.preflight("k3s-mgr").await.unwrap();
    r.before("k3s-mgr").await.unwrap();
    // k3s removes the deleted server's member shortly after its Node.
    wait_for("the member removed", || {
        lab.w.sim.etcd_health(lab.w.cluster) == (2, 2)
    })
    .await;
    assert!(lab.w.sim.node(lab.w.cluster, "k3s-mgr").is_none());
    lab.w.sim.remove_host("k3s-mgr");
    let nodes = cluster.nodes().await.expect("answered by another server");
    assert_eq!(nodes.len(), 4, "{nodes:?}");

    // Rebuilt: a fresh host; the kind joins it through a Ready member.
    let keys = std::fs::read_to_string(lab.w.sim.client_key().with_extension("pub")).unwrap();
    lab.w
        .sim
        .boot_k3s_host("k3s-mgr", K3S_SERVER.1, &keys)
        .unwrap();
    let cluster = lab.cluster();
    let p = lab.provider(&cluster, Duration::from_secs(20));
    let planned = plan_of(&s, &p).await;
    let (action, steps) = steps_of(&planned, "node_k3s_server.k3s-mgr");
    assert_eq!(action, Some(Action::Create), "{steps:?}");
    assert!(
        steps[0].starts_with("if cluster hetzner-k3s already has Ready etcd members"),
        "{steps:?}"
    );
    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");
    assert_eq!(
        lab.w.sim.k3s_cluster_of("k3s-mgr"),
        Some(lab.w.cluster),
        "no second cluster"
    );
    let r = K3sRotation::new(
        cluster.clone(),
        [("k3s-mgr", true), ("k3s-cp2", true), ("k3s-cp3", true)]
            .map(|(n, srv)| (n, n, Address::new("hetzner_server", n), srv)),
    )
    .gates(WAITS);
    r.after("k3s-mgr").await.unwrap();
    assert_eq!(lab.w.sim.etcd_health(lab.w.cluster), (3, 3));
    let again = plan_of(&s, &p).await;
    assert!(
        !again.plan.has_changes(),
        "{:?}",
        again.plan.resource_changes
    );
}

#[tokio::test]
async fn deleting_an_agent_drains_it_stops_k3s_and_removes_its_node() {
    let lab = Lab::start(241);
    let cluster = lab.cluster();
    let p = lab.provider(&cluster, Duration::from_secs(20));
    adopt(&lab, &p).await;
    let mut s = StackBuilder::new("hetzner-k3s");
    s.delete_adopted_when_undeclared();
    let (mgr, mgr_ip) = K3S_SERVER;
    let mut server = K3sServer::new(mgr, K3S_VERSION, &lab.w.token);
    server.flannel_iface = Some(K3S_FLANNEL_IFACE.into());
    server.node_taints = vec![K3S_SERVER_TAINT.into()];
    server.node_ip = Some(mgr_ip.into());
    s.add(mgr, server);
    let (w2, w2_ip) = K3S_AGENTS[1];
    s.add(w2, agent(w2, w2_ip, &lab.w.token, K3S_VERSION));
    let s = s.build().unwrap();
    let planned = plan_of(&s, &p).await;
    let (action, steps) = steps_of(&planned, "node_k3s_agent.k3s-w1");
    assert_eq!(action, Some(Action::Delete), "{steps:?}");
    assert_eq!(
        steps,
        [
            "cordon node k3s-w1 of cluster hetzner-k3s",
            "drain node k3s-w1 of cluster hetzner-k3s (evict its pods but DaemonSet and mirror pods; PodDisruptionBudgets respected, refusals retried for up to 20 s)",
            "systemctl stop k3s-agent on k3s-w1",
            "delete node k3s-w1 from cluster hetzner-k3s",
            "run /usr/local/bin/k3s-agent-uninstall.sh on k3s-w1 if it is there",
        ]
    );
    let report = apply_plan(&s, &p, &planned).await;
    assert!(report.success(), "{report:?}");
    assert!(lab.w.sim.node(lab.w.cluster, "k3s-w1").is_none());
    assert_eq!(
        lab.docfast_nodes(),
        [Some("k3s-w2".to_string()), Some("k3s-w2".to_string())]
    );
    // Stopped, so its kubelet does not register the node again.
    let (status, _) = cluster
        .ssh()
        .run_status(
            "k3s-w1",
            &Cmd::new("systemctl").args(["is-active", "k3s-agent"]),
        )
        .await
        .unwrap();
    assert_ne!(status, 0, "k3s-agent still runs on k3s-w1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(lab.w.sim.node(lab.w.cluster, "k3s-w1").is_none());
}

#[tokio::test]
async fn a_cluster_init_server_on_a_cluster_that_does_not_exist_yet_starts_it() {
    let mut lab = Lab::start(242);
    let ip = Ipv4Addr::new(10, 0, 1, 20);
    lab.w.sim.start_k3s_host("k3s-solo", ip).unwrap();
    let solo = Arc::new(
        Cluster::new(
            "solo",
            "10.0.1.20:6443",
            "k3s-solo",
            lab.ssh(),
            lab.dialer.clone(),
        )
        .admin_conf(K3S_YAML)
        .node("k3s-solo", "k3s-solo"),
    );
    let p = lab.provider(&solo, Duration::from_secs(5));
    let mut s = StackBuilder::new("solo");
    let mut v = K3sServer::new("k3s-solo", K3S_VERSION, &lab.w.token);
    v.cluster_init = true;
    v.node_ip = Some(ip.into());
    s.add("k3s-solo", v);
    let s = s.build().unwrap();
    let report = apply_plan(&s, &p, &plan_of(&s, &p).await).await;
    assert!(report.success(), "{report:?}");
    let new = lab.w.sim.k3s_cluster_of("k3s-solo").expect("a cluster");
    assert_ne!(new, lab.w.cluster, "its own cluster, not the hand-made one");
    assert_eq!(lab.w.sim.etcd_health(new), (1, 1));
}

#[tokio::test]
async fn before_on_an_agent_whose_machine_is_already_gone_still_leaves_the_cluster() {
    let mut lab = Lab::start(243);
    let cluster = lab.cluster();
    let r = rotation(cluster.clone());
    // An interrupted rotation: the machine was destroyed before `before` finished.
    lab.w.sim.remove_host("k3s-w1");
    r.before("k3s-w1").await.unwrap();
    assert!(lab.w.sim.node(lab.w.cluster, "k3s-w1").is_none());
    wait_for("the replacement pod Ready on k3s-w2", || {
        lab.w
            .sim
            .pods(lab.w.cluster, DOCFAST_NAMESPACE)
            .iter()
            .filter(|p| p.ready && p.node.as_deref() == Some("k3s-w2"))
            .count()
            == 2
    })
    .await;
}
