//! The pipeline on the trace's clock: phases, then every generated token's step, over
//! the shown window (zoomed and panned in step with the power chart, whose plot it
//! lines up with), with the selected range.

use super::*;

/// Height of the time track.
pub const TRACK_H: f64 = 96.0;

/// Phases and steps between `t0` and `t1` (ns on the trace's clock), the selected
/// `range` and `step` marked. Steps narrower than a pixel are drawn once per pixel,
/// so a 10,000-token run zoomed out draws at most as many bars as the plot is wide.
pub fn time_track(
    v: &TraceView,
    t0: u64,
    t1: u64,
    range: Option<(u64, u64)>,
    step: Option<u32>,
) -> String {
    let (w, left, plot) = (1000.0, POWER_LEFT, POWER_PLOT);
    let (top, row) = (6.0, 26.0);
    let mut o = String::new();
    svg_open(&mut o, "chart track", w, TRACK_H);
    let span = (t1.saturating_sub(t0)).max(1) as f64;
    let x = |t: u64| (left + (t as f64 - t0 as f64) / span * plot).clamp(left, left + plot);
    let _ = write!(
        o,
        r##"<text x="4" y="{y1}">phases</text><text x="4" y="{y2}">tokens</text>"##,
        y1 = top + 17.0,
        y2 = top + row + 21.0
    );
    let _ = write!(
        o,
        r#"<rect class="tr-plot" data-t0="{t0}" data-t1="{t1}" x="{left}" y="{top}" width="{plot}" height="{h}" fill="transparent"/>"#,
        h = 2.0 * row
    );
    for (i, p) in v.trace.phases().enumerate() {
        if p.end_ns < t0 || p.start_ns > t1 {
            continue;
        }
        let (x0, x1) = (x(p.start_ns), x(p.end_ns));
        let fill = PALETTE[i % PALETTE.len()];
        let _ = write!(
            o,
            r##"<rect class="tr-phase" data-name="{n}" x="{x0:.2}" y="{top}" width="{pw:.2}" height="{h}" fill="{fill}" fill-opacity="0.8"><title>{n}: {d}</title></rect>"##,
            n = esc(&p.name),
            pw = (x1 - x0).max(0.5),
            h = row - 4.0,
            d = fmt_ns(p.duration_ns() as f64),
        );
        if x1 - x0 > 7.0 * p.name.len() as f64 {
            let _ = write!(
                o,
                r##"<text x="{tx:.2}" y="{ty}" fill="#fff" pointer-events="none">{n}</text>"##,
                tx = x0 + 3.0,
                ty = top + 15.0,
                n = esc(&p.name)
            );
        }
    }
    let y = top + row + 4.0;
    let mut last_px = f64::NEG_INFINITY;
    for (i, st) in v.trace.steps().iter().enumerate() {
        if st.end_ns < t0 || st.start_ns > t1 {
            continue;
        }
        let (x0, x1) = (x(st.start_ns), x(st.end_ns));
        let selected = step == Some(st.index);
        if x1 - x0 < 1.0 && x0.floor() <= last_px && !selected {
            continue;
        }
        last_px = x0.floor();
        let _ = write!(
            o,
            r##"<rect class="tr-step" data-step="{s}" x="{x0:.2}" y="{y}" width="{sw:.2}" height="{h}" fill="{f}"{mark}><title>#{i} (step {s}): {d}</title></rect>"##,
            s = st.index,
            sw = (x1 - x0).max(0.5),
            h = row - 4.0,
            f = if i % 2 == 0 { "#56B4E9" } else { "#0072B2" },
            mark = if selected {
                r##" stroke="#D55E00" stroke-width="2""##
            } else {
                ""
            },
            d = fmt_ns(st.end_ns.saturating_sub(st.start_ns) as f64),
        );
    }
    if let Some((a, b)) = range {
        range_overlay(&mut o, x(a), x(b), top, 2.0 * row);
    }
    axis_clock(&mut o, left, plot, top + 2.0 * row + 4.0, t0, t1);
    o.push_str("</svg>");
    o
}
