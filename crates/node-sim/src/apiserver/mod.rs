//! A master's kube-apiserver: HTTPS on the master's mapped loopback address, port 6443, with
//! the certificate and key that were in its `/etc/kubernetes/pki` when its static pod
//! started. `/readyz`, `/livez`, `/healthz`, `/version` and `kube-public/cluster-info` are
//! anonymous, as on a kubeadm cluster; every other path needs a client certificate signed by
//! the cluster CA (401 without one). Errors are `Status` bodies.
//!
//! A k3s server's apiserver serves the same API from its cluster's state; `/readyz` fails
//! (500, `[-]etcd failed`) and writes answer 500 while its embedded etcd has no quorum.
//! The resources live in submodules: [`nodes`], [`pods`], [`policy`] (PDBs and eviction),
//! [`apps`] (Deployments).

mod apps;
mod nodes;
mod pods;
mod policy;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, Response, header, request::Parts};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::cluster::{Cluster, KUBERNETES_VERSION, configmap_json, status_json};
use crate::world_state::{Shared, World};

/// Which cluster an apiserver serves.
#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    cluster: usize,
}

/// Binds `addr` and serves until the returned task is aborted (which also closes every open
/// connection).
pub(crate) async fn serve(
    shared: Arc<Shared>,
    cluster: usize,
    addr: SocketAddr,
    cert_pem: &str,
    key_pem: &str,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let ca_pem = shared.lock().clusters[cluster].ca.cert_pem.clone();
    let tls = server_config(&ca_pem, cert_pem, key_pem).map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(addr).await?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let ctx = Ctx { shared, cluster };
    Ok(tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                // Out of file descriptors or similar: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let acceptor = acceptor.clone();
            let ctx = ctx.clone();
            conns.spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let authenticated = tls.get_ref().1.peer_certificates().is_some();
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let ctx = ctx.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = axum::body::to_bytes(Body::new(body), 1 << 20)
                            .await
                            .unwrap_or_default();
                        Ok::<_, Infallible>(handle(&ctx, authenticated, &parts, &body))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
            while conns.try_join_next().is_some() {}
        }
    }))
}

fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()).flatten() {
        roots.add(c).map_err(|e| e.to_string())?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| e.to_string())?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("apiserver.crt: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| format!("apiserver.key: {e}"))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

pub(super) fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.to_string()))
        .expect("valid response")
}

fn text(code: u16, s: &str) -> Response<Body> {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(s.to_string()))
        .expect("valid response")
}

pub(super) fn not_found(kind: &str, name: &str) -> Response<Body> {
    json_response(
        404,
        &status_json(
            404,
            "NotFound",
            &format!("{kind} \"{name}\" not found"),
            Some(json!({"name": name, "kind": kind})),
        ),
    )
}

/// The parts of a request the handlers read.
pub(super) struct Req<'a> {
    pub method: &'a Method,
    pub query: &'a str,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

impl Req<'_> {
    /// A query parameter, decoded.
    pub fn param(&self, key: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// Whether `v` matches the request's label and field selectors.
    pub fn selects(&self, v: &Value) -> bool {
        let labels = self.param("labelSelector").unwrap_or_default();
        let field = self.param("fieldSelector").unwrap_or_default();
        crate::cluster::selector_matches(&labels, &v["metadata"]["labels"])
            && field_matches(&field, v)
    }
}

/// Whether `v` matches a field selector (`metadata.name`, `metadata.namespace`,
/// `spec.nodeName`, `status.phase`; `=`, `==` and `!=`).
pub(super) fn field_matches(field: &str, v: &Value) -> bool {
    field.split(',').filter(|f| !f.is_empty()).all(|f| {
        let (key, want, eq) = match f.split_once("!=") {
            Some((k, w)) => (k, w, false),
            None => match f.split_once("==").or_else(|| f.split_once('=')) {
                Some((k, w)) => (k, w, true),
                None => return true,
            },
        };
        let have = match key.trim() {
            "metadata.name" => &v["metadata"]["name"],
            "metadata.namespace" => &v["metadata"]["namespace"],
            "spec.nodeName" => &v["spec"]["nodeName"],
            "status.phase" => &v["status"]["phase"],
            _ => return true,
        };
        (have.as_str().unwrap_or("") == want.trim()) == eq
    })
}

/// A list response.
pub(super) fn list(api_version: &str, kind: &str, rv: u64, items: Vec<Value>) -> Response<Body> {
    json_response(
        200,
        &json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    )
}

/// 405 for a verb a resource does not serve.
pub(super) fn method_not_allowed() -> Response<Body> {
    json_response(
        405,
        &status_json(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        ),
    )
}

/// 404 for a path the server does not serve.
fn no_resource() -> Response<Body> {
    json_response(
        404,
        &status_json(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        ),
    )
}

/// `/readyz`, `/livez`, `/healthz`: a k3s server's readiness follows its etcd quorum.
fn health(ctx: &Ctx, path: &str, verbose: bool) -> Response<Body> {
    let etcd_ok = {
        let w = ctx.shared.lock();
        crate::k3s::has_quorum(&w, ctx.cluster)
    };
    let etcd_line = if etcd_ok {
        "[+]etcd ok"
    } else {
        "[-]etcd failed: reason withheld"
    };
    let what = path.trim_start_matches('/');
    if etcd_ok && !verbose {
        return text(200, "ok");
    }
    let body = format!(
        "[+]ping ok\n[+]log ok\n{etcd_line}\n[+]poststarthook/start-apiserver-admission-initializer ok\n[+]poststarthook/generic-apiserver-start-informers ok\n[+]poststarthook/start-kube-apiserver-admission-initializer ok\n{what} check {}\n",
        if etcd_ok { "passed" } else { "failed" }
    );
    text(if etcd_ok { 200 } else { 500 }, &body)
}

fn handle(ctx: &Ctx, authenticated: bool, parts: &Parts, body: &[u8]) -> Response<Body> {
    let path = parts.uri.path().trim_end_matches('/').to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    match path.as_str() {
        "/readyz" | "/livez" | "/healthz" => {
            let verbose = form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "verbose");
            return health(ctx, &path, verbose);
        }
        "/version" => {
            return json_response(
                200,
                &json!({
                    "major": "1", "minor": "34", "emulationMajor": "1", "emulationMinor": "34",
                    "minCompatibilityMajor": "1", "minCompatibilityMinor": "33",
                    "gitVersion": KUBERNETES_VERSION,
                    "gitCommit": "93248f9ae092f571eb870b7664c534bfc7d00f03",
                    "gitTreeState": "clean", "buildDate": "2025-09-09T19:43:17Z",
                    "goVersion": "go1.24.6", "compiler": "gc", "platform": "linux/amd64"
                }),
            );
        }
        _ => {}
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let anonymous_ok = segs
        == [
            "api",
            "v1",
            "namespaces",
            "kube-public",
            "configmaps",
            "cluster-info",
        ];
    if !authenticated && !anonymous_ok {
        return json_response(401, &status_json(401, "Unauthorized", "Unauthorized", None));
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let req = Req {
        method: &parts.method,
        query: &query,
        content_type,
        body,
    };
    let mut w = ctx.shared.lock();
    let rv = w.next_rv();
    if w.clusters.get(ctx.cluster).is_none() {
        return json_response(
            503,
            &status_json(503, "ServiceUnavailable", "cluster gone", None),
        );
    }
    if parts.method != Method::GET && !crate::k3s::has_quorum(&w, ctx.cluster) {
        return json_response(
            500,
            &status_json(500, "InternalError", "etcdserver: request timed out", None),
        );
    }
    let cluster = ctx.cluster;
    match segs.as_slice() {
        ["api"] => json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.20.100:6443"}]}),
        ),
        ["api", "v1", "nodes", rest @ ..] => nodes::handle(&mut w, cluster, rest, &req, rv),
        ["api", "v1", "pods"] => pods::list_pods(&w, cluster, None, &req, rv),
        ["api", "v1", "namespaces", ns, "pods"] => pods::list_pods(&w, cluster, Some(ns), &req, rv),
        ["api", "v1", "namespaces", ns, "pods", name] => pods::get(&w, cluster, ns, name, &req, rv),
        ["api", "v1", "namespaces", ns, "pods", name, "eviction"] => {
            policy::evict(&mut w, cluster, ns, name, &req)
        }
        ["apis", "policy", "v1", rest @ ..] => policy::pdbs(&w, cluster, rest, &req, rv),
        ["apis", "apps", "v1", rest @ ..] => apps::handle(&w, cluster, rest, &req, rv),
        ["api", "v1", "namespaces", ns, "configmaps", name] if *req.method == Method::GET => {
            configmap(&w, &w.clusters[cluster], ns, name, rv)
        }
        _ if *req.method != Method::GET => method_not_allowed(),
        _ => no_resource(),
    }
}

/// The two ConfigMaps kubeadm clusters hold.
fn configmap(w: &World, c: &Cluster, ns: &str, name: &str, rv: u64) -> Response<Body> {
    match (ns, name) {
        ("kube-system", "kubeadm-config") => match &c.cluster_configuration {
            Some(cc) => json_response(
                200,
                &configmap_json(
                    "kube-system",
                    "kubeadm-config",
                    json!({"ClusterConfiguration": cc}),
                    rv,
                ),
            ),
            None => not_found("configmaps", "kubeadm-config"),
        },
        ("kube-public", "cluster-info") => {
            let kubeconfig = c.cluster_info_kubeconfig();
            let mut data = serde_json::Map::new();
            let now = w.now();
            for t in c.tokens.iter().filter(|t| t.expires > now) {
                data.insert(
                    format!("jws-kubeconfig-{}", t.id()),
                    json!(crate::kubeadm::jws(&t.token, &kubeconfig)),
                );
            }
            data.insert("kubeconfig".into(), json!(kubeconfig));
            json_response(
                200,
                &configmap_json("kube-public", "cluster-info", Value::Object(data), rv),
            )
        }
        _ => not_found("configmaps", name),
    }
}
