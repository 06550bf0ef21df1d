//! Every chart of the viewer as one SVG (or HTML) string, in plain Rust.
//!
//! Large grids and long series are written as one string and inserted once, not built
//! as thousands of reactive nodes. Elements carry `class` and `data-*` attributes
//! that the app uses for clicks (event delegation) and the browser test uses to count
//! what was drawn. Natively unit-tested: `cargo test -p eprof-viewer`.

use std::fmt::Write;

use eprof_format::layout::{Measure, Node, Rect, nice_ticks, sankey_column, squarify, viridis};
use eprof_format::model::ChannelKind;
use eprof_format::summary::{Grid, short_component};

use crate::data::{
    TraceView, fmt_joules, fmt_ns, fmt_num, fmt_tick, fmt_value, is_attention_side, trim_zeros,
};

/// Okabe-Ito: a categorical palette distinguishable with the common colour-vision
/// deficiencies.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999",
];
const OTHER: &str = "#bbbbbb";

/// Escape text for HTML/SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// Dark text on light fills, light text on dark ones.
fn ink((r, g, b): (u8, u8, u8)) -> &'static str {
    let l = 0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b);
    if l > 140.0 { "#111" } else { "#fff" }
}

fn svg_open(o: &mut String, class: &str, w: f64, h: f64) {
    let _ = write!(
        o,
        r#"<svg class="{class}" viewBox="0 0 {w} {h}" width="100%" preserveAspectRatio="xMinYMin meet" role="img" aria-label="{label}" xmlns="http://www.w3.org/2000/svg" font-family="system-ui,sans-serif" font-size="11">"#,
        label = class.trim_start_matches("chart ")
    );
}

fn measure_name(m: Measure) -> &'static str {
    match m {
        Measure::EnergyJ => "energy",
        Measure::TimeNs => "time",
    }
}

fn pct(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.1}%", part / whole * 100.0)
    } else {
        "-".into()
    }
}

// ---------------------------------------------------------------- timeline

/// Pipeline timeline: one row of phase bars, one row of the sections inside each
/// phase (aggregated by name), widths proportional to duration or energy.
pub fn timeline(v: &TraceView, m: Measure) -> String {
    let (w, left, right) = (1000.0, 100.0, 10.0);
    let plot = w - left - right;
    let phases: Vec<(String, f64, String)> = v
        .summary
        .phases
        .iter()
        .map(|r| {
            let val = match m {
                Measure::TimeNs => r.duration_ns as f64,
                Measure::EnergyJ => r.joules().unwrap_or(0.0),
            };
            let label = r.energy.map_or("no energy", |e| e.label.as_str());
            (r.name.clone(), val, label.to_string())
        })
        .collect();
    let total: f64 = phases.iter().map(|p| p.1).sum();
    let mut o = String::new();
    svg_open(&mut o, "chart timeline", w, 130.0);
    let _ = write!(
        o,
        r#"<text x="4" y="38">phases</text><text x="4" y="78">sections</text>"#
    );
    if total <= 0.0 {
        let _ = write!(
            o,
            r#"<text x="{left}" y="38">no {} recorded</text></svg>"#,
            measure_name(m)
        );
        return o;
    }
    let k = plot / total;
    let mut x = left;
    for (pi, (name, val, label)) in phases.iter().enumerate() {
        let pw = val * k;
        let fill = PALETTE[pi % PALETTE.len()];
        let _ = write!(
            o,
            r##"<g class="tl-phase" data-name="{n}"><rect x="{x:.2}" y="20" width="{pw:.2}" height="28" fill="{fill}" stroke="#fff" stroke-width="1"><title>{n}: {v} ({p}, {label})</title></rect>"##,
            n = esc(name),
            v = fmt_value(*val, m),
            p = pct(*val, total),
        );
        if pw > 60.0 {
            let _ = write!(
                o,
                r#"<text x="{tx:.2}" y="38" fill="{ink}">{n}</text>"#,
                tx = x + 4.0,
                ink = if pi % PALETTE.len() == 6 {
                    "#111"
                } else {
                    "#fff"
                },
                n = esc(name)
            );
        }
        o.push_str("</g>");
        // The phase's sections, aggregated by name, inside the phase's extent.
        let prefix = format!("{name}/");
        let subs: Vec<(&str, f64, u32)> = v
            .summary
            .sections
            .iter()
            .filter_map(|r| {
                let sub = r.name.strip_prefix(&prefix)?;
                let val = match m {
                    Measure::TimeNs => r.duration_ns as f64,
                    Measure::EnergyJ => r.joules().unwrap_or(0.0),
                };
                Some((sub, val, r.count))
            })
            .collect();
        let sub_total: f64 = subs.iter().map(|s| s.1).sum();
        let mut sx = x;
        for (si, (sub, sval, count)) in subs.iter().enumerate() {
            let sw = if sub_total > 0.0 {
                pw * sval / sub_total
            } else {
                0.0
            };
            let t = si as f64 / (subs.len().max(2) - 1) as f64;
            let fill = viridis(0.15 + 0.7 * t);
            let _ = write!(
                o,
                r##"<g class="tl-sec" data-name="{n}"><rect x="{sx:.2}" y="60" width="{sw:.2}" height="28" fill="{f}" stroke="#fff" stroke-width="0.5"><title>{n}: {v} over {count} occurrence(s) ({p} of {pn})</title></rect>"##,
                n = esc(&format!("{name}/{sub}")),
                f = hex(fill),
                v = fmt_value(*sval, m),
                p = pct(*sval, *val),
                pn = esc(name),
            );
            if sw > 70.0 {
                let _ = write!(
                    o,
                    r#"<text x="{tx:.2}" y="78" fill="{ink}">{s}</text>"#,
                    tx = sx + 3.0,
                    ink = ink(fill),
                    s = esc(sub)
                );
            }
            o.push_str("</g>");
            sx += sw;
        }
        x += pw;
    }
    axis_x(&mut o, left, plot, 96.0, total, |t| fmt_value(t, m));
    o.push_str("</svg>");
    o
}

/// A horizontal axis from 0 to `max` at height `y`.
fn axis_x(o: &mut String, left: f64, plot: f64, y: f64, max: f64, fmt: impl Fn(f64) -> String) {
    let _ = write!(
        o,
        r##"<line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" stroke="#888"/>"##,
        x2 = left + plot
    );
    for t in nice_ticks(0.0, max, 6) {
        let x = left + t / max * plot;
        let _ = write!(
            o,
            r##"<line x1="{x:.2}" y1="{y}" x2="{x:.2}" y2="{y2}" stroke="#888"/><text x="{x:.2}" y="{ty}" text-anchor="middle" fill="#444">{l}</text>"##,
            y2 = y + 4.0,
            ty = y + 16.0,
            l = esc(&trim_zeros(&fmt(t)))
        );
    }
}

// ---------------------------------------------------------------- power

/// Average power per channel over equal time buckets of the pipeline.
#[derive(Debug, Clone)]
pub struct PowerSeries {
    pub start_ns: u64,
    pub end_ns: u64,
    pub bucket_ns: f64,
    /// Channel name, kind, and watts per bucket.
    pub channels: Vec<(String, Option<ChannelKind>, Vec<Option<f64>>)>,
}

impl PowerSeries {
    pub fn new(v: &TraceView) -> Option<PowerSeries> {
        let (start, end) = v.trace.pipeline_bounds()?;
        if end <= start || !v.has_energy {
            return None;
        }
        let readings = v
            .trace
            .samples
            .iter()
            .filter(|s| s.t1_ns >= start && s.t0_ns <= end)
            .count();
        let n = readings.clamp(2, 400);
        let bucket = (end - start) as f64 / n as f64;
        let a = &v.energies.attribution;
        let desc = &v.trace.meta.power;
        let mut per: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(n); desc.channels.len()];
        let mut total = Vec::with_capacity(n);
        for b in 0..n {
            let t0 = start + (b as f64 * bucket) as u64;
            let t1 = start + ((b + 1) as f64 * bucket) as u64;
            let p = a.power_w(t0, t1);
            total.push(desc.total_of(&p));
            for (c, w) in p.into_iter().enumerate() {
                per[c].push(w);
            }
        }
        let mut channels: Vec<(String, Option<ChannelKind>, Vec<Option<f64>>)> = desc
            .channels
            .iter()
            .zip(per)
            .filter(|(_, w)| w.iter().any(Option::is_some))
            .map(|(c, w)| (c.name.clone(), Some(c.kind), w))
            .collect();
        if channels.len() != 1 || !desc.channels.iter().all(|c| c.in_total) {
            channels.push(("total".into(), None, total));
        }
        Some(PowerSeries {
            start_ns: start,
            end_ns: end,
            bucket_ns: bucket,
            channels,
        })
    }

    pub fn buckets(&self) -> usize {
        self.channels.first().map_or(0, |c| c.2.len())
    }

    fn max_w(&self) -> f64 {
        self.channels
            .iter()
            .flat_map(|c| c.2.iter().flatten())
            .fold(0.0f64, |a, &b| a.max(b))
    }

    /// The bucket under a horizontal position in [0, 1] of the plot, and its readout.
    pub fn readout(&self, frac: f64) -> (usize, String) {
        let n = self.buckets();
        let i = ((frac.clamp(0.0, 1.0) * n as f64) as usize).min(n.saturating_sub(1));
        let t = (i as f64 + 0.5) * self.bucket_ns;
        let mut s = format!("t = {}", fmt_ns(t));
        for (name, _, w) in &self.channels {
            let _ = match w.get(i).copied().flatten() {
                Some(w) => write!(s, " · {name} {w:.2} W"),
                None => write!(s, " · {name} -"),
            };
        }
        (i, s)
    }
}

pub const POWER_LEFT: f64 = 60.0;
pub const POWER_PLOT: f64 = 920.0;

/// Power over time, one line per channel plus the total, with phase bands.
pub fn power(v: &TraceView, ps: Option<&PowerSeries>, hover: Option<usize>) -> String {
    let (w, h, top, bottom) = (1000.0, 260.0, 24.0, 30.0);
    let (left, plot) = (POWER_LEFT, POWER_PLOT);
    let ph = h - top - bottom;
    let mut o = String::new();
    svg_open(&mut o, "chart power", w, h);
    let Some(ps) = ps else {
        let _ = write!(
            o,
            r#"<text x="{left}" y="40">This trace has no power readings (source: {}).</text></svg>"#,
            esc(&v.trace.meta.power.name)
        );
        return o;
    };
    let span = (ps.end_ns - ps.start_ns) as f64;
    let xs = |t_ns: f64| left + t_ns / span * plot;
    let max = ps.max_w().max(1e-9) * 1.08;
    let ys = |w: f64| top + ph - w / max * ph;
    // Phase bands.
    for (i, s) in v.trace.sections.iter().filter(|s| s.is_phase()).enumerate() {
        let x0 = xs(s.start_ns.saturating_sub(ps.start_ns) as f64);
        let x1 = xs(s.end_ns.saturating_sub(ps.start_ns) as f64);
        let _ = write!(
            o,
            r##"<rect class="pw-band" x="{x0:.2}" y="{top}" width="{bw:.2}" height="{ph}" fill="{f}" fill-opacity="0.12"><title>{n}</title></rect>"##,
            bw = (x1 - x0).max(0.0),
            f = PALETTE[i % PALETTE.len()],
            n = esc(s.phase.as_str()),
        );
        // Label the bands wide enough to hold one, inside the plot.
        if x1 - x0 > 6.5 * s.phase.as_str().len() as f64 {
            let _ = write!(
                o,
                r##"<text x="{tx:.2}" y="{ty}" fill="#555" font-size="10">{n}</text>"##,
                tx = x0 + 3.0,
                ty = top + 12.0,
                n = esc(s.phase.as_str()),
            );
        }
    }
    for t in nice_ticks(0.0, max, 5) {
        let y = ys(t);
        let _ = write!(
            o,
            r##"<line x1="{left}" y1="{y:.2}" x2="{x2}" y2="{y:.2}" stroke="#ddd"/><text x="{tx}" y="{ty:.2}" text-anchor="end" fill="#444">{t} W</text>"##,
            x2 = left + plot,
            tx = left - 4.0,
            ty = y + 4.0,
            t = trim_zeros(&fmt_num(t))
        );
    }
    axis_x(&mut o, left, plot, top + ph, span, fmt_ns);
    for (ci, (name, kind, watts)) in ps.channels.iter().enumerate() {
        let colour = if kind.is_none() {
            "#222"
        } else {
            PALETTE[ci % (PALETTE.len() - 1)]
        };
        let mut pts = String::new();
        for (b, w) in watts.iter().enumerate() {
            if let Some(w) = w {
                let _ = write!(
                    pts,
                    "{:.2},{:.2} ",
                    xs((b as f64 + 0.5) * ps.bucket_ns),
                    ys(*w)
                );
            }
        }
        let _ = write!(
            o,
            r#"<polyline class="pw-line" data-channel="{n}" data-points="{np}" points="{pts}" fill="none" stroke="{colour}" stroke-width="{sw}"{dash}/>"#,
            n = esc(name),
            np = watts.iter().flatten().count(),
            sw = if kind.is_none() { 2.0 } else { 1.5 },
            dash = if kind.is_none() {
                r#" stroke-dasharray="5 3""#
            } else {
                ""
            },
        );
        let _ = write!(
            o,
            r##"<rect x="{lx}" y="4" width="10" height="10" fill="{colour}"/><text x="{tx}" y="13" fill="#222">{n}</text>"##,
            lx = left + 10.0 + ci as f64 * 130.0,
            tx = left + 24.0 + ci as f64 * 130.0,
            n = esc(name)
        );
    }
    if let Some(i) = hover.filter(|&i| i < ps.buckets()) {
        let x = xs((i as f64 + 0.5) * ps.bucket_ns);
        let _ = write!(
            o,
            r##"<line class="pw-hover" x1="{x:.2}" y1="{top}" x2="{x:.2}" y2="{y2}" stroke="#000" stroke-dasharray="2 2"/>"##,
            y2 = top + ph
        );
    }
    o.push_str("</svg>");
    o
}

// ---------------------------------------------------------------- heatmap

/// How heatmap values map to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourScale {
    /// Linear from 0 (`zero_based`) or the smallest value to the largest.
    Linear { zero_based: bool },
    /// Logarithmic between the smallest and largest value (positive values only; a
    /// grid with others falls back to linear and says so).
    Log,
}

/// Layer x component heatmap of one grid; `fmt` renders a cell's value.
pub fn heatmap(
    grid: &Grid,
    title: &str,
    fmt: &dyn Fn(f64) -> String,
    scale: ColourScale,
) -> String {
    let (left, top, cw, chh) = (44.0, 92.0, 62.0, 15.0);
    let cols = grid.components.len();
    let w = left + cw * cols as f64 + 110.0;
    let shown = if grid.layers > 1024 {
        grid.values
            .iter()
            .filter(|r| r.iter().any(Option::is_some))
            .count()
    } else {
        grid.layers
    };
    let h = top + chh * shown as f64 + 48.0;
    let mut o = String::new();
    svg_open(&mut o, "chart heatmap", w, h);
    for (c, name) in grid.components.iter().enumerate() {
        let x = left + cw * (c as f64 + 0.5);
        let _ = write!(
            o,
            r##"<text x="{x:.1}" y="{y}" transform="rotate(-40 {x:.1} {y})" fill="#222">{n}</text>"##,
            y = top - 6.0,
            n = esc(&short_component(name))
        );
    }
    let range = grid.range();
    let (lo, hi) = range.unwrap_or((0.0, 1.0));
    let log = scale == ColourScale::Log && lo > 0.0;
    let mut title = title.to_string();
    if scale == ColourScale::Log && !log {
        title.push_str(" (linear: log needs positive values)");
    } else if log {
        title.push_str(" (log scale)");
    }
    let lo = match scale {
        ColourScale::Linear { zero_based: true } if lo >= 0.0 => 0.0,
        _ => lo,
    };
    let norm = |v: f64| {
        if hi <= lo {
            0.5
        } else if log {
            (v.ln() - lo.ln()) / (hi.ln() - lo.ln())
        } else {
            (v - lo) / (hi - lo)
        }
    };
    // Rows: every layer; for an implausibly deep grid (a forged trace), only the
    // layers with data, so the chart stays drawable.
    let rows: Vec<usize> = (0..grid.layers)
        .filter(|&l| grid.layers <= 1024 || grid.values[l].iter().any(Option::is_some))
        .collect();
    for (row, &l) in rows.iter().enumerate() {
        let y = top + chh * row as f64;
        let _ = write!(
            o,
            r##"<text x="{tx}" y="{ty:.1}" text-anchor="end" fill="#222">L{l}</text>"##,
            tx = left - 4.0,
            ty = y + chh - 4.0
        );
        for (c, comp) in grid.components.iter().enumerate() {
            let x = left + cw * c as f64;
            match grid.values.get(l).and_then(|r| r.get(c)).copied().flatten() {
                Some(v) => {
                    let _ = write!(
                        o,
                        r##"<rect class="hm-cell" data-layer="{l}" data-comp="{cn}" data-v="{v}" x="{x:.1}" y="{y:.1}" width="{cw}" height="{chh}" fill="{f}" stroke="#fff" stroke-width="0.5" tabindex="-1"><title>L{l} {cn}: {fv}</title></rect>"##,
                        cn = esc(comp),
                        f = hex(viridis(norm(v))),
                        fv = esc(&fmt(v))
                    );
                }
                None => {
                    let _ = write!(
                        o,
                        r##"<rect class="hm-empty" data-layer="{l}" data-comp="{cn}" x="{x:.1}" y="{y:.1}" width="{cw}" height="{chh}" fill="#f3f3f3" stroke="#fff" stroke-width="0.5"><title>L{l} {cn}: not recorded</title></rect>"##,
                        cn = esc(comp)
                    );
                }
            }
        }
    }
    // Legend: the colour ramp with its end values.
    let ly = top + chh * shown as f64 + 14.0;
    let _ = write!(o, r#"<defs><linearGradient id="hm-ramp">"#);
    for i in 0..=8 {
        let t = f64::from(i) / 8.0;
        let _ = write!(
            o,
            r#"<stop offset="{t}" stop-color="{c}"/>"#,
            c = hex(viridis(t))
        );
    }
    let lw = (cw * cols as f64).min(300.0);
    let _ = write!(
        o,
        r##"</linearGradient></defs><rect x="{left}" y="{ly}" width="{lw}" height="10" fill="url(#hm-ramp)"/><text x="{left}" y="{ty}" fill="#444">{lo}</text><text x="{rx}" y="{ty}" text-anchor="end" fill="#444">{hi}</text><text x="{tx}" y="{ty2}" fill="#222">{title}</text>"##,
        ty = ly + 24.0,
        ty2 = ly + 9.0,
        rx = left + lw,
        tx = left + lw + 10.0,
        lo = esc(&if range.is_some() { fmt(lo) } else { "-".into() }),
        hi = esc(&if range.is_some() { fmt(hi) } else { "-".into() }),
        title = esc(&title),
    );
    o.push_str("</svg>");
    o
}

// ---------------------------------------------------------------- treemap

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

// ---------------------------------------------------------------- sankey

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
            let _ = write!(
                o,
                r##"<text x="{tx:.2}" y="{ty:.2}" font-size="{fs}" fill="#222">{nm} {v}</text>"##,
                tx = x + nw + 3.0,
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

// ---------------------------------------------------------------- waterfall

/// How the waterfall stacks each token's bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    Component,
    LayerGroup,
}

/// Layer groups of about equal size (at most six), as `(first, last)` layer.
pub fn layer_groups(layers: usize) -> Vec<(usize, usize)> {
    if layers == 0 {
        return Vec::new();
    }
    let n = layers.min(6);
    let size = layers.div_ceil(n);
    (0..layers)
        .step_by(size)
        .map(|a| (a, (a + size - 1).min(layers - 1)))
        .collect()
}

/// Per-token stacked bars with the cumulative line; `selected` is a step index.
///
/// With `fit_decode` the bar scale fits the decode tokens and a prefill bar taller
/// than that is cut at the top and labelled with its value (prefill processes the
/// whole prompt, so it can be hundreds of times a decode step).
pub fn waterfall(
    v: &TraceView,
    m: Measure,
    stack: Stack,
    selected: Option<u32>,
    fit_decode: bool,
) -> String {
    let (w, h, left, right, top, bottom) = (1000.0, 300.0, 60.0, 60.0, 34.0, 30.0);
    let plot = w - left - right;
    let ph = h - top - bottom;
    let mut o = String::new();
    svg_open(&mut o, "chart waterfall", w, h);
    let steps = &v.steps;
    let all_max = steps.iter().map(|s| s.total(m)).fold(0.0f64, f64::max);
    let decode_max = steps
        .iter()
        .filter(|s| !s.prefill)
        .map(|s| s.total(m))
        .fold(0.0f64, f64::max);
    let max = if fit_decode && decode_max > 0.0 {
        decode_max
    } else {
        all_max
    };
    let cum_total: f64 = steps.iter().map(|s| s.total(m)).sum();
    if steps.is_empty() || max <= 0.0 {
        let _ = write!(
            o,
            r#"<text x="{left}" y="40">no generated tokens with {} to show</text></svg>"#,
            measure_name(m)
        );
        return o;
    }
    let (names, colours): (Vec<String>, Vec<String>) = match stack {
        Stack::Component => v
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let t = i as f64 / (v.components.len().max(2) - 1) as f64;
                (c.clone(), hex(viridis(t)))
            })
            .unzip(),
        Stack::LayerGroup => {
            let g = layer_groups(v.layers);
            let n = g.len();
            g.into_iter()
                .enumerate()
                .map(|(i, (a, b))| {
                    let t = i as f64 / (n.max(2) - 1) as f64;
                    (format!("L{a}-L{b}"), hex(viridis(t)))
                })
                .unzip()
        }
    };
    let groups = layer_groups(v.layers);
    let bw = plot / steps.len() as f64;
    let sw = (bw * 0.9).max(0.3);
    let ys = |val: f64| val / max * ph;
    // One path per stack category (a sub-path per token), not a rectangle per
    // segment: a 1,000-token trace stays a few thousand elements.
    let mut seg_paths = vec![String::new(); names.len() + 1];
    let mut cum = 0.0;
    let mut line = String::new();
    for (i, s) in steps.iter().enumerate() {
        let x = left + i as f64 * bw;
        let mut parts: Vec<f64> = match stack {
            Stack::Component => s.by_component(m).to_vec(),
            Stack::LayerGroup => groups
                .iter()
                .map(|&(a, b)| s.by_layer(m).get(a..=b).map_or(0.0, |x| x.iter().sum()))
                .collect(),
        };
        let total = s.total(m);
        parts.push((total - parts.iter().sum::<f64>()).max(0.0));
        let sel = selected == Some(s.step);
        // The token: a full-height hit area (thin bars are easy to click) and its title.
        let _ = write!(
            o,
            r##"<g class="wf-tok{c}" data-step="{st}"><title>token {st}{pf} "{t}": {v}</title><rect x="{x:.3}" y="{top}" width="{bw:.3}" height="{ph}" fill="{f}" fill-opacity="{op}"/></g>"##,
            c = if sel { " sel" } else { "" },
            st = s.step,
            pf = if s.prefill { " (prefill)" } else { "" },
            t = esc(&s.text),
            v = fmt_value(total, m),
            f = if sel { "#000" } else { "#fff" },
            op = if sel { 0.15 } else { 0.0 },
        );
        let mut y = top + ph;
        for (k, p) in parts.iter().enumerate() {
            if *p <= 0.0 || y <= top {
                continue;
            }
            // Cut at the top of the plot (only a prefill bar under `fit_decode`).
            let hh = ys(*p).min(y - top);
            y -= hh;
            let _ = write!(seg_paths[k], "M{x:.2},{y:.2}h{sw:.2}v{hh:.2}h-{sw:.2}z");
        }
        if total > max * (1.0 + 1e-9) {
            let _ = write!(
                o,
                r##"<text class="wf-cut" x="{tx:.2}" y="{ty}" font-size="10" fill="#222" pointer-events="none">▲ {l}</text>"##,
                tx = x,
                ty = top - 3.0,
                l = esc(&fmt_value(total, m))
            );
        }
        cum += total;
        let _ = write!(
            line,
            "{:.2},{:.2} ",
            x + bw / 2.0,
            top + ph - cum / cum_total * ph
        );
    }
    for (k, d) in seg_paths.iter().enumerate() {
        let (name, fill) = match colours.get(k) {
            Some(c) => (names[k].as_str(), c.as_str()),
            None => ("other", OTHER),
        };
        let _ = write!(
            o,
            r#"<path class="wf-seg" data-name="{n}" d="{d}" fill="{fill}" pointer-events="none"/>"#,
            n = esc(name)
        );
    }
    let _ = write!(
        o,
        r##"<polyline class="wf-cum" points="{line}" fill="none" stroke="#D55E00" stroke-width="2" pointer-events="none"/>"##
    );
    // Axes: per-token values on the left, cumulative on the right.
    for t in nice_ticks(0.0, max, 4) {
        let y = top + ph - ys(t);
        let _ = write!(
            o,
            r##"<text x="{tx}" y="{ty:.2}" text-anchor="end" fill="#444">{l}</text><line x1="{left}" y1="{y:.2}" x2="{x2}" y2="{y:.2}" stroke="#eee" pointer-events="none"/>"##,
            tx = left - 4.0,
            ty = y + 4.0,
            x2 = left + plot,
            l = esc(&fmt_tick(t, m))
        );
    }
    for t in nice_ticks(0.0, cum_total, 4) {
        let y = top + ph - t / cum_total * ph;
        let _ = write!(
            o,
            r##"<text x="{tx}" y="{ty:.2}" fill="#D55E00">{l}</text>"##,
            tx = left + plot + 4.0,
            ty = y + 4.0,
            l = esc(&fmt_tick(t, m))
        );
    }
    let _ = write!(
        o,
        r##"<text x="{left}" y="{y}" fill="#444">token (step) 0 … {n}; bars: {mn} per token, line: cumulative</text>"##,
        y = h - 8.0,
        n = steps.len() - 1,
        mn = measure_name(m)
    );
    // Legend.
    let mut lx = left;
    for (name, c) in names
        .iter()
        .zip(&colours)
        .chain([(&"other".to_string(), &OTHER.to_string())])
    {
        let _ = write!(
            o,
            r##"<rect x="{lx:.1}" y="6" width="10" height="10" fill="{c}"/><text x="{tx:.1}" y="15" font-size="10" fill="#222">{n}</text>"##,
            tx = lx + 13.0,
            n = esc(name)
        );
        lx += 16.0 + name.len() as f64 * 5.6;
    }
    o.push_str("</svg>");
    o
}

// ---------------------------------------------------------------- drilldown

fn cell(o: &mut String, s: &str) {
    let _ = write!(o, "<td>{}</td>", esc(s));
}

/// Operations, FLOP estimates, tensor statistics and attention metrics of one layer's
/// component, over the whole run or one step.
pub fn drilldown(v: &TraceView, layer: usize, component: &str, step: Option<u32>) -> String {
    let t = &v.trace;
    let sites: Vec<usize> = (0..t.sites.len())
        .filter(|&i| {
            let s = &t.sites[i];
            s.layer.map(usize::from) == Some(layer) && s.component == component
        })
        .collect();
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<h3>L{layer} · {c}{s}</h3>"#,
        c = esc(component),
        s = step.map_or(" · whole run".into(), |s| format!(" · token {s}"))
    );
    if sites.is_empty() {
        o.push_str("<p>Nothing was recorded at this site.</p>");
        return o;
    }
    let keep = |s: u32| step.is_none_or(|x| x == s);
    let flops = t.metric("model", "flops");
    o.push_str(
        r#"<table class="drill-ops"><thead><tr><th>site</th><th>calls</th><th>time</th><th>energy</th><th>how</th><th>GFLOP</th><th>GFLOP/s</th></tr></thead><tbody>"#,
    );
    // One pass over spans and FLOP values: the row of each site, by site id.
    let mut row_of = vec![None; t.sites.len()];
    for (k, &si) in sites.iter().enumerate() {
        row_of[si] = Some(k);
    }
    let mut calls = vec![(0u32, 0u64, Vec::new()); sites.len()];
    for i in 0..t.spans.len() {
        if let Some(k) = row_of[t.spans.site[i] as usize]
            && keep(t.spans.step[i])
        {
            let c = &mut calls[k];
            c.0 += 1;
            c.1 += t.spans.duration_ns(i);
            c.2.extend(v.energies.spans[i]);
        }
    }
    let mut gflop = vec![0.0f64; sites.len()];
    if let Some(f) = flops {
        for i in 0..f.len() {
            if let Some(k) = row_of[f.site[i] as usize]
                && keep(f.step[i])
            {
                gflop[k] += f64::from(f.value[i]);
            }
        }
    }
    for ((&si, (n, ns, parts)), gf) in sites.iter().zip(calls).zip(gflop) {
        let e = eprof_format::Energy::sum(parts);
        let gf = flops.map(|_| gf * 1e-9);
        let _ = write!(o, r#"<tr class="drill-op" data-site="{si}">"#);
        cell(&mut o, &t.sites[si].label());
        cell(&mut o, &n.to_string());
        cell(&mut o, &fmt_ns(ns as f64));
        cell(&mut o, &e.map_or("-".into(), |e| fmt_joules(e.joules)));
        cell(&mut o, e.map_or("-", |e| e.label.as_str()));
        cell(&mut o, &gf.filter(|g| *g > 0.0).map_or("-".into(), fmt_num));
        cell(
            &mut o,
            &gf.filter(|g| *g > 0.0 && ns > 0)
                .map_or("-".into(), |g| fmt_num(g / (ns as f64 * 1e-9))),
        );
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table>");
    // Tensor statistics and attention metrics recorded at these sites.
    let mut rows = String::new();
    for ms in t.metrics.iter().filter(|m| m.probe != "model") {
        // (count, sum, min, max) per site, in one pass over the series.
        let mut acc = vec![(0usize, 0.0f64, f64::INFINITY, f64::NEG_INFINITY); sites.len()];
        for i in 0..ms.len() {
            if let Some(k) = row_of[ms.site[i] as usize]
                && keep(ms.step[i])
                && ms.value[i].is_finite()
            {
                let x = f64::from(ms.value[i]);
                let a = &mut acc[k];
                *a = (a.0 + 1, a.1 + x, a.2.min(x), a.3.max(x));
            }
        }
        for (&si, (n, sum, lo, hi)) in sites.iter().zip(acc) {
            if n == 0 {
                continue;
            }
            let mean = sum / n as f64;
            let _ = write!(rows, r#"<tr class="drill-metric">"#);
            cell(&mut rows, &ms.key());
            cell(&mut rows, &t.sites[si].label());
            cell(&mut rows, &n.to_string());
            cell(&mut rows, &fmt_num(mean));
            cell(&mut rows, &fmt_num(lo));
            cell(&mut rows, &fmt_num(hi));
            rows.push_str("</tr>");
        }
    }
    if rows.is_empty() {
        o.push_str("<p>No tensor metrics at this site (record with --probes to get them).</p>");
    } else {
        let _ = write!(
            o,
            r#"<table class="drill-metrics"><thead><tr><th>metric</th><th>site</th><th>n</th><th>mean</th><th>min</th><th>max</th></tr></thead><tbody>{rows}</tbody></table>"#
        );
    }
    o
}

// ---------------------------------------------------------------- summary

fn dl_row(o: &mut String, k: &str, v: &str) {
    let _ = write!(o, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or("-".into(), f)
}

/// The run summary: what ran where, the totals, and how the figures were obtained.
pub fn summary(v: &TraceView) -> String {
    let t = &v.trace;
    let s = &v.summary;
    let m = &t.meta;
    let mut o = String::new();
    if let Some(tr) = &v.truncation {
        let _ = write!(
            o,
            r#"<p class="warn" role="alert">Truncated trace: {} — showing what was recovered.</p>"#,
            esc(&tr.to_string())
        );
    }
    o.push_str(r#"<dl class="summary">"#);
    dl_row(&mut o, "file", &v.name);
    dl_row(&mut o, "prompt", &m.prompt);
    let output = t
        .end
        .as_ref()
        .map(|e| e.generated_text.clone())
        .unwrap_or_else(|| t.generated().map(|x| x.text.as_str()).collect());
    // A long output is folded: the figures matter more than the text here.
    if output.chars().count() > 400 {
        let head: String = output.chars().take(300).collect();
        let _ = write!(
            o,
            "<dt>output</dt><dd><details><summary>{}… ({} characters)</summary>{}</details></dd>",
            esc(&head),
            output.chars().count(),
            esc(&output)
        );
    } else {
        dl_row(&mut o, "output", &output);
    }
    dl_row(&mut o, "model", &m.model.describe());
    dl_row(
        &mut o,
        "machine",
        &format!(
            "{} · {} {} · {} ({} cores) · {:.1} GiB{}",
            m.machine.hostname,
            m.machine.os,
            m.machine.arch,
            m.machine.cpu,
            m.machine.cpu_cores,
            m.machine.memory_bytes as f64 / f64::from(1u32 << 30),
            m.machine
                .gpu
                .as_ref()
                .map_or(String::new(), |g| format!(" · {g}"))
        ),
    );
    dl_row(
        &mut o,
        "settings",
        &format!(
            "depth {} · device {} · max {} tokens · temperature {} · seed {}",
            m.settings.depth.as_str(),
            m.settings.device,
            m.settings.max_tokens,
            m.settings.temperature,
            m.settings.seed
        ),
    );
    let channels: Vec<String> = m
        .power
        .channels
        .iter()
        .map(|c| {
            format!(
                "{}{}",
                c.name,
                if c.in_total { "" } else { " (not in total)" }
            )
        })
        .collect();
    dl_row(
        &mut o,
        "power source",
        &format!(
            "{} ({}) · channels: {} · resolution {} (nominal {}, observed spacing {}) · {} readings",
            s.source,
            s.source_kind.as_str(),
            channels.join(", "),
            fmt_ns(s.resolution_ns as f64),
            fmt_ns(s.nominal_resolution_ns as f64),
            fmt_ns(s.observed_spacing_ns as f64),
            s.samples
        ),
    );
    dl_row(
        &mut o,
        "tokens",
        &format!(
            "{} prompt · {} generated",
            s.prompt_tokens, s.generated_tokens
        ),
    );
    dl_row(&mut o, "duration", &fmt_ns(s.duration_ns as f64));
    dl_row(
        &mut o,
        "energy",
        &opt(s.total, |e| {
            format!("{} ({})", fmt_joules(e.joules), e.label.as_str())
        }),
    );
    dl_row(
        &mut o,
        "idle / dynamic",
        &format!(
            "{} idle · {} above idle",
            opt(s.idle_w, |w| format!("{w:.2} W")),
            opt(s.dynamic_j, fmt_joules)
        ),
    );
    dl_row(
        &mut o,
        "average power",
        &opt(s.avg_power_w, |w| format!("{w:.2} W")),
    );
    dl_row(
        &mut o,
        "J / token",
        &format!(
            "{} per generated token · {} per decode token",
            opt(s.j_per_generated_token, fmt_joules),
            opt(s.decode_j_per_token, fmt_joules)
        ),
    );
    dl_row(
        &mut o,
        "speed",
        &format!(
            "{} decode tokens/s · time to first token {}",
            opt(s.decode_tokens_per_s, |x| format!("{x:.1}")),
            opt(s.time_to_first_token_ns, |x| fmt_ns(x as f64))
        ),
    );
    o.push_str("</dl>");
    o.push_str(r#"<h3>How the energy figures were obtained</h3><ul class="labels">"#);
    if s.labels.is_empty() {
        o.push_str("<li>No energy figures: the power source gave no readings.</li>");
    }
    for (label, n) in &s.labels {
        let _ = write!(
            o,
            "<li><b>{}</b> ({n} figures): {}</li>",
            label.as_str(),
            esc(label.explain())
        );
    }
    o.push_str("</ul>");
    if !t.notes.is_empty() {
        o.push_str(r#"<h3>Notes recorded during the run</h3><ul class="notes">"#);
        for n in &t.notes {
            let _ = write!(o, "<li>{}</li>", esc(&n.text));
        }
        o.push_str("</ul>");
    }
    o
}

// ---------------------------------------------------------------- compare

/// Totals, J/token, per-phase energy of several traces side by side.
pub fn compare_table(vs: &[&TraceView]) -> String {
    let mut o = String::from(r#"<table class="compare"><thead><tr><th></th>"#);
    for (i, v) in vs.iter().enumerate() {
        let _ = write!(
            o,
            r#"<th><span class="swatch" style="background:{}"></span>{}</th>"#,
            PALETTE[i % PALETTE.len()],
            esc(&v.name)
        );
    }
    o.push_str("</tr></thead><tbody>");
    let row = |o: &mut String, k: &str, f: &dyn Fn(&TraceView) -> String| {
        let _ = write!(o, r#"<tr class="cmp-row"><th>{}</th>"#, esc(k));
        for v in vs {
            cell(o, &f(v));
        }
        o.push_str("</tr>");
    };
    row(&mut o, "model", &|v| {
        format!("{} ({})", v.trace.meta.model.name, v.trace.meta.model.dtype)
    });
    row(&mut o, "machine", &|v| {
        format!(
            "{} · {}",
            v.trace.meta.machine.hostname, v.trace.meta.machine.cpu
        )
    });
    row(&mut o, "power source", &|v| {
        format!("{} ({})", v.summary.source, v.summary.source_kind.as_str())
    });
    row(&mut o, "depth", &|v| {
        v.trace.meta.settings.depth.as_str().to_string()
    });
    row(&mut o, "generated tokens", &|v| {
        v.summary.generated_tokens.to_string()
    });
    row(&mut o, "duration", &|v| {
        fmt_ns(v.summary.duration_ns as f64)
    });
    row(&mut o, "energy", &|v| {
        opt(v.summary.total, |e| {
            format!("{} ({})", fmt_joules(e.joules), e.label.as_str())
        })
    });
    row(&mut o, "J / generated token", &|v| {
        opt(v.summary.j_per_generated_token, fmt_joules)
    });
    row(&mut o, "J / decode token", &|v| {
        opt(v.summary.decode_j_per_token, fmt_joules)
    });
    row(&mut o, "decode tokens/s", &|v| {
        opt(v.summary.decode_tokens_per_s, |x| format!("{x:.1}"))
    });
    row(&mut o, "time to first token", &|v| {
        opt(v.summary.time_to_first_token_ns, |x| fmt_ns(x as f64))
    });
    let mut phases: Vec<String> = Vec::new();
    for v in vs {
        for p in &v.summary.phases {
            if !phases.contains(&p.name) {
                phases.push(p.name.clone());
            }
        }
    }
    for p in &phases {
        row(&mut o, &format!("{p} energy"), &|v| {
            v.summary
                .phases
                .iter()
                .find(|r| &r.name == p)
                .and_then(|r| r.joules())
                .map_or("-".into(), fmt_joules)
        });
    }
    o.push_str("</tbody></table>");
    o
}

/// Per-layer energy of several traces as grouped bars (layers of different models
/// line up by index).
pub fn compare_layers(vs: &[&TraceView]) -> String {
    let layers = vs.iter().map(|v| v.layers).max().unwrap_or(0);
    let (w, h, left, top, bottom) = (1000.0, 240.0, 72.0, 20.0, 28.0);
    let plot = w - left - 10.0;
    let ph = h - top - bottom;
    let mut o = String::new();
    svg_open(&mut o, "chart compare-layers", w, h);
    let value = |v: &TraceView, l: usize| -> f64 {
        v.summary
            .layers
            .get(l)
            .map_or(0.0, |r| r.joules().unwrap_or(0.0))
    };
    let max = vs
        .iter()
        .flat_map(|v| (0..v.layers).map(move |l| value(v, l)))
        .fold(0.0f64, f64::max);
    if layers == 0 || max <= 0.0 {
        o.push_str(r#"<text x="10" y="30">no per-layer energy in these traces</text></svg>"#);
        return o;
    }
    let gw = plot / layers as f64;
    let bw = gw * 0.85 / vs.len() as f64;
    for t in nice_ticks(0.0, max, 4) {
        let y = top + ph - t / max * ph;
        let _ = write!(
            o,
            r##"<line x1="{left}" y1="{y:.2}" x2="{x2}" y2="{y:.2}" stroke="#eee"/><text x="{tx}" y="{ty:.2}" text-anchor="end" fill="#444">{l}</text>"##,
            x2 = left + plot,
            tx = left - 4.0,
            ty = y + 4.0,
            l = esc(&fmt_tick(t, Measure::EnergyJ))
        );
    }
    for l in 0..layers {
        let gx = left + l as f64 * gw;
        for (i, v) in vs.iter().enumerate() {
            if l >= v.layers {
                continue;
            }
            let val = value(v, l);
            let bh = val / max * ph;
            let _ = write!(
                o,
                r#"<rect class="cmp-bar" data-trace="{i}" data-layer="{l}" x="{x:.2}" y="{y:.2}" width="{bw:.2}" height="{bh:.2}" fill="{f}"><title>{n} L{l}: {e}</title></rect>"#,
                x = gx + i as f64 * bw,
                y = top + ph - bh,
                f = PALETTE[i % PALETTE.len()],
                n = esc(&v.name),
                e = fmt_joules(val)
            );
        }
        if layers <= 40 || l % 5 == 0 {
            let _ = write!(
                o,
                r##"<text x="{x:.2}" y="{y}" text-anchor="middle" font-size="9" fill="#444">L{l}</text>"##,
                x = gx + gw / 2.0,
                y = h - bottom + 14.0
            );
        }
    }
    o.push_str("</svg>");
    o
}

/// Render a value of a heatmap metric (`time`, `energy` or `probe/metric`).
pub fn metric_fmt(metric: &str) -> fn(f64) -> String {
    match metric {
        "time" => fmt_ns,
        "energy" => fmt_joules,
        _ => fmt_num,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tests::view;
    use eprof_format::Depth;
    use eprof_format::summary::{GridMetric, grid};

    fn count(s: &str, class: &str) -> usize {
        s.matches(&format!(r#"class="{class}""#)).count()
            + s.matches(&format!(r#"class="{class} "#)).count()
    }

    #[test]
    fn every_chart_draws_what_the_trace_holds() {
        let v = view(7, 5, Depth::Deep);
        let m = Measure::EnergyJ;

        let tl = timeline(&v, m);
        assert_eq!(count(&tl, "tl-phase"), v.summary.phases.len());
        assert_eq!(count(&tl, "tl-sec"), v.summary.sections.len());

        let ps = v.power.as_ref().expect("synthetic trace has power");
        let pw = power(&v, Some(ps), Some(1));
        assert_eq!(count(&pw, "pw-line"), 1);
        assert_eq!(count(&pw, "pw-band"), v.summary.phases.len());
        assert_eq!(count(&pw, "pw-hover"), 1);
        let (_, readout) = ps.readout(0.5);
        assert!(readout.contains("10.00 W"), "{readout}");

        let g = grid(&v.trace, &v.energies, &GridMetric::EnergyJ, None);
        let lin = ColourScale::Linear { zero_based: true };
        let hm = heatmap(&g, "energy", &fmt_joules, lin);
        assert_eq!(count(&hm, "hm-cell") + count(&hm, "hm-empty"), 5 * 12);
        let g1 = grid(&v.trace, &v.energies, &GridMetric::EnergyJ, Some(2));
        assert_ne!(heatmap(&g1, "energy", &fmt_joules, lin), hm);
        assert!(heatmap(&g, "energy", &fmt_joules, ColourScale::Log).contains("(log scale)"));

        let tm = treemap(v.tree(m), &[], m);
        let phases_with_energy = v
            .tree(Measure::EnergyJ)
            .children
            .iter()
            .filter(|c| c.value > 0.0)
            .count();
        assert_eq!(count(&tm, "tm-node"), phases_with_energy);
        let decode = v
            .tree(Measure::EnergyJ)
            .children
            .iter()
            .position(|c| c.name == "decode")
            .unwrap();
        let zoomed = treemap(v.tree(m), &[decode], m);
        assert_eq!(zoomed.matches(r#"data-name="L"#).count(), 5);
        assert_eq!(path_names(v.tree(m), &[decode]), vec!["run", "decode"]);

        let sk = sankey(&v, m);
        assert_eq!(sk.matches(r#"data-col="2" data-name="L"#).count(), 5);
        assert_eq!(sk.matches(r#"data-col="4""#).count(), 12);
        assert!(count(&sk, "sk-link") > 5 * 2);

        let wf = waterfall(&v, m, Stack::Component, Some(3), false);
        assert_eq!(count(&wf, "wf-cut"), 0);
        assert_eq!(count(&wf, "wf-tok"), 7);
        assert_eq!(wf.matches(r#"class="wf-tok sel" data-step="3""#).count(), 1);
        let wf2 = waterfall(&v, m, Stack::LayerGroup, None, true);
        assert_eq!(count(&wf2, "wf-tok"), 7);

        let d = drilldown(&v, 1, "attention", None);
        // The component and its five deep operations.
        assert_eq!(count(&d, "drill-op"), 6, "{d}");

        let s = summary(&v);
        assert!(s.contains("Give me three tips"));
        assert!(s.contains("synthetic (counter)"));

        let other = view(3, 2, Depth::Module);
        let ct = compare_table(&[&v, &other]);
        assert_eq!(count(&ct, "cmp-row"), 11 + v.summary.phases.len());
        let cl = compare_layers(&[&v, &other]);
        assert_eq!(count(&cl, "cmp-bar"), 5 + 2);
    }

    #[test]
    fn a_forged_trace_with_huge_indices_draws_without_blowing_up() {
        use eprof_format::model::{SiteDef, Step};
        let mut t = eprof_format::synthetic::trace(&eprof_format::synthetic::Shape::default());
        // A site in layer 60,000 with one span, and a token claiming step 4e9.
        t.sites.push(SiteDef {
            layer: Some(60_000),
            component: "q_proj".into(),
            op: None,
        });
        let site = (t.sites.len() - 1) as u32;
        let (a, b) = (t.spans.start_ns[0], t.spans.end_ns[0]);
        t.spans.push(0, site, a, b);
        let last = t.tokens.len() - 1;
        t.tokens[last].step = Some(Step {
            index: 4_000_000_000,
            ..t.tokens[last].step.unwrap()
        });
        let bytes = eprof_format::encode(&t);
        let v = TraceView::new("forged.eprof", eprof_format::decode(&bytes).unwrap());
        assert_eq!(v.layers, 60_001);
        let m = Measure::TimeNs;
        let g = grid(&v.trace, &v.energies, &GridMetric::TimeNs, None);
        let hm = heatmap(
            &g,
            "time",
            &fmt_ns,
            ColourScale::Linear { zero_based: true },
        );
        // The four real layers and the forged one, not 60,001 rows.
        assert_eq!(count(&hm, "hm-cell") + count(&hm, "hm-empty"), 5 * 12);
        assert!(sankey(&v, m).len() < 200_000);
        for stack in [Stack::Component, Stack::LayerGroup] {
            assert_eq!(
                count(&waterfall(&v, m, stack, None, true), "wf-tok"),
                v.steps.len()
            );
        }
        treemap(v.tree(m), &[1, 0], m);
        timeline(&v, m);
        drilldown(&v, 60_000, "q_proj", Some(4_000_000_000));
        summary(&v);
    }

    #[test]
    fn sankey_flows_are_conserved() {
        let v = view(5, 4, Depth::Module);
        let g = SankeyGraph::build(v.tree(Measure::EnergyJ), v.layers);
        for (i, n) in g.nodes.iter().enumerate() {
            let inflow: f64 = g.links.iter().filter(|l| l.1 == i).map(|l| l.2).sum();
            if n.col > 0 {
                assert!(
                    (inflow - n.value).abs() <= 1e-9 * n.value.max(1e-12),
                    "{n:?}"
                );
            }
            let outflow: f64 = g.links.iter().filter(|l| l.0 == i).map(|l| l.2).sum();
            assert!(outflow <= n.value * (1.0 + 1e-9), "{n:?} sends {outflow}");
        }
        let sides: f64 = g.nodes.iter().filter(|n| n.col == 3).map(|n| n.value).sum();
        let comps: f64 = g.nodes.iter().filter(|n| n.col == 4).map(|n| n.value).sum();
        assert!((sides - comps).abs() < 1e-9 * comps);
    }

    #[test]
    fn text_from_the_trace_is_escaped() {
        assert_eq!(esc(r#"<b a="x">&'"#), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(esc("a\u{0}b"), "a\u{FFFD}b");
        assert_eq!(
            layer_groups(30),
            vec![(0, 4), (5, 9), (10, 14), (15, 19), (20, 24), (25, 29)]
        );
        assert_eq!(layer_groups(4), vec![(0, 0), (1, 1), (2, 2), (3, 3)]);
    }
}
