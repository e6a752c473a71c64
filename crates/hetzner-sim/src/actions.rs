//! `/actions`: `GET /actions/{id}` and the batch `GET /actions?id=…&id=…`, plus the
//! per-resource `GET /{kind}/{id}/actions` lists.

use axum::http::Method;
use serde_json::{Value, json};

use super::http::{ApiErr, ApiResult, Query, list, reply};
use super::world::World;
use crate::routes::Routes;

/// The routes of `/actions`.
pub(crate) fn routes(routes: Routes) -> Routes {
    routes
        .route("/actions", Method::GET, |w, r| {
            let ids: Vec<u64> =
                r.q.all("id")
                    .iter()
                    .filter_map(|s| s.parse().ok())
                    .collect();
            if ids.is_empty() {
                return Err(ApiErr::invalid(vec![(
                    "id".into(),
                    "at least one id is required".into(),
                )]));
            }
            let items = ids
                .iter()
                .filter_map(|i| w.actions.get(i))
                .map(|a| a.render())
                .collect();
            filtered(items, "/v1/actions", &r.q)
        })
        .route("/actions/{id}", Method::GET, |w, r| {
            let id = &r.param("id");
            let a = id
                .parse::<u64>()
                .ok()
                .and_then(|i| w.actions.get(&i))
                .ok_or_else(|| ApiErr::not_found("action"))?;
            reply(200, json!({"action": a.render()}))
        })
}

fn filtered(mut items: Vec<Value>, path: &str, q: &Query) -> ApiResult {
    let st = q.all("status");
    if !st.is_empty() {
        items.retain(|a| st.contains(&a["status"].as_str().unwrap_or("")));
    }
    list("actions", path, items, q, &[])
}

/// `GET /{kind}/{id}/actions`.
pub fn list_for(w: &World, id: u64, typ: &str, q: &Query) -> ApiResult {
    let items = w
        .actions
        .values()
        .filter(|a| a.resources.iter().any(|(i, t)| *i == id && t == typ))
        .map(|a| a.render())
        .collect();
    filtered(items, &format!("/v1/{typ}s/{id}/actions"), q)
}
