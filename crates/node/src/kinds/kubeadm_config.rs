//! `node_kubeadm_config`: the two fields of a kubeadm cluster's `ClusterConfiguration` a
//! cutover to a VIP changes — `controlPlaneEndpoint` and `apiServer.certSANs` — observed
//! through the Kubernetes API (ConfigMap `kube-system/kubeadm-config`) and converged with
//! kubeadm on the cluster's declared control-plane host (its credentials host), as Phase 0
//! of the cutover: write the updated configuration to a file (0600, atomically), upload it
//! with `kubeadm init phase upload-config kubeadm`, move the apiserver certificate and key
//! aside, re-issue them with `kubeadm init phase certs apiserver`, restart the apiserver's
//! static pod, and wait until it is ready and presents the new SANs.
//!
//! **Why the certificate is re-issued here and not by a writable
//! `node_apiserver_certificate`.** kubeadm derives the apiserver certificate's SANs from the
//! `ClusterConfiguration` (certSANs plus the endpoint's host): the certificate is a
//! consequence of this configuration, not a second source of truth. Masters that join
//! later get their certificates from the uploaded configuration, so the SAN list must live
//! in exactly one declared place; a second, writable SAN list on the certificate could
//! disagree with it and would be undone by the next `kubeadm` run. The certificate stays a
//! read-only lookup, and this kind observes whether the certificate on its host carries
//! every SAN the configuration asks for (`certificate_covers_sans`), so a run interrupted
//! after the upload and before the re-issue is seen as a change and finished by the next
//! plan (which then skips the upload).

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, Op, Query};
use cairn_core::{FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::cluster::connect::split_endpoint;
use crate::error::NodeError;
use crate::files::{self, RemoteFile};
use crate::kinds::apiserver_cert::{self, APISERVER_CRT};
use crate::kinds::{OWNERS_DIR, marker_of, write_marker};
use crate::kubeadm::{self, EndpointFields};
use crate::provider::NodeContext;
use crate::ssh::Cmd;
use crate::wait;

/// Where the updated configuration is written on the kubeadm host.
pub const CONFIG_FILE: &str = "/etc/kubernetes/cairn-kubeadm-config.yaml";
/// kubeadm's certificate directory.
pub const PKI_DIR: &str = "/etc/kubernetes/pki";
/// The apiserver's static pod manifest.
pub const APISERVER_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
/// Where the manifest waits while the static pod is stopped (outside the manifests dir).
pub const APISERVER_MANIFEST_ASIDE: &str = "/etc/kubernetes/kube-apiserver.yaml.cairn-restart";

/// The declared `controlPlaneEndpoint` and `apiServer.certSANs` of cluster `cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeadmConfig {
    /// The declared cluster's name (the node provider's `Cluster`).
    pub cluster: String,
    /// `controlPlaneEndpoint`, e.g. `10.0.20.99:6443`.
    pub control_plane_endpoint: String,
    /// `apiServer.certSANs`, e.g. `[10.0.20.99, k8s-apiserver.home.arpa]` (a set).
    pub cert_sans: Vec<String>,
    /// `Some(true)`: the apiserver certificate on the kubeadm host must carry every SAN
    /// (and the endpoint's host); when it does not, it is re-issued and the apiserver
    /// restarted. `None`: the certificate is not managed (only the configuration is
    /// uploaded), and this field is not diffed.
    #[serde(default)]
    pub certificate_covers_sans: Option<bool>,
}

impl KubeadmConfig {
    /// The endpoint and SANs of `cluster`, the certificate re-issued to match.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(
        cluster: impl Into<String>,
        control_plane_endpoint: impl Into<String>,
        cert_sans: I,
    ) -> Self {
        KubeadmConfig {
            cluster: cluster.into(),
            control_plane_endpoint: control_plane_endpoint.into(),
            cert_sans: cert_sans.into_iter().map(Into::into).collect(),
            certificate_covers_sans: Some(true),
        }
    }

    fn fields(&self) -> EndpointFields {
        EndpointFields {
            control_plane_endpoint: self.control_plane_endpoint.clone(),
            cert_sans: self.cert_sans.clone(),
        }
    }
}

impl Resource for KubeadmConfig {
    const KIND: &'static str = "node_kubeadm_config";
    const PROVIDER: &'static str = "node";

    fn key(&self) -> String {
        self.cluster.clone()
    }

    fn schema() -> Schema {
        Schema {
            unordered: &["cert_sans"],
            computed: &["host", "certificate_sans"],
            ..Schema::default()
        }
    }

    fn validate(&self) -> Vec<FieldError> {
        let mut e = Vec::new();
        if self.cluster.is_empty() {
            e.push(FieldError::new("cluster", "a declared cluster's name"));
        }
        match split_endpoint(&self.control_plane_endpoint) {
            Ok(_) if self.control_plane_endpoint.contains("://") => e.push(FieldError::new(
                "control_plane_endpoint",
                "host:port, without a scheme",
            )),
            Ok(_) => {}
            Err(m) => e.push(FieldError::new("control_plane_endpoint", m)),
        }
        if self.certificate_covers_sans == Some(false) {
            e.push(FieldError::new(
                "certificate_covers_sans",
                "true (re-issue the certificate when it lacks a SAN) or unset (leave it alone)",
            ));
        }
        for (i, s) in self.cert_sans.iter().enumerate() {
            if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == ',' || c == '/') {
                e.push(FieldError::new(
                    format!("cert_sans[{i}]"),
                    "an IP address or DNS name",
                ));
            }
        }
        e
    }
}

/// What is observed: the two fields of the uploaded configuration, and the certificate on
/// the kubeadm host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeadmConfigObserved {
    /// The cluster's name.
    pub cluster: String,
    /// `controlPlaneEndpoint` (empty when unset).
    pub control_plane_endpoint: String,
    /// `apiServer.certSANs`.
    pub cert_sans: Vec<String>,
    /// Whether the certificate on the kubeadm host carries every SAN the configuration asks
    /// for (and the endpoint's host).
    pub certificate_covers_sans: bool,
    /// The kubeadm host (the cluster's credentials host).
    pub host: String,
    /// The SANs of the certificate on that host.
    pub certificate_sans: Vec<String>,
}

/// The staged steps of a change, shown in the plan and executed in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeadmConfigStep {
    /// Write the whole updated ClusterConfiguration to [`CONFIG_FILE`].
    WriteConfig {
        /// The kubeadm host.
        host: String,
    },
    /// `kubeadm init phase upload-config kubeadm --config F`.
    UploadConfig {
        /// The kubeadm host.
        host: String,
    },
    /// Move `apiserver.crt` and `apiserver.key` aside (timestamped backups).
    MoveCertificateAside {
        /// The kubeadm host.
        host: String,
    },
    /// `kubeadm init phase certs apiserver --config F`.
    IssueCertificate {
        /// The kubeadm host.
        host: String,
        /// The SANs it must carry besides kubeadm's defaults.
        sans: Vec<String>,
    },
    /// Restart the apiserver static pod: its manifest moved out of the manifests directory
    /// until the apiserver stops, then back.
    RestartApiserver {
        /// The kubeadm host.
        host: String,
    },
    /// Wait until the apiserver is ready again and presents `sans`.
    WaitApiserver {
        /// `address:port` of that host's apiserver.
        address: String,
        /// The SANs it must present.
        sans: Vec<String>,
    },
}

impl fmt::Display for KubeadmConfigStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubeadmConfigStep::WriteConfig { host } => write!(
                f,
                "write the updated ClusterConfiguration to {CONFIG_FILE} on {host} (0600, atomic)"
            ),
            KubeadmConfigStep::UploadConfig { host } => write!(
                f,
                "kubeadm init phase upload-config kubeadm --config {CONFIG_FILE} on {host}"
            ),
            KubeadmConfigStep::MoveCertificateAside { host } => write!(
                f,
                "move {PKI_DIR}/apiserver.{{crt,key}} aside on {host} (timestamped backup)"
            ),
            KubeadmConfigStep::IssueCertificate { host, sans } => write!(
                f,
                "kubeadm init phase certs apiserver --config {CONFIG_FILE} on {host} (SANs include {})",
                sans.join(", ")
            ),
            KubeadmConfigStep::RestartApiserver { host } => write!(
                f,
                "restart the kube-apiserver static pod on {host} ({APISERVER_MANIFEST} moved out until it stops, then back)"
            ),
            KubeadmConfigStep::WaitApiserver { address, sans } => write!(
                f,
                "wait until the apiserver at {address} is ready and presents SANs {}",
                sans.join(", ")
            ),
        }
    }
}

fn resource(key: &str) -> String {
    format!("{}[{key}]", KubeadmConfig::KIND)
}

/// The SANs a certificate issued from `fields` must carry: certSANs plus the endpoint's host.
fn required_sans(fields: &EndpointFields) -> Vec<String> {
    let mut out = fields.cert_sans.clone();
    if let Ok((host, _)) = split_endpoint(&fields.control_plane_endpoint)
        && !out.contains(&host)
    {
        out.push(host);
    }
    out
}

/// The ownership marker of a cluster's kubeadm configuration, on its kubeadm host (kubeadm
/// rewrites the ConfigMap whole, so a marker there would not survive an upload).
pub fn marker_path() -> String {
    format!("{OWNERS_DIR}/kubeadm-config")
}

/// Observes the configuration of `cluster`: one API read, one command on its host (the
/// certificate and the marker).
async fn observe_one(
    ctx: &NodeContext,
    cluster: &Cluster,
) -> Result<Option<Found<KubeadmConfigObserved>>, NodeError> {
    let Some(text) = cluster.kubeadm_cluster_configuration().await? else {
        return Ok(None);
    };
    let fields = kubeadm::read(&text).map_err(|m| NodeError::Resource {
        resource: resource(cluster.name()),
        message: format!("ConfigMap kube-system/kubeadm-config: {m}"),
    })?;
    let host = cluster.admin_host().to_string();
    let read = files::read_files(
        ctx.ssh(),
        &host,
        &[APISERVER_CRT.to_string(), marker_path()],
    )
    .await?;
    let certificate_sans = match &read[0] {
        RemoteFile::File(pem) => {
            apiserver_cert::parse(&host, APISERVER_CRT, pem)
                .map_err(|m| NodeError::Resource {
                    resource: resource(cluster.name()),
                    message: format!("{APISERVER_CRT} on host {host}: {m}"),
                })?
                .sans
        }
        _ => Vec::new(),
    };
    let covers = required_sans(&fields)
        .iter()
        .all(|s| certificate_sans.contains(s));
    let value = KubeadmConfigObserved {
        cluster: cluster.name().to_string(),
        control_plane_endpoint: fields.control_plane_endpoint,
        cert_sans: fields.cert_sans,
        certificate_covers_sans: covers,
        host,
        certificate_sans,
    };
    Ok(Some(Found::new(cluster.name(), value, marker_of(&read[1]))))
}

/// The steps from `before` to `after` (see the module docs).
pub fn steps(
    host: &str,
    apiserver: &str,
    before: Option<&KubeadmConfigObserved>,
    after: &KubeadmConfig,
) -> Vec<KubeadmConfigStep> {
    let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    let config_changes = before.is_none_or(|b| {
        b.control_plane_endpoint != after.control_plane_endpoint
            || set(&b.cert_sans) != set(&after.cert_sans)
    });
    let reissue = after.certificate_covers_sans == Some(true)
        && (config_changes || before.is_some_and(|b| !b.certificate_covers_sans));
    if !config_changes && !reissue {
        return Vec::new();
    }
    let host = host.to_string();
    let mut out = vec![KubeadmConfigStep::WriteConfig { host: host.clone() }];
    if config_changes {
        out.push(KubeadmConfigStep::UploadConfig { host: host.clone() });
    }
    if reissue {
        let sans = required_sans(&after.fields());
        out.extend([
            KubeadmConfigStep::MoveCertificateAside { host: host.clone() },
            KubeadmConfigStep::IssueCertificate {
                host: host.clone(),
                sans: sans.clone(),
            },
            KubeadmConfigStep::RestartApiserver { host },
            KubeadmConfigStep::WaitApiserver {
                address: apiserver.to_string(),
                sans,
            },
        ]);
    }
    out
}

/// Writes stdin to `$1` atomically with mode 0600.
const WRITE_CONFIG: &str = r#"set -eu
p=$1
umask 077
tmp="$p.cairn-tmp.$$"
cat > "$tmp"
chmod 600 -- "$tmp"
mv -f -- "$tmp" "$p""#;

/// Moves `$1/apiserver.{crt,key}` to `…cairn-backup-$2`.
const MOVE_ASIDE: &str = r#"set -eu
for f in apiserver.crt apiserver.key; do
  if [ -e "$1/$f" ]; then mv -f -- "$1/$f" "$1/$f.cairn-backup-$2"; fi
done"#;

/// Moves the manifest `$1` to `$2` (`out`), or back (`back`); a manifest left aside by an
/// interrupted run is put back first.
const MOVE_MANIFEST: &str = r#"set -eu
m=$1 aside=$2
case $3 in
  out) if [ ! -e "$m" ] && [ -e "$aside" ]; then mv -f -- "$aside" "$m"; fi
       mv -f -- "$m" "$aside" ;;
  back) if [ -e "$aside" ]; then mv -f -- "$aside" "$m"; fi ;;
esac"#;

/// The `host:port` of the apiserver on the kubeadm host.
fn apiserver_address(ctx: &NodeContext, cluster: &Cluster) -> Option<String> {
    let host = ctx.ssh().host(cluster.admin_host()).ok()?;
    let (_, port) = split_endpoint(cluster.endpoint()).ok()?;
    Some(format!("{}:{port}", host.address))
}

async fn run_step(
    ctx: &NodeContext,
    cluster: &Cluster,
    step: &KubeadmConfigStep,
    config: &str,
) -> Result<(), NodeError> {
    let ssh = ctx.ssh();
    let bad = |message: String| NodeError::Resource {
        resource: resource(cluster.name()),
        message,
    };
    match step {
        KubeadmConfigStep::WriteConfig { host } => {
            let cmd = Cmd::root("sh")
                .args(["-c", WRITE_CONFIG, "sh", CONFIG_FILE])
                .stdin(config.as_bytes().to_vec());
            ssh.run(host, &cmd).await?;
        }
        KubeadmConfigStep::UploadConfig { host } => {
            let cmd = Cmd::root("kubeadm").args([
                "init",
                "phase",
                "upload-config",
                "kubeadm",
                "--config",
                CONFIG_FILE,
            ]);
            ssh.run(host, &cmd).await?;
        }
        KubeadmConfigStep::MoveCertificateAside { host } => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let cmd = Cmd::root("sh").args(["-c", MOVE_ASIDE, "sh", PKI_DIR, &stamp.to_string()]);
            ssh.run(host, &cmd).await?;
        }
        KubeadmConfigStep::IssueCertificate { host, .. } => {
            let cmd = Cmd::root("kubeadm").args([
                "init",
                "phase",
                "certs",
                "apiserver",
                "--config",
                CONFIG_FILE,
            ]);
            ssh.run(host, &cmd).await?;
        }
        KubeadmConfigStep::RestartApiserver { host } => {
            let mv = |dir: &str| {
                Cmd::root("sh").args([
                    "-c",
                    MOVE_MANIFEST,
                    "sh",
                    APISERVER_MANIFEST,
                    APISERVER_MANIFEST_ASIDE,
                    dir,
                ])
            };
            ssh.run(host, &mv("out")).await?;
            // The kubelet stops a static pod whose manifest is gone (it checks the
            // directory every 20 s by default); put it back once the apiserver stopped.
            let address = apiserver_address(ctx, cluster).unwrap_or_default();
            let mut waits = ctx.wait_timing();
            waits.timeout = waits.timeout.min(std::time::Duration::from_secs(60));
            let stopped = wait::until(waits, "the apiserver stops", || async {
                match cluster.readyz(&address).await {
                    Ok(_) => Err(format!("the apiserver at {address} still answers")),
                    Err(_) => Ok(()),
                }
            })
            .await;
            if let Err(e) = stopped {
                tracing::warn!(host, %e, "the apiserver did not stop; its manifest goes back anyway (it reloads its serving certificate)");
            }
            ssh.run(host, &mv("back")).await?;
        }
        KubeadmConfigStep::WaitApiserver { address, sans } => {
            let what = format!(
                "the apiserver at {address} is ready and presents SANs {}",
                sans.join(", ")
            );
            wait::until(ctx.wait_timing(), &what, || async {
                let seen = cluster.readyz(address).await?;
                let missing: Vec<&String> = sans.iter().filter(|s| !seen.contains(s)).collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "its certificate lacks {:?}: its SANs are [{}]",
                        missing,
                        seen.join(", ")
                    ))
                }
            })
            .await
            .map_err(bad)?;
        }
    }
    Ok(())
}

/// The kind as registered with the provider kit.
#[derive(Debug, Clone, Copy, Default)]
pub struct KubeadmConfigs;

#[async_trait]
impl Kind<NodeContext> for KubeadmConfigs {
    type Spec = KubeadmConfig;
    type Observed = KubeadmConfigObserved;
    type Step = KubeadmConfigStep;

    async fn observe(
        &self,
        ctx: &NodeContext,
        q: Query<'_>,
    ) -> Result<Vec<Found<KubeadmConfigObserved>>, NodeError> {
        let per_cluster = q.keys.iter().map(|name| async move {
            let cluster = ctx.get_cluster(name)?;
            observe_one(ctx, cluster).await
        });
        let mut out = Vec::new();
        for r in futures::future::join_all(per_cluster).await {
            out.extend(r?);
        }
        Ok(out)
    }

    fn steps(
        &self,
        ctx: &NodeContext,
        before: Option<&KubeadmConfigObserved>,
        after: Option<&KubeadmConfig>,
    ) -> Vec<KubeadmConfigStep> {
        let Some(after) = after else {
            return Vec::new();
        };
        let Ok(cluster) = ctx.get_cluster(&after.cluster) else {
            return Vec::new();
        };
        let address = apiserver_address(ctx, cluster).unwrap_or_default();
        steps(cluster.admin_host(), &address, before, after)
    }

    /// A cluster without `kube-system/kubeadm-config` was not made by kubeadm: refused at
    /// plan time (cairn converges a kubeadm cluster's configuration, it does not make one).
    fn check(
        &self,
        _: &NodeContext,
        before: Option<&KubeadmConfigObserved>,
        after: Option<&KubeadmConfig>,
    ) -> Vec<FieldError> {
        match (before, after) {
            (None, Some(a)) => vec![FieldError::new(
                "cluster",
                format!(
                    "cluster {} has no ConfigMap kube-system/kubeadm-config: it was not made by kubeadm, and cairn does not create one",
                    a.cluster
                ),
            )],
            _ => Vec::new(),
        }
    }

    async fn create(
        &self,
        _: &NodeContext,
        spec: &KubeadmConfig,
        _: Op<'_, KubeadmConfigStep>,
    ) -> Result<KubeadmConfigObserved, NodeError> {
        Err(NodeError::Resource {
            resource: resource(&spec.cluster),
            message: "ConfigMap kube-system/kubeadm-config does not exist; cairn does not create a kubeadm cluster".into(),
        })
    }

    async fn update(
        &self,
        ctx: &NodeContext,
        _: &KubeadmConfigObserved,
        spec: &KubeadmConfig,
        op: Op<'_, KubeadmConfigStep>,
    ) -> Result<KubeadmConfigObserved, NodeError> {
        let cluster = ctx.get_cluster(&spec.cluster)?;
        let bad = |message: String| NodeError::Resource {
            resource: resource(&spec.cluster),
            message,
        };
        if !op.steps.is_empty() {
            // Re-read right before writing: the file kubeadm gets is today's configuration
            // with exactly the two fields changed.
            let text = cluster
                .kubeadm_cluster_configuration()
                .await?
                .ok_or_else(|| bad("ConfigMap kube-system/kubeadm-config disappeared".into()))?;
            let config = kubeadm::write(&text, &spec.fields())
                .map_err(|m| bad(format!("ConfigMap kube-system/kubeadm-config: {m}")))?;
            for step in &op.steps {
                tracing::info!(resource = %resource(&spec.cluster), %step, "step");
                run_step(ctx, cluster, step, &config).await?;
            }
        }
        write_marker(ctx.ssh(), cluster.admin_host(), &marker_path(), op.marker).await?;
        observe_one(ctx, cluster)
            .await?
            .map(|f| f.value)
            .ok_or_else(|| bad("ConfigMap kube-system/kubeadm-config disappeared".into()))
    }

    /// The configuration of a cluster is never deleted.
    async fn delete(
        &self,
        _: &NodeContext,
        _: &KubeadmConfigObserved,
        op: Op<'_, KubeadmConfigStep>,
    ) -> Result<(), NodeError> {
        Err(NodeError::Resource {
            resource: resource(op.key),
            message: "a cluster's kubeadm configuration is never deleted by cairn".into(),
        })
    }

    fn example() -> KubeadmConfig {
        KubeadmConfig::new(
            "homelab",
            "10.0.20.99:6443",
            ["10.0.20.99", "k8s-apiserver.home.arpa"],
        )
    }

    fn example_observed() -> Option<KubeadmConfigObserved> {
        Some(KubeadmConfigObserved {
            cluster: "homelab".into(),
            control_plane_endpoint: String::new(),
            cert_sans: vec![],
            certificate_covers_sans: true,
            host: "k8s-master-1".into(),
            certificate_sans: vec!["10.0.20.100".into()],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(endpoint: &str, sans: &[&str], covers: bool) -> KubeadmConfigObserved {
        KubeadmConfigObserved {
            cluster: "homelab".into(),
            control_plane_endpoint: endpoint.into(),
            cert_sans: sans.iter().map(|s| s.to_string()).collect(),
            certificate_covers_sans: covers,
            host: "m1".into(),
            certificate_sans: vec![],
        }
    }

    fn shown(s: &[KubeadmConfigStep]) -> Vec<String> {
        s.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn phase_zero_is_upload_then_reissue_then_restart_then_wait_for_the_new_sans() {
        let want = KubeadmConfig::new("homelab", "10.0.20.99:6443", ["k8s-apiserver.lan"]);
        let s = shown(&steps(
            "m1",
            "10.0.20.100:6443",
            Some(&observed("", &[], true)),
            &want,
        ));
        assert_eq!(s.len(), 6, "{s:#?}");
        assert!(s[0].starts_with("write the updated ClusterConfiguration"));
        assert!(s[1].starts_with("kubeadm init phase upload-config kubeadm --config"));
        assert!(s[2].starts_with("move /etc/kubernetes/pki/apiserver.{crt,key} aside on m1"));
        assert!(s[3].contains("certs apiserver") && s[3].contains("k8s-apiserver.lan, 10.0.20.99"));
        assert!(s[4].starts_with("restart the kube-apiserver static pod on m1"));
        assert!(s[5].contains("10.0.20.100:6443") && s[5].contains("10.0.20.99"));
    }

    #[test]
    fn an_interrupted_phase_zero_resumes_with_the_certificate_only() {
        let want = KubeadmConfig::new("homelab", "10.0.20.99:6443", ["10.0.20.99"]);
        let before = observed("10.0.20.99:6443", &["10.0.20.99"], false);
        let s = shown(&steps("m1", "10.0.20.100:6443", Some(&before), &want));
        assert_eq!(s.len(), 5, "{s:#?}");
        assert!(!s.iter().any(|s| s.contains("upload-config")));
        let done = observed("10.0.20.99:6443", &["10.0.20.99"], true);
        assert!(steps("m1", "a:1", Some(&done), &want).is_empty());
    }

    #[test]
    fn an_unmanaged_certificate_is_neither_reissued_nor_a_change() {
        let mut want = KubeadmConfig::new("homelab", "10.0.20.99:6443", ["10.0.20.99"]);
        want.certificate_covers_sans = None;
        let s = shown(&steps("m1", "a:1", Some(&observed("", &[], true)), &want));
        assert_eq!(s.len(), 2, "write and upload only: {s:#?}");
        let stale = observed("10.0.20.99:6443", &["10.0.20.99"], false);
        assert!(steps("m1", "a:1", Some(&stale), &want).is_empty());
        assert_eq!(
            serde_json::to_value(&want).unwrap()["certificate_covers_sans"],
            serde_json::Value::Null,
            "a desired null is not diffed"
        );
        want.certificate_covers_sans = Some(false);
        assert_eq!(want.validate()[0].field, "certificate_covers_sans");
    }

    #[test]
    fn san_order_alone_is_no_change() {
        let want = KubeadmConfig::new("homelab", "10.0.20.99:6443", ["b", "a"]);
        let before = observed("10.0.20.99:6443", &["a", "b"], true);
        assert!(steps("m1", "a:1", Some(&before), &want).is_empty());
    }

    #[test]
    fn bad_endpoints_and_sans_are_named_at_plan_time() {
        let mut k = KubeadmConfig::new("homelab", "https://10.0.20.99:6443", ["ok", "a b"]);
        let fields: Vec<String> = k.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["control_plane_endpoint", "cert_sans[1]"]);
        k.control_plane_endpoint = "10.0.20.99:x".into();
        assert_eq!(k.validate()[0].field, "control_plane_endpoint");
    }
}
