//! The power sources a profiler can open: which work here, and opening one (`auto`
//! picks the best available).

use std::time::Duration;

use eprof_core::power::{Availability, SourceOptions};
use eprof_core::{Clock, PowerSource, Registry};
use serde::Serialize;

use crate::error::Result;
use crate::request::PowerSpec;

/// A power source and whether it can be used here (`eprof power list`, `/api/power`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerSourceInfo {
    pub name: &'static str,
    pub kind: &'static str,
    pub available: bool,
    /// What it reads, or why it cannot be used and how to fix that.
    pub detail: String,
    pub summary: &'static str,
    /// Whether `auto` considers it.
    pub auto: bool,
}

/// Open a power source of a registry; the second value says what `auto` picked.
pub fn open_power(
    reg: &Registry,
    spec: &PowerSpec,
    clock: Clock,
    interval: Duration,
) -> Result<(Box<dyn PowerSource>, Option<String>)> {
    let (entry, why) = if spec.name == "auto" {
        let (e, why) = reg.auto_power()?;
        (e, Some(format!("power: auto picked {why}")))
    } else {
        (reg.power_source(&spec.name)?, None)
    };
    let mut opts = SourceOptions::new(clock, interval);
    opts.args = spec.args.clone();
    let src = (entry.open)(&opts)?;
    Ok((src, why))
}

/// Every power source of a registry and whether it can be used here.
pub fn power_sources(reg: &Registry) -> Vec<PowerSourceInfo> {
    reg.power
        .iter()
        .map(|p| {
            let (available, detail) = match (p.availability)() {
                Availability::Available { detail } => (true, detail),
                Availability::Unavailable { reason, fix } => (
                    false,
                    match fix {
                        Some(f) => format!("{reason}; fix: {f}"),
                        None => reason,
                    },
                ),
            };
            PowerSourceInfo {
                name: p.name,
                kind: p.kind.as_str(),
                available,
                detail,
                summary: p.summary,
                auto: p.auto_rank.is_some(),
            }
        })
        .collect()
}
