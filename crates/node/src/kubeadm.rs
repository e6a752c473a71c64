//! kubeadm's `ClusterConfiguration` (the `ClusterConfiguration` key of the ConfigMap
//! `kube-system/kubeadm-config`): reading `controlPlaneEndpoint` and `apiServer.certSANs`,
//! and setting them while every other field stays as observed (verified by re-parsing and
//! comparing the rest of the document), plus parsing what kubeadm prints.

use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

/// The two fields cairn manages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointFields {
    /// `controlPlaneEndpoint`, empty when unset.
    pub control_plane_endpoint: String,
    /// `apiServer.certSANs`, in the document's order.
    pub cert_sans: Vec<String>,
}

fn load(text: &str) -> Result<Yaml, String> {
    let mut docs = YamlLoader::load_from_str(text)
        .map_err(|e| format!("ClusterConfiguration is not valid YAML: {e}"))?;
    if docs.len() != 1 || docs[0].as_hash().is_none() {
        return Err("ClusterConfiguration is not one YAML mapping".into());
    }
    Ok(docs.remove(0))
}

fn key(s: &str) -> Yaml {
    Yaml::String(s.to_string())
}

/// Reads the managed fields.
pub fn read(text: &str) -> Result<EndpointFields, String> {
    let doc = load(text)?;
    let endpoint = match &doc["controlPlaneEndpoint"] {
        Yaml::BadValue | Yaml::Null => String::new(),
        Yaml::String(s) => s.clone(),
        _ => return Err("controlPlaneEndpoint is not a string".into()),
    };
    let sans = match &doc["apiServer"]["certSANs"] {
        Yaml::BadValue | Yaml::Null => Vec::new(),
        Yaml::Array(a) => a
            .iter()
            .map(|v| match v {
                Yaml::String(s) => Ok(s.clone()),
                Yaml::Integer(i) => Ok(i.to_string()),
                Yaml::Real(r) => Ok(r.clone()),
                _ => Err("apiServer.certSANs holds a non-string item".to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("apiServer.certSANs is not a list".into()),
    };
    Ok(EndpointFields {
        control_plane_endpoint: endpoint,
        cert_sans: sans,
    })
}

/// The document without the managed fields, for comparing "everything else".
fn rest(doc: &Yaml) -> Yaml {
    let mut d = doc.clone();
    if let Yaml::Hash(h) = &mut d {
        h.remove(&key("controlPlaneEndpoint"));
        if let Some(Yaml::Hash(api)) = h.get_mut(&key("apiServer")) {
            api.remove(&key("certSANs"));
        }
        // `apiServer:` with nothing under it is the same as no apiServer.
        if matches!(h.get(&key("apiServer")), Some(Yaml::Null))
            || matches!(h.get(&key("apiServer")), Some(Yaml::Hash(a)) if a.is_empty())
        {
            h.remove(&key("apiServer"));
        }
    }
    d
}

/// Sets `k` in place when present, else appends it.
fn set(h: &mut Hash, k: &str, v: Yaml) {
    match h.get_mut(&key(k)) {
        Some(slot) => *slot = v,
        None => {
            h.insert(key(k), v);
        }
    }
}

/// `text` with `controlPlaneEndpoint` and `apiServer.certSANs` set to `fields`; every other
/// field is kept and checked to be unchanged after re-parsing.
pub fn write(text: &str, fields: &EndpointFields) -> Result<String, String> {
    let mut doc = load(text)?;
    let Yaml::Hash(h) = &mut doc else {
        unreachable!("load returns a mapping")
    };
    // In place where the keys exist (an insert would move them to the end).
    set(
        h,
        "controlPlaneEndpoint",
        Yaml::String(fields.control_plane_endpoint.clone()),
    );
    if !matches!(h.get(&key("apiServer")), Some(Yaml::Hash(_))) {
        if !matches!(h.get(&key("apiServer")), None | Some(Yaml::Null)) {
            return Err("apiServer is not a mapping".into());
        }
        set(h, "apiServer", Yaml::Hash(Hash::new()));
    }
    let Some(Yaml::Hash(api)) = h.get_mut(&key("apiServer")) else {
        unreachable!("apiServer was made a mapping")
    };
    set(
        api,
        "certSANs",
        Yaml::Array(fields.cert_sans.iter().cloned().map(Yaml::String).collect()),
    );
    let mut out = String::new();
    YamlEmitter::new(&mut out)
        .dump(&doc)
        .map_err(|e| format!("cannot write the ClusterConfiguration: {e}"))?;
    let out = out.strip_prefix("---\n").unwrap_or(&out).to_string() + "\n";
    let again = load(&out)?;
    if read(&out)? != *fields || rest(&again) != rest(&load(text)?) {
        return Err("the edited ClusterConfiguration does not re-read as intended".into());
    }
    Ok(out)
}

/// The arguments of a printed `kubeadm join …` command (what `kubeadm token create
/// --print-join-command` prints): endpoint, token and CA-cert hash.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinCommand {
    /// `host:port` to join through.
    pub endpoint: String,
    /// The bootstrap token (sensitive).
    pub token: String,
    /// `sha256:…` of the cluster CA's public key.
    pub ca_cert_hash: String,
}

impl std::fmt::Debug for JoinCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinCommand")
            .field("endpoint", &self.endpoint)
            .field("token", &"<redacted>")
            .field("ca_cert_hash", &self.ca_cert_hash)
            .finish()
    }
}

/// Parses the last `kubeadm join` line of `out`. Errors never quote the output (it holds
/// the token).
pub fn parse_join_command(out: &str) -> Result<JoinCommand, String> {
    let line = out
        .lines()
        .rev()
        .map(|l| l.trim().trim_end_matches('\\').trim())
        .find(|l| l.starts_with("kubeadm join "))
        .ok_or("kubeadm printed no `kubeadm join` command")?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut endpoint = None;
    let mut token = None;
    let mut hash = None;
    let mut i = 2;
    while i < words.len() {
        let (flag, inline) = match words[i].split_once('=') {
            Some((f, v)) => (f, Some(v)),
            None => (words[i], None),
        };
        let mut value = || {
            inline.map(str::to_string).or_else(|| {
                i += 1;
                words.get(i).map(|s| s.to_string())
            })
        };
        match flag {
            "--token" => token = value(),
            "--discovery-token-ca-cert-hash" => hash = value(),
            f if !f.starts_with("--") && endpoint.is_none() => endpoint = Some(f.to_string()),
            _ => {}
        }
        i += 1;
    }
    Ok(JoinCommand {
        endpoint: endpoint.ok_or("the join command names no endpoint")?,
        token: token.ok_or("the join command has no --token")?,
        ca_cert_hash: hash.ok_or("the join command has no --discovery-token-ca-cert-hash")?,
    })
}

/// The certificate key `kubeadm init phase upload-certs --upload-certs` prints on its last
/// line: 64 hex digits. Errors never quote the output.
pub fn parse_certificate_key(out: &str) -> Result<String, String> {
    let last = out
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or("kubeadm printed no certificate key")?;
    if last.len() == 64 && last.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(last.to_string())
    } else {
        Err("the last line kubeadm printed is not a certificate key (64 hex digits)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBSERVED: &str = "apiServer:
  extraArgs:
  - name: authorization-mode
    value: Node,RBAC
apiVersion: kubeadm.k8s.io/v1beta4
caCertificateValidityPeriod: 87600h0m0s
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controllerManager: {}
etcd:
  local:
    dataDir: /var/lib/etcd
imageRepository: registry.k8s.io
kind: ClusterConfiguration
kubernetesVersion: v1.31.2
networking:
  dnsDomain: cluster.local
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
";

    #[test]
    fn setting_the_endpoint_and_sans_keeps_every_other_field() {
        assert_eq!(read(OBSERVED).unwrap(), EndpointFields::default());
        let want = EndpointFields {
            control_plane_endpoint: "10.0.20.99:6443".into(),
            cert_sans: vec!["10.0.20.99".into(), "k8s-apiserver.home.arpa".into()],
        };
        let out = write(OBSERVED, &want).unwrap();
        assert_eq!(read(&out).unwrap(), want);
        let (a, b) = (load(OBSERVED).unwrap(), load(&out).unwrap());
        for k in [
            "etcd",
            "networking",
            "kubernetesVersion",
            "kind",
            "apiVersion",
        ] {
            assert_eq!(a[k], b[k], "{k}");
        }
        assert_eq!(
            a["apiServer"]["extraArgs"], b["apiServer"]["extraArgs"],
            "fields beside certSANs under apiServer stay"
        );
        // Editing again is stable.
        assert_eq!(write(&out, &want).unwrap(), out);
    }

    #[test]
    fn an_empty_api_server_section_gets_the_sans() {
        let text =
            "apiServer:\napiVersion: kubeadm.k8s.io/v1beta4\ndns: {}\nkind: ClusterConfiguration\n";
        let want = EndpointFields {
            control_plane_endpoint: "10.0.20.99:6443".into(),
            cert_sans: vec!["10.0.20.99".into()],
        };
        let out = write(text, &want).unwrap();
        assert_eq!(read(&out).unwrap(), want);
        assert!(
            out.starts_with("apiServer:\n  certSANs:"),
            "kept in place: {out}"
        );
    }

    #[test]
    fn a_configuration_that_is_not_a_mapping_is_refused() {
        assert!(read("- a\n- b\n").is_err());
        assert!(write("apiServer: 3\n", &EndpointFields::default()).is_err());
    }

    #[test]
    fn join_commands_parse_and_their_debug_form_hides_the_token() {
        let out = "kubeadm join 10.0.20.99:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:1234 \n";
        let j = parse_join_command(out).unwrap();
        assert_eq!(j.endpoint, "10.0.20.99:6443");
        assert_eq!(j.token, "abcdef.0123456789abcdef");
        assert_eq!(j.ca_cert_hash, "sha256:1234");
        assert!(!format!("{j:?}").contains("abcdef"));
        let e = parse_join_command("kubeadm join 10.0.20.99:6443 --token SECRET\n").unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
    }

    #[test]
    fn the_certificate_key_is_the_last_line() {
        let key = "a".repeat(64);
        let out = format!(
            "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\"\n[upload-certs] Using certificate key:\n{key}\n"
        );
        assert_eq!(parse_certificate_key(&out).unwrap(), key);
        assert!(
            parse_certificate_key("oops SECRET\n")
                .unwrap_err()
                .contains("64 hex")
        );
    }
}
