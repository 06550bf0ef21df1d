//! The data model of one profiled run, as held in memory after decoding a trace.
//!
//! Energies are not stored per record: the trace keeps the power readings and the time
//! boundaries, and [`crate::attribution`] derives every energy figure (with its label)
//! from them. That keeps one rule for how a figure is obtained, keeps traces small, and
//! lets a truncated trace (a crashed recording) still show energies for what it holds.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

pub use crate::kinds::{Component, DeviceSpec, RunStop, StopReason};

pub use crate::power::{
    Channel, ChannelKind, IdleBaseline, PowerSample, PowerSourceDesc, SYNTHETIC_DETAIL, SourceKind,
};

/// How much of the forward pass a run instruments. Ordered: `Off < Module < Deep`, so
/// "what a depth allows" is one comparison (`probe.min_depth <= depth`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Encode, Decode,
)]
#[serde(rename_all = "lowercase")]
pub enum Depth {
    /// Pipeline sections and tokens only; the forward pass is not instrumented.
    Off,
    /// Per layer and component spans, plus component activation statistics.
    Module,
    /// Module depth plus attention's inner operations and their metrics.
    Deep,
}

impl Depth {
    pub fn as_str(self) -> &'static str {
        match self {
            Depth::Off => "off",
            Depth::Module => "module",
            Depth::Deep => "deep",
        }
    }
}

impl std::str::FromStr for Depth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Depth::Off),
            "module" => Ok(Depth::Module),
            "deep" => Ok(Depth::Deep),
            other => Err(format!("unknown depth {other:?}: use off, module or deep")),
        }
    }
}

/// Everything known when a recording starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct RunMeta {
    /// Unique id of the run (16 hex digits).
    pub id: String,
    /// Wall-clock start, milliseconds since the Unix epoch (UTC).
    pub created_at_ms: i64,
    pub prompt: String,
    pub model: ModelIdentity,
    pub settings: Settings,
    pub machine: Machine,
    pub power: PowerSourceDesc,
    /// The recording software and its version, e.g. `eprof 0.1.0`.
    pub software: String,
    pub tags: Vec<String>,
    pub experiment: Option<String>,
}

/// Which model ran, precisely enough to compare runs across machines.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, Encode, Decode)]
pub struct ModelIdentity {
    /// Display name, usually the file or folder name.
    pub name: String,
    /// Adapter that ran it: `llama`, `mistral`, `qwen2`, ...
    pub architecture: String,
    pub path: String,
    /// SHA-256 of the weights file(s), hex; empty when not computed.
    pub file_hash: String,
    pub parameters: u64,
    pub layers: u32,
    pub hidden_size: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub vocab_size: u32,
    /// Storage type of the weights: `f32`, `bf16`, `q4_1`, ...
    pub dtype: String,
    /// Set for the built-in model made of random weights.
    pub random_weights: bool,
}

impl ModelIdentity {
    /// One line for people: `NAME [llama; 30 layers, hidden 576, 9 heads / 3 kv;
    /// 134515008 params; q4_1]`, flagged when the weights are random.
    pub fn describe(&self) -> String {
        format!(
            "{} [{}; {} layers, hidden {}, {} heads / {} kv; {} params; {}{}]",
            self.name,
            self.architecture,
            self.layers,
            self.hidden_size,
            self.heads,
            self.kv_heads,
            self.parameters,
            self.dtype,
            if self.random_weights {
                "; RANDOM WEIGHTS"
            } else {
                ""
            }
        )
    }
}

/// The settings a run was recorded with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct Settings {
    pub depth: Depth,
    pub max_tokens: u32,
    pub temperature: f64,
    pub top_k: Option<u32>,
    pub top_p: Option<f64>,
    pub seed: u64,
    pub chat_template: bool,
    /// Text on disk: `cpu`, `cuda`, `cuda:N`, `metal`.
    pub device: DeviceSpec,
    pub power_interval_ms: u32,
    pub idle_baseline_ms: u32,
    pub probes: Vec<String>,
    pub sparsity_threshold: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            depth: Depth::Module,
            max_tokens: 64,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 299_792_458,
            chat_template: false,
            device: DeviceSpec::Cpu,
            power_interval_ms: 100,
            idle_baseline_ms: 0,
            probes: Vec::new(),
            sparsity_threshold: 0.01,
        }
    }
}

/// The machine a run was recorded on.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, Encode, Decode)]
pub struct Machine {
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub cpu: String,
    pub cpu_cores: u32,
    pub memory_bytes: u64,
    pub gpu: Option<String>,
}

/// The four pipeline phases of a run (docs/architecture.md, "Recording one prompt").
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Encode, Decode,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    PreInference,
    Prefill,
    Decode,
    PostInference,
}

impl Phase {
    pub const ALL: [Phase; 4] = [
        Phase::PreInference,
        Phase::Prefill,
        Phase::Decode,
        Phase::PostInference,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreInference => "pre_inference",
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
            Phase::PostInference => "post_inference",
        }
    }
}

/// A timed pipeline section. A section whose `name` equals its phase name is the
/// phase itself; the others are parts of it (`tokenization`, `lm_head`, `sampling`...),
/// and decode parts carry the step they belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct Section {
    pub phase: Phase,
    pub name: String,
    pub step: Option<u32>,
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Section {
    pub fn is_phase(&self) -> bool {
        self.name == self.phase.as_str()
    }
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "lowercase")]
pub enum TokenPhase {
    /// Part of the prompt: processed together in prefill, produced by no step.
    Prompt,
    /// The first generated token, produced by the prefill step.
    Prefill,
    /// A token produced by a decode step.
    Decode,
}

impl TokenPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPhase::Prompt => "prompt",
            TokenPhase::Prefill => "prefill",
            TokenPhase::Decode => "decode",
        }
    }
}

/// One token of the sequence. Generated tokens carry the step (forward pass plus
/// sampling) that produced them; step 0 is prefill, step k >= 1 decodes token k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct Token {
    /// Position in the sequence (prompt tokens first).
    pub position: u32,
    pub id: u32,
    pub text: String,
    pub phase: TokenPhase,
    /// For generated tokens: the step that produced it, with its time span.
    pub step: Option<Step>,
}

/// The time span of one step: one forward pass and the sampling of one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct Step {
    pub index: u32,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// A place in the model where time is measured and tensors are observed: a layer's
/// component (`layer 3 / q_proj`), one of its operations (`layer 3 / attention /
/// softmax`), a whole layer (`component` [`Component::Layer`]), or a model-level part
/// (`layer == None`: `embedding`, `final_norm`, `lm_head`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode)]
pub struct SiteDef {
    pub layer: Option<u16>,
    pub component: String,
    pub op: Option<String>,
}

impl SiteDef {
    /// The site is a whole layer.
    pub fn is_layer(&self) -> bool {
        self.layer.is_some() && self.is(Component::Layer) && self.op.is_none()
    }
    /// The site is one component of a layer (not a whole layer, not an operation).
    pub fn is_component(&self) -> bool {
        self.layer.is_some() && !self.is(Component::Layer) && self.op.is_none()
    }
    /// The site's component is `c` (at any layer, with or without an operation).
    pub fn is(&self, c: Component) -> bool {
        self.component == c.name()
    }
    pub fn is_operation(&self) -> bool {
        self.op.is_some()
    }
    /// `L3.q_proj`, `L3.attention.softmax`, `lm_head`.
    pub fn label(&self) -> String {
        let mut s = match self.layer {
            Some(l) => format!("L{l}.{}", self.component),
            None => self.component.clone(),
        };
        if let Some(op) = &self.op {
            s.push('.');
            s.push_str(op);
        }
        s
    }
}

/// The twelve per-layer components of the Llama family (Llama, Mistral, Qwen2) at
/// module depth, in execution order. Other architectures name theirs in their sites
/// (Gemma 3 adds `q_norm`, `k_norm`, `post_attention_norm`,
/// `pre_feedforward_layernorm` and `post_feedforward_layernorm`).
pub const COMPONENTS: [Component; 12] = {
    use Component::*;
    [
        InputLayernorm,
        QProj,
        KProj,
        VProj,
        Rope,
        Attention,
        OProj,
        PostAttentionLayernorm,
        GateProj,
        UpProj,
        Act,
        DownProj,
    ]
};

/// Timed spans inside steps, stored column-wise. Row `i` is one span.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpanTable {
    pub step: Vec<u32>,
    pub site: Vec<u32>,
    pub start_ns: Vec<u64>,
    pub end_ns: Vec<u64>,
}

impl SpanTable {
    pub fn len(&self) -> usize {
        self.step.len()
    }
    pub fn is_empty(&self) -> bool {
        self.step.is_empty()
    }
    pub fn push(&mut self, step: u32, site: u32, start_ns: u64, end_ns: u64) {
        self.step.push(step);
        self.site.push(site);
        self.start_ns.push(start_ns);
        self.end_ns.push(end_ns);
    }
    pub fn extend(&mut self, other: &SpanTable) {
        self.step.extend_from_slice(&other.step);
        self.site.extend_from_slice(&other.site);
        self.start_ns.extend_from_slice(&other.start_ns);
        self.end_ns.extend_from_slice(&other.end_ns);
    }
    pub fn clear(&mut self) {
        self.step.clear();
        self.site.clear();
        self.start_ns.clear();
        self.end_ns.clear();
    }
    pub fn duration_ns(&self, i: usize) -> u64 {
        self.end_ns[i].saturating_sub(self.start_ns[i])
    }
}

/// Values of one metric of one probe, keyed by (step, site), stored column-wise.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricSeries {
    pub probe: String,
    pub metric: String,
    pub step: Vec<u32>,
    pub site: Vec<u32>,
    pub value: Vec<f32>,
}

impl MetricSeries {
    pub fn new(probe: impl Into<String>, metric: impl Into<String>) -> Self {
        MetricSeries {
            probe: probe.into(),
            metric: metric.into(),
            ..Default::default()
        }
    }
    pub fn len(&self) -> usize {
        self.value.len()
    }
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
    #[inline]
    pub fn push(&mut self, step: u32, site: u32, value: f32) {
        self.step.push(step);
        self.site.push(site);
        self.value.push(value);
    }
    /// `probe/metric`, the name users select a metric by.
    pub fn key(&self) -> String {
        format!("{}/{}", self.probe, self.metric)
    }
}

/// Something worth telling whoever reads the trace: a probe disabled mid-run, an
/// operation that is identity at inference, a power source falling back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct Note {
    pub t_ns: u64,
    pub level: NoteLevel,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "lowercase")]
pub enum NoteLevel {
    Info,
    Warning,
}

/// Written when a recording finishes; a trace without it did not finish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct RunEnd {
    pub generated_text: String,
    /// Why generation stopped; text on disk: `max_tokens`, `eos`, `cancelled`, or
    /// `error: MESSAGE`.
    pub stop_reason: RunStop,
    pub end_ns: u64,
    /// Median and largest spacing between consecutive power readings.
    pub observed_spacing_ns: u64,
    pub max_spacing_ns: u64,
    /// Counter readings that returned the same value as the one before: the counter
    /// had not updated yet. Many of them mean the source is coarser than it claims.
    pub stale_reads: u32,
}

/// A run's place in a group of repeated runs (`eprof bench`): which configuration it
/// ran and its repeat. Stored in the optional `grup` chunk (formats/SPEC.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode)]
pub struct GroupRef {
    /// The group's id (`g` + 12 hex digits), shared by all its runs.
    pub id: String,
    /// Index of this run's configuration among the group's (0-based).
    pub config: u32,
    /// The configuration in words: what differs between the group's configurations,
    /// e.g. `depth=off` or `model=qwen,max_tokens=64`; `all` when there is one.
    pub config_label: String,
    /// Repeat index within the configuration (0-based; warm-ups are not recorded).
    pub repeat: u32,
    /// Position in the order the group's runs were made (drift is checked over it).
    pub order: u32,
}

/// How the run was executed, beyond its settings: the CPU threads and which kernels
/// ran the quantized projections. Stored in the optional `exec` chunk (formats/SPEC.md),
/// so traces without it still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct Execution {
    /// Threads of the CPU pool the matmuls ran on.
    pub threads: u32,
    /// `eprof avx512`, `eprof avx2-vnni`, `eprof avx2`, `eprof neon`, `eprof scalar`
    /// (eprof's kernels for the quantized types they have, candle's for the others;
    /// which types those were changed between versions), or `candle`.
    pub kernels: String,
}

/// Where one channel's readings come from, when a run combines sources (NVML for the
/// GPU with RAPL for the CPU package): each has its own resolution. Stored in the
/// optional `chan` chunk, one per channel of the run's power source, in channel order;
/// a trace without it has one resolution for all channels
/// ([`PowerSourceDesc::nominal_resolution_ns`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
pub struct ChannelSource {
    /// The registered source that read the channel: `nvml`, `rapl`, ...
    pub source: String,
    /// That source's resolution for this channel (its counter's update period).
    pub nominal_resolution_ns: u64,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub meta: RunMeta,
    /// Per channel, the source and resolution, when the run combined sources.
    #[serde(default)]
    pub channel_sources: Option<Vec<ChannelSource>>,
    /// Threads and kernels, when the recorder says (eprof 0.1 since the CPU kernels).
    pub execution: Option<Execution>,
    /// Set when the run is one of a group of repeated runs.
    pub group: Option<GroupRef>,
    pub baseline: Option<IdleBaseline>,
    pub sites: Vec<SiteDef>,
    pub samples: Vec<PowerSample>,
    pub sections: Vec<Section>,
    pub tokens: Vec<Token>,
    pub spans: SpanTable,
    pub metrics: Vec<MetricSeries>,
    pub notes: Vec<Note>,
    pub end: Option<RunEnd>,
}

impl Trace {
    pub fn new(meta: RunMeta) -> Self {
        Trace {
            meta,
            channel_sources: None,
            execution: None,
            group: None,
            baseline: None,
            sites: Vec::new(),
            samples: Vec::new(),
            sections: Vec::new(),
            tokens: Vec::new(),
            spans: SpanTable::default(),
            metrics: Vec::new(),
            notes: Vec::new(),
            end: None,
        }
    }

    /// Generated tokens, in order.
    pub fn generated(&self) -> impl Iterator<Item = &Token> {
        self.tokens.iter().filter(|t| t.phase != TokenPhase::Prompt)
    }

    /// Steps in order (one per generated token).
    pub fn steps(&self) -> Vec<Step> {
        self.generated().filter_map(|t| t.step).collect()
    }

    /// The phase sections, in pipeline order.
    pub fn phases(&self) -> impl Iterator<Item = &Section> {
        self.sections.iter().filter(|s| s.is_phase())
    }

    /// First and last instant of the pipeline, if any section was recorded.
    pub fn pipeline_bounds(&self) -> Option<(u64, u64)> {
        let start = self.phases().map(|s| s.start_ns).min()?;
        let end = self.phases().map(|s| s.end_ns).max()?;
        Some((start, end))
    }

    /// Number of layers seen in the sites (not the model's declared count).
    pub fn layer_count(&self) -> usize {
        self.sites
            .iter()
            .filter_map(|s| s.layer)
            .map(|l| l as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// Find the metric series of `probe/metric`.
    pub fn metric(&self, probe: &str, metric: &str) -> Option<&MetricSeries> {
        self.metrics
            .iter()
            .find(|m| m.probe == probe && m.metric == metric)
    }
}
