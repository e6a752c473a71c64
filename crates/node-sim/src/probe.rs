//! How simulated programs reach an apiserver: a kubelet checking the server in its
//! kubelet.conf, `kubeadm join` discovering the cluster. Declared addresses go through the
//! address map and must land on loopback; TLS is verified against a CA and the declared
//! address (certificate SANs), except for kubeadm's first, deliberately insecure, fetch of
//! `cluster-info`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cairn_core::net::AddrMap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a request trusts the server.
pub(crate) enum Trust<'a> {
    /// Verify against this CA (PEM) and the declared address.
    Ca(&'a str),
    /// Accept any certificate (kubeadm's discovery of `cluster-info`, before pinning).
    Insecure,
}

/// Why a request failed, worded as Go's net/http and crypto/x509 word it.
#[derive(Debug)]
pub(crate) enum ProbeError {
    /// No TCP connection (`connect: connection refused`, timeouts, non-loopback).
    Dial(String),
    /// The TLS handshake failed (certificate not trusted, address not in the SANs, ...).
    Tls(String),
    /// The HTTP exchange failed.
    Http(String),
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Dial(s) | ProbeError::Tls(s) | ProbeError::Http(s) => f.write_str(s),
        }
    }
}

/// `https://host:port` of a kubeconfig server or `host:port` of a join endpoint.
pub(crate) fn parse_endpoint(s: &str) -> Option<(Ipv4Addr, u16)> {
    let s = s
        .strip_prefix("https://")
        .unwrap_or(s)
        .trim_end_matches('/');
    let (h, p) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (s, 443),
    };
    Some((h.parse().ok()?, p))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Debug)]
struct AcceptAny;

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn client_config(trust: &Trust<'_>) -> Result<ClientConfig, ProbeError> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the defaults");
    let mut cfg = match trust {
        Trust::Insecure => b
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny))
            .with_no_client_auth(),
        Trust::Ca(pem) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem.as_bytes()).flatten() {
                roots
                    .add(c)
                    .map_err(|e| ProbeError::Tls(format!("x509: {e}")))?;
            }
            b.with_root_certificates(roots).with_no_client_auth()
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// `GET path` on the server declared at `ip:port`; returns the status code and body.
pub(crate) async fn get(
    map: &AddrMap,
    ip: Ipv4Addr,
    port: u16,
    path: &str,
    trust: Trust<'_>,
) -> Result<(u16, String), ProbeError> {
    let url = format!("https://{ip}:{port}{path}");
    let mapped = map.map(IpAddr::V4(ip));
    if !mapped.is_loopback() {
        return Err(ProbeError::Dial(format!(
            "Get \"{url}\": dial tcp {ip}:{port}: {mapped} is not loopback (the simulator connects only inside 127.0.0.0/8)"
        )));
    }
    let addr = SocketAddr::new(mapped, port);
    let tcp = match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(ProbeError::Dial(format!(
                "Get \"{url}\": dial tcp {ip}:{port}: connect: connection refused"
            )));
        }
        Ok(Err(e)) => {
            return Err(ProbeError::Dial(format!(
                "Get \"{url}\": dial tcp {ip}:{port}: {e}"
            )));
        }
        Err(_) => {
            return Err(ProbeError::Dial(format!(
                "Get \"{url}\": dial tcp {ip}:{port}: i/o timeout"
            )));
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&trust)?));
    let name = ServerName::IpAddress(IpAddr::V4(ip).into());
    let mut tls =
        match tokio::time::timeout(Duration::from_secs(3), connector.connect(name, tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let msg = match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(rustls::Error::InvalidCertificate(c)) => {
                        format!("tls: failed to verify certificate: x509: {c}")
                    }
                    Some(other) => format!("remote error: tls: {other}"),
                    None => format!("EOF ({e})"),
                };
                return Err(ProbeError::Tls(format!("Get \"{url}\": {msg}")));
            }
            Err(_) => {
                return Err(ProbeError::Tls(format!(
                    "Get \"{url}\": net/http: TLS handshake timeout"
                )));
            }
        };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kubeadm/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        crate::cluster::KUBERNETES_VERSION
    );
    let exchange = async {
        tls.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        // A server that closes without close_notify still sent its response.
        match tls.read_to_end(&mut buf).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
            Err(e) => return Err(e),
        }
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(3), exchange)
        .await
        .map_err(|_| ProbeError::Http(format!("Get \"{url}\": context deadline exceeded")))?
        .map_err(|e| ProbeError::Http(format!("Get \"{url}\": {e}")))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| ProbeError::Http(format!("Get \"{url}\": malformed HTTP response")))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| ProbeError::Http(format!("Get \"{url}\": malformed status line")))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
