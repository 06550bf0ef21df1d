//! The five tables of a dataset and how one trace fills them. Column names and types
//! are the contract documented in `docs/dataset.md` (a test holds the two equal).

use std::collections::HashMap;

use eprof_format::{Energies, Energy, EnergyLabel, Phase, RunMeta, Summary, Trace};
use parquet::data_type::ByteArray;
use sha2::{Digest, Sha256};

use crate::columns::{Col, TableWriter, Ty, V, opt, req};
use crate::error::Error;

/// One row per run.
pub const RUNS: &[Col] = &[
    req("run_id", Ty::Str),
    req("created_at", Ty::TimestampMs),
    req("prompt", Ty::Str),
    req("prompt_sha256", Ty::Str),
    opt("generated_text", Ty::Str),
    opt("stop_reason", Ty::Str),
    req("complete", Ty::Bool),
    req("model", Ty::Str),
    req("architecture", Ty::Str),
    req("model_path", Ty::Str),
    opt("model_sha256", Ty::Str),
    req("dtype", Ty::Str),
    req("parameters", Ty::I64),
    req("layers", Ty::I32),
    req("hidden_size", Ty::I32),
    req("heads", Ty::I32),
    req("kv_heads", Ty::I32),
    req("vocab_size", Ty::I32),
    req("random_weights", Ty::Bool),
    req("hostname", Ty::Str),
    req("os", Ty::Str),
    req("arch", Ty::Str),
    req("cpu", Ty::Str),
    req("cpu_cores", Ty::I32),
    req("memory_bytes", Ty::I64),
    opt("gpu", Ty::Str),
    req("software", Ty::Str),
    opt("experiment", Ty::Str),
    req("tags", Ty::StrList),
    opt("group_id", Ty::Str),
    opt("config", Ty::I32),
    opt("config_label", Ty::Str),
    opt("repeat", Ty::I32),
    opt("run_order", Ty::I32),
    opt("threads", Ty::I32),
    opt("kernels", Ty::Str),
    req("depth", Ty::Str),
    req("device", Ty::Str),
    req("max_tokens", Ty::I32),
    req("temperature", Ty::F64),
    opt("top_k", Ty::I32),
    opt("top_p", Ty::F64),
    req("seed", Ty::U64),
    req("chat_template", Ty::Bool),
    req("probes", Ty::StrList),
    req("power_interval_ms", Ty::I32),
    req("idle_baseline_ms", Ty::I32),
    req("source", Ty::Str),
    req("source_kind", Ty::Str),
    req("nominal_resolution_ns", Ty::I64),
    req("resolution_ns", Ty::I64),
    req("observed_spacing_ns", Ty::I64),
    req("power_samples", Ty::I32),
    req("duration_ns", Ty::I64),
    opt("total_j", Ty::F64),
    opt("total_label", Ty::Str),
    opt("idle_w", Ty::F64),
    opt("dynamic_j", Ty::F64),
    opt("avg_power_w", Ty::F64),
    req("prompt_tokens", Ty::I32),
    req("generated_tokens", Ty::I32),
    opt("ttft_ns", Ty::I64),
    opt("decode_tokens_per_s", Ty::F64),
    opt("decode_j_per_token", Ty::F64),
    opt("j_per_generated_token", Ty::F64),
];

/// One row per token of the sequence, prompt tokens included.
pub const TOKENS: &[Col] = &[
    req("run_id", Ty::Str),
    req("position", Ty::I32),
    req("token_id", Ty::I32),
    req("text", Ty::Str),
    req("phase", Ty::Str),
    opt("step", Ty::I32),
    opt("start", Ty::TimestampUs),
    opt("start_ns", Ty::I64),
    opt("duration_ns", Ty::I64),
    opt("energy_j", Ty::F64),
    opt("label", Ty::Str),
    opt("power_w", Ty::F64),
];

/// One row per timed interval: pipeline phases and sections, and the model's layers,
/// components, operations and model-level parts per step.
pub const SPANS: &[Col] = &[
    req("run_id", Ty::Str),
    req("kind", Ty::Str),
    req("phase", Ty::Str),
    req("name", Ty::Str),
    opt("step", Ty::I32),
    opt("layer", Ty::I32),
    opt("component", Ty::Str),
    opt("operation", Ty::Str),
    req("start", Ty::TimestampUs),
    req("start_ns", Ty::I64),
    req("duration_ns", Ty::I64),
    opt("energy_j", Ty::F64),
    opt("label", Ty::Str),
    opt("flops", Ty::F64),
];

/// One row per probe value.
pub const METRICS: &[Col] = &[
    req("run_id", Ty::Str),
    req("probe", Ty::Str),
    req("metric", Ty::Str),
    req("step", Ty::I32),
    opt("layer", Ty::I32),
    req("component", Ty::Str),
    opt("operation", Ty::Str),
    req("value", Ty::F32),
];

/// One row per power reading per channel that gave a value.
pub const POWER: &[Col] = &[
    req("run_id", Ty::Str),
    req("t", Ty::TimestampUs),
    req("t_ns", Ty::I64),
    req("window_ns", Ty::I64),
    req("channel", Ty::Str),
    req("channel_kind", Ty::Str),
    req("in_total", Ty::Bool),
    req("value", Ty::F64),
    req("unit", Ty::Str),
    opt("watts", Ty::F64),
];

/// Every table: its name (the dataset's folder) and columns.
pub const TABLES: [(&str, &[Col]); 5] = [
    ("runs", RUNS),
    ("tokens", TOKENS),
    ("spans", SPANS),
    ("metrics", METRICS),
    ("power", POWER),
];

/// Rows written per table for one run, in [`TABLES`] order.
pub type RowCounts = [u64; 5];

fn i32_of(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn joules(e: Option<Energy>) -> V<'static> {
    V::F64(e.map(|e| e.joules))
}

fn label(e: Option<Energy>) -> V<'static> {
    V::Str(e.map(|e| e.label.as_str()))
}

/// Texts repeated on many rows, made into Parquet values once per run.
struct Interned {
    id: ByteArray,
    labels: Vec<(EnergyLabel, ByteArray)>,
    phases: Vec<(Phase, ByteArray)>,
}

impl Interned {
    fn new(id: &str) -> Self {
        Interned {
            id: ByteArray::from(id),
            labels: EnergyLabel::ALL
                .map(|l| (l, ByteArray::from(l.as_str())))
                .into(),
            phases: Phase::ALL.map(|p| (p, ByteArray::from(p.as_str()))).into(),
        }
    }
    fn id(&self) -> V<'_> {
        V::Text(Some(&self.id))
    }
    fn label(&self, e: Option<Energy>) -> V<'_> {
        V::Text(e.and_then(|e| {
            self.labels
                .iter()
                .find(|(l, _)| *l == e.label)
                .map(|(_, b)| b)
        }))
    }
    fn phase(&self, p: Phase) -> V<'_> {
        V::Text(self.phases.iter().find(|(q, _)| *q == p).map(|(_, b)| b))
    }
}

/// SHA-256 of the prompt text, hex: runs of one prompt group by it without
/// comparing long texts.
pub fn prompt_hash(prompt: &str) -> String {
    Sha256::digest(prompt.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Write one trace's rows into the five tables (`w` in [`TABLES`] order).
pub fn write_run(trace: &Trace, w: &mut [TableWriter; 5]) -> Result<RowCounts, Error> {
    let before = w.each_ref().map(TableWriter::rows);
    let en = Energies::compute(trace);
    let s = Summary::compute(trace, &en);
    let text = Interned::new(&trace.meta.id);
    let [runs, tokens, spans, metrics, power] = w;
    run_row(trace, &s, runs)?;
    token_rows(trace, &en, &text, tokens)?;
    span_rows(trace, &en, &text, spans)?;
    metric_rows(trace, &text, metrics)?;
    power_rows(trace, power)?;
    let after = w.each_ref().map(TableWriter::rows);
    Ok(std::array::from_fn(|i| after[i] - before[i]))
}

/// Trace times count from the recording's start; the wall clock of that start is
/// `created_at`. Microseconds since the epoch.
fn wall_us(m: &RunMeta, t_ns: u64) -> i64 {
    m.created_at_ms.saturating_mul(1000) + i64_of(t_ns / 1000)
}

/// The run's one row of `runs`.
fn run_row(trace: &Trace, s: &Summary, runs: &mut TableWriter) -> Result<(), Error> {
    let m = &trace.meta;
    let id = m.id.as_str();
    let end = trace.end.as_ref();
    let g = trace.group.as_ref();
    let stop = end.map(|e| e.stop_reason.to_string());
    let device = m.settings.device.to_string();
    runs.row(&[
        V::Str(Some(id)),
        V::I64(Some(m.created_at_ms)),
        V::Str(Some(&m.prompt)),
        V::Str(Some(&prompt_hash(&m.prompt))),
        V::Str(end.map(|e| e.generated_text.as_str())),
        V::Str(stop.as_deref()),
        V::Bool(Some(end.is_some())),
        V::Str(Some(&m.model.name)),
        V::Str(Some(&m.model.architecture)),
        V::Str(Some(&m.model.path)),
        V::Str(Some(m.model.file_hash.as_str()).filter(|h| !h.is_empty())),
        V::Str(Some(&m.model.dtype)),
        V::I64(Some(i64_of(m.model.parameters))),
        V::I32(Some(i32_of(m.model.layers))),
        V::I32(Some(i32_of(m.model.hidden_size))),
        V::I32(Some(i32_of(m.model.heads))),
        V::I32(Some(i32_of(m.model.kv_heads))),
        V::I32(Some(i32_of(m.model.vocab_size))),
        V::Bool(Some(m.model.random_weights)),
        V::Str(Some(&m.machine.hostname)),
        V::Str(Some(&m.machine.os)),
        V::Str(Some(&m.machine.arch)),
        V::Str(Some(&m.machine.cpu)),
        V::I32(Some(i32_of(m.machine.cpu_cores))),
        V::I64(Some(i64_of(m.machine.memory_bytes))),
        V::Str(m.machine.gpu.as_deref()),
        V::Str(Some(&m.software)),
        V::Str(m.experiment.as_deref()),
        V::List(&m.tags),
        V::Str(g.map(|g| g.id.as_str())),
        V::I32(g.map(|g| i32_of(g.config))),
        V::Str(g.map(|g| g.config_label.as_str())),
        V::I32(g.map(|g| i32_of(g.repeat))),
        V::I32(g.map(|g| i32_of(g.order))),
        V::I32(trace.execution.as_ref().map(|e| i32_of(e.threads))),
        V::Str(trace.execution.as_ref().map(|e| e.kernels.as_str())),
        V::Str(Some(m.settings.depth.as_str())),
        V::Str(Some(&device)),
        V::I32(Some(i32_of(m.settings.max_tokens))),
        V::F64(Some(m.settings.temperature)),
        V::I32(m.settings.top_k.map(i32_of)),
        V::F64(m.settings.top_p),
        V::U64(Some(m.settings.seed)),
        V::Bool(Some(m.settings.chat_template)),
        V::List(&m.settings.probes),
        V::I32(Some(i32_of(m.settings.power_interval_ms))),
        V::I32(Some(i32_of(m.settings.idle_baseline_ms))),
        V::Str(Some(&m.power.name)),
        V::Str(Some(m.power.kind.as_str())),
        V::I64(Some(i64_of(m.power.nominal_resolution_ns))),
        V::I64(Some(i64_of(s.resolution_ns))),
        V::I64(Some(i64_of(s.observed_spacing_ns))),
        V::I32(Some(i32_of(s.samples))),
        V::I64(Some(i64_of(s.duration_ns))),
        joules(s.total),
        label(s.total),
        V::F64(s.idle_w),
        V::F64(s.dynamic_j),
        V::F64(s.avg_power_w),
        V::I32(Some(i32_of(s.prompt_tokens))),
        V::I32(Some(i32_of(s.generated_tokens))),
        V::I64(s.time_to_first_token_ns.map(i64_of)),
        V::F64(s.decode_tokens_per_s),
        V::F64(s.decode_j_per_token),
        V::F64(s.j_per_generated_token),
    ])?;
    Ok(())
}

/// A row of `tokens` per token.
fn token_rows(
    trace: &Trace,
    en: &Energies,
    text: &Interned,
    tokens: &mut TableWriter,
) -> Result<(), Error> {
    let m = &trace.meta;
    let at_us = |t_ns: u64| wall_us(m, t_ns);
    for (t, e) in trace.tokens.iter().zip(&en.tokens) {
        let step = t.step;
        let power_w = step.and_then(|st| {
            m.power
                .total_of(&en.attribution.power_w(st.start_ns, st.end_ns))
        });
        tokens.row(&[
            text.id(),
            V::I32(Some(i32_of(t.position))),
            V::I32(Some(i32_of(t.id))),
            V::Str(Some(&t.text)),
            V::Str(Some(t.phase.as_str())),
            V::I32(step.map(|s| i32_of(s.index))),
            V::I64(step.map(|s| at_us(s.start_ns))),
            V::I64(step.map(|s| i64_of(s.start_ns))),
            V::I64(step.map(|s| i64_of(s.end_ns.saturating_sub(s.start_ns)))),
            joules(*e),
            text.label(*e),
            V::F64(power_w),
        ])?;
    }
    Ok(())
}

/// A row of `spans` per phase, section and span (layers, components, operations).
fn span_rows(
    trace: &Trace,
    en: &Energies,
    text: &Interned,
    spans: &mut TableWriter,
) -> Result<(), Error> {
    let id = trace.meta.id.as_str();
    let at_us = |t_ns: u64| wall_us(&trace.meta, t_ns);
    for (sec, e) in trace.sections.iter().zip(&en.sections) {
        spans.row(&[
            V::Str(Some(id)),
            V::Str(Some(if sec.is_phase() { "phase" } else { "section" })),
            V::Str(Some(sec.phase.as_str())),
            V::Str(Some(&sec.name)),
            V::I32(sec.step.map(i32_of)),
            V::I32(None),
            V::Str(None),
            V::Str(None),
            V::I64(Some(at_us(sec.start_ns))),
            V::I64(Some(i64_of(sec.start_ns))),
            V::I64(Some(i64_of(sec.duration_ns()))),
            joules(*e),
            label(*e),
            V::F64(None),
        ])?;
    }
    let flops: HashMap<(u32, u32), f32> = trace
        .metric("model", "flops")
        .map(|f| {
            (0..f.len())
                .map(|i| ((f.step[i], f.site[i]), f.value[i]))
                .collect()
        })
        .unwrap_or_default();
    // Per site, decided once: kind, name, component and operation as values.
    let sites: Vec<[Option<ByteArray>; 4]> = trace
        .sites
        .iter()
        .map(|s| {
            let kind = if s.is_layer() {
                "layer"
            } else if s.is_operation() {
                "operation"
            } else if s.is_component() {
                "component"
            } else {
                "model"
            };
            [
                Some(ByteArray::from(kind)),
                Some(ByteArray::from(s.label().as_str())),
                (!s.is_layer()).then(|| ByteArray::from(s.component.as_str())),
                s.op.as_deref().map(ByteArray::from),
            ]
        })
        .collect();
    let sp = &trace.spans;
    for i in 0..sp.len() {
        let (step, site) = (sp.step[i], sp.site[i]);
        let def = &trace.sites[site as usize];
        let [kind, name, component, operation] = &sites[site as usize];
        // Step 0 is the prefill forward pass; every later step decodes one token.
        let phase = if step == 0 {
            Phase::Prefill
        } else {
            Phase::Decode
        };
        spans.row(&[
            text.id(),
            V::Text(kind.as_ref()),
            text.phase(phase),
            V::Text(name.as_ref()),
            V::I32(Some(i32_of(step))),
            V::I32(def.layer.map(i32::from)),
            V::Text(component.as_ref()),
            V::Text(operation.as_ref()),
            V::I64(Some(at_us(sp.start_ns[i]))),
            V::I64(Some(i64_of(sp.start_ns[i]))),
            V::I64(Some(i64_of(sp.duration_ns(i)))),
            joules(en.spans[i]),
            text.label(en.spans[i]),
            V::F64(flops.get(&(step, site)).map(|&f| f64::from(f))),
        ])?;
    }
    Ok(())
}

/// A row of `metrics` per probe value.
fn metric_rows(trace: &Trace, text: &Interned, metrics: &mut TableWriter) -> Result<(), Error> {
    let site_parts: Vec<(Option<i32>, ByteArray, Option<ByteArray>)> = trace
        .sites
        .iter()
        .map(|d| {
            (
                d.layer.map(i32::from),
                ByteArray::from(d.component.as_str()),
                d.op.as_deref().map(ByteArray::from),
            )
        })
        .collect();
    for series in &trace.metrics {
        let (probe, metric) = (
            ByteArray::from(series.probe.as_str()),
            ByteArray::from(series.metric.as_str()),
        );
        for i in 0..series.len() {
            let (layer, component, operation) = &site_parts[series.site[i] as usize];
            metrics.row(&[
                text.id(),
                V::Text(Some(&probe)),
                V::Text(Some(&metric)),
                V::I32(Some(i32_of(series.step[i]))),
                V::I32(*layer),
                V::Text(Some(component)),
                V::Text(operation.as_ref()),
                V::F32(Some(series.value[i])),
            ])?;
        }
    }
    Ok(())
}

/// A row of `power` per reading and channel.
fn power_rows(trace: &Trace, power: &mut TableWriter) -> Result<(), Error> {
    let m = &trace.meta;
    let id = m.id.as_str();
    let at_us = |t_ns: u64| wall_us(m, t_ns);
    let kind = m.power.kind;
    let unit = match kind {
        eprof_format::SourceKind::Counter => "J",
        _ => "W",
    };
    let mut prev = None;
    for smp in &trace.samples {
        let (watts, window_ns) = smp.watts(kind, prev);
        for (c, ch) in m.power.channels.iter().enumerate() {
            let Some(value) = smp.values.get(c).copied().flatten() else {
                continue;
            };
            power.row(&[
                V::Str(Some(id)),
                V::I64(Some(at_us(smp.t1_ns))),
                V::I64(Some(i64_of(smp.t1_ns))),
                V::I64(Some(i64_of(window_ns))),
                V::Str(Some(&ch.name)),
                V::Str(Some(ch.kind.as_str())),
                V::Bool(Some(ch.in_total)),
                V::F64(Some(value)),
                V::Str(Some(unit)),
                V::F64(watts.get(c).copied().flatten()),
            ])?;
        }
        prev = Some(smp);
    }
    Ok(())
}
