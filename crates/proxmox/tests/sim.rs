//! The simulator's HTTP behaviour as pveproxy shows it, and its control API under `/_sim/`.

use std::time::Duration;

use cairn_core::tls::{TlsTrust, client_config};
use cairn_proxmox_sim::{ProxmoxSim, SimConfig, SimHandle};
use serde_json::{Value, json};

async fn start() -> (SimHandle, reqwest::Client) {
    let sim = ProxmoxSim::start(SimConfig {
        task_duration: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(
            client_config(&TlsTrust::Fingerprint(sim.fingerprint.clone().unwrap())).unwrap(),
        )
        .no_proxy()
        .build()
        .unwrap();
    (sim, http)
}

fn auth(sim: &SimHandle) -> String {
    format!("PVEAPIToken={}", sim.token)
}

#[tokio::test]
async fn errors_look_like_pveproxy() {
    let (sim, http) = start().await;
    let url = |p: &str| format!("{}{p}", sim.endpoint.clone() + "/api2/json");
    let r = http
        .get(url("/version"))
        .header("Authorization", "PVEAPIToken=root@pam!x=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(url("/nodes/pve/qemu/999/config"))
        .header("Authorization", auth(&sim))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    // The message is the HTTP reason phrase, as pveproxy sends it (proxmoxer shows it).
    let reason = r
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .expect("custom reason phrase");
    assert_eq!(
        reason.as_bytes(),
        b"Configuration file 'nodes/pve/qemu-server/999.conf' does not exist"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"], Value::Null);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Configuration file 'nodes/pve/qemu-server/999.conf' does not exist")
    );
    let r = http
        .get(url("/nodes/pve/nonsense"))
        .header("Authorization", auth(&sim))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    let r = http
        .get(url("/version"))
        .header("Authorization", auth(&sim))
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    let r = http
        .put(url("/nodes/pve/qemu/200/config"))
        .header("Authorization", auth(&sim))
        .form(&[("cores", "many"), ("sshkeys", "ssh-ed25519 AAAA raw")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["errors"]["cores"]
            .as_str()
            .unwrap()
            .contains("type check ('integer') failed")
    );
    assert!(
        body["errors"]["sshkeys"]
            .as_str()
            .unwrap()
            .contains("urlencoded")
    );
    // JSON bodies with real booleans work too; PUT config answers {"data": null}.
    let r = http
        .put(url("/nodes/pve/qemu/200/config"))
        .header("Authorization", auth(&sim))
        .json(&json!({"onboot": false, "tags": "Prod k8s;K8S"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"data": null}));
    let w = sim.world();
    assert_eq!(w.vms[&200].config["onboot"], "0");
    assert_eq!(w.vms[&200].config["tags"], "k8s;prod");
}

#[tokio::test]
async fn tasks_report_exitstatus_only_once_stopped() {
    let (sim, http) = start().await;
    let r: Value = http
        .post(format!(
            "{}/nodes/pve/qemu/200/status/stop",
            sim.endpoint.clone() + "/api2/json"
        ))
        .header("Authorization", auth(&sim))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upid = r["data"].as_str().unwrap().to_string();
    let parts: Vec<&str> = upid.split(':').collect();
    assert_eq!(parts.len(), 9, "{upid}");
    assert_eq!(
        (parts[0], parts[1], parts[5], parts[6]),
        ("UPID", "pve", "qmstop", "200")
    );
    assert!(
        parts[2..5]
            .iter()
            .all(|p| p.len() == 8 && u32::from_str_radix(p, 16).is_ok())
    );
    let status = || async {
        http.get(format!(
            "{}/nodes/pve/tasks/{upid}/status",
            sim.endpoint.clone() + "/api2/json"
        ))
        .header("Authorization", auth(&sim))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["data"]
            .clone()
    };
    let running = status().await;
    assert_eq!(running["status"], "running");
    assert!(running.get("exitstatus").is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let done = status().await;
    assert_eq!(
        (done["status"].as_str(), done["exitstatus"].as_str()),
        (Some("stopped"), Some("OK"))
    );
    assert!(!sim.world().vms[&200].running);
}

#[tokio::test]
async fn control_api_reads_counters_sets_faults_and_dumps_and_loads_state() {
    let (sim, http) = start().await;
    let ctl = |p: &str| format!("{}/_sim/{p}", sim.endpoint);
    http.get(format!(
        "{}/cluster/resources?type=vm",
        sim.endpoint.clone() + "/api2/json"
    ))
    .header("Authorization", auth(&sim))
    .send()
    .await
    .unwrap();
    let c: Value = http
        .get(ctl("counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["requests"]["GET /cluster/resources"], 1);
    assert_eq!(c["writes"], 0);
    let f: Value = http
        .put(ctl("faults"))
        .json(&json!({"seed": 3, "rules": [{"fault": {"status": 500, "reason": "injected"}}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(f["rules"][0]["fault"]["status"], 500);
    let r = http
        .get(format!("{}/version", sim.endpoint.clone() + "/api2/json"))
        .header("Authorization", auth(&sim))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    http.put(ctl("faults"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let mut state: Value = http
        .get(ctl("state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["vms"]["200"]["config"]["name"], "k8s-master");
    state["vms"]["200"]["config"]["name"] = "renamed".into();
    let r = http.put(ctl("state")).json(&state).send().await.unwrap();
    assert!(r.status().is_success());
    assert_eq!(sim.world().vms[&200].config["name"], "renamed");
    http.delete(ctl("counters")).send().await.unwrap();
    assert!(sim.counters().is_empty());
}

#[tokio::test]
async fn unserved_methods_and_paths_are_not_implemented_before_auth_and_still_counted() {
    let (sim, http) = start().await;
    let url = |p: &str| format!("{}/api2/json{p}", sim.endpoint);
    sim.reset_counters();
    // A known path with a method pveproxy does not serve there, even without credentials.
    let r = http.patch(url("/nodes/pve/qemu")).send().await.unwrap();
    assert_eq!(r.status(), 501);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Method 'PATCH /api2/json/nodes/pve/qemu' not implemented"),
        "{body}"
    );
    // A path parameter that is not a VMID fails the parameter check, as pveproxy does.
    let r = http
        .get(url("/nodes/pve/qemu/abc/config"))
        .header("Authorization", auth(&sim))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["errors"]["vmid"].is_string(), "{body}");
    let c = sim.counters();
    assert_eq!(
        c.total, 2,
        "every request reaches the kit's counters: {c:?}"
    );
    assert_eq!(
        c.requests.get("GET /nodes/{node}/qemu/{vmid}/config"),
        Some(&1),
        "{c:?}"
    );
}
