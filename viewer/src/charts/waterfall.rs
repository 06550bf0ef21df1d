//! The per-token waterfall, stacked by component or layer group.

use super::*;

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

/// The waterfall's geometry (SVG units; the chart is 1000 wide and scales).
pub const WF_W: f64 = 1000.0;
pub const WF_H: f64 = 300.0;
const WF_LEFT: f64 = 60.0;
const WF_PLOT: f64 = 880.0;
const WF_TOP: f64 = 34.0;
const WF_PH: f64 = 236.0;

/// At most this many bars: beyond it, consecutive tokens share a bar (there are
/// fewer pixels than tokens), so a 10,000-token run stays a small SVG.
pub const WF_MAX_BARS: usize = 1000;

/// Which rows of `v.steps` each bar covers: one token per bar up to
/// [`WF_MAX_BARS`] tokens, else runs of about `n / WF_MAX_BARS` tokens; the prefill
/// never shares a bar with decode tokens.
pub fn waterfall_bars(v: &TraceView) -> Vec<std::ops::Range<usize>> {
    let st = &v.steps;
    let n = st.len();
    let per = n.div_ceil(WF_MAX_BARS).max(1);
    let mut bars = Vec::with_capacity(n.min(WF_MAX_BARS + 2));
    let mut start = 0;
    for i in 1..=n {
        if i == n || i - start == per || st.prefill[i] != st.prefill[start] {
            bars.push(start..i);
            start = i;
        }
    }
    bars
}

/// Where the bar holding `step` is, as (left, width) fractions of the chart's width,
/// and (top, height) fractions of its height: the page draws the selection there as
/// an overlay, so moving it does not redraw the chart.
pub fn waterfall_slot(v: &TraceView, step: u32) -> Option<[f64; 4]> {
    let row = v.steps.row(step)?;
    let bars = waterfall_bars(v);
    let b = bars.iter().position(|r| r.contains(&row))?;
    let bw = WF_PLOT / bars.len() as f64;
    Some([
        (WF_LEFT + b as f64 * bw) / WF_W,
        bw / WF_W,
        WF_TOP / WF_H,
        WF_PH / WF_H,
    ])
}

/// Per-token stacked bars with the cumulative line (the selected token is drawn by
/// the page over it, see [`waterfall_slot`]).
///
/// With `fit_decode` the bar scale fits the decode tokens and a prefill bar taller
/// than that is cut at the top and labelled with its value (prefill processes the
/// whole prompt, so it can be hundreds of times a decode step). A bar of several
/// tokens shows their mean per token.
pub fn waterfall(v: &TraceView, m: Measure, stack: Stack, fit_decode: bool) -> String {
    let (w, h, left, top) = (WF_W, WF_H, WF_LEFT, WF_TOP);
    let (plot, ph) = (WF_PLOT, WF_PH);
    let mut o = String::new();
    svg_open(&mut o, "chart waterfall", w, h);
    let st = &v.steps;
    let bars = waterfall_bars(v);
    let groups = layer_groups(v.layers);
    let bar_values = bar_values(v, m, stack, &groups, &bars);
    let all_max = bar_values.iter().map(|b| b.1).fold(0.0f64, f64::max);
    let decode_max = bars
        .iter()
        .zip(&bar_values)
        .filter(|(r, _)| !st.prefill[r.start])
        .map(|(_, b)| b.1)
        .fold(0.0f64, f64::max);
    let max = if fit_decode && decode_max > 0.0 {
        decode_max
    } else {
        all_max
    };
    let cum_total: f64 = (0..st.len()).map(|i| st.total(i, m)).sum();
    if st.is_empty() || max <= 0.0 {
        let _ = write!(
            o,
            r#"<text x="{left}" y="40">no generated tokens with {} to show</text></svg>"#,
            measure_name(m)
        );
        return o;
    }
    let (names, colours) = stack_names(v, stack, &groups);
    let bw = plot / bars.len() as f64;
    let sw = (bw * 0.9).max(0.3);
    let ys = |val: f64| val / max * ph;
    // One path per stack category (a sub-path per bar), not a rectangle per segment:
    // a 1,000-bar chart stays a few thousand elements.
    let mut seg_paths = vec![String::new(); names.len() + 1];
    let mut cum = 0.0;
    let mut line = String::new();
    for (b, (r, (parts, total))) in bars.iter().zip(&bar_values).enumerate() {
        let x = left + b as f64 * bw;
        let mut parts = parts.clone();
        let total = *total;
        parts.push((total - parts.iter().sum::<f64>()).max(0.0));
        let (first, last) = (st.step[r.start], st.step[r.end - 1]);
        let pf = if st.prefill[r.start] {
            " (prefill)"
        } else {
            ""
        };
        // The bar: a full-height hit area (thin bars are easy to click) and its title.
        let title = if r.len() == 1 {
            format!(
                "token {first}{pf} \"{t}\": {v}",
                t = esc(&st.text[r.start]),
                v = fmt_value(total, m)
            )
        } else {
            format!(
                "tokens {first}–{last}{pf}: {v} per token (mean of {n})",
                v = fmt_value(total, m),
                n = r.len()
            )
        };
        let _ = write!(
            o,
            r##"<g class="wf-tok" data-step="{first}"><title>{title}</title><rect x="{x:.3}" y="{top}" width="{bw:.3}" height="{ph}" fill="#fff" fill-opacity="0"/></g>"##,
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
        cum += total * r.len() as f64;
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
    axes(&mut o, v, m, max, cum_total, bars.len());
    legend(&mut o, &names, &colours);
    o.push_str("</svg>");
    o
}

/// Per bar: the mean per token of each stack part, and of the total.
fn bar_values(
    v: &TraceView,
    m: Measure,
    stack: Stack,
    groups: &[(usize, usize)],
    bars: &[std::ops::Range<usize>],
) -> Vec<(Vec<f64>, f64)> {
    let st = &v.steps;
    let parts_of = |i: usize| -> Vec<f64> {
        match stack {
            Stack::Component => st.by_component(i, m).to_vec(),
            Stack::LayerGroup => groups
                .iter()
                .map(|&(a, b)| st.by_layer(i, m).get(a..=b).map_or(0.0, |x| x.iter().sum()))
                .collect(),
        }
    };
    bars.iter()
        .map(|r| {
            let k = r.len() as f64;
            let mut parts: Vec<f64> = Vec::new();
            let mut total = 0.0;
            for i in r.clone() {
                let p = parts_of(i);
                if parts.is_empty() {
                    parts = vec![0.0; p.len()];
                }
                for (a, b) in parts.iter_mut().zip(p) {
                    *a += b / k;
                }
                total += st.total(i, m) / k;
            }
            (parts, total)
        })
        .collect()
}

/// The stack parts' names and colours.
fn stack_names(
    v: &TraceView,
    stack: Stack,
    groups: &[(usize, usize)],
) -> (Vec<String>, Vec<String>) {
    match stack {
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
            let n = groups.len();
            groups
                .iter()
                .enumerate()
                .map(|(i, (a, b))| {
                    let t = i as f64 / (n.max(2) - 1) as f64;
                    (format!("L{a}-L{b}"), hex(viridis(t)))
                })
                .unzip()
        }
    }
}

/// The axes (per-token values on the left, cumulative on the right) and the caption.
fn axes(o: &mut String, v: &TraceView, m: Measure, max: f64, cum_total: f64, n_bars: usize) {
    let (h, left, top) = (WF_H, WF_LEFT, WF_TOP);
    let (plot, ph) = (WF_PLOT, WF_PH);
    let st = &v.steps;
    let ys = |val: f64| val / max * ph;
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
        r##"<text x="{left}" y="{y}" fill="#444">token (step) {a} … {b}; bars: {mn} per token{binned}, line: cumulative</text>"##,
        y = h - 8.0,
        a = st.step[0],
        b = st.step[st.len() - 1],
        mn = measure_name(m),
        binned = if n_bars < st.len() {
            format!(
                " (mean of up to {} tokens per bar)",
                st.len().div_ceil(WF_MAX_BARS)
            )
        } else {
            String::new()
        }
    );
}

/// The legend: a swatch and name per stack part.
fn legend(o: &mut String, names: &[String], colours: &[String]) {
    let mut lx = WF_LEFT;
    for (name, c) in names
        .iter()
        .zip(colours)
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
}
