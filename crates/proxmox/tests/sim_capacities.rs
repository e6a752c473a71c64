//! Node capacities set through `/_sim/capacities`: a start that needs more vCPUs or memory
//! than the node has fails its task as Proxmox does (running VMs may add up to more memory
//! than the host has, as Linux overcommits), and a bench can add nodes.

use std::time::Duration;

use cairn_core::tls::{TlsTrust, client_config};
use cairn_proxmox_sim::{ProxmoxSim, SimConfig, SimHandle};
use serde_json::{Value, json};

struct Api {
    sim: SimHandle,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        let sim = ProxmoxSim::start(SimConfig {
            task_duration: Duration::from_millis(20),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let tls = client_config(&TlsTrust::Fingerprint(sim.fingerprint.clone().unwrap())).unwrap();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .build()
            .unwrap();
        Api { sim, http }
    }

    async fn set_capacities(&self, body: Value) -> (u16, Value) {
        let r = self
            .http
            .put(format!("{}/_sim/capacities", self.sim.endpoint))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> Value {
        self.http
            .request(method, format!("{}/api2/json{path}", self.sim.endpoint))
            .header("Authorization", format!("PVEAPIToken={}", self.sim.token))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["data"]
            .clone()
    }

    /// Runs a power action on VM `vmid` of `pve` and returns the finished task's status and log.
    async fn power(&self, vmid: u32, action: &str) -> (String, String) {
        let path = format!("/nodes/pve/qemu/{vmid}/status/{action}");
        let upid = self.call(reqwest::Method::POST, &path).await;
        let upid = upid.as_str().unwrap().to_string();
        for _ in 0..400 {
            let st = self
                .call(
                    reqwest::Method::GET,
                    &format!("/nodes/pve/tasks/{upid}/status"),
                )
                .await;
            if st["status"] == "stopped" {
                let log = self
                    .call(
                        reqwest::Method::GET,
                        &format!("/nodes/pve/tasks/{upid}/log"),
                    )
                    .await;
                let log: Vec<&str> = log
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|l| l["t"].as_str())
                    .collect();
                return (
                    st["exitstatus"].as_str().unwrap().to_string(),
                    log.join("\n"),
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("task {upid} never finished");
    }
}

#[tokio::test]
async fn a_start_needing_more_vcpus_than_the_node_set_through_sim_has_fails_its_task() {
    let api = Api::start().await;
    assert_eq!(api.power(200, "stop").await.0, "OK");
    let (s, caps) = api
        .set_capacities(json!({"nodes": {"pve": {"cpus": 4}}}))
        .await;
    assert_eq!(s, 200, "{caps}");
    assert_eq!(caps["nodes"]["pve"]["cpus"], 4, "{caps}");

    let (status, _) = api.power(200, "start").await;

    assert_eq!(status, "MAX 4 vcpus allowed per VM on this node");
    assert!(
        !api.sim.world().vms[&200].running,
        "the 8-core VM did not start"
    );
}

#[tokio::test]
async fn a_start_needing_more_memory_than_the_node_has_fails_and_fits_once_raised() {
    let api = Api::start().await;
    assert_eq!(api.power(200, "stop").await.0, "OK");
    // VM 200 has 32 GiB; the node is made smaller than that.
    let gib = 1u64 << 30;
    let (s, caps) = api
        .set_capacities(json!({"nodes": {"pve": {"memory_total": 16 * gib}}}))
        .await;
    assert_eq!(s, 200, "{caps}");

    let (status, log) = api.power(200, "start").await;
    assert_eq!(status, "start failed: QEMU exited with code 1");
    assert!(log.contains("Cannot allocate memory"), "{log}");
    assert!(!api.sim.world().vms[&200].running);

    api.set_capacities(json!({"nodes": {"pve": {"memory_total": 32 * gib}}}))
        .await;
    assert_eq!(api.power(200, "start").await.0, "OK");
    assert!(api.sim.world().vms[&200].running);
}

#[tokio::test]
async fn capacities_add_nodes_and_refuse_what_they_do_not_know() {
    let api = Api::start().await;
    let (s, _) = api
        .set_capacities(json!({"nodes": {"pve2": {"memory_total": 1u64 << 40, "cpus": 64}}}))
        .await;
    assert_eq!(s, 200);
    let nodes = api.call(reqwest::Method::GET, "/nodes").await;
    let names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["node"].as_str())
        .collect();
    assert!(names.contains(&"pve2"), "{nodes}");
    let (s, _) = api.set_capacities(json!({"storage": 1})).await;
    assert_eq!(s, 400);
    let (s, _) = api
        .set_capacities(json!({"nodes": {"pve3": {"cpus": 2}}}))
        .await;
    assert_eq!(s, 400, "a new node needs its memory too");
}
