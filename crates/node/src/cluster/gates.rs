//! Gates on a cluster, as core [`Probe`]s a stack declares with `s.gate(...)`: a node is
//! Ready, etcd has at least N Ready members, and `/readyz` through an address answers 200
//! with the cluster CA and that address among the certificate's SANs.

use std::sync::Arc;

use async_trait::async_trait;
use cairn_core::gate::Probe;

use super::Cluster;
use super::connect::split_endpoint;

/// Passes when the node is Ready.
#[derive(Debug, Clone)]
pub struct NodeReady {
    cluster: Arc<Cluster>,
    node: String,
}

impl NodeReady {
    /// Waits for node `node` of `cluster` to be Ready.
    pub fn new(cluster: Arc<Cluster>, node: impl Into<String>) -> Self {
        NodeReady {
            cluster,
            node: node.into(),
        }
    }
}

#[async_trait]
impl Probe for NodeReady {
    fn describe(&self) -> String {
        format!(
            "node {} of cluster {} is Ready",
            self.node,
            self.cluster.name()
        )
    }

    async fn check(&self) -> Result<(), String> {
        match self
            .cluster
            .node_state(&self.node)
            .await
            .map_err(|e| e.to_string())?
        {
            None => Err(format!(
                "cluster {} has no node {}",
                self.cluster.name(),
                self.node
            )),
            Some(n) if n.ready => Ok(()),
            Some(n) => Err(format!("node {} is not Ready ({})", self.node, n.why)),
        }
    }
}

/// Passes when etcd has at least `min` Ready members.
#[derive(Debug, Clone)]
pub struct EtcdMembersReady {
    cluster: Arc<Cluster>,
    min: usize,
}

impl EtcdMembersReady {
    /// Waits for `cluster`'s etcd to have at least `min` Ready members.
    pub fn new(cluster: Arc<Cluster>, min: usize) -> Self {
        EtcdMembersReady { cluster, min }
    }
}

#[async_trait]
impl Probe for EtcdMembersReady {
    fn describe(&self) -> String {
        format!(
            "etcd of cluster {} has at least {} Ready members",
            self.cluster.name(),
            self.min
        )
    }

    async fn check(&self) -> Result<(), String> {
        let members = self
            .cluster
            .etcd_members()
            .await
            .map_err(|e| e.to_string())?;
        let ready: Vec<&str> = members
            .iter()
            .filter(|m| m.ready)
            .map(|m| m.node.as_str())
            .collect();
        if ready.len() >= self.min {
            Ok(())
        } else {
            Err(format!(
                "etcd of cluster {} has {} Ready members [{}], want at least {}",
                self.cluster.name(),
                ready.len(),
                ready.join(", "),
                self.min
            ))
        }
    }
}

/// Passes when `GET /readyz` through `address` answers 200, the certificate verifies
/// against the cluster CA, and it names `address`'s host among its SANs.
#[derive(Debug, Clone)]
pub struct ApiserverReady {
    cluster: Arc<Cluster>,
    address: String,
}

impl ApiserverReady {
    /// Waits for the apiserver behind `address` (`host:port` as declared, e.g. the VIP
    /// `10.0.20.99:6443`).
    pub fn new(cluster: Arc<Cluster>, address: impl Into<String>) -> Self {
        ApiserverReady {
            cluster,
            address: address.into(),
        }
    }
}

/// Checks that the SANs `seen` name the host of `address`; the error names both.
pub(crate) fn require_san(address: &str, seen: &[String]) -> Result<(), String> {
    let (host, _) = split_endpoint(address)?;
    if seen.iter().any(|s| s.eq_ignore_ascii_case(&host)) {
        Ok(())
    } else {
        Err(format!(
            "the apiserver certificate presented through {address} does not name {host}: its SANs are [{}]",
            seen.join(", ")
        ))
    }
}

#[async_trait]
impl Probe for ApiserverReady {
    fn describe(&self) -> String {
        format!(
            "GET https://{}/readyz answers 200 with cluster {}'s CA and {} in the certificate's SANs",
            self.address,
            self.cluster.name(),
            split_endpoint(&self.address).map_or(self.address.clone(), |(h, _)| h)
        )
    }

    async fn check(&self) -> Result<(), String> {
        let sans = self.cluster.readyz(&self.address).await?;
        require_san(&self.address, &sans)
    }
}

impl Cluster {
    /// A gate probe: node `node` is Ready.
    pub fn node_ready(self: &Arc<Self>, node: impl Into<String>) -> NodeReady {
        NodeReady::new(self.clone(), node)
    }

    /// A gate probe: etcd has at least `min` Ready members.
    pub fn etcd_members_ready(self: &Arc<Self>, min: usize) -> EtcdMembersReady {
        EtcdMembersReady::new(self.clone(), min)
    }

    /// A gate probe: `/readyz` through `address` answers 200 with the cluster CA and the
    /// address in the certificate's SANs.
    pub fn apiserver_ready(self: &Arc<Self>, address: impl Into<String>) -> ApiserverReady {
        ApiserverReady::new(self.clone(), address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_san_names_the_address_and_the_sans_seen() {
        let seen = vec!["10.0.20.100".to_string(), "kubernetes".into()];
        assert!(require_san("10.0.20.100:6443", &seen).is_ok());
        let e = require_san("10.0.20.99:6443", &seen).unwrap_err();
        assert!(
            e.contains("10.0.20.99:6443") && e.contains("[10.0.20.100, kubernetes]"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod api_tests {
    use super::super::fake::Fake;
    use cairn_core::gate::Probe;

    #[tokio::test]
    async fn node_ready_gate_follows_the_nodes_ready_condition_through_the_mapped_endpoint() {
        let fake = Fake::start("127.0.20.100", &["10.0.20.100"]).await;
        let cluster = fake.cluster("10.0.20.100");
        let gate = cluster.node_ready("k8s-master-2");
        let e = gate.check().await.unwrap_err();
        assert!(e.contains("has no node k8s-master-2"), "{e}");
        fake.world
            .lock()
            .unwrap()
            .nodes
            .insert("k8s-master-2".into(), (false, true));
        let e = gate.check().await.unwrap_err();
        assert!(
            e.contains("not Ready") && e.contains("KubeletNotReady"),
            "{e}"
        );
        fake.world
            .lock()
            .unwrap()
            .nodes
            .insert("k8s-master-2".into(), (true, true));
        assert_eq!(gate.check().await, Ok(()));
        let w = fake.world.lock().unwrap();
        assert_eq!(w.requests.len(), 3, "{:?}", w.requests);
        assert_eq!(
            w.anonymous_refused, 0,
            "the admin certificate was presented"
        );
    }

    #[tokio::test]
    async fn etcd_gate_counts_only_ready_members() {
        let fake = Fake::start("127.0.21.100", &["10.0.21.100"]).await;
        let cluster = fake.cluster("10.0.21.100");
        {
            let mut w = fake.world.lock().unwrap();
            w.etcd.insert("k8s-master-1".into(), true);
            w.etcd.insert("k8s-master-2".into(), false);
        }
        let e = cluster.etcd_members_ready(2).check().await.unwrap_err();
        assert!(
            e.contains("has 1 Ready members [k8s-master-1], want at least 2"),
            "{e}"
        );
        fake.world
            .lock()
            .unwrap()
            .etcd
            .insert("k8s-master-2".into(), true);
        assert_eq!(cluster.etcd_members_ready(2).check().await, Ok(()));
    }

    #[tokio::test]
    async fn readyz_gate_passes_only_when_the_address_is_in_the_certificates_sans() {
        // Served at the VIP's mapped address, with a certificate that names only the master.
        let fake = Fake::start("127.0.22.99", &["10.0.22.100"]).await;
        let cluster = fake.cluster("10.0.22.100");
        let vip = format!("10.0.22.99:{}", fake.port);
        let e = cluster.apiserver_ready(&vip).check().await.unwrap_err();
        assert!(e.contains(&vip), "{e}");
        assert!(e.contains("does not name 10.0.22.99"), "{e}");
        assert!(e.contains("10.0.22.100"), "the SANs seen are listed: {e}");
        // The same server with the VIP in its certificate passes.
        let good = Fake::start("127.0.23.99", &["10.0.23.99", "10.0.23.100"]).await;
        let cluster = good.cluster("10.0.23.100");
        let vip = format!("10.0.23.99:{}", good.port);
        assert_eq!(cluster.apiserver_ready(&vip).check().await, Ok(()));
    }

    #[tokio::test]
    async fn an_unmapped_endpoint_is_refused_before_any_connection() {
        let fake = Fake::start("127.0.24.100", &["10.0.24.100"]).await;
        let cluster = fake.cluster("192.0.2.10");
        let e = cluster.node_ready("x").check().await.unwrap_err();
        assert!(e.contains("not a loopback address"), "{e}");
    }
}
