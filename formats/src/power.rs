//! The power side of a trace: the source a run used, its channels and resolution, its
//! readings, and the idle baseline.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// How a power source obtains its readings (docs/architecture.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Cumulative energy per channel, readable at any instant (RAPL, NVML energy).
    Counter,
    /// Average power per channel over a window (powermetrics, NVML power polling).
    Sampler,
    /// A model of power, not a measurement.
    Estimate,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Counter => "counter",
            SourceKind::Sampler => "sampler",
            SourceKind::Estimate => "estimate",
        }
    }
}

/// What a power channel measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Cpu,
    Gpu,
    Ane,
    Dram,
    Package,
    System,
    Other,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Cpu => "cpu",
            ChannelKind::Gpu => "gpu",
            ChannelKind::Ane => "ane",
            ChannelKind::Dram => "dram",
            ChannelKind::Package => "package",
            ChannelKind::System => "system",
            ChannelKind::Other => "other",
        }
    }
}

/// One power channel of a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct Channel {
    /// Source-specific name, e.g. `package-0`, `package-0/core`, `gpu0`, `cpu`.
    pub name: String,
    pub kind: ChannelKind,
    /// Whether the channel adds into the run's total. Sub-zones that are already part
    /// of another channel (RAPL `core` inside `package`) are recorded but not added.
    pub in_total: bool,
}

/// The power source a run used, with what it can resolve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct PowerSourceDesc {
    /// Registered name: `rapl`, `nvml`, `powermetrics`, `estimate`, `synthetic`, ...
    pub name: String,
    pub kind: SourceKind,
    pub channels: Vec<Channel>,
    /// The finest interval over which the source can tell energies apart: the counter
    /// update period, or the sampling window. Shorter spans are `attributed`.
    pub nominal_resolution_ns: u64,
    /// Source-specific facts worth keeping, e.g. an estimate's model parameters.
    pub details: Vec<(String, String)>,
}

/// The `details` key that marks a power source whose figures are made up.
pub const SYNTHETIC_DETAIL: &str = "synthetic";

impl PowerSourceDesc {
    /// Sum of `values` (indexed like `channels`) over the channels that add into the
    /// total; `None` when none of them has a value (absent is not zero).
    pub fn total_of(&self, values: &[Option<f64>]) -> Option<f64> {
        let mut sum = None;
        for (c, v) in self.channels.iter().zip(values) {
            if let (true, Some(v)) = (c.in_total, v) {
                *sum.get_or_insert(0.0) += v;
            }
        }
        sum
    }

    /// Whether the source's figures are made up: a `details` entry with the key
    /// [`SYNTHETIC_DETAIL`] (the `synthetic` source writes one). Every figure of such a
    /// run is labelled `synthetic`.
    pub fn is_synthetic(&self) -> bool {
        self.details.iter().any(|(k, _)| k == SYNTHETIC_DETAIL)
    }
}

/// One reading of every channel of the run's power source.
///
/// For a `Counter` source `t0_ns == t1_ns` and each value is the energy in joules
/// accumulated since the source was opened (wrap-around already corrected). For a
/// `Sampler` or `Estimate` source each value is the average power in watts over
/// `[t0_ns, t1_ns]`. `None` means the channel gave no reading: absent, never zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct PowerSample {
    pub t0_ns: u64,
    pub t1_ns: u64,
    pub values: Vec<Option<f64>>,
}

impl PowerSample {
    /// Average watts per channel over this reading's window, and that window in ns.
    /// A sampler's (or estimate's) values are watts over `[t0_ns, t1_ns]` already; a
    /// counter's are the energy difference to `prev` over the time between the two
    /// readings (`None` per channel without a previous reading, window 0).
    pub fn watts(&self, kind: SourceKind, prev: Option<&PowerSample>) -> (Vec<Option<f64>>, u64) {
        match kind {
            SourceKind::Counter => {
                let window_ns = prev.map_or(0, |p| self.t0_ns.saturating_sub(p.t0_ns));
                let dt = window_ns as f64 * 1e-9;
                let watts = self
                    .values
                    .iter()
                    .enumerate()
                    .map(|(c, v)| {
                        let p = prev?.values.get(c).copied().flatten()?;
                        let v = (*v)?;
                        (dt > 0.0).then(|| (v - p) / dt)
                    })
                    .collect();
                (watts, window_ns)
            }
            SourceKind::Sampler | SourceKind::Estimate => {
                (self.values.clone(), self.t1_ns.saturating_sub(self.t0_ns))
            }
        }
    }
}

/// Idle power measured before the run, so that above-idle (dynamic) energy can be
/// reported next to total energy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Encode, Decode)]
pub struct IdleBaseline {
    pub duration_ns: u64,
    /// Average watts per channel over the baseline window.
    pub power_w: Vec<Option<f64>>,
}

impl IdleBaseline {
    /// Idle watts summed over the channels that add into the total.
    pub fn total_w(&self, desc: &PowerSourceDesc) -> Option<f64> {
        desc.total_of(&self.power_w)
    }
}
