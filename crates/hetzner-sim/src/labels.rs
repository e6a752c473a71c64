//! The Hetzner `label_selector` grammar (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
//! `k notin (a,b)`, comma = AND) and label validation.

use serde_json::{Map, Value};

/// One term of a label selector.
#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// `k=v` or `k==v`.
    Eq(String, String),
    /// `k!=v`.
    Ne(String, String),
    /// `k`.
    Exists(String),
    /// `!k`.
    NotExists(String),
    /// `k in (a,b)`.
    In(String, Vec<String>),
    /// `k notin (a,b)`.
    NotIn(String, Vec<String>),
}

/// Splits on commas that are not inside parentheses.
fn split_terms(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

fn set_values(rest: &str) -> Option<Vec<String>> {
    let rest = rest.trim();
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

/// Parses a selector; `Err` carries a message for `invalid_input`.
pub fn parse(sel: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    for raw in split_terms(sel) {
        let t = raw.trim();
        if t.is_empty() {
            return Err(format!("empty term in label selector {sel:?}"));
        }
        let term = if let Some(k) = t.strip_prefix('!') {
            Term::NotExists(k.trim().to_string())
        } else if let Some((k, v)) = t.split_once("!=") {
            Term::Ne(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = t.split_once("==") {
            Term::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, v)) = t.split_once('=') {
            Term::Eq(k.trim().into(), v.trim().into())
        } else if let Some((k, rest)) = t.split_once(" notin ") {
            Term::NotIn(
                k.trim().into(),
                set_values(rest).ok_or_else(|| format!("bad set in {t:?}"))?,
            )
        } else if let Some((k, rest)) = t.split_once(" in ") {
            Term::In(
                k.trim().into(),
                set_values(rest).ok_or_else(|| format!("bad set in {t:?}"))?,
            )
        } else if t.contains(' ') || t.contains('(') {
            return Err(format!("cannot parse label selector term {t:?}"));
        } else {
            Term::Exists(t.to_string())
        };
        terms.push(term);
    }
    Ok(terms)
}

/// Whether `labels` satisfy every term.
pub fn matches(terms: &[Term], labels: &Map<String, Value>) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    terms.iter().all(|t| match t {
        Term::Eq(k, v) => get(k) == Some(v.as_str()),
        Term::Ne(k, v) => get(k) != Some(v.as_str()),
        Term::Exists(k) => labels.contains_key(k),
        Term::NotExists(k) => !labels.contains_key(k),
        Term::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Term::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
    })
}

fn valid_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Validates a label map as the API does; returns messages for the `labels` field.
pub fn validate(v: &Value) -> Vec<String> {
    let Some(m) = v.as_object() else {
        return vec!["labels must be an object".into()];
    };
    let mut errs = Vec::new();
    for (k, val) in m {
        let (prefix, name) = match k.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        if prefix.is_some_and(|p| p.is_empty() || p.len() > 253 || !valid_name_part(p)) {
            errs.push(format!("label key {k:?} has an invalid prefix"));
        }
        if prefix.is_some_and(|p| p.starts_with("hetzner.cloud")) {
            errs.push(format!(
                "label key {k:?} uses the reserved prefix hetzner.cloud/"
            ));
        }
        if !valid_name_part(name) {
            errs.push(format!("label key {k:?} is invalid"));
        }
        match val.as_str() {
            Some("") => {}
            Some(s) if valid_name_part(s) => {}
            _ => errs.push(format!("label value for {k:?} is invalid")),
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn selector_grammar_covers_every_operator() {
        let l = m(json!({"env": "prod", "tier": "web", "cairn.dev/stack": "k3s"}));
        let ok = |s: &str| matches(&parse(s).unwrap(), &l);
        assert!(ok("env=prod"));
        assert!(ok("env==prod"));
        assert!(!ok("env!=prod"));
        assert!(ok("tier"));
        assert!(ok("!missing"));
        assert!(!ok("!tier"));
        assert!(ok("env in (prod,staging)"));
        assert!(!ok("env notin (prod, staging)"));
        assert!(ok("env=prod,cairn.dev/stack=k3s,tier in (web)"));
        assert!(!ok("env=prod,cairn.dev/stack=other"));
        assert!(parse("env in prod").is_err());
    }

    #[test]
    fn label_validation_rejects_reserved_prefix_and_bad_values() {
        assert!(validate(&json!({"cairn.dev/stack": "k3s", "a": ""})).is_empty());
        assert!(!validate(&json!({"hetzner.cloud/x": "y"})).is_empty());
        assert!(!validate(&json!({"a": "bad value"})).is_empty());
    }
}
