//! A power estimate for machines without counters: CPU utilisation from `/proc/stat`
//! times a linear power model between idle and full-load package power.
//!
//! Every figure from it is labelled `estimated`, and the model's parameters are
//! recorded in the trace. `--power estimate[:idle=W][,max=W]` overrides the model.

use eprof_core::power::{Availability, PowerSource, Reading, SourceOptions};
use eprof_core::{Error, PowerSourceRegistration, Result};
use eprof_format::{Channel, ChannelKind, PowerSourceDesc, SourceKind};

/// Idle and full-load watts *per visible core* for CPU families, matched as substrings
/// of `/proc/cpuinfo`'s model name. Per core, because servers are usually seen through
/// a VM or container slice: a 2-vCPU slice of a 64-core EPYC must not be charged the
/// whole package. Rough figures: TDP / cores at load, a quarter of that idle.
const KNOWN_CPUS: &[(&str, f64, f64)] = &[
    ("EPYC", 0.9, 3.5),
    ("Xeon", 1.0, 4.5),
    ("Ryzen", 1.5, 11.0),
    ("Core(TM) i9", 1.0, 8.0),
    ("Core(TM) i7", 1.0, 8.0),
    ("Core(TM) i5", 1.0, 10.0),
];

/// Per-core model when the CPU is not in the table.
const IDLE_W_PER_CORE: f64 = 1.0;
const MAX_W_PER_CORE: f64 = 7.5;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// Per-core (busy, total) jiffies from the text of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Vec<CpuTimes> {
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .filter_map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() < 4 {
                return None;
            }
            // user nice system idle iowait irq softirq steal (guest is inside user).
            let idle = v[3] + v.get(4).copied().unwrap_or(0);
            let total: u64 = v.iter().take(8).sum();
            Some(CpuTimes {
                busy: total - idle,
                total,
            })
        })
        .collect()
}

/// Mean utilisation in [0, 1] across cores between two snapshots.
pub fn utilisation(a: &[CpuTimes], b: &[CpuTimes]) -> f64 {
    let per_core: Vec<f64> = a
        .iter()
        .zip(b)
        .filter_map(|(a, b)| {
            let dt = b.total.checked_sub(a.total)?;
            let db = b.busy.checked_sub(a.busy)?;
            (dt > 0).then(|| db as f64 / dt as f64)
        })
        .collect();
    if per_core.is_empty() {
        return 0.0;
    }
    per_core.iter().sum::<f64>() / per_core.len() as f64
}

pub struct Estimate {
    idle_w: f64,
    max_w: f64,
    model_source: String,
    last: Vec<CpuTimes>,
    last_ns: u64,
    clock: eprof_core::Clock,
}

fn read_stat() -> Result<Vec<CpuTimes>> {
    let text = std::fs::read_to_string("/proc/stat").map_err(|e| {
        Error::power(
            "estimate",
            format!("cannot read /proc/stat ({e}); the estimate needs Linux's CPU times"),
        )
    })?;
    Ok(parse_proc_stat(&text))
}

impl Estimate {
    pub fn new(opts: &SourceOptions) -> Result<Self> {
        let machine = eprof_core::machine::detect();
        let n = f64::from(machine.cpu_cores.max(1));
        let (family, idle_core, max_core) = KNOWN_CPUS
            .iter()
            .find(|(k, _, _)| machine.cpu.contains(k))
            .map(|&(k, i, m)| (format!("table entry {k:?}"), i, m))
            .unwrap_or_else(|| ("default".to_string(), IDLE_W_PER_CORE, MAX_W_PER_CORE));
        let (mut idle_w, mut max_w) = (idle_core * n, max_core * n);
        let mut model_source =
            format!("{family}: {idle_core} W idle + {max_core} W load per core x {n} cores");
        for (key, slot) in [("idle", &mut idle_w), ("max", &mut max_w)] {
            if let Some(v) = opts.args.get(key) {
                *slot = v.parse().map_err(|_| {
                    Error::power("estimate", format!("{key}={v:?} is not a number of watts"))
                })?;
                model_source = "given by --power estimate:idle=..,max=..".into();
            }
        }
        if max_w < idle_w {
            return Err(Error::power(
                "estimate",
                format!("max={max_w} W is below idle={idle_w} W"),
            ));
        }
        Ok(Estimate {
            idle_w,
            max_w,
            model_source,
            last: read_stat()?,
            last_ns: opts.clock.now(),
            clock: opts.clock,
        })
    }
}

impl PowerSource for Estimate {
    fn desc(&self) -> PowerSourceDesc {
        PowerSourceDesc {
            name: "estimate".into(),
            kind: SourceKind::Estimate,
            channels: vec![Channel {
                name: "cpu".into(),
                kind: ChannelKind::Cpu,
                in_total: true,
            }],
            // /proc/stat counts in jiffies (10 ms at USER_HZ=100).
            nominal_resolution_ns: 10_000_000,
            details: vec![
                (
                    "model".into(),
                    "idle_w + (max_w - idle_w) x mean CPU utilisation".into(),
                ),
                ("idle_w".into(), self.idle_w.to_string()),
                ("max_w".into(), self.max_w.to_string()),
                ("parameters_from".into(), self.model_source.clone()),
                ("utilisation_from".into(), "/proc/stat".into()),
            ],
        }
    }

    fn read(&mut self) -> Result<Reading> {
        let now = read_stat()?;
        let t = self.clock.now();
        let u = utilisation(&self.last, &now);
        let mut r = Reading::new(vec![Some(self.idle_w + (self.max_w - self.idle_w) * u)]);
        r.window_ns = Some(t.saturating_sub(self.last_ns));
        r.t_ns = Some(t);
        self.last = now;
        self.last_ns = t;
        Ok(r)
    }

    fn notice(&self) -> Option<String> {
        Some(format!(
            "power: no energy counters here, estimating from CPU utilisation ({} W idle .. {} W busy, {}); figures are labelled estimated",
            self.idle_w, self.max_w, self.model_source
        ))
    }
}

fn availability() -> Availability {
    match std::fs::read_to_string("/proc/stat") {
        Ok(t) if !parse_proc_stat(&t).is_empty() => Availability::Available {
            detail: "CPU utilisation x power model; an estimate, not a measurement".into(),
        },
        _ => Availability::Unavailable {
            reason: "/proc/stat is not readable (not Linux?)".into(),
            fix: Some("use a measuring source, or --power synthetic for a demo".into()),
        },
    }
}

fn open(opts: &SourceOptions) -> Result<Box<dyn PowerSource>> {
    Ok(Box::new(Estimate::new(opts)?))
}

inventory::submit! {
    PowerSourceRegistration {
        name: "estimate",
        summary: "CPU utilisation (/proc/stat) x idle..max package power; labelled estimated",
        kind: SourceKind::Estimate,
        auto_rank: Some(100),
        availability,
        open,
        origin: module_path!(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_utilisation() {
        let a = parse_proc_stat(
            "cpu  10 0 10 80 0 0 0 0\ncpu0 5 0 5 40 0 0 0 0\ncpu1 5 0 5 40 0 0 0 0\nintr 1\n",
        );
        let b = parse_proc_stat("cpu  0\ncpu0 15 0 15 40 0 0 0 0\ncpu1 5 0 5 60 0 0 0 0\n");
        assert_eq!(a.len(), 2);
        let u = utilisation(&a, &b);
        assert!((u - 0.5).abs() < 1e-12, "{u}");
    }
}
