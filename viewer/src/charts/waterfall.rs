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
