//! Gates the stacks share: probes over their hosts that no provider declares.

use std::sync::Arc;

use cairn_core::gate::Probe;
use cairn_node::{Cmd, HostKeyTrust, Ssh};

/// Gate: a host answers over SSH (cloud-init finished, sshd up, cairn's key accepted).
pub(crate) struct SshAnswers {
    /// The hosts.
    pub ssh: Arc<Ssh>,
    /// The host's declared name.
    pub host: String,
}

#[async_trait::async_trait]
impl Probe for SshAnswers {
    fn describe(&self) -> String {
        let h = self.ssh.host(&self.host).ok();
        let accept_new = matches!(h.map(|h| &h.trust), Some(HostKeyTrust::AcceptNew(_)));
        format!(
            "ssh {}@{} runs `true`{}",
            h.map_or("?", |h| h.user.as_str()),
            h.map_or(self.host.as_str(), |h| h.address.as_str()),
            if accept_new {
                " (NEW HOST: its key is accepted on first use and recorded — accept-new)"
            } else {
                ""
            }
        )
    }

    async fn check(&self) -> Result<(), String> {
        self.ssh
            .run(&self.host, &Cmd::new("true"))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Gate: etcd has at least `members` Ready members and every node of the cluster is Ready
/// (a highly available control plane, nothing left behind).
pub(crate) struct QuorumAndNodesReady {
    /// The cluster.
    pub cluster: Arc<cairn_node::Cluster>,
    /// How many Ready etcd members it needs.
    pub members: usize,
}

#[async_trait::async_trait]
impl Probe for QuorumAndNodesReady {
    fn describe(&self) -> String {
        format!(
            "etcd of cluster {} has {} Ready members and every node is Ready",
            self.cluster.name(),
            self.members
        )
    }

    async fn check(&self) -> Result<(), String> {
        cairn_node::EtcdMembersReady::new(self.cluster.clone(), self.members)
            .check()
            .await?;
        let nodes = self.cluster.nodes().await.map_err(|e| e.to_string())?;
        let not_ready: Vec<String> = nodes
            .iter()
            .filter(|n| !n.ready)
            .map(|n| format!("{} ({})", n.name, n.why))
            .collect();
        if nodes.is_empty() {
            return Err(format!("cluster {} has no nodes", self.cluster.name()));
        }
        if not_ready.is_empty() {
            Ok(())
        } else {
            Err(format!("not Ready: {}", not_ready.join(", ")))
        }
    }
}
