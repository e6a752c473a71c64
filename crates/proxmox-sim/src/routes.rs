//! The API's routes as axum routes built from one table ([`ROUTES`]), which also names the
//! request counters' routes ([`route_of`]): each entry is a method, a template below
//! `/api2/json` and a handler over [`Ctx`]; unserved paths and methods answer 501 "Method …
//! not implemented" before auth, as pveproxy does.

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use cairn_sim_kit::Injected;
use serde_json::{Value, json};

use super::Shared;
use super::api::{
    ApiResult, clone, cluster_resources, config_json, create, destroy, get_vm, lock_timeout,
    nextid, node_entry, node_status, parse_vmid, pending, power, resize, status_current, task_log,
    task_status, ticket, update_config, vm_list_entry,
};
use super::http::{self, ApiError, Caller, Params};
use super::world::World;

/// One request as a route handler sees it: the parameters (query and body), the caller,
/// and the route's path parameters (`node`, `vmid`, `upid`).
pub(crate) struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    method: &'a Method,
    p: &'a Params,
    caller: &'a Caller,
    path: &'a [(String, String)],
}

impl<'a> Ctx<'a> {
    /// The path parameter `name` (empty if the route has none).
    fn param(&self, name: &str) -> &'a str {
        self.path
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn world(&self) -> std::sync::MutexGuard<'a, World> {
        self.shared.world.lock().expect("world")
    }

    /// The `{node}` of the path, which must exist (an unknown node fails like a failed
    /// hostname lookup, as on a real cluster).
    fn node(&self, w: &World) -> Result<&'a str, ApiError> {
        let node = self.param("node");
        if w.nodes.contains_key(node) {
            Ok(node)
        } else {
            Err(ApiError::internal(format!(
                "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known"
            )))
        }
    }

    /// The `{vmid}` of the path, checked as the API checks it.
    fn vmid(&self) -> Result<u32, ApiError> {
        parse_vmid(self.param("vmid"), "vmid")
    }
}

type Handler = fn(&Ctx<'_>) -> ApiResult;

/// One API route: method, template below `/api2/json`, handler.
pub(crate) struct RouteDef {
    method: &'static str,
    path: &'static str,
    handler: Handler,
}

const fn r(method: &'static str, path: &'static str, handler: Handler) -> RouteDef {
    RouteDef {
        method,
        path,
        handler,
    }
}

/// Every route the simulator serves: the axum router and the request counters' route names
/// both come from this one table.
pub(crate) static ROUTES: &[RouteDef] = &[
    r("GET", "/version", |_| {
        Ok(json!({"version": "9.1.2", "release": "9.1", "repoid": "c0ffee01"}))
    }),
    r("POST", "/access/ticket", |c| {
        ticket(c.shared, c.method, c.p)
    }),
    r("GET", "/cluster/resources", |c| {
        cluster_resources(&c.world(), c.p.get("type").map(String::as_str))
    }),
    r("GET", "/cluster/nextid", |c| nextid(&c.world(), c.p)),
    r("GET", "/nodes", |c| {
        let w = c.world();
        Ok(Value::Array(
            w.nodes.keys().map(|n| node_entry(&w, n)).collect(),
        ))
    }),
    r("GET", "/nodes/{node}/status", |c| {
        let w = c.world();
        Ok(node_status(&w, c.node(&w)?))
    }),
    r("GET", "/nodes/{node}/qemu", |c| {
        let w = c.world();
        let node = c.node(&w)?;
        Ok(Value::Array(
            w.vms
                .iter()
                .filter(|(_, v)| v.node == node)
                .map(|(id, v)| vm_list_entry(*id, v))
                .collect(),
        ))
    }),
    r("POST", "/nodes/{node}/qemu", |c| {
        let mut w = c.world();
        let node = c.node(&w)?;
        create(c.shared, &mut w, node, c.p, c.caller)
    }),
    r("DELETE", "/nodes/{node}/qemu/{vmid}", |c| {
        let mut w = c.world();
        let node = c.node(&w)?;
        destroy(c.shared, &mut w, node, c.vmid()?, c.caller)
    }),
    r("POST", "/nodes/{node}/qemu/{vmid}/clone", |c| {
        let mut w = c.world();
        let node = c.node(&w)?;
        clone(c.shared, &mut w, node, c.vmid()?, c.p, c.caller)
    }),
    r("GET", "/nodes/{node}/qemu/{vmid}/config", |c| {
        let w = c.world();
        let vm = get_vm(&w, c.node(&w)?, c.vmid()?)?;
        Ok(config_json(
            vm,
            c.p.get("current").is_some_and(|x| x == "1"),
        ))
    }),
    r("POST", "/nodes/{node}/qemu/{vmid}/config", |c| {
        config(c, true)
    }),
    r("PUT", "/nodes/{node}/qemu/{vmid}/config", |c| {
        config(c, false)
    }),
    r("GET", "/nodes/{node}/qemu/{vmid}/pending", |c| {
        let w = c.world();
        Ok(pending(get_vm(&w, c.node(&w)?, c.vmid()?)?))
    }),
    r("PUT", "/nodes/{node}/qemu/{vmid}/resize", |c| {
        let mut w = c.world();
        let node = c.node(&w)?;
        resize(c.shared, &mut w, node, c.vmid()?, c.p, c.caller)
    }),
    r("GET", "/nodes/{node}/qemu/{vmid}/status/current", |c| {
        let w = c.world();
        let vmid = c.vmid()?;
        Ok(status_current(vmid, get_vm(&w, c.node(&w)?, vmid)?))
    }),
    r("POST", "/nodes/{node}/qemu/{vmid}/status/start", |c| {
        power_route(c, "start")
    }),
    r("POST", "/nodes/{node}/qemu/{vmid}/status/stop", |c| {
        power_route(c, "stop")
    }),
    r("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown", |c| {
        power_route(c, "shutdown")
    }),
    r("GET", "/nodes/{node}/tasks/{upid}/status", |c| {
        let w = c.world();
        c.node(&w)?;
        task_status(&w, c.param("upid"))
    }),
    r("GET", "/nodes/{node}/tasks/{upid}/log", |c| {
        let w = c.world();
        c.node(&w)?;
        task_log(&w, c.param("upid"), c.p)
    }),
];

fn config(c: &Ctx<'_>, post: bool) -> ApiResult {
    let mut w = c.world();
    let node = c.node(&w)?;
    update_config(c.shared, &mut w, node, c.vmid()?, c.p, c.caller, post)
}

fn power_route(c: &Ctx<'_>, action: &str) -> ApiResult {
    let mut w = c.world();
    let node = c.node(&w)?;
    power(c.shared, &mut w, node, c.vmid()?, action, c.caller)
}

/// The route template of a path (its segments after `/api2/json`), or `None` (→ 501).
pub(crate) fn route_of(method: &Method, s: &[&str]) -> Option<&'static str> {
    ROUTES
        .iter()
        .find(|d| {
            d.method == method.as_str() && {
                let t: Vec<&str> = d.path.split('/').filter(|x| !x.is_empty()).collect();
                t.len() == s.len() && t.iter().zip(s).all(|(t, s)| t.starts_with('{') || t == s)
            }
        })
        .map(|d| d.path)
}

/// The API router: one axum route per [`ROUTES`] entry; anything else answers 501
/// "Method '…' not implemented", as `pveproxy` does.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let mut router = Router::new();
    for def in ROUTES {
        let filter = MethodFilter::try_from(
            Method::from_bytes(def.method.as_bytes()).expect("a valid method"),
        )
        .expect("a routable method");
        let handler = move |State(shared): State<Arc<Shared>>,
                            path: Result<RawPathParams, RawPathParamsRejection>,
                            req: Request| async move {
            let path: Vec<(String, String)> = path
                .map(|p| {
                    p.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            serve(&shared, def, &path, req).await
        };
        router = router.route(&format!("/api2/json{}", def.path), on(filter, handler));
    }
    router
        .fallback(not_implemented)
        .method_not_allowed_fallback(not_implemented)
        .with_state(shared)
}

async fn not_implemented(method: Method, uri: Uri) -> Response {
    ApiError::new(
        501,
        format!("Method '{method} {}' not implemented", uri.path()),
    )
    .into_response()
}

/// Serves one routed request (counted, delayed and possibly faulted by the kit already; a
/// simulator-specific fault the kit drew for it comes as an [`Injected`] extension):
/// parameters, then auth (except for the ticket route), then the handler.
async fn serve(
    shared: &Arc<Shared>,
    def: &RouteDef,
    path: &[(String, String)],
    req: Request,
) -> Response {
    let injected = req
        .extensions()
        .get::<Injected>()
        .map(|Injected(n)| n.clone());
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let body = axum::body::to_bytes(req.into_body(), 2 << 20)
        .await
        .unwrap_or_default();
    tracing::debug!(%method, route = def.path, "proxmox sim request");
    let p = match http::params(&method, query.as_deref(), &headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let caller = if def.path == "/access/ticket" {
        Caller {
            user: String::new(),
        }
    } else {
        let tickets = shared.tickets.lock().expect("tickets");
        match http::authenticate(&method, &headers, &shared.token, &tickets) {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        }
    };
    let vmid = path.iter().find(|(k, _)| k == "vmid").map(|(_, v)| v);
    if method != Method::GET
        && injected.as_deref() == Some("lock")
        && let Some(vmid) = vmid
    {
        tokio::time::sleep(shared.lock_timeout).await;
        return lock_timeout(vmid).into_response();
    }
    let c = Ctx {
        shared,
        method: &method,
        p: &p,
        caller: &caller,
        path,
    };
    match (def.handler)(&c) {
        Ok(v) => http::ok(v),
        Err(e) => {
            if e.message.starts_with("can't lock file") {
                tokio::time::sleep(shared.lock_timeout).await;
            }
            e.into_response()
        }
    }
}
