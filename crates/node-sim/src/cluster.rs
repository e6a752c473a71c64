//! The cluster simulator's state: one `Cluster` per simulated Kubernetes cluster — its CA,
//! Nodes, the `kube-system/kubeadm-config` and `kube-public/cluster-info` ConfigMaps, etcd
//! members (kubeadm's static pods `kube-system/etcd-<node>`), bootstrap tokens and uploaded
//! certificate keys — and how the Kubernetes API renders them (JSON as the API server
//! writes it, which is what `k8s-openapi` types deserialise).
//!
//! Whether a Node is Ready, an apiserver listens or an etcd pod runs is not stored here: it
//! follows from each host's kubelet loop (the `kubelet` module), which acts on the host's files.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use yaml_rust2::{Yaml, YamlLoader};

use crate::pki::{ClusterCa, Issued};

/// How long an uploaded certificate key can be used (kubeadm deletes the `kubeadm-certs`
/// Secret with the token that owns it after two hours).
pub const CERTIFICATE_KEY_TTL: Duration = Duration::from_secs(2 * 3600);
/// How long a bootstrap token made by `kubeadm token create` lives by default.
pub const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// The Kubernetes version the simulated cluster and tools report.
pub const KUBERNETES_VERSION: &str = "v1.34.1";

/// Identifies a simulated cluster within a [`crate::NodeSim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClusterId(pub(crate) usize);

/// One simulated cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    pub name: String,
    pub ca: ClusterCa,
    pub admin: Issued,
    /// The `ClusterConfiguration` key of `kube-system/kubeadm-config`.
    pub cluster_configuration: Option<String>,
    /// The server written into `kube-public/cluster-info`'s kubeconfig.
    pub cluster_info_server: String,
    pub nodes: BTreeMap<String, NodeRec>,
    pub tokens: Vec<Token>,
    pub certificate_keys: Vec<CertificateKey>,
    /// A k3s cluster's server token (the password part of `K10<ca hash>::server:<password>`).
    pub k3s_token: Option<String>,
    /// A k3s cluster's embedded etcd members by node name; `None` while its datastore is
    /// SQLite (and for kubeadm clusters, whose members are static pods).
    pub etcd: Option<BTreeMap<String, EtcdMember>>,
    /// k3s's node-password Secrets (`kube-system/<node>.node-password.k3s`): node name to
    /// the password of the host that registered it.
    pub node_passwords: BTreeMap<String, String>,
    /// Deployments, their pods and PodDisruptionBudgets.
    pub workloads: crate::workload::Workloads,
}

/// An embedded etcd member of a k3s cluster.
#[derive(Debug, Clone)]
pub(crate) struct EtcdMember {
    /// The member name, `<node>-<8 hex>`.
    pub name: String,
    /// The host whose k3s process is the member.
    pub host: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Issued(..)")
    }
}

/// A registered Node.
#[derive(Debug, Clone)]
pub(crate) struct NodeRec {
    pub ip: Ipv4Addr,
    pub control_plane: bool,
    /// The simulated host the node runs on (its kubelet decides Ready).
    pub host: String,
    pub created: SystemTime,
    /// Set on a node a k3s process registered (labels, taints and versions as k3s sets them).
    pub k3s: Option<crate::k3s::K3sNode>,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
}

/// A bootstrap token.
#[derive(Clone)]
pub(crate) struct Token {
    pub token: String,
    pub expires: SystemTime,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}.****)", self.id())
    }
}

impl Token {
    /// The public token ID (the part before the dot).
    pub fn id(&self) -> &str {
        self.token.split('.').next().unwrap_or("")
    }
}

/// A certificate key uploaded with `kubeadm init phase upload-certs`.
#[derive(Clone)]
pub(crate) struct CertificateKey {
    pub key: String,
    pub uploaded: SystemTime,
}

impl std::fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertificateKey(uploaded {:?})", self.uploaded)
    }
}

/// The fields of a `ClusterConfiguration` the simulator acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterConfigFields {
    /// `controlPlaneEndpoint`, e.g. `10.0.20.99:6443`.
    pub control_plane_endpoint: Option<String>,
    /// `apiServer.certSANs`.
    pub cert_sans: Vec<String>,
}

impl ClusterConfigFields {
    /// The host part of the controlPlaneEndpoint.
    pub fn endpoint_host(&self) -> Option<String> {
        self.control_plane_endpoint
            .as_deref()
            .map(|e| split_host_port(e).0.to_string())
    }
}

/// Splits `host:port` (port defaults to 6443).
pub(crate) fn split_host_port(s: &str) -> (&str, u16) {
    match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().unwrap_or(6443)),
        None => (s, 6443),
    }
}

/// The documents of a kubeadm config file with their `kind`.
pub(crate) fn yaml_documents(text: &str) -> Vec<(String, String)> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let mut flush = |cur: &mut String| {
        if let Ok(d) = YamlLoader::load_from_str(cur)
            && let Some(y) = d.first()
            && let Some(kind) = y["kind"].as_str()
        {
            docs.push((kind.to_string(), std::mem::take(cur)));
        }
        cur.clear();
    };
    for line in text.lines() {
        if line.trim_end() == "---" {
            flush(&mut cur);
        } else {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    flush(&mut cur);
    docs
}

/// Parses the fields the simulator uses out of a ClusterConfiguration document.
pub(crate) fn parse_cluster_configuration(doc: &str) -> Result<ClusterConfigFields, String> {
    let y = YamlLoader::load_from_str(doc)
        .map_err(|e| format!("error converting YAML to JSON: {e}"))?
        .into_iter()
        .next()
        .unwrap_or(Yaml::Null);
    let control_plane_endpoint = y["controlPlaneEndpoint"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let cert_sans = y["apiServer"]["certSANs"]
        .as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(ClusterConfigFields {
        control_plane_endpoint,
        cert_sans,
    })
}

/// A ClusterConfiguration as `kubeadm init` stores it in `kubeadm-config`.
pub(crate) fn render_cluster_configuration(f: &ClusterConfigFields) -> String {
    let mut s = String::from("apiServer:\n");
    if !f.cert_sans.is_empty() {
        s.push_str("  certSANs:\n");
        for san in &f.cert_sans {
            s.push_str(&format!("  - {san}\n"));
        }
    }
    s.push_str(
        "apiVersion: kubeadm.k8s.io/v1beta4\ncaCertificateValidityPeriod: 87600h0m0s\ncertificateValidityPeriod: 8760h0m0s\ncertificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\n",
    );
    if let Some(e) = &f.control_plane_endpoint {
        s.push_str(&format!("controlPlaneEndpoint: {e}\n"));
    }
    s.push_str(&format!(
        "controllerManager: {{}}\ndns: {{}}\nencryptionAlgorithm: RSA-2048\netcd:\n  local:\n    dataDir: /var/lib/etcd\nimageRepository: registry.k8s.io\nkind: ClusterConfiguration\nkubernetesVersion: {KUBERNETES_VERSION}\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\nproxy: {{}}\nscheduler: {{}}\n"
    ));
    s
}

impl Cluster {
    /// A cluster with no nodes, tokens or workload.
    pub fn new(name: String, ca: ClusterCa, admin: Issued) -> Cluster {
        Cluster {
            name,
            ca,
            admin,
            cluster_configuration: None,
            cluster_info_server: String::new(),
            nodes: Default::default(),
            tokens: Vec::new(),
            certificate_keys: Vec::new(),
            k3s_token: None,
            etcd: None,
            node_passwords: BTreeMap::new(),
            workloads: Default::default(),
        }
    }

    /// The parsed ClusterConfiguration in `kubeadm-config` (empty when none is stored).
    pub fn config(&self) -> ClusterConfigFields {
        self.cluster_configuration
            .as_deref()
            .and_then(|c| parse_cluster_configuration(c).ok())
            .unwrap_or_default()
    }

    /// Valid (unexpired) tokens at `now`.
    pub fn valid_token(&self, token: &str, now: SystemTime) -> bool {
        self.tokens
            .iter()
            .any(|t| t.token == token && t.expires > now)
    }

    /// The kubeconfig in `kube-public/cluster-info`.
    pub fn cluster_info_kubeconfig(&self) -> String {
        kubeconfig_cluster_only(&self.cluster_info_server, &self.ca.cert_pem)
    }
}

/// A base64 encoding of `s` (standard alphabet, padded).
pub(crate) fn b64(s: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn kubeconfig_cluster_only(server: &str, ca_pem: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\nusers: null\n",
        b64(ca_pem.as_bytes())
    )
}

/// A kubeconfig with embedded client credentials, as kubeadm writes `admin.conf`.
pub(crate) fn kubeconfig_with_client(
    server: &str,
    ca_pem: &str,
    user: &str,
    id: &Issued,
) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: {user}\n  name: {user}@kubernetes\ncurrent-context: {user}@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem.as_bytes()),
        b64(id.cert_pem.as_bytes()),
        b64(id.key_pem.as_bytes()),
    )
}

/// A kubelet.conf as the kubelet's TLS bootstrap leaves it (client certificate rotated to
/// `/var/lib/kubelet/pki`).
pub(crate) fn kubelet_conf(server: &str, ca_pem: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: default-cluster\ncontexts:\n- context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n  name: default-context\ncurrent-context: default-context\nkind: Config\npreferences: {{}}\nusers:\n- name: default-auth\n  user:\n    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n",
        b64(ca_pem.as_bytes())
    )
}

/// The server and CA (PEM) of a kubeconfig's current context, as a kubelet reads them.
pub(crate) fn kubeconfig_server(text: &str) -> Option<(String, Option<String>)> {
    use base64::Engine;
    let y = YamlLoader::load_from_str(text).ok()?.into_iter().next()?;
    let current = y["current-context"].as_str().unwrap_or("");
    let contexts = y["contexts"].as_vec().cloned().unwrap_or_default();
    let clusters = y["clusters"].as_vec()?;
    let cluster_name = contexts
        .iter()
        .find(|c| c["name"].as_str() == Some(current))
        .and_then(|c| c["context"]["cluster"].as_str().map(str::to_string));
    let cluster = match cluster_name {
        Some(n) => clusters.iter().find(|c| c["name"].as_str() == Some(&n))?,
        None => clusters.first()?,
    };
    let server = cluster["cluster"]["server"].as_str()?.to_string();
    let ca = cluster["cluster"]["certificate-authority-data"]
        .as_str()
        .and_then(|d| {
            base64::engine::general_purpose::STANDARD
                .decode(d.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    Some((server, ca))
}

/// RFC 3339 UTC, second precision, as Kubernetes writes timestamps.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What the kubelet loop reports about a node at a moment.
#[derive(Debug, Clone)]
pub(crate) struct NodeLive {
    pub ready: bool,
    pub reason: String,
    pub message: String,
    pub since: SystemTime,
    pub etcd_running: bool,
}

pub(crate) fn uid(kind: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = hex::encode(Sha256::digest(format!("{kind}/{name}")));
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A Node as `GET /api/v1/nodes/{name}` returns it.
pub(crate) fn node_json(name: &str, n: &NodeRec, live: &NodeLive, rv: u64) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("beta.kubernetes.io/arch".into(), json!("amd64"));
    labels.insert("beta.kubernetes.io/os".into(), json!("linux"));
    labels.insert("kubernetes.io/arch".into(), json!("amd64"));
    labels.insert("kubernetes.io/hostname".into(), json!(name));
    labels.insert("kubernetes.io/os".into(), json!("linux"));
    let mut taints = Vec::new();
    if let Some(k) = &n.k3s {
        crate::k3s::node_labels_and_taints(k, &mut labels, &mut taints);
    } else if n.control_plane {
        labels.insert("node-role.kubernetes.io/control-plane".into(), json!(""));
        labels.insert(
            "node.kubernetes.io/exclude-from-external-load-balancers".into(),
            json!(""),
        );
        taints
            .push(json!({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}));
    }
    if n.unschedulable {
        taints.push(json!({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": rfc3339(n.created)}));
    }
    if !live.ready {
        taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": rfc3339(live.since)}));
    }
    let status = if live.ready {
        "True"
    } else if live.reason == "NodeStatusUnknown" {
        "Unknown"
    } else {
        "False"
    };
    let mut spec = json!({"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]});
    if !taints.is_empty() {
        spec["taints"] = json!(taints);
    }
    if n.unschedulable {
        spec["unschedulable"] = json!(true);
    }
    let mut annotations = json!({
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true"
    });
    match &n.k3s {
        None => {
            annotations["kubeadm.alpha.kubernetes.io/cri-socket"] =
                json!("unix:///var/run/containerd/containerd.sock");
        }
        Some(k) => {
            annotations["k3s.io/node-args"] = json!("[]");
            if let Some(member) = &k.etcd_name {
                annotations["etcd.k3s.cattle.io/node-name"] = json!(member);
                annotations["etcd.k3s.cattle.io/node-address"] = json!(n.ip.to_string());
            }
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": uid("node", name),
            "resourceVersion": rv.to_string(),
            "creationTimestamp": rfc3339(n.created),
            "labels": labels,
            "annotations": annotations
        },
        "spec": spec,
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": n.ip.to_string()},
                {"type": "Hostname", "address": name}
            ],
            "conditions": [{
                "type": "Ready",
                "status": status,
                "reason": live.reason,
                "message": live.message,
                "lastHeartbeatTime": rfc3339(live.since),
                "lastTransitionTime": rfc3339(live.since)
            }],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": uid("boot", name),
                "containerRuntimeVersion": "containerd://1.7.28",
                "kernelVersion": "6.12.48+deb13-amd64",
                "kubeProxyVersion": n.k3s.as_ref().map_or(KUBERNETES_VERSION, |k| k.version.as_str()),
                "kubeletVersion": n.k3s.as_ref().map_or(KUBERNETES_VERSION, |k| k.version.as_str()),
                "machineID": uid("machine", name).replace('-', ""),
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 13 (trixie)",
                "systemUUID": uid("system", name)
            }
        }
    })
}

/// kubeadm's etcd static pod `kube-system/etcd-<node>` as the API returns its mirror pod.
pub(crate) fn etcd_pod_json(node: &str, n: &NodeRec, live: &NodeLive, rv: u64) -> Value {
    let running = live.etcd_running;
    let ip = n.ip.to_string();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": format!("etcd-{node}"),
            "namespace": "kube-system",
            "uid": uid("etcd", node),
            "resourceVersion": rv.to_string(),
            "creationTimestamp": rfc3339(n.created),
            "labels": {"component": "etcd", "tier": "control-plane"},
            "annotations": {
                "kubeadm.kubernetes.io/etcd.advertise-client-urls": format!("https://{ip}:2379"),
                "kubernetes.io/config.source": "file"
            },
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid("node", node), "controller": true}]
        },
        "spec": {
            "nodeName": node,
            "hostNetwork": true,
            "priorityClassName": "system-node-critical",
            "containers": [{
                "name": "etcd",
                "image": "registry.k8s.io/etcd:3.6.4-0",
                "command": ["etcd", format!("--advertise-client-urls=https://{ip}:2379"), format!("--name={node}")]
            }]
        },
        "status": {
            "phase": if running { "Running" } else { "Pending" },
            "hostIP": ip,
            "podIP": ip,
            "conditions": [
                {"type": "Ready", "status": if running && live.ready { "True" } else { "False" }},
                {"type": "ContainersReady", "status": if running { "True" } else { "False" }}
            ]
        }
    })
}

/// A ConfigMap.
pub(crate) fn configmap_json(ns: &str, name: &str, data: Value, rv: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": uid("configmap", &format!("{ns}/{name}")),
            "resourceVersion": rv.to_string()
        },
        "data": data
    })
}

/// A `Status` error body as the API server returns it.
pub(crate) fn status_json(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut v = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code
    });
    if let Some(d) = details {
        v["details"] = d;
    }
    v
}

/// Whether `labels` match a label selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated).
pub(crate) fn selector_matches(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                labels[k.trim()].as_str() != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                labels[k.trim()].as_str() == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                labels.get(k.trim()).is_none()
            } else {
                labels.get(term).is_some()
            }
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A cluster with a fresh CA and nothing else.
    pub(crate) fn empty_cluster() -> Cluster {
        let ca = ClusterCa::generate();
        let admin = ca.client("kubernetes-admin", "kubeadm:cluster-admins");
        Cluster::new("test".into(), ca, admin)
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_796_083_200 + 3661)),
            "2026-12-01T01:01:01Z"
        );
    }

    #[test]
    fn label_selectors_match_like_the_api_server() {
        let l = json!({"component": "etcd", "tier": "control-plane"});
        assert!(selector_matches("component=etcd", &l));
        assert!(selector_matches("component=etcd,tier=control-plane", &l));
        assert!(!selector_matches("component=kube-apiserver", &l));
        assert!(selector_matches("tier", &l));
        assert!(!selector_matches("component!=etcd", &l));
    }

    #[test]
    fn api_objects_deserialise_as_the_clients_types() {
        use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
        let now = SystemTime::now();
        let rec = NodeRec {
            ip: Ipv4Addr::new(10, 0, 20, 100),
            control_plane: true,
            host: "k8s-master".into(),
            created: now,
            k3s: None,
            unschedulable: true,
        };
        let live = NodeLive {
            ready: false,
            reason: "NodeStatusUnknown".into(),
            message: "Kubelet stopped posting node status.".into(),
            since: now,
            etcd_running: true,
        };
        let node: Node = serde_json::from_value(node_json("k8s-master", &rec, &live, 7)).unwrap();
        let cond = &node.status.unwrap().conditions.unwrap()[0];
        assert_eq!(
            (cond.type_.as_str(), cond.status.as_str()),
            ("Ready", "Unknown")
        );
        assert!(
            node.spec
                .unwrap()
                .taints
                .unwrap()
                .iter()
                .any(|t| t.key == "node-role.kubernetes.io/control-plane")
        );
        let pod: Pod = serde_json::from_value(etcd_pod_json("k8s-master", &rec, &live, 7)).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("etcd-k8s-master"));
        let cm: ConfigMap = serde_json::from_value(configmap_json(
            "kube-system",
            "kubeadm-config",
            json!({"ClusterConfiguration": "kind: ClusterConfiguration\n"}),
            7,
        ))
        .unwrap();
        assert!(cm.data.unwrap().contains_key("ClusterConfiguration"));
        let list = json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "7"},
            "items": [node_json("k8s-master", &rec, &live, 7)]});
        let list: k8s_openapi::List<Node> = serde_json::from_value(list).unwrap();
        assert_eq!(list.items.len(), 1);
        let status: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status =
            serde_json::from_value(status_json(404, "NotFound", "nodes \"x\" not found", None))
                .unwrap();
        assert_eq!(status.code, Some(404));
    }

    #[test]
    fn cluster_configuration_fields_round_trip() {
        let f = ClusterConfigFields {
            control_plane_endpoint: Some("10.0.20.99:6443".into()),
            cert_sans: vec!["10.0.20.99".into(), "k8s-apiserver.lab".into()],
        };
        let doc = render_cluster_configuration(&f);
        assert_eq!(parse_cluster_configuration(&doc).unwrap(), f);
        let multi =
            format!("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\n{doc}");
        let docs = yaml_documents(&multi);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].0, "ClusterConfiguration");
    }
}
