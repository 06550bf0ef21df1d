//! Groups of repeated runs (`eprof bench`), opened together: each configuration's
//! figures as a mean with its 95% interval and the runs as dots; phases and layers
//! with error bars; every configuration against the first with the difference, its
//! interval and a verdict, and the layers and components that differ marked. The
//! numbers are `eprof_format::group`'s, the same as `eprof compare GROUP` prints.

use eprof_format::Summary;
use eprof_format::group::{self, Family, FigureDiff, FigureStats, Unit};
use eprof_format::stats::Verdict;

use super::*;

/// The runs of one configuration of one group, in run order.
pub struct Sample<'a> {
    pub group: String,
    pub config: u32,
    pub label: String,
    pub runs: Vec<&'a TraceView>,
}

impl Sample<'_> {
    pub fn name(&self) -> String {
        format!("{}/{}", self.group, self.label)
    }
    fn summaries(&self) -> Vec<&Summary> {
        self.runs.iter().map(|v| &v.summary).collect()
    }
}

/// The grouped runs among the open traces, one sample per (group, configuration), in
/// the order the groups were opened. Cancelled and unfinished runs are left out.
pub fn samples<'a>(vs: &[&'a TraceView]) -> Vec<Sample<'a>> {
    let mut out: Vec<Sample<'a>> = Vec::new();
    for v in vs {
        let Some(g) = &v.trace.group else { continue };
        let finished = v
            .trace
            .end
            .as_ref()
            .is_some_and(|e| !e.stop_reason.is_cut_short());
        if !finished {
            continue;
        }
        match out
            .iter_mut()
            .find(|s| s.group == g.id && s.config == g.config)
        {
            Some(s) => s.runs.push(v),
            None => out.push(Sample {
                group: g.id.clone(),
                config: g.config,
                label: g.config_label.clone(),
                runs: vec![v],
            }),
        }
    }
    for s in &mut out {
        s.runs
            .sort_by_key(|v| v.trace.group.as_ref().map_or(0, |g| g.order));
    }
    // Configurations of one group in index order, groups as first opened.
    let first_seen: Vec<String> = out.iter().map(|s| s.group.clone()).collect();
    out.sort_by_key(|s| (first_seen.iter().position(|g| *g == s.group), s.config));
    out
}

const HEADLINE: [&str; 5] = [
    "total_energy",
    "j_per_generated_token",
    "decode_j_per_token",
    "decode_tokens_per_s",
    "time_to_first_token",
];

/// One figure across samples: a row per configuration with its interval (a line,
/// `class="ci"`), its mean (a tick) and its runs (dots, `class="run-dot"`).
fn forest(key: &str, per: &[(String, Option<&FigureStats>)]) -> String {
    let stats: Vec<&FigureStats> = per.iter().filter_map(|(_, f)| *f).collect();
    let Some(unit) = stats.first().map(|f| f.unit) else {
        return String::new();
    };
    let lo = stats
        .iter()
        .flat_map(|f| f.values.iter().copied().chain([f.stats.ci_low]))
        .fold(f64::INFINITY, f64::min);
    let hi = stats
        .iter()
        .flat_map(|f| f.values.iter().copied().chain([f.stats.ci_high]))
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 1e-6).max(1e-12);
    let (lo, hi) = (lo - pad, hi + pad);
    let (w, row, left, right) = (460.0, 26.0, 170.0, 12.0);
    let h = row * per.len() as f64 + 30.0;
    let plot = w - left - right;
    let x = |v: f64| left + (v - lo) / (hi - lo) * plot;
    let mut o = String::new();
    svg_open(&mut o, "chart forest", w, h);
    let _ = write!(
        o,
        r##"<text x="4" y="14" font-weight="bold" fill="#222">{}</text>"##,
        esc(&group::display_name(key))
    );
    for (i, (name, f)) in per.iter().enumerate() {
        let y = 30.0 + row * i as f64 + row / 2.0;
        let _ = write!(
            o,
            r##"<text x="{tx}" y="{ty:.1}" text-anchor="end" font-size="11" fill="#444">{n}</text>"##,
            tx = left - 8.0,
            ty = y + 4.0,
            n = esc(&clip(name, 24))
        );
        let Some(f) = f else { continue };
        let color = PALETTE[i % PALETTE.len()];
        let s = &f.stats;
        let _ = write!(
            o,
            r#"<line class="ci" data-figure="{key}" x1="{x1:.2}" x2="{x2:.2}" y1="{y:.1}" y2="{y:.1}" stroke="{color}" stroke-width="3"><title>{n}: {m} (95% interval {l} .. {u}, n = {c})</title></line>"#,
            x1 = x(s.ci_low),
            x2 = x(s.ci_high),
            n = esc(name),
            m = unit.format(s.mean),
            l = unit.format(s.ci_low),
            u = unit.format(s.ci_high),
            c = s.n
        );
        let _ = write!(
            o,
            r#"<line class="mean" x1="{m:.2}" x2="{m:.2}" y1="{a:.1}" y2="{b:.1}" stroke="{color}" stroke-width="2"/>"#,
            m = x(s.mean),
            a = y - 8.0,
            b = y + 8.0
        );
        for v in &f.values {
            let _ = write!(
                o,
                r##"<circle class="run-dot" cx="{cx:.2}" cy="{cy:.1}" r="2.5" fill="#fff" stroke="{color}"><title>{t}</title></circle>"##,
                cx = x(*v),
                cy = y - 9.0,
                t = unit.format(*v)
            );
        }
    }
    let _ = write!(
        o,
        r##"<text x="{left}" y="{y:.1}" font-size="10" fill="#666">{l}</text><text x="{r:.1}" y="{y:.1}" font-size="10" text-anchor="end" fill="#666">{u}</text></svg>"##,
        y = h - 2.0,
        r = w - right,
        l = esc(&unit.format(lo)),
        u = esc(&unit.format(hi))
    );
    o
}

fn clip(s: &str, n: usize) -> String {
    eprof_format::units::clip(s, n)
}

/// Bars of mean energy per phase or layer, one per sample, with 95% whiskers
/// (`class="ci"`); names listed in `marked` get a `*` (they differ from the first
/// sample beyond the noise).
fn bars(
    title: &str,
    prefix: &str,
    names: &[String],
    per: &[Vec<FigureStats>],
    marked: &[String],
) -> String {
    let (w, h, left, top, bottom) = (1000.0, 220.0, 72.0, 24.0, 30.0);
    let plot = w - left - 10.0;
    let ph = h - top - bottom;
    let find = |s: &[FigureStats], n: &str| -> Option<FigureStats> {
        s.iter()
            .find(|f| f.key == format!("{prefix}.{n}.energy"))
            .cloned()
    };
    let max = per
        .iter()
        .flat_map(|s| names.iter().filter_map(|n| find(s, n)))
        .map(|f| f.stats.ci_high.max(f.stats.mean))
        .fold(0.0f64, f64::max);
    let mut o = String::new();
    svg_open(&mut o, &format!("chart error-bars {prefix}-bars"), w, h);
    let _ = write!(
        o,
        r##"<text x="4" y="14" font-weight="bold" fill="#222">{}</text>"##,
        esc(title)
    );
    if names.is_empty() || max <= 0.0 {
        o.push_str(r#"<text x="10" y="40">no energies to show</text></svg>"#);
        return o;
    }
    energy_grid(&mut o, left, plot, top, ph, max);
    let gw = plot / names.len() as f64;
    let bw = gw * 0.85 / per.len().max(1) as f64;
    for (k, n) in names.iter().enumerate() {
        let gx = left + k as f64 * gw;
        for (i, s) in per.iter().enumerate() {
            let Some(f) = find(s, n) else { continue };
            let st = &f.stats;
            let bh = st.mean / max * ph;
            let cx = gx + i as f64 * bw + bw / 2.0;
            let yv = |v: f64| top + ph - v.max(0.0) / max * ph;
            let _ = write!(
                o,
                r##"<rect class="bar" x="{x:.2}" y="{y:.2}" width="{bw:.2}" height="{bh:.2}" fill="{c}" fill-opacity="0.75"><title>{n}: {m} (95% interval {l} .. {u})</title></rect><line class="ci" x1="{cx:.2}" x2="{cx:.2}" y1="{y1:.2}" y2="{y2:.2}" stroke="#222"/><line x1="{a:.2}" x2="{b:.2}" y1="{y1:.2}" y2="{y1:.2}" stroke="#222"/><line x1="{a:.2}" x2="{b:.2}" y1="{y2:.2}" y2="{y2:.2}" stroke="#222"/>"##,
                x = gx + i as f64 * bw,
                y = top + ph - bh,
                c = PALETTE[i % PALETTE.len()],
                n = esc(n),
                m = fmt_joules(st.mean),
                l = fmt_joules(st.ci_low),
                u = fmt_joules(st.ci_high),
                y1 = yv(st.ci_low),
                y2 = yv(st.ci_high),
                a = cx - bw * 0.25,
                b = cx + bw * 0.25
            );
        }
        let star = if marked.contains(n) { "*" } else { "" };
        if names.len() <= 40 || k % 5 == 0 || !star.is_empty() {
            let _ = write!(
                o,
                r##"<text class="{cls}" x="{x:.2}" y="{y}" text-anchor="middle" font-size="9" fill="{f}">{n}{star}</text>"##,
                cls = if star.is_empty() { "tick" } else { "sig" },
                x = gx + gw / 2.0,
                y = h - bottom + 14.0,
                f = if star.is_empty() { "#444" } else { "#b00" },
                n = esc(&short_component(n))
            );
        }
    }
    o.push_str("</svg>");
    o
}

/// The whole section's HTML for the open grouped runs (empty when there are none).
pub fn groups_html(vs: &[&TraceView]) -> String {
    let samples = samples(vs);
    if samples.is_empty() {
        return String::new();
    }
    let described: Vec<Vec<FigureStats>> = samples
        .iter()
        .map(|s| group::describe_group(&s.summaries()))
        .collect();
    // Forest plot rows: the configuration alone when one group is open.
    let one_group = samples.iter().all(|s| s.group == samples[0].group);
    let names: Vec<String> = samples
        .iter()
        .map(|s| if one_group { s.label.clone() } else { s.name() })
        .collect();
    let mut o = String::new();
    headline(&mut o, &samples, &described, &names);
    drift_warnings(&mut o, &samples, &described);
    let layer_marks = comparisons(&mut o, &samples);
    // Phases and layers with error bars.
    let phases: Vec<String> = eprof_format::Phase::ALL
        .iter()
        .map(|p| p.as_str().to_string())
        .collect();
    o.push_str(&bars(
        "Energy per phase (mean, 95% interval)",
        "phase",
        &phases,
        &described,
        &[],
    ));
    let layers = samples
        .iter()
        .flat_map(|s| s.runs.iter().map(|v| v.layers))
        .max()
        .unwrap_or(0);
    if layers > 0 {
        let names: Vec<String> = (0..layers).map(|l| format!("L{l}")).collect();
        o.push_str(&bars(
            "Energy per layer (mean, 95% interval; * differs from the first)",
            "layer",
            &names,
            &described,
            &layer_marks,
        ));
    }
    o
}

/// Headline figures: a table of mean and interval, then a forest plot each.
fn headline(
    o: &mut String,
    samples: &[Sample<'_>],
    described: &[Vec<FigureStats>],
    names: &[String],
) {
    o.push_str(r#"<table class="group-table"><thead><tr><th>figure</th>"#);
    for (i, s) in samples.iter().enumerate() {
        let _ = write!(
            o,
            r#"<th><span class="swatch" style="background:{}"></span>{} <small>({} runs)</small></th>"#,
            PALETTE[i % PALETTE.len()],
            esc(&s.name()),
            s.runs.len()
        );
    }
    o.push_str("</tr></thead><tbody>");
    for key in HEADLINE {
        let _ = write!(o, "<tr><th>{}</th>", esc(&group::display_name(key)));
        for d in described {
            match d.iter().find(|f| f.key == key) {
                Some(f) => {
                    let s = &f.stats;
                    let _ = write!(
                        o,
                        r#"<td class="mean-ci">{} <small>({} .. {}; cv {:.1}%{})</small></td>"#,
                        f.unit.format(s.mean),
                        f.unit.format(s.ci_low),
                        f.unit.format(s.ci_high),
                        s.cv * 100.0,
                        s.label
                            .map_or(String::new(), |l| format!("; {}", l.as_str()))
                    );
                }
                None => o.push_str("<td>-</td>"),
            }
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table><div class=\"forests\">");
    for key in HEADLINE {
        let per: Vec<(String, Option<&FigureStats>)> = names
            .iter()
            .zip(described)
            .map(|(n, d)| (n.clone(), d.iter().find(|f| f.key == key)))
            .collect();
        o.push_str(&forest(key, &per));
    }
    o.push_str("</div>");
}

/// A warning for each figure that drifts over a group's run order.
fn drift_warnings(o: &mut String, samples: &[Sample<'_>], described: &[Vec<FigureStats>]) {
    for (s, d) in samples.iter().zip(described) {
        for f in d.iter().filter(|f| f.family == Family::Run) {
            if let Some(dr) = f.drift.as_ref().filter(|dr| dr.drifting) {
                let _ = write!(
                    o,
                    r#"<p class="drift">{}: {} drifts {} per run over the run order (p = {:.3})</p>"#,
                    esc(&s.name()),
                    esc(&group::display_name(&f.key)),
                    group::percent(dr.slope_per_run),
                    dr.p_value
                );
            }
        }
    }
}

/// Every sample against the first: the headline and phase differences, and how many
/// layers, components and cells differ. Returns the layers that differ.
fn comparisons(o: &mut String, samples: &[Sample<'_>]) -> Vec<String> {
    let first = samples[0].summaries();
    let mut layer_marks: Vec<String> = Vec::new();
    for s in samples.iter().skip(1) {
        let diffs = group::compare_groups(&first, &s.summaries());
        let _ = write!(
            o,
            r#"<h3 class="vs">{} vs {}</h3><table class="group-compare"><thead><tr><th>figure</th><th>A</th><th>B</th><th>B − A (95% interval)</th><th>change</th><th>verdict</th><th>detectable</th></tr></thead><tbody>"#,
            esc(&s.name()),
            esc(&samples[0].name())
        );
        let shown = diffs.iter().filter(|d| {
            d.family == Family::Run || (d.family == Family::Phase && d.unit == Unit::Joules)
        });
        for d in shown {
            let cls = match d.diff.verdict {
                Verdict::Higher => "higher",
                Verdict::Lower => "lower",
                Verdict::NoDetectableDifference => "same",
            };
            let _ = write!(
                o,
                r#"<tr><th>{}</th><td>{}</td><td>{}</td><td>{} ({} .. {})</td><td>{}</td><td class="verdict {cls}">{}</td><td>{}</td></tr>"#,
                esc(&group::display_name(&d.key)),
                d.unit.format(d.diff.mean_a),
                d.unit.format(d.diff.mean_b),
                d.unit.format_signed(d.diff.diff),
                d.unit.format_signed(d.diff.ci_low),
                d.unit.format_signed(d.diff.ci_high),
                group::percent(d.diff.relative),
                d.diff.verdict.as_str(),
                d.unit.format(d.diff.detectable)
            );
        }
        o.push_str("</tbody></table>");
        for (family, what) in [
            (Family::Layer, "layers"),
            (Family::Component, "components"),
            (Family::Cell, "layer × component cells"),
        ] {
            let fam: Vec<&FigureDiff> = diffs
                .iter()
                .filter(|d| d.family == family && d.unit == Unit::Joules)
                .collect();
            if fam.is_empty() {
                continue;
            }
            let differ: Vec<&&FigureDiff> = fam
                .iter()
                .filter(|d| d.diff.verdict != Verdict::NoDetectableDifference)
                .collect();
            if family == Family::Layer {
                layer_marks.extend(
                    differ
                        .iter()
                        .filter_map(|d| d.key.split('.').nth(1).map(str::to_string)),
                );
            }
            let list: Vec<String> = differ
                .iter()
                .take(16)
                .map(|d| {
                    format!(
                        r#"<span class="differs">{} {}</span>"#,
                        esc(d.key.split('.').nth(1).unwrap_or_default()),
                        group::percent(d.diff.relative)
                    )
                })
                .collect();
            let _ = write!(
                o,
                r#"<p class="family">{what} (energy): {} of {} differ, false discovery rate held at 5% (Benjamini-Hochberg){}{}</p>"#,
                differ.len(),
                fam.len(),
                if list.is_empty() { "" } else { ": " },
                list.join(", ")
            );
        }
    }

    layer_marks
}
