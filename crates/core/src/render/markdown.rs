//! The Markdown drift summary for CI step summaries (`$GITHUB_STEP_SUMMARY`).

use std::fmt::Write;

use super::show;
use crate::plan::{Action, Plan};

/// A Markdown summary: counts, a warning when something would be destroyed, and per-resource
/// details with every drifted field.
pub fn drift_summary(plans: &[Plan]) -> String {
    let mut out = String::from("# cairn drift report\n\n");
    for plan in plans {
        let s = plan.summary;
        let _ = writeln!(out, "## Stack `{}`\n", plan.stack);
        for w in &plan.warnings {
            let _ = writeln!(out, "> [!NOTE]\n> {w}\n");
        }
        if !plan.has_changes() {
            let _ = writeln!(out, "No drift: the live world matches the code.\n");
            continue;
        }
        let _ = writeln!(
            out,
            "| add | change | destroy |\n|---|---|---|\n| {} | {} | {} |\n",
            s.add, s.change, s.destroy
        );
        if s.destroy > 0 {
            let _ = writeln!(
                out,
                "> [!WARNING]\n> Applying would **destroy {} object(s)**.\n",
                s.destroy
            );
        }
        for c in plan
            .resource_changes
            .iter()
            .filter(|c| c.action().is_change())
        {
            let action = match c.action() {
                Action::Create => "create",
                Action::Update => "update",
                Action::Delete => "destroy",
                Action::Release => "release",
                _ => "replace",
            };
            let reason = c.action_reason.as_deref().unwrap_or("");
            let _ = writeln!(out, "- **`{}`** — {action}: {reason}", c.address);
            for f in &c.changes {
                let b = f.before.as_ref().map_or("(none)".into(), show);
                let a = f.after.as_ref().map_or("(none)".into(), show);
                let _ = writeln!(out, "  - `{}`: `{b}` → `{a}`", f.path);
            }
        }
        let _ = writeln!(out, "\n`{}`\n", plan.summary_line());
    }
    out
}
