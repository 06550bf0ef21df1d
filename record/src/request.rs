//! What to record, as typed values: parsed once from CLI flags or a JSON body, never
//! re-parsed deeper down.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use eprof_core::power::SourceOptions;
use eprof_format::{Depth, DeviceSpec, GroupRef};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{RecordError, Result};

/// One profiled generation. The JSON body of `POST /api/profiling/generate` is this
/// struct; every field is optional there (the defaults are `eprof record`'s) and an
/// unknown field is an error, so a typo is not silently ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordRequest {
    pub prompt: String,
    /// Which model: a known model's id (`GET /api/models`), or a path (CLI only).
    pub model: ModelChoice,
    pub device: DeviceSpec,
    /// `auto`, `estimate`, `synthetic:w=10,mode=sampler`, ...
    pub power: PowerSpec,
    /// Milliseconds between power readings.
    pub power_interval_ms: u64,
    /// Milliseconds of idle measurement before the run (0 disables the baseline).
    pub idle_ms: u64,
    pub depth: Depth,
    pub probes: ProbeSelection,
    /// |x| below this counts as zero in sparsity metrics.
    pub sparsity_threshold: f32,
    pub max_tokens: u32,
    /// 0 is greedy.
    pub temperature: f64,
    pub top_k: Option<u32>,
    pub top_p: Option<f64>,
    pub seed: u64,
    /// Send the prompt as is, without the model's chat template.
    pub raw: bool,
    pub tags: Vec<String>,
    pub experiment: Option<String>,
    /// Where to write the trace (CLI only) [default: the data directory's traces/].
    pub out: Option<PathBuf>,
    /// Add the run to the index.
    pub index: bool,
    /// The run's place in a group of repeated runs (`eprof bench`; not settable over
    /// HTTP).
    #[serde(skip)]
    pub group: Option<GroupRef>,
}

/// The longest idle baseline a request may ask for: the baseline runs on the only
/// recording thread, before the run, so an unbounded one would hold every queued run.
pub const MAX_IDLE_MS: u64 = 60_000;

impl RecordRequest {
    /// What every front end refuses before loading a model: a blank prompt, no tokens
    /// to generate, sampling settings outside their ranges, an idle baseline or a
    /// power interval beyond a minute.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(RecordError::bad_request(m));
        if self.prompt.trim().is_empty() {
            return bad("the prompt is empty".into());
        }
        if self.max_tokens == 0 {
            return bad("max_tokens must be at least 1".into());
        }
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return bad(format!(
                "temperature {} is not a number from 0 up (0 is greedy)",
                self.temperature
            ));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return bad(format!("top_p {p} is outside (0, 1]"));
        }
        if self.idle_ms > MAX_IDLE_MS {
            return bad(format!(
                "idle_ms {} is over the limit of {MAX_IDLE_MS} (one minute)",
                self.idle_ms
            ));
        }
        if self.power_interval_ms == 0 || self.power_interval_ms > MAX_IDLE_MS {
            return bad(format!(
                "power_interval_ms {} must be 1 to {MAX_IDLE_MS}",
                self.power_interval_ms
            ));
        }
        if !self.sparsity_threshold.is_finite() || self.sparsity_threshold < 0.0 {
            return bad(format!(
                "sparsity_threshold {} is not a number from 0 up",
                self.sparsity_threshold
            ));
        }
        Ok(())
    }
}

impl Default for RecordRequest {
    fn default() -> Self {
        RecordRequest {
            prompt: String::new(),
            model: ModelChoice::Default,
            device: DeviceSpec::Cpu,
            power: PowerSpec::auto(),
            power_interval_ms: 100,
            idle_ms: 500,
            depth: Depth::Module,
            probes: ProbeSelection::Default,
            sparsity_threshold: 0.01,
            max_tokens: 64,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 299_792_458,
            raw: false,
            tags: Vec::new(),
            experiment: None,
            out: None,
            index: true,
            group: None,
        }
    }
}

/// Which model a request runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ModelChoice {
    /// `$EPROF_MODEL`, then the data directory's `models/`, then the Hugging Face
    /// cache, then the built-in tiny model.
    #[default]
    Default,
    /// A model the profiler knows, by its id ([`crate::KnownModel::id`]).
    Id(String),
    /// A file or folder (the CLI's `--model`; the server only with
    /// `--allow-model-paths`).
    Path(PathBuf),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ModelRepr {
    Id(String),
    Path { path: PathBuf },
}

impl Serialize for ModelChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ModelChoice::Default => s.serialize_none(),
            ModelChoice::Id(id) => ModelRepr::Id(id.clone()).serialize(s),
            ModelChoice::Path(p) => ModelRepr::Path { path: p.clone() }.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ModelChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<ModelRepr>::deserialize(d)? {
            None => ModelChoice::Default,
            Some(ModelRepr::Id(id)) => ModelChoice::Id(id),
            Some(ModelRepr::Path { path }) => ModelChoice::Path(path),
        })
    }
}

/// A power source by name, with its options (`synthetic:w=10,mode=sampler`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerSpec {
    pub name: String,
    pub args: BTreeMap<String, String>,
}

impl PowerSpec {
    /// Options whose values are files or folders that the source opens (a capture to
    /// replay, a sysfs root, a driver library): a server never takes them from a
    /// request.
    pub const PATH_ARGS: [&'static str; 3] = ["file", "root", "lib"];

    pub fn auto() -> Self {
        PowerSpec {
            name: "auto".into(),
            args: BTreeMap::new(),
        }
    }

    /// The options of this spec that name files.
    pub fn path_args(&self) -> Vec<&str> {
        Self::PATH_ARGS
            .into_iter()
            .filter(|a| self.args.contains_key(*a))
            .collect()
    }
}

impl FromStr for PowerSpec {
    type Err = RecordError;
    fn from_str(s: &str) -> Result<Self> {
        let (name, args) = SourceOptions::parse_spec(s)?;
        if name.is_empty() {
            return Err(RecordError::bad_request(
                "empty power source: use auto, estimate, synthetic, ... (`eprof power list`)",
            ));
        }
        Ok(PowerSpec { name, args })
    }
}

impl std::fmt::Display for PowerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        for (i, (k, v)) in self.args.iter().enumerate() {
            f.write_str(if i == 0 { ":" } else { "," })?;
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Which probes record metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProbeSelection {
    /// Every built-in probe the depth allows, and every loaded plugin probe.
    #[default]
    Default,
    /// No probes at all.
    None,
    /// Exactly these (built-in or plugin), by name.
    Only(Vec<String>),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ProbesRepr {
    Word(String),
    List(Vec<String>),
}

impl Serialize for ProbeSelection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ProbeSelection::Default => s.serialize_str("default"),
            ProbeSelection::None => s.serialize_str("none"),
            ProbeSelection::Only(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ProbeSelection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match ProbesRepr::deserialize(d)? {
            ProbesRepr::Word(w) if w == "default" => Ok(ProbeSelection::Default),
            ProbesRepr::Word(w) if w == "none" => Ok(ProbeSelection::None),
            ProbesRepr::Word(w) => Err(serde::de::Error::custom(format!(
                "probes: {w:?} is neither \"default\", \"none\" nor a list of names"
            ))),
            ProbesRepr::List(v) => Ok(ProbeSelection::Only(v)),
        }
    }
}

// Travels as its text in JSON bodies.
eprof_format::serde_as_text!(PowerSpec);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_parse_to_typed_values() {
        let r: RecordRequest = serde_json::from_str(
            r#"{"prompt":"hi","model":"smol","device":"cuda:1","power":"synthetic:w=10,mode=sampler",
                "depth":"deep","probes":["activations"],"tags":["a"]}"#,
        )
        .unwrap();
        assert_eq!(r.model, ModelChoice::Id("smol".into()));
        assert_eq!(r.device, DeviceSpec::Cuda(1));
        assert_eq!(r.power.name, "synthetic");
        assert_eq!(r.power.args["mode"], "sampler");
        assert_eq!(r.depth, Depth::Deep);
        assert_eq!(r.probes, ProbeSelection::Only(vec!["activations".into()]));
        assert_eq!(r.max_tokens, 64, "defaults fill the rest");
        let back: RecordRequest =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);

        let d: RecordRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(d, RecordRequest::default());
        for bad in [
            r#"{"promt":"typo"}"#,
            r#"{"device":"tpu"}"#,
            r#"{"depth":"deeper"}"#,
            r#"{"probes":"some"}"#,
            r#"{"power":""}"#,
        ] {
            assert!(serde_json::from_str::<RecordRequest>(bad).is_err(), "{bad}");
        }
        let p: RecordRequest = serde_json::from_str(r#"{"model":{"path":"/m.gguf"}}"#).unwrap();
        assert_eq!(p.model, ModelChoice::Path("/m.gguf".into()));
        let nv: PowerSpec = "nvml:lib=/tmp/x.so".parse().unwrap();
        assert_eq!(nv.path_args(), vec!["lib"]);
        assert_eq!(nv.to_string(), "nvml:lib=/tmp/x.so");
    }
}
