//! `node_apiserver_certificate`: the apiserver serving certificate on a control-plane host
//! (`/etc/kubernetes/pki/apiserver.crt`), read over SSH and parsed with an X.509 parser, so
//! a plan can see which SANs it carries. A read-only lookup in this version: re-issuing it
//! is kubeadm's job (`kubeadm init phase certs apiserver`).

use async_trait::async_trait;
use cairn_core::kit::{Found, Kind, NoStep, Op, Query};
use cairn_core::{FieldError, Resource, Schema};
use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;

use super::by_host;
use crate::NodeContext;
use crate::error::NodeError;
use crate::files::{self, RemoteFile};
use crate::ssh::Ssh;

/// Where kubeadm keeps the apiserver's serving certificate.
pub const APISERVER_CRT: &str = "/etc/kubernetes/pki/apiserver.crt";

/// The apiserver certificate on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiserverCertificate {
    /// The host's declared name.
    pub host: String,
    /// The certificate's absolute path (PEM).
    pub path: String,
}

impl ApiserverCertificate {
    /// kubeadm's apiserver certificate on `host`.
    pub fn on(host: impl Into<String>) -> Self {
        ApiserverCertificate {
            host: host.into(),
            path: APISERVER_CRT.into(),
        }
    }
}

impl Resource for ApiserverCertificate {
    const KIND: &'static str = "node_apiserver_certificate";
    const PROVIDER: &'static str = "node";

    fn key(&self) -> String {
        format!("{}:{}", self.host, self.path)
    }

    fn schema() -> Schema {
        Schema {
            computed: &["sans", "not_after", "subject"],
            read_only: true,
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
        e
    }
}

/// The certificate as found: its subject, SANs (DNS names and IP addresses, in the
/// certificate's order) and expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiserverCertificateObserved {
    /// The host's declared name.
    pub host: String,
    /// The certificate's path.
    pub path: String,
    /// The subject, e.g. `CN=kube-apiserver`.
    pub subject: String,
    /// DNS names and IP addresses it is valid for.
    pub sans: Vec<String>,
    /// Its expiry (RFC 2822-like, as the X.509 parser prints it).
    pub not_after: String,
}

impl ApiserverCertificateObserved {
    /// Whether the certificate names `san` (an IP address or DNS name).
    pub fn covers(&self, san: &str) -> bool {
        self.sans.iter().any(|s| s == san)
    }
}

fn resource(key: &str) -> String {
    format!("{}[{key}]", ApiserverCertificate::KIND)
}

/// Observes the certificates of `keys` (`host:path`): one command per host, hosts at once.
pub async fn observe(
    ssh: &Ssh,
    keys: &[String],
) -> Result<Vec<Found<ApiserverCertificateObserved>>, NodeError> {
    let hosts = by_host(keys);
    let per_host = hosts.iter().map(|(host, paths)| async move {
        let wanted: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        let files = files::read_files(ssh, host, &wanted).await?;
        let mut found = Vec::new();
        for (path, file) in paths.iter().zip(files) {
            let key = format!("{host}:{path}");
            let pem = match file {
                RemoteFile::Missing => continue,
                RemoteFile::NotAFile(what) => {
                    return Err(NodeError::NotAFile {
                        resource: resource(&key),
                        host: host.to_string(),
                        path: path.to_string(),
                        what,
                    });
                }
                RemoteFile::File(b) => b,
            };
            let value = parse(host, path, &pem).map_err(|m| NodeError::Resource {
                resource: resource(&key),
                message: format!("{path} on host {host}: {m}"),
            })?;
            found.push(Found::new(key, value, None));
        }
        Ok::<_, NodeError>(found)
    });
    let mut out = Vec::new();
    for r in futures::future::join_all(per_host).await {
        out.extend(r?);
    }
    Ok(out)
}

/// Parses a PEM certificate into its observed form.
pub fn parse(host: &str, path: &str, pem: &[u8]) -> Result<ApiserverCertificateObserved, String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| format!("unreadable subjectAltName: {e}"))?
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    GeneralName::IPAddress(b) => ip(b),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ApiserverCertificateObserved {
        host: host.into(),
        path: path.into(),
        subject: cert.subject().to_string(),
        sans,
        not_after: cert.validity().not_after.to_string(),
    })
}

fn ip(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).to_string()),
        _ => None,
    }
}

/// The kind as registered with the provider kit: observed only (a read-only lookup, so the
/// engine never asks to create, update or delete it).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiserverCertificates;

impl ApiserverCertificates {
    fn read_only(key: &str) -> NodeError {
        NodeError::Resource {
            resource: resource(key),
            message: "the apiserver certificate is read-only here; kubeadm issues it".into(),
        }
    }
}

#[async_trait]
impl Kind<NodeContext> for ApiserverCertificates {
    type Spec = ApiserverCertificate;
    type Observed = ApiserverCertificateObserved;
    type Step = NoStep;

    async fn observe(
        &self,
        ctx: &NodeContext,
        q: Query<'_>,
    ) -> Result<Vec<Found<ApiserverCertificateObserved>>, NodeError> {
        observe(ctx.ssh(), q.keys).await
    }

    async fn create(
        &self,
        _: &NodeContext,
        spec: &ApiserverCertificate,
        _: Op<'_, NoStep>,
    ) -> Result<ApiserverCertificateObserved, NodeError> {
        Err(Self::read_only(&spec.key()))
    }

    async fn update(
        &self,
        _: &NodeContext,
        _: &ApiserverCertificateObserved,
        spec: &ApiserverCertificate,
        _: Op<'_, NoStep>,
    ) -> Result<ApiserverCertificateObserved, NodeError> {
        Err(Self::read_only(&spec.key()))
    }

    async fn delete(
        &self,
        _: &NodeContext,
        _: &ApiserverCertificateObserved,
        op: Op<'_, NoStep>,
    ) -> Result<(), NodeError> {
        Err(Self::read_only(op.key))
    }

    fn example() -> ApiserverCertificate {
        ApiserverCertificate::on("k8s-master")
    }

    fn example_observed() -> Option<ApiserverCertificateObserved> {
        Some(ApiserverCertificateObserved {
            host: "k8s-master".into(),
            path: APISERVER_CRT.into(),
            subject: "CN=kube-apiserver".into(),
            sans: vec!["10.0.20.100".into(), "kubernetes.default".into()],
            not_after: "Nov 30 00:00:00 2027 +00:00".into(),
        })
    }
}
