//! A tiny in-test apiserver (unit tests only; the integration tests use the cluster
//! simulator): TLS by a test CA, client certificates required except for `/readyz`, and
//! just the reads the node layer makes (a node, etcd pods, `kube-system/kubeadm-config`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cairn_core::net::Dialer;
use cairn_core::tls::{SelfSigned, SelfSignedCa};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Cluster;
use super::credentials::{self, Credentials};
use crate::ssh::{Ssh, SshOptions};

/// What the fake serves; tests change it while it runs.
#[derive(Debug, Default)]
pub(crate) struct World {
    /// Node name → (Ready, control-plane).
    pub nodes: BTreeMap<String, (bool, bool)>,
    /// Node name → etcd pod Ready.
    pub etcd: BTreeMap<String, bool>,
    /// `ClusterConfiguration` of `kube-system/kubeadm-config`.
    pub cluster_configuration: Option<String>,
    /// Requests served, by path (without query).
    pub requests: Vec<String>,
    /// Requests refused for lack of a client certificate.
    pub anonymous_refused: usize,
}

/// A running fake apiserver.
pub(crate) struct Fake {
    pub world: Arc<Mutex<World>>,
    pub ca: SelfSignedCa,
    pub admin: SelfSigned,
    pub port: u16,
}

impl Fake {
    /// Serves on `listen_ip` (a loopback address) with a certificate naming `sans`.
    pub async fn start(listen_ip: &str, sans: &[&str]) -> Fake {
        let ca = SelfSignedCa::generate("kubernetes");
        let admin = ca.issue(&["kubernetes-admin"]);
        let leaf = ca.issue(sans);
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(leaf.cert_der.clone())],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind((listen_ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let world = Arc::new(Mutex::new(World::default()));
        let w = world.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, w) = (acceptor.clone(), w.clone());
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let authed = s.get_ref().1.peer_certificates().is_some();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|x| x == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let path = target.split('?').next().unwrap_or("/").to_string();
                    let (code, body) = respond(&w, &path, authed);
                    let resp = format!(
                        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Fake {
            world,
            ca,
            admin,
            port,
        }
    }

    /// The admin credentials, as kubeadm's admin.conf would hold them.
    pub fn credentials(&self) -> Credentials {
        credentials::parse(&credentials::admin_conf(
            "https://10.0.20.100:6443",
            &self.ca.cert_pem,
            &self.admin.cert_pem,
            &self.admin.key_pem,
        ))
        .unwrap()
    }

    /// A cluster whose endpoint is `address` (declared, mapped by `10.0.0.0/8=127.0.0.0/8`),
    /// holding this fake's credentials.
    pub fn cluster(&self, address: &str) -> Arc<Cluster> {
        let dialer = Dialer::new("10.0.0.0/8=127.0.0.0/8".parse().unwrap(), true);
        let ssh =
            Arc::new(Ssh::new(SshOptions::new("/nonexistent"), dialer.clone(), vec![]).unwrap());
        Arc::new(
            Cluster::new(
                "homelab",
                format!("{address}:{}", self.port),
                "k8s-master-1",
                ssh,
                dialer,
            )
            .with_credentials(self.credentials()),
        )
    }
}

fn status(code: u16, reason: &str, message: &str) -> (u16, String) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code})
        .to_string(),
    )
}

fn condition(ready: bool) -> serde_json::Value {
    json!([{"type": "Ready", "status": if ready { "True" } else { "False" },
            "reason": if ready { "KubeletReady" } else { "KubeletNotReady" }}])
}

fn respond(world: &Mutex<World>, path: &str, authed: bool) -> (u16, String) {
    let mut w = world.lock().unwrap();
    if path == "/readyz" {
        w.requests.push(path.into());
        return (200, "ok".into());
    }
    if !authed {
        w.anonymous_refused += 1;
        return status(403, "Forbidden", "system:anonymous cannot do that");
    }
    w.requests.push(path.into());
    let node = |name: &str, (ready, cp): (bool, bool)| {
        let mut labels = json!({"kubernetes.io/hostname": name});
        if cp {
            labels["node-role.kubernetes.io/control-plane"] = json!("");
        }
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": name, "labels": labels},
               "status": {"conditions": condition(ready)}})
    };
    if let Some(name) = path.strip_prefix("/api/v1/nodes/") {
        return match w.nodes.get(name) {
            Some(s) => (200, node(name, *s).to_string()),
            None => status(404, "NotFound", &format!("nodes \"{name}\" not found")),
        };
    }
    match path {
        "/api/v1/nodes" => (
            200,
            json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {},
                   "items": w.nodes.iter().map(|(n, s)| node(n, *s)).collect::<Vec<_>>()})
            .to_string(),
        ),
        "/api/v1/namespaces/kube-system/pods" => (
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {},
                   "items": w.etcd.iter().map(|(n, ready)| json!({
                       "metadata": {"name": format!("etcd-{n}"), "namespace": "kube-system",
                                    "labels": {"component": "etcd"}},
                       "spec": {"nodeName": n, "containers": []},
                       "status": {"conditions": condition(*ready)}})).collect::<Vec<_>>()})
            .to_string(),
        ),
        "/api/v1/namespaces/kube-system/configmaps/kubeadm-config" => {
            match &w.cluster_configuration {
                Some(c) => (
                    200,
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                           "data": {"ClusterConfiguration": c}})
                    .to_string(),
                ),
                None => status(404, "NotFound", "configmaps \"kubeadm-config\" not found"),
            }
        }
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}
