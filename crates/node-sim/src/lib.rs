//! The node and cluster simulator of cairn's node layer.
//!
//! Each simulated host is a real OpenSSH `sshd` (Debian's) listening on the host's mapped
//! loopback address, in its own mount namespace (`unshare -m`) where `/etc/kubernetes` is a
//! private per-host directory, `/usr/local/sbin` holds the simulated `systemctl`, `kubeadm`,
//! `kubectl` and `sudo`, and root's home is a fresh empty directory (a new host's, so no
//! shell start-up files of the machine running the tests). Keys are generated per run: one
//! host key per host, one client key accepted by all (or a host's own cloud-init keys).
//!
//! The same [`NodeSim`] holds the simulated Kubernetes clusters ([`cluster`]): their CA,
//! Nodes, ConfigMaps, etcd members, tokens and certificate keys. Nothing becomes ready by
//! itself: a host's kubelet (a loop in the simulator) runs the static pods in its manifests directory
//! (the apiserver listens on `<mapped address>:6443` with the certificate on disk when it
//! started) and reports its Node Ready only while it reaches the server of the kubelet.conf
//! it read when it last (re)started. `kubeadm` and `systemctl` on a host reach the simulator through a control
//! socket and act on that host's files and its cluster.
//!
//! k3s hosts (`k3s.rs`) run the k3s process their installed units describe: its
//! cluster's datastore (SQLite, or embedded etcd members with quorum), node passwords, and
//! the controllers of the cluster's workload (Deployments, DaemonSets, PodDisruptionBudgets;
//! `workload.rs`), whose pods the nodes' own loops run.
//!
//! Everything lives in one temporary directory and one private tokio runtime; dropping the
//! simulator stops every sshd and server. Needs root (mount namespaces) and `curl` (the
//! shims use `curl --unix-socket`).
//!
//! It knows nothing of the provider: tests connect to it like to real hosts, with the
//! client key, the known-hosts file or the fingerprints it reports, and to the clusters'
//! apiservers with the CA and admin identity it reports.
#![warn(missing_docs)]

mod apiserver;
pub mod cluster;
mod control;
mod k3s;
mod kubeadm;
mod kubelet;
pub mod pki;
mod probe;
mod shims;
mod workload;
mod workload_hooks;
pub mod world;
mod world_state;

pub use cluster::{ClusterConfigFields, ClusterId};
pub use workload_hooks::PodView;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use cairn_core::net::AddrMap;

use crate::world_state::{HostRt, Shared};

/// Sets up the host's mount namespace, then becomes its sshd.
const NAMESPACE: &str = r#"set -e
d=$1
mount -t tmpfs cairn-sim "$d/ovl"
mkdir "$d/ovl/up" "$d/ovl/work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$d/ovl/up,workdir=$d/ovl/work" /etc
mkdir -p /etc/kubernetes
if [ -s "$d/ciuser" ]; then
  u=$(cat "$d/ciuser")
  getent passwd "$u" >/dev/null || echo "$u:x:0:0:cloud-init default user:/root:/bin/sh" >> /etc/passwd
fi
mkdir -p /etc/rancher /etc/systemd/system
mount --bind "$d/kubernetes" /etc/kubernetes
mount --bind "$d/rancher" /etc/rancher
mount --bind "$d/systemd" /etc/systemd/system
mount --bind "$d/localbin" /usr/local/bin
mount --bind "$d/bin" /usr/local/sbin
mount --bind "$d/home" "$(getent passwd root | cut -d: -f6)"
mount -t tmpfs cairn-sim /run
mkdir -m 0755 /run/sshd
exec /usr/sbin/sshd -D -e -f "$d/sshd_config""#;

/// A set of simulated hosts sharing one client key and one known-hosts file, and the
/// simulated clusters they belong to.
#[derive(Debug)]
pub struct NodeSim {
    hosts: Vec<SimHost>,
    /// The next host directory's number (`h<n>`; never reused, as removed hosts' files go).
    next_dir: usize,
    reserved: std::collections::BTreeMap<Ipv4Addr, u16>,
    shared: Arc<Shared>,
    rt: Option<tokio::runtime::Runtime>,
    root: tempfile::TempDir,
}

/// One simulated host: a running sshd and its files.
#[derive(Debug)]
pub struct SimHost {
    name: String,
    declared: Ipv4Addr,
    listen: SocketAddr,
    dir: PathBuf,
    fingerprint: String,
    child: Option<Child>,
}

/// A machine whose VM has booted, as cloud-init configured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Its host name (the VM's name).
    pub name: String,
    /// Its address (`ipconfig0`).
    pub ip: Ipv4Addr,
    /// The cloud-init default user (`ciuser`), if any.
    pub user: Option<String>,
    /// The keys its sshd accepts (`sshkeys`): OpenSSH `authorized_keys` lines.
    pub authorized_keys: String,
}

/// A Node as the cluster simulator sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// The Node's name (its host's name).
    pub name: String,
    /// Its InternalIP (the declared address).
    pub ip: Ipv4Addr,
    /// Whether it carries the control-plane role.
    pub control_plane: bool,
    /// Whether its Ready condition is True.
    pub ready: bool,
    /// The Ready condition's reason (`KubeletReady`, `KubeletNotReady`, `NodeStatusUnknown`).
    pub reason: String,
}

impl NodeSim {
    /// A simulator whose hosts listen on the addresses `map` gives their declared ones.
    /// Generates the client key and starts the control socket the hosts' programs use.
    pub fn new(map: AddrMap) -> io::Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("cairn-nodesim-")
            .tempdir()?;
        keygen(&root.path().join("client_key"))?;
        std::fs::copy(
            root.path().join("client_key.pub"),
            root.path().join("authorized_keys"),
        )?;
        std::fs::write(root.path().join("known_hosts"), "")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-node-sim")
            .enable_all()
            .build()?;
        let shared = Shared::new(map, root.path().join("ctl.sock"));
        let sock = std::os::unix::net::UnixListener::bind(root.path().join("ctl.sock"))?;
        sock.set_nonblocking(true)?;
        let router = control::router(shared.clone());
        rt.spawn(async move {
            match tokio::net::UnixListener::from_std(sock) {
                Ok(l) => {
                    let _ = axum::serve(l, router).await;
                }
                Err(e) => tracing::error!("node simulator control socket: {e}"),
            }
        });
        Ok(NodeSim {
            hosts: Vec::new(),
            next_dir: 0,
            reserved: Default::default(),
            shared,
            rt: Some(rt),
            root,
        })
    }

    /// The private key every host accepts.
    pub fn client_key(&self) -> PathBuf {
        self.root.path().join("client_key")
    }

    /// Lets the hosts that accept the client key (those started without keys of their
    /// own) accept `public_key` (an OpenSSH public key line) too, e.g. an identity kept
    /// across runs so plans made in one run still hold in the next.
    pub fn authorize_client_key(&self, public_key: &str) -> io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.root.path().join("authorized_keys"))?;
        writeln!(f, "{}", public_key.trim())
    }

    /// A known-hosts file listing every host's key under its declared address and port.
    pub fn known_hosts(&self) -> PathBuf {
        self.root.path().join("known_hosts")
    }

    /// The control socket (HTTP over a Unix socket) the hosts' `kubeadm` and `systemctl`
    /// talk to; `POST /_sim/fail-next-join/{host}` is its test hook.
    pub fn control_socket(&self) -> PathBuf {
        self.root.path().join("ctl.sock")
    }

    /// Where each running host's declared `address:22` really listens (its sshd on a free
    /// port of its mapped address): give it to the client's dialer
    /// (`Dialer::with_ports`, or `CAIRN_PORT_MAP` = its `to_string()`), and hosts can be
    /// declared on port 22 as on real hardware. The known-hosts file lists each host's key
    /// under its declared address too.
    pub fn port_map(&self) -> cairn_core::net::PortMap {
        let mut m = cairn_core::net::PortMap::default();
        for (ip, port) in &self.reserved {
            if let IpAddr::V4(to) = self.shared.map.map(IpAddr::V4(*ip)) {
                m.insert(
                    std::net::SocketAddrV4::new(*ip, 22),
                    SocketAddr::new(IpAddr::V4(to), *port),
                );
            }
        }
        for h in &self.hosts {
            m.insert(std::net::SocketAddrV4::new(h.declared, 22), h.listen);
        }
        m
    }

    /// Picks now the port the sshd of a machine declared at `declared` will listen on when
    /// it boots, so the port map handed to clients before the machine exists already holds
    /// it (a VM a plan will create). Nothing listens there until the machine boots. For an
    /// address whose host runs, its port is kept: a machine rebuilt there listens where the
    /// port map already says.
    pub fn reserve_port(&mut self, declared: Ipv4Addr) -> io::Result<u16> {
        if let Some(p) = self.reserved.get(&declared) {
            return Ok(*p);
        }
        if let Some(h) = self.hosts.iter().find(|h| h.declared == declared) {
            self.reserved.insert(declared, h.listen.port());
            return Ok(h.listen.port());
        }
        let IpAddr::V4(ip) = self.shared.map.map(IpAddr::V4(declared)) else {
            unreachable!("IPv4 maps to IPv4")
        };
        let port = free_port(ip)?;
        self.reserved.insert(declared, port);
        Ok(port)
    }

    /// The address map the simulator was made with.
    pub fn addr_map(&self) -> &AddrMap {
        &self.shared.map
    }

    /// The hosts started so far.
    pub fn hosts(&self) -> &[SimHost] {
        &self.hosts
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Option<&SimHost> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Starts a host declared at `declared` (reached at its mapped loopback address, on a
    /// free port), with a fresh host key and an empty `/etc/kubernetes`, accepting the
    /// simulator's client key. Returns once its sshd accepts connections.
    pub fn start_host(&mut self, name: &str, declared: Ipv4Addr) -> io::Result<&SimHost> {
        self.start_host_with_keys(name, declared, None)
    }

    /// Like [`NodeSim::start_host`], but the host's sshd accepts exactly
    /// `authorized_keys` (OpenSSH `authorized_keys` lines, e.g. the cloud-init `sshkeys` of
    /// its VM) instead of the simulator's client key, when given. A host of that name that
    /// was stopped is started again with its files.
    pub fn start_host_with_keys(
        &mut self,
        name: &str,
        declared: Ipv4Addr,
        authorized_keys: Option<&str>,
    ) -> io::Result<&SimHost> {
        self.start_any(name, declared, authorized_keys, false)
    }

    /// Starts a host for k3s (a cloud server as its image boots it): no kubelet or
    /// containerd unit, no k3s yet; `/usr/local/sbin/k3s-install.sh` stands for k3s's
    /// install script (see the `k3s` module), and a k3s process runs once an installed
    /// `k3s`/`k3s-agent` unit is started. A stopped host of that name starts again with its
    /// files.
    pub fn start_k3s_host(&mut self, name: &str, declared: Ipv4Addr) -> io::Result<&SimHost> {
        self.start_any(name, declared, None, true)
    }

    fn start_any(
        &mut self,
        name: &str,
        declared: Ipv4Addr,
        authorized_keys: Option<&str>,
        k3s: bool,
    ) -> io::Result<&SimHost> {
        if let Some(i) = self.hosts.iter().position(|h| h.name == name) {
            let h = &mut self.hosts[i];
            if !h.is_running() {
                h.start()?;
            }
            let mut w = self.shared.lock();
            let was_down = w.hosts.get(name).is_some_and(|rt| !rt.up);
            if let Some(rt) = w.hosts.get_mut(name) {
                rt.up = true;
            }
            if was_down {
                // systemd starts the enabled k3s unit at boot.
                k3s::boot(&mut w, name);
            }
            drop(w);
            return Ok(&self.hosts[i]);
        }
        let IpAddr::V4(ip) = self.shared.map.map(IpAddr::V4(declared)) else {
            unreachable!("IPv4 maps to IPv4")
        };
        if !ip.is_loopback() {
            return Err(io::Error::other(format!(
                "{declared} maps to {ip}, which is not loopback: the simulator listens only on 127.0.0.0/8"
            )));
        }
        let dir = self.root.path().join(format!("h{}", self.next_dir));
        for sub in [
            "kubernetes",
            "bin",
            "home",
            "state",
            "ovl",
            "rancher",
            "systemd",
            "localbin",
        ] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        self.next_dir += 1;
        let state = dir.join("state");
        let sock = self.control_socket();
        for (prog, script) in shims::all(&state.to_string_lossy(), name, &sock.to_string_lossy()) {
            let p = dir.join("bin").join(prog);
            std::fs::write(&p, script)?;
            chmod_x(&p)?;
        }
        let authorized = match authorized_keys {
            Some(keys) => {
                let p = dir.join("authorized_keys");
                std::fs::write(&p, keys)?;
                p
            }
            None => self.root.path().join("authorized_keys"),
        };
        let key = dir.join("host_ed25519");
        keygen(&key)?;
        let fingerprint = fingerprint_of(&key.with_extension("pub"))?;
        // A free port can be taken by someone else before sshd binds it: try another.
        // A port reserved for this address (see [`NodeSim::reserve_port`]) is kept: the
        // port map handed out before the machine existed names it.
        let reserved = self.reserved.get(&declared).copied();
        let mut attempt = 0;
        let host = loop {
            attempt += 1;
            let port = match reserved {
                Some(p) => p,
                None => free_port(ip)?,
            };
            let listen = SocketAddr::new(IpAddr::V4(ip), port);
            std::fs::write(
                dir.join("sshd_config"),
                sshd_config(listen, &key, &authorized),
            )?;
            let _ = std::fs::remove_file(dir.join("sshd.log"));
            let mut host = SimHost {
                name: name.into(),
                declared,
                listen,
                dir: dir.clone(),
                fingerprint: fingerprint.clone(),
                child: None,
            };
            match host.start() {
                Ok(()) => break host,
                Err(e)
                    if reserved.is_none()
                        && attempt < 5
                        && e.to_string().contains("Address already in use") =>
                {
                    tracing::debug!(
                        host = name,
                        port,
                        "port taken before sshd bound it; retrying"
                    );
                }
                Err(e) => return Err(e),
            }
        };
        let port = host.listen.port();
        let pubkey = std::fs::read_to_string(key.with_extension("pub"))?;
        let mut fields = pubkey.split_whitespace();
        let (kind, blob) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        // Under the port it really listens on, and under the declared `address:22` that
        // the port map (see [`NodeSim::port_map`]) moves there.
        let mut kh = std::fs::read_to_string(self.known_hosts())?;
        if port != 22 {
            kh.push_str(&format!("[{declared}]:{port} {kind} {blob}\n"));
        }
        kh.push_str(&format!("{declared} {kind} {blob}\n"));
        std::fs::write(self.known_hosts(), kh)?;
        {
            let mut w = self.shared.lock();
            let now = w.now();
            let mut rt = HostRt::new(declared, dir, now);
            if k3s {
                rt.units.clear();
                rt.k3s = Some(Default::default());
            }
            w.hosts.insert(name.to_string(), rt);
        }
        if let Some(rt) = &self.rt {
            if k3s {
                rt.spawn(k3s::run(self.shared.clone(), name.to_string()));
            } else {
                rt.spawn(kubelet::run(self.shared.clone(), name.to_string()));
            }
        }
        self.hosts.push(host);
        Ok(self.hosts.last().expect("just pushed"))
    }

    /// Brings up the machine of a VM that has booted (cloud-init done): a fresh host
    /// `machine.name` at `machine.ip` whose sshd accepts exactly `machine.authorized_keys`,
    /// for root and for the cloud-init user (`ciuser`, made a uid-0 account on that host so
    /// `sudo -n` works as on a cloud image). A machine of that name that was stopped comes
    /// back with its files. Glue code calls this on the Proxmox simulator's
    /// `VmEvent::Booted`, [`NodeSim::stop_host`] on `Stopped` and [`NodeSim::remove_host`] on
    /// `Destroyed`.
    pub fn boot_machine(&mut self, machine: &Machine) -> io::Result<&SimHost> {
        if self.host(&machine.name).is_none()
            && let Some(u) = &machine.user
        {
            if !u
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                || u.is_empty()
            {
                return Err(io::Error::other(format!(
                    "{u:?} is not a user name cloud-init would create"
                )));
            }
            let dir = self.root.path().join(format!("h{}", self.next_dir));
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join("ciuser"), u)?;
        }
        self.start_host_with_keys(&machine.name, machine.ip, Some(&machine.authorized_keys))
    }

    /// Stops the host called `name`, as when its VM stops: its sshd exits, its kubelet and
    /// static pods stop (the apiserver stops listening); its files stay.
    pub fn stop_host(&mut self, name: &str) {
        if let Some(h) = self.hosts.iter_mut().find(|h| h.name == name) {
            h.stop();
        }
        let mut w = self.shared.lock();
        if let Some(h) = w.hosts.get_mut(name) {
            h.up = false;
            // Its processes are gone with the machine (k3s's data dir and files stay).
            if let Some(k) = h.k3s.as_mut() {
                k.running = None;
                for u in ["k3s", "k3s-agent"] {
                    if let Some(active) = h.units.get_mut(u) {
                        *active = false;
                    }
                }
            }
        }
    }

    /// Removes the host called `name`, as when its VM is destroyed: stopped, its files gone.
    /// Its Node stays registered (NotReady), as in a real cluster.
    pub fn remove_host(&mut self, name: &str) {
        self.stop_host(name);
        self.shared.lock().hosts.remove(name);
        if let Some(h) = self.hosts.iter().find(|h| h.name == name)
            && let Ok(key) = std::fs::read_to_string(h.dir.join("host_ed25519.pub"))
            && let Some(blob) = key.split_whitespace().nth(1)
            && let Ok(kh) = std::fs::read_to_string(self.known_hosts())
        {
            // Its host key is gone with it: a new machine of that name has another.
            let kept: String = kh
                .lines()
                .filter(|l| !l.contains(blob))
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = std::fs::write(self.known_hosts(), kept);
        }
        self.hosts.retain(|h| h.name != name);
    }

    /// Boots a fresh cloud server for k3s: a new host `name` at `ip` (new host key, added
    /// to the known-hosts file) whose sshd accepts exactly `authorized_keys`, with k3s's
    /// install script present (as a cloud-init `user_data` that fetches it leaves it) and no
    /// k3s installed. Glue code following a cloud simulator's servers calls this when a
    /// server is running and [`NodeSim::remove_host`] when it is deleted.
    pub fn boot_k3s_host(
        &mut self,
        name: &str,
        ip: Ipv4Addr,
        authorized_keys: &str,
    ) -> io::Result<&SimHost> {
        self.start_any(name, ip, Some(authorized_keys), true)
    }

    /// Adds an empty simulated cluster (a fresh CA, no nodes) named `name`.
    pub fn add_cluster(&mut self, name: &str) -> ClusterId {
        let ca = pki::ClusterCa::generate();
        let admin = ca.client("kubernetes-admin", "kubeadm:cluster-admins");
        let mut w = self.shared.lock();
        w.clusters
            .push(cluster::Cluster::new(name.to_string(), ca, admin));
        ClusterId(w.clusters.len() - 1)
    }

    /// Makes `host` the first control-plane node of `cluster`, leaving what `kubeadm init`
    /// with a ClusterConfiguration of `fields` leaves: the CA, an apiserver certificate
    /// with the SANs `fields` give, admin.conf and kubelet.conf, the static pod manifests,
    /// the two ConfigMaps, the Node and its etcd member. Its kubelet then starts the
    /// apiserver and reports the Node Ready.
    pub fn kubeadm_init(
        &self,
        cluster: ClusterId,
        host: &str,
        fields: &ClusterConfigFields,
    ) -> io::Result<()> {
        kubeadm::init_effects(&self.shared, cluster.0, host, fields)
    }

    /// Makes `host` a worker of `cluster` whose kubelet talks to `server` (e.g.
    /// `https://10.0.20.100:6443`), as a `kubeadm join` through that server leaves it.
    pub fn seed_worker(&self, cluster: ClusterId, host: &str, server: &str) -> io::Result<()> {
        let ip = self
            .shared
            .lock()
            .hosts
            .get(host)
            .map(|h| h.ip)
            .ok_or_else(|| io::Error::other(format!("no simulated host {host}")))?;
        kubeadm::join_effects(
            &self.shared,
            cluster.0,
            host,
            ip,
            false,
            server,
            &ClusterConfigFields::default(),
        )
    }

    /// Runs k3s's install script on the k3s host `host` with the variables `env`
    /// (`INSTALL_K3S_VERSION`, `INSTALL_K3S_EXEC`, `K3S_URL`, `K3S_TOKEN`, …), as a person
    /// installing by hand would: the same effects as the host's `k3s-install.sh`. Returns its
    /// output; an error carries the script's (or the failed unit's) message.
    pub fn k3s_install(&self, host: &str, env: &[(&str, &str)]) -> io::Result<String> {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let o = k3s::install(&self.shared, host, &env, &[]);
        if o.code != 0 {
            let journal = self.k3s_journal(host).join("\n");
            return Err(io::Error::other(format!(
                "k3s install on {host} failed: {}{}\n{journal}",
                o.stdout, o.stderr
            )));
        }
        Ok(o.stdout)
    }

    /// The journal of `host`'s k3s units (k3s's messages, e.g. why a join failed).
    pub fn k3s_journal(&self, host: &str) -> Vec<String> {
        self.shared
            .lock()
            .hosts
            .get(host)
            .and_then(|h| h.k3s.as_ref())
            .map(|k| k.journal.iter().map(|(u, l)| format!("{u}: {l}")).collect())
            .unwrap_or_default()
    }

    /// How many times a k3s process started on `host` (installs and restarts that ran it).
    pub fn k3s_starts(&self, host: &str) -> u32 {
        self.shared
            .lock()
            .hosts
            .get(host)
            .and_then(|h| h.k3s.as_ref())
            .map_or(0, |k| k.starts)
    }

    /// The cluster `host`'s k3s belongs to (made by its first server).
    pub fn k3s_cluster_of(&self, host: &str) -> Option<ClusterId> {
        self.shared.lock().hosts.get(host)?.cluster.map(ClusterId)
    }

    /// The cluster's name.
    pub fn cluster_name(&self, cluster: ClusterId) -> String {
        self.shared.lock().clusters[cluster.0].name.clone()
    }

    /// How many times `host`'s kubelet has checked its server since the host started (to
    /// wait for "it has looked again" without timing).
    pub fn kubelet_status_updates(&self, host: &str) -> u64 {
        self.shared
            .lock()
            .hosts
            .get(host)
            .map_or(0, |h| h.status_updates)
    }

    /// The cluster CA certificate, PEM (what `/etc/kubernetes/pki/ca.crt` holds).
    pub fn cluster_ca_pem(&self, cluster: ClusterId) -> String {
        self.shared.lock().clusters[cluster.0].ca.cert_pem.clone()
    }

    /// The `--discovery-token-ca-cert-hash` of the cluster (`sha256:<hex>`).
    pub fn discovery_hash(&self, cluster: ClusterId) -> String {
        self.shared.lock().clusters[cluster.0]
            .ca
            .discovery_hash
            .clone()
    }

    /// The cluster admin's client certificate and key, PEM (what admin.conf embeds).
    pub fn admin_identity(&self, cluster: ClusterId) -> (String, String) {
        let w = self.shared.lock();
        let a = &w.clusters[cluster.0].admin;
        (a.cert_pem.clone(), a.key_pem.clone())
    }

    /// An admin kubeconfig (as kubeadm's admin.conf) for `server`, e.g.
    /// `https://10.0.20.99:6443`.
    pub fn admin_kubeconfig(&self, cluster: ClusterId, server: &str) -> String {
        let w = self.shared.lock();
        let c = &w.clusters[cluster.0];
        cluster::kubeconfig_with_client(server, &c.ca.cert_pem, "kubernetes-admin", &c.admin)
    }

    /// The cluster's Nodes now.
    pub fn nodes(&self, cluster: ClusterId) -> Vec<NodeView> {
        let w = self.shared.lock();
        w.clusters[cluster.0]
            .nodes
            .iter()
            .map(|(name, n)| {
                let live = w.live(&n.host);
                NodeView {
                    name: name.clone(),
                    ip: n.ip,
                    control_plane: n.control_plane,
                    ready: live.ready,
                    reason: live.reason,
                }
            })
            .collect()
    }

    /// The node `name` now.
    pub fn node(&self, cluster: ClusterId, name: &str) -> Option<NodeView> {
        self.nodes(cluster).into_iter().find(|n| n.name == name)
    }

    /// The etcd members whose static pod runs: the control-plane nodes' names.
    pub fn etcd_members(&self, cluster: ClusterId) -> Vec<String> {
        let w = self.shared.lock();
        w.clusters[cluster.0]
            .nodes
            .iter()
            .filter(|(_, n)| n.control_plane && w.live(&n.host).etcd_running)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The `ClusterConfiguration` stored in `kube-system/kubeadm-config`.
    pub fn cluster_configuration(&self, cluster: ClusterId) -> Option<String> {
        self.shared.lock().clusters[cluster.0]
            .cluster_configuration
            .clone()
    }

    /// Moves the simulator clock `by` into the future (tokens and certificate keys expire
    /// by it).
    pub fn advance_clock(&self, by: Duration) {
        self.shared.lock().clock_offset += by;
    }

    /// How long a restarted kubelet stays NotReady (default 1 s; real kubelets take 5–10 s).
    pub fn set_kubelet_restart_delay(&self, d: Duration) {
        self.shared.lock().kubelet_restart_delay = d;
    }

    /// Makes the next `kubeadm join` on `host` fail (after discovery, before it changes
    /// anything).
    pub fn fail_next_join(&self, host: &str) {
        self.shared.lock().fail_next_join.insert(host.to_string());
    }

    /// Whether `host`'s apiserver static pod is running (listening).
    pub fn apiserver_running(&self, host: &str) -> bool {
        self.shared
            .lock()
            .hosts
            .get(host)
            .is_some_and(|h| h.apiserver_running)
    }

    /// How many times `host`'s apiserver has (re)started.
    pub fn apiserver_starts(&self, host: &str) -> u32 {
        self.shared
            .lock()
            .hosts
            .get(host)
            .map_or(0, |h| h.apiserver_starts)
    }

    /// How many successful `kubeadm join`s ran on `host`.
    pub fn joins(&self, host: &str) -> u32 {
        self.shared.lock().hosts.get(host).map_or(0, |h| h.joins)
    }
}

impl Drop for NodeSim {
    fn drop(&mut self) {
        self.hosts.clear();
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl SimHost {
    /// The host's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address the host is declared at, e.g. 10.0.20.110.
    pub fn declared(&self) -> Ipv4Addr {
        self.declared
    }

    /// Where its sshd listens (the mapped loopback address).
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// Its SSH port.
    pub fn port(&self) -> u16 {
        self.listen.port()
    }

    /// Its host key's SHA-256 fingerprint, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The directory the host sees as `/etc/kubernetes`.
    pub fn etc_kubernetes(&self) -> PathBuf {
        self.dir.join("kubernetes")
    }

    /// The directory the host sees as `/etc/rancher` (k3s's `config.yaml`, `k3s.yaml`).
    pub fn etc_rancher(&self) -> PathBuf {
        self.dir.join("rancher")
    }

    /// The directory the host sees as `/etc/systemd/system` (unit and environment files).
    pub fn etc_systemd_system(&self) -> PathBuf {
        self.dir.join("systemd")
    }

    /// Writes `rel` under the host's `/etc/kubernetes` (creating directories).
    pub fn write_etc_kubernetes(&self, rel: &str, content: &[u8]) -> io::Result<()> {
        let p = self.etc_kubernetes().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, content)
    }

    /// Every `systemctl` action on the host, in order, e.g. `restart kubelet`.
    pub fn systemctl_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("state/systemctl.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// How many times `unit` was restarted.
    pub fn restarts(&self, unit: &str) -> usize {
        let want = format!("restart {unit}");
        self.systemctl_log().iter().filter(|l| **l == want).count()
    }

    /// Makes `sudo` on this host require a password (so `sudo -n` fails).
    pub fn require_sudo_password(&self, yes: bool) -> io::Result<()> {
        let p = self.dir.join("state/sudo-needs-password");
        if yes {
            std::fs::write(p, "")
        } else {
            std::fs::remove_file(p).or_else(|e| match e.kind() {
                io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
        }
    }

    /// Successful logins so far (from sshd's log): proves whether a client got past host
    /// key verification and authentication.
    pub fn logins(&self) -> usize {
        std::fs::read_to_string(self.dir.join("sshd.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Accepted publickey"))
            .count()
    }

    /// Whether its sshd runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Starts sshd. An sshd that dies before logging anything (a transient failure of the
    /// namespace set-up under heavy parallel load: nothing of it reached the log) is
    /// started again, up to three times; one that logs why it failed is not.
    fn start(&mut self) -> io::Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.start_once() {
                Err((e, true)) if attempt < 3 => {
                    tracing::warn!(host = %self.name, "{e}; starting it again");
                    std::thread::sleep(Duration::from_millis(100 * attempt));
                }
                r => return r.map_err(|(e, _)| e),
            }
        }
    }

    /// One start; an error says whether sshd died without a word (worth another try).
    fn start_once(&mut self) -> Result<(), (io::Error, bool)> {
        // Only what this start logs counts (a restarted host's log holds earlier runs).
        let seen = std::fs::metadata(self.dir.join("sshd.log")).map_or(0, |m| m.len() as usize);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sshd.log"))
            .map_err(|e| (e, false))?;
        let child = Command::new("unshare")
            .args([
                "-m",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                NAMESPACE,
                "sh",
            ])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| (e, false))?;
        self.child = Some(child);
        // Listening is proven by this sshd's own log line, not by a connection that another
        // simulator's sshd on the same address and port could have answered.
        let want = format!(
            "Server listening on {} port {}",
            self.listen.ip(),
            self.listen.port()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default();
            if log.get(seen..).is_some_and(|new| new.contains(&want)) {
                return Ok(());
            }
            let exited = match self.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Ok(None)) => None,
                Some(Err(e)) => Some(format!("cannot be waited for: {e}")),
                None => Some("never started".into()),
            };
            if exited.is_some() || Instant::now() > deadline {
                self.stop();
                let log = std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default();
                let new = log.get(seen..).unwrap_or("").trim().to_string();
                let silent = exited.is_some() && new.is_empty();
                return Err((
                    io::Error::other(format!(
                        "sshd for simulated host {} did not come up on {} ({}): {}",
                        self.name,
                        self.listen,
                        exited.unwrap_or_else(|| "no listening line within 30 s".into()),
                        new
                    )),
                    silent,
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops sshd and every session process it forked: they all live in the host's own
    /// mount namespace, so they are found by it (sshd's session children start their own
    /// process groups).
    fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let ns = std::fs::read_link(format!("/proc/{}/ns/mnt", c.id())).ok();
        let _ = c.kill();
        let _ = c.wait();
        let Some(ns) = ns else { return };
        let mine = std::fs::read_link("/proc/self/ns/mnt").ok();
        if mine.as_ref() == Some(&ns) {
            return;
        }
        let pids: Vec<String> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
                (std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()? == ns)
                    .then(|| pid.to_string())
            })
            .collect();
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(&pids)
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for SimHost {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sshd_config(listen: SocketAddr, host_key: &Path, authorized: &Path) -> String {
    format!(
        "ListenAddress {listen}
HostKey {}
PidFile none
AuthorizedKeysFile {}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 10
MaxStartups 100:30:200
PrintMotd no
LogLevel INFO
",
        host_key.display(),
        authorized.display()
    )
}

fn keygen(path: &Path) -> io::Result<()> {
    let st = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "cairn-node-sim",
            "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()?;
    st.success()
        .then_some(())
        .ok_or_else(|| io::Error::other(format!("ssh-keygen for {} failed", path.display())))
}

fn fingerprint_of(pubkey: &Path) -> io::Result<String> {
    let out = Command::new("ssh-keygen").arg("-lf").arg(pubkey).output()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| io::Error::other("ssh-keygen -l printed no fingerprint"))
}

fn free_port(ip: Ipv4Addr) -> io::Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

fn chmod_x(p: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
}
