//! `node_kubeconfig_server`: the `server` URL of the cluster a kubeconfig on a host uses,
//! e.g. a worker's `/etc/kubernetes/kubelet.conf`. Observed over SSH; converged by editing
//! that one YAML field atomically with a backup, then restarting kubelet as its own step.
//! A kubelet reads the file only when it starts, so observe also compares the file's
//! modification time with the kubelet's start: a kubelet older than the file (an apply
//! interrupted between the edit and the restart) still talks to the old server, and the
//! restart is planned again.

use std::fmt;

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, Op, Query};
use cairn_core::{FieldError, Marker, Resource, Schema};
use serde::{Deserialize, Serialize};

use super::{by_host, marker_line, parse_marker};
use crate::NodeContext;
use crate::error::NodeError;
use crate::files::{self, RemoteFile, Replace};
use crate::kubeconfig;
use crate::ssh::{Cmd, Ssh};

/// The kubeconfig kubelet reads on a kubeadm node.
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";

/// A kubeconfig's server on a host: the cluster of its current context (or its only
/// cluster) must point at `server`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeconfigServer {
    /// The host's declared name.
    pub host: String,
    /// The kubeconfig's absolute path.
    pub path: String,
    /// The server URL, e.g. `https://10.0.20.99:6443`.
    pub server: String,
}

impl KubeconfigServer {
    /// The server of `/etc/kubernetes/kubelet.conf` on `host`.
    pub fn kubelet(host: impl Into<String>, server: impl Into<String>) -> Self {
        KubeconfigServer {
            host: host.into(),
            path: KUBELET_CONF.into(),
            server: server.into(),
        }
    }
}

impl Resource for KubeconfigServer {
    const KIND: &'static str = "node_kubeconfig_server";
    const PROVIDER: &'static str = "node";

    fn key(&self) -> String {
        format!("{}:{}", self.host, self.path)
    }

    fn schema() -> Schema {
        Schema {
            replace: &["host", "path"],
            computed: &["cluster"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        if self.host.is_empty() || self.host.contains(':') {
            e.push(FieldError::new("host", "a declared host name, without ':'"));
        }
        if !self.path.starts_with('/') {
            e.push(FieldError::new("path", "must be an absolute path"));
        }
        if !self.server.starts_with("https://") {
            e.push(FieldError::new("server", "must be an https:// URL"));
        }
        e
    }
}

/// What is found on the host: the spec's fields plus the cluster whose server it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeconfigServerObserved {
    /// The host's declared name.
    pub host: String,
    /// The kubeconfig's path.
    pub path: String,
    /// The server URL found.
    pub server: String,
    /// The cluster entry it belongs to.
    pub cluster: String,
    /// Set when the running kubelet started before the file last changed, so it does not
    /// use what the file says yet; says why. Absent when nothing is pending (it is not a
    /// spec field, so while present the plan shows it going away).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_pending: Option<String>,
}

/// Why a restart is pending, as observed and shown in the plan.
pub const RESTART_PENDING: &str = "kubelet started before kubelet.conf changed: restart pending";

/// Prints the kubelet's start (Unix seconds, or `-` when it never started or systemd does
/// not say), then each path's modification time (or `-` when missing), one per line.
/// systemctl prints timestamps in its caller's zone: UTC, so `date` reads them unambiguously.
const STARTED_AND_MTIMES: &str = r#"t=$(TZ=UTC systemctl show kubelet -p ActiveEnterTimestamp --value 2>/dev/null)
if [ -n "$t" ]; then date -d "$t" +%s 2>/dev/null || echo -; else echo -; fi
for p in "$@"; do stat -c %Y -- "$p" 2>/dev/null || echo -; done"#;

/// The staged steps of a change, shown in the plan and executed in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeconfigStep {
    /// Edit the server field (atomically, with a backup).
    SetServer {
        /// The host.
        host: String,
        /// The file.
        path: String,
        /// The server now.
        from: String,
        /// The server after.
        to: String,
    },
    /// Restart kubelet so it reconnects to the new server.
    RestartKubelet {
        /// The host.
        host: String,
        /// Whether it restarts only because the file already changed before the running
        /// kubelet started (an earlier apply was interrupted before its restart).
        pending: bool,
    },
    /// Wait until the host's node is Ready again, with a status posted after the restart
    /// (a few seconds NotReady is expected; the wait is bounded by the provider's waits).
    WaitNodeReady {
        /// The node.
        node: String,
        /// Its cluster.
        cluster: String,
    },
}

impl fmt::Display for KubeconfigStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubeconfigStep::SetServer {
                host,
                path,
                from,
                to,
            } => write!(
                f,
                "set server in {path} on {host}: {from} -> {to} (atomic, with backup)"
            ),
            KubeconfigStep::RestartKubelet { host, pending } => {
                write!(f, "systemctl restart kubelet on {host}")?;
                if *pending {
                    write!(f, " ({RESTART_PENDING})")?;
                }
                Ok(())
            }
            KubeconfigStep::WaitNodeReady { node, cluster } => {
                write!(
                    f,
                    "wait until node {node} of cluster {cluster} is Ready again"
                )
            }
        }
    }
}

fn resource(key: &str) -> String {
    format!("{}[{key}]", KubeconfigServer::KIND)
}

fn marker_path(path: &str) -> String {
    format!("{path}.cairn-owner")
}

/// Observes the kubeconfigs of `keys` (`host:path`): one command per host (the kubelet's
/// start, the files' modification times and contents), hosts at once.
pub async fn observe(
    ssh: &Ssh,
    keys: &[String],
) -> Result<Vec<Found<KubeconfigServerObserved>>, NodeError> {
    let hosts = by_host(keys);
    let per_host = hosts.iter().map(|(host, paths)| async move {
        let wanted: Vec<String> = paths
            .iter()
            .flat_map(|p| [p.to_string(), marker_path(p)])
            .collect();
        let (times, files) =
            files::read_files_after(ssh, host, &wanted, STARTED_AND_MTIMES, 1 + wanted.len())
                .await?;
        let times: Vec<Option<i64>> = times.iter().map(|l| l.trim().parse().ok()).collect();
        let started = times[0];
        let mtimes = times[1..].iter().step_by(2).copied();
        let mut found = Vec::new();
        for ((path, pair), mtime) in paths.iter().zip(files.chunks(2)).zip(mtimes) {
            let key = format!("{host}:{path}");
            let text = match &pair[0] {
                RemoteFile::Missing => continue,
                RemoteFile::NotAFile(what) => {
                    return Err(NodeError::NotAFile {
                        resource: resource(&key),
                        host: host.to_string(),
                        path: path.to_string(),
                        what: what.clone(),
                    });
                }
                RemoteFile::File(b) => String::from_utf8_lossy(b).into_owned(),
            };
            let field = kubeconfig::find_server(&text).map_err(|m| NodeError::Resource {
                resource: resource(&key),
                message: format!("{path} on host {host}: {m}"),
            })?;
            let marker = match &pair[1] {
                RemoteFile::File(b) => parse_marker(&String::from_utf8_lossy(b)),
                _ => None,
            };
            let value = KubeconfigServerObserved {
                host: host.to_string(),
                path: path.to_string(),
                server: field.server,
                cluster: field.cluster,
                // Whole seconds on both sides: an edit within the second the kubelet
                // started counts as seen (a restart right after an edit is not re-planned).
                restart_pending: match (started, mtime) {
                    (Some(s), Some(m)) if s < m => Some(RESTART_PENDING.to_string()),
                    _ => None,
                },
            };
            found.push(Found::new(key, value, marker));
        }
        Ok::<_, NodeError>(found)
    });
    let results = futures::future::join_all(per_host).await;
    let mut out = Vec::new();
    for r in results {
        out.extend(r?);
    }
    Ok(out)
}

/// The steps from `before` to `after`: the edit and the restart when the server moves (the
/// restart alone when the file is right but the kubelet started before it changed), then,
/// when the host is a declared cluster node (`node` = its cluster and node name), a wait
/// until that node is Ready again; none when only the ownership marker is written.
pub fn steps(
    before: Option<&KubeconfigServerObserved>,
    after: Option<&KubeconfigServer>,
    node: Option<(&str, &str)>,
) -> Vec<KubeconfigStep> {
    match (before, after) {
        (Some(b), Some(a)) if b.server != a.server || b.restart_pending.is_some() => {
            let mut s = Vec::new();
            if b.server != a.server {
                s.push(KubeconfigStep::SetServer {
                    host: a.host.clone(),
                    path: a.path.clone(),
                    from: b.server.clone(),
                    to: a.server.clone(),
                });
            }
            s.push(KubeconfigStep::RestartKubelet {
                host: a.host.clone(),
                pending: b.server == a.server,
            });
            if let Some((cluster, node)) = node {
                s.push(KubeconfigStep::WaitNodeReady {
                    node: node.into(),
                    cluster: cluster.into(),
                });
            }
            s
        }
        _ => Vec::new(),
    }
}

/// Waits until `node` is Ready with a status the kubelet posted after `restarted` (Unix
/// seconds): a status from before the restart says nothing about the new server.
async fn wait_ready(
    ctx: &NodeContext,
    key: &str,
    cluster: &str,
    node: &str,
    restarted: i64,
) -> Result<(), NodeError> {
    let c = ctx.get_cluster(cluster)?;
    let what = format!("node {node} is Ready again after the kubelet restart");
    crate::wait::until(ctx.wait_timing(), &what, || async {
        match c.node_state(node).await.map_err(|e| e.to_string())? {
            None => Err(format!("cluster {cluster} has no node {node}")),
            Some(n) if !n.ready => Err(n.why),
            // Clocks of this machine and the node may differ by a little.
            Some(n) if n.heartbeat.is_some_and(|h| h + 5 < restarted) => Err(format!(
                "its Ready status is from before the restart (posted at {}, restart at {restarted})",
                n.heartbeat.unwrap_or_default()
            )),
            Some(_) => Ok(()),
        }
    })
    .await
    .map_err(|message| NodeError::Resource {
        resource: resource(key),
        message,
    })
}

/// Executes `steps` to bring the kubeconfig to `spec`, writing `marker` beside it.
pub async fn update(
    ctx: &NodeContext,
    spec: &KubeconfigServer,
    marker: &Marker,
    steps: &[KubeconfigStep],
) -> Result<KubeconfigServerObserved, NodeError> {
    let ssh = ctx.ssh();
    let key = spec.key();
    let (host, path) = (spec.host.as_str(), spec.path.as_str());
    let mpath = marker_path(path);
    let text = match files::read_files(ssh, host, &[path.to_string()])
        .await?
        .remove(0)
    {
        RemoteFile::File(b) => b,
        RemoteFile::NotAFile(what) => {
            return Err(NodeError::NotAFile {
                resource: resource(&key),
                host: host.into(),
                path: path.into(),
                what,
            });
        }
        RemoteFile::Missing => {
            return Err(NodeError::Resource {
                resource: resource(&key),
                message: format!(
                    "{path} does not exist on host {host}; kubeadm writes it when the node joins"
                ),
            });
        }
    };
    let utf8 = String::from_utf8_lossy(&text).into_owned();
    let bad = |m: String| NodeError::Resource {
        resource: resource(&key),
        message: format!("{path} on host {host}: {m}"),
    };
    let field = kubeconfig::find_server(&utf8).map_err(bad)?;
    let edited = if field.server == spec.server {
        None
    } else {
        Some(kubeconfig::set_server(&utf8, &spec.server).map_err(bad)?)
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let backup = format!("{path}.cairn-backup-{stamp}");
    let line = marker_line(marker);
    files::replace(
        ssh,
        host,
        Replace {
            path,
            before: &text,
            after: edited.as_deref().map(str::as_bytes),
            backup: &backup,
            marker: (&mpath, &line),
        },
    )
    .await?;
    let mut restarted = 0;
    for step in steps {
        match step {
            KubeconfigStep::RestartKubelet { host, .. } => {
                restarted = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                ssh.run(host, &Cmd::root("systemctl").args(["restart", "kubelet"]))
                    .await?;
            }
            KubeconfigStep::WaitNodeReady { node, cluster } => {
                wait_ready(ctx, &key, cluster, node, restarted).await?;
            }
            KubeconfigStep::SetServer { .. } => {}
        }
    }
    Ok(KubeconfigServerObserved {
        host: host.into(),
        path: path.into(),
        server: spec.server.clone(),
        cluster: field.cluster,
        restart_pending: None,
    })
}

/// The kind as registered with the provider kit.
#[derive(Debug, Clone, Copy, Default)]
pub struct KubeconfigServers;

#[async_trait]
impl Kind<NodeContext> for KubeconfigServers {
    type Spec = KubeconfigServer;
    type Observed = KubeconfigServerObserved;
    type Step = KubeconfigStep;

    async fn observe(
        &self,
        ctx: &NodeContext,
        q: Query<'_>,
    ) -> Result<Vec<Found<KubeconfigServerObserved>>, NodeError> {
        observe(ctx.ssh(), q.keys).await
    }

    fn steps(
        &self,
        ctx: &NodeContext,
        before: Option<&KubeconfigServerObserved>,
        after: Option<&KubeconfigServer>,
    ) -> Vec<KubeconfigStep> {
        let node = after.and_then(|a| ctx.node_of_host(&a.host));
        steps(
            before,
            after,
            node.as_ref().map(|(c, n)| (c.name(), n.as_str())),
        )
    }

    /// A kubeconfig cannot be made from nothing: kubeadm writes it when the node joins.
    async fn create(
        &self,
        _: &NodeContext,
        spec: &KubeconfigServer,
        _: Op<'_, KubeconfigStep>,
    ) -> Result<KubeconfigServerObserved, NodeError> {
        Err(NodeError::Resource {
            resource: resource(&spec.key()),
            message: format!(
                "{} does not exist on host {}; kubeadm writes it when the node joins",
                spec.path, spec.host
            ),
        })
    }

    async fn update(
        &self,
        ctx: &NodeContext,
        _: &KubeconfigServerObserved,
        spec: &KubeconfigServer,
        op: Op<'_, KubeconfigStep>,
    ) -> Result<KubeconfigServerObserved, NodeError> {
        update(ctx, spec, op.marker, &op.steps).await
    }

    /// Files on hosts are never deleted: only declared keys are observed, so the engine
    /// never finds an undeclared one to delete.
    async fn delete(
        &self,
        _: &NodeContext,
        prior: &KubeconfigServerObserved,
        op: Op<'_, KubeconfigStep>,
    ) -> Result<(), NodeError> {
        Err(NodeError::Resource {
            resource: resource(op.key),
            message: format!(
                "{} on host {} is never deleted by cairn",
                prior.path, prior.host
            ),
        })
    }

    fn example() -> KubeconfigServer {
        KubeconfigServer::kubelet("k8s-worker-1", "https://10.0.20.99:6443")
    }

    fn example_observed() -> Option<KubeconfigServerObserved> {
        Some(KubeconfigServerObserved {
            host: "k8s-worker-1".into(),
            path: KUBELET_CONF.into(),
            server: "https://10.0.20.100:6443".into(),
            cluster: "default-cluster".into(),
            restart_pending: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_of_a_declared_cluster_waits_for_ready_after_the_restart() {
        let before = KubeconfigServerObserved {
            host: "w1".into(),
            path: KUBELET_CONF.into(),
            server: "https://10.0.20.100:6443".into(),
            cluster: "default-cluster".into(),
            restart_pending: None,
        };
        let after = KubeconfigServer::kubelet("w1", "https://10.0.20.99:6443");
        let shown = |node| -> Vec<String> {
            steps(Some(&before), Some(&after), node)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let s = shown(Some(("homelab", "k8s-worker-1")));
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!(s[1], "systemctl restart kubelet on w1");
        assert_eq!(
            s[2],
            "wait until node k8s-worker-1 of cluster homelab is Ready again"
        );
        assert_eq!(
            shown(None).len(),
            2,
            "a host of no declared cluster only restarts"
        );
    }

    #[test]
    fn a_kubelet_older_than_its_file_is_restarted_without_an_edit_and_nothing_else_is() {
        let mut before = KubeconfigServerObserved {
            host: "w1".into(),
            path: KUBELET_CONF.into(),
            server: "https://10.0.20.99:6443".into(),
            cluster: "default-cluster".into(),
            restart_pending: None,
        };
        let after = KubeconfigServer::kubelet("w1", "https://10.0.20.99:6443");
        let node = Some(("homelab", "k8s-worker-1"));
        assert!(steps(Some(&before), Some(&after), node).is_empty());
        before.restart_pending = Some(RESTART_PENDING.into());
        let s: Vec<String> = steps(Some(&before), Some(&after), node)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            s,
            [
                "systemctl restart kubelet on w1 (kubelet started before kubelet.conf changed: restart pending)",
                "wait until node k8s-worker-1 of cluster homelab is Ready again",
            ]
        );
    }
}
