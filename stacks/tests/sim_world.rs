//! `stacks sim` as a persistent local world: its environment makes the dialer refuse any
//! non-loopback address, an apply killed midway converges when run again, with no
//! duplicate VM, server or pool member, and a pfSense write left unapplied is drift that
//! `apply` applies (where the stack manages that subsystem; elsewhere only a warning).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_core::gate::{HttpProbe, Probe};
use cairn_core::net::{ADDR_MAP_ENV, Dialer, LOOPBACK_ONLY_ENV};
use cairn_core::tls::{TlsTrust, client_config};

/// A running `stacks sim`, killed on drop.
struct Sim {
    child: Child,
    info: serde_json::Value,
    /// Apply locks of this world's runs (never the source tree).
    state: tempfile::TempDir,
    /// The `stacks sim` process's temp dir (its simulators' scratch dirs): it is killed with
    /// SIGKILL, so this test removes what it leaves, after the kill (fields drop after `drop`).
    _tmp: tempfile::TempDir,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sim {
    /// Starts `stacks sim` on its own loopback range.
    fn start(map: &str) -> Sim {
        let tmp = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_stacks"))
            .arg("sim")
            .env("TMPDIR", tmp.path())
            .env(ADDR_MAP_ENV, map)
            .env("CAIRN_SIM_BOOT_MS", "1500")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let info = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("first line is not JSON ({e}): {line:?}"));
        Sim {
            child,
            info,
            state: tempfile::tempdir().unwrap(),
            _tmp: tmp,
        }
    }

    fn env(&self) -> BTreeMap<String, String> {
        self.info["env"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect()
    }

    fn stacks(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stacks"));
        cmd.args(args)
            .envs(self.env())
            .env("NO_COLOR", "1")
            .env("CAIRN_GATE_TIMEOUT_SECS", "60")
            .env("CAIRN_STATE_DIR", self.state.path())
            .env_remove("CI");
        cmd
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_environment_makes_the_dialer_refuse_unmapped_addresses_without_sending() {
    let sim = Sim::start("10.0.0.0/16=127.45.0.0/16");
    let env = sim.env();
    assert_eq!(env[LOOPBACK_ONLY_ENV], "1");
    let dialer = Dialer::new(
        env[ADDR_MAP_ENV].parse().unwrap(),
        env[LOOPBACK_ONLY_ENV] == "1",
    );
    // Mapped: the VIP is dialled on loopback.
    assert_eq!(
        dialer.resolve("10.0.20.99", 6443).unwrap().to_string(),
        "127.45.20.99:6443"
    );
    // Unmapped private and public addresses are refused before any connection attempt.
    let probe = HttpProbe::get("https://192.168.1.10:6443/readyz", dialer.clone())
        .trust(TlsTrust::Insecure);
    let started = Instant::now();
    let err = probe.check().await.unwrap_err();
    assert!(err.contains("not a loopback address"), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "refusal must not wait on a network"
    );
    assert!(dialer.resolve("203.0.113.9", 443).is_err());
    assert!(
        dialer.resolve("10.1.0.1", 443).is_err(),
        "10.1/16 is outside this world's map"
    );
    // What SSH needs: the identity (with its public half, the new VMs' cloud-init key),
    // the known hosts, and a port map that already holds the masters that do not exist yet.
    let identity = std::path::Path::new(&env["CAIRN_SSH_IDENTITY"]);
    assert!(identity.is_file() && identity.with_extension("pub").is_file());
    assert!(std::path::Path::new(&env["CAIRN_SSH_KNOWN_HOSTS"]).is_file());
    let ports: cairn_core::net::PortMap = env["CAIRN_PORT_MAP"].parse().unwrap();
    for host in ["10.0.20.100", "10.0.20.104", "10.0.20.110", "10.0.20.111"] {
        let to = ports
            .get(format!("{host}:22").parse().unwrap())
            .unwrap_or_else(|| panic!("{host}:22 is not in the port map"));
        assert!(to.ip().is_loopback(), "{to}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_reports_unapplied_pfsense_changes_and_apply_applies_only_the_managed_subsystem() {
    let sim = Sim::start("10.0.0.0/16=127.47.0.0/16");
    let run = |args: &[&str]| {
        let out = sim.stacks(args).output().unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = run(&["--stack", "homelab-ha", "apply", "--yes"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&["--stack", "homelab-ha", "drift"]);
    assert_eq!(code, Some(0), "{text}");

    // Writes nobody applied (what a rejected or interrupted apply leaves behind): one to
    // HAProxy, which the stack manages, one to the firewall, where it declares nothing.
    let pf = &sim.info["pfsense"];
    let url = |path: &str| format!("{}/api/v2{path}", pf["endpoint"].as_str().unwrap());
    let auth = ("X-API-Key", pf["token"].as_str().unwrap().to_string());
    let fp = pf["fingerprint"].as_str();
    let settings = get(&url("/services/haproxy/settings"), auth.clone(), fp).await;
    let maxconn = settings["data"]["maxconn"].clone();
    send(
        reqwest::Method::PATCH,
        &url("/services/haproxy/settings"),
        auth.clone(),
        fp,
        serde_json::json!({ "maxconn": maxconn }),
    )
    .await;
    send(
        reqwest::Method::POST,
        &url("/firewall/alias"),
        auth.clone(),
        fp,
        serde_json::json!({"name": "hand_made", "type": "host", "address": ["10.0.20.5"]}),
    )
    .await;

    let (code, text) = run(&["--stack", "homelab-ha", "drift"]);
    assert_eq!(
        code,
        Some(2),
        "unapplied changes must not read as in sync:\n{text}"
    );
    assert!(text.contains("pfsense_pending.haproxy"), "{text}");
    assert!(
        text.contains("pfSense HAProxy has changes written but not applied"),
        "{text}"
    );
    assert!(
        text.contains("pfSense firewall has changes written but not applied")
            && text.contains("leaves them unapplied"),
        "{text}"
    );
    assert!(!text.contains("pfsense_pending.firewall"), "{text}");

    let (code, text) = run(&["--stack", "homelab-ha", "apply", "--yes"]);
    assert_eq!(code, Some(0), "{text}");
    let applied = |path: &'static str| {
        let (url, auth) = (url(path), auth.clone());
        async move { get(&url, auth, fp).await["data"]["applied"].clone() }
    };
    assert_eq!(applied("/services/haproxy/apply").await, true);
    assert_eq!(
        applied("/firewall/apply").await,
        false,
        "a subsystem the stack declares nothing in was applied"
    );
    let (code, text) = run(&["--stack", "homelab-ha", "drift"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("pfSense firewall has changes"), "{text}");
}

/// Sends a write through a simulator's own API (as someone else would) and checks it was
/// accepted.
async fn send(
    method: reqwest::Method,
    url: &str,
    auth: (&str, String),
    fingerprint: Option<&str>,
    body: serde_json::Value,
) {
    let mut b = reqwest::Client::builder();
    if let Some(fp) = fingerprint {
        b = b.use_preconfigured_tls(client_config(&TlsTrust::Fingerprint(fp.into())).unwrap());
    }
    let resp = b
        .build()
        .unwrap()
        .request(method, url)
        .header(auth.0, auth.1)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
}

/// Lists objects through the simulators' own APIs.
async fn get(url: &str, auth: (&str, String), fingerprint: Option<&str>) -> serde_json::Value {
    let mut b = reqwest::Client::builder();
    if let Some(fp) = fingerprint {
        b = b.use_preconfigured_tls(client_config(&TlsTrust::Fingerprint(fp.into())).unwrap());
    }
    b.build()
        .unwrap()
        .get(url)
        .header(auth.0, auth.1)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_killed_midway_converges_on_the_next_run_without_duplicates() {
    let sim = Sim::start("10.0.0.0/16=127.46.0.0/16");
    let mut first = sim
        .stacks(&["apply", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(first.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        // Midway: the cutover reached the new masters.
        if line.contains("create proxmox_vm.k8s-master-2") {
            break;
        }
    }
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        seen.iter()
            .any(|l| l.contains("create proxmox_vm.k8s-master-2")),
        "apply never got midway: {seen:#?}"
    );

    let second = sim.stacks(&["apply", "--yes"]).output().unwrap();
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&second.stdout),
        String::from_utf8_lossy(&second.stderr)
    );
    let diff = sim.stacks(&["diff"]).output().unwrap();
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );

    let px = &sim.info["proxmox"];
    let vms = get(
        &format!(
            "{}/api2/json/cluster/resources?type=vm",
            px["endpoint"].as_str().unwrap()
        ),
        (
            "Authorization",
            format!("PVEAPIToken={}", px["token"].as_str().unwrap()),
        ),
        px["fingerprint"].as_str(),
    )
    .await;
    for name in ["k8s-master", "k8s-master-2", "k8s-master-3"] {
        let n = vms["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["name"] == name)
            .count();
        assert_eq!(n, 1, "{n} VMs named {name}");
    }
    let pf = &sim.info["pfsense"];
    let pools = get(
        &format!(
            "{}/api/v2/services/haproxy/backends",
            pf["endpoint"].as_str().unwrap()
        ),
        ("X-API-Key", pf["token"].as_str().unwrap().to_string()),
        pf["fingerprint"].as_str(),
    )
    .await;
    let pool = pools["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "apiserver_nodes")
        .expect("pool exists");
    let mut names: Vec<&str> = pool["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["k8s-master", "k8s-master-2", "k8s-master-3"]);
    let hz = &sim.info["hetzner"];
    let servers = get(
        &format!("{}/servers?per_page=50", hz["endpoint"].as_str().unwrap()),
        (
            "Authorization",
            format!("Bearer {}", hz["token"].as_str().unwrap()),
        ),
        None,
    )
    .await;
    let mut names: Vec<&str> = servers["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["k3s-cp2", "k3s-cp3", "k3s-mgr", "k3s-w1", "k3s-w2"]);
}

/// The backups of `/etc/kubernetes/kubelet.conf` on each worker: one per edit.
fn kubelet_backups(sim: &Sim) -> BTreeMap<String, usize> {
    sim.info["nodes"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["name"].as_str().unwrap().starts_with("k8s-worker"))
        .map(|h| {
            let dir = h["etc_kubernetes"].as_str().unwrap();
            let n = std::fs::read_dir(dir)
                .unwrap()
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with("kubelet.conf.cairn-backup-")
                })
                .count();
            (h["name"].as_str().unwrap().to_string(), n)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_killed_in_the_worker_loop_converges_on_rerun_without_moving_a_worker_twice() {
    let sim = Sim::start("10.0.0.0/16=127.47.0.0/16");
    let mut first = sim
        .stacks(&["--stack", "homelab-ha", "apply", "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(first.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        // In the worker loop: worker-1 moved, worker-2 starting.
        if line.contains("node_kubeconfig_server.k8s-worker-2") {
            break;
        }
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(
        seen.iter()
            .any(|l| l.contains("node_kubeconfig_server.k8s-worker-2")),
        "apply never reached the worker loop: {seen:#?}"
    );
    let midway = kubelet_backups(&sim);
    assert_eq!(midway["k8s-worker-1"], 1, "{midway:?}");
    assert_eq!(midway["k8s-worker-4"], 0, "{midway:?}");

    let second = sim
        .stacks(&["--stack", "homelab-ha", "apply", "--yes"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(0), "{out}");
    assert!(
        !out.contains("node_kubeconfig_server.k8s-worker-1"),
        "worker-1 was touched again:\n{out}"
    );
    let diff = sim
        .stacks(&["--stack", "homelab-ha", "diff"])
        .output()
        .unwrap();
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    // Every worker was edited exactly once across both runs.
    let after = kubelet_backups(&sim);
    assert!(after.values().all(|n| *n == 1), "{after:?}");
    assert_eq!(after.len(), 4, "{after:?}");
}
