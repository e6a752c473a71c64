//! The cluster's certificate authority and what kubeadm makes with it: the apiserver's
//! serving certificate, client certificates for kubeconfigs, the discovery hash of the CA's
//! public key, bootstrap tokens and certificate keys (random, from the kernel).

use std::io::Read;
use std::net::Ipv4Addr;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use sha2::{Digest, Sha256};

/// The SANs kubeadm always puts on an apiserver certificate, before the node's own name and
/// address, the controlPlaneEndpoint host and `apiServer.certSANs`.
pub const DEFAULT_APISERVER_SANS: [&str; 5] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "10.96.0.1",
];

/// A cluster CA (`/etc/kubernetes/pki/ca.{crt,key}`).
pub struct ClusterCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM (`ca.crt`).
    pub cert_pem: String,
    /// The CA certificate, DER.
    pub cert_der: Vec<u8>,
    /// The CA key, PEM (`ca.key`).
    pub key_pem: String,
    /// `sha256:<hex>` of the CA's SubjectPublicKeyInfo, as `--discovery-token-ca-cert-hash`.
    pub discovery_hash: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("discovery_hash", &self.discovery_hash)
            .finish_non_exhaustive()
    }
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
}

impl ClusterCa {
    /// A new CA named `kubernetes`, as kubeadm makes it.
    pub fn generate() -> ClusterCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "kubernetes");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        let discovery_hash = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(key.subject_public_key_info()))
        );
        ClusterCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            discovery_hash,
            issuer: Issuer::new(params, key),
        }
    }

    /// An apiserver serving certificate (CN `kube-apiserver`) for exactly `sans` (IP
    /// addresses and DNS names).
    pub fn apiserver(&self, sans: &[String]) -> Issued {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(sans.to_vec()).expect("SANs");
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A client certificate for `cn` in `org` (e.g. `kubernetes-admin`,
    /// `system:masters`; `system:node:<name>`, `system:nodes`).
    pub fn client(&self, cn: &str, org: &str) -> Issued {
        let key = KeyPair::generate().expect("client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// The SANs kubeadm gives a control-plane node's apiserver certificate: the defaults, the
/// node's name and address, the controlPlaneEndpoint's host and `certSANs`, without
/// duplicates.
pub fn apiserver_sans(
    node: &str,
    ip: Ipv4Addr,
    endpoint_host: Option<&str>,
    cert_sans: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = DEFAULT_APISERVER_SANS
        .iter()
        .map(|s| s.to_string())
        .collect();
    out.push(node.to_string());
    out.push(ip.to_string());
    out.extend(endpoint_host.map(str::to_string));
    out.extend(cert_sans.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|s| seen.insert(s.clone()));
    out
}

/// `n` random bytes from the kernel.
fn random(n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("/dev/urandom");
    buf
}

/// A bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn bootstrap_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let s: String = random(22)
        .into_iter()
        .map(|b| ALPHABET[b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{}.{}", &s[..6], &s[6..])
}

/// A certificate key as `kubeadm init phase upload-certs` prints it: 32 bytes, hex.
pub fn certificate_key() -> String {
    hex::encode(random(32))
}
