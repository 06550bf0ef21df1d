//! Compile-time registries (inventory) of power sources, model adapters and probes.
//!
//! Registrations hold `fn` pointers and `'static` data only, so nothing runs before
//! `main`. [`Registry::discover`] collects them and refuses two entries with one name,
//! saying where each came from.

use eprof_format::{Depth, SourceKind};

use crate::error::{Error, Result};
use crate::model::{ModelAdapter, ModelSource};
use crate::power::{Availability, PowerSource, SourceOptions};
use crate::probe::{Probe, ProbeOptions};

pub struct PowerSourceRegistration {
    pub name: &'static str,
    pub summary: &'static str,
    pub kind: SourceKind,
    /// Preference of `--power auto`: lowest available rank wins; `None` = never
    /// chosen automatically (synthetic, replay).
    pub auto_rank: Option<u32>,
    pub availability: fn() -> Availability,
    pub open: fn(&SourceOptions) -> Result<Box<dyn PowerSource>>,
    /// Where it was registered (`module_path!()`).
    pub origin: &'static str,
}
inventory::collect!(PowerSourceRegistration);

pub struct ModelAdapterRegistration {
    pub adapter: &'static dyn ModelAdapter,
    pub origin: &'static str,
}
inventory::collect!(ModelAdapterRegistration);

pub struct ProbeRegistration {
    pub name: &'static str,
    pub summary: &'static str,
    /// The shallowest depth at which the probe has something to observe.
    pub min_depth: Depth,
    pub create: fn(&ProbeOptions) -> Box<dyn Probe>,
    pub origin: &'static str,
}
inventory::collect!(ProbeRegistration);

/// Everything registered, checked for duplicate names.
pub struct Registry {
    pub power: Vec<&'static PowerSourceRegistration>,
    pub adapters: Vec<&'static ModelAdapterRegistration>,
    pub probes: Vec<&'static ProbeRegistration>,
}

fn refuse_duplicates<'a>(
    what: &str,
    items: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<()> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (name, origin) in items {
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            return Err(Error::Registry(format!(
                "two {what}s are named {name:?}: one from {first}, one from {origin}; rename one"
            )));
        }
        seen.push((name, origin));
    }
    Ok(())
}

impl Registry {
    pub fn discover() -> Result<Registry> {
        let mut power: Vec<_> = inventory::iter::<PowerSourceRegistration>().collect();
        let mut adapters: Vec<_> = inventory::iter::<ModelAdapterRegistration>().collect();
        let mut probes: Vec<_> = inventory::iter::<ProbeRegistration>().collect();
        power.sort_by_key(|p| (p.auto_rank.unwrap_or(u32::MAX), p.name));
        adapters.sort_by_key(|a| a.adapter.name());
        probes.sort_by_key(|p| p.name);
        refuse_duplicates("power source", power.iter().map(|p| (p.name, p.origin)))?;
        refuse_duplicates(
            "model adapter",
            adapters.iter().map(|a| (a.adapter.name(), a.origin)),
        )?;
        refuse_duplicates("probe", probes.iter().map(|p| (p.name, p.origin)))?;
        Ok(Registry {
            power,
            adapters,
            probes,
        })
    }

    pub fn power_source(&self, name: &str) -> Result<&'static PowerSourceRegistration> {
        self.power
            .iter()
            .copied()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.power.iter().map(|p| p.name).collect();
                Error::Config(format!(
                    "unknown power source {name:?}; known: {} (see `eprof power list`)",
                    known.join(", ")
                ))
            })
    }

    /// `--power auto`: the best available source and why it was chosen.
    pub fn auto_power(&self) -> Result<(&'static PowerSourceRegistration, String)> {
        let mut skipped = Vec::new();
        for p in self.power.iter().filter(|p| p.auto_rank.is_some()) {
            match (p.availability)() {
                Availability::Available { detail } => {
                    let why = if skipped.is_empty() {
                        format!("{} ({detail})", p.name)
                    } else {
                        format!("{} ({detail}); not {}", p.name, skipped.join(", not "))
                    };
                    return Ok((p, why));
                }
                Availability::Unavailable { reason, .. } => {
                    skipped.push(format!("{}: {reason}", p.name))
                }
            }
        }
        Err(Error::Config(format!(
            "no power source is usable here: {}",
            skipped.join("; ")
        )))
    }

    pub fn adapter_for(&self, src: &ModelSource) -> Result<&'static dyn ModelAdapter> {
        self.adapters
            .iter()
            .map(|a| a.adapter)
            .find(|a| a.detects(src))
            .ok_or_else(|| {
                let known: Vec<&str> = self.adapters.iter().map(|a| a.adapter.name()).collect();
                Error::model(
                    src.path.display().to_string(),
                    format!(
                        "architecture {:?} has no adapter; eprof knows {}",
                        src.architecture,
                        known.join(", ")
                    ),
                )
            })
    }

    pub fn probe(&self, name: &str) -> Result<&'static ProbeRegistration> {
        self.probes
            .iter()
            .copied()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.probes.iter().map(|p| p.name).collect();
                Error::Config(format!(
                    "unknown probe {name:?}; known: {} (see `eprof plugins`)",
                    known.join(", ")
                ))
            })
    }
}
