//! The events of a recording as it happens, and the sink they go to.
//!
//! [`RunEvent`] values serialize (`{"type": "token_complete", ...}`) to exactly the
//! messages of the server's WebSocket stream; `docs/api.md` shows one of each. They
//! are made between steps from what the session just flushed (the trace's own
//! columns), never on the hot path, and their energies come from the same
//! attribution as the trace's: figures that later readings can still change are
//! marked `provisional`.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use eprof_core::Session;
use eprof_format::{
    Attribution, Energy, EnergyLabel, Machine, ModelIdentity, NoteLevel, Phase, PowerSample,
    PowerSourceDesc, Settings, SourceKind, StopReason, Summary, TokenPhase,
};
use eprof_models::pipeline::{Observer, StepEvent};
use serde::Serialize;

use crate::error::ErrorKind;

/// One thing that happened in a run. Per step, the layers, components and operations
/// arrive as one message each (a batch), never one message per span.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run is set up: what runs, how, and measured by what.
    RunStarted(Box<RunStarted>),
    /// One power reading, in watts per channel (a counter's energy difference over the
    /// time since its previous reading).
    PowerSample {
        t_ns: u64,
        window_ns: u64,
        watts: Vec<Option<f64>>,
        total_w: Option<f64>,
    },
    /// A phase began (sent as it begins).
    SectionStart {
        phase: Phase,
        name: String,
        t_ns: u64,
    },
    /// A section finished: a phase, or a section inside a step (embedding, lm_head,
    /// sampling, ...).
    SectionEnd {
        phase: Phase,
        name: String,
        step: Option<u32>,
        start_ns: u64,
        end_ns: u64,
        energy: Option<Energy>,
        provisional: bool,
    },
    /// A generated token and the step that produced it.
    TokenComplete {
        position: u32,
        step: u32,
        id: u32,
        /// Text that this token completes (empty for an end-of-sequence token; a token
        /// that ends inside a UTF-8 character passes it on to the next).
        text: String,
        /// The token's own bytes as text (lossy).
        token_text: String,
        phase: TokenPhase,
        start_ns: u64,
        duration_ns: u64,
        energy: Option<Energy>,
        provisional: bool,
        /// Average power over the step, watts.
        power_w: Option<f64>,
        /// Decode tokens per second so far.
        decode_tokens_per_s: Option<f64>,
        /// Time since the run's first phase began.
        elapsed_ns: u64,
    },
    /// Per layer of this step: time and energy (module and deep depth).
    LayerMetrics { step: u32, layers: SiteColumns },
    /// Per component of this step, with the probes' metrics at that site.
    ComponentMetrics { step: u32, components: SiteColumns },
    /// Per attention operation of this step (deep depth).
    OperationMetrics { step: u32, operations: SiteColumns },
    /// A warning or information: a probe disabled, the power source chosen.
    Note { level: NoteLevel, text: String },
    /// The trace is finished: its summary is what `eprof show --json` prints for it.
    InferenceComplete {
        run_id: String,
        trace: String,
        stop_reason: StopReason,
        generated_text: String,
        summary: Box<Summary>,
    },
    /// The run failed (a partial trace may exist, see `message`).
    Error {
        run_id: Option<String>,
        kind: ErrorKind,
        message: String,
        hint: Option<String>,
    },
}

impl RunEvent {
    /// The `error` event of a failed run.
    pub fn error(run_id: &str, e: &crate::RecordError) -> Self {
        RunEvent::Error {
            run_id: Some(run_id.to_string()),
            kind: e.kind,
            message: e.message.clone(),
            hint: e.hint.clone(),
        }
    }

    /// The message type, as it appears in the JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            RunEvent::RunStarted(_) => "run_started",
            RunEvent::PowerSample { .. } => "power_sample",
            RunEvent::SectionStart { .. } => "section_start",
            RunEvent::SectionEnd { .. } => "section_end",
            RunEvent::TokenComplete { .. } => "token_complete",
            RunEvent::LayerMetrics { .. } => "layer_metrics",
            RunEvent::ComponentMetrics { .. } => "component_metrics",
            RunEvent::OperationMetrics { .. } => "operation_metrics",
            RunEvent::Note { .. } => "note",
            RunEvent::InferenceComplete { .. } => "inference_complete",
            RunEvent::Error { .. } => "error",
        }
    }
}

/// What `run_started` says (boxed: it is by far the largest event).
#[derive(Debug, Clone, Serialize)]
pub struct RunStarted {
    pub run_id: String,
    pub prompt: String,
    pub model: ModelIdentity,
    pub settings: Settings,
    /// The power source; `power_sample.watts` follows the order of its channels.
    pub power: PowerSourceDesc,
    pub machine: Machine,
    pub tags: Vec<String>,
    pub experiment: Option<String>,
}

/// Time, energy and metrics of the sites of one kind (layers, components or
/// operations) in one step, as columns: row `i` of every column is one site. Columns
/// keep the messages small (no key repeated per site) and map onto typed arrays.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SiteColumns {
    pub layer: Vec<Option<u16>>,
    pub component: Vec<String>,
    /// Operations only (empty, and left out of the JSON, for layers and components).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub op: Vec<Option<String>>,
    pub duration_ns: Vec<u64>,
    pub joules: Vec<Option<f64>>,
    pub label: Vec<Option<EnergyLabel>>,
    /// `probe/metric` -> one value per row (`null` where the probe had none).
    pub metrics: BTreeMap<String, Vec<Option<f32>>>,
}

impl SiteColumns {
    pub fn len(&self) -> usize {
        self.duration_ns.len()
    }
    pub fn is_empty(&self) -> bool {
        self.duration_ns.is_empty()
    }
    /// Add a row for `def`; returns its index.
    fn push(&mut self, def: &eprof_format::SiteDef) -> usize {
        self.layer.push(def.layer);
        self.component.push(def.component.clone());
        if def.op.is_some() || !self.op.is_empty() {
            self.op.resize(self.duration_ns.len(), None);
            self.op.push(def.op.clone());
        }
        self.duration_ns.push(0);
        self.joules.push(None);
        self.label.push(None);
        self.duration_ns.len() - 1
    }
    fn energy(&self, r: usize) -> Option<Energy> {
        Some(Energy {
            joules: self.joules[r]?,
            label: self.label[r]?,
        })
    }
    fn set_energy(&mut self, r: usize, e: Option<Energy>) {
        self.joules[r] = e.map(|e| e.joules);
        self.label[r] = e.map(|e| e.label);
    }
}

/// Where a run's events go. `Break` cancels the run: it stops at the next step
/// boundary and its trace is finished with stop reason `cancelled`; events still
/// arrive until `inference_complete`.
pub trait RunSink {
    fn event(&mut self, e: &RunEvent) -> ControlFlow<()>;

    /// Whether this sink wants the per-step `layer_metrics`, `component_metrics` and
    /// `operation_metrics` (a sink that only streams text says no, and they are not
    /// built).
    fn wants_sites(&self) -> bool {
        true
    }
}

/// A sink that drops everything (a run nobody watches).
#[derive(Debug, Default)]
pub struct NoSink;

impl RunSink for NoSink {
    fn event(&mut self, _: &RunEvent) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    fn wants_sites(&self) -> bool {
        false
    }
}

impl<F: FnMut(&RunEvent) -> ControlFlow<()>> RunSink for F {
    fn event(&mut self, e: &RunEvent) -> ControlFlow<()> {
        self(e)
    }
}

/// Turns what the session flushes into [`RunEvent`]s for a sink (the pipeline's
/// [`Observer`]).
pub(crate) struct Live<'a> {
    pub sink: &'a mut dyn RunSink,
    desc: PowerSourceDesc,
    samples: Vec<PowerSample>,
    cancel: bool,
}

impl<'a> Live<'a> {
    pub fn new(sink: &'a mut dyn RunSink, desc: PowerSourceDesc) -> Self {
        Live {
            sink,
            desc,
            samples: Vec::new(),
            cancel: false,
        }
    }

    /// Send one event; remembers a cancel request.
    pub fn send(&mut self, e: RunEvent) {
        self.cancel |= self.sink.event(&e).is_break();
    }

    fn flow(&self) -> ControlFlow<()> {
        if self.cancel {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// New power readings as events; returns the attribution over all so far.
    fn take_samples(&mut self, s: &Session) -> Attribution {
        let new = s.samples_since(self.samples.len());
        for smp in new {
            let prev = self.samples.last();
            let watts: Vec<Option<f64>> = match self.desc.kind {
                SourceKind::Counter => {
                    let dt = prev.map_or(0.0, |p| smp.t0_ns.saturating_sub(p.t0_ns) as f64 * 1e-9);
                    smp.values
                        .iter()
                        .enumerate()
                        .map(|(c, v)| {
                            let p = prev?.values.get(c).copied().flatten()?;
                            let v = (*v)?;
                            (dt > 0.0).then(|| (v - p) / dt)
                        })
                        .collect()
                }
                SourceKind::Sampler | SourceKind::Estimate => smp.values.clone(),
            };
            let window_ns = match self.desc.kind {
                SourceKind::Counter => prev.map_or(0, |p| smp.t0_ns.saturating_sub(p.t0_ns)),
                _ => smp.t1_ns.saturating_sub(smp.t0_ns),
            };
            let e = RunEvent::PowerSample {
                t_ns: smp.t1_ns,
                window_ns,
                total_w: self.desc.total_of(&watts),
                watts,
            };
            self.samples.push(smp);
            if window_ns > 0 || self.desc.kind != SourceKind::Counter {
                self.send(e);
            }
        }
        Attribution::from_samples(&self.desc, &self.samples)
    }

    fn last_reading_ns(&self) -> u64 {
        self.samples.iter().map(|s| s.t1_ns).max().unwrap_or(0)
    }
}

impl Observer for Live<'_> {
    fn phase_started(&mut self, s: &Session, phase: Phase, t_ns: u64) -> ControlFlow<()> {
        self.take_samples(s);
        self.send(RunEvent::SectionStart {
            phase,
            name: phase.as_str().to_string(),
            t_ns,
        });
        self.flow()
    }

    fn flushed(&mut self, s: &Session, step: Option<&StepEvent<'_>>) -> ControlFlow<()> {
        let att = self.take_samples(s);
        let last = self.last_reading_ns();
        let f = s.last_flush();
        for n in &f.notes {
            self.send(RunEvent::Note {
                level: n.level,
                text: n.text.clone(),
            });
        }
        for sec in &f.sections {
            self.send(RunEvent::SectionEnd {
                phase: sec.phase,
                name: sec.name.clone(),
                step: sec.step,
                start_ns: sec.start_ns,
                end_ns: sec.end_ns,
                energy: att.energy(sec.start_ns, sec.end_ns),
                provisional: last < sec.end_ns,
            });
        }
        if let Some(ev) = step {
            let figures = if self.sink.wants_sites() {
                site_figures(s, &att, ev.step)
            } else {
                Vec::new()
            };
            for (kind, figures) in figures {
                self.send(match kind {
                    SiteKind::Layer => RunEvent::LayerMetrics {
                        step: ev.step,
                        layers: figures,
                    },
                    SiteKind::Component => RunEvent::ComponentMetrics {
                        step: ev.step,
                        components: figures,
                    },
                    SiteKind::Operation => RunEvent::OperationMetrics {
                        step: ev.step,
                        operations: figures,
                    },
                });
            }
            for t in f.tokens.iter().filter(|t| t.step.is_some()) {
                let st = t.step.expect("filtered");
                let power = att.power_w(st.start_ns, st.end_ns);
                self.send(RunEvent::TokenComplete {
                    position: t.position,
                    step: st.index,
                    id: t.id,
                    text: if st.index == ev.step {
                        ev.text.to_string()
                    } else {
                        String::new()
                    },
                    token_text: t.text.clone(),
                    phase: t.phase,
                    start_ns: st.start_ns,
                    duration_ns: st.end_ns.saturating_sub(st.start_ns),
                    energy: att.energy(st.start_ns, st.end_ns),
                    provisional: last < st.end_ns,
                    power_w: self.desc.total_of(&power),
                    decode_tokens_per_s: ev.decode_tokens_per_s,
                    elapsed_ns: ev.elapsed_ns,
                });
            }
        }
        self.flow()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SiteKind {
    Layer,
    Component,
    Operation,
}

fn kind_of(def: &eprof_format::SiteDef) -> SiteKind {
    if def.is_operation() {
        SiteKind::Operation
    } else if def.is_layer() {
        SiteKind::Layer
    } else {
        // Components of layers, and the model's own (embedding, final norm, lm_head).
        SiteKind::Component
    }
}

/// The last flush's spans and metrics of `step`, per site, as one [`SiteColumns`]
/// per kind of site (kinds without any figure are left out).
fn site_figures(s: &Session, att: &Attribution, step: u32) -> Vec<(SiteKind, SiteColumns)> {
    let f = s.last_flush();
    let sites = s.sites();
    // Per site id (a model has hundreds of sites): (its kind's columns, its row).
    let mut row: Vec<Option<(usize, usize)>> = vec![None; sites.len()];
    let mut out: Vec<(SiteKind, SiteColumns)> = Vec::new();
    let mut place = |site: u32, out: &mut Vec<(SiteKind, SiteColumns)>| -> Option<(usize, usize)> {
        let def = sites.get(site as usize)?;
        if let Some(r) = row[site as usize] {
            return Some(r);
        }
        let kind = kind_of(def);
        let k = match out.iter().position(|(x, _)| *x == kind) {
            Some(k) => k,
            None => {
                out.push((kind, SiteColumns::default()));
                out.len() - 1
            }
        };
        let r = out[k].1.push(def);
        row[site as usize] = Some((k, r));
        Some((k, r))
    };
    let sp = &f.spans;
    for i in (0..sp.len()).filter(|&i| sp.step[i] == step) {
        let (a, b) = (sp.start_ns[i], sp.end_ns[i]);
        if let Some((k, r)) = place(sp.site[i], &mut out) {
            let c = &mut out[k].1;
            c.duration_ns[r] += b.saturating_sub(a);
            let e = match (c.energy(r), att.energy(a, b)) {
                (Some(x), Some(y)) => Energy::sum([x, y]),
                (x, y) => x.or(y),
            };
            c.set_energy(r, e);
        }
    }
    for m in &f.metrics {
        let key = m.key();
        for i in (0..m.len()).filter(|&i| m.step[i] == step) {
            if let Some((k, r)) = place(m.site[i], &mut out) {
                let c = &mut out[k].1;
                let n = c.duration_ns.len();
                let col = c.metrics.entry(key.clone()).or_default();
                col.resize(n, None);
                col[r] = Some(m.value[i]);
            }
        }
    }
    for (_, c) in &mut out {
        let n = c.duration_ns.len();
        for col in c.metrics.values_mut() {
            col.resize(n, None);
        }
    }
    out.sort_by_key(|(k, _)| *k as u8);
    out
}
