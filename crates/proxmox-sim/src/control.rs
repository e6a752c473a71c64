//! The simulator's control API under `/_sim/`: request counters, fault injection and
//! state dump/load, so tests, benchmarks and people can steer it over HTTP.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Faults, Shared, World};

/// Serves one control request (`rest` is the path after `/_sim/`).
pub(crate) fn handle(shared: &Shared, method: &Method, rest: &str, body: &[u8]) -> Response {
    match (method.as_str(), rest.trim_end_matches('/')) {
        ("GET", "counters") => {
            let c = shared.counters.lock().expect("counters").clone();
            let total: u64 = c.values().sum();
            let writes: u64 = c
                .iter()
                .filter(|(k, _)| !k.starts_with("GET "))
                .map(|(_, n)| n)
                .sum();
            let injected = shared.injected.lock().expect("injected").clone();
            json_ok(json!({"requests": c, "total": total, "writes": writes, "injected": injected}))
        }
        ("DELETE", "counters") => {
            shared.counters.lock().expect("counters").clear();
            json_ok(Value::Null)
        }
        ("GET", "faults") => json_ok(json!(shared.faults())),
        ("PUT", "faults") => match serde_json::from_slice::<Faults>(body) {
            Ok(f) => {
                shared.set_faults(f);
                json_ok(json!(shared.faults()))
            }
            Err(e) => bad(e.to_string()),
        },
        ("GET", "state") => json_ok(json!(*shared.world.lock().expect("world"))),
        ("PUT", "state") => match serde_json::from_slice::<World>(body) {
            Ok(w) => {
                *shared.world.lock().expect("world") = w;
                json_ok(Value::Null)
            }
            Err(e) => bad(e.to_string()),
        },
        _ => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("no control route {method} /_sim/{rest}")})),
        )
            .into_response(),
    }
}

fn json_ok(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

fn bad(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": msg}))).into_response()
}
