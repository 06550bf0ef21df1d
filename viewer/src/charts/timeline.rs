//! The pipeline timeline: phases and sections as bars, by time or energy.

use super::*;

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
