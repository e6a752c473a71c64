//! `node_control_plane_member`: a node of a kubeadm cluster that is a control-plane member,
//! observed through the Kubernetes API (the Node with the control-plane role, and its etcd
//! static pod) and created by kubeadm's own sequence. The join goes through the cluster's
//! `controlPlaneEndpoint` (the VIP after Phase 0; kubeadm refuses a control-plane join
//! without one), read from `kube-system/kubeadm-config`, and first that endpoint must answer
//! with a certificate (cluster CA) that names it — otherwise the step fails before anything
//! is run anywhere. Then on the cluster's kubeadm host `kubeadm init phase upload-certs
//! --upload-certs` (the certificate key, printed last) and `kubeadm token create
//! --print-join-command` (token and CA hash; the printed endpoint is the admin
//! kubeconfig's server, so it is not used); on the new host `kubeadm join <endpoint> --token
//! … --discovery-token-ca-cert-hash … --control-plane --certificate-key …`; then waits
//! until the node is Ready and etcd has one more Ready member.
//!
//! Token and certificate key are secrets: they travel only as arguments of the remote
//! command (never in shell text, never in `Cmd`'s `Debug`), are scrubbed from any kubeadm
//! output an error quotes, and are never logged or stored in the plan.
//!
//! The certificate key lives 2 hours in the cluster (kubeadm deletes the `kubeadm-certs`
//! Secret after that). Each create uploads the certificates right before its own join, so a
//! key is never reused across joins; a key older than [`KEY_MAX_AGE`] is uploaded again
//! before the join, and a join that reports the key expired or unknown re-uploads once and
//! retries.
//!
//! Joins of one cluster run one at a time (each adds an etcd member; kubeadm's docs join
//! control-plane nodes sequentially), even when the stack's graph would let them overlap.
//!
//! Delete is refused: removing a control-plane member (drain, `etcd member remove`,
//! `kubeadm reset`) is a rotation with its own gates, not a side effect of this kind. A
//! member is never owned by marker, so the planner never plans one for deletion; an
//! explicit delete fails naming the node, with nothing touched.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, Op, Query};
use cairn_core::{FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::cluster::gates::require_san;
use crate::error::{NodeError, trim_stderr};
use crate::files;
use crate::kinds::{OWNERS_DIR, marker_of, write_marker};
use crate::kubeadm::{self, JoinCommand};
use crate::provider::NodeContext;
use crate::ssh::Cmd;
use crate::wait;

/// A certificate key older than this is uploaded again before a join (kubeadm's lifetime
/// is 2 h; the margin covers the join itself).
pub const KEY_MAX_AGE: Duration = Duration::from_secs(2 * 3600 - 15 * 60);

/// Node `node` of cluster `cluster` is a control-plane member. Its host is the one the
/// cluster declares for it (`Cluster::node(host, node)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlPlaneMember {
    /// The declared cluster's name.
    pub cluster: String,
    /// The Kubernetes node name (the host's hostname, as kubeadm registers it).
    pub node: String,
}

impl ControlPlaneMember {
    /// Node `node` of `cluster` as a control-plane member.
    pub fn new(cluster: impl Into<String>, node: impl Into<String>) -> Self {
        ControlPlaneMember {
            cluster: cluster.into(),
            node: node.into(),
        }
    }
}

impl Resource for ControlPlaneMember {
    const KIND: &'static str = "node_control_plane_member";
    const PROVIDER: &'static str = "node";

    fn key(&self) -> String {
        format!("{}/{}", self.cluster, self.node)
    }

    fn schema() -> Schema {
        Schema {
            replace: &["cluster", "node"],
            computed: &["ready", "etcd_ready"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        if self.cluster.is_empty() || self.cluster.contains('/') {
            e.push(FieldError::new(
                "cluster",
                "a declared cluster's name, without '/'",
            ));
        }
        if self.node.is_empty() || self.node.contains(['/', ' ']) {
            e.push(FieldError::new("node", "a Kubernetes node name"));
        }
        e
    }
}

/// The member as observed: the Node has the control-plane role; its readiness and its etcd
/// member's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlPlaneMemberObserved {
    /// The cluster's name.
    pub cluster: String,
    /// The node's name.
    pub node: String,
    /// Whether the Node is Ready.
    pub ready: bool,
    /// Whether its etcd pod (`kube-system/etcd-<node>`) is Ready.
    pub etcd_ready: bool,
}

/// The staged steps of a join, shown in the plan and executed in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberStep {
    /// The cluster's `controlPlaneEndpoint` presents a certificate (cluster CA) naming it.
    CheckEndpoint,
    /// `kubeadm init phase upload-certs --upload-certs` on the kubeadm host.
    UploadCerts {
        /// The kubeadm host.
        host: String,
    },
    /// `kubeadm token create --print-join-command` on the kubeadm host.
    CreateToken {
        /// The kubeadm host.
        host: String,
    },
    /// `kubeadm join … --control-plane` on the new host.
    Join {
        /// The new host.
        host: String,
    },
    /// The node is Ready.
    WaitReady {
        /// The node.
        node: String,
    },
    /// etcd has one more Ready member than before the join.
    WaitEtcd,
}

impl fmt::Display for MemberStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberStep::UploadCerts { host } => write!(
                f,
                "kubeadm init phase upload-certs --upload-certs on {host} (certificate key: sensitive, valid 2 h)"
            ),
            MemberStep::CreateToken { host } => write!(
                f,
                "kubeadm token create --print-join-command --ttl 1h on {host} (token: sensitive)"
            ),
            MemberStep::CheckEndpoint => write!(
                f,
                "check that the controlPlaneEndpoint answers /readyz with a certificate naming it (cluster CA)"
            ),
            MemberStep::Join { host } => write!(
                f,
                "kubeadm join <controlPlaneEndpoint> --control-plane on {host} (token, CA hash and certificate key as arguments)"
            ),
            MemberStep::WaitReady { node } => write!(f, "wait until node {node} is Ready"),
            MemberStep::WaitEtcd => write!(f, "wait until etcd has one more Ready member"),
        }
    }
}

fn resource(key: &str) -> String {
    format!("{}[{key}]", ControlPlaneMember::KIND)
}

/// The ownership marker of member `node`, on the cluster's kubeadm host: planning never
/// needs the member's own host (it may be down), and the Node object is left as kubeadm
/// and the kubelet make it.
pub fn marker_path(node: &str) -> String {
    format!("{OWNERS_DIR}/control-plane-member-{node}")
}

/// Observes the members of `keys` (`cluster/node`): one node list and one etcd pod list per
/// cluster, and one command on its kubeadm host for the markers.
async fn observe(
    ctx: &NodeContext,
    keys: &[String],
) -> Result<Vec<Found<ControlPlaneMemberObserved>>, NodeError> {
    let mut by_cluster: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for k in keys {
        if let Some((c, n)) = k.split_once('/') {
            by_cluster.entry(c).or_default().push(n);
        }
    }
    let per_cluster = by_cluster.into_iter().map(|(name, wanted)| async move {
        let cluster = ctx.get_cluster(name)?;
        let (nodes, etcd) =
            futures::future::try_join(cluster.nodes(), cluster.etcd_members()).await?;
        let found: Vec<(&str, bool)> = wanted
            .into_iter()
            .filter_map(|n| {
                let node = nodes.iter().find(|s| s.name == n && s.control_plane)?;
                Some((n, node.ready))
            })
            .collect();
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let paths: Vec<String> = found.iter().map(|(n, _)| marker_path(n)).collect();
        let markers = files::read_files(ctx.ssh(), cluster.admin_host(), &paths).await?;
        Ok::<_, NodeError>(
            found
                .into_iter()
                .zip(markers)
                .map(|((n, ready), marker)| {
                    let value = ControlPlaneMemberObserved {
                        cluster: name.to_string(),
                        node: n.to_string(),
                        ready,
                        etcd_ready: etcd.iter().any(|m| m.node == n && m.ready),
                    };
                    Found::new(format!("{name}/{n}"), value, marker_of(&marker))
                })
                .collect::<Vec<_>>(),
        )
    });
    let mut out = Vec::new();
    for r in futures::future::join_all(per_cluster).await {
        out.extend(r?);
    }
    Ok(out)
}

/// The steps of a join of `node` (on `host`) through the kubeadm host `admin`.
pub fn steps(admin: &str, host: &str, node: &str) -> Vec<MemberStep> {
    vec![
        MemberStep::CheckEndpoint,
        MemberStep::UploadCerts { host: admin.into() },
        MemberStep::CreateToken { host: admin.into() },
        MemberStep::Join { host: host.into() },
        MemberStep::WaitReady { node: node.into() },
        MemberStep::WaitEtcd,
    ]
}

/// Whether kubeadm's join output says the certificate key expired or is unknown (the
/// `kubeadm-certs` Secret is gone, or the key does not decrypt it).
pub fn key_rejected(output: &str) -> bool {
    let o = output.to_ascii_lowercase();
    (o.contains("kubeadm-certs") && (o.contains("not found") || o.contains("expired")))
        || o.contains("message authentication failed")
        || (o.contains("certificate key") && (o.contains("expired") || o.contains("invalid")))
}

/// `text` with every secret replaced by `<redacted>`.
fn scrub(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_string(), |t, s| t.replace(s, "<redacted>"))
}

/// Joins with `key`, uploading the certificates again first when there is none or it is
/// older than [`KEY_MAX_AGE`]; a join that reports the key expired or unknown uploads once
/// more and retries once. Returns the last join's outcome.
async fn join_with_fresh_key<U, UF, J, JF>(
    key: Option<CertificateKey>,
    mut upload: U,
    mut join: J,
) -> Result<Result<(), String>, NodeError>
where
    U: FnMut() -> UF,
    UF: Future<Output = Result<CertificateKey, NodeError>>,
    J: FnMut(CertificateKey) -> JF,
    JF: Future<Output = Result<Result<(), String>, NodeError>>,
{
    let key = match key {
        Some(k) if k.uploaded.elapsed() < KEY_MAX_AGE => k,
        _ => upload().await?,
    };
    let result = join(key).await?;
    match &result {
        Err(out) if key_rejected(out) => {
            tracing::warn!(
                "the certificate key expired or is unknown; uploading the certificates again and retrying the join once"
            );
            let key = upload().await?;
            join(key).await
        }
        _ => Ok(result),
    }
}

/// A certificate key and when it was uploaded.
struct CertificateKey {
    key: String,
    uploaded: Instant,
}

struct Joiner<'a> {
    ctx: &'a NodeContext,
    admin: &'a str,
    host: &'a str,
    resource: String,
}

impl Joiner<'_> {
    fn err(&self, message: String) -> NodeError {
        NodeError::Resource {
            resource: self.resource.clone(),
            message,
        }
    }

    /// Runs `cmd` on `host`; a failure quotes its output with `secrets` scrubbed.
    async fn run(
        &self,
        host: &str,
        cmd: &Cmd,
        secrets: &[&str],
    ) -> Result<(i32, String, String), NodeError> {
        let (status, out) = self
            .ctx
            .ssh()
            .run_status(host, cmd)
            .await
            .map_err(|e| match e {
                NodeError::ConnectionLost {
                    host,
                    program,
                    detail,
                } => NodeError::ConnectionLost {
                    host,
                    program,
                    detail: scrub(&detail, secrets),
                },
                other => other,
            })?;
        Ok((
            status,
            scrub(&String::from_utf8_lossy(&out.stdout), secrets),
            scrub(&trim_stderr(&out.stderr), secrets),
        ))
    }

    async fn upload_certs(&self) -> Result<CertificateKey, NodeError> {
        let cmd = Cmd::root("kubeadm").args(["init", "phase", "upload-certs", "--upload-certs"]);
        let (status, out) = self.ctx.ssh().run_status(self.admin, &cmd).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let key = kubeadm::parse_certificate_key(&stdout);
        if status != 0 {
            let secrets: Vec<&str> = key.as_deref().into_iter().collect();
            return Err(self.err(format!(
                "`kubeadm init phase upload-certs` on {} exited with status {status}: {}",
                self.admin,
                scrub(&trim_stderr(&out.stderr), &secrets)
            )));
        }
        let key =
            key.map_err(|m| self.err(format!("kubeadm upload-certs on {}: {m}", self.admin)))?;
        Ok(CertificateKey {
            key,
            uploaded: Instant::now(),
        })
    }

    async fn create_token(&self) -> Result<JoinCommand, NodeError> {
        // A short-lived token: it passes through the new host's command line (and sudo's
        // log there), as kubeadm's join takes it as an argument.
        let cmd =
            Cmd::root("kubeadm").args(["token", "create", "--print-join-command", "--ttl", "1h"]);
        let (status, out) = self.ctx.ssh().run_status(self.admin, &cmd).await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let join = kubeadm::parse_join_command(&stdout);
        if status != 0 {
            let secrets: Vec<&str> = join
                .as_ref()
                .map(|j| j.token.as_str())
                .into_iter()
                .collect();
            return Err(self.err(format!(
                "`kubeadm token create` on {} exited with status {status}: {}",
                self.admin,
                scrub(&trim_stderr(&out.stderr), &secrets)
            )));
        }
        join.map_err(|m| self.err(format!("kubeadm token create on {}: {m}", self.admin)))
    }

    async fn join(
        &self,
        j: &JoinCommand,
        key: &CertificateKey,
    ) -> Result<Result<(), String>, NodeError> {
        let cmd = Cmd::root("kubeadm").args([
            "join",
            j.endpoint.as_str(),
            "--token",
            j.token.as_str(),
            "--discovery-token-ca-cert-hash",
            j.ca_cert_hash.as_str(),
            "--control-plane",
            "--certificate-key",
            key.key.as_str(),
        ]);
        let (status, stdout, stderr) = self.run(self.host, &cmd, &[&j.token, &key.key]).await?;
        Ok(if status == 0 {
            Ok(())
        } else {
            Err(format!("{stderr}\n{stdout}").trim().to_string())
        })
    }
}

/// The cluster's `controlPlaneEndpoint`, if set.
async fn control_plane_endpoint(cluster: &Cluster) -> Result<Option<String>, NodeError> {
    let Some(text) = cluster.kubeadm_cluster_configuration().await? else {
        return Ok(None);
    };
    let fields = kubeadm::read(&text).map_err(|m| NodeError::Kube {
        cluster: cluster.name().into(),
        message: format!("ConfigMap kube-system/kubeadm-config: {m}"),
    })?;
    Ok(Some(fields.control_plane_endpoint).filter(|e| !e.is_empty()))
}

async fn join(
    ctx: &NodeContext,
    cluster: &Cluster,
    spec: &ControlPlaneMember,
    steps: &[MemberStep],
) -> Result<(), NodeError> {
    let host = cluster
        .host_of(&spec.node)
        .ok_or_else(|| NodeError::Resource {
            resource: resource(&spec.key()),
            message: format!(
                "cluster {} declares no host for node {}",
                spec.cluster, spec.node
            ),
        })?;
    let j = Joiner {
        ctx,
        admin: cluster.admin_host(),
        host,
        resource: resource(&spec.key()),
    };
    let etcd_before = cluster
        .etcd_members()
        .await?
        .iter()
        .filter(|m| m.ready)
        .count();
    let endpoint = control_plane_endpoint(cluster).await?.ok_or_else(|| {
        j.err(format!(
            "cluster {} has no controlPlaneEndpoint in kube-system/kubeadm-config; a control-plane join needs one (declare node_kubeadm_config); nothing was run",
            spec.cluster
        ))
    })?;
    let mut key: Option<CertificateKey> = None;
    let mut command: Option<JoinCommand> = None;
    for step in steps {
        tracing::info!(resource = %j.resource, %step, "step");
        match step {
            MemberStep::CheckEndpoint => {
                let refuse = |m: String| {
                    j.err(format!(
                        "refusing to join through {endpoint}: {m}; nothing was run"
                    ))
                };
                let sans = cluster.readyz(&endpoint).await.map_err(refuse)?;
                require_san(&endpoint, &sans).map_err(refuse)?;
            }
            MemberStep::UploadCerts { .. } => key = Some(j.upload_certs().await?),
            MemberStep::CreateToken { .. } => {
                let mut c = j.create_token().await?;
                c.endpoint = endpoint.clone();
                command = Some(c);
            }
            MemberStep::Join { .. } => {
                let c = command
                    .as_ref()
                    .ok_or_else(|| j.err("no join command".into()))?;
                let result = join_with_fresh_key(
                    key.take(),
                    || j.upload_certs(),
                    |k| {
                        let j = &j;
                        async move { j.join(c, &k).await }
                    },
                )
                .await?;
                result.map_err(|out| {
                    j.err(format!(
                        "`kubeadm join {} --control-plane` on {host} failed: {out}",
                        c.endpoint
                    ))
                })?;
            }
            MemberStep::WaitReady { node } => {
                wait::until(
                    ctx.wait_timing(),
                    &format!("node {node} is Ready"),
                    || async {
                        match cluster.node_state(node).await.map_err(|e| e.to_string())? {
                            Some(n) if n.ready => Ok(()),
                            Some(n) => Err(n.why),
                            None => Err("no such node yet".into()),
                        }
                    },
                )
                .await
                .map_err(|m| j.err(m))?;
            }
            MemberStep::WaitEtcd => {
                let want = etcd_before + 1;
                wait::until(
                    ctx.wait_timing(),
                    &format!("etcd has {want} Ready members"),
                    || async {
                        let members = cluster.etcd_members().await.map_err(|e| e.to_string())?;
                        let n = members.iter().filter(|m| m.ready).count();
                        if n >= want {
                            Ok(())
                        } else {
                            Err(format!("{n} Ready"))
                        }
                    },
                )
                .await
                .map_err(|m| j.err(m))?;
            }
        }
    }
    Ok(())
}

/// The kind as registered with the provider kit.
#[derive(Debug, Clone, Copy, Default)]
pub struct ControlPlaneMembers;

#[async_trait]
impl Kind<NodeContext> for ControlPlaneMembers {
    type Spec = ControlPlaneMember;
    type Observed = ControlPlaneMemberObserved;
    type Step = MemberStep;

    async fn observe(
        &self,
        ctx: &NodeContext,
        q: Query<'_>,
    ) -> Result<Vec<Found<ControlPlaneMemberObserved>>, NodeError> {
        observe(ctx, q.keys).await
    }

    fn steps(
        &self,
        ctx: &NodeContext,
        before: Option<&ControlPlaneMemberObserved>,
        after: Option<&ControlPlaneMember>,
    ) -> Vec<MemberStep> {
        match (before, after) {
            (None, Some(a)) => {
                let Ok(cluster) = ctx.get_cluster(&a.cluster) else {
                    return Vec::new();
                };
                let host = cluster.host_of(&a.node).unwrap_or("?");
                steps(cluster.admin_host(), host, &a.node)
            }
            _ => Vec::new(),
        }
    }

    /// A join needs a declared host for the node: refused at plan time otherwise.
    fn check(
        &self,
        ctx: &NodeContext,
        before: Option<&ControlPlaneMemberObserved>,
        after: Option<&ControlPlaneMember>,
    ) -> Vec<FieldError> {
        let (None, Some(a)) = (before, after) else {
            return Vec::new();
        };
        let Ok(cluster) = ctx.get_cluster(&a.cluster) else {
            return Vec::new();
        };
        match cluster.host_of(&a.node) {
            None => vec![FieldError::new(
                "node",
                format!(
                    "cluster {} declares no host for node {} (Cluster::node(host, node)); cairn cannot join it",
                    a.cluster, a.node
                ),
            )],
            Some(h) if !ctx.ssh().is_declared(h) => vec![FieldError::new(
                "node",
                format!(
                    "host {h:?} of node {} is not declared in the node provider's hosts",
                    a.node
                ),
            )],
            Some(_) => Vec::new(),
        }
    }

    async fn create(
        &self,
        ctx: &NodeContext,
        spec: &ControlPlaneMember,
        op: Op<'_, MemberStep>,
    ) -> Result<ControlPlaneMemberObserved, NodeError> {
        let cluster = ctx.get_cluster(&spec.cluster)?;
        let _one_at_a_time = cluster.join_guard().await;
        join(ctx, cluster, spec, &op.steps).await?;
        write_marker(
            ctx.ssh(),
            cluster.admin_host(),
            &marker_path(&spec.node),
            op.marker,
        )
        .await?;
        let keys = [spec.key()];
        observe(ctx, &keys)
            .await?
            .into_iter()
            .next()
            .map(|f| f.value)
            .ok_or_else(|| NodeError::Resource {
                resource: resource(&spec.key()),
                message: format!(
                    "kubeadm join succeeded but node {} has no control-plane role",
                    spec.node
                ),
            })
    }

    /// Nothing to change in place (every field is the member's identity): an update only
    /// writes the ownership marker (adopting an existing member).
    async fn update(
        &self,
        ctx: &NodeContext,
        prior: &ControlPlaneMemberObserved,
        spec: &ControlPlaneMember,
        op: Op<'_, MemberStep>,
    ) -> Result<ControlPlaneMemberObserved, NodeError> {
        let cluster = ctx.get_cluster(&spec.cluster)?;
        write_marker(
            ctx.ssh(),
            cluster.admin_host(),
            &marker_path(&spec.node),
            op.marker,
        )
        .await?;
        Ok(prior.clone())
    }

    /// Refused: removing a control-plane member is a rotation, not this kind's job.
    async fn delete(
        &self,
        _: &NodeContext,
        prior: &ControlPlaneMemberObserved,
        op: Op<'_, MemberStep>,
    ) -> Result<(), NodeError> {
        Err(NodeError::Resource {
            resource: resource(op.key),
            message: format!(
                "refusing to remove control-plane member {}: that is a rotation (drain, etcd member remove, kubeadm reset), which this kind does not do; nothing was touched",
                prior.node
            ),
        })
    }

    fn example() -> ControlPlaneMember {
        ControlPlaneMember::new("homelab", "k8s-master-2")
    }

    fn example_observed() -> Option<ControlPlaneMemberObserved> {
        Some(ControlPlaneMemberObserved {
            cluster: "homelab".into(),
            node: "k8s-master-2".into(),
            ready: true,
            etcd_ready: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_is_upload_token_check_join_then_ready_and_etcd_gates() {
        let s: Vec<String> = steps("k8s-master-1", "k8s-master-2", "k8s-master-2")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(s.len(), 6);
        assert!(s[0].contains("controlPlaneEndpoint answers /readyz"));
        assert!(s[1].contains("upload-certs") && s[1].ends_with("valid 2 h)"));
        assert!(s[2].contains("token create --print-join-command --ttl 1h on k8s-master-1"));
        assert!(s[3].contains("--control-plane on k8s-master-2"));
        assert_eq!(s[4], "wait until node k8s-master-2 is Ready");
    }

    #[test]
    fn expired_or_unknown_certificate_keys_are_recognised() {
        assert!(key_rejected(
            "error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired."
        ));
        assert!(key_rejected(
            "error decoding certs: cipher: message authentication failed"
        ));
        assert!(!key_rejected(
            "unable to connect to 10.0.20.99:6443: connection refused"
        ));
    }

    /// Runs [`join_with_fresh_key`] with a held key of `age` against a cluster that accepts
    /// only keys listed in `valid`; returns the uploads and the keys joins were tried with.
    async fn joins_with(
        age: Option<Duration>,
        valid: &[&str],
    ) -> (Result<(), String>, usize, Vec<String>) {
        use std::cell::RefCell;
        let uploads = RefCell::new(0);
        let tried = RefCell::new(Vec::new());
        let held = age.map(|a| CertificateKey {
            key: "held".into(),
            uploaded: Instant::now() - a,
        });
        let r = join_with_fresh_key(
            held,
            || async {
                *uploads.borrow_mut() += 1;
                Ok(CertificateKey {
                    key: format!("upload-{}", uploads.borrow()),
                    uploaded: Instant::now(),
                })
            },
            |k| {
                tried.borrow_mut().push(k.key.clone());
                let ok = valid.contains(&k.key.as_str());
                async move {
                    Ok(if ok {
                        Ok(())
                    } else {
                        Err("error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired.".to_string())
                    })
                }
            },
        )
        .await
        .unwrap();
        (r, uploads.into_inner(), tried.into_inner())
    }

    #[tokio::test(start_paused = true)]
    async fn a_certificate_key_older_than_two_hours_is_uploaded_again_not_reused() {
        tokio::time::advance(Duration::from_secs(3 * 3600)).await;
        let (r, uploads, tried) =
            joins_with(Some(Duration::from_secs(2 * 3600)), &["upload-1"]).await;
        assert_eq!(
            (r, uploads, tried),
            (Ok(()), 1, vec!["upload-1".to_string()])
        );
        let (r, uploads, tried) = joins_with(Some(Duration::from_secs(60)), &["held"]).await;
        assert_eq!((r, uploads, tried), (Ok(()), 0, vec!["held".to_string()]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_join_that_finds_the_key_expired_uploads_once_more_and_retries_once() {
        let (r, uploads, tried) = joins_with(None, &["upload-2"]).await;
        assert_eq!((r, uploads), (Ok(()), 2));
        assert_eq!(tried, ["upload-1", "upload-2"]);
        // Still rejected after the retry: the failure is reported, no third attempt.
        let (r, uploads, tried) = joins_with(None, &[]).await;
        assert!(r.unwrap_err().contains("kubeadm-certs"));
        assert_eq!((uploads, tried.len()), (2, 2));
    }

    #[test]
    fn secrets_are_scrubbed_from_quoted_output() {
        let out = scrub(
            "bad token abcdef.0123456789abcdef with key ff00",
            &["abcdef.0123456789abcdef", "ff00", ""],
        );
        assert_eq!(out, "bad token <redacted> with key <redacted>");
    }
}
