//! Rendering plans and reports: Terraform-style text for people, versioned JSON for
//! machines (`docs/plan-format.md`), Markdown for CI step summaries.

mod graph;
mod human;
mod markdown;

pub use graph::{graph_dot, graph_svg};

pub use human::{render_plan, render_report};
pub use markdown::drift_summary;

use serde_json::Value;

use crate::value::RawRef;

/// Whether to colour output: never when `NO_COLOR` is set, else when asked for.
pub fn use_color(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A value for display: references become `(known after apply)`.
pub(crate) fn show(v: &Value) -> String {
    if RawRef::from_marker(v).is_some() {
        return "(known after apply)".into();
    }
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(", ")),
        Value::Object(m) if !m.is_empty() => format!(
            "{{ {} }}",
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k} = {}", show(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}
