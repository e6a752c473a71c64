//! The simulator's control API under `/_sim/` (same authentication as the REST API):
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | `/_sim/counters` | `{"requests": {"GET /api/v2/…": n}, "writes": n}` |
//! | POST | `/_sim/counters/reset` | zero the counters |
//! | GET | `/_sim/faults` | the injected faults |
//! | PUT | `/_sim/faults` | replace them: `[{"method"?, "path_prefix", "status", "response_id"?, "latency_ms"?, "remaining"?}]` |
//! | GET | `/_sim/state` | dump the configuration and dirty flags |
//! | PUT | `/_sim/state` | load a dump (every subsystem is marked dirty; apply to take effect) |
//! | GET | `/_sim/haproxy` | the live `haproxy.cfg`, pids, last apply error |

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::SimState;
use super::api::envelope;
use super::model::Subsystem;
use super::world::{Fault, World};

/// The `/_sim` routes.
pub fn routes() -> Router<Arc<SimState>> {
    Router::new()
        .route("/_sim/counters", get(counters))
        .route("/_sim/counters/reset", post(reset_counters))
        .route("/_sim/faults", get(faults).put(set_faults))
        .route("/_sim/state", get(dump).put(load))
        .route("/_sim/haproxy", get(haproxy))
}

fn denied() -> Response {
    envelope(
        401,
        "AUTH_AUTHENTICATION_FAILED",
        "Authentication failed.",
        json!([]),
    )
}

async fn counters(State(st): State<Arc<SimState>>, h: HeaderMap) -> Response {
    if !st.authorized(&h) {
        return denied();
    }
    Json(st.counters.lock().expect("counters").clone()).into_response()
}

async fn reset_counters(State(st): State<Arc<SimState>>, h: HeaderMap) -> Response {
    if !st.authorized(&h) {
        return denied();
    }
    *st.counters.lock().expect("counters") = Default::default();
    Json(json!({"reset": true})).into_response()
}

async fn faults(State(st): State<Arc<SimState>>, h: HeaderMap) -> Response {
    if !st.authorized(&h) {
        return denied();
    }
    Json(st.faults.lock().expect("faults").clone()).into_response()
}

async fn set_faults(
    State(st): State<Arc<SimState>>,
    h: HeaderMap,
    Json(f): Json<Vec<Fault>>,
) -> Response {
    if !st.authorized(&h) {
        return denied();
    }
    *st.faults.lock().expect("faults") = f.clone();
    Json(f).into_response()
}

async fn dump(State(st): State<Arc<SimState>>, h: HeaderMap) -> Response {
    if !st.authorized(&h) {
        return denied();
    }
    Json(st.world.lock().expect("world").clone()).into_response()
}

async fn load(State(st): State<Arc<SimState>>, h: HeaderMap, Json(w): Json<World>) -> Response {
    if !st.authorized(&h) {
        return denied();
    }
    let mut world = st.world.lock().expect("world");
    *world = w;
    for s in [
        Subsystem::Haproxy,
        Subsystem::VirtualIp,
        Subsystem::DnsResolver,
        Subsystem::Firewall,
    ] {
        world.set_dirty(s, true);
    }
    Json(json!({"loaded": true})).into_response()
}

async fn haproxy(State(st): State<Arc<SimState>>, h: HeaderMap) -> Response {
    if !st.authorized(&h) {
        return denied();
    }
    let config = std::fs::read_to_string(st.dataplane.config_file()).unwrap_or_default();
    Json(json!({
        "config": config,
        "pids": st.dataplane.pids(),
        "current_pid": st.dataplane.current_pid(),
        "last_apply_error": st.last_apply_error.lock().expect("err").clone(),
    }))
    .into_response()
}
