//! The stack graph as Graphviz DOT and as a self-contained SVG picture (a layered layout
//! drawn here, so no Graphviz is needed). Resources are boxes coloured by provider, gates
//! are hexagons; edges run from a dependency to its dependent.

use std::fmt::Write;

use crate::stack::{NodeDef, Stack};

fn label(node: &NodeDef) -> (String, String) {
    match node {
        NodeDef::Resource(r) => (r.kind.to_string(), r.address.name().to_string()),
        NodeDef::Gate(g) => (format!("gate {}", g.address.name()), g.probe.describe()),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The graph in DOT.
pub fn graph_dot(stack: &Stack) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n",
        stack.name()
    );
    for (i, node) in stack.nodes().iter().enumerate() {
        let shape = match node {
            NodeDef::Resource(_) => "box",
            NodeDef::Gate(_) => "hexagon",
        };
        let (a, b) = label(node);
        let _ = writeln!(
            out,
            "  n{i} [shape={shape}, label=\"{}\\n{}\"];",
            a.replace('"', "'"),
            b.replace('"', "'")
        );
        for &d in stack.deps(i) {
            let _ = writeln!(out, "  n{d} -> n{i};");
        }
    }
    out.push_str("}\n");
    out
}

const COL_GAP: f64 = 70.0;
const ROW_GAP: f64 = 26.0;
const NODE_H: f64 = 44.0;
const CHAR_W: f64 = 6.6;

/// The graph as SVG: nodes in columns by longest-path depth, ordered to reduce crossings.
pub fn graph_svg(stack: &Stack) -> String {
    let n = stack.nodes().len();
    let mut depth = vec![0usize; n];
    for &i in stack.order() {
        depth[i] = stack
            .deps(i)
            .iter()
            .map(|&d| depth[d] + 1)
            .max()
            .unwrap_or(0);
    }
    let cols = depth.iter().copied().max().map_or(0, |m| m + 1);
    let mut columns: Vec<Vec<usize>> = vec![Vec::new(); cols];
    for &i in stack.order() {
        columns[depth[i]].push(i);
    }
    // One barycentre pass: order each column by the mean row of its dependencies.
    let mut row = vec![0f64; n];
    for col in columns.iter_mut() {
        let key = |i: &usize| {
            let ds = stack.deps(*i);
            if ds.is_empty() {
                *i as f64 / n as f64
            } else {
                ds.iter().map(|&d| row[d]).sum::<f64>() / ds.len() as f64
            }
        };
        col.sort_by(|a, b| key(a).total_cmp(&key(b)));
        for (r, &i) in col.iter().enumerate() {
            row[i] = r as f64;
        }
    }
    let labels: Vec<(String, String)> = stack.nodes().iter().map(label).collect();
    let width_of =
        |i: usize| (labels[i].0.len().max(labels[i].1.len()) as f64 * CHAR_W + 24.0).min(360.0);
    let col_w: Vec<f64> = columns
        .iter()
        .map(|c| c.iter().map(|&i| width_of(i)).fold(80.0, f64::max))
        .collect();
    let mut x0 = vec![0f64; cols];
    let mut x = 20.0;
    for (c, w) in col_w.iter().enumerate() {
        x0[c] = x;
        x += w + COL_GAP;
    }
    let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
    let height = rows as f64 * (NODE_H + ROW_GAP) + 40.0;
    let width = x - COL_GAP + 20.0;
    let pos: Vec<(f64, f64, f64)> = (0..n)
        .map(|i| {
            let c = depth[i];
            let r = columns[c].iter().position(|&j| j == i).unwrap_or(0) as f64;
            let offset = (rows - columns[c].len()) as f64 * (NODE_H + ROW_GAP) / 2.0;
            (x0[c], 20.0 + offset + r * (NODE_H + ROW_GAP), col_w[c])
        })
        .collect();

    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="11">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="14" font-size="12" font-weight="bold">{}</text>"##,
        escape(stack.name())
    );
    for i in 0..n {
        for &d in stack.deps(i) {
            let (dx, dy, dw) = pos[d];
            let (ix, iy, _) = pos[i];
            let (x1, y1, x2, y2) = (dx + dw, dy + NODE_H / 2.0, ix, iy + NODE_H / 2.0);
            let mid = (x1 + x2) / 2.0;
            let _ = writeln!(
                out,
                r##"<path d="M {x1:.1} {y1:.1} C {mid:.1} {y1:.1}, {mid:.1} {y2:.1}, {x2:.1} {y2:.1}" fill="none" stroke="#555" stroke-width="1.2" marker-end="url(#arrow)"/>"##
            );
        }
    }
    for (i, node) in stack.nodes().iter().enumerate() {
        let (x, y, w) = pos[i];
        let (top, bottom) = &labels[i];
        match node {
            NodeDef::Resource(r) => {
                let fill = match r.provider {
                    "hetzner" => "#fde2e2",
                    "proxmox" => "#ffe9cc",
                    "pfsense" => "#dde8fb",
                    _ => "#eeeeee",
                };
                let _ = writeln!(
                    out,
                    r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{NODE_H}" rx="5" fill="{fill}" stroke="#333"/>"##
                );
            }
            NodeDef::Gate(_) => {
                let (h, m) = (NODE_H, 12.0);
                let _ = writeln!(
                    out,
                    r##"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="#e6f5e6" stroke="#2a7a2a"/>"##,
                    x,
                    y + h / 2.0,
                    x + m,
                    y,
                    x + w - m,
                    y,
                    x + w,
                    y + h / 2.0,
                    x + w - m,
                    y + h,
                    x + m,
                    y + h
                );
            }
        }
        let cx = x + w / 2.0;
        let _ = writeln!(
            out,
            r##"<text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text>"##,
            y + 18.0,
            escape(top)
        );
        let _ = writeln!(
            out,
            r##"<text x="{cx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            y + 33.0,
            escape(&truncate(bottom, (w / CHAR_W) as usize))
        );
    }
    out.push_str("</svg>\n");
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max.saturating_sub(1)).collect::<String>() + "…"
    }
}
