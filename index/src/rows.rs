//! What the index answers with: a run's row, a group's.

use eprof_format::{DeviceSpec, RunStop};
use serde::Serialize;

/// One run as the index lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: String,
    pub created_at_ms: i64,
    pub prompt: String,
    pub generated_text: Option<String>,
    pub model: String,
    pub architecture: String,
    pub dtype: String,
    pub depth: String,
    pub device: DeviceSpec,
    pub hostname: String,
    pub cpu: String,
    pub source: String,
    pub source_kind: String,
    pub duration_ns: i64,
    pub prompt_tokens: i64,
    pub generated_tokens: i64,
    pub total_j: Option<f64>,
    pub dynamic_j: Option<f64>,
    pub avg_power_w: Option<f64>,
    pub decode_j_per_token: Option<f64>,
    pub decode_tokens_per_s: Option<f64>,
    pub energy_label: Option<String>,
    pub experiment: Option<String>,
    pub tags: Vec<String>,
    pub complete: bool,
    pub imported: bool,
    pub trace_path: String,
    pub trace_sha256: String,
    /// `eos`, `max_tokens`, `cancelled`, `error: ...`; none for an unfinished trace
    /// (and for rows indexed before this column existed, until `index rebuild`).
    pub stop_reason: Option<RunStop>,
    /// How the run's figures were obtained: `measured 26 · attributed 13023`.
    pub label_mix: Option<String>,
    /// The group of repeated runs (`eprof bench`) it belongs to, if any.
    pub group_id: Option<String>,
    /// Its configuration in that group: index and label (`depth=off`).
    pub config: Option<u32>,
    pub config_label: Option<String>,
    /// Its repeat within the configuration, and its place in the group's run order.
    pub repeat: Option<u32>,
    pub run_order: Option<u32>,
}

/// A group of repeated runs, as `eprof ls --groups` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRow {
    pub id: String,
    pub created_at_ms: i64,
    pub prompt: String,
    pub runs: u32,
    /// `(index, label, runs)` per configuration, in index order.
    pub configs: Vec<(u32, String, u32)>,
    /// Distinct model names.
    pub models: Vec<String>,
}
