//! A master's kube-apiserver: HTTPS on the master's mapped loopback address, port 6443, with
//! the certificate and key that were in its `/etc/kubernetes/pki` when its static pod
//! started. `/readyz`, `/livez`, `/healthz`, `/version` and `kube-public/cluster-info` are
//! anonymous, as on a kubeadm cluster; every other path needs a client certificate signed by
//! the cluster CA (401 without one). Errors are `Status` bodies.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, Response, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::cluster::{
    KUBERNETES_VERSION, configmap_json, etcd_pod_json, node_json, selector_matches, status_json,
};
use crate::world_state::Shared;

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
                    async move { Ok::<_, Infallible>(handle(&ctx, authenticated, req)) }
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

fn json_response(code: u16, v: &Value) -> Response<Body> {
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

fn not_found(kind: &str, name: &str) -> Response<Body> {
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

fn query_param(q: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn handle<B>(ctx: &Ctx, authenticated: bool, req: Request<B>) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    match path.as_str() {
        "/readyz" | "/livez" | "/healthz" => return text(200, "ok"),
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
    if req.method() != Method::GET {
        return json_response(
            405,
            &status_json(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                None,
            ),
        );
    }
    let selector = query_param(&query, "labelSelector").unwrap_or_default();
    let field = query_param(&query, "fieldSelector").unwrap_or_default();
    let mut w = ctx.shared.lock();
    let rv = w.next_rv();
    let Some(c) = w.clusters.get(ctx.cluster) else {
        return json_response(
            503,
            &status_json(503, "ServiceUnavailable", "cluster gone", None),
        );
    };
    let list = |kind: &str, items: Vec<Value>| {
        json_response(
            200,
            &json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
        )
    };
    let field_ok = |v: &Value| {
        field
            .split(',')
            .filter(|f| !f.is_empty())
            .all(|f| match f.split_once('=') {
                Some(("metadata.name", n)) => v["metadata"]["name"] == n,
                Some(("spec.nodeName", n)) => v["spec"]["nodeName"] == n,
                Some(("metadata.namespace", n)) => v["metadata"]["namespace"] == n,
                _ => true,
            })
    };
    match segs.as_slice() {
        ["api"] => json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.20.100:6443"}]}),
        ),
        ["api", "v1", "nodes"] => {
            let items = c
                .nodes
                .iter()
                .map(|(n, r)| node_json(n, r, &w.live(&r.host), rv))
                .filter(|v| selector_matches(&selector, &v["metadata"]["labels"]) && field_ok(v))
                .collect();
            list("NodeList", items)
        }
        ["api", "v1", "nodes", name] => match c.nodes.get(*name) {
            Some(r) => json_response(200, &node_json(name, r, &w.live(&r.host), rv)),
            None => not_found("nodes", name),
        },
        ["api", "v1", "pods"] | ["api", "v1", "namespaces", "kube-system", "pods"] => {
            let items = c
                .nodes
                .iter()
                .filter(|(_, r)| r.control_plane && r.k3s.is_none())
                .map(|(n, r)| etcd_pod_json(n, r, &w.live(&r.host), rv))
                .filter(|v| selector_matches(&selector, &v["metadata"]["labels"]) && field_ok(v))
                .collect();
            list("PodList", items)
        }
        ["api", "v1", "namespaces", _, "pods"] => list("PodList", Vec::new()),
        ["api", "v1", "namespaces", "kube-system", "pods", name] => {
            match name.strip_prefix("etcd-").and_then(|n| {
                c.nodes
                    .get(n)
                    .filter(|r| r.control_plane && r.k3s.is_none())
                    .map(|r| (n, r))
            }) {
                Some((n, r)) => json_response(200, &etcd_pod_json(n, r, &w.live(&r.host), rv)),
                None => not_found("pods", name),
            }
        }
        ["api", "v1", "namespaces", ns, "pods", name] => {
            let _ = ns;
            not_found("pods", name)
        }
        [
            "api",
            "v1",
            "namespaces",
            "kube-system",
            "configmaps",
            "kubeadm-config",
        ] => match &c.cluster_configuration {
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
        [
            "api",
            "v1",
            "namespaces",
            "kube-public",
            "configmaps",
            "cluster-info",
        ] => {
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
        ["api", "v1", "namespaces", _, "configmaps", name] => not_found("configmaps", name),
        _ => json_response(
            404,
            &status_json(
                404,
                "NotFound",
                "the server could not find the requested resource",
                Some(json!({})),
            ),
        ),
    }
}
