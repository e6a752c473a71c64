//! The simulator's own contract, over plain HTTP: auth, envelopes, pagination with `Link`,
//! label selectors and sort, validation errors, locks, the rate-limit budget, seeded
//! fault injection, and the `/_sim/` control API (counters, faults, state).

use std::time::Duration;

use cairn_hetzner_sim::{Capacities, HetznerSim, SimConfig};
use serde_json::{Value, json};

struct H {
    sim: cairn_hetzner_sim::SimHandle,
    http: reqwest::Client,
}

impl H {
    async fn new(cfg: SimConfig) -> H {
        H {
            sim: HetznerSim::start(cfg).await.unwrap(),
            http: reqwest::Client::new(),
        }
    }
    async fn call(
        &self,
        m: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut rb = self
            .http
            .request(m, format!("{}{path}", self.sim.endpoint))
            .bearer_auth(&self.sim.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let s = r.status().as_u16();
        let h = r.headers().clone();
        let t = r.text().await.unwrap();
        (
            s,
            h,
            if t.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&t).unwrap()
            },
        )
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let (s, _, v) = self.call(reqwest::Method::POST, path, Some(body)).await;
        (s, v)
    }
    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }
}

fn server(name: &str, labels: Value) -> Value {
    json!({"name": name, "server_type": "cx22", "image": "debian-12", "labels": labels})
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_unauthorized() {
    let h = H::new(SimConfig::default()).await;
    let r = h
        .http
        .get(format!("{}/servers", h.sim.endpoint))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    let r = h
        .http
        .get(format!("{}/servers", h.sim.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn lists_paginate_with_meta_and_link_and_filter_by_selector_name_and_sort() {
    let h = H::new(SimConfig::default()).await;
    for i in 0..30 {
        let (s, _) = h
            .post(
                "/servers",
                server(
                    &format!("s{i:02}"),
                    json!({"env": if i % 3 == 0 { "prod" } else { "dev" }, "n": i.to_string()}),
                ),
            )
            .await;
        assert_eq!(s, 201);
    }
    let (_, hd, v) = h.get("/servers").await;
    assert_eq!(
        v["servers"].as_array().unwrap().len(),
        25,
        "default per_page is 25"
    );
    assert_eq!(
        v["meta"]["pagination"],
        json!({"page": 1, "per_page": 25, "previous_page": null, "next_page": 2, "last_page": 2, "total_entries": 30})
    );
    let link = hd["link"].to_str().unwrap();
    assert!(
        link.contains("rel=\"next\"") && link.contains("page=2") && link.contains("rel=\"last\""),
        "{link}"
    );
    let (_, _, v) = h.get("/servers?per_page=100").await;
    assert_eq!(
        v["meta"]["pagination"]["per_page"], 50,
        "per_page is capped at 50"
    );
    let (_, _, v) = h
        .get("/servers?label_selector=env%3Dprod%2Cn%20notin%20(0,3)")
        .await;
    let names: Vec<&str> = v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
    let (_, _, v) = h.get("/servers?label_selector=!env").await;
    assert_eq!(v["meta"]["pagination"]["total_entries"], 0);
    let (_, _, v) = h.get("/servers?name=s07").await;
    assert_eq!(v["servers"][0]["name"], "s07");
    assert_eq!(v["servers"].as_array().unwrap().len(), 1);
    let (_, _, v) = h.get("/servers?sort=name:desc&per_page=1").await;
    assert_eq!(v["servers"][0]["name"], "s29");
    let (s, _, v) = h.get("/servers?label_selector=env%20in%20prod").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("invalid_input"))
    );
}

#[tokio::test]
async fn invalid_input_names_fields_and_duplicates_are_uniqueness_errors() {
    let h = H::new(SimConfig::default()).await;
    let (s, v) = h
        .post("/servers", json!({"name": "x", "server_type": "nope"}))
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("invalid_input"))
    );
    let fields: Vec<&str> = v["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["server_type", "image"]);
    assert_eq!(h.post("/servers", server("a", json!({}))).await.0, 201);
    let (s, v) = h.post("/servers", server("a", json!({}))).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("uniqueness_error"))
    );
    assert_eq!(v["error"]["details"]["fields"][0]["name"], "name");
    let (s, v) = h.post("/firewalls", json!({"name": "f", "rules": [{"direction": "in", "protocol": "tcp", "port": "70000", "source_ips": ["0.0.0.0/0"]}]})).await;
    assert_eq!(
        (s, v["error"]["details"]["fields"][0]["name"].as_str()),
        (422, Some("rules[0].port"))
    );
}

#[tokio::test]
async fn actions_run_for_the_configured_time_and_lock_their_resource() {
    let h = H::new(SimConfig {
        action_time: Duration::from_millis(300),
        ..SimConfig::default()
    })
    .await;
    let (_, v) = h.post("/servers", server("a", json!({}))).await;
    let id = v["server"]["id"].as_u64().unwrap();
    let act = v["action"]["id"].as_u64().unwrap();
    assert_eq!(v["action"]["status"], "running");
    assert_eq!(v["server"]["status"], "initializing");
    let (s, v) = h
        .post(&format!("/servers/{id}/actions/poweroff"), json!({}))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (423, Some("locked")));
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (_, _, v) = h.get(&format!("/actions?id={act}&id=999")).await;
    assert_eq!(v["actions"][0]["status"], "success");
    assert_eq!(v["actions"].as_array().unwrap().len(), 1);
    let (s, v) = h
        .post(&format!("/servers/{id}/actions/poweroff"), json!({}))
        .await;
    assert_eq!(s, 201, "{v}");
    let (_, _, v) = h.get(&format!("/servers/{id}")).await;
    assert_eq!(v["server"]["status"], "off");
    let (s, _, v) = h
        .call(reqwest::Method::DELETE, &format!("/servers/{id}"), None)
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (423, Some("locked")),
        "delete waits for the poweroff"
    );
}

#[tokio::test]
async fn rate_limit_headers_count_down_and_an_empty_budget_is_429() {
    let h = H::new(SimConfig {
        capacities: Capacities {
            rate_limit: 3,
            rate_refill_per_sec: 0.0,
            ..Capacities::default()
        },
        ..SimConfig::default()
    })
    .await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let (s, hd, _) = h.get("/servers").await;
        assert_eq!(s, 200);
        assert_eq!(hd["ratelimit-limit"], "3");
        assert!(hd.contains_key("ratelimit-reset"));
        remaining.push(hd["ratelimit-remaining"].to_str().unwrap().to_string());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let (s, _, v) = h.get("/servers").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (429, Some("rate_limit_exceeded"))
    );
}

#[tokio::test]
async fn control_api_reads_counters_sets_faults_and_dumps_and_loads_state() {
    let h = H::new(SimConfig::default()).await;
    let root = h.sim.root_url();
    h.post("/servers", server("a", json!({}))).await;
    h.get("/servers").await;
    let c: Value = h
        .http
        .get(format!("{root}/_sim/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (c["total"].as_u64(), c["writes"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(c["requests"]["POST /v1/servers"], 1);
    assert_eq!(
        h.http
            .delete(format!("{root}/_sim/counters"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        204
    );
    assert_eq!(h.sim.counters().total, 0);

    // Faults: every request answered 503 while the rate is 1; deterministic per seed.
    let f = json!({"seed": 3, "rate": 1.0, "kinds": ["unavailable"], "latency_ms": 0});
    let r = h
        .http
        .put(format!("{root}/_sim/faults"))
        .json(&f)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "PUT answers with the new settings"
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["kinds"],
        json!(["unavailable"])
    );
    let (s, _, v) = h.get("/servers").await;
    assert_eq!((s, v["error"]["code"].as_str()), (503, Some("unavailable")));
    h.http
        .put(format!("{root}/_sim/faults"))
        .json(&json!({"rate": 0.0}))
        .send()
        .await
        .unwrap();

    let state: Value = h
        .http
        .get(format!("{root}/_sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["objects"]["servers"].as_object().unwrap().len(), 1);
    let dir = std::env::temp_dir().join(format!("cairn-hz-fixture-{}.json", std::process::id()));
    std::fs::write(&dir, serde_json::to_vec(&state).unwrap()).unwrap();
    let other = H::new(SimConfig::default().with_fixture_file(&dir).unwrap()).await;
    let _ = std::fs::remove_file(&dir);
    let (_, _, v) = other.get("/servers?name=a").await;
    assert_eq!(v["servers"][0]["name"], "a", "fixture seeds the state");
    let r = h
        .http
        .put(format!("{root}/_sim/state"))
        .json(&json!({"objects": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (_, _, v) = h.get("/servers").await;
    assert_eq!(v["servers"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn lb_target_health_follows_the_server_power_state() {
    let h = H::new(SimConfig {
        action_time: Duration::from_millis(1),
        ..SimConfig::default()
    })
    .await;
    let (_, v) = h.post("/servers", server("w", json!({}))).await;
    let sid = v["server"]["id"].as_u64().unwrap();
    let (s, v) = h
        .post(
            "/load_balancers",
            json!({"name": "lb", "load_balancer_type": "lb11", "location": "fsn1",
        "services": [{"protocol": "tcp", "listen_port": 80, "destination_port": 80}],
        "targets": [{"type": "server", "server": {"id": sid}}]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let lb = v["load_balancer"]["id"].as_u64().unwrap();
    assert!(
        v["load_balancer"]["public_net"]["ipv4"]["ip"]
            .as_str()
            .unwrap()
            .starts_with("203.0.113.")
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let health = |v: &Value| {
        v["load_balancer"]["targets"][0]["health_status"][0]["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        health(&h.get(&format!("/load_balancers/{lb}")).await.2),
        "healthy"
    );
    h.post(&format!("/servers/{sid}/actions/poweroff"), json!({}))
        .await;
    assert_eq!(
        health(&h.get(&format!("/load_balancers/{lb}")).await.2),
        "unhealthy"
    );
}
