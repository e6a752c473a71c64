//! `kubeadm` on a simulated host: the subcommands the cutover uses, acting on that host's
//! `/etc/kubernetes` and on the cluster simulator, with kubeadm's output, error wording and
//! exit codes. Tokens and certificate keys appear only on the stdout of the command that
//! creates them, never in a log.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::cluster::{
    CERTIFICATE_KEY_TTL, CertificateKey, ClusterConfigFields, KUBERNETES_VERSION, NodeRec,
    TOKEN_TTL, Token, kubeconfig_server, kubeconfig_with_client, kubelet_conf,
    parse_cluster_configuration, render_cluster_configuration, split_host_port, yaml_documents,
};
use crate::pki::{apiserver_sans, bootstrap_token, certificate_key};
use crate::probe::{ProbeError, Trust, get, parse_endpoint};
use crate::world_state::{Shared, write_file};

/// What a simulated program prints and returns.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn ok(stdout: impl Into<String>) -> Output {
        Output {
            code: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }
    fn fail(stderr: impl Into<String>) -> Output {
        let mut s: String = stderr.into();
        if !s.ends_with('\n') {
            s.push('\n');
        }
        Output {
            code: 1,
            stdout: String::new(),
            stderr: s,
        }
    }
    fn phase(phase: &str, msg: &str) -> Output {
        Output::fail(format!(
            "error execution phase {phase}: {msg}\nTo see the stack trace of this error execute with --v=5 or higher"
        ))
    }
}

/// The signature `cluster-info` carries per valid token ID (`jws-kubeconfig-<id>`): a MAC of
/// the kubeconfig keyed by the token, so only a joiner holding the token can check it.
pub(crate) fn jws(token: &str, kubeconfig: &str) -> String {
    let id = token.split('.').next().unwrap_or("");
    format!(
        "eyJhbGciOiJIUzI1NiIsImtpZCI6I{id}..{}",
        hex::encode(Sha256::digest(format!("{token}\n{kubeconfig}")))
    )
}

/// Where a program run on the host sees its files: `/proc/<pid>/root` and `cwd`.
pub(crate) struct Proc {
    pub pid: u32,
}

impl Proc {
    fn path(&self, p: &str) -> PathBuf {
        if let Some(abs) = p.strip_prefix('/') {
            PathBuf::from(format!("/proc/{}/root", self.pid)).join(abs)
        } else {
            PathBuf::from(format!("/proc/{}/cwd", self.pid)).join(p)
        }
    }
}

fn flag(args: &[String], name: &str) -> Option<String> {
    let eq = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&eq).map(str::to_string)
        }
    })
}

fn has(args: &[String], name: &str) -> bool {
    args.iter()
        .any(|a| a == name || a.starts_with(&format!("{name}=")))
}

fn positional(args: &[String]) -> Vec<&str> {
    let with_value = [
        "--config",
        "--token",
        "--discovery-token-ca-cert-hash",
        "--certificate-key",
        "--kubeconfig",
        "-o",
        "--output",
        "--ttl",
        "--node-name",
        "--apiserver-advertise-address",
        "--cri-socket",
        "--v",
    ];
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if a.starts_with('-') {
            skip = with_value.contains(&a.as_str());
            continue;
        }
        out.push(a.as_str());
    }
    out
}

/// Runs `kubeadm args…` on `host`.
pub(crate) async fn run(shared: Arc<Shared>, host: &str, args: &[String], proc_: &Proc) -> Output {
    let pos = positional(args);
    match pos.as_slice() {
        ["version"] => {
            if flag(args, "-o")
                .or_else(|| flag(args, "--output"))
                .as_deref()
                == Some("short")
            {
                Output::ok(format!("{KUBERNETES_VERSION}\n"))
            } else {
                Output::ok(format!(
                    "kubeadm version: &version.Info{{Major:\"1\", Minor:\"34\", GitVersion:\"{KUBERNETES_VERSION}\", GitCommit:\"93248f9ae092f571eb870b7664c534bfc7d00f03\", GitTreeState:\"clean\", BuildDate:\"2025-09-09T19:43:17Z\", GoVersion:\"go1.24.6\", Compiler:\"gc\", Platform:\"linux/amd64\"}}\n"
                ))
            }
        }
        ["init", "phase", "upload-config", "kubeadm"] => {
            upload_config(&shared, host, args, proc_).await
        }
        ["init", "phase", "certs", "apiserver"] => certs_apiserver(&shared, host, args, proc_),
        ["init", "phase", "upload-certs"] => upload_certs(&shared, host, args).await,
        ["token", "create"] => token_create(&shared, host, args).await,
        ["join", endpoint] => join(&shared, host, endpoint, args).await,
        ["join"] => Output::fail(
            "error execution phase preflight: couldn't validate the identity of the API Server: discovery: Invalid value: \"\": bootstrapToken or file must be set",
        ),
        [] => Output::ok("Usage:\n  kubeadm [command]\n"),
        // Anything else is not modelled: it fails, naming what was asked.
        _ => Output::fail(format!(
            "unknown command \"{}\" for \"kubeadm\"\nRun 'kubeadm --help' for usage.",
            pos.join(" ")
        )),
    }
}

fn host_info(shared: &Shared, host: &str) -> Option<(PathBuf, Ipv4Addr, Option<usize>)> {
    let w = shared.lock();
    let h = w.hosts.get(host)?;
    Some((h.etc_kubernetes(), h.ip, h.cluster))
}

/// Reaches the apiserver in `kubeconfig` (admin.conf) like a client would and returns the
/// cluster whose CA it presented.
async fn api_client(shared: &Shared, etc: &Path, kubeconfig: &str) -> Result<usize, String> {
    let rel = kubeconfig
        .strip_prefix("/etc/kubernetes/")
        .unwrap_or(kubeconfig);
    let text = std::fs::read_to_string(etc.join(rel)).map_err(|_| {
        format!("failed to load admin kubeconfig: open {kubeconfig}: no such file or directory")
    })?;
    let (server, ca) = kubeconfig_server(&text)
        .ok_or_else(|| format!("invalid configuration: no server found in {kubeconfig}"))?;
    let ca = ca.ok_or("unable to load root certificates: no certificate-authority-data")?;
    let (ip, port) =
        parse_endpoint(&server).ok_or_else(|| format!("unable to resolve {server}"))?;
    match get(&shared.map, ip, port, "/readyz", Trust::Ca(&ca)).await {
        Ok((200, _)) => {}
        Ok((code, _)) => return Err(format!("the server is not ready ({code})")),
        Err(e) => return Err(e.to_string()),
    }
    shared
        .lock()
        .cluster_by_ca(&ca)
        .ok_or_else(|| "x509: certificate signed by unknown authority".into())
}

fn read_config(args: &[String], proc_: &Proc) -> Result<Vec<(String, String)>, Output> {
    let Some(path) = flag(args, "--config") else {
        return Ok(Vec::new());
    };
    std::fs::read_to_string(proc_.path(&path))
        .map(|t| yaml_documents(&t))
        .map_err(|_| {
            Output::fail(format!(
                "unable to read config from \"{path}\" : open {path}: no such file or directory"
            ))
        })
}

fn cluster_config_of(docs: &[(String, String)]) -> Result<ClusterConfigFields, Output> {
    match docs.iter().find(|(k, _)| k == "ClusterConfiguration") {
        Some((_, d)) => parse_cluster_configuration(d).map_err(Output::fail),
        None => Ok(ClusterConfigFields::default()),
    }
}

async fn upload_config(shared: &Shared, host: &str, args: &[String], proc_: &Proc) -> Output {
    let Some((etc, _, _)) = host_info(shared, host) else {
        return Output::fail("unknown host");
    };
    let docs = match read_config(args, proc_) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let fields = match cluster_config_of(&docs) {
        Ok(f) => f,
        Err(o) => return o,
    };
    let kubeconfig = flag(args, "--kubeconfig").unwrap_or("/etc/kubernetes/admin.conf".into());
    let cluster = match api_client(shared, &etc, &kubeconfig).await {
        Ok(c) => c,
        Err(e) => {
            return Output::phase(
                "upload-config/kubeadm",
                &format!("error uploading the kubeadm ClusterConfiguration: {e}"),
            );
        }
    };
    shared.lock().clusters[cluster].cluster_configuration =
        Some(render_cluster_configuration(&fields));
    Output::ok(
        "[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace\n",
    )
}

fn certs_apiserver(shared: &Shared, host: &str, args: &[String], proc_: &Proc) -> Output {
    let Some((etc, ip, _)) = host_info(shared, host) else {
        return Output::fail("unknown host");
    };
    let docs = match read_config(args, proc_) {
        Ok(d) => d,
        Err(o) => return o,
    };
    let fields = match cluster_config_of(&docs) {
        Ok(f) => f,
        Err(o) => return o,
    };
    let (crt, key) = (etc.join("pki/apiserver.crt"), etc.join("pki/apiserver.key"));
    if crt.exists() || key.exists() {
        if crt.exists() && key.exists() {
            return Output::ok("[certs] Using existing apiserver certificate and key on disk\n");
        }
        return Output::phase(
            "certs/apiserver",
            "failure loading apiserver certificate: couldn't load the certificate file /etc/kubernetes/pki/apiserver.crt: open /etc/kubernetes/pki/apiserver.crt: no such file or directory",
        );
    }
    let Ok(ca_pem) = std::fs::read_to_string(etc.join("pki/ca.crt")) else {
        return Output::phase(
            "certs/apiserver",
            "couldn't load CA certificate ca: couldn't load the certificate file /etc/kubernetes/pki/ca.crt: open /etc/kubernetes/pki/ca.crt: no such file or directory",
        );
    };
    if !etc.join("pki/ca.key").exists() {
        return Output::phase(
            "certs/apiserver",
            "couldn't load CA certificate ca: couldn't load the private key file /etc/kubernetes/pki/ca.key: open /etc/kubernetes/pki/ca.key: no such file or directory",
        );
    }
    let init = docs
        .iter()
        .find(|(k, _)| k == "InitConfiguration")
        .map(|(_, d)| d.clone());
    let (node, adv) = node_identity(host, ip, init.as_deref());
    let sans = apiserver_sans(
        &node,
        adv,
        fields.endpoint_host().as_deref(),
        &fields.cert_sans,
    );
    let issued = {
        let w = shared.lock();
        let Some(c) = w.cluster_by_ca(&ca_pem) else {
            return Output::phase(
                "certs/apiserver",
                "couldn't load CA certificate ca: the CA on disk is not a simulated cluster's CA",
            );
        };
        w.clusters[c].ca.apiserver(&sans)
    };
    if let Err(e) = write_file(&etc, "pki/apiserver.crt", &issued.cert_pem)
        .and_then(|()| write_file(&etc, "pki/apiserver.key", &issued.key_pem))
    {
        return Output::phase(
            "certs/apiserver",
            &format!("failure while saving apiserver certificate and key: {e}"),
        );
    }
    Output::ok(format!(
        "[certs] Generating \"apiserver\" certificate and key\n{}",
        describe_sans(&sans)
    ))
}

fn describe_sans(sans: &[String]) -> String {
    let (ips, dns): (Vec<&String>, Vec<&String>) = sans
        .iter()
        .partition(|s| s.parse::<std::net::IpAddr>().is_ok());
    let mut dns: Vec<&str> = dns.iter().map(|s| s.as_str()).collect();
    dns.sort();
    format!(
        "[certs] apiserver serving cert is signed for DNS names [{}] and IPs [{}]\n",
        dns.join(" "),
        ips.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    )
}

/// The node name and advertise address from an InitConfiguration, defaulting to the host's.
fn node_identity(host: &str, ip: Ipv4Addr, init: Option<&str>) -> (String, Ipv4Addr) {
    let y = init
        .and_then(|d| yaml_rust2::YamlLoader::load_from_str(d).ok())
        .and_then(|v| v.into_iter().next());
    let name = y
        .as_ref()
        .and_then(|y| y["nodeRegistration"]["name"].as_str().map(str::to_string))
        .unwrap_or_else(|| host.to_string());
    let adv = y
        .as_ref()
        .and_then(|y| {
            y["localAPIEndpoint"]["advertiseAddress"]
                .as_str()
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(ip);
    (name, adv)
}

async fn upload_certs(shared: &Shared, host: &str, args: &[String]) -> Output {
    if !has(args, "--upload-certs") {
        return Output::ok("[upload-certs] Skipping phase. Please see --upload-certs\n");
    }
    let Some((etc, _, _)) = host_info(shared, host) else {
        return Output::fail("unknown host");
    };
    for f in ["ca.crt", "ca.key"] {
        if !etc.join("pki").join(f).exists() {
            return Output::phase(
                "upload-certs",
                &format!(
                    "error uploading certs: failed to load certificate: couldn't load the certificate file /etc/kubernetes/pki/{f}: open /etc/kubernetes/pki/{f}: no such file or directory"
                ),
            );
        }
    }
    let kubeconfig = flag(args, "--kubeconfig").unwrap_or("/etc/kubernetes/admin.conf".into());
    let cluster = match api_client(shared, &etc, &kubeconfig).await {
        Ok(c) => c,
        Err(e) => return Output::phase("upload-certs", &format!("error uploading certs: {e}")),
    };
    let key = flag(args, "--certificate-key").unwrap_or_else(certificate_key);
    {
        let mut w = shared.lock();
        let now = w.now();
        w.clusters[cluster].certificate_keys.push(CertificateKey {
            key: key.clone(),
            uploaded: now,
        });
    }
    Output::ok(format!(
        "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n[upload-certs] Using certificate key:\n{key}\n"
    ))
}

async fn token_create(shared: &Shared, host: &str, args: &[String]) -> Output {
    let Some((etc, _, _)) = host_info(shared, host) else {
        return Output::fail("unknown host");
    };
    let kubeconfig = flag(args, "--kubeconfig").unwrap_or("/etc/kubernetes/admin.conf".into());
    let text = std::fs::read_to_string(
        etc.join(
            kubeconfig
                .strip_prefix("/etc/kubernetes/")
                .unwrap_or(&kubeconfig),
        ),
    )
    .unwrap_or_default();
    let cluster = match api_client(shared, &etc, &kubeconfig).await {
        Ok(c) => c,
        Err(e) => {
            return Output::fail(format!(
                "failed to create or update bootstrap token with name bootstrap-token: {e}"
            ));
        }
    };
    let token = bootstrap_token();
    let hash = {
        let mut w = shared.lock();
        let expires = w.now() + TOKEN_TTL;
        let c = &mut w.clusters[cluster];
        c.tokens.push(Token {
            token: token.clone(),
            expires,
        });
        c.ca.discovery_hash.clone()
    };
    if has(args, "--print-join-command") {
        // As kubeadm: the endpoint is the server of the kubeconfig used.
        let server = kubeconfig_server(&text).map(|s| s.0).unwrap_or_default();
        let endpoint = server.trim_start_matches("https://");
        Output::ok(format!(
            "kubeadm join {endpoint} --token {token} --discovery-token-ca-cert-hash {hash} \n"
        ))
    } else {
        Output::ok(format!("{token}\n"))
    }
}

async fn join(shared: &Shared, host: &str, endpoint: &str, args: &[String]) -> Output {
    let Some((etc, ip, _)) = host_info(shared, host) else {
        return Output::fail("unknown host");
    };
    let control_plane = has(args, "--control-plane");
    let (Some(token), Some(pin)) = (
        flag(args, "--token"),
        flag(args, "--discovery-token-ca-cert-hash"),
    ) else {
        return Output::phase(
            "preflight",
            "couldn't validate the identity of the API Server: discovery: Invalid value: \"\": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue",
        );
    };
    let mut out = String::from("[preflight] Running pre-flight checks\n");
    if etc.join("kubelet.conf").exists() || etc.join("pki/ca.crt").exists() {
        return Output::phase(
            "preflight",
            "[preflight] Some fatal errors occurred:\n\t[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists\n\t[ERROR FileAvailable--etc-kubernetes-pki-ca.crt]: /etc/kubernetes/pki/ca.crt already exists\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`",
        );
    }
    let token_ok = {
        let b = token.as_bytes();
        b.len() == 23
            && b[6] == b'.'
            && token
                .chars()
                .enumerate()
                .all(|(i, c)| i == 6 || c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    if !token_ok {
        return Output::phase(
            "preflight",
            "couldn't validate the identity of the API Server: the bootstrap token is not of the form \"[a-z0-9]{6}.[a-z0-9]{16}\"",
        );
    }
    let id = &token[..6];
    let Some((eip, eport)) = parse_endpoint(endpoint) else {
        return Output::phase(
            "preflight",
            &format!(
                "couldn't validate the identity of the API Server: dial tcp: lookup {endpoint}: no such host"
            ),
        );
    };
    let path = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
    let discovery = |e: ProbeError| {
        Output::phase(
            "preflight",
            &format!("couldn't validate the identity of the API Server: {e}"),
        )
    };
    // 1. cluster-info, insecurely.
    let body = match get(&shared.map, eip, eport, path, Trust::Insecure).await {
        Ok((200, b)) => b,
        Ok((code, _)) => {
            return Output::phase(
                "preflight",
                &format!(
                    "couldn't validate the identity of the API Server: failed to request the cluster-info ConfigMap: status {code}"
                ),
            );
        }
        Err(e) => return discovery(e),
    };
    let cm: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let kubeconfig = cm["data"]["kubeconfig"].as_str().unwrap_or("").to_string();
    // 2. The token's signature.
    let Some(sig) = cm["data"][format!("jws-kubeconfig-{id}")].as_str() else {
        return Output::phase(
            "preflight",
            &format!(
                "couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID \"{id}\""
            ),
        );
    };
    if sig != jws(&token, &kubeconfig) {
        return Output::phase(
            "preflight",
            "couldn't validate the identity of the API Server: failed to verify JWS signature of received cluster info object, can't trust this API Server",
        );
    }
    // 3. The CA pin.
    let Some((_, Some(ca_pem))) = kubeconfig_server(&kubeconfig) else {
        return Output::phase(
            "preflight",
            "couldn't validate the identity of the API Server: the cluster-info kubeconfig has no CA",
        );
    };
    let Some(cluster) = shared.lock().cluster_by_ca(&ca_pem) else {
        return Output::phase(
            "preflight",
            "couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is not a simulated cluster's CA",
        );
    };
    let actual = shared.lock().clusters[cluster].ca.discovery_hash.clone();
    if actual != pin {
        return Output::phase(
            "preflight",
            &format!(
                "couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{actual}\" are pinned"
            ),
        );
    }
    // 4. The same endpoint again, trusting the CA: its certificate must carry the address.
    if let Err(e) = get(&shared.map, eip, eport, path, Trust::Ca(&ca_pem)).await {
        return discovery(e);
    }
    out.push_str("[preflight] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...\n[preflight] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.\n");
    let (fields, fail) = {
        let mut w = shared.lock();
        let now = w.now();
        let fail = w.fail_next_join.remove(host);
        let c = &w.clusters[cluster];
        if !c.valid_token(&token, now) {
            return Output::phase(
                "preflight",
                &format!(
                    "couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID \"{id}\""
                ),
            );
        }
        if c.nodes.contains_key(host) {
            return Output::phase(
                "kubelet-start",
                &format!(
                    "a Node with name \"{host}\" and status \"Ready\" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node"
                ),
            );
        }
        let fields = c.config();
        if control_plane {
            if c.cluster_configuration.is_none() {
                return Output::phase(
                    "preflight",
                    "unable to fetch the kubeadm-config ConfigMap: configmaps \"kubeadm-config\" not found",
                );
            }
            if fields.control_plane_endpoint.is_none() {
                return Output::phase(
                    "preflight",
                    "\nOne or more conditions for hosting a new control plane instance is not satisfied.\n\nunable to add a new control plane instance to a cluster that doesn't have a stable controlPlaneEndpoint address\n\nPlease ensure that:\n* The cluster has a stable controlPlaneEndpoint address.\n* The certificates that must be shared among control plane instances are provided.\n",
                );
            }
            let Some(key) = flag(args, "--certificate-key") else {
                return Output::phase(
                    "control-plane-prepare/download-certs",
                    "error downloading certs: secrets \"kubeadm-certs\" is forbidden: a certificate key is required (--certificate-key)",
                );
            };
            match c.certificate_keys.iter().find(|k| k.key == key) {
                None if c.certificate_keys.iter().any(|k| {
                    now.duration_since(k.uploaded).unwrap_or_default() < CERTIFICATE_KEY_TTL
                }) =>
                {
                    return Output::phase(
                        "control-plane-prepare/download-certs",
                        "error downloading certs: error decoding secret data with provided key: cipher: message authentication failed",
                    );
                }
                None => {
                    return Output::phase(
                        "control-plane-prepare/download-certs",
                        "error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one",
                    );
                }
                Some(k)
                    if now.duration_since(k.uploaded).unwrap_or_default()
                        >= CERTIFICATE_KEY_TTL =>
                {
                    return Output::phase(
                        "control-plane-prepare/download-certs",
                        "error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one",
                    );
                }
                Some(_) => {}
            }
        }
        (fields, fail)
    };
    if fail {
        return Output::phase(
            "kubelet-start",
            "timed out waiting for the condition (simulated join failure)",
        );
    }
    let server = format!("https://{eip}:{eport}");
    let (_, endpoint_port) = split_host_port(endpoint);
    let _ = endpoint_port;
    if let Err(e) = join_effects(shared, cluster, host, ip, control_plane, &server, &fields) {
        return Output::phase("kubelet-start", &format!("error writing files: {e}"));
    }
    if control_plane {
        out.push_str("[control-plane-prepare] Downloading the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n[certs] Using certificateDir folder \"/etc/kubernetes/pki\"\n[certs] Generating \"apiserver\" certificate and key\n[kubeconfig] Writing \"admin.conf\" kubeconfig file\n[control-plane] Creating static Pod manifest for \"kube-apiserver\"\n[check-etcd] Checking that the etcd cluster is healthy\n[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"\n[kubelet-start] Starting the kubelet\n[etcd] Announced new etcd member joining to the existing etcd cluster\n[mark-control-plane] Marking the node ");
        out.push_str(host);
        out.push_str(" as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]\n\nThis node has joined the cluster and a new control plane instance was created:\n");
    } else {
        out.push_str("[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"\n[kubelet-start] Starting the kubelet\n\nThis node has joined the cluster:\n");
    }
    out.push_str("* Certificate signing request was sent to apiserver and a response was received.\n* The Kubelet was informed of the new secure connection details.\n\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.\n");
    Output::ok(out)
}

fn manifest_apiserver(ip: Ipv4Addr) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  annotations:\n    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: {ip}:6443\n  labels:\n    component: kube-apiserver\n    tier: control-plane\n  name: kube-apiserver\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --advertise-address={ip}\n    - --client-ca-file=/etc/kubernetes/pki/ca.crt\n    - --secure-port=6443\n    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt\n    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n    image: registry.k8s.io/kube-apiserver:{KUBERNETES_VERSION}\n    name: kube-apiserver\n  hostNetwork: true\n  priorityClassName: system-node-critical\n"
    )
}

fn manifest_etcd(node: &str, ip: Ipv4Addr) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    component: etcd\n    tier: control-plane\n  name: etcd\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n    - etcd\n    - --advertise-client-urls=https://{ip}:2379\n    - --name={node}\n    image: registry.k8s.io/etcd:3.6.4-0\n    name: etcd\n  hostNetwork: true\n"
    )
}

/// What `kubeadm init` leaves on a first control-plane node and in the cluster.
pub(crate) fn init_effects(
    shared: &Shared,
    cluster: usize,
    host: &str,
    fields: &ClusterConfigFields,
) -> std::io::Result<()> {
    let mut w = shared.lock();
    let now = w.now();
    let h = w
        .hosts
        .get(host)
        .ok_or_else(|| std::io::Error::other(format!("no simulated host {host}")))?;
    let (etc, ip) = (h.etc_kubernetes(), h.ip);
    let c = &mut w.clusters[cluster];
    let endpoint = fields
        .control_plane_endpoint
        .clone()
        .unwrap_or(format!("{ip}:6443"));
    let server = format!("https://{endpoint}");
    let sans = apiserver_sans(
        host,
        ip,
        fields.endpoint_host().as_deref(),
        &fields.cert_sans,
    );
    let cert = c.ca.apiserver(&sans);
    write_file(&etc, "pki/ca.crt", &c.ca.cert_pem)?;
    write_file(&etc, "pki/ca.key", &c.ca.key_pem)?;
    write_file(&etc, "pki/apiserver.crt", &cert.cert_pem)?;
    write_file(&etc, "pki/apiserver.key", &cert.key_pem)?;
    write_file(
        &etc,
        "admin.conf",
        &kubeconfig_with_client(&server, &c.ca.cert_pem, "kubernetes-admin", &c.admin),
    )?;
    write_file(
        &etc,
        "super-admin.conf",
        &kubeconfig_with_client(&server, &c.ca.cert_pem, "kubernetes-super-admin", &c.admin),
    )?;
    write_file(
        &etc,
        "kubelet.conf",
        &kubelet_conf(&format!("https://{ip}:6443"), &c.ca.cert_pem),
    )?;
    write_file(
        &etc,
        "manifests/kube-apiserver.yaml",
        &manifest_apiserver(ip),
    )?;
    write_file(&etc, "manifests/etcd.yaml", &manifest_etcd(host, ip))?;
    c.cluster_configuration = Some(render_cluster_configuration(fields));
    c.cluster_info_server = server;
    c.nodes.insert(
        host.to_string(),
        NodeRec {
            ip,
            control_plane: true,
            host: host.to_string(),
            created: now,
            k3s: None,
            unschedulable: false,
        },
    );
    w.hosts.get_mut(host).expect("checked").cluster = Some(cluster);
    Ok(())
}

/// What a successful `kubeadm join` leaves on the host and in the cluster. `server` is the
/// endpoint joined through (a worker's kubelet keeps using it).
pub(crate) fn join_effects(
    shared: &Shared,
    cluster: usize,
    host: &str,
    ip: Ipv4Addr,
    control_plane: bool,
    server: &str,
    fields: &ClusterConfigFields,
) -> std::io::Result<()> {
    let mut w = shared.lock();
    let now = w.now();
    let etc = w
        .hosts
        .get(host)
        .ok_or_else(|| std::io::Error::other(format!("no simulated host {host}")))?
        .etc_kubernetes();
    let c = &mut w.clusters[cluster];
    write_file(&etc, "pki/ca.crt", &c.ca.cert_pem)?;
    if control_plane {
        let endpoint = fields.control_plane_endpoint.clone().unwrap_or_default();
        let sans = apiserver_sans(
            host,
            ip,
            fields.endpoint_host().as_deref(),
            &fields.cert_sans,
        );
        let cert = c.ca.apiserver(&sans);
        write_file(&etc, "pki/ca.key", &c.ca.key_pem)?;
        write_file(&etc, "pki/apiserver.crt", &cert.cert_pem)?;
        write_file(&etc, "pki/apiserver.key", &cert.key_pem)?;
        write_file(
            &etc,
            "admin.conf",
            &kubeconfig_with_client(
                &format!("https://{endpoint}"),
                &c.ca.cert_pem,
                "kubernetes-admin",
                &c.admin,
            ),
        )?;
        // Recent kubeadm points a control-plane node's kubelet at its local apiserver.
        write_file(
            &etc,
            "kubelet.conf",
            &kubelet_conf(&format!("https://{ip}:6443"), &c.ca.cert_pem),
        )?;
        write_file(
            &etc,
            "manifests/kube-apiserver.yaml",
            &manifest_apiserver(ip),
        )?;
        write_file(&etc, "manifests/etcd.yaml", &manifest_etcd(host, ip))?;
    } else {
        write_file(&etc, "kubelet.conf", &kubelet_conf(server, &c.ca.cert_pem))?;
    }
    c.nodes.insert(
        host.to_string(),
        NodeRec {
            ip,
            control_plane,
            host: host.to_string(),
            created: now,
            k3s: None,
            unschedulable: false,
        },
    );
    let h = w.hosts.get_mut(host).expect("checked");
    h.cluster = Some(cluster);
    h.joins += 1;
    Ok(())
}
