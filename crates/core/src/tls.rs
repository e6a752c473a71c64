//! TLS trust for self-signed endpoints (Proxmox, pfSense, apiserver gates): trust a CA
//! file or pin a SHA-256 certificate fingerprint; an explicit insecure switch warns loudly.
//! Also generates self-signed server certificates for the simulators (feature `selfsigned`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// How a client decides to trust a server certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// Trust the certificates in this PEM file (a CA or the server's own certificate).
    CaFile(std::path::PathBuf),
    /// Trust exactly the certificate with this SHA-256 fingerprint (hex, `:` optional).
    Fingerprint(String),
    /// Trust anything. Only by explicit request; logs a warning each time it is built.
    Insecure,
}

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or held no certificate.
    #[error("cannot use CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The fingerprint is not 32 bytes of hex.
    #[error("invalid SHA-256 fingerprint {0:?}: expected 64 hex digits")]
    Fingerprint(String),
}

/// The SHA-256 fingerprint of a DER certificate, as uppercase hex pairs joined by `:`
/// (the form Proxmox and browsers show).
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn parse_fingerprint(s: &str) -> Result<Vec<u8>, TlsError> {
    let clean: String = s.chars().filter(|c| *c != ':').collect();
    let bytes = hex::decode(&clean).map_err(|_| TlsError::Fingerprint(s.to_string()))?;
    if bytes.len() != 32 {
        return Err(TlsError::Fingerprint(s.to_string()));
    }
    Ok(bytes)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a rustls client configuration for the given trust.
pub fn client_config(trust: &TlsTrust) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let config = match trust {
        TlsTrust::CaFile(path) => {
            let err = |reason: String| TlsError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
            let mut roots = RootCertStore::empty();
            for cert in pem_certs(&pem).map_err(err)? {
                roots.add(cert).map_err(|e| err(e.to_string()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsTrust::Fingerprint(fp) => {
            let expected = parse_fingerprint(fp)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    expected: Some(expected),
                }))
                .with_no_client_auth()
        }
        TlsTrust::Insecure => {
            tracing::warn!("TLS certificate verification is OFF (explicit insecure switch)");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier { expected: None }))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// Reads the certificates out of a PEM bundle.
fn pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in file".into());
    }
    Ok(certs)
}

/// Accepts the one certificate whose SHA-256 matches (or any, when `expected` is `None`),
/// while still checking the handshake signatures.
#[derive(Debug)]
struct PinnedVerifier {
    expected: Option<Vec<u8>>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.expected {
            None => Ok(ServerCertVerified::assertion()),
            Some(fp) if Sha256::digest(end_entity.as_ref()).as_slice() == fp.as_slice() => {
                Ok(ServerCertVerified::assertion())
            }
            Some(_) => Err(rustls::Error::General(
                "server certificate does not match the pinned SHA-256 fingerprint".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A self-signed certificate for a simulator, with what clients need to pin it.
#[cfg(feature = "selfsigned")]
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// `AA:BB:…` SHA-256 fingerprint of the certificate.
    pub fingerprint: String,
}

#[cfg(feature = "selfsigned")]
impl SelfSigned {
    /// Generates a certificate for `localhost` and 127.0.0.1 plus any extra names.
    pub fn generate(extra_names: &[&str]) -> SelfSigned {
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        names.extend(extra_names.iter().map(|s| s.to_string()));
        let ck = rcgen::generate_simple_self_signed(names).expect("rcgen self-signed certificate");
        let cert_der = ck.cert.der().to_vec();
        SelfSigned {
            cert_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
            fingerprint: fingerprint(&cert_der),
            cert_der,
        }
    }

    /// A rustls server configuration serving this certificate (HTTP/1.1).
    pub fn server_config(&self) -> rustls::ServerConfig {
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("generated key");
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(self.cert_der.clone())], key)
            .expect("generated certificate and key match");
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        cfg
    }
}

/// A certificate authority for simulators: leaf certificates it issues are trusted by a
/// client given its PEM as a CA file — the same way a real cluster CA is trusted.
#[cfg(feature = "selfsigned")]
pub struct SelfSignedCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate, PEM.
    pub cert_pem: String,
}

#[cfg(feature = "selfsigned")]
impl SelfSignedCa {
    /// Generates a CA named `name`.
    pub fn generate(name: &str) -> SelfSignedCa {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        SelfSignedCa {
            cert_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// Issues a server certificate for `localhost`, 127.0.0.1 and `names`.
    pub fn issue(&self, names: &[&str]) -> SelfSigned {
        let mut all = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        all.extend(names.iter().map(|s| s.to_string()));
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let params = rcgen::CertificateParams::new(all).expect("leaf params");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let cert_der = cert.der().to_vec();
        SelfSigned {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            fingerprint: fingerprint(&cert_der),
            cert_der,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_accept_colons_and_reject_wrong_length() {
        assert!(parse_fingerprint(&["AB"; 32].join(":")).is_ok());
        assert!(matches!(
            parse_fingerprint("abcd"),
            Err(TlsError::Fingerprint(_))
        ));
    }

    #[test]
    fn missing_ca_file_names_the_file() {
        let err = client_config(&TlsTrust::CaFile("/nonexistent/ca.pem".into())).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"));
    }
}
