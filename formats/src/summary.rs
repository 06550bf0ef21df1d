//! Aggregations shared by the CLI, the server and the viewer: per phase, section,
//! token, layer, component and operation, plus the layer x component grid.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::attribution::{Attribution, Energy, EnergyLabel, median_spacing};
use crate::model::{Phase, SourceKind, TokenPhase, Trace};

/// Every energy figure of a trace, index-aligned with its records.
#[derive(Debug, Clone)]
pub struct Energies {
    pub attribution: Attribution,
    /// Energy over the whole pipeline (first phase start to last phase end).
    pub total: Option<Energy>,
    pub sections: Vec<Option<Energy>>,
    /// Per token; `None` for prompt tokens (they are processed together in prefill).
    pub tokens: Vec<Option<Energy>>,
    pub spans: Vec<Option<Energy>>,
}

impl Energies {
    pub fn compute(trace: &Trace) -> Self {
        let attribution = Attribution::new(trace);
        let a = &attribution;
        let total = trace.pipeline_bounds().and_then(|(s, e)| a.energy(s, e));
        let sections = trace
            .sections
            .iter()
            .map(|s| a.energy(s.start_ns, s.end_ns))
            .collect();
        let tokens = trace
            .tokens
            .iter()
            .map(|t| t.step.and_then(|s| a.energy(s.start_ns, s.end_ns)))
            .collect();
        let sp = &trace.spans;
        let spans = a.energies((0..sp.len()).map(|i| (sp.start_ns[i], sp.end_ns[i])));
        Energies {
            attribution,
            total,
            sections,
            tokens,
            spans,
        }
    }
}

/// One aggregated line: a phase, a section, a layer, a component...
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Row {
    pub name: String,
    /// How many records were added into this row.
    pub count: u32,
    pub duration_ns: u64,
    pub energy: Option<Energy>,
}

impl Row {
    fn new(name: impl Into<String>) -> Self {
        Row {
            name: name.into(),
            count: 0,
            duration_ns: 0,
            energy: None,
        }
    }

    fn add(&mut self, duration_ns: u64, energy: Option<Energy>) {
        self.count += 1;
        self.duration_ns += duration_ns;
        if let Some(e) = energy {
            self.energy = Energy::sum(self.energy.into_iter().chain([e]));
        }
    }

    pub fn joules(&self) -> Option<f64> {
        self.energy.map(|e| e.joules)
    }

    pub fn avg_power_w(&self) -> Option<f64> {
        let s = self.duration_ns as f64 * 1e-9;
        self.joules().filter(|_| s > 0.0).map(|j| j / s)
    }
}

/// One generated token's figures.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct TokenRow {
    pub position: u32,
    pub step: u32,
    pub id: u32,
    pub text: String,
    pub phase: TokenPhase,
    pub duration_ns: u64,
    pub energy: Option<Energy>,
    /// Average power per channel over the step.
    pub power_w: Vec<Option<f64>>,
}

/// Statistics of one probe metric over the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MetricRow {
    pub key: String,
    pub count: u32,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// The figures `eprof show` prints and the viewer's run summary displays.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Summary {
    pub duration_ns: u64,
    pub total: Option<Energy>,
    /// Idle power from the baseline, summed over the total's channels.
    pub idle_w: Option<f64>,
    /// Total minus idle power times duration: what the inference added.
    pub dynamic_j: Option<f64>,
    pub avg_power_w: Option<f64>,
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    /// Start of the pipeline to the end of prefill (the first token).
    pub time_to_first_token_ns: Option<u64>,
    /// Decode steps per second of decode phase.
    pub decode_tokens_per_s: Option<f64>,
    /// Decode-phase energy per decode step: the steady-state cost of a token.
    pub decode_j_per_token: Option<f64>,
    /// Whole-pipeline energy per generated token.
    pub j_per_generated_token: Option<f64>,
    pub phases: Vec<Row>,
    pub sections: Vec<Row>,
    pub layers: Vec<Row>,
    pub components: Vec<Row>,
    pub layer_components: Vec<Row>,
    pub operations: Vec<Row>,
    pub tokens: Vec<TokenRow>,
    pub metrics: Vec<MetricRow>,
    /// How many figures (sections, tokens, spans) carry each label.
    pub labels: Vec<(EnergyLabel, u32)>,
    pub source: String,
    pub source_kind: SourceKind,
    /// Each channel's energy over the pipeline, with its source, label and
    /// resolution (a run that combines NVML and RAPL has a line for each).
    #[serde(default)]
    pub channels: Vec<ChannelRow>,
    pub resolution_ns: u64,
    pub nominal_resolution_ns: u64,
    pub observed_spacing_ns: u64,
    pub samples: u32,
    pub complete: bool,
}

impl Summary {
    pub fn compute(trace: &Trace, en: &Energies) -> Self {
        let (start, end) = trace.pipeline_bounds().unwrap_or((0, 0));
        let duration_ns = end.saturating_sub(start);
        let (phases, sections) = section_rows(trace, en);
        let sites = SiteRows::of(trace, en);
        let tokens = token_rows(trace, en);

        let phase = |p: Phase| phases.iter().find(|r| r.name == p.as_str());
        let decode = phase(Phase::Decode).filter(|r| r.duration_ns > 0);
        let decode_steps = tokens
            .iter()
            .filter(|t| t.phase == TokenPhase::Decode)
            .count();
        let generated = tokens.len();
        let idle_w = trace
            .baseline
            .as_ref()
            .and_then(|b| b.total_w(&trace.meta.power));
        let total = en.total;

        Summary {
            duration_ns,
            total,
            idle_w,
            dynamic_j: total
                .zip(idle_w)
                .map(|(t, w)| t.joules - w * duration_ns as f64 * 1e-9),
            avg_power_w: total
                .filter(|_| duration_ns > 0)
                .map(|t| t.joules / (duration_ns as f64 * 1e-9)),
            prompt_tokens: trace
                .tokens
                .iter()
                .filter(|t| t.phase == TokenPhase::Prompt)
                .count() as u32,
            generated_tokens: generated as u32,
            time_to_first_token_ns: phase(Phase::Prefill).map(|_| {
                trace
                    .sections
                    .iter()
                    .filter(|s| s.is_phase() && s.phase == Phase::Prefill)
                    .map(|s| s.end_ns)
                    .max()
                    .unwrap_or(start)
                    .saturating_sub(start)
            }),
            decode_tokens_per_s: decode
                .filter(|_| decode_steps > 0)
                .map(|r| decode_steps as f64 / (r.duration_ns as f64 * 1e-9)),
            decode_j_per_token: decode
                .and_then(Row::joules)
                .filter(|_| decode_steps > 0)
                .map(|j| j / decode_steps as f64),
            j_per_generated_token: total
                .filter(|_| generated > 0)
                .map(|t| t.joules / generated as f64),
            phases,
            sections,
            layers: sites.layers,
            components: sites.components,
            layer_components: sites.layer_components,
            operations: sites.operations,
            tokens,
            metrics: metric_rows(trace),
            labels: label_counts(en),
            source: trace.meta.power.name.clone(),
            source_kind: trace.meta.power.kind,
            channels: channel_rows(trace, en, start, end),
            resolution_ns: en.attribution.resolution_ns(),
            nominal_resolution_ns: trace.meta.power.nominal_resolution_ns,
            observed_spacing_ns: median_spacing(trace),
            samples: trace.samples.len() as u32,
            complete: trace.end.is_some(),
        }
    }
}

/// Phases and sections, each summed over its steps, phases in pipeline order.
fn section_rows(trace: &Trace, en: &Energies) -> (Vec<Row>, Vec<Row>) {
    let mut phases: Vec<Row> = Vec::new();
    let mut sections: Vec<Row> = Vec::new();
    // (is a phase, phase, name) of each row, so repeated sections (one per decode
    // step) find their row without building its name again.
    let mut keys: Vec<(bool, Phase, &str, usize)> = Vec::new();
    for (s, e) in trace.sections.iter().zip(&en.sections) {
        let is_phase = s.is_phase();
        let found = keys
            .iter()
            .find(|k| k.0 == is_phase && k.1 == s.phase && k.2 == s.name)
            .map(|k| k.3);
        let rows = if is_phase { &mut phases } else { &mut sections };
        let r = match found {
            Some(r) => r,
            None => {
                let name = if is_phase {
                    s.name.clone()
                } else {
                    format!("{}/{}", s.phase.as_str(), s.name)
                };
                rows.push(Row::new(name));
                keys.push((is_phase, s.phase, &s.name, rows.len() - 1));
                rows.len() - 1
            }
        };
        rows[r].add(s.duration_ns(), *e);
    }
    phases.sort_by_key(|r| Phase::ALL.iter().position(|p| p.as_str() == r.name));
    (phases, sections)
}

/// The span rows: per layer, component, layer x component and operation.
struct SiteRows {
    layers: Vec<Row>,
    components: Vec<Row>,
    layer_components: Vec<Row>,
    operations: Vec<Row>,
}

impl SiteRows {
    fn of(trace: &Trace, en: &Energies) -> SiteRows {
        // What each site adds into, decided once per site rather than once per span.
        enum Slot {
            Layer(usize),
            Component(usize, usize),
            Operation(usize),
            Other,
        }
        let comp_order = component_order(trace);
        let layer_count = trace.layer_count();
        let mut op_names: Vec<String> = Vec::new();
        let slots: Vec<Slot> = trace
            .sites
            .iter()
            .map(|site| {
                let l = site.layer.map_or(0, usize::from);
                if site.is_layer() {
                    Slot::Layer(l)
                } else if site.is_component() {
                    match comp_order.iter().position(|n| *n == site.component) {
                        Some(c) => Slot::Component(l, c),
                        None => Slot::Other,
                    }
                } else if let Some(op) = &site.op {
                    let name = format!("{}.{op}", site.component);
                    let k = match op_names.iter().position(|n| *n == name) {
                        Some(k) => k,
                        None => {
                            op_names.push(name);
                            op_names.len() - 1
                        }
                    };
                    Slot::Operation(k)
                } else {
                    Slot::Other
                }
            })
            .collect();
        let mut layers: Vec<Option<Row>> = vec![None; layer_count];
        let mut components: Vec<Option<Row>> = vec![None; comp_order.len()];
        let mut layer_components: Vec<Option<Row>> = vec![None; layer_count * comp_order.len()];
        let mut operations: Vec<Option<Row>> = vec![None; op_names.len()];
        let sp = &trace.spans;
        for i in 0..sp.len() {
            let (d, e) = (sp.duration_ns(i), en.spans[i]);
            match slots[sp.site[i] as usize] {
                Slot::Layer(l) => layers[l]
                    .get_or_insert_with(|| Row::new(format!("L{l}")))
                    .add(d, e),
                Slot::Component(l, c) => {
                    components[c]
                        .get_or_insert_with(|| Row::new(comp_order[c].clone()))
                        .add(d, e);
                    layer_components[l * comp_order.len() + c]
                        .get_or_insert_with(|| Row::new(format!("L{l}.{}", comp_order[c])))
                        .add(d, e);
                }
                Slot::Operation(k) => operations[k]
                    .get_or_insert_with(|| Row::new(op_names[k].clone()))
                    .add(d, e),
                Slot::Other => {}
            }
        }
        let mut operations: Vec<Row> = operations.into_iter().flatten().collect();
        operations.sort_by(|a, b| a.name.cmp(&b.name));
        SiteRows {
            layers: layers.into_iter().flatten().collect(),
            components: components.into_iter().flatten().collect(),
            layer_components: layer_components.into_iter().flatten().collect(),
            operations,
        }
    }
}

/// A row per generated token.
fn token_rows(trace: &Trace, en: &Energies) -> Vec<TokenRow> {
    trace
        .tokens
        .iter()
        .zip(&en.tokens)
        .filter_map(|(t, e)| {
            let s = t.step?;
            Some(TokenRow {
                position: t.position,
                step: s.index,
                id: t.id,
                text: t.text.clone(),
                phase: t.phase,
                duration_ns: s.end_ns.saturating_sub(s.start_ns),
                energy: *e,
                power_w: en.attribution.power_w(s.start_ns, s.end_ns),
            })
        })
        .collect()
}

/// How many figures of the run carry each label.
fn label_counts(en: &Energies) -> Vec<(EnergyLabel, u32)> {
    let mut labels: BTreeMap<EnergyLabel, u32> = BTreeMap::new();
    for e in en
        .sections
        .iter()
        .chain(&en.tokens)
        .chain(&en.spans)
        .flatten()
    {
        *labels.entry(e.label).or_default() += 1;
    }
    labels.into_iter().collect()
}

/// One channel of the run's power source over the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ChannelRow {
    pub name: String,
    /// The source that read it (the run's source, or one of those it combines).
    pub source: String,
    pub in_total: bool,
    /// `None` when the channel gave too few readings.
    pub joules: Option<f64>,
    pub label: EnergyLabel,
    pub resolution_ns: u64,
}

fn channel_rows(trace: &Trace, en: &Energies, start: u64, end: u64) -> Vec<ChannelRow> {
    let a = &en.attribution;
    trace
        .meta
        .power
        .channels
        .iter()
        .enumerate()
        .map(|(c, ch)| ChannelRow {
            name: ch.name.clone(),
            source: trace
                .channel_sources
                .as_ref()
                .and_then(|s| s.get(c))
                .map_or_else(|| trace.meta.power.name.clone(), |s| s.source.clone()),
            in_total: ch.in_total,
            joules: a.channel_joules(c, start, end),
            label: a.channel_label(c, start, end),
            resolution_ns: a.channel_resolution_ns(c).unwrap_or(0),
        })
        .collect()
}

fn metric_rows(trace: &Trace) -> Vec<MetricRow> {
    trace
        .metrics
        .iter()
        .filter(|m| !m.is_empty())
        .map(|m| {
            let (mut sum, mut min, mut max, mut n) =
                (0.0f64, f64::INFINITY, f64::NEG_INFINITY, 0u32);
            for &v in &m.value {
                let v = f64::from(v);
                if v.is_finite() {
                    sum += v;
                    min = min.min(v);
                    max = max.max(v);
                    n += 1;
                }
            }
            MetricRow {
                key: m.key(),
                count: m.len() as u32,
                mean: if n > 0 { sum / f64::from(n) } else { f64::NAN },
                min,
                max,
            }
        })
        .collect()
}

/// A component name short enough for a table column or a chart label:
/// `in_norm`, `post_norm`, the others as they are.
pub fn short_component(c: &str) -> String {
    match c {
        "input_layernorm" => "in_norm".into(),
        "post_attention_layernorm" => "post_norm".into(),
        "post_attention_norm" => "attn_out_norm".into(),
        "pre_feedforward_layernorm" => "pre_ffn_norm".into(),
        "post_feedforward_layernorm" => "post_ffn_norm".into(),
        other => other.into(),
    }
}

/// Component names in display order: the order the trace's sites define them in,
/// which is execution order for the built-in architectures (Llama's twelve, Gemma 3's
/// sixteen) and puts a plugin's own components after them.
pub fn component_order(trace: &Trace) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for s in &trace.sites {
        if s.is_component() && !order.contains(&s.component) {
            order.push(s.component.clone());
        }
    }
    order
}

/// What a layer x component grid cell shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GridMetric {
    TimeNs,
    EnergyJ,
    /// Mean of a probe metric over the selected steps.
    Probe {
        probe: String,
        metric: String,
    },
}

impl GridMetric {
    /// The key of [`GridMetric::TimeNs`].
    pub const TIME: &'static str = "time";
    /// The key of [`GridMetric::EnergyJ`].
    pub const ENERGY: &'static str = "energy";

    /// The metric a key names: `time`, `energy`, or `probe/metric` (the keys of the
    /// viewer's metric menu and of its URLs).
    pub fn parse(key: &str) -> GridMetric {
        match key {
            Self::TIME => GridMetric::TimeNs,
            Self::ENERGY => GridMetric::EnergyJ,
            k => {
                let (probe, metric) = k.split_once('/').unwrap_or((k, ""));
                GridMetric::Probe {
                    probe: probe.into(),
                    metric: metric.into(),
                }
            }
        }
    }

    /// Its key ([`GridMetric::parse`] of it gives it back).
    pub fn key(&self) -> String {
        match self {
            GridMetric::TimeNs => Self::TIME.into(),
            GridMetric::EnergyJ => Self::ENERGY.into(),
            GridMetric::Probe { probe, metric } => format!("{probe}/{metric}"),
        }
    }

    /// Whether values add up over steps (time, energy), where a probe's are averaged.
    pub fn is_sum(&self) -> bool {
        !matches!(self, GridMetric::Probe { .. })
    }
}

/// A layer x component grid (rows: layers, columns: components).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Grid {
    pub layers: usize,
    pub components: Vec<String>,
    /// `values[layer][component]`; `None` where nothing was recorded.
    pub values: Vec<Vec<Option<f64>>>,
}

impl Grid {
    pub fn range(&self) -> Option<(f64, f64)> {
        let mut it = self.values.iter().flatten().flatten().copied();
        let first = it.next()?;
        Some(it.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
    }
}

/// Which step columns of a trace are in step order (as the recorder writes them), so
/// that one step's rows are found by binary search instead of a scan
/// ([`StepOrder::range`]). Computed once per trace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepOrder {
    pub spans: bool,
    /// Per metric series, in `trace.metrics` order.
    pub metrics: Vec<bool>,
}

impl StepOrder {
    pub fn of(trace: &Trace) -> StepOrder {
        StepOrder {
            spans: trace.spans.step.is_sorted(),
            metrics: trace.metrics.iter().map(|m| m.step.is_sorted()).collect(),
        }
    }

    /// The rows of `steps` to look at for `step` (all of them for `None` or when the
    /// column is not in order).
    pub fn range(steps: &[u32], sorted: bool, step: Option<u32>) -> std::ops::Range<usize> {
        match step {
            Some(x) if sorted => {
                steps.partition_point(|&s| s < x)..steps.partition_point(|&s| s <= x)
            }
            _ => 0..steps.len(),
        }
    }
}

/// The layer x component grid of `metric`, over all steps or one step.
pub fn grid(trace: &Trace, en: &Energies, metric: &GridMetric, step: Option<u32>) -> Grid {
    grid_in(trace, en, metric, step, &StepOrder::default())
}

/// [`grid`], reading only the selected step's rows where `order` says the columns
/// are in step order (a token slider across 10,000 steps reads 0.01% of the spans).
pub fn grid_in(
    trace: &Trace,
    en: &Energies,
    metric: &GridMetric,
    step: Option<u32>,
    order: &StepOrder,
) -> Grid {
    let components = component_order(trace);
    let layers = trace.layer_count();
    let col_of: Vec<Option<usize>> = trace
        .sites
        .iter()
        .map(|s| {
            if s.is_component() {
                components.iter().position(|c| *c == s.component)
            } else {
                None
            }
        })
        .collect();
    let mut sum = vec![vec![0.0f64; components.len()]; layers];
    let mut n = vec![vec![0u32; components.len()]; layers];
    let mut add = |site: u32, v: f64| {
        let s = site as usize;
        if let (Some(c), Some(l)) = (col_of[s], trace.sites[s].layer) {
            sum[l as usize][c] += v;
            n[l as usize][c] += 1;
        }
    };
    let keep = |s: u32| step.is_none_or(|x| x == s);
    let mean = match metric {
        GridMetric::TimeNs | GridMetric::EnergyJ => {
            let sp = &trace.spans;
            for i in StepOrder::range(&sp.step, order.spans, step) {
                if !keep(sp.step[i]) {
                    continue;
                }
                let v = match metric {
                    GridMetric::TimeNs => Some(sp.duration_ns(i) as f64),
                    _ => en.spans[i].map(|e| e.joules),
                };
                if let Some(v) = v {
                    add(sp.site[i], v);
                }
            }
            false
        }
        GridMetric::Probe { probe, metric } => {
            if let Some((k, m)) = trace
                .metrics
                .iter()
                .enumerate()
                .find(|(_, m)| m.probe == *probe && m.metric == *metric)
            {
                let sorted = order.metrics.get(k).copied().unwrap_or(false);
                for i in StepOrder::range(&m.step, sorted, step) {
                    if keep(m.step[i]) && m.value[i].is_finite() {
                        add(m.site[i], f64::from(m.value[i]));
                    }
                }
            }
            true
        }
    };
    let values = sum
        .iter()
        .zip(&n)
        .map(|(row, counts)| {
            row.iter()
                .zip(counts)
                .map(|(&s, &c)| (c > 0).then(|| if mean { s / f64::from(c) } else { s }))
                .collect()
        })
        .collect();
    Grid {
        layers,
        components,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grid_metric_key_reads_back_as_the_same_metric() {
        for k in ["time", "energy", "activation/mean", "attention/entropy"] {
            assert_eq!(GridMetric::parse(k).key(), k);
        }
        assert_eq!(GridMetric::parse("time"), GridMetric::TimeNs);
        assert!(GridMetric::parse("energy").is_sum());
        assert!(!GridMetric::parse("activation/mean").is_sum());
    }
}
