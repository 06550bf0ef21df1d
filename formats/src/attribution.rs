//! Energy attribution: every energy figure is derived here from the trace's power
//! readings, with a label saying how it was obtained (the rules: formats/SPEC.md; the
//! overview: docs/architecture.md, "Attribution and labels").
//!
//! Each channel's readings become a piecewise-linear cumulative energy function
//! `F(t)` (joules since the first reading):
//! - a Counter source's readings *are* points of `F`, linearly interpolated between;
//! - a Sampler or Estimate source's windows are constant power, so `F` rises linearly
//!   across each window (a gap between windows takes the next window's power).
//!
//! The energy of `[a, b]` is `F(b) - F(a)` summed over the channels that add into
//! the total. Because integration is additive, parts always sum to their whole
//! (phases to the run, steps to their phases, spans to their step) up to floating
//! point rounding, whatever the label. Labels:
//! - `estimated`: the source is an Estimate;
//! - `attributed`: the span is shorter than the source's resolution, so its figure
//!   is its time share of the reading interval around it;
//! - `measured`: a Counter source was read exactly at both ends of the span;
//! - `interpolated`: anything else, integrated from the readings around it.

use serde::{Deserialize, Serialize};

use crate::model::{ChannelSource, PowerSample, PowerSourceDesc, SourceKind, Trace};

/// How an energy figure was obtained. Ordered from strongest to weakest evidence:
/// an aggregate of figures takes the weakest label among its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergyLabel {
    Measured,
    Interpolated,
    Attributed,
    Estimated,
    /// Made up by the `synthetic` power source (tests, demos): never a measurement.
    Synthetic,
}

impl EnergyLabel {
    pub const ALL: [EnergyLabel; 5] = [
        EnergyLabel::Measured,
        EnergyLabel::Interpolated,
        EnergyLabel::Attributed,
        EnergyLabel::Estimated,
        EnergyLabel::Synthetic,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EnergyLabel::Measured => "measured",
            EnergyLabel::Interpolated => "interpolated",
            EnergyLabel::Attributed => "attributed",
            EnergyLabel::Estimated => "estimated",
            EnergyLabel::Synthetic => "synthetic",
        }
    }
    /// One line for users on what the label means.
    pub fn explain(self) -> &'static str {
        match self {
            EnergyLabel::Measured => {
                "difference of an energy counter read at the span's own boundaries"
            }
            EnergyLabel::Interpolated => "integral of the sampled power curve over the span",
            EnergyLabel::Attributed => {
                "time share of a reading interval: the span is shorter than the source's resolution"
            }
            EnergyLabel::Estimated => "from a power model, not a measurement",
            EnergyLabel::Synthetic => {
                "made up by the synthetic power source (for tests and demos), not a measurement"
            }
        }
    }
}

/// An energy figure and how it was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Energy {
    pub joules: f64,
    pub label: EnergyLabel,
}

impl Energy {
    /// Sum of parts, labelled with the weakest label among them.
    pub fn sum<I: IntoIterator<Item = Energy>>(parts: I) -> Option<Energy> {
        parts.into_iter().reduce(|a, b| Energy {
            joules: a.joules + b.joules,
            label: a.label.max(b.label),
        })
    }
}

/// A piecewise-linear cumulative energy function of one channel.
#[derive(Debug, Clone)]
struct Cumulative {
    t: Vec<u64>,
    e: Vec<f64>,
    /// When non-zero, [`Cumulative::at`] is the curve's average over a window of this
    /// many ns centred on `t` (see [`Cumulative::smoothed`]).
    smooth_ns: u64,
    /// The curve's integral from `t[0]` to each `t[i]` (J·ns), for the average.
    area: Vec<f64>,
}

impl Cumulative {
    /// A counter's readings, `(time, cumulative joules)`. A counter read more often than
    /// it updates (NVML's on an H200 changes about every 100 ms; eprof reads every few
    /// ms) returns the same value again until it updates: such a repeat says nothing
    /// new, and drawing the curve through it would put every update's energy into the
    /// one short interval in which the change was seen (a token 600 W, the next ten
    /// 0 W). So the curve runs through the first reading of each value only: an
    /// update's energy is spread over the time since the previous update was seen.
    /// A counter that never changed keeps its first and last reading (no energy seen).
    fn from_counter(points: impl Iterator<Item = (u64, f64)>) -> Option<Self> {
        let mut pts: Vec<(u64, f64)> = points.filter(|(_, e)| e.is_finite()).collect();
        pts.sort_by_key(|p| p.0);
        pts.dedup_by_key(|p| p.0);
        if pts.len() < 2 {
            return None;
        }
        let last = pts[pts.len() - 1];
        pts.dedup_by(|later, kept| later.1 == kept.1);
        if pts.len() < 2 {
            pts.push(last);
        }
        let base = pts[0].1;
        Some(Cumulative {
            t: pts.iter().map(|p| p.0).collect(),
            e: pts.iter().map(|p| p.1 - base).collect(),
            smooth_ns: 0,
            area: Vec::new(),
        })
    }

    fn from_windows(windows: impl Iterator<Item = (u64, u64, f64)>) -> Option<Self> {
        let mut w: Vec<(u64, u64, f64)> =
            windows.filter(|(a, b, p)| b > a && p.is_finite()).collect();
        w.sort_by_key(|x| x.0);
        let first = w.first()?;
        let mut c = Cumulative {
            t: vec![first.0],
            e: vec![0.0],
            smooth_ns: 0,
            area: Vec::new(),
        };
        for (_, t1, p) in w {
            let (last_t, last_e) = (*c.t.last()?, *c.e.last()?);
            if t1 <= last_t {
                continue;
            }
            c.t.push(t1);
            c.e.push(last_e + p * (t1 - last_t) as f64 * 1e-9);
        }
        (c.t.len() >= 2).then_some(c)
    }

    /// The same curve, read as its moving average over `window_ns`. For a counter
    /// whose updates come about every `window_ns` but are seen at uneven times (NVML
    /// on an H200: each update adds the same ~12 J, yet they are seen 40 to 115 ms
    /// apart), the straight line between two sightings would put 100 ms of energy
    /// into 40 ms. Averaged over one update period, every span gets the power of the
    /// period around it; over spans much longer than the period nothing changes, and
    /// a curve of constant power stays exactly itself.
    fn smoothed(mut self, window_ns: u64) -> Self {
        if window_ns == 0 {
            return self;
        }
        let mut area = Vec::with_capacity(self.t.len());
        area.push(0.0);
        for i in 0..self.t.len() - 1 {
            let dt = (self.t[i + 1] - self.t[i]) as f64;
            area.push(area[i] + 0.5 * (self.e[i] + self.e[i + 1]) * dt);
        }
        self.area = area;
        self.smooth_ns = window_ns;
        self
    }

    /// `F(t)`, extrapolated past the ends with the edge segments' power (averaged
    /// over the smoothing window, when the curve has one).
    fn at(&self, t: u64) -> f64 {
        if self.smooth_ns > 0 {
            let h = self.smooth_ns as f64 / 2.0;
            let x = t as f64 - self.t[0] as f64;
            return (self.integral(x + h) - self.integral(x - h)) / self.smooth_ns as f64;
        }
        let n = self.t.len();
        let k = self.t.partition_point(|&x| x <= t);
        self.on_segment(k.saturating_sub(1).min(n - 2), t)
    }

    /// The integral of `F` from `t[0]` to `t[0] + x` (x in ns, negative before the
    /// first point), `F` extended past its ends along the edge segments.
    fn integral(&self, x: f64) -> f64 {
        let n = self.t.len();
        let t0 = self.t[0] as f64;
        let k = self.t.partition_point(|&p| (p as f64 - t0) <= x);
        let i = k.saturating_sub(1).min(n - 2);
        let (ti, ti1) = (self.t[i] as f64 - t0, self.t[i + 1] as f64 - t0);
        let slope = (self.e[i + 1] - self.e[i]) / (ti1 - ti);
        let d = x - ti;
        self.area[i] + self.e[i] * d + 0.5 * slope * d * d
    }

    /// [`Cumulative::at`], starting from the segment `hint` found last time: times
    /// asked in order (a trace's spans) move it by a segment at most, instead of a
    /// binary search each. The same segment, so the same value, bit for bit.
    fn at_from(&self, t: u64, hint: &mut usize) -> f64 {
        if self.smooth_ns > 0 {
            return self.at(t);
        }
        let last = self.t.len() - 2;
        let holds = |i: usize| (i == 0 || self.t[i] <= t) && (i == last || t < self.t[i + 1]);
        let i = (*hint).min(last);
        let i = if holds(i) {
            i
        } else if i < last && holds(i + 1) {
            i + 1
        } else {
            self.t
                .partition_point(|&x| x <= t)
                .saturating_sub(1)
                .min(last)
        };
        *hint = i;
        self.on_segment(i, t)
    }

    fn on_segment(&self, i: usize, t: u64) -> f64 {
        let (t0, t1) = (self.t[i], self.t[i + 1]);
        let (e0, e1) = (self.e[i], self.e[i + 1]);
        if t == t0 {
            return e0;
        }
        if t == t1 {
            return e1;
        }
        let frac = (t as f64 - t0 as f64) / (t1 - t0) as f64;
        e0 + (e1 - e0) * frac
    }
}

/// The energy function of a trace: answers "how much energy in `[a, b]`".
#[derive(Debug, Clone)]
pub struct Attribution {
    kind: SourceKind,
    curves: Vec<Option<Cumulative>>,
    in_total: Vec<bool>,
    /// The total's resolution: the coarsest of its channels'.
    resolution_ns: u64,
    /// Per channel (runs that combine sources give each channel its own).
    channel_resolution: Vec<u64>,
    /// The source's figures are made up ([`PowerSourceDesc::is_synthetic`]).
    synthetic: bool,
}

impl Attribution {
    pub fn new(trace: &Trace) -> Self {
        Self::from_samples_with(
            &trace.meta.power,
            trace.channel_sources.as_deref(),
            &trace.samples,
        )
    }

    /// The energy function of a source's readings, without a whole trace.
    pub fn from_samples(desc: &PowerSourceDesc, samples: &[PowerSample]) -> Self {
        Self::from_samples_with(desc, None, samples)
    }

    /// [`Attribution::from_samples`] for a source that combines others: each channel
    /// with its own resolution, from `channels` (one per channel of `desc`; ignored
    /// when the count differs) and its own counter's observed update period.
    pub fn from_samples_with(
        desc: &PowerSourceDesc,
        channels: Option<&[ChannelSource]>,
        samples: &[PowerSample],
    ) -> Self {
        let kind = desc.kind;
        let n = desc.channels.len();
        let curves: Vec<Option<Cumulative>> = (0..n)
            .map(|c| {
                let values = samples
                    .iter()
                    .filter_map(move |s| s.values.get(c).copied().flatten().map(|v| (s, v)));
                match kind {
                    SourceKind::Counter => {
                        // A counter seen to update more slowly than it is read: its
                        // energy is averaged over one update period.
                        let period =
                            stale_update_period_of(samples, |v| v.get(c).copied().flatten());
                        Cumulative::from_counter(values.map(|(s, v)| (s.t0_ns, v)))
                            .map(|curve| curve.smoothed(period))
                    }
                    SourceKind::Sampler | SourceKind::Estimate => {
                        Cumulative::from_windows(values.map(|(s, v)| (s.t0_ns, s.t1_ns, v)))
                    }
                }
            })
            .collect();
        let resolution_ns = match kind {
            SourceKind::Counter => desc
                .nominal_resolution_ns
                .max(stale_update_period(desc, samples)),
            SourceKind::Sampler | SourceKind::Estimate => {
                desc.nominal_resolution_ns.max(median_window(samples))
            }
        };
        let in_total: Vec<bool> = desc.channels.iter().map(|c| c.in_total).collect();
        let (resolution_ns, channel_resolution) = match channels {
            Some(ch) if ch.len() == n && kind == SourceKind::Counter => {
                let per: Vec<u64> = ch
                    .iter()
                    .enumerate()
                    .map(|(c, s)| {
                        s.nominal_resolution_ns
                            .max(stale_update_period_of(samples, |v| {
                                v.get(c).copied().flatten()
                            }))
                    })
                    .collect();
                let total = (0..n)
                    .filter(|&c| in_total[c] && curves[c].is_some())
                    .map(|c| per[c])
                    .max()
                    .unwrap_or(resolution_ns);
                (total, per)
            }
            _ => (resolution_ns, vec![resolution_ns; n]),
        };
        Attribution {
            kind,
            curves,
            in_total,
            resolution_ns,
            channel_resolution,
            synthetic: desc.is_synthetic(),
        }
    }

    /// The shortest span whose energy channel `c` can tell apart.
    pub fn channel_resolution_ns(&self, c: usize) -> Option<u64> {
        self.channel_resolution.get(c).copied()
    }

    /// How channel `c`'s figure for `[a, b]` is obtained (the total's label is the
    /// weakest of its channels').
    pub fn channel_label(&self, c: usize, a: u64, b: u64) -> EnergyLabel {
        self.label_at(
            self.channel_resolution
                .get(c)
                .copied()
                .unwrap_or(self.resolution_ns),
            Some(c),
            a,
            b,
        )
    }

    /// The shortest span whose energy the source can tell apart.
    pub fn resolution_ns(&self) -> u64 {
        self.resolution_ns
    }

    /// Whether any channel that adds into the total has enough readings.
    pub fn has_energy(&self) -> bool {
        self.curves
            .iter()
            .zip(&self.in_total)
            .any(|(c, t)| *t && c.is_some())
    }

    /// Energy of one channel over `[a, b]`, if it has readings.
    pub fn channel_joules(&self, channel: usize, a: u64, b: u64) -> Option<f64> {
        let c = self.curves.get(channel)?.as_ref()?;
        Some(c.at(b.max(a)) - c.at(a))
    }

    /// Total energy over `[a, b]` (channels that add into the total), with its label.
    /// `None` when the source gave no usable readings.
    pub fn energy(&self, a: u64, b: u64) -> Option<Energy> {
        let b = b.max(a);
        self.total(a, b, |_, c| c.at(b) - c.at(a))
    }

    /// [`Attribution::energy`] of many intervals, in one pass: intervals in time order
    /// (a trace's spans) find their readings from where the previous one did.
    pub fn energies(&self, intervals: impl Iterator<Item = (u64, u64)>) -> Vec<Option<Energy>> {
        let mut hints = vec![[0usize; 2]; self.curves.len()];
        intervals
            .map(|(a, b)| {
                let b = b.max(a);
                self.total(a, b, |k, c| {
                    let [ha, hb] = &mut hints[k];
                    c.at_from(b, hb) - c.at_from(a, ha)
                })
            })
            .collect()
    }

    /// The sum of `joules(channel, curve)` over the channels that add into the total
    /// and have readings, labelled for `[a, b]`.
    fn total(
        &self,
        a: u64,
        b: u64,
        mut joules: impl FnMut(usize, &Cumulative) -> f64,
    ) -> Option<Energy> {
        let mut sum = None;
        for (k, (c, &t)) in self.curves.iter().zip(&self.in_total).enumerate() {
            if let (true, Some(c)) = (t, c) {
                *sum.get_or_insert(0.0) += joules(k, c);
            }
        }
        Some(Energy {
            joules: sum?,
            label: self.label(a, b),
        })
    }

    /// Average power per channel over `[a, b]` (a token's power snapshot).
    pub fn power_w(&self, a: u64, b: u64) -> Vec<Option<f64>> {
        let dt = b.saturating_sub(a) as f64 * 1e-9;
        (0..self.curves.len())
            .map(|c| {
                if dt <= 0.0 {
                    return None;
                }
                self.channel_joules(c, a, b).map(|j| j / dt)
            })
            .collect()
    }

    /// How the figure for `[a, b]` is obtained.
    pub fn label(&self, a: u64, b: u64) -> EnergyLabel {
        self.label_at(self.resolution_ns, None, a, b)
    }

    fn label_at(&self, resolution_ns: u64, channel: Option<usize>, a: u64, b: u64) -> EnergyLabel {
        if self.synthetic {
            return EnergyLabel::Synthetic;
        }
        if self.kind == SourceKind::Estimate {
            return EnergyLabel::Estimated;
        }
        if b.saturating_sub(a) < resolution_ns {
            return EnergyLabel::Attributed;
        }
        if self.kind == SourceKind::Counter && self.read_at(channel, a) && self.read_at(channel, b)
        {
            return EnergyLabel::Measured;
        }
        EnergyLabel::Interpolated
    }

    /// Whether `t` is a point of the energy curve of `channel` (of every channel in the
    /// total when `None`): a reading that saw the counter's value change, not a repeat
    /// of an earlier one.
    fn read_at(&self, channel: Option<usize>, t: u64) -> bool {
        // An averaged curve passes through no reading.
        let on = |c: &Cumulative| c.smooth_ns == 0 && c.t.binary_search(&t).is_ok();
        match channel {
            Some(k) => self.curves.get(k).and_then(Option::as_ref).is_some_and(on),
            None => self
                .curves
                .iter()
                .zip(&self.in_total)
                .filter_map(|(c, &t)| c.as_ref().filter(|_| t))
                .all(on),
        }
    }
}

/// A counter read more often than it updates returns the same value again ("stale").
/// When more than a tenth of the reads are stale, the counter's real update period
/// (the median time between changes) bounds what it can resolve; otherwise nothing
/// is learnt beyond the nominal resolution (0).
pub fn stale_update_period(desc: &PowerSourceDesc, samples: &[PowerSample]) -> u64 {
    stale_update_period_of(samples, |v| desc.total_of(v))
}

/// [`stale_update_period`] of the value `of` picks from each reading (the total, or
/// one channel).
fn stale_update_period_of(
    samples: &[PowerSample],
    of: impl Fn(&[Option<f64>]) -> Option<f64>,
) -> u64 {
    let mut changes = Vec::new();
    let mut stale = 0usize;
    for w in samples.windows(2) {
        if of(&w[1].values) == of(&w[0].values) {
            stale += 1;
        } else {
            changes.push(w[1].t0_ns);
        }
    }
    if samples.len() < 3 || stale * 10 < samples.len() {
        return 0;
    }
    let mut d: Vec<u64> = changes
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();
    median(&mut d)
}

/// Median distance between consecutive readings (window length for samplers).
pub fn median_spacing(trace: &Trace) -> u64 {
    let mut d: Vec<u64> = trace
        .samples
        .windows(2)
        .map(|w| w[1].t1_ns.saturating_sub(w[0].t1_ns))
        .collect();
    median(&mut d)
}

fn median_window(samples: &[PowerSample]) -> u64 {
    let mut d: Vec<u64> = samples
        .iter()
        .map(|s| s.t1_ns.saturating_sub(s.t0_ns))
        .collect();
    median(&mut d)
}

fn median(d: &mut [u64]) -> u64 {
    if d.is_empty() {
        return 0;
    }
    d.sort_unstable();
    d[d.len() / 2]
}
