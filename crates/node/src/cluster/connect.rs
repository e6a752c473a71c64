//! The connection to an apiserver, built on core's [`Dialer`]: the declared address is
//! mapped (and refused in loopback-only mode) before any packet is sent, TLS is verified
//! against the cluster CA with the *declared* address as the server name (an IP SAN), and
//! the admin client certificate is presented. A certificate that does not name the address
//! fails with a message listing the SANs it does carry.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use cairn_core::net::Dialer;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

use super::credentials::Credentials;
use crate::kinds::apiserver_cert;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long one request (dial, handshake, exchange) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SANs a certificate carries (DNS names and IP addresses), for messages.
pub(crate) fn sans_of(der: &[u8]) -> Vec<String> {
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(der)
        }
    );
    apiserver_cert::parse("", "", pem.as_bytes())
        .map(|c| c.sans)
        .unwrap_or_default()
}

/// Verifies the server against the cluster CA; on a name mismatch the error lists the
/// SANs the certificate carries, and the last certificate seen is kept for callers that
/// check SANs themselves.
#[derive(Debug)]
pub(crate) struct CaVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pub(crate) seen: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().expect("not poisoned") = Some(end_entity.to_vec());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                ) => rustls::Error::General(format!(
                    "the certificate does not name {}: its SANs are [{}]",
                    server_name.to_str(),
                    sans_of(end_entity).join(", ")
                )),
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A TLS client configuration: the cluster CA as the only root, the admin client
/// certificate presented. Errors name the part that is unusable, never key material.
pub(crate) fn tls_config(creds: &Credentials) -> Result<(ClientConfig, Arc<CaVerifier>), String> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&creds.ca_pem) {
        let c = c.map_err(|_| "the cluster CA is not PEM".to_string())?;
        roots
            .add(c)
            .map_err(|e| format!("the cluster CA is unusable: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the cluster CA holds no certificate".into());
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&creds.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| "the client certificate is not PEM".to_string())?;
    let key = PrivateKeyDer::from_pem_slice(&creds.key_pem)
        .map_err(|_| "the client key is not a PEM private key".to_string())?;
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| format!("the cluster CA is unusable: {e}"))?;
    let verifier = Arc::new(CaVerifier {
        inner,
        seen: Mutex::new(None),
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_client_auth_cert(certs, key)
        .map_err(|_| "the client certificate and key do not match".to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, verifier))
}

/// Splits `host:port` (IPv6 in brackets), defaulting to 6443.
pub fn split_endpoint(endpoint: &str) -> Result<(String, u16), String> {
    let e = endpoint
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let (host, port) = match e.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.ends_with(']') => (
            h,
            p.parse()
                .map_err(|_| format!("bad port in endpoint {endpoint:?}"))?,
        ),
        _ => (e, 6443),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("no host in endpoint {endpoint:?}"));
    }
    Ok((host.to_string(), port))
}

/// A tower service that sends each request over a fresh TLS connection to one apiserver
/// address through the dialer (the kube client's transport).
#[derive(Clone)]
pub(crate) struct Connector {
    pub(crate) dialer: Dialer,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: Arc<ClientConfig>,
}

impl Connector {
    pub(crate) fn server_name(&self) -> Result<ServerName<'static>, String> {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
            Err(_) => ServerName::try_from(self.host.clone())
                .map_err(|_| format!("{:?} is not a valid server name", self.host)),
        }
    }

    pub(crate) async fn send<B>(self, mut req: Request<B>) -> Result<Response<Incoming>, BoxError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let target = format!("{}:{}", self.host, self.port);
        let tcp = self.dialer.connect(&self.host, self.port).await?;
        let name = self.server_name()?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with the apiserver at {target}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%e, "apiserver connection ended");
            }
        });
        if let Ok(v) = http::HeaderValue::from_str(&target) {
            req.headers_mut().insert(http::header::HOST, v);
        }
        Ok(sender.send_request(req).await?)
    }
}

impl<B> tower_service::Service<Request<B>> for Connector
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let me = self.clone();
        let target = format!("{}:{}", me.host, me.port);
        Box::pin(async move {
            tokio::time::timeout(REQUEST_TIMEOUT, me.send(req))
                .await
                .map_err(|_| -> BoxError {
                    format!(
                        "the apiserver at {target} did not answer within {} s",
                        REQUEST_TIMEOUT.as_secs()
                    )
                    .into()
                })?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_into_host_and_port() {
        assert_eq!(
            split_endpoint("10.0.20.99:6443").unwrap(),
            ("10.0.20.99".into(), 6443)
        );
        assert_eq!(
            split_endpoint("https://10.0.20.99:6443/").unwrap(),
            ("10.0.20.99".into(), 6443)
        );
        assert_eq!(
            split_endpoint("k8s-apiserver.lan").unwrap(),
            ("k8s-apiserver.lan".into(), 6443)
        );
        assert!(split_endpoint("10.0.20.99:x").is_err());
    }
}
