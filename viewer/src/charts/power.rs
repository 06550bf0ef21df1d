//! Power over time: one line per channel plus the total, with phase bands.

use eprof_format::model::Phase;

use super::*;

pub const POWER_LEFT: f64 = 60.0;
pub const POWER_PLOT: f64 = 920.0;

/// Power over time of a trace, one line per channel plus the total, with phase
/// bands; `ps` covers the shown window, `range` is the selected one.
pub fn power(
    v: &TraceView,
    ps: Option<&PowerSeries>,
    hover: Option<usize>,
    range: Option<(u64, u64)>,
) -> String {
    let bands: Vec<(Phase, u64, u64)> = v
        .trace
        .sections
        .iter()
        .filter(|s| s.is_phase())
        .map(|s| (s.phase, s.start_ns, s.end_ns))
        .collect();
    power_chart(&v.trace.meta.power.name, &bands, ps, hover, range)
}

/// Power over time from any series (a trace's, or a live run's so far) with phase
/// bands `(phase, start, end)`. The axis is the trace's clock; the plot (`pw-plot`)
/// says which stretch of it is shown in `data-t0`/`data-t1`.
pub fn power_chart(
    source: &str,
    bands: &[(Phase, u64, u64)],
    ps: Option<&PowerSeries>,
    hover: Option<usize>,
    range: Option<(u64, u64)>,
) -> String {
    let (w, h, top, bottom) = (1000.0, 260.0, 24.0, 30.0);
    let (left, plot) = (POWER_LEFT, POWER_PLOT);
    let ph = h - top - bottom;
    let mut o = String::new();
    svg_open(&mut o, "chart power", w, h);
    let Some(ps) = ps else {
        let _ = write!(
            o,
            r#"<text x="{left}" y="40">No power readings (source: {}).</text></svg>"#,
            esc(source)
        );
        return o;
    };
    let span = (ps.end_ns - ps.start_ns) as f64;
    let xs = |t_ns: f64| left + t_ns / span * plot;
    // Clock time to x, clipped to the plot.
    let xt = |t: u64| xs(t as f64 - ps.start_ns as f64).clamp(left, left + plot);
    let _ = write!(
        o,
        r#"<rect class="pw-plot" data-t0="{t0}" data-t1="{t1}" x="{left}" y="{top}" width="{plot}" height="{ph}" fill="transparent"/>"#,
        t0 = ps.start_ns,
        t1 = ps.end_ns
    );
    let max = ps.max_w().max(1e-9) * 1.08;
    let ys = |w: f64| top + ph - w / max * ph;
    // Phase bands.
    for (i, &(phase, start, end)) in bands.iter().enumerate() {
        let (x0, x1) = (xt(start), xt(end));
        let _ = write!(
            o,
            r##"<rect class="pw-band" x="{x0:.2}" y="{top}" width="{bw:.2}" height="{ph}" fill="{f}" fill-opacity="0.12"><title>{n}</title></rect>"##,
            bw = (x1 - x0).max(0.0),
            f = PALETTE[i % PALETTE.len()],
            n = esc(phase.as_str()),
        );
        // Label the bands wide enough to hold one, inside the plot.
        if x1 - x0 > 6.5 * phase.as_str().len() as f64 {
            let _ = write!(
                o,
                r##"<text x="{tx:.2}" y="{ty}" fill="#555" font-size="10">{n}</text>"##,
                tx = x0 + 3.0,
                ty = top + 12.0,
                n = esc(phase.as_str()),
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
    axis_clock(&mut o, left, plot, top + ph, ps.start_ns, ps.end_ns);
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
    if let Some((a, b)) = range {
        range_overlay(&mut o, xt(a), xt(b), top, ph);
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
