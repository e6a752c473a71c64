//! This simulator's own control route under `/_sim/` (the rest is the kit's, see
//! `cairn_sim_kit`), with the same authentication as the REST API:
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | `/_sim/haproxy` | the live `haproxy.cfg`, pids, current pid, last apply error |

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::SimState;
use super::api::envelope;

/// The extra `/_sim` routes (relative to `/_sim`).
pub fn routes(state: Arc<SimState>) -> Router {
    Router::new()
        .route("/haproxy", get(haproxy))
        .with_state(state)
}

async fn haproxy(State(st): State<Arc<SimState>>, h: HeaderMap) -> Response {
    if !st.authorized(&h) {
        return envelope(
            401,
            "AUTH_AUTHENTICATION_FAILED",
            "Authentication failed.",
            json!([]),
        );
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
