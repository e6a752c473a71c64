//! The simulator's real data plane: a Debian `haproxy` run in a temp dir, checked with
//! `haproxy -c` before every reload and reloaded seamlessly (`-x <socket> -sf <old pids>`,
//! server state saved first). Every process started here is killed when the data plane is
//! dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Environment variable naming the `haproxy` binary to use instead of the one on `PATH`.
pub const HAPROXY_BIN_ENV: &str = "CAIRN_HAPROXY_BIN";

/// Finds the `haproxy` binary (`CAIRN_HAPROXY_BIN`, else `PATH`, else `/usr/sbin`), or
/// explains how to get one.
pub fn find_haproxy() -> Result<PathBuf, String> {
    locate(
        std::env::var(HAPROXY_BIN_ENV).ok().map(PathBuf::from),
        &std::env::var("PATH").unwrap_or_default(),
    )
}

/// Resolves an explicit binary or searches `path` (a `PATH`-style list).
pub fn locate(explicit: Option<PathBuf>, path: &str) -> Result<PathBuf, String> {
    const HOW: &str = "the pfSense simulator's data plane runs a real HAProxy; install Debian's `haproxy` package (apt-get install haproxy) or set CAIRN_HAPROXY_BIN";
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("haproxy not found at {}: {HOW}", p.display()))
        };
    }
    std::env::split_paths(path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("haproxy not found on PATH or in /usr/sbin: {HOW}"))
}

/// A HAProxy managed by the simulator.
#[derive(Debug)]
pub struct DataPlane {
    dir: PathBuf,
    bin: Result<PathBuf, String>,
    procs: Mutex<Vec<Child>>,
    current: Mutex<Option<u32>>,
    generation: Mutex<u32>,
    reload_lock: tokio::sync::Mutex<()>,
}

impl DataPlane {
    /// A data plane keeping its files in `dir`, running `bin` (found on `PATH` when
    /// `None`); nothing runs until the first reload.
    pub fn new(dir: PathBuf, bin: Option<PathBuf>) -> Self {
        DataPlane {
            dir,
            bin: match bin {
                Some(b) => locate(Some(b), ""),
                None => find_haproxy(),
            },
            procs: Mutex::new(Vec::new()),
            current: Mutex::new(None),
            generation: Mutex::new(0),
            reload_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The admin stats socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("haproxy.socket")
    }

    /// The server-state file.
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("haproxy.state")
    }

    /// The live configuration file.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }

    /// Where candidate configurations are written and checked (like the package's
    /// `/var/etc/haproxy_test/haproxy.cfg`).
    pub fn test_config_file(&self) -> PathBuf {
        self.dir.join("haproxy_test.cfg")
    }

    /// The pid of the HAProxy serving now, if any.
    pub fn current_pid(&self) -> Option<u32> {
        *self.current.lock().expect("pid lock")
    }

    /// Pids of every process started and not yet exited (current and soft-stopping ones).
    pub fn pids(&self) -> Vec<u32> {
        let mut procs = self.procs.lock().expect("procs lock");
        procs.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        procs.iter().map(Child::id).collect()
    }

    fn bin(&self) -> Result<&Path, String> {
        self.bin.as_deref().map_err(Clone::clone)
    }

    /// Runs `haproxy -c` on a candidate configuration; the error is HAProxy's own output.
    pub async fn check(&self, cfg: &str) -> Result<(), String> {
        let bin = self.bin()?.to_path_buf();
        let file = self.test_config_file();
        tokio::fs::write(&file, cfg)
            .await
            .map_err(|e| format!("write {}: {e}", file.display()))?;
        let out = tokio::process::Command::new(bin)
            .arg("-c")
            .arg("-f")
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("run haproxy -c: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&out.stderr).to_string()
                + &String::from_utf8_lossy(&out.stdout);
            let alerts: Vec<&str> = text.lines().filter(|l| l.contains("ALERT")).collect();
            Err(if alerts.is_empty() {
                text.trim().to_string()
            } else {
                alerts.join("\n")
            })
        }
    }

    /// Checks `cfg`, saves the server state, and starts a new HAProxy that takes the
    /// listeners over from the running one (`-x`) and soft-stops it (`-sf`). On any error
    /// the running HAProxy keeps serving the previous configuration.
    pub async fn reload(&self, cfg: &str) -> Result<(), String> {
        let _guard = self.reload_lock.lock().await;
        self.check(cfg).await?;
        let bin = self.bin()?.to_path_buf();
        let old = self.pids();
        let running = self.current_pid().filter(|p| old.contains(p));
        if running.is_some() {
            match self.runtime("show servers state").await {
                Ok(state) => tokio::fs::write(self.state_file(), state)
                    .await
                    .map_err(|e| format!("write server state: {e}"))?,
                Err(e) => tracing::warn!("could not save server state before reload: {e}"),
            }
        }
        tokio::fs::write(self.config_file(), cfg)
            .await
            .map_err(|e| format!("write haproxy.cfg: {e}"))?;
        let generation = {
            let mut g = self.generation.lock().expect("generation lock");
            *g += 1;
            *g
        };
        let log_path = self.dir.join(format!("haproxy.{generation}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| format!("create log: {e}"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("-f")
            .arg(self.config_file())
            .arg("-p")
            .arg(self.dir.join("haproxy.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if running.is_some() {
            cmd.arg("-x").arg(self.socket());
        }
        die_with_parent(&mut cmd);
        if !old.is_empty() {
            cmd.arg("-sf").args(old.iter().map(u32::to_string));
        }
        let child = cmd.spawn().map_err(|e| format!("start haproxy: {e}"))?;
        let pid = child.id();
        self.procs.lock().expect("procs lock").push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(info) = self.runtime("show info").await
                && info.lines().any(|l| l.trim() == format!("Pid: {pid}"))
            {
                break;
            }
            let exited = {
                let mut procs = self.procs.lock().expect("procs lock");
                procs
                    .iter_mut()
                    .find(|c| c.id() == pid)
                    .map(|c| c.try_wait())
            };
            if let Some(Ok(Some(status))) = exited {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!(
                    "haproxy exited at start ({status}): {}",
                    log.trim()
                ));
            }
            if Instant::now() > deadline {
                return Err("haproxy did not answer on its stats socket within 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        *self.current.lock().expect("pid lock") = Some(pid);
        tracing::debug!(pid, generation, "haproxy reloaded");
        Ok(())
    }

    /// Sends one command to the stats socket and returns the answer.
    pub async fn runtime(&self, cmd: &str) -> Result<String, String> {
        let socket = self.socket();
        let work = async {
            let mut stream = UnixStream::connect(&socket).await?;
            stream.write_all(format!("{cmd}\n").as_bytes()).await?;
            let mut out = String::new();
            stream.read_to_string(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        match tokio::time::timeout(Duration::from_secs(5), work).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(format!(
                "HAProxy stats socket {}: {e} (is HAProxy running? apply a configuration first)",
                socket.display()
            )),
            Err(_) => Err("HAProxy stats socket did not answer within 5 s".into()),
        }
    }

    /// Kills every process this data plane started and reaps them.
    pub fn stop_all(&self) {
        let mut procs = self.procs.lock().unwrap_or_else(|p| p.into_inner());
        for child in procs.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        procs.clear();
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// Makes the child get SIGKILL when the thread that started it dies, so a simulator killed
/// without unwinding (SIGKILL, abort) leaves no HAProxy behind. Drop covers the rest.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
    // async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

impl Drop for DataPlane {
    fn drop(&mut self) {
        self.stop_all();
    }
}
