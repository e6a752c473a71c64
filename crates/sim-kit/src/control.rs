//! The control API every simulator serves under `/_sim/` (see the crate docs for the table).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::{FaultConfig, Shared};

/// The `/_sim/` routes (relative paths, nested under `/_sim` by [`crate::start`]).
pub(crate) fn routes(sh: Shared) -> Router {
    Router::new()
        .route("/counters", get(counters).delete(reset_counters))
        .route("/faults", get(faults).put(set_faults))
        .route("/state", get(dump).put(load))
        .route("/reset", post(reset))
        .route("/capacities", get(capacities).put(set_capacities))
        .fallback(unknown)
        .with_state(sh)
}

/// A control-API error: `{"error": {"code", "message"}}`.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"code": code, "message": message.into()}});
    (status, axum::Json(body)).into_response()
}

fn denied() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this simulator's control API needs its API credentials",
    )
}

/// A request body as JSON of type `T`, or the 400 that says why not.
fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes, code: &str) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("{code}: {e}"))
}

fn bad_request(why: String) -> Response {
    let (code, message) = why.split_once(": ").unwrap_or(("json_error", &why));
    error(StatusCode::BAD_REQUEST, code, message)
}

async fn unknown() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "unknown control endpoint",
    )
}

async fn counters(State(sh): State<Shared>, h: HeaderMap) -> Response {
    if !sh.sim.control_allowed(&h) {
        return denied();
    }
    axum::Json(sh.kit.counters()).into_response()
}

async fn reset_counters(State(sh): State<Shared>, h: HeaderMap) -> Response {
    if !sh.sim.control_allowed(&h) {
        return denied();
    }
    sh.kit.reset_counters();
    StatusCode::NO_CONTENT.into_response()
}

/// The full fault settings: the kit's part plus the simulator's own under `sim`.
pub(crate) fn current_faults(sh: &Shared) -> FaultConfig {
    let mut f = sh.kit.faults();
    f.sim = sh.sim.sim_faults();
    f
}

/// Replaces the fault settings (the simulator's part first, so a bad one changes nothing).
pub(crate) fn apply_faults(sh: &Shared, f: FaultConfig) -> Result<(), String> {
    sh.sim.set_sim_faults(f.sim.clone())?;
    sh.kit.set_faults(f);
    Ok(())
}

async fn faults(State(sh): State<Shared>, h: HeaderMap) -> Response {
    if !sh.sim.control_allowed(&h) {
        return denied();
    }
    axum::Json(current_faults(&sh)).into_response()
}

async fn set_faults(State(sh): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    if !sh.sim.control_allowed(&h) {
        return denied();
    }
    let f = match json_body::<FaultConfig>(&body, "invalid_faults") {
        Ok(f) => f,
        Err(why) => return bad_request(why),
    };
    match apply_faults(&sh, f) {
        Ok(()) => axum::Json(current_faults(&sh)).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid_faults", e),
    }
}

async fn dump(State(sh): State<Shared>, h: HeaderMap) -> Response {
    if !sh.sim.control_allowed(&h) {
        return denied();
    }
    axum::Json(sh.sim.dump_state()).into_response()
}

async fn load(State(sh): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    if !sh.sim.control_allowed(&h) {
        return denied();
    }
    let v = match json_body::<Value>(&body, "json_error") {
        Ok(v) => v,
        Err(why) => return bad_request(why),
    };
    match sh.sim.load_state(v) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid_state", e),
    }
}

async fn reset(State(sh): State<Shared>, h: HeaderMap) -> Response {
    if !sh.sim.control_allowed(&h) {
        return denied();
    }
    reset_all(&sh);
    StatusCode::NO_CONTENT.into_response()
}

/// Initial state, zeroed counters, no faults, default capacities.
pub(crate) fn reset_all(sh: &Shared) {
    sh.sim.reset();
    sh.kit.set_faults(FaultConfig::default());
    sh.kit.reset_counters();
}

async fn capacities(State(sh): State<Shared>, h: HeaderMap) -> Response {
    if !sh.sim.control_allowed(&h) {
        return denied();
    }
    axum::Json(sh.sim.capacities()).into_response()
}

async fn set_capacities(State(sh): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    if !sh.sim.control_allowed(&h) {
        return denied();
    }
    let v = match json_body::<Value>(&body, "json_error") {
        Ok(v) => v,
        Err(why) => return bad_request(why),
    };
    match sh.sim.set_capacities(v) {
        Ok(()) => axum::Json(sh.sim.capacities()).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid_capacities", e),
    }
}
