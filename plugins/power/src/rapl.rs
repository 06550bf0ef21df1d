//! Linux RAPL energy counters (Intel and AMD) through powercap sysfs.
//!
//! Every zone and sub-zone (`intel-rapl:N`, `intel-rapl:N:M`) with its `name`,
//! `energy_uj` and `max_energy_range_uj`. A Counter source: the session reads it at
//! every token boundary, so per-token energy is an exact counter difference. Counters
//! wrap at `max_energy_range_uj`; the session unwraps them. Sub-zones inside a package
//! (`core`, `uncore`) are recorded but not added to the total; `dram` is; `psys`
//! (the whole platform) already contains the package, so it is not added either.
//!
//! `--power rapl[:root=DIR]`: the sysfs root is configurable (`EPROF_RAPL_ROOT` too;
//! tests use a fake tree).

use std::path::{Path, PathBuf};

use eprof_core::power::{Availability, PowerSource, Reading, SourceOptions};
use eprof_core::{Error, PowerSourceRegistration, Result};
use eprof_format::{Channel, ChannelKind, PowerSourceDesc, SourceKind};

pub const DEFAULT_ROOT: &str = "/sys/class/powercap";

#[derive(Debug, Clone)]
struct Zone {
    channel: Channel,
    energy: PathBuf,
    range_j: Option<f64>,
}

pub struct Rapl {
    root: PathBuf,
    zones: Vec<Zone>,
}

/// The error for an unreadable `energy_uj`, with the fixes.
pub fn read_error(path: &Path, e: &std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        Error::power(
            "rapl",
            format!(
                "cannot read {}: energy_uj is root-only since Linux 5.10; run with sudo, or allow reading until the next boot with `sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj`, or use --power estimate",
                path.display()
            ),
        )
    } else {
        Error::power("rapl", format!("cannot read {}: {e}", path.display()))
    }
}

fn read_trim(p: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(p).map(|s| s.trim().to_string())
}

fn read_uj(p: &Path) -> Result<f64> {
    let s = read_trim(p).map_err(|e| read_error(p, &e))?;
    s.parse::<u64>().map(|v| v as f64 * 1e-6).map_err(|_| {
        Error::power(
            "rapl",
            format!("{} holds {s:?}, not microjoules", p.display()),
        )
    })
}

impl Rapl {
    pub fn open_at(root: &Path) -> Result<Self> {
        let rd = std::fs::read_dir(root).map_err(|e| {
            Error::power(
                "rapl",
                format!(
                    "cannot list {}: {e} (no powercap support here?)",
                    root.display()
                ),
            )
        })?;
        let mut dirs: Vec<(String, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .filter(|(n, _)| n.starts_with("intel-rapl:"))
            .collect();
        dirs.sort();
        let mut zones = Vec::new();
        let mut names: Vec<(String, String)> = Vec::new();
        for (dir_name, path) in dirs {
            let name = read_trim(&path.join("name")).unwrap_or_else(|_| dir_name.clone());
            let parts: Vec<&str> = dir_name
                .trim_start_matches("intel-rapl:")
                .split(':')
                .collect();
            let sub = parts.len() > 1;
            let label = if sub {
                let parent = format!("intel-rapl:{}", parts[0]);
                let parent_name = names
                    .iter()
                    .find(|(d, _)| *d == parent)
                    .map_or(parent.clone(), |(_, n)| n.clone());
                format!("{parent_name}/{name}")
            } else {
                name.clone()
            };
            names.push((dir_name.clone(), label.clone()));
            let kind = match name.as_str() {
                n if n.starts_with("package") => ChannelKind::Package,
                "dram" => ChannelKind::Dram,
                "core" => ChannelKind::Cpu,
                "uncore" => ChannelKind::Gpu,
                "psys" => ChannelKind::System,
                _ => ChannelKind::Other,
            };
            let in_total = if sub { name == "dram" } else { name != "psys" };
            let range_j = read_trim(&path.join("max_energy_range_uj"))
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .map(|v| v as f64 * 1e-6);
            zones.push(Zone {
                channel: Channel {
                    name: label,
                    kind,
                    in_total,
                },
                energy: path.join("energy_uj"),
                range_j,
            });
        }
        if zones.is_empty() {
            return Err(Error::power(
                "rapl",
                format!(
                    "no intel-rapl zones under {} (not an Intel/AMD CPU, or the intel_rapl module is not loaded)",
                    root.display()
                ),
            ));
        }
        let r = Rapl {
            root: root.to_path_buf(),
            zones,
        };
        // Fail now, with the fix, rather than at the first reading.
        for z in &r.zones {
            read_uj(&z.energy)?;
        }
        Ok(r)
    }
}

impl PowerSource for Rapl {
    fn desc(&self) -> PowerSourceDesc {
        PowerSourceDesc {
            name: "rapl".into(),
            kind: SourceKind::Counter,
            channels: self.zones.iter().map(|z| z.channel.clone()).collect(),
            // RAPL updates its counters about every millisecond.
            nominal_resolution_ns: 1_000_000,
            details: vec![("root".into(), self.root.display().to_string())],
        }
    }

    fn read(&mut self) -> Result<Reading> {
        let values = self
            .zones
            .iter()
            .map(|z| read_uj(&z.energy).map(Some))
            .collect::<Result<Vec<_>>>()?;
        let mut r = Reading::new(values);
        r.wrap_j = self.zones.iter().map(|z| z.range_j).collect();
        Ok(r)
    }
}

/// The powercap root: `EPROF_RAPL_ROOT`, else [`DEFAULT_ROOT`].
pub fn default_root() -> PathBuf {
    std::env::var_os("EPROF_RAPL_ROOT")
        .filter(|r| !r.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_ROOT), PathBuf::from)
}

fn root_of(opts: &SourceOptions) -> PathBuf {
    opts.args
        .get("root")
        .map_or_else(default_root, PathBuf::from)
}

fn availability() -> Availability {
    match Rapl::open_at(&default_root()) {
        Ok(r) => Availability::Available {
            detail: format!(
                "{} zones: {}",
                r.zones.len(),
                r.zones
                    .iter()
                    .map(|z| z.channel.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        Err(e) => Availability::from_error(e),
    }
}

fn open(opts: &SourceOptions) -> Result<Box<dyn PowerSource>> {
    Ok(Box::new(Rapl::open_at(&root_of(opts))?))
}

inventory::submit! {
    PowerSourceRegistration {
        name: "rapl",
        summary: "Linux RAPL energy counters (powercap sysfs), per package, core, uncore, dram",
        kind: SourceKind::Counter,
        auto_rank: Some(10),
        availability,
        open,
        origin: module_path!(),
    }
}
