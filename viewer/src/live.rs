//! The state of a run while it happens, built from the server's [`RunEvent`]s: what
//! the live dashboard draws. Plain Rust (tested natively); the app feeds it the
//! messages of a frame at once and redraws once per frame.
//!
//! The live charts are the static charts' own drawing code over this state: the
//! power chart takes a [`PowerSeries`] and phase bands, the heatmap a [`Grid`].

use std::collections::BTreeMap;

use eprof_format::live::{RunEvent, SiteColumns};
use eprof_format::model::{ChannelKind, Phase, StopReason};
use eprof_format::summary::{Grid, GridMetric};
use eprof_format::{EnergyLabel, layout::viridis};

use crate::charts::esc;
use crate::data::{PowerSeries, fmt_joules, fmt_ns};

/// One streamed token.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveToken {
    pub step: u32,
    pub text: String,
    pub joules: Option<f64>,
    pub label: Option<EnergyLabel>,
    pub duration_ns: u64,
}

/// Sum and count of a layer x component cell.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Acc {
    sum: f64,
    n: u32,
}

/// A run as far as its events have arrived.
#[derive(Debug, Clone, Default)]
pub struct LiveRun {
    pub run_id: String,
    pub model: String,
    pub depth: String,
    /// Channel name, kind, whether it adds into the total.
    channels: Vec<(String, ChannelKind, bool)>,
    /// (t_ns, watts per channel, total watts).
    samples: Vec<(u64, Vec<Option<f64>>, Option<f64>)>,
    /// Phase, start, end (open while running).
    pub bands: Vec<(Phase, u64, Option<u64>)>,
    pub tokens: Vec<LiveToken>,
    components: Vec<String>,
    layers: usize,
    /// metric (`time`, `energy`, `probe/metric`) -> (layer, component) -> accumulated.
    cells: BTreeMap<String, BTreeMap<(u16, usize), Acc>>,
    /// What happened last: phase, section, token, layer and component.
    pub now: String,
    pub t_ns: u64,
    pub ttft_ns: Option<u64>,
    pub decode_tokens_per_s: Option<f64>,
    /// Energy of the sections finished so far (phases; steps are inside them).
    joules_phases: f64,
    pub finished: Option<StopReason>,
    pub error: Option<String>,
    /// Events applied (for the page's counters).
    pub events: usize,
}

impl LiveRun {
    /// Apply one event of this run (`run_started` resets the state).
    pub fn apply(&mut self, e: &RunEvent) {
        self.events += 1;
        match e {
            RunEvent::RunStarted(s) => {
                *self = LiveRun {
                    run_id: s.run_id.clone(),
                    model: s.model.describe(),
                    depth: s.settings.depth.as_str().to_string(),
                    channels: s
                        .power
                        .channels
                        .iter()
                        .map(|c| (c.name.clone(), c.kind, c.in_total))
                        .collect(),
                    now: "starting".into(),
                    events: 1,
                    ..LiveRun::default()
                };
            }
            RunEvent::PowerSample {
                t_ns,
                watts,
                total_w,
                ..
            } => {
                self.samples.push((*t_ns, watts.clone(), *total_w));
                self.t_ns = self.t_ns.max(*t_ns);
            }
            RunEvent::SectionStart { phase, t_ns, .. } => {
                self.bands.push((*phase, *t_ns, None));
                self.now = phase.as_str().to_string();
                self.t_ns = self.t_ns.max(*t_ns);
            }
            RunEvent::SectionEnd {
                phase,
                name,
                step,
                end_ns,
                energy,
                ..
            } => {
                if name == phase.as_str() {
                    if let Some(b) = self.bands.iter_mut().rev().find(|b| b.0 == *phase) {
                        b.2 = Some(*end_ns);
                    }
                    self.joules_phases += energy.map_or(0.0, |e| e.joules);
                } else {
                    self.now = match step {
                        Some(s) => format!("{} · token {s} · {name}", phase.as_str()),
                        None => format!("{} · {name}", phase.as_str()),
                    };
                }
                self.t_ns = self.t_ns.max(*end_ns);
            }
            RunEvent::LayerMetrics { layers, .. } => self.add_sites(layers),
            RunEvent::ComponentMetrics { step, components } => {
                self.add_sites(components);
                if let Some(r) = components.len().checked_sub(1) {
                    let layer = components.layer[r].map_or(String::new(), |l| format!("L{l}."));
                    self.now = format!("token {step} · {layer}{}", components.component[r]);
                }
            }
            RunEvent::OperationMetrics { .. } => {}
            RunEvent::TokenComplete {
                step,
                text,
                energy,
                duration_ns,
                decode_tokens_per_s,
                elapsed_ns,
                start_ns,
                ..
            } => {
                self.tokens.push(LiveToken {
                    step: *step,
                    text: text.clone(),
                    joules: energy.map(|e| e.joules),
                    label: energy.map(|e| e.label),
                    duration_ns: *duration_ns,
                });
                if *step == 0 {
                    self.ttft_ns = Some(*elapsed_ns);
                }
                self.decode_tokens_per_s = *decode_tokens_per_s;
                self.t_ns = self.t_ns.max(start_ns + duration_ns);
            }
            RunEvent::Note { .. } => {}
            RunEvent::InferenceComplete { stop_reason, .. } => {
                self.finished = Some(*stop_reason);
                self.now = format!("finished ({})", stop_reason.as_str());
            }
            RunEvent::Error { message, .. } => {
                self.error = Some(message.clone());
                self.now = "failed".into();
            }
        }
    }

    fn add_sites(&mut self, c: &SiteColumns) {
        for r in 0..c.len() {
            let Some(layer) = c.layer[r] else { continue };
            let name = &c.component[r];
            let col = match self.components.iter().position(|x| x == name) {
                Some(i) => i,
                None => {
                    self.components.push(name.clone());
                    self.components.len() - 1
                }
            };
            self.layers = self.layers.max(usize::from(layer) + 1);
            let mut add = |metric: &str, v: f64| {
                let a = self
                    .cells
                    .entry(metric.to_string())
                    .or_default()
                    .entry((layer, col))
                    .or_default();
                a.sum += v;
                a.n += 1;
            };
            add(GridMetric::TIME, c.duration_ns[r] as f64);
            if let Some(j) = c.joules[r] {
                add(GridMetric::ENERGY, j);
            }
            for (m, vals) in &c.metrics {
                if let Some(v) = vals.get(r).copied().flatten() {
                    add(m, f64::from(v));
                }
            }
        }
    }

    /// Metrics the heatmap can show: time, energy, then the probes' as they arrive.
    pub fn metrics(&self) -> Vec<String> {
        let mut out: Vec<String> = [GridMetric::ENERGY, GridMetric::TIME]
            .into_iter()
            .filter(|m| self.cells.contains_key(*m))
            .map(str::to_string)
            .collect();
        out.extend(
            self.cells
                .keys()
                .filter(|k| !GridMetric::parse(k).is_sum() && k.as_str() != "model/flops")
                .cloned(),
        );
        out
    }

    /// The layer x component grid of `metric` so far: time and energy summed over the
    /// tokens, probe metrics averaged (as the finished trace's heatmap does). Layers
    /// are the rows seen so far; the whole-layer column is left out.
    pub fn grid(&self, metric: &str) -> Grid {
        let cols: Vec<usize> = (0..self.components.len())
            .filter(|&c| self.components[c] != eprof_format::Component::Layer.name())
            .collect();
        let mut values = vec![vec![None; cols.len()]; self.layers];
        if let Some(cells) = self.cells.get(metric) {
            let mean = !GridMetric::parse(metric).is_sum();
            for (&(l, c), a) in cells {
                if let Some(ci) = cols.iter().position(|&x| x == c) {
                    values[usize::from(l)][ci] =
                        Some(if mean { a.sum / f64::from(a.n) } else { a.sum });
                }
            }
        }
        Grid {
            layers: self.layers,
            components: cols.iter().map(|&c| self.components[c].clone()).collect(),
            values,
        }
    }

    /// Heatmap cells with a value.
    pub fn cells(&self, metric: &str) -> usize {
        self.cells.get(metric).map_or(0, BTreeMap::len)
    }

    /// Power so far, bucketed like a finished trace's power chart.
    pub fn power(&self) -> Option<PowerSeries> {
        let start = self.bands.first().map(|b| b.1)?;
        let end = self.t_ns.max(start + 1);
        let points: Vec<(u64, Vec<Option<f64>>)> = self
            .samples
            .iter()
            .filter(|s| s.0 >= start)
            .map(|s| {
                let mut v = s.1.clone();
                v.push(s.2);
                (s.0, v)
            })
            .collect();
        if points.is_empty() {
            return None;
        }
        let mut channels: Vec<(String, Option<ChannelKind>)> = self
            .channels
            .iter()
            .map(|c| (c.0.clone(), Some(c.1)))
            .collect();
        channels.push(("total".into(), None));
        let mut ps = PowerSeries::from_points(start, end, &channels, &points);
        // One channel that is the total: draw it once.
        if self.channels.len() == 1 && self.channels[0].2 {
            ps.channels.pop();
        }
        Some(ps)
    }

    /// Power samples received.
    pub fn samples(&self) -> usize {
        self.samples.len()
    }

    /// Phase bands for the power chart (open ones end now).
    pub fn band_spans(&self) -> Vec<(Phase, u64, u64)> {
        self.bands
            .iter()
            .map(|&(p, a, b)| (p, a, b.unwrap_or(self.t_ns)))
            .collect()
    }

    /// Joules so far: finished phases, plus the tokens of phases still running (step
    /// 0 is prefill's, the others decode's).
    pub fn joules(&self) -> f64 {
        let closed = |p: Phase| self.bands.iter().any(|b| b.0 == p && b.2.is_some());
        let open: f64 = self
            .tokens
            .iter()
            .filter(|t| {
                !closed(if t.step == 0 {
                    Phase::Prefill
                } else {
                    Phase::Decode
                })
            })
            .filter_map(|t| t.joules)
            .sum();
        self.joules_phases + open
    }

    /// The running figures line.
    pub fn figures(&self) -> String {
        let elapsed = self
            .bands
            .first()
            .map_or(0, |b| self.t_ns.saturating_sub(b.1));
        let j = self.joules();
        let per_token = if self.tokens.is_empty() {
            "-".to_string()
        } else {
            fmt_joules(j / self.tokens.len() as f64)
        };
        let watts = if elapsed > 0 {
            format!("{:.2} W", j / (elapsed as f64 * 1e-9))
        } else {
            "-".into()
        };
        format!(
            "{} tokens · {} · TTFT {} · {} so far · {} per token · {} average",
            self.tokens.len(),
            self.decode_tokens_per_s
                .map_or_else(|| "- tok/s".into(), |t| format!("{t:.1} tok/s")),
            self.ttft_ns
                .map_or_else(|| "-".into(), |t| fmt_ns(t as f64)),
            fmt_joules(j),
            per_token,
            watts
        )
    }

    /// The streamed text, each token coloured by its energy (viridis over the decode
    /// tokens so far, so the prefill token, many times costlier, does not flatten
    /// them; it takes the top colour; grey until its energy is known). A long run
    /// shows its last [`LIVE_TEXT_TOKENS`] tokens: the text redraws with each token,
    /// and its cost must not grow with the run (the whole text is in the run's views
    /// once it finishes).
    pub fn text_html(&self) -> String {
        let (lo, hi) = self
            .tokens
            .iter()
            .filter(|t| t.step > 0)
            .filter_map(|t| t.joules)
            .fold((f64::INFINITY, 0.0f64), |(a, b), j| (a.min(j), b.max(j)));
        let mut o = String::new();
        let skip = self.tokens.len().saturating_sub(LIVE_TEXT_TOKENS);
        if skip > 0 {
            o.push_str(&format!(
                r#"<span class="hint live-earlier">… {skip} earlier tokens … </span>"#
            ));
        }
        for t in &self.tokens[skip..] {
            let style = match t.joules {
                Some(j) if hi > lo => {
                    let (r, g, b) = viridis(((j - lo) / (hi - lo)).clamp(0.0, 1.0));
                    format!("background:rgba({r},{g},{b},0.45)")
                }
                Some(_) => "background:rgba(68,1,84,0.25)".into(),
                None => "background:#eee".into(),
            };
            let title = format!(
                "token {}: {} in {}{}",
                t.step,
                t.joules.map_or_else(|| "-".into(), fmt_joules),
                fmt_ns(t.duration_ns as f64),
                t.label
                    .map_or(String::new(), |l| format!(" ({})", l.as_str()))
            );
            o.push_str(&format!(
                r#"<span class="live-tok" data-step="{}" style="{style}" title="{}">{}</span>"#,
                t.step,
                esc(&title),
                esc(&t.text)
            ));
        }
        o
    }
}

/// The live text shows at most this many of the newest tokens.
pub const LIVE_TEXT_TOKENS: usize = 2_000;

#[cfg(test)]
mod tests {
    use super::*;
    use eprof_format::Energy;
    use eprof_format::live::RunStarted;
    use eprof_format::synthetic::{self, Shape};

    fn started() -> RunEvent {
        let t = synthetic::trace(&Shape::default());
        RunEvent::RunStarted(Box::new(RunStarted {
            run_id: "abc".into(),
            prompt: "p".into(),
            model: t.meta.model.clone(),
            settings: t.meta.settings.clone(),
            power: t.meta.power.clone(),
            machine: t.meta.machine.clone(),
            tags: vec![],
            experiment: None,
        }))
    }

    fn e(j: f64) -> Option<Energy> {
        Some(Energy {
            joules: j,
            label: EnergyLabel::Measured,
        })
    }

    #[test]
    fn events_build_the_dashboard_state() {
        let mut r = LiveRun::default();
        r.apply(&started());
        r.apply(&RunEvent::SectionStart {
            phase: Phase::Prefill,
            name: "prefill".into(),
            t_ns: 1_000,
        });
        r.apply(&RunEvent::PowerSample {
            t_ns: 2_000,
            window_ns: 1_000,
            watts: vec![Some(10.0); r.channels.len()],
            total_w: Some(10.0),
        });
        let mut c = SiteColumns::default();
        for (l, comp) in [(0u16, "q_proj"), (0, "k_proj"), (1, "q_proj")] {
            let row = c.push(&eprof_format::SiteDef {
                layer: Some(l),
                component: comp.into(),
                op: None,
            });
            c.duration_ns[row] = 100;
            c.set_energy(row, e(0.5));
        }
        c.metrics
            .insert("activation/mean".into(), vec![Some(1.0), None, Some(3.0)]);
        r.apply(&RunEvent::ComponentMetrics {
            step: 0,
            components: c.clone(),
        });
        r.apply(&RunEvent::ComponentMetrics {
            step: 1,
            components: c,
        });
        for step in 0..2 {
            r.apply(&RunEvent::TokenComplete {
                position: 5 + step,
                step,
                id: 1,
                text: format!("t{step}<"),
                token_text: "x".into(),
                phase: eprof_format::TokenPhase::Decode,
                start_ns: 1_000 + u64::from(step) * 1_000,
                duration_ns: 1_000,
                energy: e(0.25 * f64::from(step + 1)),
                provisional: false,
                power_w: Some(10.0),
                decode_tokens_per_s: Some(50.0),
                elapsed_ns: 2_000,
            });
        }
        assert_eq!(r.tokens.len(), 2);
        let g = r.grid("energy");
        assert_eq!((g.layers, g.components.len()), (2, 2));
        assert_eq!(g.values[0][0], Some(1.0), "summed over tokens");
        assert_eq!(g.values[1][1], None);
        let m = r.grid("activation/mean");
        assert_eq!(m.values[1][0], Some(3.0), "probe metrics are means");
        assert_eq!(r.cells("energy"), 3);
        assert_eq!(r.metrics(), vec!["energy", "time", "activation/mean"]);
        assert!(r.power().is_some());
        assert!((r.joules() - 0.75).abs() < 1e-12, "{}", r.joules());
        let html = r.text_html();
        assert_eq!(html.matches("live-tok").count(), 2);
        assert!(html.contains("t1&lt;"), "escaped");
        assert!(!html.contains("earlier tokens"));
        // A long run: the newest tokens only, and how many came before.
        let mut long = r.clone();
        let t = long.tokens[1].clone();
        long.tokens = (0..LIVE_TEXT_TOKENS as u32 + 7)
            .map(|i| {
                let mut t = t.clone();
                t.step = i;
                t
            })
            .collect();
        let html = long.text_html();
        assert_eq!(
            html.matches(r#"class="live-tok""#).count(),
            LIVE_TEXT_TOKENS
        );
        assert!(html.contains("… 7 earlier tokens"));
        assert!(html.contains(r#"data-step="7""#) && !html.contains(r#"data-step="6""#));
        assert!(r.figures().starts_with("2 tokens · 50.0 tok/s"));
        r.apply(&RunEvent::InferenceComplete {
            run_id: "abc".into(),
            trace: "x".into(),
            stop_reason: StopReason::Eos,
            generated_text: String::new(),
            summary: Box::new(eprof_format::Summary::compute(
                &synthetic::trace(&Shape::default()),
                &eprof_format::Energies::compute(&synthetic::trace(&Shape::default())),
            )),
        });
        assert_eq!(r.finished, Some(StopReason::Eos));
    }
}
