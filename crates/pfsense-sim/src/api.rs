//! The REST v2 surface: envelope, auth, CRUD over the models (singular by
//! `id`, plural with filters/limit/offset), apply endpoints and `command_prompt`.

#![allow(clippy::result_large_err)] // handlers return ready-made error responses

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};

use super::SimState;
use super::command::{self, Command};
use super::model::{Collection, MODELS, Model, Subsystem, model_for};

/// Builds a response in the package's envelope.
pub fn envelope(code: u16, response_id: &str, message: &str, data: Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let text = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    let body = json!({"code": code, "status": text, "response_id": response_id,
                      "message": message, "data": data});
    (status, axum::Json(body)).into_response()
}

fn ok(data: Value) -> Response {
    envelope(200, "SUCCESS", "", data)
}

fn not_found(what: &str) -> Response {
    envelope(
        404,
        "MODEL_OBJECT_NOT_FOUND",
        &format!("Object with ID `{what}` does not exist."),
        json!([]),
    )
}

/// Parses the query string into ordered pairs.
fn query_pairs(uri: &Uri) -> Map<String, Value> {
    let mut out = Map::new();
    for pair in uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(decode(k), Value::String(decode(v)));
    }
    out
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn int_param(params: &Map<String, Value>, name: &str) -> Result<usize, Response> {
    let v = params.get(name).ok_or_else(|| {
        envelope(
            400,
            "FIELD_IS_REQUIRED",
            &format!("Field `{name}` is required."),
            json!([]),
        )
    })?;
    match v {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        envelope(
            400,
            "FIELD_INVALID_TYPE",
            &format!("Field `{name}` must be of type `integer`."),
            json!([]),
        )
    })
}

/// The REST API's routes: the fixed endpoints (command prompt, JWT, HAProxy settings, the
/// four apply endpoints) and a singular and a plural route per model, each serving the
/// methods the package serves; behind one auth gate that also covers unknown paths.
pub fn router(st: Arc<SimState>) -> Router {
    let mut r = Router::new()
        .route(
            "/api/v2/diagnostics/command_prompt",
            post(async |State(st): State<Arc<SimState>>, rq: Rq| match rq.0 {
                Ok((params, _)) => command_prompt(&st, &params).await,
                Err(e) => e,
            }),
        )
        .route(
            "/api/v2/auth/jwt",
            post(
                async |State(st): State<Arc<SimState>>, headers: HeaderMap| {
                    if st.basic_auth(&headers) {
                        ok(json!({"token": st.issue_token()}))
                    } else {
                        envelope(
                            401,
                            "AUTH_AUTHENTICATION_FAILED",
                            "JWTs are issued to basic-auth clients only.",
                            json!([]),
                        )
                    }
                },
            ),
        )
        .route(
            "/api/v2/services/haproxy/settings",
            get(async |State(st): State<Arc<SimState>>| {
                ok(st.world.lock().expect("world").haproxy_settings.clone())
            })
            .patch(async |State(st): State<Arc<SimState>>, rq: Rq| {
                let (params, _) = match rq.0 {
                    Ok(p) => p,
                    Err(e) => return e,
                };
                let mut w = st.world.lock().expect("world");
                if let Value::Object(s) = &mut w.haproxy_settings {
                    s.extend(params);
                }
                let data = w.haproxy_settings.clone();
                drop(w);
                st.mark_dirty(Subsystem::Haproxy);
                ok(data)
            }),
        );
    for (path, sub) in [
        ("/api/v2/services/haproxy/apply", Subsystem::Haproxy),
        ("/api/v2/firewall/virtual_ip/apply", Subsystem::VirtualIp),
        (
            "/api/v2/services/dns_resolver/apply",
            Subsystem::DnsResolver,
        ),
        ("/api/v2/firewall/apply", Subsystem::Firewall),
    ] {
        r = r.route(
            path,
            get(async move |State(st): State<Arc<SimState>>| {
                let applied = !st.world.lock().expect("world").is_dirty(sub);
                ok(json!({"applied": applied}))
            })
            .post(async move |State(st): State<Arc<SimState>>| {
                let st2 = st.clone();
                tokio::spawn(async move { st2.run_apply(sub).await });
                ok(json!({"applied": false}))
            }),
        );
    }
    for model in MODELS {
        let one = async move |State(st): State<Arc<SimState>>, method: Method, rq: Rq| match rq.0 {
            Ok((params, _)) => singular(&st, model, &method, &params),
            Err(e) => e,
        };
        let many = async move |State(st): State<Arc<SimState>>, method: Method, rq: Rq| match rq.0 {
            Ok((params, body)) => plural(&st, model, &method, &params, &body),
            Err(e) => e,
        };
        let plural_methods = if model.nested_in.is_none() {
            get(many).delete(many).put(many)
        } else {
            get(many).delete(many)
        };
        r = r
            .route(
                &format!("/api/v2{}", model.singular),
                get(one).post(one).patch(one).delete(one),
            )
            .route(&format!("/api/v2{}", model.plural), plural_methods);
    }
    r.fallback(endpoint_not_found)
        .method_not_allowed_fallback(async || subsystem_method_not_allowed())
        .layer(axum::middleware::from_fn_with_state(st.clone(), gate))
        .with_state(st)
}

/// Every request authenticates first, routed or not.
async fn gate(State(st): State<Arc<SimState>>, req: Request, next: Next) -> Response {
    if !st.authorized(req.headers()) {
        return envelope(
            401,
            "AUTH_AUTHENTICATION_FAILED",
            "Authentication failed.",
            json!([]),
        );
    }
    next.run(req).await
}

async fn endpoint_not_found(uri: Uri) -> Response {
    let path = uri.path();
    let message = if path.starts_with("/api/v2") {
        format!("Endpoint `{path}` not found.")
    } else {
        "Endpoint not found.".to_string()
    };
    envelope(404, "ENDPOINT_NOT_FOUND", &message, json!([]))
}

/// A request's parameters (query string, then the JSON body's fields) and its JSON body, or
/// the package's 400 for a body that is not JSON.
struct Rq(Result<(Map<String, Value>, Value), Response>);

impl<S: Send + Sync> FromRequest<S> for Rq {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let uri = req.uri().clone();
        let bytes = Bytes::from_request(req, state).await.unwrap_or_default();
        let body: Value = if bytes.is_empty() {
            Value::Object(Map::new())
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    return Ok(Rq(Err(envelope(
                        400,
                        "REQUEST_BODY_INVALID",
                        &format!("The request body is not valid JSON: {e}"),
                        json!([]),
                    ))));
                }
            }
        };
        let mut params = query_pairs(&uri);
        if let Value::Object(m) = &body {
            params.extend(m.clone());
        }
        Ok(Rq(Ok((params, body))))
    }
}

fn with_ids(mut obj: Value, id: usize, parent: Option<usize>) -> Value {
    if let Value::Object(m) = &mut obj {
        if let Some(p) = parent {
            m.insert("parent_id".into(), json!(p));
        }
        m.insert("id".into(), json!(id));
    }
    obj
}

fn subsystem_method_not_allowed() -> Response {
    envelope(405, "METHOD_NOT_ALLOWED", "Method not allowed.", json!([]))
}

/// Fills defaults for nested items sent inside a parent on create (servers, addresses).
fn prepare_nested(st: &SimState, model: &Model, obj: &mut Value) -> Result<(), Response> {
    let (field, child_path) = match model.collection {
        Collection::Backends => ("servers", "/services/haproxy/backend/server"),
        Collection::Frontends => ("a_extaddr", "/services/haproxy/frontend/address"),
        _ => return Ok(()),
    };
    let (child, _) = model_for(child_path).expect("nested model");
    let items = obj
        .get(field)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<Value> = Vec::new();
    for item in items {
        let body = item.as_object().cloned().unwrap_or_default();
        let mut made = child.create(&body, &out).map_err(|e| {
            envelope(
                400,
                e.response_id,
                &format!("{field}: {}", e.message),
                json!([]),
            )
        })?;
        st.assign_server_id(field, &mut made);
        out.push(made);
    }
    obj[field] = Value::Array(out);
    Ok(())
}

fn singular(
    st: &Arc<SimState>,
    model: &'static Model,
    method: &Method,
    params: &Map<String, Value>,
) -> Response {
    if let Some(field) = model.nested_in {
        return nested_singular(st, model, field, method, params);
    }
    let result = {
        let mut w = st.world.lock().expect("world");
        let list = w.list_mut(model.collection);
        match *method {
            Method::GET => {
                let id = match int_param(params, "id") {
                    Ok(id) => id,
                    Err(r) => return r,
                };
                return match list.get(id) {
                    Some(o) => ok(with_ids(o.clone(), id, None)),
                    None => not_found(&id.to_string()),
                };
            }
            Method::POST => match model.create(params, list) {
                Ok(mut obj) => {
                    drop(w);
                    if let Err(r) = prepare_nested(st, model, &mut obj) {
                        return r;
                    }
                    let mut w = st.world.lock().expect("world");
                    let list = w.list_mut(model.collection);
                    // Checked again under the lock: another create may have won meanwhile.
                    if let Err(e) = model.update(&obj, &Map::new(), list, usize::MAX) {
                        return envelope(400, e.response_id, &e.message, json!([]));
                    }
                    list.push(obj.clone());
                    Ok(with_ids(obj, list.len() - 1, None))
                }
                Err(e) => Err(envelope(400, e.response_id, &e.message, json!([]))),
            },
            Method::PATCH => {
                let id = match int_param(params, "id") {
                    Ok(id) => id,
                    Err(r) => return r,
                };
                let Some(current) = list.get(id).cloned() else {
                    return not_found(&id.to_string());
                };
                match model.update(&current, params, list, id) {
                    Ok(obj) => {
                        list[id] = obj.clone();
                        Ok(with_ids(obj, id, None))
                    }
                    Err(e) => Err(envelope(400, e.response_id, &e.message, json!([]))),
                }
            }
            Method::DELETE => {
                let id = match int_param(params, "id") {
                    Ok(id) => id,
                    Err(r) => return r,
                };
                if id >= list.len() {
                    return not_found(&id.to_string());
                }
                let obj = list.remove(id);
                Ok(with_ids(obj, id, None))
            }
            _ => return subsystem_method_not_allowed(),
        }
    };
    match result {
        Ok(data) => {
            st.mark_dirty(model.subsystem);
            apply_if_asked(st, model.subsystem, params);
            ok(data)
        }
        Err(r) => r,
    }
}

/// A write with `"apply": true` applies its subsystem right away (asynchronously).
fn apply_if_asked(st: &Arc<SimState>, sub: Subsystem, params: &Map<String, Value>) {
    if params.get("apply") == Some(&Value::Bool(true)) {
        let st = st.clone();
        tokio::spawn(async move { st.run_apply(sub).await });
    }
}

fn nested_singular(
    st: &Arc<SimState>,
    model: &'static Model,
    field: &str,
    method: &Method,
    params: &Map<String, Value>,
) -> Response {
    let parent_id = match int_param(params, "parent_id") {
        Ok(id) => id,
        Err(r) => return r,
    };
    let mut w = st.world.lock().expect("world");
    let mut next_id = w.next_server_id;
    let Some(parent) = w.list_mut(model.collection).get_mut(parent_id) else {
        return envelope(
            404,
            "MODEL_PARENT_OBJECT_NOT_FOUND",
            &format!("Parent object with ID `{parent_id}` does not exist."),
            json!([]),
        );
    };
    if parent.get(field).and_then(Value::as_array).is_none() {
        parent[field] = json!([]);
    }
    let items = parent[field].as_array_mut().expect("array");
    let id = if *method == Method::POST {
        0
    } else {
        match int_param(params, "id") {
            Ok(id) if id < items.len() => id,
            Ok(id) => return not_found(&id.to_string()),
            Err(r) => return r,
        }
    };
    let data = match *method {
        Method::GET => return ok(with_ids(items[id].clone(), id, Some(parent_id))),
        Method::POST => match model.create(params, items) {
            Ok(mut obj) => {
                if field == "servers" {
                    obj["serverid"] = json!(next_id);
                    next_id += 1;
                }
                items.push(obj.clone());
                with_ids(obj, items.len() - 1, Some(parent_id))
            }
            Err(e) => return envelope(400, e.response_id, &e.message, json!([])),
        },
        Method::PATCH => match model.update(&items[id], params, items, id) {
            Ok(obj) => {
                items[id] = obj.clone();
                with_ids(obj, id, Some(parent_id))
            }
            Err(e) => return envelope(400, e.response_id, &e.message, json!([])),
        },
        Method::DELETE => with_ids(items.remove(id), id, Some(parent_id)),
        _ => return subsystem_method_not_allowed(),
    };
    w.next_server_id = next_id;
    drop(w);
    st.mark_dirty(model.subsystem);
    apply_if_asked(st, model.subsystem, params);
    ok(data)
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn matches(obj: &Value, filters: &[(&String, &Value)]) -> bool {
    filters.iter().all(|(k, want)| {
        let want = match want {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match obj.get(k.as_str()) {
            Some(Value::String(s)) => *s == want,
            Some(Value::Array(items)) => items.iter().any(|i| scalar_text(i) == want),
            Some(other) => scalar_text(other) == want,
            None => false,
        }
    })
}

const PAGING: &[&str] = &["limit", "offset", "sort_by", "sort_order", "sort_flags"];

fn plural(
    st: &SimState,
    model: &'static Model,
    method: &Method,
    params: &Map<String, Value>,
    body: &Value,
) -> Response {
    let filters: Vec<(&String, &Value)> = params
        .iter()
        .filter(|(k, _)| !PAGING.contains(&k.as_str()))
        .collect();
    let limit = int_param(params, "limit").ok().filter(|l| *l > 0);
    let offset = int_param(params, "offset").unwrap_or(0);
    let mut w = st.world.lock().expect("world");
    // Every object with its (parent id, id).
    let all: Vec<(Option<usize>, usize, Value)> = match model.nested_in {
        None => w
            .list(model.collection)
            .iter()
            .enumerate()
            .map(|(i, o)| (None, i, o.clone()))
            .collect(),
        Some(field) => w
            .list(model.collection)
            .iter()
            .enumerate()
            .flat_map(|(p, parent)| {
                parent
                    .get(field)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(move |(i, o)| (Some(p), i, o))
            })
            .collect(),
    };
    let selected: Vec<(Option<usize>, usize, Value)> = all
        .into_iter()
        .filter(|(p, i, o)| matches(&with_ids(o.clone(), *i, *p), &filters))
        .collect();
    match *method {
        Method::GET => {
            let page: Vec<Value> = selected
                .into_iter()
                .skip(offset)
                .take(limit.unwrap_or(usize::MAX))
                .map(|(p, i, o)| with_ids(o, i, p))
                .collect();
            ok(Value::Array(page))
        }
        Method::DELETE => {
            let mut gone = Vec::new();
            for (p, i, o) in selected.into_iter().rev() {
                match (model.nested_in, p) {
                    (Some(field), Some(p)) => {
                        if let Some(items) = w.list_mut(model.collection)[p]
                            .get_mut(field)
                            .and_then(Value::as_array_mut)
                        {
                            items.remove(i);
                        }
                    }
                    _ => {
                        w.list_mut(model.collection).remove(i);
                    }
                }
                gone.push(with_ids(o, i, p));
            }
            drop(w);
            st.mark_dirty(model.subsystem);
            gone.reverse();
            ok(Value::Array(gone))
        }
        Method::PUT if model.nested_in.is_none() => {
            let Some(items) = body.as_array() else {
                return envelope(
                    400,
                    "REQUEST_BODY_INVALID",
                    "PUT on a plural endpoint takes an array of objects.",
                    json!([]),
                );
            };
            let mut made: Vec<Value> = Vec::new();
            for item in items {
                let b = item.as_object().cloned().unwrap_or_default();
                match model.create(&b, &made) {
                    Ok(o) => made.push(o),
                    Err(e) => return envelope(400, e.response_id, &e.message, json!([])),
                }
            }
            *w.list_mut(model.collection) = made.clone();
            drop(w);
            st.mark_dirty(model.subsystem);
            ok(Value::Array(
                made.into_iter()
                    .enumerate()
                    .map(|(i, o)| with_ids(o, i, None))
                    .collect(),
            ))
        }
        _ => subsystem_method_not_allowed(),
    }
}

async fn command_prompt(st: &Arc<SimState>, params: &Map<String, Value>) -> Response {
    let Some(line) = params.get("command").and_then(Value::as_str) else {
        return envelope(
            400,
            "FIELD_IS_REQUIRED",
            "Field `command` is required.",
            json!([]),
        );
    };
    let (output, code) = match command::parse(line) {
        Ok(Command::Runtime(cmd)) => match st.dataplane.runtime(&cmd).await {
            Ok(out) => (out, 0),
            Err(e) => (e, 1),
        },
        Ok(Command::CheckConfig) => match st.render_current() {
            Ok(cfg) => match st.dataplane.check(&cfg).await {
                Ok(()) => ("Configuration file is valid".to_string(), 0),
                Err(e) => (e, 1),
            },
            Err(e) => (e, 1),
        },
        Err(why) => return envelope(403, "SIM_COMMAND_REFUSED", &why, json!([])),
    };
    ok(json!({"command": line, "output": output, "result_code": code}))
}

/// Sleeps for an injected latency.
pub async fn delay(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}
