//! Every chart of the viewer as one SVG (or HTML) string, in plain Rust: one module
//! per chart, the SVG helpers they share here.
//!
//! Large grids and long series are written as one string and inserted once, not built
//! as thousands of reactive nodes. Elements carry `class` and `data-*` attributes
//! that the app uses for clicks (event delegation) and the browser test uses to count
//! what was drawn. Natively unit-tested: `cargo test -p eprof-viewer`.

use std::fmt::Write;

use eprof_format::layout::{Measure, Node, Rect, nice_ticks, sankey_column, squarify, viridis};
use eprof_format::summary::{Grid, short_component};

use crate::data::{
    PowerSeries, TraceView, fmt_joules, fmt_ns, fmt_num, fmt_tick, fmt_value, is_attention_side,
    trim_zeros,
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

/// A horizontal axis of the trace's clock, from `t0` to `t1` (ns), at height `y`.
fn axis_clock(o: &mut String, left: f64, plot: f64, y: f64, t0: u64, t1: u64) {
    let _ = write!(
        o,
        r##"<line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" stroke="#888"/>"##,
        x2 = left + plot
    );
    let span = (t1.saturating_sub(t0)).max(1) as f64;
    for t in nice_ticks(t0 as f64, t1 as f64, 6) {
        let x = left + (t - t0 as f64) / span * plot;
        if !(left - 0.5..=left + plot + 0.5).contains(&x) {
            continue;
        }
        let _ = write!(
            o,
            r##"<line x1="{x:.2}" y1="{y}" x2="{x:.2}" y2="{y2}" stroke="#888"/><text x="{x:.2}" y="{ty}" text-anchor="middle" fill="#444">{l}</text>"##,
            y2 = y + 4.0,
            ty = y + 16.0,
            l = esc(&trim_zeros(&fmt_ns(t)))
        );
    }
}

/// The selected range drawn over a plot from `x0` to `x1`.
fn range_overlay(o: &mut String, x0: f64, x1: f64, top: f64, ph: f64) {
    let _ = write!(
        o,
        r##"<rect class="sel-range" x="{x0:.2}" y="{top}" width="{w:.2}" height="{ph}" fill="#0072B2" fill-opacity="0.15" stroke="#0072B2" stroke-width="1" pointer-events="none"/>"##,
        w = (x1 - x0).max(1.0)
    );
}

/// Horizontal grid lines with their energy labels, for a bar chart whose plot starts at
/// `(left, top)`, is `plot` wide and `ph` high, and whose axis runs from 0 to `max`.
fn energy_grid(o: &mut String, left: f64, plot: f64, top: f64, ph: f64, max: f64) {
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
}

fn cell(o: &mut String, s: &str) {
    let _ = write!(o, "<td>{}</td>", esc(s));
}

fn dl_row(o: &mut String, k: &str, v: &str) {
    let _ = write!(o, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or("-".into(), f)
}

mod compare;
mod drilldown;
mod group;
mod heatmap;
mod icicle;
mod power;
mod sankey;
mod summary;
mod timeline;
mod track;
mod treemap;
mod waterfall;

/// A chart drawn from a trace's spans (the heatmap, the drilldown). The page draws it
/// itself when it decoded the trace, else sends it as JSON to the worker that holds the
/// spans (`crate::worker`), which draws it the same way.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpanChart {
    /// [`heatmap_of`] a metric key, over the whole run or one step.
    Heatmap {
        key: String,
        step: Option<u32>,
        log: bool,
    },
    /// [`drilldown`] of a layer's component.
    Drilldown {
        layer: usize,
        component: String,
        step: Option<u32>,
    },
}

impl SpanChart {
    pub fn draw(&self, v: &TraceView) -> String {
        match self {
            SpanChart::Heatmap { key, step, log } => heatmap_of(v, key, *step, *log),
            SpanChart::Drilldown {
                layer,
                component,
                step,
            } => drilldown(v, *layer, component, *step),
        }
    }
}

pub use compare::*;
pub use drilldown::*;
pub use group::groups_html;
pub use heatmap::*;
pub use icicle::*;
pub use power::*;
pub use sankey::*;
pub use summary::*;
pub use timeline::*;
pub use track::*;
pub use treemap::*;
pub use waterfall::*;

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
        let pw = power(&v, Some(ps), Some(1), None);
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

        let wf = waterfall(&v, m, Stack::Component, false);
        assert_eq!(count(&wf, "wf-cut"), 0);
        assert_eq!(count(&wf, "wf-tok"), 7);
        // The selection overlay sits over the bar of its token.
        let [x, w, ..] = waterfall_slot(&v, 3).unwrap();
        let bar = wf.find(r#"data-step="3""#).unwrap();
        let rect_x: f64 = wf[bar..]
            .split(r#"x=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((x * WF_W - rect_x).abs() < 1e-3 && w > 0.0, "{x} {rect_x}");
        let wf2 = waterfall(&v, m, Stack::LayerGroup, true);
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
                count(&waterfall(&v, m, stack, true), "wf-tok"),
                v.steps.len()
            );
        }
        treemap(v.tree(m), &[1, 0], m);
        timeline(&v, m);
        drilldown(&v, 60_000, "q_proj", Some(4_000_000_000));
        summary(&v);
    }

    #[test]
    fn long_runs_share_bars_and_one_step_reads_only_its_rows() {
        let v = view(2_500, 2, Depth::Deep);
        let bars = waterfall_bars(&v);
        // The prefill alone, then decode tokens in runs of at most 3.
        assert_eq!(bars[0], 0..1);
        assert!(bars.len() <= WF_MAX_BARS + 1 && bars.len() > WF_MAX_BARS / 2);
        assert!(bars.iter().all(|r| r.len() <= 3));
        assert_eq!(bars.iter().map(|r| r.len()).sum::<usize>(), v.steps.len());
        let m = Measure::TimeNs;
        let wf = waterfall(&v, m, Stack::Component, true);
        assert_eq!(count(&wf, "wf-tok"), bars.len());
        assert!(
            wf.contains("mean of up to 3 tokens per bar"),
            "axis says bars are means"
        );
        for st in [0, 1, 1_234, 2_499] {
            let [x, w, ..] = waterfall_slot(&v, st).unwrap();
            assert!(x >= 0.0 && x + w <= 1.0);
        }
        assert!(waterfall_slot(&v, 99_999).is_none());
        // One step through the step order gives what a scan of every row gives.
        let mut scan = view(2_500, 2, Depth::Deep);
        scan.order = eprof_format::StepOrder::default();
        assert!(v.order.spans && v.order.metrics.iter().all(|s| *s));
        assert!(v.metric_keys().iter().any(|k| k == "activation/mean"));
        for key in ["time", "energy", "activation/mean"] {
            for st in [None, Some(0), Some(1_000), Some(2_499)] {
                assert_eq!(
                    heatmap_of(&v, key, st, false),
                    heatmap_of(&scan, key, st, false)
                );
            }
        }
        for st in [None, Some(7)] {
            assert_eq!(
                drilldown(&v, 1, "attention", st),
                drilldown(&scan, 1, "attention", st)
            );
        }
    }

    #[test]
    fn a_span_chart_travels_as_json_and_draws_as_asked() {
        let v = view(5, 3, Depth::Deep);
        for c in [
            SpanChart::Heatmap {
                key: "activation/std".into(),
                step: Some(2),
                log: true,
            },
            SpanChart::Drilldown {
                layer: 1,
                component: "attention".into(),
                step: None,
            },
        ] {
            let json = serde_json::to_string(&c).unwrap();
            let back: SpanChart = serde_json::from_str(&json).unwrap();
            assert_eq!(back, c);
            assert_eq!(back.draw(&v), c.draw(&v));
        }
        assert_eq!(
            SpanChart::Heatmap {
                key: "time".into(),
                step: None,
                log: false
            }
            .draw(&v),
            heatmap_of(&v, "time", None, false)
        );
        assert!(serde_json::from_str::<SpanChart>(r#"{"kind":"pie"}"#).is_err());
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
    fn the_time_track_draws_the_window_it_is_given_and_at_most_a_bar_per_pixel() {
        let v = view(2000, 2, Depth::Off);
        let (s, e) = v.trace.pipeline_bounds().unwrap();
        let whole = time_track(&v, s, e, None, None);
        let bars = whole.matches(r#"class="tr-step""#).count();
        assert!(bars > 100 && bars <= 921, "{bars} bars for 2000 steps");
        let steps = v.trace.steps();
        let (a, b) = (steps[10].start_ns, steps[19].end_ns);
        let zoomed = time_track(&v, a, b, Some((a, b)), Some(steps[12].index));
        assert!(zoomed.contains(&format!(r#"data-t0="{a}" data-t1="{b}""#)));
        let shown: Vec<u32> = zoomed
            .split(r#"class="tr-step" data-step=""#)
            .skip(1)
            .map(|p| p[..p.find('"').unwrap()].parse().unwrap())
            .collect();
        assert!(shown.len() >= 10 && shown.len() <= 12, "{shown:?}");
        assert!(shown.contains(&10) && shown.contains(&19));
        assert!(zoomed.contains("sel-range") && zoomed.contains(r##"stroke="#D55E00""##));
        // The power chart over the same window says so too.
        let ps = PowerSeries::window(&v, a, b, 400).unwrap();
        let pw = power(&v, Some(&ps), None, Some((a, b)));
        assert!(
            pw.contains(&format!(r#"data-t0="{a}" data-t1="{b}""#)) && pw.contains("sel-range")
        );
    }

    #[test]
    fn the_icicle_draws_every_level_and_sums_to_the_run() {
        let v = view(5, 3, Depth::Deep);
        let m = Measure::TimeNs;
        let root = eprof_format::icicle::icicle(v.tree(m), &v.trace, &v.energies, m);
        let svg = icicle(&root, &[], m);
        assert!(svg.contains(&format!(
            r#"data-path="" data-name="run" data-v="{}""#,
            root.value
        )));
        for name in ["decode", "L2", "q_proj", "softmax"] {
            assert!(svg.contains(&format!(r#"data-name="{name}""#)), "{name}");
        }
        // Zoomed into the decode phase: it is the top row, and the prefill is gone.
        let d = root
            .children
            .iter()
            .position(|c| c.name == "decode")
            .unwrap();
        let zoomed = icicle(&root, &[d], m);
        assert!(zoomed.contains(&format!(r#"data-path="{d}" data-name="decode""#)));
        assert!(!zoomed.contains(r#"data-name="prefill""#));
    }

    /// Every Sankey label ends inside the chart (11 px system-ui text is under 7 px
    /// per character): the longest component names used to run off the right edge.
    #[test]
    fn sankey_labels_stay_inside_the_chart() {
        let v = view(5, 4, Depth::Module);
        let svg = sankey(&v, Measure::EnergyJ);
        let mut seen = 0;
        for part in svg.split(r#"<text class="sk-label" x=""#).skip(1) {
            let x: f64 = part[..part.find('"').unwrap()].parse().unwrap();
            let text = &part[part.find('>').unwrap() + 1..part.find("</text>").unwrap()];
            let w = 7.0 * text.chars().count() as f64;
            let (from, to) = if part.contains(r#"text-anchor="end""#) {
                (x - w, x)
            } else {
                (x, x + w)
            };
            assert!(from >= 0.0 && to <= 1000.0, "{text:?} spans {from}..{to}");
            seen += 1;
        }
        assert!(seen > 10, "{seen} labels");
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
