//! `/api/v1/nodes`: list and get; `PATCH` (merge, strategic-merge or JSON patch) of
//! `spec.unschedulable` (cordon/uncordon); `DELETE`, which also deletes k3s's
//! node-password Secret of the node (k3s's etcd member controller then removes a server's
//! member, see [`crate::k3s`]).

use axum::body::Body;
use axum::http::{Method, Response};
use serde_json::{Value, json};

use super::{Req, json_response, list, method_not_allowed, not_found};
use crate::cluster::{node_json, status_json, uid};
use crate::world_state::World;

const MEDIA_TYPES: &str = "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json";

/// Serves `/api/v1/nodes/<rest>`.
pub(super) fn handle(
    w: &mut World,
    cluster: usize,
    rest: &[&str],
    req: &Req<'_>,
    rv: u64,
) -> Response<Body> {
    match (req.method, rest) {
        (&Method::GET, []) => {
            let c = &w.clusters[cluster];
            let items = c
                .nodes
                .iter()
                .map(|(n, r)| node_json(n, r, &w.live(&r.host), rv))
                .filter(|v| req.selects(v))
                .collect();
            list("v1", "NodeList", rv, items)
        }
        (&Method::GET, [name]) => {
            let c = &w.clusters[cluster];
            match c.nodes.get(*name) {
                Some(r) => json_response(200, &node_json(name, r, &w.live(&r.host), rv)),
                None => not_found("nodes", name),
            }
        }
        (&Method::PATCH, [name]) => patch(w, cluster, name, req, rv),
        (&Method::DELETE, [name]) => {
            let c = &mut w.clusters[cluster];
            if c.nodes.remove(*name).is_none() {
                return not_found("nodes", name);
            }
            c.node_passwords.remove(*name);
            json_response(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "kind": "nodes", "uid": uid("node", name)}}),
            )
        }
        _ => method_not_allowed(),
    }
}

fn bad_request(msg: &str) -> Response<Body> {
    json_response(400, &status_json(400, "BadRequest", msg, None))
}

/// The `spec.unschedulable` a patch sets: `Some(Some(b))` set, `Some(None)` cleared,
/// `None` untouched.
fn unschedulable_of(content_type: &str, body: &Value) -> Result<Option<Option<bool>>, String> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    match ct {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            if !body.is_object() {
                return Err(
                    "json: cannot unmarshal into Go value of type map[string]interface {}".into(),
                );
            }
            match body.get("spec").and_then(|s| s.get("unschedulable")) {
                None => Ok(None),
                Some(Value::Null) => Ok(Some(None)),
                Some(Value::Bool(b)) => Ok(Some(Some(*b))),
                Some(other) => Err(format!(
                    "json: cannot unmarshal {other} into Go struct field NodeSpec.spec.unschedulable of type bool"
                )),
            }
        }
        "application/json-patch+json" => {
            let ops = body
                .as_array()
                .ok_or("json: cannot unmarshal object into Go value of type jsonpatch.Patch")?;
            let mut r = None;
            for op in ops {
                if op["path"] != "/spec/unschedulable" {
                    continue;
                }
                r = match op["op"].as_str() {
                    Some("add" | "replace") => Some(Some(op["value"].as_bool().unwrap_or(false))),
                    Some("remove") => Some(None),
                    _ => return Err(format!("unexpected kind of patch operation {}", op["op"])),
                };
            }
            Ok(r)
        }
        _ => Err(MEDIA_TYPES.into()),
    }
}

fn patch(w: &mut World, cluster: usize, name: &str, req: &Req<'_>, rv: u64) -> Response<Body> {
    let body: Value = match serde_json::from_slice(req.body) {
        Ok(v) => v,
        Err(e) => {
            if !req.content_type.contains("json") {
                return json_response(
                    415,
                    &status_json(415, "UnsupportedMediaType", MEDIA_TYPES, None),
                );
            }
            return bad_request(&format!("error decoding patch: {e}"));
        }
    };
    let change = match unschedulable_of(req.content_type, &body) {
        Ok(c) => c,
        Err(m) if m == MEDIA_TYPES => {
            return json_response(415, &status_json(415, "UnsupportedMediaType", &m, None));
        }
        Err(m) => return bad_request(&m),
    };
    let Some(rec) = w.clusters[cluster].nodes.get_mut(name) else {
        return not_found("nodes", name);
    };
    if let Some(u) = change {
        rec.unschedulable = u.unwrap_or(false);
    }
    let rec = rec.clone();
    json_response(200, &node_json(name, &rec, &w.live(&rec.host), rv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cordon_patches_are_read_in_every_patch_type() {
        let merge = json!({"spec": {"unschedulable": true}});
        assert_eq!(
            unschedulable_of("application/merge-patch+json", &merge),
            Ok(Some(Some(true)))
        );
        assert_eq!(
            unschedulable_of(
                "application/strategic-merge-patch+json; charset=utf-8",
                &json!({"spec": {"unschedulable": null}})
            ),
            Ok(Some(None))
        );
        assert_eq!(
            unschedulable_of(
                "application/json-patch+json",
                &json!([{"op": "replace", "path": "/spec/unschedulable", "value": false}])
            ),
            Ok(Some(Some(false)))
        );
        assert_eq!(
            unschedulable_of("application/merge-patch+json", &json!({"metadata": {}})),
            Ok(None)
        );
        assert!(unschedulable_of("application/yaml", &merge).is_err());
    }
}
