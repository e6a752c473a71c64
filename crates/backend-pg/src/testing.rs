//! A throwaway PostgreSQL cluster for tests and benches: `initdb` into a temp dir as an
//! unprivileged user (`nobody` when running as root), `postgres` on a free loopback port with
//! its socket in the temp dir, and optionally PgBouncer in transaction mode in front of it.
//! Everything is stopped and deleted on drop. Binaries come from `/usr/lib/postgresql/*/bin`
//! (or `$PG_BIN`) and `pgbouncer` on the `PATH` or in `/usr/sbin`.

use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser's password in test clusters.
pub const PASSWORD: &str = "cairn-test-pw";
const UID: u32 = 65534;
const GID: u32 = 65534;

/// A running throwaway cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    postgres: Option<Child>,
    bouncer: Option<(Child, u16)>,
}

fn pg_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PG_BIN") {
        return p.into();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL is not installed (/usr/lib/postgresql missing): apt-get install postgresql",
        )
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("no /usr/lib/postgresql/*/bin/initdb")
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// `program args…` as the unprivileged user when we are root.
fn unprivileged(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            format!("--reuid={UID}"),
            format!("--regid={GID}"),
            "--clear-groups".into(),
            "--".into(),
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn give(path: &Path) {
    if is_root() {
        std::os::unix::fs::chown(path, Some(UID), Some(GID)).expect("chown to nobody");
    }
}

fn log_file(path: &Path) -> std::fs::File {
    let f = std::fs::File::create(path).expect("log file");
    give(path);
    f
}

impl Cluster {
    /// Starts PostgreSQL only.
    pub fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("cairn-pg-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        give(dir.path());
        let pw = dir.path().join("pw");
        std::fs::write(&pw, PASSWORD).unwrap();
        give(&pw);
        let bin = pg_bin();
        let out = unprivileged(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args([
                "-U",
                "cairn",
                "-A",
                "scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pw.display()))
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut c = Cluster {
            dir,
            bin,
            port: free_port(),
            postgres: None,
            bouncer: None,
        };
        c.start_postgres();
        c
    }

    /// Starts PostgreSQL with PgBouncer in transaction mode in front of it.
    pub fn with_pgbouncer() -> Cluster {
        let mut c = Cluster::start();
        c.start_bouncer();
        c
    }

    fn start_postgres(&mut self) {
        let log = log_file(&self.dir.path().join("postgres.log"));
        let child = unprivileged(&self.bin.join("postgres"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "shared_buffers=16MB",
                "-c",
                "max_connections=120",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.postgres = Some(child);
        let start = Instant::now();
        loop {
            let ok = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres did not become ready: {}",
                std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_bouncer(&mut self) {
        let port = free_port();
        let d = self.dir.path();
        let users = d.join("userlist.txt");
        // The role's SCRAM secret as PostgreSQL stores it, as PgBouncer deployments keep it
        // (or fetch it with `auth_query`): no plain-text password on disk, no key derivation
        // in PgBouncer per login, and PgBouncer logs in to the server with the client's
        // proof (SCRAM pass-through).
        let secret = self.psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'cairn'");
        std::fs::write(&users, format!("\"cairn\" \"{}\"\n", secret.trim())).unwrap();
        give(&users);
        let ini = d.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host=127.0.0.1 port={}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
                 unix_socket_dir =\nauth_type = scram-sha-256\nauth_file = {}\npool_mode = transaction\n\
                 max_client_conn = 200\ndefault_pool_size = 5\nlogfile = {}\n\
                 ignore_startup_parameters = extra_float_digits,options\n",
                self.port,
                users.display(),
                d.join("pgbouncer.log").display()
            ),
        )
        .unwrap();
        give(&ini);
        log_file(&d.join("pgbouncer.log"));
        let program = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("pgbouncer is not installed: apt-get install pgbouncer");
        let child = unprivileged(&program)
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        self.bouncer = Some((child, port));
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "pgbouncer did not start: {}",
                std::fs::read_to_string(d.join("pgbouncer.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url_on(&self, port: u16, password: &str) -> String {
        format!("postgres://cairn:{password}@127.0.0.1:{port}/postgres?sslmode=disable")
    }

    /// The URL of PostgreSQL itself.
    pub fn url(&self) -> String {
        self.url_on(self.port, PASSWORD)
    }

    /// The URL through PgBouncer (panics if it was not started).
    pub fn bouncer_url(&self) -> String {
        self.url_on(self.bouncer.as_ref().expect("no pgbouncer").1, PASSWORD)
    }

    /// PostgreSQL's URL with another password.
    pub fn url_with_password(&self, password: &str) -> String {
        self.url_on(self.port, password)
    }

    /// Stops PostgreSQL (fast shutdown: open connections are cut).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.postgres.take() {
            signal(&child, "INT");
            let _ = child.wait();
        }
    }

    /// Starts PostgreSQL again on the same port, with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.start_postgres();
    }

    /// Runs SQL with `psql` against PostgreSQL directly; returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .arg(self.url())
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.bouncer.take() {
            signal(&child, "INT");
            let _ = child.wait();
        }
        self.stop();
    }
}
