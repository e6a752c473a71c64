//! `/apis/apps/v1`: Deployments (list and get) with their status from their pods.

use axum::body::Body;
use axum::http::{Method, Response};

use super::{Req, json_response, list, method_not_allowed, not_found};
use crate::workload::deployment_json;
use crate::world_state::World;

/// Serves `/apis/apps/v1/<rest>`.
pub(super) fn handle(
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
        wl.deployments
            .iter()
            .filter(|((dns, _), _)| ns.is_none_or(|ns| ns == dns))
            .map(|((dns, name), d)| deployment_json(wl, dns, name, d, rv))
            .filter(|v| req.selects(v))
            .collect()
    };
    match rest {
        ["deployments"] => list("apps/v1", "DeploymentList", rv, items(None)),
        ["namespaces", ns, "deployments"] => list("apps/v1", "DeploymentList", rv, items(Some(ns))),
        ["namespaces", ns, "deployments", name] => {
            match wl.deployments.get(&(ns.to_string(), name.to_string())) {
                Some(d) => json_response(200, &deployment_json(wl, ns, name, d, rv)),
                None => not_found("deployments.apps", name),
            }
        }
        _ => super::no_resource(),
    }
}
