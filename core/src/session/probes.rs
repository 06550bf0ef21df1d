//! The probes of a session: which tensors each wants at each site (decided once, read
//! as one cache line on the hot path), the moments probes' observations summed up at
//! the site and made into metrics at the flush, and every metric value staged until
//! then. A probe that fails or panics is disabled; the session says so in a note.

use std::panic::{AssertUnwindSafe, catch_unwind};

use eprof_format::{Depth, MetricSeries, SiteDef};

use crate::probe::{At, MetricSink, MomentMetrics, Moments, Probe, TensorKind, TensorView};
use crate::recorder::SiteId;

/// A call into a probe, with its error or panic as the text of why it failed.
fn guarded<E: std::fmt::Display>(f: impl FnOnce() -> Result<(), E>) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(p) => Err(format!("panicked: {}", crate::panic_text(&*p))),
    }
}

/// One probe in a run; disabled after its first error or panic.
struct ProbeSlot {
    probe: Box<dyn Probe>,
    name: String,
    enabled: bool,
    /// [`Probe::moment_metrics`], asked once, with its metrics' series (made at the
    /// first flush that has values for them).
    moments: Option<(MomentMetrics, Vec<u32>)>,
    known: Vec<Known>,
    /// Per site, the [`TensorKind`] bits this probe wants.
    want: Vec<u8>,
}

/// A metric a probe has emitted: its name and its series' index (series never move).
/// A probe usually emits its metrics in the same order at every site, so an emit
/// compares the name with the entry after the previous one before searching.
/// (Names are compared, not addresses: a plugin may build names in a reused buffer.)
struct Known {
    name: String,
    series: usize,
}

/// A metric value as emitted, sorted into its series at the next flush. Between two
/// flushes values go to this one buffer, not to each series' three columns: in a
/// decode step the weights streamed between two components evict the session's
/// buffers, and one buffer's tail is one cache line to bring back per observation
/// where four series' columns were twelve (`cargo bench -p eprof-probes --bench
/// record`, weights streamed).
#[derive(Debug, Clone, Copy)]
struct Staged {
    series: u32,
    step: u32,
    site: u32,
    value: f32,
}

/// A tensor shown to a moments probe ([`Probe::moment_metrics`]): summed up when
/// it was shown, its metrics made at the next flush.
#[derive(Debug, Clone, Copy)]
struct PendingMoments {
    slot: u32,
    site: u32,
    step: u32,
    m: Moments,
}

/// What showing a site a tensor does, decided when the probes are (re)enabled: every
/// enabled probe's wanted kinds and the moments probes among them, inline. In a decode
/// step the weights streamed between two tensors evict the session's state, and an
/// observation that reads this one entry brings back one cache line where walking the
/// probes' slots and their per-site bits was three, one after the other.
#[derive(Debug, Clone, Copy, Default)]
struct SitePlan {
    /// The OR of the enabled probes' wanted [`TensorKind`] bits.
    want: u8,
    /// The kinds some enabled probe that is not a moments probe wants.
    others: u8,
    /// How many of `moments` are used; more than [`SitePlan::INLINE`] moments probes
    /// at one site are found by walking the slots.
    n: u8,
    moments: [MomentTarget; SitePlan::INLINE],
}

impl SitePlan {
    const INLINE: usize = 2;
    /// The marker in `n` for more moments probes than fit inline.
    const CROWDED: u8 = u8::MAX;
}

/// A moments probe that wants a site: its slot, kinds and threshold.
#[derive(Debug, Clone, Copy, Default)]
struct MomentTarget {
    slot: u32,
    threshold: f32,
    kinds: u8,
}

/// What [`Session::observe_pending`] reuses from one flush to the next: a moments
/// probe's values (observation by observation, metric by metric) and its
/// observations' steps and sites.
#[derive(Debug, Default)]
struct MomentScratch {
    values: Vec<f32>,
    steps: Vec<u32>,
    sites: Vec<u32>,
}

/// Sort staged values into their series, in the order they were emitted.
fn settle(series: &mut [MetricSeries], staged: &mut Vec<Staged>) {
    for v in staged.drain(..) {
        series[v.series as usize].push(v.step, v.site, v.value);
    }
}

/// The index of `probe`'s series `metric`, made if new.
fn series_index(series: &mut Vec<MetricSeries>, probe: &str, metric: &str) -> usize {
    match series
        .iter()
        .position(|m| m.metric == metric && m.probe == probe)
    {
        Some(i) => i,
        None => {
            series.push(MetricSeries::new(probe, metric));
            series.len() - 1
        }
    }
}

/// Collects metric values of one (step, site) for the session's series.
struct Sink<'a> {
    series: &'a mut Vec<MetricSeries>,
    staged: &'a mut Vec<Staged>,
    known: &'a mut Vec<Known>,
    /// Where the next emit is looked for first in `known`.
    next: usize,
    probe: &'a str,
    step: u32,
    site: u32,
}

impl MetricSink for Sink<'_> {
    fn emit(&mut self, metric: &str, value: f32) {
        let hit = match self.known.get(self.next) {
            Some(k) if k.name == metric => Some(self.next),
            _ => self.known.iter().position(|k| k.name == metric),
        };
        let series = match hit {
            Some(j) => {
                self.next = j + 1;
                self.known[j].series
            }
            None => {
                let i = series_index(self.series, self.probe, metric);
                self.known.push(Known {
                    name: metric.to_string(),
                    series: i,
                });
                self.next = self.known.len();
                i
            }
        };
        self.staged.push(Staged {
            series: series as u32,
            step: self.step,
            site: self.site,
            value,
        });
    }
}

/// The probes of a run and everything they have observed since the last flush.
pub(super) struct ProbeHost {
    /// Per site, what showing it a tensor does ([`SitePlan`]).
    plan: Vec<SitePlan>,
    slots: Vec<ProbeSlot>,
    /// Every metric's series; a flush writes and empties them.
    pub(super) metrics: Vec<MetricSeries>,
    /// Metric values since the last flush ([`Staged`]).
    staged: Vec<Staged>,
    /// Moments probes' observations since the last flush.
    pending: Vec<PendingMoments>,
    scratch: MomentScratch,
}

impl ProbeHost {
    pub(super) fn new(probes: Vec<Box<dyn Probe>>, sites: usize) -> ProbeHost {
        let slots = probes
            .into_iter()
            .map(|p| ProbeSlot {
                name: p.name().to_string(),
                moments: p.moment_metrics().map(|m| (m, Vec::new())),
                probe: p,
                enabled: true,
                known: Vec::new(),
                want: Vec::new(),
            })
            .collect();
        ProbeHost {
            plan: vec![SitePlan::default(); sites],
            slots,
            metrics: Vec::new(),
            staged: Vec::with_capacity(4096),
            pending: Vec::with_capacity(1024),
            scratch: MomentScratch::default(),
        }
    }

    /// Ask every enabled probe once per site which tensors it wants, so that the hot
    /// path tests bits instead of calling probes (a plugin's `wants` crosses the FFI).
    pub(super) fn recompute_wants(&mut self, sites: &[SiteDef], depth: Depth) {
        if depth == Depth::Off {
            return;
        }
        for p in &mut self.slots {
            p.want = if p.enabled {
                sites
                    .iter()
                    .map(|site| {
                        TensorKind::ALL
                            .into_iter()
                            .filter(|&k| p.probe.wants(site, k))
                            .map(TensorKind::bit)
                            .fold(0, |a, b| a | b)
                    })
                    .collect()
            } else {
                vec![0; sites.len()]
            };
        }
        for (i, plan) in self.plan.iter_mut().enumerate() {
            let mut p = SitePlan::default();
            for (j, slot) in self.slots.iter().enumerate() {
                let kinds = slot.want[i];
                p.want |= kinds;
                match &slot.moments {
                    _ if kinds == 0 => {}
                    None => p.others |= kinds,
                    Some(_) if p.n == SitePlan::CROWDED => {}
                    Some(_) if usize::from(p.n) == SitePlan::INLINE => p.n = SitePlan::CROWDED,
                    Some((mm, _)) => {
                        p.moments[usize::from(p.n)] = MomentTarget {
                            slot: j as u32,
                            threshold: mm.threshold,
                            kinds,
                        };
                        p.n += 1;
                    }
                }
            }
            *plan = p;
        }
    }

    /// Whether some enabled probe wants tensors of `kind` at `site`.
    #[inline]
    pub(super) fn wants(&self, site: SiteId, kind: TensorKind) -> bool {
        self.plan
            .get(site as usize)
            .is_some_and(|p| p.want & kind.bit() != 0)
    }

    /// Show a tensor to the probes that want it: the moments probes' share summed up
    /// now, the others shown it. Returns the probes that failed, with why.
    pub(super) fn observe(
        &mut self,
        def: &SiteDef,
        at: At,
        site: SiteId,
        kind: TensorKind,
        view: TensorView<'_>,
    ) -> Vec<(usize, String)> {
        let mut failures = Vec::new();
        let Some(&plan) = self.plan.get(site as usize) else {
            return failures;
        };
        let bit = kind.bit();
        if plan.want & bit == 0 {
            return failures;
        }
        if plan.n == SitePlan::CROWDED {
            self.observe_crowded(at.step, site, kind, view);
        } else {
            // The moments probes' share, in a few cache lines of code: a decode step
            // streams weights between two tensors, which evicts it every time. Two
            // probes with the same threshold share one pass.
            let mut last: Option<(f32, Moments)> = None;
            for t in &plan.moments[..usize::from(plan.n)] {
                if t.kinds & bit == 0 {
                    continue;
                }
                let m = match last {
                    Some((th, m)) if th == t.threshold => m,
                    _ => Moments::of(view.data, t.threshold),
                };
                last = Some((t.threshold, m));
                self.pending.push(PendingMoments {
                    slot: t.slot,
                    site,
                    step: at.step,
                    m,
                });
            }
        }
        if plan.others & bit != 0 {
            self.show(def, at, site, kind, view, &mut failures);
        }
        failures
    }

    /// A value a model reports itself ([`crate::Recorder::value`]).
    pub(super) fn value(&mut self, step: u32, site: SiteId, probe: &str, metric: &str, v: f32) {
        let series = series_index(&mut self.metrics, probe, metric) as u32;
        self.staged.push(Staged {
            series,
            step,
            site,
            value: v,
        });
    }

    /// Sort the staged values into their series, ready to be written.
    pub(super) fn settle(&mut self) {
        settle(&mut self.metrics, &mut self.staged);
    }

    /// [`Recorder::observe_view`]'s moments probes where more want a site than its
    /// [`SitePlan`] holds: every enabled slot is asked.
    #[inline(never)]
    fn observe_crowded(&mut self, step: u32, site: SiteId, kind: TensorKind, view: TensorView<'_>) {
        for (i, slot) in self.slots.iter().enumerate() {
            if !slot.enabled || slot.want[site as usize] & kind.bit() == 0 {
                continue;
            }
            if let Some((mm, _)) = &slot.moments {
                self.pending.push(PendingMoments {
                    slot: i as u32,
                    site,
                    step,
                    m: Moments::of(view.data, mm.threshold),
                });
            }
        }
    }

    /// Show a tensor to the probes that want it and are not moments probes
    /// ([`Recorder::observe_view`] does those).
    #[inline(never)]
    fn show(
        &mut self,
        def: &SiteDef,
        at: At,
        site: SiteId,
        kind: TensorKind,
        view: TensorView<'_>,
        failures: &mut Vec<(usize, String)>,
    ) {
        let step = at.step;
        let metrics = &mut self.metrics;
        let staged = &mut self.staged;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if !slot.enabled || slot.want[site as usize] & kind.bit() == 0 || slot.moments.is_some()
            {
                continue;
            }
            let mut sink = Sink {
                series: metrics,
                staged,
                known: &mut slot.known,
                next: 0,
                probe: &slot.name,
                step,
                site,
            };
            if let Err(why) = guarded(|| slot.probe.observe(def, at, kind, view, &mut sink)) {
                failures.push((i, why));
            }
        }
    }

    /// The metrics of the moments probes' observations since the last flush, in the
    /// order the tensors were shown. Probe by probe: its values for every observation
    /// into one buffer, then each of its series extended by whole columns (the steps
    /// and sites copied, the values strided): about half the instructions of pushing
    /// value by value into the series' three columns (callgrind, per SmolLM2 token).
    pub(super) fn observe_pending(&mut self) -> Vec<(usize, String)> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let pending = std::mem::take(&mut self.pending);
        let MomentScratch {
            mut values,
            mut steps,
            mut sites,
        } = std::mem::take(&mut self.scratch);
        let mut failures: Vec<(usize, String)> = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some((mm, series)) = slot.moments.as_mut() else {
                continue;
            };
            if !slot.enabled {
                continue;
            }
            steps.clear();
            sites.clear();
            for p in pending.iter().filter(|p| p.slot as usize == i) {
                steps.push(p.step);
                sites.push(p.site);
            }
            if steps.is_empty() {
                continue;
            }
            if series.is_empty() {
                *series = mm
                    .names
                    .iter()
                    .map(|n| series_index(&mut self.metrics, &slot.name, n) as u32)
                    .collect();
            }
            let width = series.len();
            if width == 0 {
                continue; // no metrics: nothing to make
            }
            values.clear();
            values.resize(steps.len() * width, f32::NAN);
            let probe = &mut slot.probe;
            // The observations made into values before the probe failed, if it did.
            let mut done = 0;
            let rows = pending.iter().filter(|p| p.slot as usize == i);
            for (p, out) in rows.zip(values.chunks_exact_mut(width)) {
                match guarded(|| probe.moment_values(&p.m, out)) {
                    Ok(()) => done += 1,
                    Err(why) => {
                        failures.push((i, why));
                        break;
                    }
                }
            }
            for (j, &k) in series.iter().enumerate() {
                let m = &mut self.metrics[k as usize];
                m.step.extend_from_slice(&steps[..done]);
                m.site.extend_from_slice(&sites[..done]);
                m.value
                    .extend(values.iter().skip(j).step_by(width).take(done));
            }
        }
        // The buffers go back, emptied, to be reused at the next flush.
        self.pending = pending;
        self.pending.clear();
        self.scratch = MomentScratch {
            values,
            steps,
            sites,
        };
        failures
    }

    /// Disable probe `i` after a failure; the message for the user and the trace.
    /// The caller asks the probes' wants again ([`ProbeHost::recompute_wants`]).
    pub(super) fn disable(&mut self, i: usize, why: &str, step: u32) -> String {
        self.slots[i].enabled = false;
        let name = &self.slots[i].name;
        format!("probe {name} disabled for the rest of the run at step {step}: {why}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values land in their metric's series whatever order a probe emits them in,
    /// and a name rebuilt in the same buffer is matched by its text.
    #[test]
    fn emits_find_their_series_in_any_order() {
        let mut series = Vec::new();
        let mut staged = Vec::new();
        let mut known = Vec::new();
        let orders: [&[&str]; 4] = [
            &["mean", "std", "max"],
            &["mean", "std", "max"],
            &["max", "mean"],
            &["std", "std", "new", "mean"],
        ];
        let mut buf = String::with_capacity(8);
        for (site, order) in orders.iter().enumerate() {
            let mut sink = Sink {
                series: &mut series,
                staged: &mut staged,
                known: &mut known,
                next: 0,
                probe: "p",
                step: 7,
                site: site as u32,
            };
            for (k, name) in order.iter().enumerate() {
                buf.clear();
                buf.push_str(name);
                sink.emit(&buf, (site * 10 + k) as f32);
            }
        }
        settle(&mut series, &mut staged);
        assert!(staged.is_empty());
        let of = |m: &str| {
            let s = series.iter().find(|s| s.metric == m).expect("series");
            assert_eq!(s.probe, "p");
            assert!(s.step.iter().all(|&t| t == 7));
            s.site
                .iter()
                .copied()
                .zip(s.value.iter().copied())
                .collect::<Vec<_>>()
        };
        assert_eq!(of("mean"), vec![(0, 0.0), (1, 10.0), (2, 21.0), (3, 33.0)]);
        assert_eq!(of("std"), vec![(0, 1.0), (1, 11.0), (3, 30.0), (3, 31.0)]);
        assert_eq!(of("max"), vec![(0, 2.0), (1, 12.0), (2, 20.0)]);
        assert_eq!(of("new"), vec![(3, 32.0)]);
        assert_eq!(series.len(), 4);
    }
}
