//! `/api/v1/pods` and `/api/v1/namespaces/<ns>/pods[/<name>]`: kubeadm's etcd static pods
//! (mirror pods, `kube-system`) and the workload's pods, with label and field selectors.

use axum::body::Body;
use axum::http::{Method, Response};
use serde_json::Value;

use super::{Req, json_response, list, method_not_allowed, not_found};
use crate::cluster::etcd_pod_json;
use crate::workload::pod_json;
use crate::world_state::World;

/// Every pod of the cluster, in namespace `ns` when given.
fn all(w: &World, cluster: usize, ns: Option<&str>, rv: u64) -> Vec<Value> {
    let c = &w.clusters[cluster];
    let mut items: Vec<Value> = Vec::new();
    if ns.is_none_or(|ns| ns == "kube-system") {
        items.extend(
            c.nodes
                .iter()
                .filter(|(_, r)| r.control_plane && r.k3s.is_none())
                .map(|(n, r)| etcd_pod_json(n, r, &w.live(&r.host), rv)),
        );
    }
    let wl = &c.workloads;
    items.extend(
        wl.pods
            .iter()
            .filter(|((pns, _), _)| ns.is_none_or(|ns| ns == pns))
            .map(|((pns, name), p)| pod_json(wl, pns, name, p, rv)),
    );
    items
}

/// `GET` of a pod list.
pub(super) fn list_pods(
    w: &World,
    cluster: usize,
    ns: Option<&str>,
    req: &Req<'_>,
    rv: u64,
) -> Response<Body> {
    if *req.method != Method::GET {
        return method_not_allowed();
    }
    let items = all(w, cluster, ns, rv)
        .into_iter()
        .filter(|v| req.selects(v))
        .collect();
    list("v1", "PodList", rv, items)
}

/// `GET` of one pod.
pub(super) fn get(
    w: &World,
    cluster: usize,
    ns: &str,
    name: &str,
    req: &Req<'_>,
    rv: u64,
) -> Response<Body> {
    if *req.method != Method::GET {
        return method_not_allowed();
    }
    match all(w, cluster, Some(ns), rv)
        .into_iter()
        .find(|v| v["metadata"]["name"] == name)
    {
        Some(v) => json_response(200, &v),
        None => not_found("pods", name),
    }
}
