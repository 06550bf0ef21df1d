//! The power source trait (docs/architecture.md) and what the session needs around it.

use std::collections::BTreeMap;
use std::time::Duration;

use eprof_format::PowerSourceDesc;

use crate::clock::Clock;
use crate::error::Result;

/// One reading of every channel, in the order of [`PowerSourceDesc::channels`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// Counter: cumulative joules per channel as the hardware reports them (the session
    /// corrects wrap-around with [`Reading::wrap_j`]). Sampler/Estimate: average watts
    /// over the window that ends now.
    pub values: Vec<Option<f64>>,
    /// Sampler/Estimate: the window's length, when the source knows it (powermetrics'
    /// `elapsed_ns`); otherwise the window starts at the previous reading.
    pub window_ns: Option<u64>,
    /// The instant of the reading on the session clock, when the source takes it
    /// itself; otherwise the session stamps the reading when `read` returns.
    pub t_ns: Option<u64>,
    /// Counter only: per channel, the value at which the counter wraps to zero
    /// (RAPL `max_energy_range_uj`), in joules.
    pub wrap_j: Vec<Option<f64>>,
}

impl Reading {
    pub fn new(values: Vec<Option<f64>>) -> Self {
        Reading {
            values,
            window_ns: None,
            t_ns: None,
            wrap_j: Vec::new(),
        }
    }
}

/// A source of power or energy readings. The session's sampler thread calls `read`
/// at the configured interval; for Counter sources the session also reads at step
/// boundaries, so that per-token energies are measured, not interpolated.
pub trait PowerSource: Send {
    fn desc(&self) -> PowerSourceDesc;
    /// One reading. Blocking sources (powermetrics) wait for their next window.
    fn read(&mut self) -> Result<Reading>;
    /// A one-line notice for the user when opened (e.g. "estimating: no counters").
    fn notice(&self) -> Option<String> {
        None
    }
    /// Per channel, the source that reads it and its resolution, for a source that
    /// combines others (NVML with RAPL); `None`: one source, one resolution
    /// ([`PowerSourceDesc::nominal_resolution_ns`]).
    fn channel_sources(&self) -> Option<Vec<eprof_format::ChannelSource>> {
        None
    }
}

/// What a source is opened with.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// The session clock; sources that time their own readings use it.
    pub clock: Clock,
    /// Requested sampling interval.
    pub interval: Duration,
    /// `key=value` arguments from `--power NAME:key=value,...`.
    pub args: BTreeMap<String, String>,
}

impl SourceOptions {
    pub fn new(clock: Clock, interval: Duration) -> Self {
        SourceOptions {
            clock,
            interval,
            args: BTreeMap::new(),
        }
    }

    /// Parse `NAME[:k=v,k=v]` into the name and these options' arguments.
    pub fn parse_spec(spec: &str) -> Result<(String, BTreeMap<String, String>)> {
        let (name, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let mut args = BTreeMap::new();
        for part in rest.split(',').filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((k, v)) => args.insert(k.trim().to_string(), v.trim().to_string()),
                // A bare value is the source's main argument (e.g. `replay:FILE`).
                None => args.insert("file".to_string(), part.to_string()),
            };
        }
        Ok((name.trim().to_string(), args))
    }
}

/// Whether a source can be used on this machine, and if not, why and how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub enum Availability {
    Available { detail: String },
    Unavailable { reason: String, fix: Option<String> },
}

impl Availability {
    pub fn is_available(&self) -> bool {
        matches!(self, Availability::Available { .. })
    }

    /// Unavailable because opening the source failed with `e`. Source errors say
    /// "reason; fix", and are split there.
    pub fn from_error(e: crate::Error) -> Self {
        let message = match e {
            crate::Error::Power { message, .. } => message,
            other => other.to_string(),
        };
        match message.split_once("; ") {
            Some((r, f)) => Availability::Unavailable {
                reason: r.to_string(),
                fix: Some(f.to_string()),
            },
            None => Availability::Unavailable {
                reason: message,
                fix: None,
            },
        }
    }
}

/// Turns raw counter values that wrap around into monotonic joules since the first
/// reading. One wrap between two reads is corrected; more cannot be seen, so a counter
/// must be read at least once per wrap period (RAPL's range, typically 262 kJ, lasts
/// over an hour at package power; the sampler reads every 100 ms).
#[derive(Debug, Default, Clone)]
pub struct CounterUnwrap {
    last_raw: Vec<Option<f64>>,
    total: Vec<f64>,
    /// Readings where no channel changed since the previous one.
    pub stale: u32,
}

impl CounterUnwrap {
    /// Accumulated joules per channel after `r`.
    pub fn push(&mut self, r: &Reading) -> Vec<Option<f64>> {
        let n = r.values.len();
        if self.last_raw.len() != n {
            self.last_raw = vec![None; n];
            self.total = vec![0.0; n];
        }
        let mut changed = false;
        let mut any_prev = false;
        let out = (0..n)
            .map(|c| {
                let raw = r.values[c]?;
                if let Some(prev) = self.last_raw[c] {
                    any_prev = true;
                    let mut d = raw - prev;
                    if d < 0.0 {
                        // The counter wrapped: it went up to its range, then from zero.
                        match r.wrap_j.get(c).copied().flatten() {
                            Some(range) => d += range,
                            None => d = 0.0,
                        }
                    }
                    changed |= d != 0.0;
                    self.total[c] += d;
                }
                self.last_raw[c] = Some(raw);
                Some(self.total[c])
            })
            .collect();
        if any_prev && !changed {
            self.stale += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_around_is_corrected() {
        let mut u = CounterUnwrap::default();
        let reading = |v: f64| Reading {
            values: vec![Some(v), None],
            window_ns: None,
            t_ns: None,
            wrap_j: vec![Some(262_143.328_850), None],
        };
        assert_eq!(u.push(&reading(262_000.0))[0], Some(0.0));
        assert_eq!(u.push(&reading(262_100.0))[0], Some(100.0));
        // Wrapped: 43.328850 J up to the range, then 10 J from zero.
        let after = u.push(&reading(10.0))[0].unwrap();
        assert!((after - (100.0 + 43.328_85 + 10.0)).abs() < 1e-6, "{after}");
        assert_eq!(u.push(&reading(10.0))[1], None, "absent stays absent");
        assert_eq!(u.stale, 1);
    }
}
