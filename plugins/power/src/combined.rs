//! `nvml+rapl`: the GPU's NVML energy counter and the CPU package's RAPL counters in
//! one recording.
//!
//! On a machine with an NVIDIA GPU, inference spends energy on both sides: the GPU
//! runs the kernels, the CPU launches them and runs tokenization and sampling. Both
//! are Counter sources read at the same instants (every token boundary and every
//! sampler tick), so one reading holds every channel: the GPUs' first, then the RAPL
//! zones. Each channel keeps its own resolution (NVML's measured counter period,
//! RAPL's millisecond), recorded in the trace's `chan` chunk, so each gets its own
//! label; the total is their sum and carries the weaker label. `--power auto` prefers
//! it wherever both can be read.
//!
//! `--power nvml+rapl[:lib=PATH,root=DIR]` takes both sources' options.

use eprof_core::power::{Availability, PowerSource, Reading, SourceOptions};
use eprof_core::{PowerSourceRegistration, Result};
use eprof_format::{ChannelSource, PowerSourceDesc, SourceKind};

use crate::nvml::Nvml;
use crate::rapl::Rapl;

pub const NAME: &str = "nvml+rapl";

pub struct Combined {
    gpu: Nvml,
    cpu: Rapl,
}

impl Combined {
    /// Both sources, or the reason one cannot be used. NVML must have its energy
    /// counter (a power-polling GPU is a Sampler, which cannot share a Counter's
    /// readings).
    pub fn open(nvml_lib: &str, rapl_root: &std::path::Path) -> Result<Self> {
        let gpu = Nvml::open(nvml_lib)?;
        if !gpu.is_counter() {
            return Err(eprof_core::Error::power(
                NAME,
                "the GPU has no NVML energy counter (power polling only), which cannot share a recording with RAPL's counters; use --power nvml",
            ));
        }
        let cpu = Rapl::open_at(rapl_root)?;
        Ok(Combined { gpu, cpu })
    }
}

impl PowerSource for Combined {
    fn desc(&self) -> PowerSourceDesc {
        let (g, c) = (self.gpu.desc(), self.cpu.desc());
        let mut details: Vec<(String, String)> = Vec::new();
        details.extend(g.details.into_iter().map(|(k, v)| (format!("nvml.{k}"), v)));
        details.extend(c.details.into_iter().map(|(k, v)| (format!("rapl.{k}"), v)));
        PowerSourceDesc {
            name: NAME.into(),
            kind: SourceKind::Counter,
            channels: g.channels.into_iter().chain(c.channels).collect(),
            // Readers that do not know the per-channel resolutions (the `chan` chunk)
            // use the coarser one for every channel: never a finer claim than true.
            nominal_resolution_ns: g.nominal_resolution_ns.max(c.nominal_resolution_ns),
            details,
        }
    }

    fn read(&mut self) -> Result<Reading> {
        let g = self.gpu.read()?;
        let c = self.cpu.read()?;
        let n = g.values.len();
        let mut wrap_j = g.wrap_j;
        wrap_j.resize(n, None);
        wrap_j.extend(c.wrap_j);
        let mut r = Reading::new(g.values.into_iter().chain(c.values).collect());
        r.wrap_j = wrap_j;
        Ok(r)
    }

    fn channel_sources(&self) -> Option<Vec<ChannelSource>> {
        let (g, c) = (self.gpu.desc(), self.cpu.desc());
        let mut v = Vec::with_capacity(g.channels.len() + c.channels.len());
        for (name, d) in [("nvml", &g), ("rapl", &c)] {
            v.extend(d.channels.iter().map(|_| ChannelSource {
                source: name.into(),
                nominal_resolution_ns: d.nominal_resolution_ns,
            }));
        }
        Some(v)
    }
}

fn lib_of(opts: &SourceOptions) -> String {
    opts.args
        .get("lib")
        .cloned()
        .or_else(|| std::env::var("EPROF_NVML_LIB").ok())
        .unwrap_or_else(|| crate::nvml::DEFAULT_LIB.to_string())
}

fn root_of(opts: &SourceOptions) -> std::path::PathBuf {
    opts.args
        .get("root")
        .map_or_else(crate::rapl::default_root, std::path::PathBuf::from)
}

fn availability() -> Availability {
    let lib = std::env::var("EPROF_NVML_LIB").unwrap_or_else(|_| crate::nvml::DEFAULT_LIB.into());
    match Combined::open(&lib, &crate::rapl::default_root()) {
        Ok(c) => {
            let d = c.desc();
            Availability::Available {
                detail: format!(
                    "{} channels: {}; GPU {}",
                    d.channels.len(),
                    d.channels
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    c.gpu.period_text()
                ),
            }
        }
        Err(e) => Availability::from_error(e),
    }
}

fn open(opts: &SourceOptions) -> Result<Box<dyn PowerSource>> {
    Ok(Box::new(Combined::open(&lib_of(opts), &root_of(opts))?))
}

inventory::submit! {
    PowerSourceRegistration {
        name: NAME,
        summary: "NVIDIA GPU energy (NVML) and CPU package energy (RAPL) in one recording, each channel with its own resolution",
        kind: SourceKind::Counter,
        auto_rank: Some(5),
        availability,
        open,
        origin: module_path!(),
    }
}
