//! The events of a run as it happens: what `eprof serve` sends on its WebSocket (one
//! JSON object per message, `{"type": "token_complete", ...}`) and what the viewer's
//! live dashboard reads. One definition for both ends; `docs/api.md` shows one of each.
//! They are made by `eprof-record` from what the session flushes between steps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::attribution::{Energy, EnergyLabel};
use crate::model::{
    Machine, ModelIdentity, NoteLevel, Phase, PowerSourceDesc, Settings, SiteDef, StopReason,
    TokenPhase,
};
use crate::summary::Summary;

/// What kind of failure, independent of its message (HTTP statuses and `error`
/// events are chosen from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request itself is wrong (an unknown depth, probe or power source name, a
    /// path where only ids are allowed, an empty prompt).
    BadRequest,
    /// The model, run or file named does not exist.
    NotFound,
    /// The power source cannot be used here (permission, hardware, driver).
    PowerUnavailable,
    /// The model could not be loaded or run.
    Model,
    /// Reading or writing a file, the trace or the index failed.
    Io,
}

/// One thing that happened in a run. Per step, the layers, components and operations
/// arrive as one message each (a batch), never one message per span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteColumns {
    pub layer: Vec<Option<u16>>,
    pub component: Vec<String>,
    /// Operations only (empty, and left out of the JSON, for layers and components).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    pub fn push(&mut self, def: &SiteDef) -> usize {
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
    pub fn energy(&self, r: usize) -> Option<Energy> {
        Some(Energy {
            joules: self.joules[r]?,
            label: self.label[r]?,
        })
    }
    pub fn set_energy(&mut self, r: usize, e: Option<Energy>) {
        self.joules[r] = e.map(|e| e.joules);
        self.label[r] = e.map(|e| e.label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example of `docs/api.md` that is a whole `RunEvent` parses as one and
    /// serializes back to the same JSON (the documentation cannot drift from the type).
    #[test]
    fn the_documented_examples_are_run_events() {
        let doc = include_str!("../../docs/api.md");
        let mut checked = Vec::new();
        for block in doc.split("```json\n").skip(1) {
            let json = block.split("\n```").next().unwrap();
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            let kind = v["type"].as_str().unwrap_or("").to_string();
            // Server-only messages, and the example whose summary is cut short.
            if kind.is_empty()
                || ["queue", "dropped", "inference_complete"].contains(&kind.as_str())
            {
                continue;
            }
            let e: RunEvent = serde_json::from_value(v.clone())
                .unwrap_or_else(|err| panic!("{kind}: {err}\n{json}"));
            // Same values and number types (`0.0` stays a float) as the server sends.
            let back: serde_json::Value =
                serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
            // The server puts the run's id on the events that do not carry one.
            let mut v = v;
            assert!(
                v["run_id"].is_string(),
                "{kind}: every run event has its run_id"
            );
            if back.get("run_id").is_none()
                && let Some(o) = v.as_object_mut()
            {
                o.remove("run_id");
            }
            assert_eq!(back, v, "{kind}");
            checked.push(kind);
        }
        for k in [
            "run_started",
            "note",
            "power_sample",
            "section_start",
            "section_end",
            "layer_metrics",
            "component_metrics",
            "operation_metrics",
            "token_complete",
            "error",
        ] {
            assert!(checked.iter().any(|c| c == k), "docs/api.md shows no {k}");
        }
    }
}
