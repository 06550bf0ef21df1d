//! The layer x component heatmap of any grid (time, energy, a probe metric).

use eprof_format::summary::{GridMetric, grid_in};

use super::*;

/// How heatmap values map to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColourScale {
    /// Linear from 0 (`zero_based`) or the smallest value to the largest.
    Linear { zero_based: bool },
    /// Logarithmic between the smallest and largest value (positive values only; a
    /// grid with others falls back to linear and says so).
    Log,
}

/// The heatmap of a trace for a metric key (`time`, `energy` or `probe/metric`), over
/// the whole run or one step, reading only that step's rows where the trace is in
/// step order. The page draws it, or asks the worker holding the spans for it.
pub fn heatmap_of(v: &TraceView, key: &str, step: Option<u32>, log_scale: bool) -> String {
    let gm = GridMetric::parse(key);
    let g = grid_in(&v.trace, &v.energies, &gm, step, &v.order);
    let title = match step {
        Some(st) => format!("{key}, token {st}"),
        None => format!("{key}, whole run"),
    };
    let scale = if log_scale {
        ColourScale::Log
    } else {
        ColourScale::Linear {
            zero_based: key == "time" || key == "energy",
        }
    };
    heatmap(&g, &title, &metric_fmt(key), scale)
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
