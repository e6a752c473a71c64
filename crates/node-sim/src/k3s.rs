//! k3s on simulated hosts: what k3s's install script leaves, the `k3s` binary, the
//! `k3s`/`k3s-agent` units and the k3s process they run, and the cluster that process makes
//! or joins.
//!
//! Causes, not effects:
//! - `k3s-install.sh` (the host's stand-in for k3s's `install.sh`) does what the script does
//!   with the variables it was run with: writes `/usr/local/bin/k3s` (of the pinned
//!   `INSTALL_K3S_VERSION`), the unit file with `INSTALL_K3S_EXEC` in its `ExecStart` exactly
//!   as the script quotes it, the 0600 environment file with the `K3S_*` variables, enables
//!   the unit and restarts it unless nothing changed.
//! - Starting a unit runs "k3s" with what the files say *now* (the unit's `ExecStart`, its
//!   environment file, `/etc/rancher/k3s/config.yaml`): a first server makes a cluster (its
//!   CA, token, admin kubeconfig `/etc/rancher/k3s/k3s.yaml`), a joining server or agent
//!   needs a running server at its `--server`/`K3S_URL` and the cluster's token, and fails
//!   with k3s's wording otherwise (in the unit's journal; `systemctl` reports the failed job).
//! - A node is Ready only while its unit runs on an up host and, for an agent, the server it
//!   joined answers `/readyz` over TLS verified by the cluster CA; a server serves the
//!   Kubernetes API on its mapped address, port 6443, while its unit runs.
//!
//! Differences from a real host, on purpose: an agent whose join fails makes its start job
//! fail at once (a real `k3s-agent` keeps retrying in "activating"); the install script does
//! not download anything and refuses to run without `INSTALL_K3S_VERSION`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{Cluster, NodeLive, NodeRec, kubeconfig_with_client};
use crate::kubeadm::Output;
use crate::pki::{ClusterCa, Issued};
use crate::probe::{Trust, get, parse_endpoint};
use crate::world_state::{Shared, World};

/// k3s's admin kubeconfig on a server.
pub(crate) const K3S_YAML: &str = "rancher/k3s/k3s.yaml";
/// k3s's configuration file (under the host's `/etc`).
pub(crate) const CONFIG_YAML: &str = "rancher/k3s/config.yaml";

/// What k3s registered about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K3sNode {
    /// A server (control plane), not an agent.
    pub server: bool,
    /// Its embedded etcd member's name (`<node>-<8 hex>`), when the server is one.
    pub etcd_name: Option<String>,
    /// `--node-taint` values, `key[=value]:Effect`.
    pub taints: Vec<String>,
    /// The k3s version its process runs, e.g. `v1.34.4+k3s1` (the kubelet's version).
    pub version: String,
}

/// A k3s host's runtime state.
#[derive(Debug, Default)]
pub(crate) struct K3sRt {
    /// Units whose last start failed.
    pub failed: BTreeSet<String>,
    /// The units' journal: `(unit, line)`.
    pub journal: Vec<(String, String)>,
    /// The k3s process, while a unit runs one.
    pub running: Option<Running>,
    /// The datastore this server holds (it outlives restarts, as `/var/lib/rancher/k3s`
    /// does).
    pub datastore: Option<Datastore>,
    /// How many times a k3s process started.
    pub starts: u32,
}

/// What a server's data dir (`/var/lib/rancher/k3s/server/db`) holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Datastore {
    /// The cluster it belongs to.
    pub cluster: usize,
    /// Embedded etcd (else SQLite).
    pub etcd: bool,
}

/// A running k3s process.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    pub unit: String,
    pub server: bool,
    pub cluster: usize,
    pub node: String,
    /// The server an agent (or joined server) registered through.
    pub join: Option<(Ipv4Addr, u16)>,
    /// A server's serving certificate.
    pub cert: Option<Issued>,
    /// The Node it registered (registered again while it runs, as a kubelet does).
    pub rec: NodeRec,
    /// The node password it registered with.
    pub password: String,
}

/// The labels and taints k3s puts on its nodes.
pub(crate) fn node_labels_and_taints(
    k: &K3sNode,
    labels: &mut serde_json::Map<String, Value>,
    taints: &mut Vec<Value>,
) {
    labels.insert("node.kubernetes.io/instance-type".into(), json!("k3s"));
    if k.server {
        labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            json!("true"),
        );
        labels.insert("node-role.kubernetes.io/master".into(), json!("true"));
    }
    if k.etcd_name.is_some() {
        labels.insert("node-role.kubernetes.io/etcd".into(), json!("true"));
    }
    for t in &k.taints {
        let (kv, effect) = t.rsplit_once(':').unwrap_or((t, "NoSchedule"));
        let mut v = json!({"key": kv, "effect": effect});
        if let Some((key, value)) = kv.split_once('=') {
            v = json!({"key": key, "value": value, "effect": effect});
        }
        taints.push(v);
    }
}

fn out(code: i32, stdout: impl Into<String>, stderr: impl Into<String>) -> Output {
    Output {
        code,
        stdout: stdout.into(),
        stderr: stderr.into(),
    }
}

/// `systemctl` verbs on a k3s host's `k3s`/`k3s-agent` units; `None` when the command is not
/// about them (the generic `systemctl` answers).
pub(crate) fn systemctl(w: &mut World, host: &str, cmd: &str, units: &[String]) -> Option<Output> {
    let h = w.hosts.get_mut(host)?;
    let k = h.k3s.as_ref()?;
    // The units that exist are the unit files the install script wrote.
    for u in ["k3s", "k3s-agent"] {
        if h.dir.join(format!("systemd/{u}.service")).exists() {
            h.units.entry(u.to_string()).or_insert(false);
        } else {
            h.units.remove(u);
        }
    }
    let ours: Vec<&String> = units
        .iter()
        .filter(|u| *u == "k3s" || *u == "k3s-agent")
        .collect();
    if ours.is_empty() {
        return None;
    }
    if cmd == "is-active" {
        let mut o = out(0, "", "");
        for u in units {
            let state = match h.units.get(u) {
                Some(true) => "active",
                _ if k.failed.contains(u) => "failed",
                _ => "inactive",
            };
            o.stdout.push_str(state);
            o.stdout.push('\n');
            if state != "active" {
                o.code = 3;
            }
        }
        return Some(o);
    }
    if !matches!(cmd, "start" | "restart" | "stop" | "try-restart") {
        return None;
    }
    if let Some(u) = units.iter().find(|u| !h.units.contains_key(*u)) {
        return Some(out(
            5,
            "",
            format!("Failed to {cmd} {u}.service: Unit {u}.service not found.\n"),
        ));
    }
    let mut log = std::fs::read_to_string(h.dir.join("state/systemctl.log")).unwrap_or_default();
    for u in units {
        log.push_str(&format!("{cmd} {u}\n"));
    }
    let _ = std::fs::write(h.dir.join("state/systemctl.log"), log);
    for u in units {
        let active = w.hosts[host].units.get(u).copied().unwrap_or(false);
        match cmd {
            "stop" => stop_unit(w, host, u),
            "start" if active => {}
            "try-restart" if !active => {}
            _ => {
                stop_unit(w, host, u);
                if start_unit(w, host, u).is_err() {
                    return Some(out(
                        1,
                        "",
                        format!(
                            "Job for {u}.service failed because the control process exited with error code.\nSee \"systemctl status {u}.service\" and \"journalctl -xeu {u}.service\" for details.\n"
                        ),
                    ));
                }
            }
        }
    }
    Some(out(0, "", ""))
}

fn stop_unit(w: &mut World, host: &str, unit: &str) {
    let Some(h) = w.hosts.get_mut(host) else {
        return;
    };
    h.units.insert(unit.to_string(), false);
    if let Some(k) = h.k3s.as_mut()
        && k.running.as_ref().is_some_and(|r| r.unit == unit)
    {
        k.running = None;
        k.journal.push((
            unit.into(),
            format!("Stopped {unit}.service - Lightweight Kubernetes."),
        ));
    }
}

/// A k3s host boots: its installed (enabled) units start, failing into the journal as
/// at any start.
pub(crate) fn boot(w: &mut World, host: &str) {
    let Some(dir) = w
        .hosts
        .get(host)
        .filter(|h| h.k3s.is_some())
        .map(|h| h.dir.clone())
    else {
        return;
    };
    for u in ["k3s", "k3s-agent"] {
        if dir.join(format!("systemd/{u}.service")).exists() {
            let _ = start_unit(w, host, u);
        }
    }
}

/// Starts `unit` on `host`: runs k3s with what its files say now. On failure the journal
/// holds k3s's message and the unit is failed.
pub(crate) fn start_unit(w: &mut World, host: &str, unit: &str) -> Result<(), String> {
    let result = run_k3s(w, host, unit);
    let now = crate::cluster::rfc3339(w.now());
    let h = w.hosts.get_mut(host).expect("checked by the caller");
    let k = h.k3s.get_or_insert_with(Default::default);
    match result {
        Ok(r) => {
            k.failed.remove(unit);
            k.starts += 1;
            k.journal.push((
                unit.into(),
                format!("time=\"{now}\" level=info msg=\"Starting k3s {}\"", r.node),
            ));
            k.running = Some(r);
            h.units.insert(unit.to_string(), true);
            Ok(())
        }
        Err(msg) => {
            k.failed.insert(unit.to_string());
            k.running = None;
            k.journal.push((
                unit.into(),
                format!("time=\"{now}\" level=fatal msg=\"{msg}\""),
            ));
            k.journal.push((
                unit.into(),
                format!("{unit}.service: Main process exited, code=exited, status=1/FAILURE"),
            ));
            h.units.insert(unit.to_string(), false);
            Err(msg)
        }
    }
}

/// The options a k3s process runs with.
#[derive(Debug, Default)]
struct Opts {
    cmd: String,
    cluster_init: bool,
    server: Option<String>,
    token: Option<String>,
    taints: Vec<String>,
    tls_sans: Vec<String>,
    node_ip: Option<String>,
    node_name: Option<String>,
}

/// Flags the simulator understands; others fail as k3s fails on an undefined flag.
const LIST_FLAGS: &[&str] = &[
    "node-taint",
    "tls-san",
    "node-label",
    "disable",
    "kubelet-arg",
];
const SCALAR_FLAGS: &[&str] = &[
    "server",
    "token",
    "node-ip",
    "node-name",
    "flannel-iface",
    "write-kubeconfig-mode",
    "node-external-ip",
];
const BOOL_FLAGS: &[&str] = &["cluster-init"];

fn set(o: &mut Opts, key: &str, value: Option<&str>) -> Result<(), String> {
    let v = || value.map(str::to_string);
    match key {
        "cluster-init" => o.cluster_init = value.is_none_or(|v| v == "true"),
        "server" | "s" => o.server = v(),
        "token" | "t" => o.token = v(),
        "node-ip" | "i" => o.node_ip = v(),
        "node-name" => o.node_name = v(),
        "node-taint" => o.taints.extend(v()),
        "tls-san" => o.tls_sans.extend(v()),
        k if LIST_FLAGS.contains(&k) || SCALAR_FLAGS.contains(&k) => {}
        k => return Err(format!("flag provided but not defined: -{k}")),
    }
    Ok(())
}

/// k3s's options from `args` (after the binary), `config.yaml` and the unit's environment:
/// the command line wins for single values, lists are the config's then the command line's.
fn parse_opts(
    args: &[String],
    config: Option<&str>,
    env: &BTreeMap<String, String>,
) -> Result<Opts, String> {
    let mut o = Opts::default();
    let (cmd, flags) = args.split_first().ok_or("k3s: no command")?;
    o.cmd = cmd.clone();
    if let Some(text) = config {
        let docs = yaml_rust2::YamlLoader::load_from_str(text)
            .map_err(|e| format!("failed to parse /etc/rancher/k3s/config.yaml: {e}"))?;
        if let Some(map) = docs.first().and_then(|d| d.as_hash()) {
            for (k, v) in map {
                let key = k.as_str().unwrap_or_default();
                let scalar = |v: &yaml_rust2::Yaml| match v {
                    yaml_rust2::Yaml::String(s) => Some(s.clone()),
                    yaml_rust2::Yaml::Boolean(b) => Some(b.to_string()),
                    yaml_rust2::Yaml::Integer(i) => Some(i.to_string()),
                    _ => None,
                };
                match v {
                    yaml_rust2::Yaml::Array(items) => {
                        for i in items {
                            set(&mut o, key, scalar(i).as_deref())?;
                        }
                    }
                    other => set(&mut o, key, scalar(other).as_deref())?,
                }
            }
        }
    }
    let mut it = flags.iter();
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            return Err(format!("unexpected argument {a:?}"));
        };
        match flag.split_once('=') {
            Some((k, v)) => set(&mut o, k, Some(v))?,
            None if BOOL_FLAGS.contains(&flag) => set(&mut o, flag, None)?,
            None => {
                let v = it
                    .next()
                    .ok_or_else(|| format!("flag needs an argument: -{flag}"))?;
                set(&mut o, flag, Some(v))?;
            }
        }
    }
    if o.token.is_none() {
        o.token = env.get("K3S_TOKEN").cloned();
    }
    if o.server.is_none() {
        o.server = env.get("K3S_URL").cloned();
    }
    if o.node_name.is_none() {
        o.node_name = env.get("K3S_NODE_NAME").cloned();
    }
    Ok(o)
}

/// The arguments of a unit's `ExecStart=` after the binary, unquoted as systemd does.
pub(crate) fn exec_start_args(unit: &str) -> Vec<String> {
    let mut joined = String::new();
    let mut inside = false;
    for line in unit.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("ExecStart=") {
            inside = true;
            joined.push_str(rest);
        } else if inside {
            joined.push(' ');
            joined.push_str(l);
        } else {
            continue;
        }
        if joined.ends_with('\\') {
            joined.pop();
        } else if inside {
            break;
        }
    }
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut quote, mut any) = (None, false);
    for c in joined.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    words.into_iter().skip(1).collect()
}

/// `KEY=value` lines of an environment file (values may be single- or double-quoted).
pub(crate) fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// The `K3S_VERSION=` of an installed binary.
fn binary_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("K3S_VERSION="))
        .map(|v| v.trim_matches('\'').to_string())
}

/// The cluster CA hash a full token carries (`K10<hash>::…`): SHA-256 of the CA bundle.
pub(crate) fn ca_hash(ca_pem: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(ca_pem.as_bytes()))
}

fn run_k3s(w: &mut World, host: &str, unit: &str) -> Result<Running, String> {
    let h = w.hosts.get(host).ok_or("no such host")?;
    let (dir, host_ip) = (h.dir.clone(), h.ip);
    let unit_text = std::fs::read_to_string(dir.join(format!("systemd/{unit}.service")))
        .map_err(|_| format!("Unit {unit}.service not found."))?;
    let bin = std::fs::read_to_string(dir.join("localbin/k3s")).map_err(|_| {
        format!("{unit}.service: Failed to locate executable /usr/local/bin/k3s: No such file or directory")
    })?;
    let version = binary_version(&bin).ok_or("/usr/local/bin/k3s: exec format error")?;
    let env = std::fs::read_to_string(dir.join(format!("systemd/{unit}.service.env")))
        .map(|t| parse_env(&t))
        .unwrap_or_default();
    let config = std::fs::read_to_string(dir.join(CONFIG_YAML)).ok();
    let o = parse_opts(&exec_start_args(&unit_text), config.as_deref(), &env)?;
    let node = o.node_name.clone().unwrap_or_else(|| host.to_string());
    let node_ip: Ipv4Addr = match &o.node_ip {
        Some(ip) => ip
            .parse()
            .map_err(|_| format!("invalid node-ip {ip:?}: must be an IP address"))?,
        None => host_ip,
    };
    let server = match o.cmd.as_str() {
        "server" => true,
        "agent" => false,
        other => return Err(format!("No help topic for '{other}'")),
    };
    let now = w.now();
    let sans = |ca: &ClusterCa| {
        let mut s: Vec<String> = [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost",
            "127.0.0.1",
            "10.43.0.1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        s.push(host.to_string());
        s.push(host_ip.to_string());
        s.push(node_ip.to_string());
        s.extend(o.tls_sans.iter().cloned());
        let mut seen = BTreeSet::new();
        s.retain(|x| seen.insert(x.clone()));
        ca.apiserver(&s)
    };
    let password = node_password(&dir).map_err(|e| format!("failed to read node password: {e}"))?;
    let ds = w.hosts[host].k3s.as_ref().and_then(|k| k.datastore);
    // k3s's start logic: a data dir wins over `--server`/`--cluster-init`; SQLite plus
    // `--cluster-init` migrates to etcd; an empty data dir joins `--server`, else starts a
    // new cluster (etcd with `--cluster-init`, else SQLite).
    let (cluster, etcd, join) = match (server, ds, &o.server) {
        (false, _, None) => return Err("Error: --server is required".into()),
        (false, _, Some(url)) => {
            // An agent that has joined before knows every server (k3s saves its load
            // balancer's list in the agent's data dir) and reaches the cluster through any.
            let known = w.hosts[host].cluster;
            let (cluster, join) = join_target(w, host, url, o.token.as_deref(), known)?;
            (cluster, false, Some(join))
        }
        (true, Some(ds), _) => {
            let c = &mut w.clusters[ds.cluster];
            if let (Some(have), Some(want)) = (&c.k3s_token, o.token.as_deref().map(token_password))
                && *have != want
            {
                return Err("starting kubernetes: preparing server: bootstrap data already found and encrypted with different token".into());
            }
            if ds.etcd {
                if !c.etcd.as_ref().is_some_and(|m| m.contains_key(&node)) {
                    return Err(format!(
                        "starting kubernetes: preparing server: start managed database: this server is a not a member of the etcd cluster: member {node} was removed; delete /var/lib/rancher/k3s/server/db to join again"
                    ));
                }
                (ds.cluster, true, None)
            } else if o.cluster_init {
                // Migration of the SQLite datastore into a new one-member etcd cluster.
                c.etcd.get_or_insert_with(Default::default);
                (ds.cluster, true, None)
            } else {
                (ds.cluster, false, None)
            }
        }
        (true, None, Some(url)) => {
            let (cluster, (ip, port)) = join_target(w, host, url, o.token.as_deref(), None)?;
            let c = &w.clusters[cluster];
            if c.etcd.is_none() {
                return Err(format!(
                    "starting kubernetes: preparing server: failed to get join info: the server at {url} uses SQLite, which cannot be joined by another server; restart it with --cluster-init to migrate it to embedded etcd"
                ));
            }
            if c.etcd.as_ref().is_some_and(|m| m.contains_key(&node)) {
                return Err(format!(
                    "starting kubernetes: preparing server: start managed database: joining etcd cluster: etcdserver: duplicate node name {node} found, please use a unique name for this node"
                ));
            }
            let (healthy, members) = etcd_health(w, cluster);
            if healthy * 2 <= members {
                return Err("starting kubernetes: preparing server: start managed database: joining etcd cluster: etcdserver: unhealthy cluster".into());
            }
            (cluster, true, Some((ip, port)))
        }
        (true, None, None) => {
            let ca = ClusterCa::generate();
            let admin = ca.client("system:admin", "system:masters");
            let mut c = Cluster::new(format!("k3s@{host}"), ca, admin);
            c.k3s_token = Some(
                o.token
                    .as_deref()
                    .map(token_password)
                    .unwrap_or_else(|| crate::pki::certificate_key()[..32].to_string()),
            );
            if o.cluster_init {
                c.etcd = Some(Default::default());
            }
            w.clusters.push(c);
            (w.clusters.len() - 1, o.cluster_init, None)
        }
    };
    let c = &mut w.clusters[cluster];
    if c.node_passwords.get(&node).is_some_and(|p| *p != password) {
        return Err(NODE_PASSWORD_REJECTED.into());
    }
    let cert = server.then(|| sans(&c.ca));
    if server {
        let kubeconfig = kubeconfig_with_client(
            "https://127.0.0.1:6443",
            &c.ca.cert_pem,
            "default",
            &c.admin,
        );
        write_private(&dir, K3S_YAML, &kubeconfig).map_err(|e| e.to_string())?;
    }
    let etcd_name = if etcd {
        let members = c.etcd.get_or_insert_with(Default::default);
        let m = members
            .entry(node.clone())
            .or_insert_with(|| crate::cluster::EtcdMember {
                name: format!("{node}-{}", &crate::pki::certificate_key()[..8]),
                host: host.to_string(),
            });
        m.host = host.to_string();
        Some(m.name.clone())
    } else {
        None
    };
    let old = c.nodes.get(&node);
    let rec = NodeRec {
        ip: node_ip,
        control_plane: server,
        host: host.to_string(),
        created: old.map_or(now, |n| n.created),
        k3s: Some(K3sNode {
            server,
            etcd_name,
            taints: o.taints.clone(),
            version: version.clone(),
        }),
        unschedulable: old.is_some_and(|n| n.unschedulable),
    };
    c.nodes.insert(node.clone(), rec.clone());
    c.node_passwords.insert(node.clone(), password.clone());
    let h = w.hosts.get_mut(host).expect("checked");
    h.cluster = Some(cluster);
    if server {
        h.k3s.get_or_insert_with(Default::default).datastore = Some(Datastore { cluster, etcd });
    }
    Ok(Running {
        unit: unit.to_string(),
        server,
        cluster,
        node,
        join,
        cert,
        rec,
        password,
    })
}

/// What k3s answers a node whose name is registered with another host's node password.
pub(crate) const NODE_PASSWORD_REJECTED: &str = "Node password rejected, duplicate hostname or contents of '/etc/rancher/node/password' may not match server node-passwd entry, try enabling a unique node name with the --with-node-id flag";

/// The host's `/etc/rancher/node/password`, made at its first k3s start.
fn node_password(dir: &Path) -> std::io::Result<String> {
    let p = dir.join("rancher/node/password");
    match std::fs::read_to_string(&p) {
        Ok(t) => Ok(t.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let pw = crate::pki::certificate_key()[..32].to_string();
            write_private(dir, "rancher/node/password", &format!("{pw}\n"))?;
            Ok(pw)
        }
        Err(e) => Err(e),
    }
}

/// The cluster a joining node reaches at `url` with `token` (or, when `known` names the
/// cluster it has joined before, through any of its running servers), or k3s's message
/// why not.
fn join_target(
    w: &mut World,
    host: &str,
    url: &str,
    token: Option<&str>,
    known: Option<usize>,
) -> Result<(usize, (Ipv4Addr, u16)), String> {
    let (ip, port) =
        parse_endpoint(url).ok_or_else(|| format!("Error: invalid server url {url:?}"))?;
    let serves = |t: &crate::world_state::HostRt| {
        t.k3s
            .as_ref()?
            .running
            .as_ref()
            .filter(|r| t.up && r.server)
            .map(|r| r.cluster)
    };
    let target = w
        .hosts
        .values()
        .find_map(|t| serves(t).filter(|_| t.ip == ip && port == 6443))
        .or_else(|| known.filter(|c| w.hosts.values().any(|t| serves(t) == Some(*c))));
    let Some(cluster) = target else {
        return Err(format!(
            "Failed to validate connection to cluster at {url}: failed to get CA certs: Get \\\"{url}/cacerts\\\": dial tcp {ip}:{port}: connect: connection refused"
        ));
    };
    let token = token.ok_or("Error: --token is required")?;
    let c = &w.clusters[cluster];
    let actual = ca_hash(&c.ca.cert_pem);
    if let Some((hash, _)) = token.strip_prefix("K10").and_then(|t| t.split_once("::"))
        && hash != actual
    {
        return Err(format!(
            "token CA hash does not match the Cluster CA certificate hash: {hash} != {actual}"
        ));
    }
    let fail = w.fail_next_k3s_join.remove(host);
    if fail || c.k3s_token.as_deref() != Some(token_password(token).as_str()) {
        return Err(format!(
            "Failed to validate connection to cluster at {url}: failed to get CA certs: {url}/cacerts: 401 Unauthorized"
        ));
    }
    Ok((cluster, (ip, port)))
}

/// `(healthy, members)` of a k3s cluster's embedded etcd: a member is healthy while its
/// host is up and runs the member's k3s server process. `(0, 0)` for SQLite.
pub(crate) fn etcd_health(w: &World, cluster: usize) -> (usize, usize) {
    let Some(members) = w.clusters.get(cluster).and_then(|c| c.etcd.as_ref()) else {
        return (0, 0);
    };
    let healthy = members
        .iter()
        .filter(|(node, m)| {
            w.hosts.get(&m.host).is_some_and(|h| {
                h.up && h
                    .k3s
                    .as_ref()
                    .and_then(|k| k.running.as_ref())
                    .is_some_and(|r| r.server && r.cluster == cluster && r.node == **node)
            })
        })
        .count();
    (healthy, members.len())
}

/// Whether a k3s cluster's datastore answers: SQLite always (while its server runs), etcd
/// with quorum (healthy members more than half of all).
pub(crate) fn has_quorum(w: &World, cluster: usize) -> bool {
    match w.clusters.get(cluster).and_then(|c| c.etcd.as_ref()) {
        None => true,
        Some(_) => {
            let (healthy, members) = etcd_health(w, cluster);
            healthy * 2 > members
        }
    }
}

/// The password part of a token (`K10<hash>::<user>:<password>` or the bare value).
fn token_password(token: &str) -> String {
    match token.strip_prefix("K10").and_then(|t| t.split_once("::")) {
        Some((_, cred)) => cred.rsplit(':').next().unwrap_or(cred).to_string(),
        None => token.to_string(),
    }
}

fn write_private(dir: &Path, rel: &str, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = p.with_extension("cairn-sim-tmp");
    std::fs::write(&tmp, content)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(tmp, p)
}

/// What k3s's install script does, given the variables it was run with (`INSTALL_K3S_*`,
/// `K3S_*`) and its arguments.
pub(crate) fn install(
    shared: &Shared,
    host: &str,
    env: &BTreeMap<String, String>,
    args: &[String],
) -> Output {
    let fatal = |m: &str| out(1, "", format!("[ERROR]  {m}\n"));
    let Some(version) = env.get("INSTALL_K3S_VERSION").filter(|v| !v.is_empty()) else {
        return fatal(
            "the simulated install script downloads nothing: set INSTALL_K3S_VERSION to the release to install",
        );
    };
    let mut words: Vec<String> = env
        .get("INSTALL_K3S_EXEC")
        .map(|e| e.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    words.extend(args.iter().cloned());
    let url = env.get("K3S_URL").filter(|u| !u.is_empty());
    let cmd = match words.first() {
        Some(w) if !w.starts_with('-') => words.remove(0),
        _ if url.is_none() => "server".to_string(),
        _ => {
            if !env.contains_key("K3S_TOKEN") && !env.contains_key("K3S_TOKEN_FILE") {
                return fatal(
                    "Defaulted k3s exec command to 'agent' because K3S_URL is defined, but K3S_TOKEN or K3S_TOKEN_FILE is not defined.",
                );
            }
            "agent".to_string()
        }
    };
    if let Some(u) = url
        && !u.starts_with("https://")
    {
        return fatal(&format!(
            "Only https:// URLs are supported for K3S_URL (have {u})"
        ));
    }
    let name = if cmd == "server" {
        "k3s".to_string()
    } else {
        format!("k3s-{cmd}")
    };
    let mut w = shared.lock();
    let Some(h) = w.hosts.get(host) else {
        return fatal("no such host");
    };
    let dir = h.dir.clone();
    let (bin, unit, envf) = (
        dir.join("localbin/k3s"),
        dir.join(format!("systemd/{name}.service")),
        dir.join(format!("systemd/{name}.service.env")),
    );
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    let before = (read(&bin), read(&unit), read(&envf));
    let mut info = format!("[INFO]  Using {version} as release\n");
    let binary = crate::shims::k3s_binary(version, host, &shared.socket.to_string_lossy());
    if before.0 != binary.as_bytes() {
        info.push_str(&format!(
            "[INFO]  Downloading binary https://github.com/k3s-io/k3s/releases/download/{version}/k3s\n[INFO]  Installing k3s to /usr/local/bin/k3s\n"
        ));
    } else {
        info.push_str("[INFO]  Skipping binary downloaded, installed k3s matches hash\n");
    }
    let env_text: String = env
        .iter()
        .filter(|(k, _)| k.starts_with("K3S_") || k.starts_with("CONTAINERD_"))
        .map(|(k, v)| format!("{k}='{}'\n", v.replace('\'', r"'\''")))
        .collect();
    let mut exec = format!("{cmd} \\\n");
    for a in &words {
        exec.push_str(&format!("\t'{}' \\\n", a.replace('\'', r"'\''")));
    }
    let unit_text = format!(
        "[Unit]\nDescription=Lightweight Kubernetes\nDocumentation=https://k3s.io\nWants=network-online.target\nAfter=network-online.target\n\n[Install]\nWantedBy=multi-user.target\n\n[Service]\nType=notify\nEnvironmentFile=-/etc/default/%N\nEnvironmentFile=-/etc/sysconfig/%N\nEnvironmentFile=-/etc/systemd/system/{name}.service.env\nKillMode=process\nDelegate=yes\nUser=root\nLimitNOFILE=1048576\nLimitNPROC=infinity\nLimitCORE=infinity\nTasksMax=infinity\nTimeoutStartSec=0\nRestart=always\nRestartSec=5s\nExecStartPre=-/sbin/modprobe br_netfilter\nExecStartPre=-/sbin/modprobe overlay\nExecStart=/usr/local/bin/k3s \\\n    {exec}\n"
    );
    let written = (|| -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&bin, &binary)?;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))?;
        write_private(&dir, &format!("systemd/{name}.service.env"), &env_text)?;
        std::fs::write(&unit, &unit_text)?;
        // The scripts the install script leaves next to the binary.
        let socket = shared.socket.to_string_lossy();
        let uninstall = if cmd == "server" {
            "k3s-uninstall"
        } else {
            "k3s-agent-uninstall"
        };
        for prog in ["k3s-killall", uninstall] {
            let p = dir.join(format!("localbin/{prog}.sh"));
            std::fs::write(&p, crate::shims::forward(prog, host, &socket, ""))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        return fatal(&e.to_string());
    }
    info.push_str(&format!(
        "[INFO]  env: Creating environment file /etc/systemd/system/{name}.service.env\n[INFO]  systemd: Creating service file /etc/systemd/system/{name}.service\n[INFO]  systemd: Enabling {name} unit\n"
    ));
    if env
        .get("INSTALL_K3S_SKIP_START")
        .is_some_and(|v| v == "true")
    {
        return out(0, info, "");
    }
    let after = (read(&bin), read(&unit), read(&envf));
    let active = w.hosts[host].units.get(&name).copied().unwrap_or(false);
    if before == after && active {
        info.push_str("[INFO]  No change detected so skipping service start\n");
        return out(0, info, "");
    }
    info.push_str(&format!("[INFO]  systemd: Starting {name}\n"));
    let mut o = systemctl(&mut w, host, "restart", std::slice::from_ref(&name))
        .unwrap_or_else(|| out(1, "", "systemctl: the host is not a k3s host\n"));
    o.stdout = info + &o.stdout;
    o
}

/// `k3s-killall.sh` (stops the k3s units and their processes) and `k3s-uninstall.sh` /
/// `k3s-agent-uninstall.sh` (that, then removes the units, the binary, the scripts,
/// `/etc/rancher/k3s` and the data dir; `/etc/rancher/node` stays, as with the real
/// script). The cluster keeps the Node: uninstalling does not leave the cluster.
pub(crate) fn uninstall(shared: &Shared, host: &str, prog: &str) -> Output {
    let mut w = shared.lock();
    let Some(h) = w.hosts.get(host) else {
        return out(127, "", format!("{prog}.sh: not found\n"));
    };
    let dir = h.dir.clone();
    let units: Vec<String> = ["k3s", "k3s-agent"]
        .iter()
        .filter(|u| dir.join(format!("systemd/{u}.service")).exists())
        .map(|u| u.to_string())
        .collect();
    if !units.is_empty() {
        let _ = systemctl(&mut w, host, "stop", &units);
    }
    if prog == "k3s-killall" {
        return out(0, "", "");
    }
    let unit = if prog == "k3s-uninstall" {
        "k3s"
    } else {
        "k3s-agent"
    };
    for rel in [
        format!("systemd/{unit}.service"),
        format!("systemd/{unit}.service.env"),
        "localbin/k3s".to_string(),
        "localbin/k3s-killall.sh".to_string(),
        format!("localbin/{prog}.sh"),
    ] {
        let _ = std::fs::remove_file(dir.join(rel));
    }
    let _ = std::fs::remove_dir_all(dir.join("rancher/k3s"));
    if let Some(h) = w.hosts.get_mut(host) {
        h.units.remove(unit);
        h.cluster = None;
        if let Some(k) = h.k3s.as_mut() {
            k.failed.remove(unit);
            if unit == "k3s" {
                k.datastore = None;
            }
        }
    }
    out(0, "", "")
}

/// The `k3s` binary: `--version`, `kubectl get nodes` on a running server; `server` and
/// `agent` are run by the units.
pub(crate) fn binary(shared: &Shared, host: &str, args: &[String]) -> Output {
    let w = shared.lock();
    let Some(h) = w.hosts.get(host) else {
        return out(127, "", "k3s: command not found\n");
    };
    let Some(version) = std::fs::read_to_string(h.dir.join("localbin/k3s"))
        .ok()
        .and_then(|t| binary_version(&t))
    else {
        return out(127, "", "k3s: command not found\n");
    };
    let running = h.k3s.as_ref().and_then(|k| k.running.clone());
    match args.first().map(String::as_str) {
        Some("--version" | "-v" | "version") => out(
            0,
            format!("k3s version {version} (b1ba8d3e)\ngo version go1.24.12\n"),
            "",
        ),
        Some("server" | "agent") => out(
            1,
            "",
            format!(
                "k3s {}: run by its systemd unit on this host (systemctl start k3s / k3s-agent)\n",
                args[0]
            ),
        ),
        Some("kubectl") => {
            let Some(r) = running.filter(|r| r.server) else {
                return out(
                    1,
                    "",
                    "The connection to the server 127.0.0.1:6443 was refused - did you specify the right host or port?\n",
                );
            };
            if args[1..] != ["get", "nodes"] {
                return out(
                    1,
                    "",
                    "error: the simulated kubectl answers only `get nodes`\n",
                );
            }
            let c = &w.clusters[r.cluster];
            let mut s = "NAME      STATUS     ROLES                  AGE   VERSION\n".to_string();
            for (name, n) in &c.nodes {
                let live = w.live(&n.host);
                let roles = match &n.k3s {
                    Some(k) if k.server && k.etcd_name.is_some() => "control-plane,etcd,master",
                    Some(k) if k.server => "control-plane,master",
                    _ => "<none>",
                };
                let version = n.k3s.as_ref().map_or("", |k| k.version.as_str());
                let status = match (live.ready, n.unschedulable) {
                    (true, false) => "Ready",
                    (true, true) => "Ready,SchedulingDisabled",
                    (false, false) => "NotReady",
                    (false, true) => "NotReady,SchedulingDisabled",
                };
                s.push_str(&format!("{name}   {status}   {roles}   1d   {version}\n"));
            }
            out(0, s, "")
        }
        Some(other) => out(3, "", format!("No help topic for '{other}'\n")),
        None => out(0, "NAME:\n   k3s - Kubernetes, but small and simple\n", ""),
    }
}

/// `journalctl -u UNIT [-n N] [--no-pager] [-o cat]` of a k3s unit (also `-xeu UNIT`).
pub(crate) fn journalctl(shared: &Shared, host: &str, args: &[String]) -> Output {
    let (mut unit, mut n) = (None, usize::MAX);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-u" | "--unit" | "-xeu" | "-eu" => unit = it.next().cloned(),
            "-n" | "--lines" => n = it.next().and_then(|v| v.parse().ok()).unwrap_or(10),
            "--no-pager" | "-x" | "-e" => {}
            "-o" => {
                if it.next().map(String::as_str) != Some("cat") {
                    return out(1, "", "journalctl: the simulator prints only -o cat\n");
                }
            }
            other => {
                return out(
                    1,
                    "",
                    format!("journalctl: option {other} is not simulated\n"),
                );
            }
        }
    }
    let Some(unit) = unit.map(|u| u.trim_end_matches(".service").to_string()) else {
        return out(
            1,
            "",
            "journalctl: the simulator shows one unit's journal (-u)\n",
        );
    };
    let w = shared.lock();
    let lines: Vec<&String> = w
        .hosts
        .get(host)
        .and_then(|h| h.k3s.as_ref())
        .map(|k| {
            k.journal
                .iter()
                .filter(|(u, _)| *u == unit)
                .map(|(_, l)| l)
                .collect()
        })
        .unwrap_or_default();
    let skip = lines.len().saturating_sub(n);
    let text: String = lines[skip..].iter().map(|l| format!("{l}\n")).collect();
    if text.is_empty() {
        return out(0, "-- No entries --\n", "");
    }
    out(0, text, "")
}

/// How often the k3s loop looks at its host.
const POLL: Duration = Duration::from_millis(50);

/// Runs the k3s side of `host` until the host is removed: serves the Kubernetes API while a
/// server's unit runs, and reports the node's readiness from causes.
pub(crate) async fn run(shared: Arc<Shared>, host: String) {
    let mut apiserver: Option<(tokio::task::JoinHandle<()>, u32)> = None;
    let mut tick: u32 = 0;
    loop {
        tokio::time::sleep(POLL).await;
        tick = tick.wrapping_add(1);
        let (up, running, ip, starts, registered) = {
            let w = shared.lock();
            let Some(h) = w.hosts.get(&host) else { break };
            let k = h.k3s.as_ref();
            let running = k
                .and_then(|k| k.running.clone())
                .filter(|r| h.units.get(&r.unit).copied().unwrap_or(false));
            let registered = running.as_ref().is_some_and(|r| {
                w.clusters
                    .get(r.cluster)
                    .is_some_and(|c| c.nodes.contains_key(&r.node))
            });
            (h.up, running, h.ip, k.map_or(0, |k| k.starts), registered)
        };
        let serve = running
            .as_ref()
            .filter(|r| up && r.server)
            .and_then(|r| Some((r.cluster, r.cert.clone()?)));
        if apiserver.as_ref().map(|(_, s)| *s) != serve.as_ref().map(|_| starts) {
            if let Some((task, _)) = apiserver.take() {
                task.abort();
                let _ = task.await;
                if let Some(h) = shared.lock().hosts.get_mut(&host) {
                    h.apiserver_running = false;
                }
            }
            if let Some((cluster, cert)) = serve {
                let addr = SocketAddr::new(shared.map.map(IpAddr::V4(ip)), 6443);
                if addr.ip().is_loopback() {
                    match crate::apiserver::serve(
                        shared.clone(),
                        cluster,
                        addr,
                        &cert.cert_pem,
                        &cert.key_pem,
                    )
                    .await
                    {
                        Ok(task) => {
                            apiserver = Some((task, starts));
                            if let Some(h) = shared.lock().hosts.get_mut(&host) {
                                h.apiserver_running = true;
                                h.apiserver_starts += 1;
                            }
                        }
                        Err(e) => {
                            tracing::debug!(host, %addr, "k3s apiserver cannot listen yet: {e}")
                        }
                    }
                }
            }
        }
        if tick % 4 != 1 {
            continue;
        }
        let (ready, reason, message) = match &running {
            _ if !up => (
                false,
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.".to_string(),
            ),
            None => (
                false,
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.".to_string(),
            ),
            Some(_) if !registered => (false, "KubeletNotReady", "node not registered".to_string()),
            Some(r) => match reach(&shared, r).await {
                Ok(()) => (
                    true,
                    "KubeletReady",
                    "kubelet is posting ready status".to_string(),
                ),
                Err(e) => (
                    false,
                    "NodeStatusUnknown",
                    format!("Kubelet stopped posting node status: {e}"),
                ),
            },
        };
        let mut w = shared.lock();
        let now = w.now();
        if let Some(h) = w.hosts.get_mut(&host) {
            h.status_updates += 1;
            let changed = h.live.ready != ready || h.live.reason != reason;
            h.live = NodeLive {
                ready,
                reason: reason.to_string(),
                message,
                since: if changed { now } else { h.live.since },
                etcd_running: false,
            };
        }
        if let Some(r) = running.filter(|_| up) {
            process_tick(&mut w, &host, &r, registered, ready, now);
        }
    }
    if let Some((task, _)) = apiserver.take() {
        task.abort();
    }
}

/// What a running k3s process does on each status tick besides reporting its node: the
/// kubelet's part of the workload, registering its Node again when it was deleted (a
/// server holding an etcd member exits instead once its member is removed), and on a
/// server with quorum the controllers (workload, and k3s's etcd member removal for deleted
/// server Nodes).
fn process_tick(
    w: &mut World,
    host: &str,
    r: &Running,
    registered: bool,
    ready: bool,
    now: std::time::SystemTime,
) {
    let timing = w.timing;
    let is_member = r.rec.k3s.as_ref().is_some_and(|k| k.etcd_name.is_some());
    if !registered {
        if is_member {
            let still = w.clusters[r.cluster]
                .etcd
                .as_ref()
                .is_some_and(|m| m.contains_key(&r.node));
            if !still && let Some(h) = w.hosts.get_mut(host) {
                h.units.insert(r.unit.clone(), false);
                if let Some(k) = h.k3s.as_mut() {
                    k.running = None;
                    k.failed.insert(r.unit.clone());
                    k.journal.push((
                        r.unit.clone(),
                        format!("time=\"{}\" level=fatal msg=\"etcd: the member has been permanently removed from the cluster\"", crate::cluster::rfc3339(now)),
                    ));
                }
            }
            return;
        }
        let c = &mut w.clusters[r.cluster];
        if c.node_passwords
            .get(&r.node)
            .is_none_or(|p| *p == r.password)
        {
            let mut rec = r.rec.clone();
            rec.created = now;
            rec.unschedulable = false;
            c.nodes.insert(r.node.clone(), rec);
            c.node_passwords.insert(r.node.clone(), r.password.clone());
        }
        return;
    }
    crate::workload::kubelet(&mut w.clusters[r.cluster], &r.node, ready, timing, now);
    if !r.server || !has_quorum(w, r.cluster) {
        return;
    }
    let nodes: BTreeMap<String, crate::workload::NodeState> = w.clusters[r.cluster]
        .nodes
        .iter()
        .map(|(n, rec)| {
            let mut labels = serde_json::Map::new();
            let mut taints = Vec::new();
            if let Some(k) = &rec.k3s {
                node_labels_and_taints(k, &mut labels, &mut taints);
            }
            let state = crate::workload::NodeState {
                ready: w.live(&rec.host).ready,
                unschedulable: rec.unschedulable,
                no_schedule: taints
                    .iter()
                    .filter(|t| t["effect"] == "NoSchedule")
                    .filter_map(|t| t["key"].as_str().map(str::to_string))
                    .collect(),
            };
            (n.clone(), state)
        })
        .collect();
    let c = &mut w.clusters[r.cluster];
    crate::workload::controllers(c, &nodes, timing, now);
    // k3s's etcd member controller: a deleted server Node's member is removed.
    let present: BTreeSet<String> = c.nodes.keys().cloned().collect();
    if let Some(m) = c.etcd.as_mut() {
        m.retain(|n, _| present.contains(n));
    }
}

/// Whether the node's k3s reaches the API: a server its own; an agent the server it joined
/// or, as k3s's agent load balancer learns every server after joining, any other server of
/// its cluster; over TLS verified against the cluster CA.
async fn reach(shared: &Shared, r: &Running) -> Result<(), String> {
    let (ca, own, others) = {
        let w = shared.lock();
        let ca = w.clusters[r.cluster].ca.cert_pem.clone();
        let own = w.hosts.values().find_map(|h| {
            h.k3s
                .as_ref()?
                .running
                .as_ref()
                .filter(|x| x.node == r.node && x.cluster == r.cluster)
                .map(|_| h.ip)
        });
        let others: Vec<Ipv4Addr> = w
            .hosts
            .values()
            .filter(|h| {
                h.k3s
                    .as_ref()
                    .and_then(|k| k.running.as_ref())
                    .is_some_and(|x| x.server && x.cluster == r.cluster)
            })
            .map(|h| h.ip)
            .collect();
        (ca, own, others)
    };
    let targets: Vec<(Ipv4Addr, u16)> = match (r.server, r.join, own) {
        (true, _, Some(ip)) => vec![(ip, 6443)],
        (false, Some(j), _) => std::iter::once(j)
            .chain(others.into_iter().map(|ip| (ip, 6443)))
            .collect(),
        _ => return Err("no server to reach".into()),
    };
    let mut last = String::new();
    for (ip, port) in targets {
        match get(&shared.map, ip, port, "/readyz", Trust::Ca(&ca)).await {
            Ok((200, _)) => return Ok(()),
            Ok((code, _)) => last = format!("https://{ip}:{port}/readyz answered {code}"),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_start_is_read_as_the_install_script_quotes_it() {
        let unit = "[Service]\nExecStart=/usr/local/bin/k3s \\\n    server \\\n\t'--node-taint' \\\n\t'a=b:NoSchedule' \\\n\t'--flannel-iface' \\\n\t'enp7s0' \\\n\n";
        assert_eq!(
            exec_start_args(unit),
            [
                "server",
                "--node-taint",
                "a=b:NoSchedule",
                "--flannel-iface",
                "enp7s0"
            ]
        );
    }

    #[test]
    fn config_yaml_lists_append_and_the_command_line_wins_for_values() {
        let args: Vec<String> = ["server", "--node-ip", "10.0.1.5", "--tls-san", "b"]
            .map(String::from)
            .to_vec();
        let env = BTreeMap::from([("K3S_TOKEN".to_string(), "t".to_string())]);
        let o = parse_opts(&args, Some("node-ip: 10.9.9.9\ntls-san:\n  - a\n"), &env).unwrap();
        assert_eq!(o.node_ip.as_deref(), Some("10.0.1.5"));
        assert_eq!(o.tls_sans, ["a", "b"]);
        assert_eq!(o.token.as_deref(), Some("t"));
        let bad: Vec<String> = ["agent", "--nope", "x"].map(String::from).to_vec();
        assert!(
            parse_opts(&bad, None, &env)
                .unwrap_err()
                .contains("flag provided but not defined: -nope")
        );
    }

    #[test]
    fn tokens_compare_by_their_password() {
        assert_eq!(token_password("K10abc::server:pw"), "pw");
        assert_eq!(token_password("pw"), "pw");
    }
}
