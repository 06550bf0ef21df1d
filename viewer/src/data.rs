//! One opened trace with everything the views read, computed once when it loads.
//!
//! Every figure comes from `eprof-format` (the same reader, attribution and summaries
//! as `eprof show`); this module only indexes them the way the charts walk them.

use std::collections::HashMap;
use std::sync::OnceLock;

use eprof_format::layout::{Measure, Node, tree};
use std::fmt::Write as _;

use eprof_format::model::{ChannelKind, Component, MetricSeries, SpanTable, TokenPhase, Trace};
use eprof_format::summary::component_order;
use eprof_format::{Decoded, Energies, StepOrder, Summary, Truncation};
use serde::{Deserialize, Serialize};

/// A decoded trace and its derived figures.
///
/// In the browser the trace is decoded in a Web Worker: the worker keeps the whole
/// view (spans, metric values, span energies) and the page gets a [`Snapshot`] of
/// everything else (`remote` is then the worker's id for it). Views that read spans
/// (the heatmap, the drilldown) ask the worker; the others draw from the snapshot.
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
    /// Generated tokens in step order, as columns.
    pub steps: Steps,
    /// Power over time (`None` without readings).
    pub power: Option<PowerSeries>,
    /// Which step columns are in step order (one step's rows by binary search).
    pub order: StepOrder,
    /// The worker's id for this trace when its spans live there (see above).
    pub remote: Option<u32>,
}

/// The generated tokens' figures as columns (one row per step, in step order),
/// broken down by component and by layer: what the waterfall and the token slider
/// read, without an object per token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Steps {
    pub step: Vec<u32>,
    pub text: Vec<String>,
    pub prefill: Vec<bool>,
    pub time_ns: Vec<f64>,
    pub energy_j: Vec<f64>,
    /// Values per row in `comp_*` (the trace's components).
    pub components: usize,
    /// Values per row in `layer_*` (0 where per-layer figures per step would not
    /// stay small).
    pub layers: usize,
    /// Row-major, `components` per step.
    pub comp_time: Vec<f64>,
    pub comp_energy: Vec<f64>,
    /// Row-major, `layers` per step (whole-layer spans).
    pub layer_time: Vec<f64>,
    pub layer_energy: Vec<f64>,
}

impl Steps {
    pub fn len(&self) -> usize {
        self.step.len()
    }
    pub fn is_empty(&self) -> bool {
        self.step.is_empty()
    }
    pub fn total(&self, i: usize, m: Measure) -> f64 {
        match m {
            Measure::EnergyJ => self.energy_j[i],
            Measure::TimeNs => self.time_ns[i],
        }
    }
    pub fn by_component(&self, i: usize, m: Measure) -> &[f64] {
        let c = self.components;
        match m {
            Measure::EnergyJ => &self.comp_energy[i * c..(i + 1) * c],
            Measure::TimeNs => &self.comp_time[i * c..(i + 1) * c],
        }
    }
    pub fn by_layer(&self, i: usize, m: Measure) -> &[f64] {
        let l = self.layers;
        match m {
            Measure::EnergyJ => &self.layer_energy[i * l..(i + 1) * l],
            Measure::TimeNs => &self.layer_time[i * l..(i + 1) * l],
        }
    }
    /// The row of a step index.
    pub fn row(&self, step: u32) -> Option<usize> {
        match self.step.binary_search(&step) {
            Ok(i) => Some(i),
            // Steps out of order (a hand-made file): look at every row.
            Err(_) => self.step.iter().position(|&s| s == step),
        }
    }
}

/// What the page needs of a trace decoded in the worker: the trace without its
/// spans and metric values (series keep their names), and every figure derived from
/// them that a view draws at load.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub name: String,
    pub trace: Trace,
    pub truncation: Option<Truncation>,
    pub summary: Summary,
    pub has_energy: bool,
    pub energy_tree: Node,
    pub time_tree: Node,
    pub components: Vec<String>,
    pub layers: usize,
    pub steps: Steps,
    pub power: Option<PowerSeries>,
}

impl TraceView {
    pub fn new(name: impl Into<String>, decoded: Decoded) -> Self {
        let Decoded { trace, truncation } = decoded;
        let energies = Energies::compute(&trace);
        let summary = Summary::compute(&trace, &energies);
        let has_energy = energies.attribution.has_energy();
        let components = component_order(&trace);
        let layers = trace.layer_count();
        let order = StepOrder::of(&trace);
        let steps = step_columns(&trace, &energies, &components, layers);
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
            order,
            remote: None,
        };
        view.power = PowerSeries::new(&view);
        view
    }

    /// What the page needs of this view (see [`Snapshot`]), encoded.
    pub fn snapshot(&self) -> Vec<u8> {
        let t = &self.trace;
        let light = Trace {
            meta: t.meta.clone(),
            channel_sources: t.channel_sources.clone(),
            execution: t.execution.clone(),
            group: t.group.clone(),
            baseline: t.baseline.clone(),
            sites: t.sites.clone(),
            samples: t.samples.clone(),
            sections: t.sections.clone(),
            tokens: t.tokens.clone(),
            spans: SpanTable::default(),
            metrics: t
                .metrics
                .iter()
                .map(|m| MetricSeries::new(m.probe.clone(), m.metric.clone()))
                .collect(),
            notes: t.notes.clone(),
            end: t.end.clone(),
        };
        let snap = Snapshot {
            name: self.name.clone(),
            trace: light,
            truncation: self.truncation.clone(),
            summary: self.summary.clone(),
            has_energy: self.has_energy,
            energy_tree: self.tree(Measure::EnergyJ).clone(),
            time_tree: self.tree(Measure::TimeNs).clone(),
            components: self.components.clone(),
            layers: self.layers,
            steps: self.steps.clone(),
            power: self.power.clone(),
        };
        bincode::serde::encode_to_vec(&snap, bincode::config::standard())
            .expect("a snapshot in memory always encodes")
    }

    /// The page's view of a trace the worker holds as `remote`.
    pub fn from_snapshot(bytes: &[u8], remote: u32) -> Result<TraceView, String> {
        let (s, _): (Snapshot, usize) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard())
                .map_err(|e| format!("the worker's snapshot does not decode: {e}"))?;
        // Sections' and tokens' energies are cheap to derive again; the spans' stay in
        // the worker.
        let energies = Energies::compute(&s.trace);
        let order = StepOrder::of(&s.trace);
        Ok(TraceView {
            name: s.name,
            trace: s.trace,
            truncation: s.truncation,
            energies,
            summary: s.summary,
            has_energy: s.has_energy,
            energy_tree: OnceLock::from(s.energy_tree),
            time_tree: OnceLock::from(s.time_tree),
            components: s.components,
            layers: s.layers,
            steps: s.steps,
            power: s.power,
            order,
            remote: Some(remote),
        })
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

/// The per-step columns: each generated token's time and energy, and its spans summed
/// by component and by layer.
fn step_columns(trace: &Trace, energies: &Energies, components: &[String], layers: usize) -> Steps {
    let step_count = trace.tokens.iter().filter(|t| t.step.is_some()).count();
    // Per-layer figures per step only where they stay small.
    let step_layers = if layers.saturating_mul(step_count) <= 20_000_000 {
        layers
    } else {
        0
    };
    let mut st = Steps {
        components: components.len(),
        layers: step_layers,
        ..Steps::default()
    };
    // Step index -> row (indices come from the file: a map, not a table sized by them).
    let mut row_of: HashMap<u32, usize> = HashMap::new();
    for (t, e) in trace.tokens.iter().zip(&energies.tokens) {
        let Some(s) = t.step else { continue };
        row_of.insert(s.index, st.step.len());
        st.step.push(s.index);
        st.text.push(t.text.clone());
        st.prefill.push(t.phase == TokenPhase::Prefill);
        st.time_ns.push(s.end_ns.saturating_sub(s.start_ns) as f64);
        st.energy_j.push(e.map_or(0.0, |e| e.joules));
    }
    let n = st.step.len();
    st.comp_time = vec![0.0; n * st.components];
    st.comp_energy = vec![0.0; n * st.components];
    st.layer_time = vec![0.0; n * step_layers];
    st.layer_energy = vec![0.0; n * step_layers];
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
    // Spans come in step order: remember the last step's row instead of hashing each.
    let mut last: Option<(u32, Option<usize>)> = None;
    for i in 0..sp.len() {
        let Some(Some((l, c))) = site_slot.get(sp.site[i] as usize) else {
            continue;
        };
        let step = sp.step[i];
        let row = match last {
            Some((s, r)) if s == step => r,
            _ => {
                let r = row_of.get(&step).copied();
                last = Some((step, r));
                r
            }
        };
        let Some(row) = row else { continue };
        let t = sp.duration_ns(i) as f64;
        let e = energies.spans[i].map_or(0.0, |e| e.joules);
        match c {
            None => {
                if *l < step_layers {
                    st.layer_time[row * step_layers + l] += t;
                    st.layer_energy[row * step_layers + l] += e;
                }
            }
            Some(c) => {
                let k = row * st.components + c;
                st.comp_time[k] += t;
                st.comp_energy[k] += e;
            }
        }
    }
    st
}

/// Whether a component is on the attention side of a layer (else the MLP side).
pub fn is_attention_side(component: &str) -> bool {
    Component::of(component).is_some_and(Component::is_attention_side)
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerSeries {
    pub start_ns: u64,
    pub end_ns: u64,
    pub bucket_ns: f64,
    /// Channel name, kind, and watts per bucket.
    pub channels: Vec<(String, Option<ChannelKind>, Vec<Option<f64>>)>,
}

impl PowerSeries {
    /// Power over the whole pipeline, one bucket per reading (2 to 400).
    pub fn new(v: &TraceView) -> Option<PowerSeries> {
        let (start, end) = v.trace.pipeline_bounds()?;
        let readings = v
            .trace
            .samples
            .iter()
            .filter(|s| s.t1_ns >= start && s.t0_ns <= end)
            .count();
        PowerSeries::window(v, start, end, readings.clamp(2, 400))
    }

    /// Power over `[start, end]` of the trace's clock in `n` equal buckets (a zoomed
    /// chart: the attribution curve is read again, not the whole run's buckets).
    pub fn window(v: &TraceView, start: u64, end: u64, n: usize) -> Option<PowerSeries> {
        if end <= start || !v.has_energy {
            return None;
        }
        let n = n.max(2);
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
        let t = self.start_ns as f64 + (i as f64 + 0.5) * self.bucket_ns;
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
        assert!(v.steps.prefill[0] && !v.steps.prefill[1]);
        assert_eq!(v.layers, 3);
        // Per-layer spans of all steps sum to the summary's per-layer energy.
        for l in 0..3 {
            let ours: f64 = (0..6)
                .map(|i| v.steps.by_layer(i, Measure::EnergyJ)[l])
                .sum();
            let theirs = v.summary.layers[l].joules().unwrap();
            assert!((ours - theirs).abs() < 1e-9 * theirs, "{ours} vs {theirs}");
        }
        let comp: f64 = v.steps.comp_time.iter().sum();
        let summary: f64 = v
            .summary
            .components
            .iter()
            .map(|r| r.duration_ns as f64)
            .sum();
        assert_eq!(comp, summary);
    }

    #[test]
    fn a_snapshot_carries_what_the_page_draws() {
        let v = view(9, 4, Depth::Deep);
        let p = TraceView::from_snapshot(&v.snapshot(), 7).unwrap();
        assert_eq!(p.remote, Some(7));
        assert_eq!(p.summary, v.summary);
        assert_eq!(p.steps, v.steps);
        assert_eq!(p.power, v.power);
        assert_eq!(
            (p.components.clone(), p.layers),
            (v.components.clone(), v.layers)
        );
        for m in [Measure::EnergyJ, Measure::TimeNs] {
            assert_eq!(p.tree(m), v.tree(m));
        }
        assert_eq!(p.metric_keys(), v.metric_keys());
        assert_eq!(p.present_layers(), v.present_layers());
        assert_eq!(p.energies.tokens, v.energies.tokens);
        assert_eq!(p.energies.total, v.energies.total);
        // The spans and metric values stay with the worker.
        assert!(p.trace.spans.is_empty() && p.trace.metrics.iter().all(|m| m.is_empty()));
        let mut light = v.trace.clone();
        light.spans = SpanTable::default();
        for m in &mut light.metrics {
            *m = MetricSeries::new(m.probe.clone(), m.metric.clone());
        }
        assert_eq!(p.trace, light);
        assert!(TraceView::from_snapshot(&[1, 2, 3], 1).is_err());
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
