//! The node simulator: each simulated host is a real OpenSSH `sshd` (Debian's) listening on
//! the host's mapped loopback address, in its own mount namespace (`unshare -m`) where
//! `/etc/kubernetes` is a private per-host directory, `/usr/local/sbin` holds the
//! simulated `systemctl`, `kubeadm`, `kubectl` and `sudo`, and root's home is a fresh empty
//! directory (a new host's, so no shell start-up files of the machine running the tests). Keys are generated per run: one
//! host key per host, one client key accepted by all. Everything lives in one temporary
//! directory; dropping the simulator stops every sshd. Needs root (mount namespaces).
//!
//! It knows nothing of the provider: tests connect to it like to real hosts, with the
//! client key, the known-hosts file or the fingerprints it reports.

#![warn(missing_docs)]

mod shims;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_core::net::AddrMap;

/// Sets up the host's mount namespace, then becomes its sshd.
const NAMESPACE: &str = r#"set -e
d=$1
mount -t tmpfs cairn-sim "$d/ovl"
if [ ! -d /etc/kubernetes ]; then
  mkdir "$d/ovl/up" "$d/ovl/work"
  mount -t overlay overlay -o "lowerdir=/etc,upperdir=$d/ovl/up,workdir=$d/ovl/work" /etc
  mkdir /etc/kubernetes
fi
mount --bind "$d/kubernetes" /etc/kubernetes
mount --bind "$d/bin" /usr/local/sbin
mount --bind "$d/home" "$(getent passwd root | cut -d: -f6)"
mount -t tmpfs cairn-sim /run
mkdir -m 0755 /run/sshd
exec /usr/sbin/sshd -D -e -f "$d/sshd_config""#;

/// A set of simulated hosts sharing one client key and one known-hosts file.
#[derive(Debug)]
pub struct NodeSim {
    root: tempfile::TempDir,
    map: AddrMap,
    hosts: Vec<SimHost>,
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

impl NodeSim {
    /// A simulator whose hosts listen on the addresses `map` gives their declared ones.
    /// Generates the client key.
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
        Ok(NodeSim {
            root,
            map,
            hosts: Vec::new(),
        })
    }

    /// The private key every host accepts.
    pub fn client_key(&self) -> PathBuf {
        self.root.path().join("client_key")
    }

    /// A known-hosts file listing every host's key under its declared address and port.
    pub fn known_hosts(&self) -> PathBuf {
        self.root.path().join("known_hosts")
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
    /// free port), with a fresh host key and an empty `/etc/kubernetes`. Returns once its
    /// sshd accepts connections.
    pub fn start_host(&mut self, name: &str, declared: Ipv4Addr) -> io::Result<&SimHost> {
        let IpAddr::V4(ip) = self.map.map(IpAddr::V4(declared)) else {
            unreachable!("IPv4 maps to IPv4")
        };
        if !ip.is_loopback() {
            return Err(io::Error::other(format!(
                "{declared} maps to {ip}, which is not loopback: the simulator listens only on 127.0.0.0/8"
            )));
        }
        let dir = self.root.path().join(format!("h{}", self.hosts.len()));
        for sub in ["kubernetes", "bin", "home", "state/units", "ovl"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(dir.join("state/units/kubelet"), "active\n")?;
        std::fs::write(dir.join("state/units/containerd"), "active\n")?;
        let state = dir.join("state");
        for (prog, script) in shims::all(&state.to_string_lossy()) {
            let p = dir.join("bin").join(prog);
            std::fs::write(&p, script)?;
            chmod_x(&p)?;
        }
        let key = dir.join("host_ed25519");
        keygen(&key)?;
        let port = free_port(ip)?;
        let listen = SocketAddr::new(IpAddr::V4(ip), port);
        std::fs::write(
            dir.join("sshd_config"),
            sshd_config(listen, &key, &self.root.path().join("authorized_keys")),
        )?;
        let pubkey = std::fs::read_to_string(key.with_extension("pub"))?;
        let mut fields = pubkey.split_whitespace();
        let (kind, blob) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
        let alias = if port == 22 {
            declared.to_string()
        } else {
            format!("[{declared}]:{port}")
        };
        let mut kh = std::fs::read_to_string(self.known_hosts())?;
        kh.push_str(&format!("{alias} {kind} {blob}\n"));
        std::fs::write(self.known_hosts(), kh)?;
        let fingerprint = fingerprint_of(&key.with_extension("pub"))?;
        let mut host = SimHost {
            name: name.into(),
            declared,
            listen,
            dir,
            fingerprint,
            child: None,
        };
        host.start()?;
        self.hosts.push(host);
        Ok(self.hosts.last().expect("just pushed"))
    }

    /// Stops the host called `name` (its sshd exits; its files stay).
    pub fn stop_host(&mut self, name: &str) {
        if let Some(h) = self.hosts.iter_mut().find(|h| h.name == name) {
            h.stop();
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

    fn start(&mut self) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sshd.log"))?;
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
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.listen, Duration::from_millis(200)).is_err() {
            if !self.is_running() || Instant::now() > deadline {
                self.stop();
                let log = std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "sshd for simulated host {} did not come up on {}: {}",
                    self.name,
                    self.listen,
                    log.trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
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
