//! The official Python client `proxmoxer`, unmodified, against the simulator: token auth
//! with TLS verification off and on (the simulator's certificate as CA bundle), clone,
//! cloud-init config, resize, start, its task helper, and cluster resources.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cairn_proxmox_sim::{ProxmoxSim, SimConfig};

/// The interpreter with proxmoxer: `CAIRN_TEST_PYTHON`, else `<workspace>/.venv/bin/python`.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("CAIRN_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with proxmoxer at {} (and CAIRN_TEST_PYTHON unset): run scripts/test.sh, which creates the venv",
        venv.display()
    );
    venv
}

/// Runs the flow; `ca` overrides the CA bundle (default: the simulator's certificate).
/// Returns whether it passed, its stdout and stderr, and the request counters.
async fn flow(verify: bool, ca: Option<String>) -> (bool, String, String, SimHandleCounters) {
    let sim = ProxmoxSim::start(SimConfig {
        task_duration: Duration::from_millis(60),
        clone_duration: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        ca_path(&dir),
        ca.as_deref().unwrap_or(sim.cert_pem.as_deref().unwrap()),
    )
    .unwrap();
    let ca = ca_path(&dir);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/proxmoxer_flow.py");
    let mut cmd = Command::new(python());
    cmd.arg(&script)
        .env("PVE_HOST", "127.0.0.1")
        .env("PVE_PORT", sim.addr.port().to_string())
        .env("PVE_TOKEN", &sim.token)
        .env("PVE_PASSWORD", &sim.basic_auth.as_ref().unwrap().1)
        .env("PVE_VERIFY", if verify { "1" } else { "0" })
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("NO_PROXY", "*")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let ok = out.status.success() && stdout.contains("PROXMOXER OK");
    (ok, stdout, stderr, sim.counters())
}

type SimHandleCounters = cairn_proxmox_sim::Counters;

fn ca_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("ca.pem")
}

async fn run_flow(verify: bool) {
    let (ok, stdout, stderr, counters) = flow(verify, None).await;
    assert!(
        ok,
        "proxmoxer flow failed (verify={verify})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(
        counters["POST /nodes/{node}/qemu/{vmid}/clone"], 1,
        "{counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_runs_unmodified_with_tls_verification_off() {
    run_flow(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_runs_unmodified_trusting_the_simulator_certificate() {
    run_flow(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxmoxer_with_verification_on_refuses_a_certificate_it_does_not_trust() {
    // Another self-signed certificate as the only trusted CA: the handshake must fail.
    let other = cairn_core::tls::SelfSigned::generate(&[]).cert_pem;
    let (ok, _stdout, stderr, counters) = flow(true, Some(other)).await;
    assert!(!ok, "verification was not enforced");
    assert!(stderr.contains("CERTIFICATE_VERIFY_FAILED"), "{stderr}");
    assert!(
        counters.is_empty(),
        "no request reached the API: {counters:?}"
    );
}
