//! Layout math for the viewer's charts — the energy hierarchy, a squarified treemap,
//! Sankey columns, axis ticks and a colour-blind-safe colour map — in plain Rust, so
//! it is unit-tested natively and shared by every front end.

use serde::Serialize;

use crate::model::{Phase, Trace};
use crate::summary::{Energies, component_order};

/// A rectangle in chart coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn area(&self) -> f64 {
        self.w * self.h
    }
}

/// The worst aspect ratio of a row of `areas` laid along a side of length `side`.
fn worst(areas: &[f64], side: f64) -> f64 {
    let sum: f64 = areas.iter().sum();
    let (min, max) = areas.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &a| {
        (lo.min(a), hi.max(a))
    });
    let s2 = side * side;
    let sum2 = sum * sum;
    (s2 * max / sum2).max(sum2 / (s2 * min))
}

/// Squarified treemap (Bruls, Huizing & van Wijk, 2000): one rectangle per value,
/// areas proportional to the values, filling `area`, aspect ratios close to 1.
/// Rectangles come back in the order of `values`; non-positive values get empty ones.
pub fn squarify(values: &[f64], area: Rect) -> Vec<Rect> {
    let mut out = vec![
        Rect {
            x: area.x,
            y: area.y,
            w: 0.0,
            h: 0.0
        };
        values.len()
    ];
    let total: f64 = values.iter().filter(|v| **v > 0.0).sum();
    if total <= 0.0 || area.area() <= 0.0 {
        return out;
    }
    let scale = area.area() / total;
    let mut order: Vec<usize> = (0..values.len()).filter(|&i| values[i] > 0.0).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut free = area;
    let mut row: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let side = free.w.min(free.h);
        let areas = |r: &[usize]| -> Vec<f64> { r.iter().map(|&k| values[k] * scale).collect() };
        let mut with = row.clone();
        with.push(order[i]);
        if row.is_empty() || worst(&areas(&with), side) <= worst(&areas(&row), side) {
            row = with;
            i += 1;
            continue;
        }
        free = place_row(&row, &areas(&row), free, &mut out);
        row.clear();
    }
    if !row.is_empty() {
        let a: Vec<f64> = row.iter().map(|&k| values[k] * scale).collect();
        place_row(&row, &a, free, &mut out);
    }
    out
}

/// Lay a row along the shorter side of `free`; returns what is left of it.
fn place_row(row: &[usize], areas: &[f64], free: Rect, out: &mut [Rect]) -> Rect {
    let sum: f64 = areas.iter().sum();
    if free.w >= free.h {
        // A column on the left.
        let w = if free.h > 0.0 { sum / free.h } else { 0.0 };
        let mut y = free.y;
        for (&k, &a) in row.iter().zip(areas) {
            let h = if w > 0.0 { a / w } else { 0.0 };
            out[k] = Rect { x: free.x, y, w, h };
            y += h;
        }
        Rect {
            x: free.x + w,
            y: free.y,
            w: (free.w - w).max(0.0),
            h: free.h,
        }
    } else {
        // A row on top.
        let h = if free.w > 0.0 { sum / free.w } else { 0.0 };
        let mut x = free.x;
        for (&k, &a) in row.iter().zip(areas) {
            let w = if h > 0.0 { a / h } else { 0.0 };
            out[k] = Rect { x, y: free.y, w, h };
            x += w;
        }
        Rect {
            x: free.x,
            y: free.y + h,
            w: free.w,
            h: (free.h - h).max(0.0),
        }
    }
}

/// A node of the energy (or time) hierarchy: run > phase > layer > component >
/// operation. Children sum to their parent: what no child covers is an `other` child.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Node {
    pub name: String,
    pub value: f64,
    pub children: Vec<Node>,
}

impl Node {
    pub(crate) fn leaf(name: impl Into<String>, value: f64) -> Node {
        Node {
            name: name.into(),
            value,
            children: Vec::new(),
        }
    }

    /// Add an `other` child for the part of `value` the children do not cover.
    pub(crate) fn close(mut self) -> Node {
        let covered: f64 = self.children.iter().map(|c| c.value).sum();
        let rest = self.value - covered;
        if !self.children.is_empty() && rest > self.value.abs() * 1e-9 {
            self.children.push(Node::leaf("other", rest));
        }
        self
    }
}

/// What a hierarchy measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    EnergyJ,
    TimeNs,
}

/// The hierarchy of a trace by energy or time. Energy needs a power source with
/// readings; without one every value is 0.
pub fn tree(trace: &Trace, en: &Energies, measure: Measure) -> Node {
    let comps = component_order(trace);
    let layers = trace.layer_count();
    let span_value = |i: usize| match measure {
        Measure::TimeNs => trace.spans.duration_ns(i) as f64,
        Measure::EnergyJ => en.spans[i].map_or(0.0, |e| e.joules),
    };
    // What each site adds to, decided once per site rather than by comparing names
    // per span (a 10,000-token deep trace has millions of spans and hundreds of sites).
    #[derive(Clone, Copy)]
    enum Slot {
        None,
        Layer(usize),
        Component(usize, usize),
        /// Layer, and the operation's name as a site index (its first site).
        Op(usize, usize),
    }
    let slots: Vec<Slot> = trace
        .sites
        .iter()
        .enumerate()
        .map(|(k, site)| {
            let Some(l) = site.layer.map(usize::from) else {
                return Slot::None;
            };
            if site.is_layer() {
                Slot::Layer(l)
            } else if site.is_component() {
                comps
                    .iter()
                    .position(|c| *c == site.component)
                    .map_or(Slot::None, |c| Slot::Component(l, c))
            } else if let Some(op) = &site.op {
                // Sites of the same operation name share the first one's index.
                let first = trace.sites[..k]
                    .iter()
                    .position(|x| x.op.as_deref() == Some(op.as_str()))
                    .unwrap_or(k);
                Slot::Op(l, first)
            } else {
                Slot::None
            }
        })
        .collect();
    let mut phases = Vec::new();
    for (s, e) in trace.sections.iter().zip(&en.sections) {
        if !s.is_phase() {
            continue;
        }
        let value = match measure {
            Measure::TimeNs => s.duration_ns() as f64,
            Measure::EnergyJ => e.map_or(0.0, |e| e.joules),
        };
        // The steps inside this phase, sorted for a binary search per span (a step
        // index comes from the file: never size a table by it).
        let mut in_phase: Vec<u32> = trace
            .generated()
            .filter_map(|t| t.step)
            .filter(|st| st.start_ns >= s.start_ns && st.end_ns <= s.end_ns)
            .map(|st| st.index)
            .collect();
        in_phase.sort_unstable();
        // layer -> (layer value, component values, attention operation values)
        let mut per_layer = vec![
            (
                0.0f64,
                vec![0.0f64; comps.len()],
                Vec::<(usize, f64)>::new()
            );
            layers
        ];
        if matches!(s.phase, Phase::Prefill | Phase::Decode) {
            // Spans come in step order: the last step's membership is remembered.
            let mut last: Option<(u32, bool)> = None;
            for i in 0..trace.spans.len() {
                let step = trace.spans.step[i];
                let inside = match last {
                    Some((st, inside)) if st == step => inside,
                    _ => {
                        let inside = in_phase.binary_search(&step).is_ok();
                        last = Some((step, inside));
                        inside
                    }
                };
                if !inside {
                    continue;
                }
                match slots[trace.spans.site[i] as usize] {
                    Slot::None => {}
                    Slot::Layer(l) => per_layer[l].0 += span_value(i),
                    Slot::Component(l, c) => per_layer[l].1[c] += span_value(i),
                    Slot::Op(l, op) => {
                        let v = span_value(i);
                        match per_layer[l].2.iter_mut().find(|(n, _)| *n == op) {
                            Some(x) => x.1 += v,
                            None => per_layer[l].2.push((op, v)),
                        }
                    }
                }
            }
        }
        let children = per_layer
            .into_iter()
            .enumerate()
            .filter(|(_, (v, _, _))| *v > 0.0)
            .map(|(l, (v, cv, ops))| {
                let children = comps
                    .iter()
                    .zip(cv)
                    .filter(|(_, v)| *v > 0.0)
                    .map(|(c, v)| {
                        let mut n = Node::leaf(c.clone(), v);
                        if c == "attention" {
                            n.children = ops
                                .iter()
                                .map(|&(o, v)| {
                                    Node::leaf(trace.sites[o].op.clone().unwrap_or_default(), v)
                                })
                                .collect();
                            n = n.close();
                        }
                        n
                    })
                    .collect();
                Node {
                    name: format!("L{l}"),
                    value: v,
                    children,
                }
                .close()
            })
            .collect();
        phases.push(
            Node {
                name: s.name.clone(),
                value,
                children,
            }
            .close(),
        );
    }
    let total = phases.iter().map(|p| p.value).sum();
    Node {
        name: "run".into(),
        value: total,
        children: phases,
    }
}

/// Vertical positions of the nodes of one Sankey column: `(y, height)` per value,
/// heights proportional to the values with `pad` between nodes, scaled so the column
/// whose values sum to `max_total` fills `height`.
pub fn sankey_column(values: &[f64], max_total: f64, height: f64, pad: f64) -> Vec<(f64, f64)> {
    let n = values.len() as f64;
    let usable = (height - pad * (n - 1.0).max(0.0)).max(0.0);
    let k = if max_total > 0.0 {
        usable / max_total
    } else {
        0.0
    };
    let mut y = 0.0;
    values
        .iter()
        .map(|&v| {
            let h = v.max(0.0) * k;
            let r = (y, h);
            y += h + pad;
            r
        })
        .collect()
}

/// About `n` round tick values covering `[lo, hi]` (1, 2, 5 x 10^k steps).
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || n == 0 {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let count = |step: f64| ((hi / step + 1e-9).floor() - (lo / step - 1e-9).ceil() + 1.0).max(0.0);
    // The 1-2-5 step whose tick count is closest to `n` (the larger step on a tie).
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .min_by(|a, b| {
            let da = (count(*a) - n as f64).abs();
            let db = (count(*b) - n as f64).abs();
            da.total_cmp(&db).then(b.total_cmp(a))
        })
        .unwrap_or(mag);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

/// Viridis (perceptually uniform, readable with the common colour-vision
/// deficiencies) at `t` in [0, 1], as RGB.
pub fn viridis(t: f64) -> (u8, u8, u8) {
    const STOPS: [(f64, f64, f64); 9] = [
        (68.0, 1.0, 84.0),
        (71.0, 44.0, 122.0),
        (59.0, 81.0, 139.0),
        (44.0, 113.0, 142.0),
        (33.0, 144.0, 141.0),
        (39.0, 173.0, 129.0),
        (92.0, 200.0, 99.0),
        (170.0, 220.0, 50.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Depth;
    use crate::synthetic::{self, Shape};

    #[test]
    fn the_tree_adds_up_to_the_summary_rows() {
        let t = synthetic::trace(&Shape {
            generated_tokens: 12,
            layers: 3,
            depth: Depth::Deep,
            ..Shape::default()
        });
        let en = Energies::compute(&t);
        let s = crate::Summary::compute(&t, &en);
        let root = tree(&t, &en, Measure::TimeNs);
        // Durations are integers: sums over phases equal the summary's exactly.
        let sum = |path: &dyn Fn(&Node) -> Option<f64>| -> f64 {
            root.children.iter().filter_map(path).sum()
        };
        let child = |n: &Node, name: &str| n.children.iter().find(|c| c.name == name).cloned();
        for row in &s.layer_components {
            let (l, c) = row.name.split_once('.').unwrap();
            let v = sum(&|p| Some(child(&child(p, l)?, c)?.value));
            assert_eq!(v, row.duration_ns as f64, "{}", row.name);
        }
        for row in &s.layers {
            assert_eq!(
                sum(&|p| Some(child(p, &row.name)?.value)),
                row.duration_ns as f64
            );
        }
        // Each attention operation over every layer and phase.
        for row in s
            .operations
            .iter()
            .filter(|r| r.name.starts_with("attention."))
        {
            let op = row.name.trim_start_matches("attention.");
            let v: f64 = (0..3)
                .map(|l| {
                    sum(&|p| {
                        Some(child(&child(&child(p, &format!("L{l}"))?, "attention")?, op)?.value)
                    })
                })
                .sum();
            assert_eq!(v, row.duration_ns as f64, "{}", row.name);
        }
        assert!(
            s.operations
                .iter()
                .any(|r| r.name.starts_with("attention."))
        );
    }

    #[test]
    fn squarify_fills_the_area_in_proportion_without_overlap() {
        let vals = [6.0, 6.0, 4.0, 3.0, 2.0, 2.0, 1.0, 0.0];
        let area = Rect {
            x: 0.0,
            y: 0.0,
            w: 6.0,
            h: 4.0,
        };
        let r = squarify(&vals, area);
        let total: f64 = vals.iter().sum();
        for (v, rect) in vals.iter().zip(&r) {
            assert!(
                (rect.area() - v / total * 24.0).abs() < 1e-9,
                "{v} -> {rect:?}"
            );
            assert!(
                rect.x >= -1e-9
                    && rect.y >= -1e-9
                    && rect.x + rect.w <= 6.0 + 1e-9
                    && rect.y + rect.h <= 4.0 + 1e-9
            );
        }
        for i in 0..r.len() {
            for j in i + 1..r.len() {
                let (a, b) = (r[i], r[j]);
                let ox = (a.x + a.w).min(b.x + b.w) - a.x.max(b.x);
                let oy = (a.y + a.h).min(b.y + b.h) - a.y.max(b.y);
                assert!(ox <= 1e-9 || oy <= 1e-9, "{a:?} overlaps {b:?}");
            }
        }
        // The paper's example: the first two squares are 3 x 2 halves of a column.
        assert!(
            (r[0].w - 3.0).abs() < 1e-9 && (r[0].h - 2.0).abs() < 1e-9,
            "{:?}",
            r[0]
        );
    }

    #[test]
    fn the_tree_conserves_at_every_level() {
        let t = synthetic::trace(&Shape {
            generated_tokens: 6,
            layers: 3,
            depth: Depth::Deep,
            ..Shape::default()
        });
        let en = Energies::compute(&t);
        let root = tree(&t, &en, Measure::EnergyJ);
        fn check(n: &Node) {
            if !n.children.is_empty() {
                let s: f64 = n.children.iter().map(|c| c.value).sum();
                assert!(
                    (s - n.value).abs() <= 1e-9 * n.value.abs().max(1e-12),
                    "{}: {s} vs {}",
                    n.name,
                    n.value
                );
                n.children.iter().for_each(check);
            }
        }
        check(&root);
        let total = en.total.unwrap().joules;
        assert!((root.value - total).abs() <= 1e-9 * total);
        let decode = root.children.iter().find(|c| c.name == "decode").unwrap();
        assert!(decode.children.iter().any(|c| c.name == "L2"));
        let l0 = &decode.children[0];
        let attn = l0.children.iter().find(|c| c.name == "attention").unwrap();
        assert!(attn.children.iter().any(|c| c.name == "softmax"));
    }

    #[test]
    fn ticks_columns_and_colours() {
        assert_eq!(
            nice_ticks(0.0, 1.0, 5),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(nice_ticks(3.0, 97.0, 4), vec![20.0, 40.0, 60.0, 80.0]);
        let col = sankey_column(&[3.0, 1.0], 4.0, 110.0, 10.0);
        assert_eq!(col, vec![(0.0, 75.0), (85.0, 25.0)]);
        assert_eq!(viridis(0.0), (68, 1, 84));
        assert_eq!(viridis(1.0), (253, 231, 37));
        assert_eq!(viridis(f64::NAN), (68, 1, 84));
    }
}
