//! Envelopes, errors, query parsing and pagination exactly as the Hetzner spec describes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::labels;

/// An API error: `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Clone)]
pub struct ApiErr {
    /// HTTP status.
    pub status: StatusCode,
    /// Hetzner error code.
    pub code: &'static str,
    /// Human message.
    pub message: String,
    /// `details` object.
    pub details: Value,
}

/// The result type of API handlers.
pub type ApiResult = Result<Response, ApiErr>;

impl ApiErr {
    /// An error with empty details.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiErr {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            details: json!({}),
        }
    }

    /// 404 `not_found`.
    pub fn not_found(what: &str) -> Self {
        Self::new(404, "not_found", format!("{what} not found"))
    }

    /// 422 `invalid_input` with field details.
    pub fn invalid(fields: Vec<(String, String)>) -> Self {
        let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
        for (f, m) in fields {
            match grouped.iter_mut().find(|(g, _)| *g == f) {
                Some((_, ms)) => ms.push(m),
                None => grouped.push((f, vec![m])),
            }
        }
        let msg = grouped
            .iter()
            .map(|(f, ms)| format!("{f}: {}", ms.join("; ")))
            .collect::<Vec<_>>()
            .join(", ");
        let fields: Vec<Value> = grouped
            .into_iter()
            .map(|(name, messages)| json!({"name": name, "messages": messages}))
            .collect();
        ApiErr {
            details: json!({ "fields": fields }),
            ..Self::new(
                422,
                "invalid_input",
                format!("invalid input in fields: {msg}"),
            )
        }
    }

    /// 409 `uniqueness_error` on `field`.
    pub fn unique(field: &str) -> Self {
        ApiErr {
            details: json!({"fields": [{"name": field}]}),
            ..Self::new(409, "uniqueness_error", format!("{field} is already used"))
        }
    }

    /// 423 `locked`.
    pub fn locked() -> Self {
        Self::new(
            423,
            "locked",
            "resource is locked by a running action, try again later",
        )
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// A JSON response with a status.
pub fn reply(status: u16, body: Value) -> ApiResult {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    Ok((status, axum::Json(body)).into_response())
}

/// Decoded query parameters, keeping repeated keys.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        let raw = raw.unwrap_or("");
        Query(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (pct_decode(k), pct_decode(v)),
                    None => (pct_decode(p), String::new()),
                })
                .collect(),
        )
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Applies `name`, `label_selector` and extra exact filters, `sort`, then paginates, and
/// builds the list envelope with `meta.pagination` and the `Link` header.
pub fn list(
    key: &str,
    path: &str,
    items: Vec<Value>,
    q: &Query,
    extra_filters: &[&str],
) -> ApiResult {
    list_mapped(
        key,
        path,
        items.iter().collect(),
        q,
        extra_filters,
        Value::clone,
    )
}

/// Like [`list`] over borrowed items; only the returned page goes through `map` (so a
/// render of computed fields costs per page, not per collection).
pub fn list_mapped(
    key: &str,
    path: &str,
    items: Vec<&Value>,
    q: &Query,
    extra_filters: &[&str],
    map: impl Fn(&Value) -> Value,
) -> ApiResult {
    let items = select(items, q, extra_filters)?;
    paginate(key, path, items.len(), q, |skip, take| {
        items.iter().skip(skip).take(take).map(|v| map(v)).collect()
    })
}

/// Applies `name`, `label_selector`, extra exact filters and `sort`.
pub fn select<'a>(
    mut items: Vec<&'a Value>,
    q: &Query,
    extra_filters: &[&str],
) -> Result<Vec<&'a Value>, ApiErr> {
    if let Some(name) = q.get("name") {
        items.retain(|o| o.get("name").and_then(Value::as_str) == Some(name));
    }
    for f in extra_filters {
        let wanted = q.all(f);
        if !wanted.is_empty() {
            items.retain(|o| {
                o.get(*f)
                    .map(|v| match v {
                        Value::String(s) => wanted.contains(&s.as_str()),
                        other => wanted.contains(&other.to_string().as_str()),
                    })
                    .unwrap_or(false)
            });
        }
    }
    if let Some(sel) = q.get("label_selector") {
        let terms =
            labels::parse(sel).map_err(|m| ApiErr::invalid(vec![("label_selector".into(), m)]))?;
        items.retain(|o| {
            let empty = serde_json::Map::new();
            let l = o.get("labels").and_then(Value::as_object).unwrap_or(&empty);
            labels::matches(&terms, l)
        });
    }
    let sorts = q.all("sort");
    if !sorts.is_empty() {
        let mut keys = Vec::new();
        for s in sorts {
            let (field, dir) = s.split_once(':').unwrap_or((s, "asc"));
            if !matches!(field, "id" | "name" | "created") || !matches!(dir, "asc" | "desc") {
                return Err(ApiErr::invalid(vec![(
                    "sort".into(),
                    format!("invalid sort {s:?}"),
                )]));
            }
            keys.push((field.to_string(), dir == "desc"));
        }
        items.sort_by(|a, b| {
            for (f, desc) in &keys {
                let o = cmp_values(a.get(f.as_str()), b.get(f.as_str()));
                let o = if *desc { o.reverse() } else { o };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    Ok(items)
}

/// Builds one page of a list envelope (`meta.pagination` and the `Link` header) for
/// `total` selected items; `page_items(skip, take)` produces the page.
pub fn paginate(
    key: &str,
    path: &str,
    total: usize,
    q: &Query,
    page_items: impl FnOnce(usize, usize) -> Vec<Value>,
) -> ApiResult {
    let per_page: usize = match q.get("per_page") {
        None => 25,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=50).contains(&n) => n,
            Ok(n) if n > 50 => 50,
            _ => {
                return Err(ApiErr::invalid(vec![(
                    "per_page".into(),
                    "must be between 1 and 50".into(),
                )]));
            }
        },
    };
    let page: usize = match q.get("page") {
        None => 1,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(ApiErr::invalid(vec![(
                    "page".into(),
                    "must be a positive integer".into(),
                )]));
            }
        },
    };
    let last = total.div_ceil(per_page).max(1);
    let chunk: Vec<Value> = page_items((page - 1) * per_page, per_page);
    let next = (page < last).then_some(page + 1);
    let prev = (page > 1).then_some(page - 1);
    let body = json!({
        key: chunk,
        "meta": {"pagination": {
            "page": page, "per_page": per_page,
            "previous_page": prev, "next_page": next,
            "last_page": last, "total_entries": total,
        }}
    });
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    let link_for = |p: usize| {
        let mut params: Vec<String> =
            q.0.iter()
                .filter(|(k, _)| k != "page" && k != "per_page")
                .map(|(k, v)| format!("{k}={}", enc(v)))
                .collect();
        params.push(format!("page={p}"));
        params.push(format!("per_page={per_page}"));
        format!("<{path}?{}>", params.join("&"))
    };
    let mut links = Vec::new();
    if let Some(p) = prev {
        links.push(format!("{}; rel=\"prev\"", link_for(p)));
    }
    if let Some(n) = next {
        links.push(format!("{}; rel=\"next\"", link_for(n)));
    }
    links.push(format!("{}; rel=\"last\"", link_for(last)));
    if let Ok(h) = HeaderValue::from_str(&links.join(", ")) {
        resp.headers_mut().insert(header::LINK, h);
    }
    Ok(resp)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    }
}

/// RFC 3339 timestamp (UTC, `+00:00`) for a unix time in seconds.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+00:00",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20+00:00");
    }

    #[test]
    fn query_keeps_repeated_keys_and_decodes() {
        let q = Query::parse(Some("id=1&id=2&label_selector=a%3Db%2Cc+in+(x)"));
        assert_eq!(q.all("id"), vec!["1", "2"]);
        assert_eq!(q.get("label_selector"), Some("a=b,c in (x)"));
    }
}
