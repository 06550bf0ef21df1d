//! Two or more runs side by side.

use super::*;

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
    energy_grid(&mut o, left, plot, top, ph, max);
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
    match eprof_format::summary::GridMetric::parse(metric) {
        eprof_format::summary::GridMetric::TimeNs => fmt_ns,
        eprof_format::summary::GridMetric::EnergyJ => fmt_joules,
        eprof_format::summary::GridMetric::Probe { .. } => fmt_num,
    }
}
