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
//! how k3s documents changing them; a version change on an installed node is refused at plan
//! time (a rolling upgrade with cordon and drain is its own step, not built yet), and so is a
//! managed flag that `config.yaml` sets (the script does not rewrite that file).

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
    let ssh = ctx.ssh();
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
                let cmd = Cmd::root("sh")
                    .args(["-c", INSTALL, "sh", script, version, exec])
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
                let what = format!("node {node} of cluster {cluster} is Ready");
                crate::wait::until(ctx.wait_timing(), &what, || async {
                    match c.node_state(node).await.map_err(|e| e.to_string())? {
                        None => Err(format!("cluster {cluster} has no node {node} yet")),
                        Some(n) if !n.ready => Err(n.why),
                        Some(_) => Ok(()),
                    }
                })
                .await
                .map_err(|message| NodeError::Resource {
                    resource: resource.into(),
                    message,
                })?;
            }
        }
    }
    write_marker(ssh, host, MARKER, marker).await
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

/// Observed membership and installations as `Found`s, through `make`.
pub async fn found<O>(
    ctx: &NodeContext,
    keys: &[String],
    role: Role,
    make: impl Fn(&str, &Installed, Option<bool>) -> O,
) -> Result<Vec<Found<O>>, NodeError> {
    let installed = observe(ctx, keys, role).await?;
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

/// The steps of a change: install (and wait for Ready) on create or when anything managed
/// differs (`before` = `(same, not_running)`); a start (and wait) when only the unit is not
/// running; none when only the marker is written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_steps(
    ctx: &NodeContext,
    host: &str,
    role: Role,
    before: Option<(bool, bool)>,
    script: &str,
    version: &str,
    exec: String,
    url: Option<String>,
    refused: Vec<String>,
) -> Vec<K3sStep> {
    if !refused.is_empty() {
        return refused
            .into_iter()
            .map(|reason| K3sStep::Refused {
                host: host.into(),
                reason,
            })
            .collect();
    }
    let wait = ctx.node_of_host(host).map(|(c, node)| K3sStep::WaitReady {
        node,
        cluster: c.name().to_string(),
    });
    let first = match before {
        Some((true, false)) => return Vec::new(),
        Some((true, true)) => K3sStep::Start {
            host: host.into(),
            unit: role.unit(),
        },
        _ => K3sStep::Install {
            host: host.into(),
            script: script.into(),
            version: version.into(),
            exec,
            url,
            unit: role.unit(),
        },
    };
    std::iter::once(first).chain(wait).collect()
}

/// Why a change cannot be made by re-running the install script, naming the field: a
/// version change on an installed node (a rolling upgrade with cordon and drain, not built
/// yet) and a change to a managed flag that config.yaml sets (the script does not rewrite
/// that file). Shown as the change's only step; drift still reports the fields.
pub(crate) fn refusals(
    host: &str,
    have_version: &str,
    want_version: &str,
    in_config: &[String],
    changed: &[&str],
) -> Vec<String> {
    let mut e = Vec::new();
    if !have_version.is_empty() && have_version != want_version {
        e.push(format!(
            "version: host {host} runs k3s {have_version}; changing the version of an installed node is a rolling upgrade (cordon, drain, upgrade, uncordon), which cairn does not do yet"
        ));
    }
    for f in changed.iter().filter(|f| in_config.iter().any(|c| c == *f)) {
        e.push(format!(
            "{f}: set in {CONFIG_YAML} on host {host}, which k3s's install script does not rewrite: remove it there or declare the value it holds"
        ));
    }
    e
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
