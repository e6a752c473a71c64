//! HTTP(S) status probe: `GET url` must answer the expected status. Speaks just enough
//! HTTP/1.1 over the [`Dialer`], so simulator mode maps and polices every address.

use std::sync::Arc;

use async_trait::async_trait;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::Probe;
use crate::net::Dialer;
use crate::tls::{TlsTrust, client_config};

/// A parsed `http(s)://host:port/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(format!(
            "unsupported URL {url:?}: expected http:// or https://"
        ));
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h, p.parse().map_err(|_| format!("bad port in {url:?}"))?)
        }
        _ => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(format!("no host in {url:?}"));
    }
    Ok(Target {
        tls,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
    })
}

/// Waits for `GET url` to answer `status`.
#[derive(Clone)]
pub struct HttpProbe {
    url: String,
    target: Result<Target, String>,
    status: u16,
    trust: Option<TlsTrust>,
    dialer: Dialer,
}

impl HttpProbe {
    /// `GET url` must answer 200. HTTPS needs [`HttpProbe::trust`].
    pub fn get(url: &str, dialer: Dialer) -> Self {
        HttpProbe {
            url: url.to_string(),
            target: parse_url(url),
            status: 200,
            trust: None,
            dialer,
        }
    }

    /// Expect another status.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// How to trust the server's certificate (CA file, pinned fingerprint, or insecure).
    pub fn trust(mut self, trust: TlsTrust) -> Self {
        self.trust = Some(trust);
        self
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut s: S,
        t: &Target,
    ) -> Result<u16, String> {
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: cairn-gate\r\nConnection: close\r\n\r\n",
            t.path, t.host
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 || buf.len() > 8192 {
                return Err("connection closed before a status line".into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| {
                format!(
                    "malformed status line {:?}",
                    line.lines().next().unwrap_or("")
                )
            })
    }
}

#[async_trait]
impl Probe for HttpProbe {
    fn describe(&self) -> String {
        format!("GET {} answers {}", self.url, self.status)
    }

    async fn check(&self) -> Result<(), String> {
        let t = self.target.as_ref().map_err(Clone::clone)?;
        let tcp = self
            .dialer
            .connect(&t.host, t.port)
            .await
            .map_err(|e| e.to_string())?;
        let code = if t.tls {
            let trust = self
                .trust
                .as_ref()
                .ok_or_else(|| format!("{}: no way to verify its certificate: give the gate a CA file or a pinned fingerprint", self.url))?;
            let config = client_config(trust).map_err(|e| e.to_string())?;
            let name = ServerName::try_from(t.host.clone()).map_err(|e| e.to_string())?;
            let tls = TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {}: {e}", self.url))?;
            self.exchange(tls, t).await?
        } else {
            self.exchange(tcp, t).await?
        };
        if code == self.status {
            Ok(())
        } else {
            Err(format!(
                "{} answered {code}, want {}",
                self.url, self.status
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_default_ports_and_paths() {
        let t = parse_url("https://10.0.20.99:6443/readyz").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (true, "10.0.20.99", 6443, "/readyz")
        );
        let t = parse_url("http://localhost").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        assert!(parse_url("ftp://x").is_err());
    }

    #[tokio::test]
    async fn probe_reports_status_of_a_loopback_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for code in [503, 200] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut b = [0u8; 512];
                let _ = s.read(&mut b).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let p = HttpProbe::get(
            &format!("http://127.0.0.1:{port}/readyz"),
            Dialer::new(Default::default(), true),
        );
        assert!(p.check().await.unwrap_err().contains("answered 503"));
        assert!(p.check().await.is_ok());
    }

    #[cfg(feature = "selfsigned")]
    #[tokio::test]
    async fn https_probe_trusts_its_ca_or_pinned_fingerprint_and_refuses_others() {
        use crate::tls::SelfSignedCa;
        let ca = SelfSignedCa::generate("test CA");
        let leaf = ca.issue(&["127.0.0.1"]);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(leaf.server_config()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut s) = acceptor.accept(tcp).await {
                        let mut b = [0u8; 512];
                        let _ = s.read(&mut b).await;
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .await;
                        let _ = s.shutdown().await;
                    }
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        let url = format!("https://127.0.0.1:{port}/readyz");
        let probe =
            |trust| HttpProbe::get(&url, Dialer::new(Default::default(), true)).trust(trust);
        assert_eq!(
            probe(TlsTrust::CaFile(write("ca.pem", &ca.cert_pem)))
                .check()
                .await,
            Ok(())
        );
        assert_eq!(
            probe(TlsTrust::Fingerprint(leaf.fingerprint.clone()))
                .check()
                .await,
            Ok(())
        );
        let other = SelfSignedCa::generate("other CA");
        let err = probe(TlsTrust::CaFile(write("other.pem", &other.cert_pem)))
            .check()
            .await
            .unwrap_err();
        assert!(err.contains("TLS handshake"), "{err}");
        let err = probe(TlsTrust::Fingerprint(["AB"; 32].join(":")))
            .check()
            .await
            .unwrap_err();
        assert!(err.contains("pinned SHA-256 fingerprint"), "{err}");
    }

    #[tokio::test]
    async fn loopback_only_probe_refuses_unmapped_address_without_sending() {
        let p = HttpProbe::get(
            "http://192.0.2.10/readyz",
            Dialer::new(Default::default(), true),
        );
        let err = p.check().await.unwrap_err();
        assert!(err.contains("not a loopback address"), "{err}");
    }
}
