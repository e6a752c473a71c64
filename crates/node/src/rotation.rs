//! [`K3sRotation`]: a k3s cluster's nodes as a [`Rotation`] — which machine rebuilds each
//! node, the checks before one may go (every node Ready; for a server, etcd keeps a majority
//! without it), how it leaves the cluster before its machine is replaced
//! ([`crate::leave::leave`]) and how it is brought back after (Ready, etcd healthy again,
//! uncordoned).
//!
//! ```ignore
//! let rotation = K3sRotation::new(cluster.clone(), [
//!     ("k3s-mgr", "k3s-mgr", Address::new("hetzner_server", "k3s-mgr"), true),
//!     ("k3s-w1", "k3s-w1", Address::new("hetzner_server", "k3s-w1"), false),
//! ]);
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::rotation::Rotation;
use cairn_core::value::Address;

use crate::cluster::Cluster;
use crate::error::NodeError;
use crate::kinds::k3s::Role;
use crate::leave;
use crate::provider::Waits;

/// One rotatable node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedNode {
    /// Its Kubernetes node name.
    pub node: String,
    /// Its declared host (where k3s is stopped over SSH).
    pub host: String,
    /// The resource whose replacement rebuilds it.
    pub machine: Address,
    /// Whether it runs k3s as a server (an etcd member).
    pub server: bool,
}

impl RotatedNode {
    fn role(&self) -> Role {
        if self.server {
            Role::Server
        } else {
            Role::Agent
        }
    }
}

/// A k3s cluster's rotation.
#[derive(Debug)]
pub struct K3sRotation {
    cluster: Arc<Cluster>,
    nodes: Vec<RotatedNode>,
    drain_timeout: Duration,
    gates: Waits,
    period: Option<Duration>,
}

impl K3sRotation {
    /// The rotation of `cluster`'s `nodes`, `(node, host, machine, is_server)` in the order
    /// `--all` rotates them (servers first). Drains time out after 300 s; gates wait as
    /// [`Waits::default`].
    pub fn new<N: Into<String>, H: Into<String>>(
        cluster: Arc<Cluster>,
        nodes: impl IntoIterator<Item = (N, H, Address, bool)>,
    ) -> Self {
        K3sRotation {
            cluster,
            nodes: nodes
                .into_iter()
                .map(|(node, host, machine, server)| RotatedNode {
                    node: node.into(),
                    host: host.into(),
                    machine,
                    server,
                })
                .collect(),
            drain_timeout: Duration::from_secs(300),
            gates: Waits::default(),
            period: None,
        }
    }

    /// How long a drain may take before `before` fails (the node stays cordoned).
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.drain_timeout = d;
        self
    }

    /// How long and how often the gates (node Ready, etcd healthy, member gone) wait.
    pub fn gates(mut self, w: Waits) -> Self {
        self.gates = w;
        self
    }

    /// How often each node should be rotated.
    pub fn period(mut self, p: Duration) -> Self {
        self.period = Some(p);
        self
    }

    /// The cluster rotated.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    fn get(&self, node: &str) -> Result<&RotatedNode, String> {
        self.nodes.iter().find(|n| n.node == node).ok_or_else(|| {
            format!(
                "{node} is not a node of cluster {}'s rotation (its nodes: {})",
                self.cluster.name(),
                self.nodes().join(", ")
            )
        })
    }

    /// The checks of [`Rotation::preflight`], with typed errors from the API.
    async fn check(&self, n: &RotatedNode) -> Result<Result<(), String>, NodeError> {
        let c = &self.cluster;
        let nodes = c.nodes().await?;
        // The node being rotated may be absent or cordoned and NotReady after an interrupted
        // rotation (it had begun leaving); every other node must be Ready.
        let cordoned = c.cordoned(&n.node).await?.unwrap_or(true);
        for s in &nodes {
            if !s.ready && (s.name != n.node || !cordoned) {
                return Ok(Err(format!(
                    "node {} of cluster {} is NotReady ({}): rotating {} now would take more capacity away; bring {} back first",
                    s.name,
                    c.name(),
                    s.why,
                    n.node,
                    s.name
                )));
            }
        }
        for r in &self.nodes {
            if r.node != n.node && !nodes.iter().any(|s| s.name == r.node) {
                return Ok(Err(format!(
                    "node {} of cluster {} is not registered: rotating {} now would take more capacity away",
                    r.node,
                    c.name(),
                    n.node
                )));
            }
        }
        if !n.server {
            return Ok(Ok(()));
        }
        let members = c.etcd_members().await?;
        let servers = self.nodes.iter().filter(|r| r.server).count();
        if members.len() <= 1 && servers <= 1 {
            return Ok(Err(format!(
                "node {} is the only server of cluster {}: rotating it takes the cluster's datastore and API down; add servers (embedded etcd with three members) before rotating it",
                n.node,
                c.name()
            )));
        }
        let total = members.len();
        let healthy = members.iter().filter(|m| m.ready).count();
        let leaving = members.iter().any(|m| m.node == n.node && m.ready);
        let after = healthy - usize::from(leaving);
        if after * 2 <= total {
            return Ok(Err(format!(
                "rotating server {} would leave {after} healthy etcd members of {total} in cluster {}; a majority ({}) is needed, so etcd would lose quorum",
                n.node,
                c.name(),
                total / 2 + 1
            )));
        }
        Ok(Ok(()))
    }
}

#[async_trait]
impl Rotation for K3sRotation {
    fn nodes(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.node.clone()).collect()
    }

    fn machine(&self, node: &str) -> Option<Address> {
        self.get(node).ok().map(|n| n.machine.clone())
    }

    fn period(&self) -> Option<Duration> {
        self.period
    }

    async fn preflight(&self, node: &str) -> Result<(), String> {
        let n = self.get(node)?;
        self.check(n).await.map_err(|e| e.to_string())?
    }

    fn before_steps(&self, node: &str) -> Vec<String> {
        let Ok(n) = self.get(node) else {
            return Vec::new();
        };
        leave::leave_steps(
            self.cluster.name(),
            &n.node,
            &n.host,
            n.role(),
            self.drain_timeout,
        )
    }

    async fn before(&self, node: &str) -> Result<(), String> {
        let n = self.get(node)?;
        leave::leave(
            &self.cluster,
            &n.node,
            &n.host,
            n.role(),
            self.drain_timeout,
            self.gates,
        )
        .await
        .map_err(|e| e.to_string())
    }

    fn after_steps(&self, node: &str) -> Vec<String> {
        let Ok(n) = self.get(node) else {
            return Vec::new();
        };
        leave::back_steps(self.cluster.name(), &n.node, n.role())
    }

    async fn after(&self, node: &str) -> Result<(), String> {
        let n = self.get(node)?;
        leave::come_back(&self.cluster, &n.node, n.role(), self.gates)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fake::Fake;

    async fn lab(net: u8, nodes: &[(&str, bool, bool)]) -> (Fake, K3sRotation) {
        let fake = Fake::start(&format!("127.0.{net}.5"), &[&format!("10.0.{net}.5")]).await;
        {
            let mut w = fake.world.lock().unwrap();
            w.k3s = true;
            for (n, ready, server) in nodes {
                w.nodes.insert((*n).into(), (*ready, *server));
            }
        }
        let cluster = fake.cluster(&format!("10.0.{net}.5"));
        let r = K3sRotation::new(
            cluster,
            nodes
                .iter()
                .map(|(n, _, server)| (*n, *n, Address::new("hetzner_server", n), *server)),
        );
        (fake, r)
    }

    #[tokio::test]
    async fn preflight_refuses_while_another_node_is_not_ready_naming_it() {
        let (_f, r) = lab(
            41,
            &[
                ("k3s-mgr", true, true),
                ("k3s-cp2", true, true),
                ("k3s-cp3", true, true),
                ("k3s-w1", true, false),
                ("k3s-w2", false, false),
            ],
        )
        .await;
        let e = r.preflight("k3s-w1").await.unwrap_err();
        assert!(
            e.starts_with("node k3s-w2 of cluster homelab is NotReady"),
            "{e}"
        );
        assert!(e.contains("rotating k3s-w1"), "{e}");
    }

    #[tokio::test]
    async fn preflight_refuses_the_only_server_and_a_server_whose_leaving_costs_quorum() {
        let (_f, r) = lab(42, &[("k3s-mgr", true, true), ("k3s-w1", true, false)]).await;
        let e = r.preflight("k3s-mgr").await.unwrap_err();
        assert!(
            e.contains("k3s-mgr is the only server of cluster homelab"),
            "{e}"
        );
        assert_eq!(r.preflight("k3s-w1").await, Ok(()));
        let (_f, r) = lab(43, &[("k3s-mgr", true, true), ("k3s-cp2", true, true)]).await;
        let e = r.preflight("k3s-cp2").await.unwrap_err();
        assert!(
            e.contains("rotating server k3s-cp2 would leave 1 healthy etcd members of 2")
                && e.contains("a majority (2) is needed"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn preflight_lets_one_of_three_healthy_servers_go_and_steps_are_shown_per_role() {
        let (_f, r) = lab(
            44,
            &[
                ("k3s-mgr", true, true),
                ("k3s-cp2", true, true),
                ("k3s-cp3", true, true),
                ("k3s-w1", true, false),
            ],
        )
        .await;
        assert_eq!(r.preflight("k3s-cp2").await, Ok(()));
        assert!(
            r.preflight("k3s-nope")
                .await
                .unwrap_err()
                .contains("not a node")
        );
        let before = r.before_steps("k3s-cp2");
        assert_eq!(before.len(), 5, "{before:?}");
        assert!(
            before[2].contains("systemctl stop k3s on k3s-cp2"),
            "{before:?}"
        );
        assert!(
            before[4].contains("etcd member of k3s-cp2 is gone"),
            "{before:?}"
        );
        let agent = r.before_steps("k3s-w1");
        assert_eq!(agent.len(), 4, "{agent:?}");
        assert!(agent[2].contains("systemctl stop k3s-agent"), "{agent:?}");
        assert_eq!(r.after_steps("k3s-w1").len(), 2);
        assert_eq!(r.after_steps("k3s-cp2").len(), 3);
        assert_eq!(
            r.machine("k3s-w1"),
            Some(Address::new("hetzner_server", "k3s-w1"))
        );
    }
}
