//! The energy flow: total > phases > layers > attention/MLP side > components.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub struct SankeyNode {
    pub col: usize,
    pub name: String,
    pub value: f64,
}

/// Nodes and links (`from`, `to`, value) of the energy flow.
#[derive(Debug, Clone, Default)]
pub struct SankeyGraph {
    pub nodes: Vec<SankeyNode>,
    pub links: Vec<(usize, usize, f64)>,
}

impl SankeyGraph {
    fn node(&mut self, col: usize, name: &str) -> usize {
        if let Some(i) = self
            .nodes
            .iter()
            .position(|n| n.col == col && n.name == name)
        {
            return i;
        }
        self.nodes.push(SankeyNode {
            col,
            name: name.into(),
            value: 0.0,
        });
        self.nodes.len() - 1
    }

    fn link(&mut self, from: usize, to: usize, v: f64) {
        if v <= 0.0 {
            return;
        }
        match self.links.iter_mut().find(|l| l.0 == from && l.1 == to) {
            Some(l) => l.2 += v,
            None => self.links.push((from, to, v)),
        }
    }

    /// total > phases > layers (and what runs outside them) > attention vs MLP side
    /// > components.
    pub fn build(root: &Node, layers: usize) -> SankeyGraph {
        let mut g = SankeyGraph::default();
        let run = g.node(0, "total");
        g.nodes[run].value = root.value;
        // Layer nodes, created as the tree names them (it lists layers in order).
        let mut layer_ids: std::collections::HashMap<usize, usize> = Default::default();
        for p in root.children.iter().filter(|p| p.value > 0.0) {
            let pid = g.node(1, &p.name);
            g.nodes[pid].value += p.value;
            g.link(run, pid, p.value);
            for c in &p.children {
                let lid = match c
                    .name
                    .strip_prefix('L')
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    Some(l) if l < layers => match layer_ids.get(&l) {
                        Some(&id) => id,
                        None => {
                            g.nodes.push(SankeyNode {
                                col: 2,
                                name: c.name.clone(),
                                value: 0.0,
                            });
                            layer_ids.insert(l, g.nodes.len() - 1);
                            g.nodes.len() - 1
                        }
                    },
                    _ => g.node(2, "outside layers"),
                };
                g.nodes[lid].value += c.value;
                g.link(pid, lid, c.value);
                for comp in c.children.iter().filter(|x| x.name != "other") {
                    let side = if is_attention_side(&comp.name) {
                        "attention side"
                    } else {
                        "MLP side"
                    };
                    let sid = g.node(3, side);
                    g.nodes[sid].value += comp.value;
                    g.link(lid, sid, comp.value);
                    let cid = g.node(4, &comp.name);
                    g.nodes[cid].value += comp.value;
                    g.link(sid, cid, comp.value);
                }
            }
        }
        g
    }
}

/// Sankey diagram of where the energy (or time) flows.
pub fn sankey(v: &TraceView, m: Measure) -> String {
    let root = v.tree(m);
    let g = SankeyGraph::build(root, v.layers);
    let (w, h, nw, top) = (1000.0, 560.0, 12.0, 10.0);
    let cols = 5;
    let mut o = String::new();
    svg_open(&mut o, "chart sankey", w, h + 2.0 * top);
    if root.value <= 0.0 {
        let _ = write!(
            o,
            r#"<text x="10" y="30">no {} recorded</text></svg>"#,
            measure_name(m)
        );
        return o;
    }
    let col_x = |c: usize| 10.0 + c as f64 * (w - 170.0) / (cols - 1) as f64;
    let max_total = (0..cols)
        .map(|c| {
            g.nodes
                .iter()
                .filter(|n| n.col == c)
                .map(|n| n.value)
                .sum::<f64>()
        })
        .fold(0.0f64, f64::max);
    // (y, height) per node.
    let mut pos = vec![(0.0, 0.0); g.nodes.len()];
    for c in 0..cols {
        let ids: Vec<usize> = (0..g.nodes.len())
            .filter(|&i| g.nodes[i].col == c)
            .collect();
        let pad = if ids.len() > 20 { 2.0 } else { 8.0 };
        let vals: Vec<f64> = ids.iter().map(|&i| g.nodes[i].value).collect();
        for (&i, p) in ids.iter().zip(sankey_column(&vals, max_total, h, pad)) {
            pos[i] = (p.0 + top, p.1);
        }
    }
    let k = {
        let c0: f64 = pos[0].1;
        if g.nodes[0].value > 0.0 {
            c0 / g.nodes[0].value
        } else {
            0.0
        }
    };
    let mut out_off = vec![0.0; g.nodes.len()];
    let mut in_off = vec![0.0; g.nodes.len()];
    for &(a, b, val) in &g.links {
        let th = val * k;
        let x0 = col_x(g.nodes[a].col) + nw;
        let x1 = col_x(g.nodes[b].col);
        let y0 = pos[a].0 + out_off[a];
        let y1 = pos[b].0 + in_off[b];
        out_off[a] += th;
        in_off[b] += th;
        let xm = (x0 + x1) / 2.0;
        let colour = if g.nodes[b].name == "MLP side" || g.nodes[a].name == "MLP side" {
            PALETTE[1]
        } else if g.nodes[b].name == "attention side" || g.nodes[a].name == "attention side" {
            PALETTE[0]
        } else {
            "#8a8a8a"
        };
        let _ = write!(
            o,
            r#"<path class="sk-link" d="M{x0:.2},{y0:.2} C{xm:.2},{y0:.2} {xm:.2},{y1:.2} {x1:.2},{y1:.2} L{x1:.2},{y1e:.2} C{xm:.2},{y1e:.2} {xm:.2},{y0e:.2} {x0:.2},{y0e:.2} Z" fill="{colour}" fill-opacity="0.3"><title>{a} → {b}: {v}</title></path>"#,
            y0e = y0 + th,
            y1e = y1 + th,
            a = esc(&g.nodes[a].name),
            b = esc(&g.nodes[b].name),
            v = fmt_value(val, m)
        );
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let x = col_x(n.col);
        let (y, nh) = pos[i];
        let layer_attr = match n
            .name
            .strip_prefix('L')
            .and_then(|s| s.parse::<usize>().ok())
        {
            Some(l) if n.col == 2 => format!(r#" data-layer="{l}""#),
            _ => String::new(),
        };
        let _ = write!(
            o,
            r##"<g class="sk-node" data-col="{c}" data-name="{nm}"{layer_attr}><rect x="{x:.2}" y="{y:.2}" width="{nw}" height="{hh:.2}" fill="#333"><title>{nm}: {v} ({p} of total)</title></rect>"##,
            c = n.col,
            nm = esc(&n.name),
            hh = nh.max(0.5),
            v = fmt_value(n.value, m),
            p = pct(n.value, root.value),
        );
        if nh >= 9.0 || n.col != 2 {
            // The last column's labels go to the left of its nodes: on the right they
            // would run off the chart.
            let last = n.col + 1 == cols;
            let _ = write!(
                o,
                r##"<text class="sk-label" x="{tx:.2}" y="{ty:.2}" font-size="{fs}" fill="#222"{anchor}>{nm} {v}</text>"##,
                tx = if last { x - 3.0 } else { x + nw + 3.0 },
                anchor = if last { r#" text-anchor="end""# } else { "" },
                ty = y + nh / 2.0 + 4.0,
                fs = if n.col == 2 { 9 } else { 11 },
                nm = esc(&n.name),
                v = fmt_value(n.value, m),
            );
        }
        o.push_str("</g>");
    }
    o.push_str("</svg>");
    o
}
