//! The icicle (flame) view: run > phase > section > layer > component > operation,
//! one row per level, widths by time or energy. Clicking a node zooms into it (its
//! `data-path`: child indices from the root); the breadcrumbs lead back out.

use super::*;

/// Row height of the icicle.
const ROW: f64 = 30.0;

/// The icicle of the node at `path` of `root`: that node across the top, its
/// descendants below, each as wide as its share (every node is drawn, however
/// narrow, so the chart holds the whole hierarchy; only labels that fit are written).
pub fn icicle(root: &Node, path: &[usize], m: Measure) -> String {
    let node = node_at(root, path);
    let depth = depth_of(node);
    let (w, h) = (1000.0, ROW * depth as f64 + 2.0);
    let mut o = String::new();
    svg_open(&mut o, "chart icicle", w, h);
    if node.value <= 0.0 {
        let _ = write!(
            o,
            r#"<text x="10" y="20">{} has nothing to show ({}).</text></svg>"#,
            esc(&node.name),
            fmt_value(node.value, m)
        );
        return o;
    }
    let mut at: Vec<usize> = path.to_vec();
    draw(&mut o, node, &mut at, 0.0, w, 0, node.value, m, 0);
    o.push_str("</svg>");
    o
}

fn depth_of(n: &Node) -> usize {
    1 + n.children.iter().map(depth_of).max().unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
fn draw(
    o: &mut String,
    n: &Node,
    path: &mut Vec<usize>,
    x: f64,
    width: f64,
    level: usize,
    top_value: f64,
    m: Measure,
    colour: usize,
) {
    let y = level as f64 * ROW;
    let rgb = if n.name == "other" {
        (0xbb, 0xbb, 0xbb)
    } else if level == 0 {
        (0x55, 0x55, 0x55)
    } else {
        viridis(0.1 + 0.8 * ((colour * 37 + level * 11) % 100) as f64 / 100.0)
    };
    let fill = hex(rgb);
    let p = path
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(".");
    let _ = write!(
        o,
        r##"<g class="ic-node" data-path="{p}" data-name="{n}" data-v="{v}"><rect x="{x:.2}" y="{y}" width="{wd:.2}" height="{rh}" fill="{fill}" stroke="#fff" stroke-width="1"><title>{n}: {fv} ({pc} of the view)</title></rect>"##,
        n = esc(&n.name),
        v = n.value,
        wd = width,
        rh = ROW - 1.0,
        fv = fmt_value(n.value, m),
        pc = pct(n.value, top_value),
    );
    let label_fits = (n.name.len() as f64 + 1.0) * 6.5 < width;
    if label_fits {
        let _ = write!(
            o,
            r#"<text x="{tx:.2}" y="{ty}" fill="{ink}" pointer-events="none">{n}</text>"#,
            tx = x + 4.0,
            ty = y + 19.0,
            ink = ink(rgb),
            n = esc(&n.name)
        );
    }
    o.push_str("</g>");
    let mut cx = x;
    for (i, c) in n.children.iter().enumerate() {
        let cw = if n.value > 0.0 {
            width * c.value.max(0.0) / n.value
        } else {
            0.0
        };
        path.push(i);
        draw(
            o,
            c,
            path,
            cx,
            cw,
            level + 1,
            top_value,
            m,
            colour * 7 + i + 1,
        );
        path.pop();
        cx += cw;
    }
}
