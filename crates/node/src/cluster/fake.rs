//! A tiny in-test apiserver (unit tests only; the integration tests use the cluster
//! simulator): TLS by a test CA, client certificates required except for `/readyz`, and
//! just the calls the node layer makes (a node, etcd pods, `kube-system/kubeadm-config`,
//! and for the node operations: patching and deleting nodes, a node's pods, evictions that
//! a budget may refuse, PodDisruptionBudgets). In `k3s` mode control-plane nodes carry
//! k3s's etcd labels and annotations instead of kubeadm's etcd pods.

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
    /// Nodes serve as k3s's (kubelet version `+k3s1`, control-plane nodes etcd members).
    pub k3s: bool,
    /// Cordoned nodes.
    pub unschedulable: std::collections::BTreeSet<String>,
    /// Workload pods.
    pub pods: Vec<FakePod>,
    /// Pods whose eviction the budget `docfast` refuses.
    pub blocked: std::collections::BTreeSet<String>,
    /// Writes served, as `METHOD path`.
    pub writes: Vec<String>,
}

/// A pod of the fake.
#[derive(Debug, Clone)]
pub(crate) struct FakePod {
    pub namespace: String,
    pub name: String,
    pub node: String,
    /// The owner's kind (`ReplicaSet`, `DaemonSet`).
    pub owner: String,
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
                    let end = buf.windows(4).position(|x| x == b"\r\n\r\n").unwrap() + 4;
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < end + len {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let method = head.split_whitespace().next().unwrap_or("GET").to_string();
                    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let path = target.split('?').next().unwrap_or("/").to_string();
                    let query = target
                        .split_once('?')
                        .map(|(_, q)| q.to_string())
                        .unwrap_or_default();
                    let (code, body) = if method == "GET" {
                        respond(&w, &path, &query, authed)
                    } else {
                        write(&w, &method, &path, &buf[end..end + len], authed)
                    };
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
            .with_credentials(self.credentials())
            .drain_retry(std::time::Duration::from_millis(50)),
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

fn pod_json(p: &FakePod) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": p.name, "namespace": p.namespace, "labels": {"app": "docfast"},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": p.owner, "name": "o", "uid": "u"}]},
           "spec": {"nodeName": p.node, "containers": []},
           "status": {"phase": "Running", "conditions": condition(true)}})
}

fn write(
    world: &Mutex<World>,
    method: &str,
    path: &str,
    body: &[u8],
    authed: bool,
) -> (u16, String) {
    let mut w = world.lock().unwrap();
    if !authed {
        w.anonymous_refused += 1;
        return status(403, "Forbidden", "system:anonymous cannot do that");
    }
    w.writes.push(format!("{method} {path}"));
    if let Some(name) = path.strip_prefix("/api/v1/nodes/") {
        let name = name.to_string();
        if !w.nodes.contains_key(&name) {
            return status(404, "NotFound", &format!("nodes \"{name}\" not found"));
        }
        if method == "DELETE" {
            w.nodes.remove(&name);
            return (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}).to_string(),
            );
        }
        let patch: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        match patch["spec"]["unschedulable"].as_bool() {
            Some(true) => w.unschedulable.insert(name.clone()),
            _ => w.unschedulable.remove(&name),
        };
        return (
            200,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}).to_string(),
        );
    }
    if let Some(rest) = path.strip_prefix("/api/v1/namespaces/")
        && let Some((ns, rest)) = rest.split_once("/pods/")
        && let Some(name) = rest.strip_suffix("/eviction")
    {
        let Some(i) = w
            .pods
            .iter()
            .position(|p| p.namespace == ns && p.name == name)
        else {
            return status(404, "NotFound", &format!("pods \"{name}\" not found"));
        };
        if w.blocked.contains(name) {
            return (
                429,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429,
                       "reason": "TooManyRequests",
                       "message": "Cannot evict pod as it would violate the pod's disruption budget.",
                       "details": {"causes": [{"reason": "DisruptionBudget",
                           "message": "The disruption budget docfast needs 1 healthy pods and has 1 currently"}]}})
                .to_string(),
            );
        }
        w.pods.remove(i);
        return (
            201,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}).to_string(),
        );
    }
    status(405, "MethodNotAllowed", "not served by the fake")
}

fn respond(world: &Mutex<World>, path: &str, query: &str, authed: bool) -> (u16, String) {
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
    let k3s = w.k3s;
    let cordoned = w.unschedulable.clone();
    let node = |name: &str, (ready, cp): (bool, bool)| {
        let mut labels = json!({"kubernetes.io/hostname": name});
        let mut annotations = json!({});
        if cp {
            labels["node-role.kubernetes.io/control-plane"] = json!("true");
            if k3s {
                labels["node-role.kubernetes.io/etcd"] = json!("true");
                annotations["etcd.k3s.cattle.io/node-name"] = json!(format!("{name}-0a1b2c3d"));
            }
        }
        let version = if k3s { "v1.34.4+k3s1" } else { "v1.34.1" };
        json!({"apiVersion": "v1", "kind": "Node",
               "metadata": {"name": name, "labels": labels, "annotations": annotations},
               "spec": {"unschedulable": cordoned.contains(name)},
               "status": {"conditions": condition(ready),
                          "nodeInfo": {"kubeletVersion": version, "architecture": "", "bootID": "",
                              "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
                              "machineID": "", "operatingSystem": "", "osImage": "", "systemUUID": ""}}})
    };
    if path == "/api/v1/pods" {
        let on = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("fieldSelector="))
            .map(|v| v.replace("%3D", "=").replace("%3d", "="))
            .and_then(|v| v.strip_prefix("spec.nodeName=").map(str::to_string));
        let items: Vec<_> = w
            .pods
            .iter()
            .filter(|p| on.as_ref().is_none_or(|n| *n == p.node))
            .map(pod_json)
            .collect();
        return (
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
                .to_string(),
        );
    }
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
