//! `/apis/policy/v1`: PodDisruptionBudgets with their status, and the pods' eviction
//! subresource (`POST .../pods/<name>/eviction`), which honours them as the API server
//! does: 201 and the pod goes away, 429 with the `DisruptionBudget` cause, 404.

use axum::body::Body;
use axum::http::{Method, Response};
use serde_json::{Value, json};

use super::{Req, json_response, list, method_not_allowed, not_found};
use crate::cluster::status_json;
use crate::workload::{Evict, pdb_json};
use crate::world_state::World;

/// Serves `/apis/policy/v1/<rest>`.
pub(super) fn pdbs(
    w: &World,
    cluster: usize,
    rest: &[&str],
    req: &Req<'_>,
    rv: u64,
) -> Response<Body> {
    if *req.method != Method::GET {
        return method_not_allowed();
    }
    let wl = &w.clusters[cluster].workloads;
    let items = |ns: Option<&str>| {
        wl.pdbs
            .iter()
            .filter(|((bns, _), _)| ns.is_none_or(|ns| ns == bns))
            .map(|((bns, name), b)| pdb_json(wl, bns, name, b, rv))
            .filter(|v| req.selects(v))
            .collect()
    };
    match rest {
        ["poddisruptionbudgets"] => list("policy/v1", "PodDisruptionBudgetList", rv, items(None)),
        ["namespaces", ns, "poddisruptionbudgets"] => {
            list("policy/v1", "PodDisruptionBudgetList", rv, items(Some(ns)))
        }
        ["namespaces", ns, "poddisruptionbudgets", name] => {
            match wl.pdbs.get(&(ns.to_string(), name.to_string())) {
                Some(b) => json_response(200, &pdb_json(wl, ns, name, b, rv)),
                None => not_found("poddisruptionbudgets.policy", name),
            }
        }
        _ => super::no_resource(),
    }
}

/// `POST /api/v1/namespaces/<ns>/pods/<name>/eviction`.
pub(super) fn evict(
    w: &mut World,
    cluster: usize,
    ns: &str,
    name: &str,
    req: &Req<'_>,
) -> Response<Body> {
    if *req.method != Method::POST {
        return method_not_allowed();
    }
    let body: Value = match serde_json::from_slice(req.body) {
        Ok(v) => v,
        Err(e) => {
            return json_response(
                400,
                &status_json(
                    400,
                    "BadRequest",
                    &format!("error decoding Eviction: {e}"),
                    None,
                ),
            );
        }
    };
    if let Some(n) = body["metadata"]["name"].as_str()
        && n != name
    {
        return json_response(
            400,
            &status_json(
                400,
                "BadRequest",
                "name in URL does not match name in Eviction object",
                None,
            ),
        );
    }
    let (now, grace) = (w.now(), w.timing.termination);
    match w.clusters[cluster].workloads.evict(ns, name, now, grace) {
        Ok(()) => json_response(
            201,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ),
        Err(Evict::NotFound) => not_found("pods", name),
        Err(Evict::Multiple) => json_response(
            500,
            &status_json(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                None,
            ),
        ),
        Err(Evict::Budget {
            pdb,
            desired,
            healthy,
        }) => json_response(
            429,
            &status_json(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
                Some(json!({"causes": [{
                    "reason": "DisruptionBudget",
                    "message": format!("The disruption budget {pdb} needs {desired} healthy pods and has {healthy} currently")
                }]})),
            ),
        ),
    }
}
