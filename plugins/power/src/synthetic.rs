//! A deterministic power source: a waveform on the session clock.
//!
//! `--power synthetic[:w=10][,step=10/30@0.5][,ramp=5/50@2][,mode=counter|sampler]
//! [,wrap=J][,res_ms=1][,noise=PCT[,seed=S]]`: constant `w` watts, or a step from
//! 10 W to 30 W at 0.5 s, or a ramp from 5 W to 50 W over 2 s (time since the source
//! opened); read as an energy counter (default) or as power windows; a counter that
//! wraps at `wrap` joules; a nominal resolution of `res_ms`.
//!
//! `noise=PCT` makes runs differ the way real ones do, reproducibly: each opening of
//! the source draws a power level (normal, PCT% standard deviation around 1) and each
//! reading's interval its own factor (PCT% too), from `seed` (default 1) and the
//! number of times the source was opened before in this process. Repeated runs
//! (`eprof bench`) thus get different but reproducible energies.

use eprof_core::power::{Availability, PowerSource, Reading, SourceOptions};
use eprof_core::{Clock, Error, PowerSourceRegistration, Result};
use eprof_format::stats::SplitMix;
use eprof_format::{Channel, ChannelKind, PowerSourceDesc, SourceKind};

/// Power over time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wave {
    Constant(f64),
    /// `before` watts until `at_s`, then `after`.
    Step {
        before: f64,
        after: f64,
        at_s: f64,
    },
    /// Linear from `from` to `to` watts over `over_s`, then `to`.
    Ramp {
        from: f64,
        to: f64,
        over_s: f64,
    },
}

impl Wave {
    /// Joules from time 0 to `t` seconds.
    pub fn energy(&self, t: f64) -> f64 {
        match *self {
            Wave::Constant(w) => w * t,
            Wave::Step {
                before,
                after,
                at_s,
            } => {
                if t <= at_s {
                    before * t
                } else {
                    before * at_s + after * (t - at_s)
                }
            }
            Wave::Ramp { from, to, over_s } => {
                let r = t.min(over_s);
                let ramp = from * r + (to - from) * r * r / (2.0 * over_s);
                ramp + to * (t - r).max(0.0)
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Wave::Constant(w) => format!("constant {w} W"),
            Wave::Step {
                before,
                after,
                at_s,
            } => format!("step {before} W -> {after} W at {at_s} s"),
            Wave::Ramp { from, to, over_s } => format!("ramp {from} W -> {to} W over {over_s} s"),
        }
    }
}

pub struct Synthetic {
    clock: Clock,
    origin_ns: u64,
    wave: Wave,
    kind: SourceKind,
    wrap_j: Option<f64>,
    resolution_ns: u64,
    last_ns: u64,
    noise: Option<Noise>,
}

/// Seeded multiplicative noise: a level per opening, a factor per reading.
struct Noise {
    sd: f64,
    rng: SplitMix,
    level: f64,
    /// Noisy joules since the origin (the counter's value before wrapping).
    energy_j: f64,
}

/// Openings of the source in this process: varies the noise from run to run.
static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Noise {
    /// 1 + sd x a standard normal draw, never below 0.
    fn factor(&mut self) -> f64 {
        (1.0 + self.rng.normal(0.0, self.sd)).max(0.0)
    }
}

fn num(args: &SourceOptions, key: &str) -> Result<Option<f64>> {
    args.args
        .get(key)
        .map(|v| {
            v.parse::<f64>()
                .map_err(|_| Error::power("synthetic", format!("{key}={v:?} is not a number")))
        })
        .transpose()
}

fn pair_at(v: &str) -> Option<(f64, f64, f64)> {
    let (ab, at) = v.split_once('@')?;
    let (a, b) = ab.split_once('/')?;
    Some((
        a.parse().ok()?,
        b.parse().ok()?,
        at.trim_end_matches('s').parse().ok()?,
    ))
}

impl Synthetic {
    pub fn new(opts: &SourceOptions) -> Result<Self> {
        let bad = |k: &str, v: &str| {
            Error::power(
                "synthetic",
                format!("{k}={v:?}: expected A/B@SECONDS, e.g. 10/30@0.5"),
            )
        };
        let wave = if let Some(v) = opts.args.get("step") {
            let (before, after, at_s) = pair_at(v).ok_or_else(|| bad("step", v))?;
            Wave::Step {
                before,
                after,
                at_s,
            }
        } else if let Some(v) = opts.args.get("ramp") {
            let (from, to, over_s) = pair_at(v).ok_or_else(|| bad("ramp", v))?;
            if over_s <= 0.0 {
                return Err(bad("ramp", v));
            }
            Wave::Ramp { from, to, over_s }
        } else {
            Wave::Constant(num(opts, "w")?.unwrap_or(10.0))
        };
        let kind = match opts.args.get("mode").map(String::as_str) {
            None | Some("counter") => SourceKind::Counter,
            Some("sampler") => SourceKind::Sampler,
            Some(other) => {
                return Err(Error::power(
                    "synthetic",
                    format!("mode={other:?}: use counter or sampler"),
                ));
            }
        };
        let noise = match num(opts, "noise")? {
            Some(pct) if pct < 0.0 || !pct.is_finite() => {
                return Err(Error::power(
                    "synthetic",
                    format!("noise={pct}: a percentage, 0 or more"),
                ));
            }
            Some(pct) => {
                let seed = num(opts, "seed")?.unwrap_or(1.0) as u64;
                let opened = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut n = Noise {
                    sd: pct / 100.0,
                    rng: SplitMix(seed ^ opened.wrapping_mul(0xD1B5_4A32_D192_ED03)),
                    level: 1.0,
                    energy_j: 0.0,
                };
                n.level = n.factor();
                Some(n)
            }
            None => None,
        };
        let now = opts.clock.now();
        Ok(Synthetic {
            noise,
            clock: opts.clock,
            origin_ns: now,
            wave,
            kind,
            wrap_j: num(opts, "wrap")?,
            resolution_ns: (num(opts, "res_ms")?.unwrap_or(1.0) * 1e6) as u64,
            last_ns: now,
        })
    }

    /// Joules from the source's origin to clock time `t_ns`.
    pub fn energy_at(&self, t_ns: u64) -> f64 {
        self.wave
            .energy(t_ns.saturating_sub(self.origin_ns) as f64 * 1e-9)
    }

    pub fn origin_ns(&self) -> u64 {
        self.origin_ns
    }
}

impl PowerSource for Synthetic {
    fn desc(&self) -> PowerSourceDesc {
        PowerSourceDesc {
            name: "synthetic".into(),
            kind: self.kind,
            channels: vec![Channel {
                name: "package".into(),
                kind: ChannelKind::Package,
                in_total: true,
            }],
            nominal_resolution_ns: self.resolution_ns,
            details: {
                let mut d = vec![
                    (
                        eprof_format::SYNTHETIC_DETAIL.into(),
                        "made-up figures, not a measurement".into(),
                    ),
                    ("waveform".into(), self.wave.describe()),
                    ("origin_ns".into(), self.origin_ns.to_string()),
                ];
                if let Some(n) = &self.noise {
                    d.push((
                        "noise".into(),
                        format!("{}% (this run's level {:.4})", n.sd * 100.0, n.level),
                    ));
                }
                d
            },
        }
    }

    fn read(&mut self) -> Result<Reading> {
        let t = self.clock.now();
        if let Some(n) = self.noise.as_mut() {
            let f = n.level * n.factor();
            let de = self
                .wave
                .energy(t.saturating_sub(self.origin_ns) as f64 * 1e-9)
                - self
                    .wave
                    .energy(self.last_ns.saturating_sub(self.origin_ns) as f64 * 1e-9);
            n.energy_j += de * f;
            let dt = t.saturating_sub(self.last_ns);
            let mut r = match self.kind {
                SourceKind::Counter => {
                    let raw = self.wrap_j.map_or(n.energy_j, |w| n.energy_j % w);
                    let mut r = Reading::new(vec![Some(raw)]);
                    r.wrap_j = vec![self.wrap_j];
                    r
                }
                _ => {
                    let w = if dt == 0 {
                        0.0
                    } else {
                        de * f / (dt as f64 * 1e-9)
                    };
                    let mut r = Reading::new(vec![Some(w)]);
                    r.window_ns = Some(dt);
                    r
                }
            };
            r.t_ns = Some(t);
            self.last_ns = t;
            return Ok(r);
        }
        let mut r = match self.kind {
            SourceKind::Counter => {
                let e = self.energy_at(t);
                let raw = self.wrap_j.map_or(e, |w| e % w);
                let mut r = Reading::new(vec![Some(raw)]);
                r.wrap_j = vec![self.wrap_j];
                r
            }
            _ => {
                let dt = t.saturating_sub(self.last_ns);
                let w = if dt == 0 {
                    0.0
                } else {
                    (self.energy_at(t) - self.energy_at(self.last_ns)) / (dt as f64 * 1e-9)
                };
                let mut r = Reading::new(vec![Some(w)]);
                r.window_ns = Some(dt);
                r
            }
        };
        r.t_ns = Some(t);
        self.last_ns = t;
        Ok(r)
    }

    fn notice(&self) -> Option<String> {
        Some(format!(
            "power: synthetic {} ({}), not a measurement",
            self.wave.describe(),
            self.kind.as_str()
        ))
    }
}

fn open(opts: &SourceOptions) -> Result<Box<dyn PowerSource>> {
    Ok(Box::new(Synthetic::new(opts)?))
}

inventory::submit! {
    PowerSourceRegistration {
        name: "synthetic",
        summary: "deterministic waveform (constant/step/ramp) as a counter or sampler; for tests and demos",
        kind: SourceKind::Counter,
        auto_rank: None,
        availability: || Availability::Available { detail: "always available; not a measurement".into() },
        open,
        origin: module_path!(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_varies_runs_reproducibly_around_the_waveform() {
        let opts = |noise: &str| {
            let mut o = SourceOptions::new(Clock::start(), std::time::Duration::from_millis(100));
            o.args.insert("noise".into(), noise.into());
            o
        };
        let levels: Vec<f64> = (0..200)
            .map(|_| Synthetic::new(&opts("2")).unwrap().noise.unwrap().level)
            .collect();
        let mean = levels.iter().sum::<f64>() / levels.len() as f64;
        let sd = (levels.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / 199.0).sqrt();
        assert!(
            (mean - 1.0).abs() < 0.005 && (sd - 0.02).abs() < 0.005,
            "{mean} {sd}"
        );
        assert!(
            levels.windows(2).all(|w| w[0] != w[1]),
            "each opening differs"
        );
        assert!(Synthetic::new(&opts("-1")).is_err());
    }

    #[test]
    fn waveforms_integrate_exactly() {
        let s = Wave::Step {
            before: 10.0,
            after: 30.0,
            at_s: 1.0,
        };
        assert_eq!(s.energy(0.5), 5.0);
        assert_eq!(s.energy(2.0), 40.0);
        let r = Wave::Ramp {
            from: 0.0,
            to: 10.0,
            over_s: 2.0,
        };
        assert_eq!(r.energy(2.0), 10.0);
        assert_eq!(r.energy(3.0), 20.0);
    }
}
