//! Runs the official Python `hcloud` library (unmodified, only `api_endpoint` changed)
//! against the simulator: servers, networks, load balancers, firewalls, zones and rrsets.

use std::path::PathBuf;
use std::time::Duration;

use cairn_hetzner_sim::{HetznerSim, SimConfig};

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("CAIRN_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let ws = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = ws.join(".venv/bin/python");
    assert!(
        p.exists(),
        "no Python interpreter with the `hcloud` library at {} and CAIRN_TEST_PYTHON is unset: run `scripts/test.sh` (it creates the venv) or point CAIRN_TEST_PYTHON at a python with `hcloud` installed",
        p.display()
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_hcloud_client_works_against_the_simulator() {
    let py = python();
    let sim = HetznerSim::start(SimConfig {
        action_time: Duration::from_millis(50),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/official_client.py");
    let out = tokio::process::Command::new(&py)
        .arg(&script)
        .env("HCLOUD_TOKEN", &sim.token)
        .env("HCLOUD_ENDPOINT", &sim.endpoint)
        .env("NO_PROXY", "*")
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'hcloud'"),
        "{} has no `hcloud` library: run `scripts/test.sh` (it creates the venv) or point CAIRN_TEST_PYTHON at a python with `hcloud` installed",
        py.display()
    );
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "python client failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let c = sim.counters();
    assert!(
        c.matching("GET /v1/actions") > 0,
        "actions were polled: {:?}",
        c.requests
    );
    assert!(
        c.requests
            .contains_key("POST /v1/load_balancers/{id}/actions/add_target")
    );
    assert!(
        c.requests
            .contains_key("POST /v1/zones/{id_or_name}/rrsets/{name}/{type}/actions/set_records")
    );
}
