//! The control API under `/_sim/`: counters, faults and state, for tests and benches.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::faults::{FaultConfig, Injector};
use super::{Counters, Shared, World, lock};

fn json_resp<T: serde::Serialize>(v: &T) -> Response {
    axum::Json(serde_json::to_value(v).unwrap_or_default()).into_response()
}

fn bad(msg: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({"error": {"code": "json_error", "message": msg}})),
    )
        .into_response()
}

/// Serves one control request (`rest` is the path after `/_sim/`).
pub(crate) async fn handle(
    sh: &Arc<Shared>,
    method: Method,
    rest: String,
    req: Request,
) -> Response {
    let body = axum::body::to_bytes(req.into_body(), 256 << 20)
        .await
        .unwrap_or_default();
    match (method, rest.trim_end_matches('/')) {
        (Method::GET, "counters") => json_resp(&*lock(&sh.counters)),
        (Method::DELETE, "counters") => {
            *lock(&sh.counters) = Counters::default();
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::GET, "faults") => json_resp(&lock(&sh.faults).config),
        (Method::PUT, "faults") => match serde_json::from_slice::<FaultConfig>(&body) {
            Ok(f) => {
                *lock(&sh.faults) = Injector::new(f);
                StatusCode::NO_CONTENT.into_response()
            }
            Err(e) => bad(e.to_string()),
        },
        (Method::GET, "state") => json_resp(&*lock(&sh.world)),
        (Method::PUT, "state") => match serde_json::from_slice::<World>(&body) {
            Ok(mut w) => {
                let mut cur = lock(&sh.world);
                w.action_time = cur.action_time;
                *cur = w;
                StatusCode::NO_CONTENT.into_response()
            }
            Err(e) => bad(e.to_string()),
        },
        _ => (StatusCode::NOT_FOUND, "unknown control endpoint").into_response(),
    }
}
