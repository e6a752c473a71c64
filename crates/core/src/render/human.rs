//! Terraform-style text: `+` create, `~` update, `-/+` replace, `-` delete, field-level
//! changes, line diffs of multi-line strings, gates, checks and the summary line.

use std::fmt::Write;

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::show;
use crate::apply::{ApplyReport, Outcome};
use crate::plan::{Action, Plan, ResourceChange};
use crate::value::RawRef;

struct Paint(bool);

impl Paint {
    fn c(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// Renders a plan as text. `color` adds ANSI colours (see [`super::use_color`]).
pub fn render_plan(plan: &Plan, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    let changing: Vec<&ResourceChange> = plan
        .resource_changes
        .iter()
        .filter(|c| c.action().is_change())
        .collect();
    if changing.is_empty() {
        let _ = writeln!(
            out,
            "No changes. Stack {:?} matches the live world ({} resources).",
            plan.stack,
            plan.resource_changes.len()
        );
    } else {
        let _ = writeln!(
            out,
            "Stack {:?}: cairn will perform the following actions:\n",
            plan.stack
        );
    }
    for c in changing {
        let (sym, code, label) = match c.action() {
            Action::Create => ("+", "32", "create"),
            Action::Update => ("~", "33", "update in place"),
            Action::DeleteCreate => ("-/+", "35", "replace (destroy, then create)"),
            Action::CreateDelete => ("+/-", "35", "replace (create new, then destroy old)"),
            Action::Delete => ("-", "31", "destroy"),
            Action::Release => ("~", "36", "release: marker removed, object kept"),
            Action::NoOp | Action::Read => continue,
        };
        let reason = c
            .action_reason
            .as_deref()
            .map(|r| format!(" — {r}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {}  ({label}{reason})",
            p.c(code, sym),
            p.c("1", &c.address.0)
        );
        match c.action() {
            Action::Create => {
                if let Some(after) = &c.after {
                    for (path, v) in leaves(&crate::plan::redact(after, c.sensitive)) {
                        let _ = writeln!(out, "      {} {path} = {}", p.c("32", "+"), show(&v));
                    }
                }
            }
            Action::Delete | Action::Release => {}
            _ => {
                for f in &c.changes {
                    let mut notes = Vec::new();
                    if f.forces_replace {
                        notes.push("forces replacement");
                    }
                    if f.needs_restart {
                        notes.push("applies on next restart");
                    }
                    let note = if notes.is_empty() {
                        String::new()
                    } else {
                        p.c("2", &format!("   # {}", notes.join(", ")))
                    };
                    match (&f.before, &f.after) {
                        (Some(Value::String(b)), Some(Value::String(a)))
                            if b.contains('\n') || a.contains('\n') =>
                        {
                            let _ = writeln!(out, "      {} {}:{note}", p.c("33", "~"), f.path);
                            line_diff(&mut out, &p, b, a);
                        }
                        (None, Some(a)) => {
                            let _ = writeln!(
                                out,
                                "      {} {} = {}{note}",
                                p.c("32", "+"),
                                f.path,
                                show(a)
                            );
                        }
                        (Some(b), None) => {
                            let _ = writeln!(
                                out,
                                "      {} {} = {}{note}",
                                p.c("31", "-"),
                                f.path,
                                show(b)
                            );
                        }
                        (b, a) => {
                            let b = b.as_ref().map_or("(none)".into(), show);
                            let a = a.as_ref().map_or("(none)".into(), show);
                            let _ = writeln!(
                                out,
                                "      {} {}: {b} → {a}{note}",
                                p.c("33", "~"),
                                f.path
                            );
                        }
                    }
                }
            }
        }
        for s in &c.steps {
            let _ = writeln!(out, "      {} {s}", p.c("36", "»"));
        }
    }
    let gates: Vec<_> = plan.gates.iter().filter(|g| g.will_run).collect();
    if !gates.is_empty() {
        let _ = writeln!(out, "\nGates (wait before their dependents run):");
        for g in gates {
            let after = if g.after.is_empty() {
                String::new()
            } else {
                format!(
                    ", after {}",
                    g.after
                        .iter()
                        .map(|a| a.0.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(
                out,
                "  {} {}: {} (every {}s, up to {}s{after})",
                p.c("36", "⧗"),
                g.address,
                g.description,
                g.interval_secs,
                g.timeout_secs
            );
        }
    }
    if !plan.checks.is_empty() {
        let _ = writeln!(out, "\nChecks:");
        for c in &plan.checks {
            let mark = if c.passed {
                p.c("32", "✓")
            } else {
                p.c("31", "✗")
            };
            let _ = writeln!(out, "  {mark} {}: {}", c.name, c.message);
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for w in &plan.warnings {
            let _ = writeln!(out, "  {} {w}", p.c("33", "!"));
        }
    }
    let _ = writeln!(out, "\n{}", plan.summary_line());
    out
}

fn line_diff(out: &mut String, p: &Paint, before: &str, after: &str) {
    let diff = TextDiff::from_lines(before, after);
    for change in diff.iter_all_changes() {
        let (sign, code) = match change.tag() {
            ChangeTag::Delete => ("-", "31"),
            ChangeTag::Insert => ("+", "32"),
            ChangeTag::Equal => (" ", "2"),
        };
        let _ = writeln!(
            out,
            "          {}",
            p.c(
                code,
                &format!("{sign} {}", change.value().trim_end_matches('\n'))
            )
        );
    }
}

/// Flattens a value into `(path, leaf)` pairs, skipping nulls; references are leaves.
fn leaves(v: &Value) -> Vec<(String, Value)> {
    fn go(v: &Value, path: String, out: &mut Vec<(String, Value)>) {
        if RawRef::from_marker(v).is_some() {
            out.push((path, v.clone()));
            return;
        }
        match v {
            Value::Null => {}
            Value::Object(m) if !m.is_empty() => {
                for (k, c) in m {
                    go(
                        c,
                        if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        },
                        out,
                    );
                }
            }
            other => out.push((path, other.clone())),
        }
    }
    let mut out = Vec::new();
    go(v, String::new(), &mut out);
    out
}

/// Renders the final apply report: one line per node that had work, then the counts.
pub fn render_report(report: &ApplyReport, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::from("\nApply report:\n");
    for e in &report.entries {
        let (mark, detail) = match &e.outcome {
            Outcome::Done => (p.c("32", "done   "), String::new()),
            Outcome::Unchanged => (p.c("2", "same   "), String::new()),
            Outcome::Failed(why) => (p.c("31", "FAILED "), format!(": {why}")),
            Outcome::Skipped(why) => (p.c("33", "skipped"), format!(" (because {why})")),
        };
        let _ = writeln!(
            out,
            "  {mark} {} [{}] {:.1}s{detail}",
            e.address, e.what, e.elapsed_secs
        );
    }
    let (done, failed, skipped) = report.counts();
    let _ = writeln!(
        out,
        "Apply {}: {done} done, {failed} failed, {skipped} skipped.",
        if failed == 0 {
            "complete"
        } else {
            "incomplete"
        }
    );
    if failed > 0 {
        let _ = writeln!(
            out,
            "Fix the failures above and run apply again: finished work is kept, and the next plan starts from the live state."
        );
    }
    out
}
