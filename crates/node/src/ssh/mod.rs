//! The SSH transport: one multiplexed OpenSSH master connection per host (the `openssh`
//! crate's native mux client over the system `ssh`), host keys verified strictly, bounded
//! sessions per host, connect and per-command timeouts, `sudo -n`, and arguments passed as
//! arguments. Every address goes through core's dialer, so the address map and the
//! loopback-only switch apply before `ssh` is spawned.

pub mod hostkey;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cairn_core::net::Dialer;
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, OnceCell, Semaphore};

use crate::error::{NodeError, trim_stderr};
use hostkey::HostKey;

/// Unix socket paths are limited to about 104 bytes; `openssh` appends about 40.
const MAX_CONTROL_DIR_LEN: usize = 60;

/// How a host's key is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyTrust {
    /// The key must be in this known-hosts file under the host's declared address
    /// (`StrictHostKeyChecking=yes`).
    KnownHosts(PathBuf),
    /// The key must have this SHA-256 fingerprint (`SHA256:…`).
    Fingerprint(String),
    /// Accept a key not yet in this known-hosts file and record it (`accept-new`); a known
    /// key that changed is still refused. Announced with a warning on every connection.
    AcceptNew(PathBuf),
}

/// A host as declared: where it is, who to log in as, and how its key is trusted.
#[derive(Debug, Clone)]
pub struct Host {
    /// The name resources refer to, e.g. `k8s-worker-1`.
    pub name: String,
    /// The declared address (mapped through the dialer), e.g. `10.0.20.110`.
    pub address: String,
    /// The SSH port.
    pub port: u16,
    /// The login user.
    pub user: String,
    /// How its key is trusted.
    pub trust: HostKeyTrust,
    /// Whether commands that need root run under `sudo -n` (false when logging in as root).
    pub sudo: bool,
}

impl Host {
    /// A host reached as `user` on port 22, keys checked against `trust`; `sudo -n` unless
    /// the user is `root`.
    pub fn new(
        name: impl Into<String>,
        address: impl Into<String>,
        user: impl Into<String>,
        trust: HostKeyTrust,
    ) -> Self {
        let user = user.into();
        Host {
            name: name.into(),
            address: address.into(),
            port: 22,
            sudo: user != "root",
            user,
            trust,
        }
    }

    /// The same host on another port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// Transport settings shared by all hosts.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// The private key used for every host (key authentication only).
    pub identity: PathBuf,
    /// Where control sockets live; must be short (Unix socket paths ≤ ~104 bytes). `None`
    /// makes a private directory under `/tmp`.
    pub control_dir: Option<PathBuf>,
    /// Timeout for establishing a connection.
    pub connect_timeout: Duration,
    /// Timeout for one command.
    pub command_timeout: Duration,
    /// Sessions at once per host (sshd's `MaxSessions` defaults to 10).
    pub max_sessions: usize,
}

impl SshOptions {
    /// Defaults: 10 s connect, 120 s per command, 8 sessions per host.
    pub fn new(identity: impl Into<PathBuf>) -> Self {
        SshOptions {
            identity: identity.into(),
            control_dir: None,
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(120),
            max_sessions: 8,
        }
    }
}

/// A remote command: a program and its arguments, each passed as one argument (quoted for
/// the remote shell by the transport, never pasted into shell text). Arguments and standard
/// input may hold secrets (join tokens, certificate keys): `Debug` shows only the program
/// and how many arguments there are, and no error of the transport names an argument.
#[derive(Clone)]
pub struct Cmd {
    program: String,
    args: Vec<String>,
    root: bool,
    stdin: Option<Vec<u8>>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cmd")
            .field("program", &self.program)
            .field("args", &format_args!("<{} hidden>", self.args.len()))
            .field("root", &self.root)
            .field(
                "stdin",
                &self.stdin.as_ref().map(|d| format!("<{} bytes>", d.len())),
            )
            .finish()
    }
}

impl Cmd {
    /// Runs `program` as the login user.
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            root: false,
            stdin: None,
        }
    }

    /// Runs `program` as root (`sudo -n --` on hosts that need it).
    pub fn root(program: impl Into<String>) -> Self {
        Cmd {
            root: true,
            ..Cmd::new(program)
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Feeds `data` to the command's standard input.
    pub fn stdin(mut self, data: Vec<u8>) -> Self {
        self.stdin = Some(data);
        self
    }

    /// The program name, for messages (arguments may hold secrets and are never shown).
    pub fn program(&self) -> &str {
        &self.program
    }
}

/// What a command printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// Counters for benches and tests: connections opened and commands run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SshStats {
    /// Master connections established.
    pub connections: usize,
    /// Commands run (each one SSH session round trip on a master).
    pub commands: usize,
}

struct Conn {
    session: Session,
    slots: Semaphore,
}

/// The transport: declared hosts, one master connection per host, opened on first use.
pub struct Ssh {
    opts: SshOptions,
    dialer: Dialer,
    hosts: HashMap<String, Host>,
    conns: Mutex<HashMap<String, Arc<OnceCell<Arc<Conn>>>>>,
    dir: ControlDir,
    connections: AtomicUsize,
    commands: AtomicUsize,
}

enum ControlDir {
    Owned(tempfile::TempDir),
    Given(PathBuf),
}

impl ControlDir {
    fn path(&self) -> &Path {
        match self {
            ControlDir::Owned(t) => t.path(),
            ControlDir::Given(p) => p,
        }
    }
}

impl std::fmt::Debug for Ssh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ssh")
            .field("hosts", &self.hosts.keys().collect::<Vec<_>>())
            .field("control_dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Ssh {
    /// A transport for `hosts`, dialling through `dialer`.
    pub fn new(opts: SshOptions, dialer: Dialer, hosts: Vec<Host>) -> Result<Self, NodeError> {
        let dir = match &opts.control_dir {
            Some(p) => {
                std::fs::create_dir_all(p)
                    .map_err(|e| NodeError::local(format!("create {}", p.display()), e))?;
                ControlDir::Given(p.clone())
            }
            None => ControlDir::Owned(
                tempfile::Builder::new()
                    .prefix("cairn-ssh-")
                    .tempdir_in("/tmp")
                    .map_err(|e| NodeError::local("create the ssh control directory", e))?,
            ),
        };
        let len = dir.path().as_os_str().len();
        if len > MAX_CONTROL_DIR_LEN {
            return Err(NodeError::local(
                format!("ssh control directory {}", dir.path().display()),
                std::io::Error::other(format!(
                    "path is {len} bytes; control sockets need it under {MAX_CONTROL_DIR_LEN} (Unix socket paths are limited to ~104 bytes)"
                )),
            ));
        }
        Ok(Ssh {
            hosts: hosts.into_iter().map(|h| (h.name.clone(), h)).collect(),
            opts,
            dialer,
            conns: Mutex::new(HashMap::new()),
            dir,
            connections: AtomicUsize::new(0),
            commands: AtomicUsize::new(0),
        })
    }

    /// The declared host called `name`.
    pub fn host(&self, name: &str) -> Result<&Host, NodeError> {
        self.hosts
            .get(name)
            .ok_or_else(|| NodeError::UnknownHost(name.into()))
    }

    /// Whether a host called `name` is declared.
    pub fn is_declared(&self, name: &str) -> bool {
        self.hosts.contains_key(name)
    }

    /// Connections and commands so far.
    pub fn stats(&self) -> SshStats {
        SshStats {
            connections: self.connections.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
        }
    }

    /// Runs `cmd` on `host` and returns its output; a non-zero exit status is an error.
    pub async fn run(&self, host: &str, cmd: &Cmd) -> Result<Output, NodeError> {
        let out = self.run_status(host, cmd).await?;
        match out.0 {
            0 => Ok(out.1),
            status => Err(NodeError::Command {
                host: host.into(),
                program: cmd.program.clone(),
                status,
                stderr: trim_stderr(&out.1.stderr),
            }),
        }
    }

    /// Runs `cmd` on `host` and returns its exit status with its output. Exit status 255 is
    /// the connection's failure, reported as [`NodeError::ConnectionLost`].
    pub async fn run_status(&self, host: &str, cmd: &Cmd) -> Result<(i32, Output), NodeError> {
        let h = self.host(host)?;
        let conn = self.conn(h).await?;
        let _slot = conn.slots.acquire().await.expect("semaphore never closed");
        self.commands.fetch_add(1, Ordering::Relaxed);
        let lost = |detail: String| NodeError::ConnectionLost {
            host: host.into(),
            program: cmd.program.clone(),
            detail,
        };
        let command = || {
            let mut c = if cmd.root && h.sudo {
                let mut c = conn.session.command("sudo");
                c.arg("-n").arg("--").arg(&cmd.program);
                c
            } else {
                conn.session.command(&cmd.program)
            };
            c.args(&cmd.args)
                .stdin(if cmd.stdin.is_some() {
                    openssh::Stdio::piped()
                } else {
                    openssh::Stdio::null()
                })
                .stdout(openssh::Stdio::piped())
                .stderr(openssh::Stdio::piped());
            c
        };
        let fut = async {
            // sshd frees a finished session a moment after its command exits, so a new
            // session may be refused briefly even within the bound: nothing ran, retry.
            let mut attempt = 0;
            let mut child = loop {
                match command().spawn().await {
                    Ok(child) => break child,
                    Err(e) if attempt < 5 && chain(&e).contains("Session open refused") => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                    }
                    Err(e) => return Err(lost(chain(&e))),
                }
            };
            if let Some(data) = &cmd.stdin {
                let mut w = child.stdin().take().expect("stdin is piped");
                w.write_all(data)
                    .await
                    .map_err(|e| lost(format!("writing standard input: {e}")))?;
                w.shutdown().await.ok();
                drop(w);
            }
            child.wait_with_output().await.map_err(|e| lost(chain(&e)))
        };
        let out = match tokio::time::timeout(self.opts.command_timeout, fut).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                // A refused session (e.g. sshd's MaxSessions) leaves the master usable; only
                // a master that is gone is forgotten, so the next command dials again.
                if conn.session.check().await.is_err() {
                    self.forget(host).await;
                }
                return Err(e);
            }
            Err(_) => {
                return Err(NodeError::Timeout {
                    host: host.into(),
                    program: cmd.program.clone(),
                    secs: self.opts.command_timeout.as_secs(),
                });
            }
        };
        let status = out.status.code().unwrap_or(-1);
        if status == 255 {
            let detail = match conn.session.check().await {
                Err(e) => {
                    self.forget(host).await;
                    format!("the master connection is gone: {}", chain(&e))
                }
                Ok(()) => format!(
                    "ssh exit status 255 (the connection failed, or the command exited 255): {}",
                    trim_stderr(&out.stderr)
                ),
            };
            return Err(lost(detail));
        }
        Ok((
            status,
            Output {
                stdout: out.stdout,
                stderr: out.stderr,
            },
        ))
    }

    /// Closes every master connection (a dropped session shuts its master down).
    pub async fn close(&self) {
        self.conns.lock().await.clear();
    }

    async fn forget(&self, host: &str) {
        self.conns.lock().await.remove(host);
    }

    async fn conn(&self, h: &Host) -> Result<Arc<Conn>, NodeError> {
        let cell = self
            .conns
            .lock()
            .await
            .entry(h.name.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| self.connect(h)).await.cloned()
    }

    async fn connect(&self, h: &Host) -> Result<Arc<Conn>, NodeError> {
        let target = self
            .dialer
            .resolve(&h.address, h.port)
            .map_err(|source| NodeError::Dial {
                host: h.name.clone(),
                source,
            })?;
        let alias = hostkey::known_hosts_name(&h.address, h.port);
        let files = self
            .dir
            .path()
            .join(format!("h{}", self.hosts_index(&h.name)));
        std::fs::create_dir_all(&files)
            .map_err(|e| NodeError::local(format!("create {}", files.display()), e))?;
        let (known_hosts, check) = match &h.trust {
            HostKeyTrust::KnownHosts(p) => (p.clone(), KnownHosts::Strict),
            HostKeyTrust::AcceptNew(p) => {
                tracing::warn!(host = %h.name, file = %p.display(),
                    "accepting a new host key without verification (accept-new); a changed key is still refused");
                (p.clone(), KnownHosts::Add)
            }
            HostKeyTrust::Fingerprint(fp) => {
                let want = hostkey::normalise(fp);
                let presented = self.scan(h, target).await?;
                let Some(key) = presented.iter().find(|k| k.fingerprint() == want) else {
                    return Err(NodeError::HostKeyMismatch {
                        host: h.name.clone(),
                        target: target.to_string(),
                        expected: vec![want],
                        presented: presented.iter().map(HostKey::fingerprint).collect(),
                    });
                };
                let p = files.join("known_hosts");
                std::fs::write(&p, format!("{alias} {} {}\n", key.kind, key.blob))
                    .map_err(|e| NodeError::local(format!("write {}", p.display()), e))?;
                (p, KnownHosts::Strict)
            }
        };
        let unsafe_text = |v: &str| v.contains(['"', '\n', '\r']) || v.is_empty();
        if unsafe_text(&h.user)
            || unsafe_text(&h.address)
            || known_hosts.to_str().is_none_or(unsafe_text)
            || self.opts.identity.to_str().is_none_or(unsafe_text)
        {
            return Err(NodeError::Connect {
                host: h.name.clone(),
                target: target.to_string(),
                detail: "the user, address, key or known-hosts path is empty or holds a quote or line break".into(),
            });
        }
        let config = files.join("config");
        std::fs::write(&config, self.config_text(h, target, &alias, &known_hosts))
            .map_err(|e| NodeError::local(format!("write {}", config.display()), e))?;
        let mut b = SessionBuilder::default();
        b.config_file(&config)
            .known_hosts_check(check)
            .control_directory(&files)
            .connect_timeout(self.opts.connect_timeout)
            .server_alive_interval(Duration::from_secs(15))
            .control_persist(ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(300).expect("non-zero"),
            ));
        match b.connect_mux("cairn-target").await {
            Ok(session) => {
                self.connections.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(host = %h.name, %target, "ssh master connected");
                Ok(Arc::new(Conn {
                    session,
                    slots: Semaphore::new(self.opts.max_sessions.max(1)),
                }))
            }
            Err(e) => {
                let detail = chain(&e);
                if is_host_key_failure(&detail) {
                    let expected = hostkey::known_keys(&known_hosts, &alias)
                        .await
                        .unwrap_or_default();
                    let presented = self.scan(h, target).await.unwrap_or_default();
                    return Err(NodeError::HostKeyMismatch {
                        host: h.name.clone(),
                        target: target.to_string(),
                        expected: expected.iter().map(HostKey::fingerprint).collect(),
                        presented: presented.iter().map(HostKey::fingerprint).collect(),
                    });
                }
                Err(NodeError::Connect {
                    host: h.name.clone(),
                    target: target.to_string(),
                    detail,
                })
            }
        }
    }

    async fn scan(&self, h: &Host, target: SocketAddr) -> Result<Vec<HostKey>, NodeError> {
        hostkey::scan(target, self.opts.connect_timeout)
            .await
            .map_err(|e| NodeError::local(format!("ssh-keyscan {} ({target})", h.name), e))
    }

    fn hosts_index(&self, name: &str) -> usize {
        let mut names: Vec<_> = self.hosts.keys().collect();
        names.sort();
        names.iter().position(|n| *n == name).unwrap_or(usize::MAX)
    }

    /// The generated `ssh_config` for one host: nothing from the user's own configuration,
    /// key authentication only, the key looked up under the declared address.
    fn config_text(&self, h: &Host, target: SocketAddr, alias: &str, known_hosts: &Path) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "Host cairn-target");
        let _ = writeln!(s, "  HostName {}", target.ip());
        let _ = writeln!(s, "  Port {}", target.port());
        let _ = writeln!(s, "  User \"{}\"", h.user);
        let _ = writeln!(s, "  HostKeyAlias \"{alias}\"");
        let _ = writeln!(s, "  UserKnownHostsFile \"{}\"", known_hosts.display());
        let _ = writeln!(s, "  GlobalKnownHostsFile /dev/null");
        let _ = writeln!(s, "  IdentityFile \"{}\"", self.opts.identity.display());
        let _ = writeln!(s, "  IdentitiesOnly yes");
        let _ = writeln!(s, "  IdentityAgent none");
        let _ = writeln!(s, "  PreferredAuthentications publickey");
        let _ = writeln!(s, "  PasswordAuthentication no");
        let _ = writeln!(s, "  KbdInteractiveAuthentication no");
        let _ = writeln!(s, "  CheckHostIP no");
        let _ = writeln!(s, "  UpdateHostKeys no");
        let _ = writeln!(s, "  BatchMode yes");
        let _ = writeln!(s, "  ServerAliveCountMax 3");
        s
    }
}

fn is_host_key_failure(detail: &str) -> bool {
    detail.contains("Host key verification failed")
        || detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || detail.contains("host key is known")
}

/// An error with its sources, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let _ = write!(s, ": {c}");
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh(dialer: Dialer) -> Ssh {
        let host = Host::new(
            "worker",
            "192.168.7.7",
            "root",
            HostKeyTrust::Fingerprint("SHA256:x".into()),
        );
        Ssh::new(SshOptions::new("/nonexistent/key"), dialer, vec![host]).unwrap()
    }

    #[tokio::test]
    async fn a_non_loopback_host_is_refused_before_ssh_is_spawned() {
        let s = ssh(Dialer::new(Default::default(), true));
        let e = s.run("worker", &Cmd::new("true")).await.unwrap_err();
        assert!(matches!(e, NodeError::Dial { .. }), "{e}");
        assert!(e.to_string().contains("not a loopback address"), "{e}");
        assert_eq!(s.stats(), SshStats::default());
    }

    #[tokio::test]
    async fn an_undeclared_host_is_named() {
        let s = ssh(Dialer::default());
        let e = s.run("nope", &Cmd::new("true")).await.unwrap_err();
        assert_eq!(e.to_string(), "host \"nope\" is not declared");
    }

    #[test]
    fn a_commands_debug_form_never_shows_its_arguments_or_input() {
        let c = Cmd::root("kubeadm")
            .args(["join", "--token", "abcdef.0123456789abcdef"])
            .stdin(b"SECRET".to_vec());
        let d = format!("{c:?}");
        assert!(d.contains("kubeadm") && d.contains("<3 hidden>"), "{d}");
        assert!(!d.contains("abcdef") && !d.contains("SECRET"), "{d}");
    }

    #[test]
    fn control_directories_that_are_too_long_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mut o = SshOptions::new("/k");
        o.control_dir = Some(tmp.path().join("x".repeat(80)));
        let e = Ssh::new(o, Dialer::default(), vec![]).unwrap_err();
        assert!(e.to_string().contains("Unix socket paths"), "{e}");
    }
}
