//! The cluster-admin credentials of a kubeadm cluster, read from a kubeconfig such as
//! `/etc/kubernetes/admin.conf`: the cluster CA and the admin client certificate and key.
//! They are held as sensitive values: `Debug` shows none of them, and parse errors name
//! the field that is wrong, never its content.

use std::fmt;

use base64::Engine;
use yaml_rust2::{Yaml, YamlLoader};

/// Where kubeadm writes the cluster-admin kubeconfig on a control-plane host.
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";

/// The credentials of one kubeconfig user and its cluster's CA, as PEM.
#[derive(Clone)]
pub struct Credentials {
    /// The cluster CA certificate(s), PEM.
    pub(crate) ca_pem: Vec<u8>,
    /// The client certificate, PEM.
    pub(crate) cert_pem: Vec<u8>,
    /// The client private key, PEM (sensitive).
    pub(crate) key_pem: Vec<u8>,
    /// The `server` the kubeconfig names (informational; cairn dials the declared endpoint).
    pub server: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("ca", &format_args!("<{} bytes>", self.ca_pem.len()))
            .field("client_certificate", &"<redacted>")
            .field("client_key", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The cluster CA, PEM (public).
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }
}

fn get<'a>(y: &'a Yaml, key: &str) -> &'a Yaml {
    &y[key]
}

fn named<'a>(list: &'a Yaml, name: &str) -> Option<&'a Yaml> {
    list.as_vec()?
        .iter()
        .find(|i| get(i, "name").as_str() == Some(name))
}

/// Parses a kubeconfig holding embedded credentials (`certificate-authority-data`,
/// `client-certificate-data`, `client-key-data`): the current context's cluster and user,
/// or the only ones. The error names what is missing or malformed, never a value.
pub fn parse(text: &str) -> Result<Credentials, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|_| "not valid YAML".to_string())?;
    let doc = docs.first().ok_or("empty document")?;
    let (cluster_name, user_name) = match get(doc, "current-context").as_str() {
        Some(ctx) => {
            let c = named(get(doc, "contexts"), ctx)
                .ok_or_else(|| format!("current context {ctx:?} is not in contexts"))?;
            let c = get(c, "context");
            (
                c["cluster"].as_str().map(str::to_string),
                c["user"].as_str().map(str::to_string),
            )
        }
        None => (None, None),
    };
    let pick = |list: &str, name: Option<String>| -> Result<&Yaml, String> {
        let l = get(doc, list);
        match name {
            Some(n) => named(l, &n).ok_or_else(|| format!("{list} has no entry {n:?}")),
            None => match l.as_vec().map(Vec::as_slice) {
                Some([only]) => Ok(only),
                _ => Err(format!(
                    "no current-context, and {list} does not hold exactly one entry"
                )),
            },
        }
    };
    let cluster = get(pick("clusters", cluster_name)?, "cluster");
    let user = get(pick("users", user_name)?, "user");
    let data = |y: &Yaml, field: &str| -> Result<Vec<u8>, String> {
        let b64 = y[field].as_str().ok_or_else(|| {
            format!("{field} is missing (only embedded credentials are supported)")
        })?;
        let clean: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(clean)
            .map_err(|_| format!("{field} is not base64"))
    };
    Ok(Credentials {
        ca_pem: data(cluster, "certificate-authority-data")?,
        cert_pem: data(user, "client-certificate-data")?,
        key_pem: data(user, "client-key-data")?,
        server: cluster["server"].as_str().unwrap_or_default().to_string(),
    })
}

#[cfg(test)]
pub(crate) fn admin_conf(server: &str, ca: &str, cert: &str, key: &str) -> String {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b(ca),
        b(cert),
        b(key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_conf_yields_the_current_contexts_ca_and_client_credentials() {
        let text = admin_conf("https://10.0.20.100:6443", "CA", "CERT", "SECRET-KEY");
        let c = parse(&text).unwrap();
        assert_eq!(
            (
                c.ca_pem.as_slice(),
                c.cert_pem.as_slice(),
                c.key_pem.as_slice()
            ),
            (&b"CA"[..], &b"CERT"[..], &b"SECRET-KEY"[..])
        );
        assert_eq!(c.server, "https://10.0.20.100:6443");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("SECRET") && !dbg.contains("CERT"), "{dbg}");
    }

    #[test]
    fn malformed_credentials_name_the_field_never_the_value() {
        let text = admin_conf("https://x", "CA", "CERT", "K").replace(
            "client-key-data: Sw==",
            "client-key-data: not*base64*SECRET",
        );
        let e = parse(&text).unwrap_err();
        assert_eq!(e, "client-key-data is not base64");
        let e = parse("clusters: []\nusers: []\n").unwrap_err();
        assert!(e.contains("clusters"), "{e}");
    }
}
