//! The official Python client `proxmoxer`, unmodified, against the simulator: token auth
//! with TLS verification off and on (the simulator's certificate as CA bundle), clone,
//! cloud-init config, resize, start, its task helper, and cluster resources.
#![cfg(feature = "sim")]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cairn_proxmox::sim::{ProxmoxSim, SimConfig};

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

async fn run_flow(verify: bool) {
    let sim = ProxmoxSim::start(SimConfig {
        task_duration: Duration::from_millis(60),
        clone_duration: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("sim-ca.pem");
    std::fs::write(&ca, &sim.cert_pem).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/proxmoxer_flow.py");
    let mut cmd = Command::new(python());
    cmd.arg(&script)
        .env("PVE_HOST", "127.0.0.1")
        .env("PVE_PORT", sim.addr.port().to_string())
        .env("PVE_TOKEN", &sim.token)
        .env("PVE_PASSWORD", &sim.password)
        .env("PVE_VERIFY", if verify { "1" } else { "0" })
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("NO_PROXY", "*")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("PROXMOXER OK"),
        "proxmoxer flow failed (verify={verify})\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let counters = sim.counters();
    assert!(
        counters["POST /nodes/{node}/qemu/{vmid}/clone"] == 1,
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
