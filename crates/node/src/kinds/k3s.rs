//! What the k3s kinds (`node_k3s_server`, `node_k3s_agent`) share: reading a host's k3s
//! installation, running k3s's install script, the staged steps and the Ready wait.
//!
//! A k3s installation is read the way k3s's `install.sh` leaves it and k3s reads it:
//! the version from `k3s --version`, the unit state from `systemctl is-active`, the flags
//! from the unit's `ExecStart` (where the script writes `INSTALL_K3S_EXEC`), the
//! `K3S_URL`/`K3S_TOKEN` of its 0600 environment file `/etc/systemd/system/<unit>.service.env`,
//! and `/etc/rancher/k3s/config.yaml` (k3s's own configuration file: lists appended, the
//! command line wins for single values). Node membership comes from the Kubernetes API of the
//! cluster the host is declared in (`Cluster::node`).
//!
//! Installing follows k3s's documented method: the install script with
//! `INSTALL_K3S_VERSION` pinned and `INSTALL_K3S_EXEC` holding the flags; `K3S_TOKEN`
//! travels on the command's stdin into the script's environment (never on a command line),
//! and the script writes it to the 0600 environment file. The script itself is a declared
//! path on the host (`install_script`, put there from a pinned k3s release, e.g. by
//! cloud-init). Re-running it with changed flags rewrites the unit and restarts it, which is
//! how k3s documents changing them. A version change on an installed node is a rolling
//! upgrade: cordon, drain, install, wait Ready (and etcd healthy for an etcd server),
//! uncordon. A change to a managed flag that `config.yaml` sets is refused at plan time (the
//! script does not rewrite that file).
//!
//! A `cluster_init` server created on a fresh host while its cluster already has Ready etcd
//! members on other nodes (the first server rebuilt) joins through one of them
//! (`--cluster-init --server https://<member>:6443`: k3s joins with an empty data dir)
//! instead of starting a second cluster; the `--server` it then runs with is observed as the
//! computed `joined_through`, not compared. Deleting either kind leaves the cluster cleanly
//! ([`crate::leave`]) and then runs k3s's uninstall script if the host has one.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use cairn_core::kit::Found;
use cairn_core::{FieldError, Marker};
use serde::{Deserialize, Serialize};

use crate::NodeContext;
use crate::error::{NodeError, trim_stderr};
use crate::files::{self, RemoteFile};
use crate::kinds::{marker_of, write_marker};
use crate::leave;
use crate::ssh::Cmd;

/// Where k3s's install script is expected on a host by default.
pub const INSTALL_SCRIPT: &str = "/usr/local/sbin/k3s-install.sh";
/// k3s's configuration file.
pub const CONFIG_YAML: &str = "/etc/rancher/k3s/config.yaml";
/// k3s's admin kubeconfig on a server (give it to `Cluster::admin_conf`).
pub const K3S_YAML: &str = "/etc/rancher/k3s/k3s.yaml";
/// The ownership marker of a host's k3s installation.
pub const MARKER: &str = "/etc/rancher/k3s/cairn-owner";

/// A secret string (a join token): serialised as itself for the engine, which redacts the
/// kinds' `token` path; never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(sensitive)")
    }
}

/// Which unit runs k3s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `k3s server`, unit `k3s`.
    Server,
    /// `k3s agent`, unit `k3s-agent`.
    Agent,
}

impl Role {
    /// The systemd unit the install script names for the role.
    pub fn unit(self) -> &'static str {
        match self {
            Role::Server => "k3s",
            Role::Agent => "k3s-agent",
        }
    }
}

/// The flags cairn manages, as k3s would run with them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Flags {
    /// `server` or `agent`.
    pub command: String,
    /// `--cluster-init`.
    pub cluster_init: bool,
    /// `--server` / `K3S_URL`.
    pub server: Option<String>,
    /// `--token` / `K3S_TOKEN`.
    pub token: Option<Secret>,
    /// `--flannel-iface`.
    pub flannel_iface: Option<String>,
    /// `--node-taint`, in order.
    pub node_taints: Vec<String>,
    /// `--tls-san`, in order.
    pub tls_sans: Vec<String>,
    /// `--node-ip`.
    pub node_ip: Option<Ipv4Addr>,
    /// Managed flags (spec field names) that `config.yaml` sets.
    pub from_config: Vec<String>,
}

/// The spec field a k3s flag maps to, if cairn manages it.
fn field_of(flag: &str) -> Option<&'static str> {
    Some(match flag {
        "cluster-init" => "cluster_init",
        "server" | "s" => "server",
        "token" | "t" => "token",
        "flannel-iface" => "flannel_iface",
        "node-taint" => "node_taints",
        "tls-san" => "tls_sans",
        "node-ip" | "i" => "node_ip",
        _ => return None,
    })
}

impl Flags {
    fn set(&mut self, flag: &str, value: Option<&str>) {
        let v = || value.map(str::to_string);
        match field_of(flag) {
            Some("cluster_init") => self.cluster_init = value.is_none_or(|v| v == "true"),
            Some("server") => self.server = v(),
            Some("token") => self.token = v().map(Secret),
            Some("flannel_iface") => self.flannel_iface = v(),
            Some("node_taints") => self.node_taints.extend(v()),
            Some("tls_sans") => self.tls_sans.extend(v()),
            Some("node_ip") => self.node_ip = value.and_then(|v| v.parse().ok()),
            _ => {}
        }
    }

    /// The flags of `args` (the unit's `ExecStart` after the binary), `config` (config.yaml)
    /// and `env` (the unit's environment file), as k3s merges them.
    pub fn read(args: &[String], config: Option<&str>, env: &BTreeMap<String, String>) -> Self {
        let mut f = Flags::default();
        let Some((command, rest)) = args.split_first() else {
            return f;
        };
        f.command = command.clone();
        if let Some(text) = config
            && let Ok(docs) = yaml_rust2::YamlLoader::load_from_str(text)
            && let Some(map) = docs.first().and_then(|d| d.as_hash())
        {
            for (k, v) in map {
                let key = k.as_str().unwrap_or_default();
                let scalar = |v: &yaml_rust2::Yaml| match v {
                    yaml_rust2::Yaml::String(s) => Some(s.clone()),
                    yaml_rust2::Yaml::Boolean(b) => Some(b.to_string()),
                    yaml_rust2::Yaml::Integer(i) => Some(i.to_string()),
                    _ => None,
                };
                if let Some(field) = field_of(key) {
                    f.from_config.push(field.to_string());
                }
                match v {
                    yaml_rust2::Yaml::Array(items) => {
                        for i in items {
                            f.set(key, scalar(i).as_deref());
                        }
                    }
                    other => f.set(key, scalar(other).as_deref()),
                }
            }
        }
        let mut it = rest.iter();
        while let Some(a) = it.next() {
            let Some(flag) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
                continue;
            };
            match flag.split_once('=') {
                Some((k, v)) => f.set(k, Some(v)),
                None if flag == "cluster-init" => f.set(flag, None),
                None => {
                    let v = it.next().map(String::as_str);
                    f.set(flag, v);
                }
            }
        }
        if f.token.is_none() {
            f.token = env.get("K3S_TOKEN").cloned().map(Secret);
        }
        if f.server.is_none() {
            f.server = env.get("K3S_URL").cloned();
        }
        f
    }

    /// `INSTALL_K3S_EXEC` for these flags (the server URL of an agent goes to `K3S_URL`).
    pub fn exec(&self, role: Role) -> String {
        let mut w = vec![self.command.clone()];
        if self.cluster_init {
            w.push("--cluster-init".into());
        }
        if role == Role::Server
            && let Some(s) = &self.server
        {
            w.extend(["--server".into(), s.clone()]);
        }
        if let Some(i) = &self.flannel_iface {
            w.extend(["--flannel-iface".into(), i.clone()]);
        }
        for t in &self.node_taints {
            w.extend(["--node-taint".into(), t.clone()]);
        }
        for s in &self.tls_sans {
            w.extend(["--tls-san".into(), s.clone()]);
        }
        if let Some(ip) = self.node_ip {
            w.extend(["--node-ip".into(), ip.to_string()]);
        }
        w.join(" ")
    }
}

/// A host's k3s installation for one role, as found.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The installed version (`k3s --version`), if the binary is there.
    pub version: Option<String>,
    /// `systemctl is-active` of the role's unit.
    pub state: String,
    /// The flags it runs with.
    pub flags: Flags,
    /// The ownership marker.
    pub marker: Option<Marker>,
}

/// Prints the installed version (or `-`), then `systemctl is-active` of both units.
const PROBE: &str = r#"v=$(k3s --version 2>/dev/null | sed -n '1s/^k3s version \([^ ]*\).*/\1/p')
echo "${v:--}"
for u in k3s k3s-agent; do s=$(systemctl is-active "$u" 2>/dev/null); echo "${s:--}"; done"#;

/// The arguments of a unit's `ExecStart=` after the binary, unquoted as systemd reads the
/// install script's quoting.
pub fn exec_start_args(unit: &str) -> Vec<String> {
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
        } else {
            break;
        }
    }
    let mut words = Vec::new();
    let (mut cur, mut quote, mut any) = (String::new(), None, false);
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

/// `KEY=value` lines of a systemd environment file (quotes removed).
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
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

/// Reads the k3s installation of `role` on each of `hosts`: one command per host, hosts at
/// once. A host without the role's unit file is not in the result.
pub async fn observe(
    ctx: &NodeContext,
    hosts: &[String],
    role: Role,
) -> Result<Vec<(String, Installed)>, NodeError> {
    let unit = role.unit();
    let per_host = hosts.iter().map(|host| async move {
        let paths = vec![
            format!("/etc/systemd/system/{unit}.service"),
            format!("/etc/systemd/system/{unit}.service.env"),
            CONFIG_YAML.to_string(),
            MARKER.to_string(),
        ];
        let (lines, files) = match files::read_files_after(ctx.ssh(), host, &paths, PROBE, 3).await
        {
            Ok(read) => read,
            // Nothing answers at the host's address: a machine not made yet (a server the
            // plan creates) or being rebuilt has no k3s; installing it waits for its SSH.
            Err(e) if not_up(&e) => {
                tracing::info!(host = %host, "{e}: observed as without k3s");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let text = |f: &RemoteFile| match f {
            RemoteFile::File(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        let Some(unit_text) = text(&files[0]) else {
            return Ok::<_, NodeError>(None);
        };
        let env = text(&files[1]).map(|t| parse_env(&t)).unwrap_or_default();
        let flags = Flags::read(
            &exec_start_args(&unit_text),
            text(&files[2]).as_deref(),
            &env,
        );
        let state_line = if role == Role::Server { 1 } else { 2 };
        Ok(Some((
            host.clone(),
            Installed {
                version: Some(lines[0].trim().to_string()).filter(|v| v != "-"),
                state: lines[state_line].trim().to_string(),
                flags,
                marker: marker_of(&files[3]),
            },
        )))
    });
    let mut out = Vec::new();
    for r in futures::future::join_all(per_host).await {
        out.extend(r?);
    }
    Ok(out)
}

/// Whether `e` says nothing listens at the host's address (no machine there), as opposed
/// to a machine that answers wrongly (host key, authentication, a lost connection).
fn not_up(e: &NodeError) -> bool {
    matches!(e, NodeError::Connect { detail, .. }
        if ["Connection refused", "No route to host", "Connection timed out", "timed out"]
            .iter()
            .any(|s| detail.contains(s)))
}

/// Membership of hosts' nodes, through the Kubernetes API of the clusters they are declared
/// in: `(ready, warning)` per host; `ready` is `None` when the host is in no declared
/// cluster or its API did not answer (then the warning says why).
pub async fn membership(
    ctx: &NodeContext,
    hosts: &[String],
) -> BTreeMap<String, (Option<bool>, Option<String>)> {
    let mut by_cluster: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for h in hosts {
        if let Some((c, node)) = ctx.node_of_host(h) {
            by_cluster
                .entry(c.name().to_string())
                .or_default()
                .push((h.clone(), node));
        }
    }
    let mut out = BTreeMap::new();
    for (name, members) in by_cluster {
        let Ok(c) = ctx.get_cluster(&name) else {
            continue;
        };
        match c.nodes().await {
            Ok(nodes) => {
                for (h, node) in members {
                    let ready = nodes.iter().find(|n| n.name == node).map(|n| n.ready);
                    let warning = match ready {
                        None => Some(format!(
                            "node {node} (host {h}) is not registered in cluster {name}"
                        )),
                        _ => None,
                    };
                    out.insert(h, (Some(ready.unwrap_or(false)), warning));
                }
            }
            Err(e) => {
                for (h, _) in members {
                    out.insert(
                        h,
                        (
                            None,
                            Some(format!(
                                "cluster {name}'s API did not answer, so node membership was not checked: {e}"
                            )),
                        ),
                    );
                }
            }
        }
    }
    out
}

/// The staged steps of a k3s change, shown in the plan and executed in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum K3sStep {
    /// Run k3s's install script with the pinned version and flags; it writes the unit and
    /// its environment file and (re)starts the unit when they changed.
    Install {
        /// The host.
        host: String,
        /// The script's path on the host.
        script: String,
        /// `INSTALL_K3S_VERSION`.
        version: String,
        /// `INSTALL_K3S_EXEC`.
        exec: String,
        /// `K3S_URL` (agents).
        url: Option<String>,
        /// The unit it restarts.
        unit: &'static str,
    },
    /// `systemctl start` the installed unit that is not running.
    Start {
        /// The host.
        host: String,
        /// The unit.
        unit: &'static str,
    },
    /// Nothing is run: the change needs something cairn does not do (the plan shows why,
    /// drift reports the fields, and apply fails here before touching the host).
    Refused {
        /// The host.
        host: String,
        /// Why, naming the field.
        reason: String,
    },
    /// Wait until the host's node is Ready in its cluster.
    WaitReady {
        /// The node.
        node: String,
        /// Its cluster.
        cluster: String,
    },
    /// Mark the node unschedulable.
    Cordon {
        /// The node.
        node: String,
        /// Its cluster.
        cluster: String,
    },
    /// Evict the node's pods (PodDisruptionBudgets respected) within `timeout`.
    Drain {
        /// The node.
        node: String,
        /// Its cluster.
        cluster: String,
        /// How long refusals are retried before the step fails (the node stays cordoned).
        timeout: std::time::Duration,
    },
    /// Wait until the node is a healthy etcd member and every member is healthy.
    WaitEtcd {
        /// The node.
        node: String,
        /// Its cluster.
        cluster: String,
    },
    /// Mark the node schedulable again.
    Uncordon {
        /// The node.
        node: String,
        /// Its cluster.
        cluster: String,
    },
    /// Before installing a `cluster_init` server: when its cluster already has Ready etcd
    /// members on other nodes, the install joins through one of them.
    JoinExisting {
        /// The node.
        node: String,
        /// Its cluster.
        cluster: String,
    },
    /// `systemctl stop` the unit (so the kubelet does not register the node again).
    Stop {
        /// The host.
        host: String,
        /// The unit.
        unit: &'static str,
        /// The node and its cluster, when the host is declared in one.
        node: Option<(String, String)>,
    },
    /// Delete the Node object (k3s removes a server's etcd member and its password Secret).
    DeleteNode {
        /// The node.
        node: String,
        /// Its cluster.
        cluster: String,
    },
    /// Wait until the node's etcd member is gone.
    WaitMemberGone {
        /// The node.
        node: String,
        /// Its cluster.
        cluster: String,
    },
    /// Run k3s's uninstall script, if the host has it.
    Uninstall {
        /// The host.
        host: String,
        /// The script's path.
        script: &'static str,
    },
}

impl fmt::Display for K3sStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            K3sStep::Install {
                host,
                script,
                version,
                exec,
                url,
                unit,
            } => {
                write!(
                    f,
                    "run k3s's install script {script} on {host} with INSTALL_K3S_VERSION={version} INSTALL_K3S_EXEC='{exec}'"
                )?;
                if let Some(u) = url {
                    write!(f, " K3S_URL={u}")?;
                }
                write!(
                    f,
                    " (K3S_TOKEN: sensitive, on stdin into the 0600 env file); it restarts {unit} when its files change"
                )
            }
            K3sStep::Start { host, unit } => write!(f, "systemctl start {unit} on {host}"),
            K3sStep::Refused { host, reason } => write!(f, "refused on {host}: {reason}"),
            K3sStep::WaitReady { node, cluster } => {
                write!(f, "wait until node {node} of cluster {cluster} is Ready")
            }
            K3sStep::Cordon { node, cluster } => {
                write!(f, "cordon node {node} of cluster {cluster}")
            }
            K3sStep::Drain {
                node,
                cluster,
                timeout,
            } => write!(
                f,
                "drain node {node} of cluster {cluster} (evict its pods but DaemonSet and mirror pods; PodDisruptionBudgets respected, refusals retried for up to {})",
                crate::cluster::ops::human(*timeout)
            ),
            K3sStep::WaitEtcd { node, cluster } => write!(
                f,
                "wait until {node} is a healthy etcd member of cluster {cluster} and every member is healthy"
            ),
            K3sStep::Uncordon { node, cluster } => {
                write!(f, "uncordon node {node} of cluster {cluster}")
            }
            K3sStep::JoinExisting { node, cluster } => write!(
                f,
                "if cluster {cluster} already has Ready etcd members on nodes other than {node}, join through one of them (--server https://<its node IP>:6443) instead of starting a second cluster"
            ),
            K3sStep::Stop { host, unit, .. } => write!(f, "systemctl stop {unit} on {host}"),
            K3sStep::DeleteNode { node, cluster } => {
                write!(f, "delete node {node} from cluster {cluster}")
            }
            K3sStep::WaitMemberGone { node, cluster } => {
                write!(
                    f,
                    "wait until the etcd member of {node} is gone from cluster {cluster}"
                )
            }
            K3sStep::Uninstall { host, script } => {
                write!(f, "run {script} on {host} if it is there")
            }
        }
    }
}

/// Runs the install script: variables as positional arguments, the token on stdin.
const INSTALL: &str = r#"set -eu
IFS= read -r K3S_TOKEN
export K3S_TOKEN
export INSTALL_K3S_VERSION="$2" INSTALL_K3S_EXEC="$3"
if [ -n "$4" ]; then export K3S_URL="$4"; fi
exec sh "$1""#;

/// Replaces every occurrence of `secret` in `text`.
fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "(sensitive)")
    }
}

/// Executes `steps` for the installation on `host` (`resource` names it in errors), then
/// writes `marker`.
pub async fn execute(
    ctx: &NodeContext,
    resource: &str,
    host: &str,
    token: &Secret,
    steps: &[K3sStep],
    marker: &Marker,
) -> Result<(), NodeError> {
    run_steps(ctx, resource, host, token, steps).await?;
    write_marker(ctx.ssh(), host, MARKER, marker).await
}

/// A wait's failure, named by the resource whose step waited.
fn failed(resource: &str, e: NodeError) -> NodeError {
    match e {
        NodeError::Kube { message, .. } => NodeError::Resource {
            resource: resource.into(),
            message,
        },
        other => other,
    }
}

/// Executes `steps` on `host`, in order.
pub async fn run_steps(
    ctx: &NodeContext,
    resource: &str,
    host: &str,
    token: &Secret,
    steps: &[K3sStep],
) -> Result<(), NodeError> {
    let ssh = ctx.ssh();
    let mut join_through: Option<String> = None;
    for step in steps {
        match step {
            K3sStep::Refused { reason, .. } => {
                return Err(NodeError::Resource {
                    resource: resource.into(),
                    message: reason.clone(),
                });
            }
            K3sStep::Install {
                script,
                version,
                exec,
                url,
                unit,
                ..
            } => {
                let exec = match &join_through {
                    Some(u) => format!("{exec} --server {u}"),
                    None => exec.clone(),
                };
                let cmd = Cmd::root("sh")
                    .args(["-c", INSTALL, "sh", script, version, &exec])
                    .arg(url.clone().unwrap_or_default())
                    .stdin(format!("{}\n", token.0).into_bytes());
                let (status, out) = ssh.run_status(host, &cmd).await?;
                if status != 0 {
                    let journal = journal(ctx, host, unit).await;
                    // The script reports failures on stderr; its progress on stdout.
                    let said = if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
                        &out.stderr
                    } else {
                        &out.stdout
                    };
                    return Err(NodeError::Resource {
                        resource: resource.into(),
                        message: scrub(
                            &format!(
                                "k3s's install script failed on host {host} (exit {status}): {}{journal}",
                                trim_stderr(said)
                            ),
                            &token.0,
                        ),
                    });
                }
            }
            K3sStep::Start { unit, .. } => {
                let (status, out) = ssh
                    .run_status(host, &Cmd::root("systemctl").args(["start", unit]))
                    .await?;
                if status != 0 {
                    let journal = journal(ctx, host, unit).await;
                    return Err(NodeError::Resource {
                        resource: resource.into(),
                        message: scrub(
                            &format!(
                                "systemctl start {unit} failed on host {host}: {}{journal}",
                                trim_stderr(&out.stderr)
                            ),
                            &token.0,
                        ),
                    });
                }
            }
            K3sStep::WaitReady { node, cluster } => {
                let c = ctx.get_cluster(cluster)?;
                leave::wait_ready(c, node, ctx.wait_timing())
                    .await
                    .map_err(|e| failed(resource, e))?;
            }
            K3sStep::Cordon { node, cluster } => {
                let c = ctx.get_cluster(cluster)?;
                // A node that is not registered has nothing to cordon or drain.
                if c.node_state(node).await?.is_some() {
                    c.cordon(node).await?;
                }
            }
            K3sStep::Drain {
                node,
                cluster,
                timeout,
            } => {
                let c = ctx.get_cluster(cluster)?;
                if c.node_state(node).await?.is_some() {
                    c.drain(node, *timeout).await?;
                }
            }
            K3sStep::WaitEtcd { node, cluster } => {
                let c = ctx.get_cluster(cluster)?;
                leave::wait_etcd_healthy(c, node, ctx.wait_timing()).await?;
            }
            K3sStep::Uncordon { node, cluster } => {
                ctx.get_cluster(cluster)?.uncordon(node).await?;
            }
            K3sStep::JoinExisting { node, cluster } => {
                let c = ctx.get_cluster(cluster)?;
                join_through = match c.ready_member_address(node).await {
                    Ok(ip) => ip.map(|ip| format!("https://{ip}:6443")),
                    // No admin host holds the kubeconfig: there is no cluster yet.
                    Err(e) if crate::cluster::no_cluster_yet(&e) => None,
                    Err(e) => return Err(e),
                };
                if let Some(u) = &join_through {
                    tracing::info!(host, cluster, through = %u, "cluster already has members: joining");
                }
            }
            K3sStep::Stop { unit, node, .. } => match node {
                Some((node, cluster)) => {
                    let c = ctx.get_cluster(cluster)?;
                    leave::stop_unit(c, node, host, unit, ctx.wait_timing()).await?;
                }
                None => {
                    ssh.run_status(host, &Cmd::root("systemctl").args(["stop", unit]))
                        .await?;
                }
            },
            K3sStep::DeleteNode { node, cluster } => {
                ctx.get_cluster(cluster)?.delete_node(node).await?;
            }
            K3sStep::WaitMemberGone { node, cluster } => {
                let c = ctx.get_cluster(cluster)?;
                leave::wait_member_gone(c, node, ctx.wait_timing()).await?;
            }
            K3sStep::Uninstall { script, .. } => {
                let cmd = Cmd::root("sh").args([
                    "-c",
                    r#"if [ -x "$1" ]; then exec "$1"; fi"#,
                    "sh",
                    script,
                ]);
                match ssh.run_status(host, &cmd).await {
                    Ok((0, _)) => {}
                    Ok((status, out)) => {
                        return Err(NodeError::Resource {
                            resource: resource.into(),
                            message: format!(
                                "{script} failed on host {host} (exit {status}): {}",
                                trim_stderr(&out.stderr)
                            ),
                        });
                    }
                    Err(e) if e.is_connection() => {
                        tracing::info!(host, error = %e, "host gone: nothing to uninstall");
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// Releases the installation on `host`: removes cairn's ownership marker, leaves k3s.
pub async fn release(ctx: &NodeContext, host: &str) -> Result<(), NodeError> {
    ctx.ssh()
        .run(host, &Cmd::root("rm").args(["-f", MARKER]))
        .await
        .map(|_| ())
}

/// The last lines of the unit's journal, as `; journal: …` (empty when there is none).
async fn journal(ctx: &NodeContext, host: &str, unit: &str) -> String {
    let cmd = Cmd::root("journalctl").args(["-u", unit, "-n", "5", "--no-pager", "-o", "cat"]);
    match ctx.ssh().run_status(host, &cmd).await {
        Ok((0, out)) => {
            let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if t.is_empty() || t == "-- No entries --" {
                String::new()
            } else {
                format!("; journal of {unit}: {}", t.replace('\n', " | "))
            }
        }
        _ => String::new(),
    }
}

/// Observed membership and installations as `Found`s, through `make`: the declared `keys`,
/// plus the installations cairn marked on the other hosts of the clusters those keys are
/// declared in (so an installation whose declaration was removed is planned to leave while
/// the stack declares others of the kind in that cluster). A host of the latter
/// that does not answer is skipped, not an error.
pub async fn found<O>(
    ctx: &NodeContext,
    keys: &[String],
    role: Role,
    make: impl Fn(&str, &Installed, Option<bool>) -> O,
) -> Result<Vec<Found<O>>, NodeError> {
    let mut installed = observe(ctx, keys, role).await?;
    let extra: Vec<String> = ctx
        .cluster_hosts_of(keys)
        .into_iter()
        .filter(|h| !keys.contains(h) && ctx.ssh().is_declared(h))
        .collect();
    let others = extra.iter().map(|h| async move {
        match observe(ctx, std::slice::from_ref(h), role).await {
            Ok(v) => v.into_iter().filter(|(_, i)| i.marker.is_some()).collect(),
            Err(e) => {
                tracing::debug!(host = %h, error = %e, "undeclared k3s host not observed");
                Vec::new()
            }
        }
    });
    for v in futures::future::join_all(others).await {
        installed.extend(v);
    }
    let hosts: Vec<String> = installed.iter().map(|(h, _)| h.clone()).collect();
    let members = membership(ctx, &hosts).await;
    Ok(installed
        .into_iter()
        .map(|(host, i)| {
            let (ready, warning) = members.get(&host).cloned().unwrap_or((None, None));
            let mut f = Found::new(host.clone(), make(&host, &i, ready), i.marker.clone());
            f.warnings.extend(warning);
            f
        })
        .collect())
}

/// Checks shared by both kinds' specs.
pub(crate) fn validate_common(host: &str, version: &str, token: &Secret) -> Vec<FieldError> {
    let mut e = Vec::new();
    if host.is_empty() || host.contains([':', '/']) {
        e.push(FieldError::new("host", "a declared host name"));
    }
    if !version.starts_with('v') || version.contains(char::is_whitespace) {
        e.push(FieldError::new(
            "version",
            "a k3s release such as v1.34.4+k3s1 (pinned: the install script never picks one)",
        ));
    }
    if token.0.is_empty() || token.0.contains(['\n', '\r']) {
        e.push(FieldError::new("token", "a non-empty single-line token"));
    }
    e
}

/// Flag values go into `INSTALL_K3S_EXEC`, which the install script splits on whitespace.
pub(crate) fn validate_words(fields: &[(&str, Vec<&String>)]) -> Vec<FieldError> {
    fields
        .iter()
        .filter(|(_, vs)| {
            vs.iter()
                .any(|v| v.is_empty() || v.contains(char::is_whitespace))
        })
        .map(|(f, _)| FieldError::new(*f, "values must be non-empty and without whitespace"))
        .collect()
}

/// What is installed, as the plan compares it.
#[derive(Debug, Clone)]
pub(crate) struct Have<'a> {
    /// The installed version.
    pub version: &'a str,
    /// The flags it runs with (a `cluster_init` server's `joined_through` left out).
    pub flags: Flags,
    /// Whether the unit is not running.
    pub not_running: bool,
    /// Managed flags `config.yaml` sets.
    pub in_config: &'a [String],
}

/// What is declared.
#[derive(Debug, Clone)]
pub(crate) struct Want<'a> {
    /// The version.
    pub version: &'a str,
    /// The flags.
    pub flags: Flags,
    /// The install script's path.
    pub script: &'a str,
    /// `K3S_URL` (agents).
    pub url: Option<String>,
}

/// The uninstall script k3s's install script writes for `role`.
pub fn uninstall_script(role: Role) -> &'static str {
    match role {
        Role::Server => "/usr/local/bin/k3s-uninstall.sh",
        Role::Agent => "/usr/local/bin/k3s-agent-uninstall.sh",
    }
}

/// The steps of a change of `role` on `host` from `have` to `want`:
/// - create: install and wait Ready (a `cluster_init` server first looks for members to
///   join through);
/// - delete: leave the cluster (cordon, drain, stop, delete the Node, the etcd member
///   gone), then the uninstall script;
/// - a version change: cordon, drain, install, wait Ready (and etcd healthy for an etcd
///   server), uncordon;
/// - another managed change: install and wait Ready; only the unit stopped: start and wait;
/// - a managed flag that `config.yaml` sets: refused, naming the field.
pub(crate) fn plan(
    ctx: &NodeContext,
    host: &str,
    role: Role,
    have: Option<Have<'_>>,
    want: Option<Want<'_>>,
) -> Vec<K3sStep> {
    let member = ctx
        .node_of_host(host)
        .map(|(c, node)| (node, c.name().to_string()));
    let Some(want) = want else {
        if have.is_none() {
            return Vec::new();
        }
        let mut steps = Vec::new();
        if let Some((node, cluster)) = member.clone() {
            steps.extend([
                K3sStep::Cordon {
                    node: node.clone(),
                    cluster: cluster.clone(),
                },
                K3sStep::Drain {
                    node: node.clone(),
                    cluster: cluster.clone(),
                    timeout: ctx.drain_timeout_of(),
                },
            ]);
        }
        steps.push(K3sStep::Stop {
            host: host.into(),
            unit: role.unit(),
            node: member.clone(),
        });
        if let Some((node, cluster)) = member {
            steps.push(K3sStep::DeleteNode {
                node: node.clone(),
                cluster: cluster.clone(),
            });
            if role == Role::Server {
                steps.push(K3sStep::WaitMemberGone { node, cluster });
            }
        }
        steps.push(K3sStep::Uninstall {
            host: host.into(),
            script: uninstall_script(role),
        });
        return steps;
    };
    let refused = have
        .as_ref()
        .map(|h| refusals(host, h, &want))
        .unwrap_or_default();
    if !refused.is_empty() {
        return refused
            .into_iter()
            .map(|reason| K3sStep::Refused {
                host: host.into(),
                reason,
            })
            .collect();
    }
    let wait = member
        .clone()
        .map(|(node, cluster)| K3sStep::WaitReady { node, cluster });
    let install = K3sStep::Install {
        host: host.into(),
        script: want.script.into(),
        version: want.version.into(),
        exec: want.flags.exec(role),
        url: want.url.clone(),
        unit: role.unit(),
    };
    let Some(have) = have else {
        let join = member
            .clone()
            .filter(|_| role == Role::Server && want.flags.cluster_init)
            .map(|(node, cluster)| K3sStep::JoinExisting { node, cluster });
        return join.into_iter().chain([install]).chain(wait).collect();
    };
    let same_flags = have.flags == want.flags;
    if have.version == want.version && same_flags {
        return match have.not_running {
            false => Vec::new(),
            true => std::iter::once(K3sStep::Start {
                host: host.into(),
                unit: role.unit(),
            })
            .chain(wait)
            .collect(),
        };
    }
    let upgrade = !have.version.is_empty() && have.version != want.version;
    match member {
        Some((node, cluster)) if upgrade => {
            let etcd =
                role == Role::Server && (want.flags.cluster_init || want.flags.server.is_some());
            let mut steps = vec![
                K3sStep::Cordon {
                    node: node.clone(),
                    cluster: cluster.clone(),
                },
                K3sStep::Drain {
                    node: node.clone(),
                    cluster: cluster.clone(),
                    timeout: ctx.drain_timeout_of(),
                },
                install,
                K3sStep::WaitReady {
                    node: node.clone(),
                    cluster: cluster.clone(),
                },
            ];
            if etcd {
                steps.push(K3sStep::WaitEtcd {
                    node: node.clone(),
                    cluster: cluster.clone(),
                });
            }
            steps.push(K3sStep::Uncordon { node, cluster });
            steps
        }
        _ => std::iter::once(install).chain(wait).collect(),
    }
}

/// Why a change cannot be made by re-running the install script, naming the field: a
/// change to a managed flag that config.yaml sets (the script does not rewrite that file).
/// Shown as the change's only step; drift still reports the fields.
fn refusals(host: &str, have: &Have<'_>, want: &Want<'_>) -> Vec<String> {
    let (h, w) = (&have.flags, &want.flags);
    let changed = [
        ("flannel_iface", h.flannel_iface != w.flannel_iface),
        ("node_taints", h.node_taints != w.node_taints),
        ("tls_sans", h.tls_sans != w.tls_sans),
        ("node_ip", h.node_ip != w.node_ip),
        ("server", h.server != w.server),
        ("cluster_init", h.cluster_init != w.cluster_init),
    ];
    changed
        .iter()
        .filter(|(f, c)| *c && have.in_config.iter().any(|i| i == f))
        .map(|(f, _)| format!(
            "{f}: set in {CONFIG_YAML} on host {host}, which k3s's install script does not rewrite: remove it there or declare the value it holds"
        ))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_merge_unit_config_and_env_as_k3s_does() {
        let unit = "ExecStart=/usr/local/bin/k3s \\\n    agent \\\n\t'--flannel-iface' \\\n\t'enp7s0' \\\n\t'--node-ip' \\\n\t'10.0.1.6' \\\n\n";
        let env = parse_env("K3S_TOKEN='s3cret'\nK3S_URL='https://10.0.1.5:6443'\n");
        let f = Flags::read(
            &exec_start_args(unit),
            Some("node-taint:\n  - a=b:NoSchedule\nflannel-iface: eth9\n"),
            &env,
        );
        assert_eq!(f.command, "agent");
        assert_eq!(
            f.flannel_iface.as_deref(),
            Some("enp7s0"),
            "command line wins"
        );
        assert_eq!(f.node_taints, ["a=b:NoSchedule"]);
        assert_eq!(f.node_ip, Some("10.0.1.6".parse().unwrap()));
        assert_eq!(f.server.as_deref(), Some("https://10.0.1.5:6443"));
        assert_eq!(f.token, Some(Secret("s3cret".into())));
        assert_eq!(f.from_config, ["node_taints", "flannel_iface"]);
        assert_eq!(format!("{:?}", f.token), "Some((sensitive))");
        assert_eq!(
            f.exec(Role::Agent),
            "agent --flannel-iface enp7s0 --node-taint a=b:NoSchedule --node-ip 10.0.1.6"
        );
    }
}
