//! The API's routes as real axum routes (`/v1/servers/{id}/actions/{act}`, one handler per
//! method), each run on the locked project. One middleware ([`gate`]) stands in front of all
//! of them and of the fallback: bearer auth, the rate-limit bucket, Hetzner's injected faults
//! and the `RateLimit-*` headers, so every request — routed or not — is treated alike (the
//! kit's fault layer, outside this router, has counted it already).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use cairn_sim_kit::Injected;
use serde_json::Value;

use crate::faults::{self, HetznerFault};
use crate::http::{ApiErr, ApiResult, Query};
use crate::world::World;
use crate::{HetznerState, Req, lock};

/// The API router under construction; collections add their routes with [`Routes::route`].
pub(crate) struct Routes(Router<Arc<HetznerState>>);

impl Routes {
    /// No routes yet.
    pub(crate) fn new() -> Self {
        Routes(Router::new())
    }

    /// Serves `method path` (below `/v1`, with `{param}`s) with `f` on the locked project.
    pub(crate) fn route<F>(self, path: &str, method: Method, f: F) -> Self
    where
        F: Fn(&mut World, &Req) -> ApiResult + Clone + Send + Sync + 'static,
    {
        let filter = MethodFilter::try_from(method).expect("a routable method");
        let handler = move |State(sh): State<Arc<HetznerState>>,
                            params: Result<RawPathParams, RawPathParamsRejection>,
                            req: Request| {
            let f = f.clone();
            async move {
                let params = params
                    .map(|p| {
                        p.iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                serve(&sh, params, req, f).await
            }
        };
        Routes(self.0.route(&format!("/v1{path}"), on(filter, handler)))
    }

    /// The finished router: unknown paths and methods answer 404 `not_found` as the API
    /// does, and every request passes the [`gate`].
    pub(crate) fn finish(self, state: Arc<HetznerState>) -> Router {
        self.0
            .fallback(unrouted)
            .method_not_allowed_fallback(unrouted)
            .layer(axum::middleware::from_fn_with_state(state.clone(), gate))
            .with_state(state)
    }
}

async fn unrouted() -> Response {
    ApiErr::new(404, "not_found", "no such endpoint").into_response()
}

fn injected(req: &Request) -> Option<HetznerFault> {
    req.extensions()
        .get::<Injected>()
        .and_then(|Injected(n)| HetznerFault::from_name(n))
}

/// Auth, the rate-limit bucket and Hetzner's injected errors before any route; the
/// `RateLimit-*` headers on every answer.
async fn gate(State(sh): State<Arc<HetznerState>>, req: Request, next: Next) -> Response {
    let fault = injected(&req);
    let authed = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| t == sh.token);
    let (allowed, remaining, reset, limit) = {
        let mut b = lock(&sh.bucket);
        let (allowed, remaining, reset) = b.take();
        (allowed, remaining, reset, b.limit)
    };
    let rate_limited = || {
        ApiErr::new(
            429,
            "rate_limit_exceeded",
            "limit of requests per hour reached",
        )
    };
    let unavailable = || ApiErr::new(503, "unavailable", "service temporarily unavailable");
    let refused = if !authed {
        Some(ApiErr::new(401, "unauthorized", "unable to authenticate"))
    } else if !allowed {
        Some(rate_limited())
    } else {
        match fault {
            Some(HetznerFault::RateLimit) => Some(rate_limited()),
            Some(HetznerFault::Unavailable) => Some(unavailable()),
            Some(HetznerFault::Locked) if req.method() != Method::GET => Some(ApiErr::locked()),
            Some(HetznerFault::Locked) => Some(unavailable()),
            _ => None,
        }
    };
    let mut resp = match refused {
        Some(e) => e.into_response(),
        None => next.run(req).await,
    };
    // An injected 429 looks like an exhausted budget that refills within a second.
    let (remaining, reset) = if authed && allowed && fault == Some(HetznerFault::RateLimit) {
        (0, faults::unix_now() + 1)
    } else {
        (remaining, reset)
    };
    let h = resp.headers_mut();
    h.insert("RateLimit-Limit", HeaderValue::from(limit));
    h.insert("RateLimit-Remaining", HeaderValue::from(remaining));
    h.insert("RateLimit-Reset", HeaderValue::from(reset));
    resp
}

/// Reads the body, runs `f` on the locked project, applies an injected action failure.
async fn serve<F>(sh: &HetznerState, params: Vec<(String, String)>, req: Request, f: F) -> Response
where
    F: Fn(&mut World, &Req) -> ApiResult,
{
    let fault = injected(&req);
    let method = req.method().clone();
    let q = Query::parse(req.uri().query());
    let bytes = axum::body::to_bytes(req.into_body(), 4 << 20)
        .await
        .unwrap_or_default();
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => v,
            Err(e) => {
                return ApiErr::new(400, "json_error", format!("invalid JSON body: {e}"))
                    .into_response();
            }
        }
    };
    let r = Req {
        method: method.as_str().to_string(),
        params,
        q,
        body,
    };
    let out = {
        let mut w = lock(&sh.world);
        w.gc_actions();
        if method != Method::GET {
            w.version += 1;
        }
        let before = w.last_id;
        let out = f(&mut w, &r);
        if fault == Some(HetznerFault::ActionError) {
            for (_, a) in w.actions.range_mut(before + 1..) {
                a.error = Some((
                    "action_failed".into(),
                    format!("{} failed (injected fault)", a.command),
                ));
            }
        }
        out
    };
    match out {
        Ok(mut resp) => {
            if resp.status() == StatusCode::NO_CONTENT {
                *resp.body_mut() = Body::empty();
            }
            resp
        }
        Err(e) => e.into_response(),
    }
}
