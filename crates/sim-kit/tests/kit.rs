//! The kit's contract, through a toy simulator: one `/_sim/` API (counters, faults, state,
//! reset, capacities), one fault layer, one handle with `env()` that stops the server on drop.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::Method;
use axum::response::IntoResponse;
use cairn_sim_kit::{Fault, FaultConfig, FaultRule, Injected, Kit, Route, Simulator, Spec};
use serde_json::{Value, json};

/// A counter simulator: `POST /api/bump` adds one, `GET /api/value` reads it.
#[derive(Default)]
struct Toy {
    value: Mutex<u64>,
    limit: Mutex<u64>,
}

impl Simulator for Toy {
    fn route(&self, method: &Method, path: &str) -> Option<Route> {
        path.starts_with("/api/").then(|| Route::new(method, path))
    }
    fn dump_state(&self) -> Value {
        json!({"value": *self.value.lock().unwrap()})
    }
    fn load_state(&self, state: Value) -> Result<(), String> {
        *self.value.lock().unwrap() = state["value"].as_u64().ok_or("value must be a number")?;
        Ok(())
    }
    fn reset(&self) {
        *self.value.lock().unwrap() = 0;
        *self.limit.lock().unwrap() = 10;
    }
    fn capacities(&self) -> Value {
        json!({"limit": *self.limit.lock().unwrap()})
    }
    fn set_capacities(&self, changes: Value) -> Result<(), String> {
        if let Some(l) = changes.get("limit") {
            *self.limit.lock().unwrap() = l.as_u64().ok_or("limit must be a number")?;
        }
        Ok(())
    }
}

async fn api(
    State(toy): State<Arc<Toy>>,
    method: Method,
    injected: Option<axum::Extension<Injected>>,
) -> axum::response::Response {
    if let Some(axum::Extension(Injected(name))) = injected {
        return (axum::http::StatusCode::IM_A_TEAPOT, name).into_response();
    }
    let mut v = toy.value.lock().unwrap();
    if method == Method::POST {
        *v += 1;
    }
    axum::Json(json!({"value": *v})).into_response()
}

async fn start() -> cairn_sim_kit::SimHandle<Toy> {
    let toy = Arc::new(Toy {
        value: Mutex::new(0),
        limit: Mutex::new(10),
    });
    let api = axum::Router::new().fallback(api).with_state(toy.clone());
    let h = cairn_sim_kit::start(
        Kit::default(),
        toy,
        Spec {
            name: "toy",
            tls: None,
            base_path: "/api",
            token: "t0ken".into(),
            basic_auth: None,
            api,
            control: axum::Router::new(),
        },
    )
    .await
    .unwrap();
    let env = [("TOY_URL", h.endpoint.clone())];
    h.with_env(env)
}

#[tokio::test]
async fn control_api_counts_dumps_loads_resets_and_sets_capacities() {
    let sim = start().await;
    let http = reqwest::Client::new();
    let root = sim.root_url();
    assert_eq!(sim.env()["TOY_URL"], format!("{root}/api"));
    http.post(format!("{root}/api/bump")).send().await.unwrap();
    http.get(format!("{root}/api/value")).send().await.unwrap();
    let c: Value = http
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
    assert_eq!(c["requests"]["POST /api/bump"], 1);
    let state: Value = http
        .get(format!("{root}/_sim/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state, json!({"value": 1}));
    let r = http
        .put(format!("{root}/_sim/state"))
        .json(&json!({"value": 41}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(sim.dump_state(), json!({"value": 41}));
    let bad = http
        .put(format!("{root}/_sim/state"))
        .json(&json!({"value": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let caps: Value = http
        .put(format!("{root}/_sim/capacities"))
        .json(&json!({"limit": 10000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(caps, json!({"limit": 10000}));

    let r = http
        .post(format!("{root}/_sim/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(sim.dump_state(), json!({"value": 0}));
    assert_eq!(sim.capacities(), json!({"limit": 10}));
    assert!(sim.counters().is_empty(), "reset zeroes the counters");
    let unknown = http.get(format!("{root}/_sim/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(
        sim.counters().is_empty(),
        "control requests are never counted"
    );
}

#[tokio::test]
async fn fault_layer_injects_errors_resets_drops_latency_and_simulator_faults() {
    let sim = start().await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", sim.endpoint);
    let rule = |fault: Option<Fault>, latency_ms: u64| FaultRule {
        methods: vec!["POST".into()],
        path_prefix: "/api/bump".into(),
        remaining: Some(1),
        latency_ms,
        fault,
        ..FaultRule::default()
    };
    sim.set_faults(FaultConfig {
        rules: vec![
            rule(Some(Fault::error(503, json!({"error": "busy"}))), 0),
            rule(Some(Fault::Reset), 0),
            rule(Some(Fault::Drop), 0),
            rule(Some(Fault::sim("teapot")), 0),
            rule(None, 300),
        ],
        ..FaultConfig::default()
    });
    let r = http.post(url("/bump")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "busy");
    let reset = http.post(url("/bump")).send().await;
    assert!(
        reset.is_err() || reset.unwrap().bytes().await.is_err(),
        "a reset connection gives no body"
    );
    assert_eq!(sim.dump_state(), json!({"value": 0}), "neither was served");
    let dropped = http.post(url("/bump")).send().await;
    assert!(dropped.is_err() || dropped.unwrap().bytes().await.is_err());
    assert_eq!(sim.dump_state(), json!({"value": 1}), "a drop is served");
    let r = http.post(url("/bump")).send().await.unwrap();
    assert_eq!(r.status(), 418, "the simulator saw its own fault");
    assert_eq!(r.text().await.unwrap(), "teapot");
    let t = Instant::now();
    let r = http.post(url("/bump")).send().await.unwrap();
    assert!(r.status().is_success() && t.elapsed() >= Duration::from_millis(300));
    let faults = sim.counters().faults;
    for name in ["error", "reset", "drop", "teapot"] {
        assert_eq!(faults.get(name), Some(&1), "{name}: {faults:?}");
    }
    // The same seed and requests give the same faults.
    let mut runs = Vec::new();
    for _ in 0..2 {
        sim.set_faults(FaultConfig {
            seed: 9,
            rate: 0.5,
            kinds: vec![Fault::error(500, Value::Null)],
            ..FaultConfig::default()
        });
        let mut out = Vec::new();
        for _ in 0..20 {
            out.push(
                http.get(url("/value"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16(),
            );
        }
        runs.push(out);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&500) && runs[0].contains(&200),
        "{:?}",
        runs[0]
    );
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let sim = start().await;
    let url = format!("{}/value", sim.endpoint);
    assert!(reqwest::get(&url).await.is_ok());
    drop(sim);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        reqwest::get(&url).await.is_err(),
        "still serving after drop"
    );
}
