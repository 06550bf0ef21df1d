//! The zoomable treemap of the energy (or time) hierarchy.

use super::*;

/// The node at `path` (child indices from the root); stops where the path ends.
pub fn node_at<'a>(root: &'a Node, path: &[usize]) -> &'a Node {
    let mut n = root;
    for &i in path {
        match n.children.get(i) {
            Some(c) => n = c,
            None => break,
        }
    }
    n
}

/// Names along `path`, root first (the breadcrumb).
pub fn path_names(root: &Node, path: &[usize]) -> Vec<String> {
    let mut n = root;
    let mut out = vec![n.name.clone()];
    for &i in path {
        match n.children.get(i) {
            Some(c) => {
                out.push(c.name.clone());
                n = c;
            }
            None => break,
        }
    }
    out
}

/// Squarified treemap of the node at `path`: its children with their own children
/// nested inside. A child with children can be clicked to zoom in (`data-idx`).
pub fn treemap(root: &Node, path: &[usize], m: Measure) -> String {
    let (w, h) = (1000.0, 520.0);
    let node = node_at(root, path);
    let mut o = String::new();
    svg_open(&mut o, "chart treemap", w, h);
    let values: Vec<f64> = node.children.iter().map(|c| c.value).collect();
    if node.value <= 0.0 || node.children.is_empty() {
        let _ = write!(
            o,
            r#"<text x="10" y="30">{} has no parts to show ({}).</text></svg>"#,
            esc(&node.name),
            fmt_value(node.value, m)
        );
        return o;
    }
    let rects = squarify(
        &values,
        Rect {
            x: 0.0,
            y: 0.0,
            w,
            h,
        },
    );
    for (i, (child, r)) in node.children.iter().zip(&rects).enumerate() {
        if r.area() <= 0.0 {
            continue;
        }
        let fill = if child.name == "other" {
            OTHER
        } else {
            PALETTE[i % PALETTE.len()]
        };
        let zoom = !child.children.is_empty();
        let _ = write!(
            o,
            r##"<g class="tm-node{z}" data-idx="{i}" data-name="{n}"><rect x="{x:.2}" y="{y:.2}" width="{rw:.2}" height="{rh:.2}" fill="{fill}" stroke="#fff" stroke-width="2"><title>{n}: {v} ({p}){hint}</title></rect>"##,
            z = if zoom { " zoomable" } else { "" },
            n = esc(&child.name),
            x = r.x,
            y = r.y,
            rw = r.w,
            rh = r.h,
            v = fmt_value(child.value, m),
            p = pct(child.value, node.value),
            hint = if zoom { " - click to zoom in" } else { "" },
        );
        // Nested children, below a label strip.
        let inner = Rect {
            x: r.x + 2.0,
            y: r.y + 16.0,
            w: (r.w - 4.0).max(0.0),
            h: (r.h - 18.0).max(0.0),
        };
        if zoom && inner.area() > 0.0 {
            let sub: Vec<f64> = child.children.iter().map(|c| c.value).collect();
            for (g, gr) in child.children.iter().zip(squarify(&sub, inner)) {
                if gr.area() <= 0.0 {
                    continue;
                }
                let _ = write!(
                    o,
                    r##"<rect class="tm-leaf" x="{x:.2}" y="{y:.2}" width="{rw:.2}" height="{rh:.2}" fill="#fff" fill-opacity="{op}" stroke="{fill}" stroke-width="0.5"><title>{pn} / {n}: {v} ({p})</title></rect>"##,
                    x = gr.x,
                    y = gr.y,
                    rw = gr.w,
                    rh = gr.h,
                    op = if g.name == "other" { 0.55 } else { 0.25 },
                    pn = esc(&child.name),
                    n = esc(&g.name),
                    v = fmt_value(g.value, m),
                    p = pct(g.value, child.value),
                );
                if gr.w > 54.0 && gr.h > 14.0 {
                    let _ = write!(
                        o,
                        r##"<text x="{x:.2}" y="{y:.2}" font-size="10" fill="#111" pointer-events="none">{n}</text>"##,
                        x = gr.x + 3.0,
                        y = gr.y + 11.0,
                        n = esc(&g.name)
                    );
                }
            }
        }
        if r.w > 40.0 && r.h > 14.0 {
            let _ = write!(
                o,
                r##"<text x="{x:.2}" y="{y:.2}" fill="{ink}" font-weight="600" pointer-events="none">{n} {p}</text>"##,
                x = r.x + 4.0,
                y = r.y + 12.0,
                ink = if fill == OTHER || fill == PALETTE[6] {
                    "#111"
                } else {
                    "#fff"
                },
                n = esc(&child.name),
                p = pct(child.value, node.value),
            );
        }
        o.push_str("</g>");
    }
    o.push_str("</svg>");
    o
}
