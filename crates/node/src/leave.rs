//! A k3s node leaving its cluster and coming back, shared by a rotation
//! ([`crate::rotation::K3sRotation`]) and the k3s kinds (a rolling upgrade, a delete):
//! cordon → drain → `systemctl stop <unit>` (else the kubelet registers its Node again) →
//! delete the Node object (k3s then removes a server's etcd member and the node's password
//! Secret, so a rebuilt host of the same name may join) → for a server, wait until its etcd
//! member is gone. Each step accepts what an interrupted earlier run left: a node already
//! deleted, a host already gone.

use std::time::Duration;

use crate::cluster::Cluster;
use crate::error::NodeError;
use crate::kinds::k3s::Role;
use crate::provider::Waits;
use crate::ssh::Cmd;

/// The steps of [`leave`], one line each, as plans show them.
pub fn leave_steps(
    cluster: &str,
    node: &str,
    host: &str,
    role: Role,
    drain: Duration,
) -> Vec<String> {
    let mut s = vec![
        format!("cordon node {node} of cluster {cluster}"),
        format!(
            "drain node {node} (evict its pods but DaemonSet and mirror pods; PodDisruptionBudgets respected, refusals retried for up to {})",
            crate::cluster::ops::human(drain)
        ),
        format!("systemctl stop {} on {host}", role.unit()),
        format!("delete node {node} from cluster {cluster}"),
    ];
    if role == Role::Server {
        s.push(format!("wait until the etcd member of {node} is gone"));
    }
    s
}

/// The steps of [`come_back`], one line each.
pub fn back_steps(cluster: &str, node: &str, role: Role) -> Vec<String> {
    let mut s = vec![format!(
        "wait until node {node} of cluster {cluster} is Ready"
    )];
    if role == Role::Server {
        s.push(format!(
            "wait until {node} is a healthy etcd member and every member is healthy"
        ));
    }
    s.push(format!("uncordon node {node}"));
    s
}

/// Cordons and drains `node` (when it is still registered); a drain timeout leaves it
/// cordoned.
pub async fn cordon_and_drain(
    cluster: &Cluster,
    node: &str,
    drain: Duration,
) -> Result<(), NodeError> {
    if cluster.node_state(node).await?.is_none() {
        tracing::info!(
            cluster = cluster.name(),
            node,
            "node already gone: nothing to drain"
        );
        return Ok(());
    }
    cluster.cordon(node).await?;
    cluster.drain(node, drain).await?;
    Ok(())
}

/// Takes `node` (k3s of `role` on `host`) out of its cluster, as the module says.
pub async fn leave(
    cluster: &Cluster,
    node: &str,
    host: &str,
    role: Role,
    drain: Duration,
    waits: Waits,
) -> Result<(), NodeError> {
    cordon_and_drain(cluster, node, drain).await?;
    stop_unit(cluster, node, host, role.unit(), waits).await?;
    cluster.delete_node(node).await?;
    if role == Role::Server {
        wait_member_gone(cluster, node, waits).await?;
    }
    Ok(())
}

/// `systemctl stop <unit>` on `host`. A host that no longer answers (already replaced) is
/// fine once its node is NotReady or gone (waited for within `waits`: while it is Ready,
/// k3s there may still run and would register the node again); a unit that is not
/// installed is fine.
pub async fn stop_unit(
    cluster: &Cluster,
    node: &str,
    host: &str,
    unit: &str,
    waits: Waits,
) -> Result<(), NodeError> {
    match cluster
        .ssh()
        .run_status(host, &Cmd::root("systemctl").args(["stop", unit]))
        .await
    {
        Ok((0, _)) => Ok(()),
        // 5: the unit is not loaded (k3s not installed there).
        Ok((5, _)) => Ok(()),
        Ok((status, out)) => Err(NodeError::Command {
            host: host.into(),
            program: format!("systemctl stop {unit}"),
            status,
            stderr: crate::error::trim_stderr(&out.stderr),
        }),
        Err(e) if e.is_connection() || matches!(e, NodeError::UnknownHost(_)) => {
            let what = format!(
                "host {host} does not answer ({e}), so node {node} is NotReady or gone before it is taken as already stopped"
            );
            let r = crate::wait::until(waits, &what, || async {
                match cluster.node_state(node).await.map_err(|e| e.to_string())? {
                    Some(n) if n.ready => Err(format!("node {node} is still Ready")),
                    _ => Ok(()),
                }
            })
            .await;
            waited(cluster, r)?;
            tracing::info!(
                host,
                node,
                "host gone and node not Ready: taken as already stopped"
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn waited(cluster: &Cluster, r: Result<(), String>) -> Result<(), NodeError> {
    r.map_err(|message| NodeError::Kube {
        cluster: cluster.name().into(),
        message,
    })
}

/// Waits until `node` is no etcd member any more.
pub async fn wait_member_gone(
    cluster: &Cluster,
    node: &str,
    waits: Waits,
) -> Result<(), NodeError> {
    let what = format!("the etcd member of node {node} is gone");
    let r = crate::wait::until(waits, &what, || async {
        let members = cluster.etcd_members().await.map_err(|e| e.to_string())?;
        match members.iter().any(|m| m.node == node) {
            true => Err(format!("{node} is still a member")),
            false => Ok(()),
        }
    })
    .await;
    waited(cluster, r)
}

/// Waits until `node` is registered and Ready.
pub async fn wait_ready(cluster: &Cluster, node: &str, waits: Waits) -> Result<(), NodeError> {
    let what = format!("node {node} of cluster {} is Ready", cluster.name());
    let r = crate::wait::until(waits, &what, || async {
        match cluster.node_state(node).await.map_err(|e| e.to_string())? {
            None => Err(format!("cluster {} has no node {node} yet", cluster.name())),
            Some(n) if !n.ready => Err(n.why),
            Some(_) => Ok(()),
        }
    })
    .await;
    waited(cluster, r)
}

/// Waits until `node` is an etcd member and every member is healthy.
pub async fn wait_etcd_healthy(
    cluster: &Cluster,
    node: &str,
    waits: Waits,
) -> Result<(), NodeError> {
    let what = format!("node {node} is a healthy etcd member and every member is healthy");
    let r = crate::wait::until(waits, &what, || async {
        let members = cluster.etcd_members().await.map_err(|e| e.to_string())?;
        let healthy = members.iter().filter(|m| m.ready).count();
        if !members.iter().any(|m| m.node == node && m.ready) {
            return Err(format!("{node} is not a healthy member yet"));
        }
        if healthy < members.len() {
            return Err(format!("{healthy} of {} members healthy", members.len()));
        }
        Ok(())
    })
    .await;
    waited(cluster, r)
}

/// Brings `node` back: Ready, for a server its etcd member healthy, then uncordoned.
pub async fn come_back(
    cluster: &Cluster,
    node: &str,
    role: Role,
    waits: Waits,
) -> Result<(), NodeError> {
    wait_ready(cluster, node, waits).await?;
    if role == Role::Server {
        wait_etcd_healthy(cluster, node, waits).await?;
    }
    cluster.uncordon(node).await
}
