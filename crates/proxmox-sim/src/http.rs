//! HTTP plumbing of the simulator the way pveproxy does it: the `{"data": …}` envelope,
//! errors carried in the HTTP reason phrase, `400 Parameter verification failed.` with
//! `errors`, form or JSON bodies flattened to strings (booleans as 1/0), and auth
//! (API token, or ticket cookie plus CSRF token on writes).

use std::collections::BTreeMap;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error as pveproxy reports it.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The message, sent as the reason phrase and as `message` in the body.
    pub message: String,
    /// Per-parameter errors (400 only).
    pub errors: Option<BTreeMap<String, String>>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: message.into(),
            errors: None,
        }
    }

    /// A 500 with a message (how Proxmox reports most failures, even "not found").
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, message)
    }

    /// `400 Parameter verification failed.` with per-parameter messages.
    pub fn params(errors: BTreeMap<String, String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: "Parameter verification failed.".into(),
            errors: Some(errors),
        }
    }

    /// A 400 for a single parameter.
    pub fn param(name: &str, msg: impl Into<String>) -> Self {
        ApiError::params(BTreeMap::from([(name.to_string(), msg.into())]))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"data": null, "message": format!("{}\n", self.message)});
        if let Some(errors) = &self.errors {
            body["errors"] = json!(errors);
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        // The reason phrase carries the message, like pveproxy; it must be one visible line.
        let phrase: String = self
            .message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .filter(|c| c.is_ascii())
            .collect();
        if let Ok(rp) = hyper::ext::ReasonPhrase::try_from(phrase.trim().as_bytes().to_vec()) {
            resp.extensions_mut().insert(rp);
        }
        resp
    }
}

/// A successful answer: `{"data": value}` (value may be null).
pub fn ok(data: Value) -> Response {
    (StatusCode::OK, axum::Json(json!({ "data": data }))).into_response()
}

/// Request parameters: query string plus form or JSON body, every value as a string.
pub type Params = BTreeMap<String, String>;

/// Parses the query string and body into parameters. A body on GET/DELETE is refused (501).
pub fn params(
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Params, ApiError> {
    let mut out = Params::new();
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            out.insert(k.into_owned(), v.into_owned());
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(out);
    }
    if *method == Method::GET || *method == Method::DELETE {
        return Err(ApiError::new(
            501,
            format!("Unexpected content for method '{method}'"),
        ));
    }
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(400, format!("malformed JSON body: {e}")))?;
        let Value::Object(map) = v else {
            return Err(ApiError::new(400, "JSON body must be an object"));
        };
        for (k, v) in map {
            let s = match v {
                Value::Bool(b) => if b { "1" } else { "0" }.to_string(),
                Value::String(s) => s,
                Value::Null => continue,
                other => other.to_string(),
            };
            out.insert(k, s);
        }
    } else {
        for (k, v) in form_urlencoded::parse(body) {
            out.insert(k.into_owned(), v.into_owned());
        }
    }
    Ok(out)
}

/// Who is calling, after authentication.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `user@realm` or `user@realm!token`.
    pub user: String,
}

/// Checks token or ticket auth. `tickets` maps ticket → CSRF token.
pub fn authenticate(
    method: &Method,
    headers: &HeaderMap,
    token: &str,
    tickets: &BTreeMap<String, String>,
) -> Result<Caller, ApiError> {
    let no = || ApiError::new(401, "authentication failure");
    if let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let given = auth
            .strip_prefix("PVEAPIToken=")
            .or_else(|| auth.strip_prefix("PVEAPIToken "))
            .ok_or_else(no)?;
        // `user@realm!tokenid=secret`; proxmoxer and curl both send this form.
        if given.trim() != token {
            return Err(no());
        }
        let user = token.split_once('=').map_or(token, |(u, _)| u);
        return Ok(Caller {
            user: user.to_string(),
        });
    }
    let cookie = headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("PVEAuthCookie="))
        .map(|c| {
            form_urlencoded::parse(format!("x={c}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .ok_or_else(no)?;
    let csrf = tickets.get(&cookie).ok_or_else(no)?;
    if *method != Method::GET {
        let sent = headers
            .get("csrfpreventiontoken")
            .and_then(|v| v.to_str().ok());
        if sent != Some(csrf.as_str()) {
            return Err(ApiError::new(
                401,
                "Permission check failed (invalid csrf token)",
            ));
        }
    }
    let user = cookie.split(':').nth(1).unwrap_or("root@pam").to_string();
    Ok(Caller { user })
}
