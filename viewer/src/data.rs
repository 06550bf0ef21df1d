//! One opened trace with everything the views read, computed once when it loads.
//!
//! Every figure comes from `eprof-format` (the same reader, attribution and summaries
//! as `eprof show`); this module only indexes them the way the charts walk them.

use std::collections::HashMap;
use std::sync::OnceLock;

use eprof_format::layout::{Measure, Node, tree};
use std::fmt::Write as _;

use eprof_format::model::{ATTENTION_COMPONENTS, ChannelKind, TokenPhase, Trace};
use eprof_format::summary::component_order;
use eprof_format::{Decoded, Energies, Summary, Truncation};

/// A decoded trace and its derived figures.
#[derive(Debug)]
pub struct TraceView {
    /// File name (or URL) it came from.
    pub name: String,
    pub trace: Trace,
    pub truncation: Option<Truncation>,
    pub energies: Energies,
    pub summary: Summary,
    /// Whether the power source gave energies (else the views fall back to time).
    pub has_energy: bool,
    /// The hierarchies by energy and by time, each built the first time a view asks.
    energy_tree: OnceLock<Node>,
    time_tree: OnceLock<Node>,
    /// Component display order (columns of the heatmap, stack order of the waterfall).
    pub components: Vec<String>,
    pub layers: usize,
    /// Generated tokens in step order.
    pub steps: Vec<StepFigures>,
    /// Power over time (`None` without readings).
    pub power: Option<PowerSeries>,
}

/// One generated token's figures, broken down by layer and by component.
#[derive(Debug, Clone)]
pub struct StepFigures {
    pub step: u32,
    pub text: String,
    pub prefill: bool,
    pub time_ns: f64,
    pub energy_j: f64,
    /// Per component (in `TraceView::components` order), summed over layers.
    pub comp_time: Vec<f64>,
    pub comp_energy: Vec<f64>,
    /// Per layer (whole-layer spans).
    pub layer_time: Vec<f64>,
    pub layer_energy: Vec<f64>,
}

impl StepFigures {
    pub fn total(&self, m: Measure) -> f64 {
        match m {
            Measure::EnergyJ => self.energy_j,
            Measure::TimeNs => self.time_ns,
        }
    }
    pub fn by_component(&self, m: Measure) -> &[f64] {
        match m {
            Measure::EnergyJ => &self.comp_energy,
            Measure::TimeNs => &self.comp_time,
        }
    }
    pub fn by_layer(&self, m: Measure) -> &[f64] {
        match m {
            Measure::EnergyJ => &self.layer_energy,
            Measure::TimeNs => &self.layer_time,
        }
    }
}

impl TraceView {
    pub fn new(name: impl Into<String>, decoded: Decoded) -> Self {
        let Decoded { trace, truncation } = decoded;
        let energies = Energies::compute(&trace);
        let summary = Summary::compute(&trace, &energies);
        let has_energy = energies.attribution.has_energy();
        let components = component_order(&trace);
        let layers = trace.layer_count();

        // Step index -> row in `steps` (indices come from the file: a map, not a
        // table sized by them). Per-layer figures per step only where they stay small.
        let mut steps: Vec<StepFigures> = Vec::new();
        let mut row_of: HashMap<u32, usize> = HashMap::new();
        let step_count = trace.tokens.iter().filter(|t| t.step.is_some()).count();
        let step_layers = if layers.saturating_mul(step_count) <= 20_000_000 {
            layers
        } else {
            0
        };
        for (t, e) in trace.tokens.iter().zip(&energies.tokens) {
            let Some(st) = t.step else { continue };
            row_of.insert(st.index, steps.len());
            steps.push(StepFigures {
                step: st.index,
                text: t.text.clone(),
                prefill: t.phase == TokenPhase::Prefill,
                time_ns: st.end_ns.saturating_sub(st.start_ns) as f64,
                energy_j: e.map_or(0.0, |e| e.joules),
                comp_time: vec![0.0; components.len()],
                comp_energy: vec![0.0; components.len()],
                layer_time: vec![0.0; step_layers],
                layer_energy: vec![0.0; step_layers],
            });
        }
        // Site -> (layer, Some(component column) | None for the whole layer).
        let site_slot: Vec<Option<(usize, Option<usize>)>> = trace
            .sites
            .iter()
            .map(|s| {
                let l = usize::from(s.layer?);
                if s.is_layer() {
                    Some((l, None))
                } else if s.is_component() {
                    components
                        .iter()
                        .position(|c| *c == s.component)
                        .map(|c| (l, Some(c)))
                } else {
                    None
                }
            })
            .collect();
        let sp = &trace.spans;
        for i in 0..sp.len() {
            let Some(row) = row_of.get(&sp.step[i]) else {
                continue;
            };
            let Some(Some((l, c))) = site_slot.get(sp.site[i] as usize) else {
                continue;
            };
            let f = &mut steps[*row];
            let t = sp.duration_ns(i) as f64;
            let e = energies.spans[i].map_or(0.0, |e| e.joules);
            match c {
                None => {
                    if let Some(x) = f.layer_time.get_mut(*l) {
                        *x += t;
                    }
                    if let Some(x) = f.layer_energy.get_mut(*l) {
                        *x += e;
                    }
                }
                Some(c) => {
                    f.comp_time[*c] += t;
                    f.comp_energy[*c] += e;
                }
            }
        }
        let mut view = TraceView {
            name: name.into(),
            trace,
            truncation,
            energies,
            summary,
            has_energy,
            energy_tree: OnceLock::new(),
            time_tree: OnceLock::new(),
            components,
            layers,
            steps,
            power: None,
        };
        view.power = PowerSeries::new(&view);
        view
    }

    /// Energy where the source measured any, else time.
    pub fn default_measure(&self) -> Measure {
        if self.has_energy {
            Measure::EnergyJ
        } else {
            Measure::TimeNs
        }
    }

    pub fn tree(&self, m: Measure) -> &Node {
        match m {
            Measure::EnergyJ => self
                .energy_tree
                .get_or_init(|| tree(&self.trace, &self.energies, m)),
            Measure::TimeNs => self
                .time_tree
                .get_or_init(|| tree(&self.trace, &self.energies, m)),
        }
    }

    /// The layers the trace has sites in, in order.
    pub fn present_layers(&self) -> Vec<usize> {
        let mut l: Vec<usize> = self
            .trace
            .sites
            .iter()
            .filter_map(|s| s.layer.map(usize::from))
            .collect();
        l.sort_unstable();
        l.dedup();
        l
    }

    /// Probe metrics the trace holds, as `probe/metric` keys.
    pub fn metric_keys(&self) -> Vec<String> {
        self.trace.metrics.iter().map(|m| m.key()).collect()
    }
}

/// Whether a component is on the attention side of a layer (else the MLP side).
pub fn is_attention_side(component: &str) -> bool {
    ATTENTION_COMPONENTS.contains(&component)
}

/// A figure with its unit, short: `1.23 J`, `456 mJ`, `12.3 ms`.
pub fn fmt_value(v: f64, m: Measure) -> String {
    match m {
        Measure::EnergyJ => fmt_joules(v),
        Measure::TimeNs => fmt_ns(v),
    }
}

pub use eprof_format::units::{duration_ns as fmt_ns, joules as fmt_joules, trim_zeros};

/// An axis tick: `fmt_value` without trailing zeros (`300 mJ`, `2.5 ms`).
pub fn fmt_tick(v: f64, m: Measure) -> String {
    trim_zeros(&fmt_value(v, m))
}

pub use eprof_format::units::number as fmt_num;

/// Average power per channel over equal time buckets of the pipeline.
#[derive(Debug, Clone)]
pub struct PowerSeries {
    pub start_ns: u64,
    pub end_ns: u64,
    pub bucket_ns: f64,
    /// Channel name, kind, and watts per bucket.
    pub channels: Vec<(String, Option<ChannelKind>, Vec<Option<f64>>)>,
}

impl PowerSeries {
    pub fn new(v: &TraceView) -> Option<PowerSeries> {
        let (start, end) = v.trace.pipeline_bounds()?;
        if end <= start || !v.has_energy {
            return None;
        }
        let readings = v
            .trace
            .samples
            .iter()
            .filter(|s| s.t1_ns >= start && s.t0_ns <= end)
            .count();
        let n = readings.clamp(2, 400);
        let bucket = (end - start) as f64 / n as f64;
        let a = &v.energies.attribution;
        let desc = &v.trace.meta.power;
        let mut per: Vec<Vec<Option<f64>>> = vec![Vec::with_capacity(n); desc.channels.len()];
        let mut total = Vec::with_capacity(n);
        for b in 0..n {
            let t0 = start + (b as f64 * bucket) as u64;
            let t1 = start + ((b + 1) as f64 * bucket) as u64;
            let p = a.power_w(t0, t1);
            total.push(desc.total_of(&p));
            for (c, w) in p.into_iter().enumerate() {
                per[c].push(w);
            }
        }
        let mut channels: Vec<(String, Option<ChannelKind>, Vec<Option<f64>>)> = desc
            .channels
            .iter()
            .zip(per)
            .filter(|(_, w)| w.iter().any(Option::is_some))
            .map(|(c, w)| (c.name.clone(), Some(c.kind), w))
            .collect();
        if channels.len() != 1 || !desc.channels.iter().all(|c| c.in_total) {
            channels.push(("total".into(), None, total));
        }
        Some(PowerSeries {
            start_ns: start,
            end_ns: end,
            bucket_ns: bucket,
            channels,
        })
    }

    /// Power from readings at times `t` (watts per channel, in `channels`' order),
    /// averaged into equal buckets over `[start, end]` (the live dashboard's series).
    pub fn from_points(
        start: u64,
        end: u64,
        channels: &[(String, Option<ChannelKind>)],
        points: &[(u64, Vec<Option<f64>>)],
    ) -> PowerSeries {
        let n = points.len().clamp(2, 400);
        let bucket = (end.saturating_sub(start)).max(1) as f64 / n as f64;
        let mut sum = vec![vec![(0.0f64, 0u32); n]; channels.len()];
        for (t, w) in points {
            let b = ((t.saturating_sub(start)) as f64 / bucket) as usize;
            let b = b.min(n - 1);
            for (c, v) in w.iter().enumerate().take(channels.len()) {
                if let Some(v) = v {
                    sum[c][b].0 += v;
                    sum[c][b].1 += 1;
                }
            }
        }
        PowerSeries {
            start_ns: start,
            end_ns: end,
            bucket_ns: bucket,
            channels: channels
                .iter()
                .zip(sum)
                .map(|((name, kind), s)| {
                    let w = s
                        .into_iter()
                        .map(|(x, k)| (k > 0).then(|| x / f64::from(k)))
                        .collect();
                    (name.clone(), *kind, w)
                })
                .collect(),
        }
    }

    pub fn buckets(&self) -> usize {
        self.channels.first().map_or(0, |c| c.2.len())
    }

    pub fn max_w(&self) -> f64 {
        self.channels
            .iter()
            .flat_map(|c| c.2.iter().flatten())
            .fold(0.0f64, |a, &b| a.max(b))
    }

    /// The bucket under a horizontal position in [0, 1] of the plot, and its readout.
    pub fn readout(&self, frac: f64) -> (usize, String) {
        let n = self.buckets();
        let i = ((frac.clamp(0.0, 1.0) * n as f64) as usize).min(n.saturating_sub(1));
        let t = (i as f64 + 0.5) * self.bucket_ns;
        let mut s = format!("t = {}", fmt_ns(t));
        for (name, _, w) in &self.channels {
            let _ = match w.get(i).copied().flatten() {
                Some(w) => write!(s, " · {name} {w:.2} W"),
                None => write!(s, " · {name} -"),
            };
        }
        (i, s)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use eprof_format::Depth;
    use eprof_format::synthetic::{self, Shape};

    pub(crate) fn view(tokens: u32, layers: u16, depth: Depth) -> TraceView {
        let t = synthetic::trace(&Shape {
            generated_tokens: tokens,
            layers,
            depth,
            ..Shape::default()
        });
        let bytes = eprof_format::encode(&t);
        TraceView::new("synthetic.eprof", eprof_format::decode(&bytes).unwrap())
    }

    #[test]
    fn step_figures_add_up_to_the_summary() {
        let v = view(6, 3, Depth::Deep);
        assert_eq!(v.steps.len(), 6);
        assert!(v.steps[0].prefill && !v.steps[1].prefill);
        assert_eq!(v.layers, 3);
        // Per-layer spans of all steps sum to the summary's per-layer energy.
        for l in 0..3 {
            let ours: f64 = v.steps.iter().map(|s| s.layer_energy[l]).sum();
            let theirs = v.summary.layers[l].joules().unwrap();
            assert!((ours - theirs).abs() < 1e-9 * theirs, "{ours} vs {theirs}");
        }
        let comp: f64 = v
            .steps
            .iter()
            .map(|s| s.comp_time.iter().sum::<f64>())
            .sum();
        let summary: f64 = v
            .summary
            .components
            .iter()
            .map(|r| r.duration_ns as f64)
            .sum();
        assert_eq!(comp, summary);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_joules(1.5), "1.500 J");
        assert_eq!(fmt_joules(0.0125), "12.500 mJ");
        assert_eq!(fmt_ns(2_500_000.0), "2.500 ms");
        assert_eq!(fmt_tick(0.3, Measure::EnergyJ), "300 mJ");
        assert_eq!(fmt_tick(2_500_000.0, Measure::TimeNs), "2.5 ms");
        assert_eq!(trim_zeros("0 J"), "0 J");
        assert_eq!(trim_zeros("1.500e-7"), "1.500e-7");
        assert_eq!(fmt_num(0.012345), "0.01235");
        assert_eq!(fmt_num(1234.4), "1234");
        assert_eq!(fmt_num(1.5e-7), "1.500e-7");
    }
}
