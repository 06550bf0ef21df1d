//! The events of a recording as it happens ([`RunEvent`], defined in
//! `eprof_format::live` so the viewer reads the same type), the sink they go to, and
//! how they are made.
//!
//! [`RunEvent`] values serialize (`{"type": "token_complete", ...}`) to exactly the
//! messages of the server's WebSocket stream; `docs/api.md` shows one of each. They
//! are made between steps from what the session just flushed (the trace's own
//! columns), never on the hot path, and their energies come from the same
//! attribution as the trace's: figures that later readings can still change are
//! marked `provisional`.

use std::ops::ControlFlow;

use eprof_core::Session;
use eprof_format::live::{RunEvent, SiteColumns};
use eprof_format::{Attribution, Energy, Phase, PowerSample, PowerSourceDesc, SourceKind};
use eprof_models::pipeline::{Observer, StepEvent};

/// The `error` event of a failed run.
pub fn error_event(run_id: &str, e: &crate::RecordError) -> RunEvent {
    RunEvent::Error {
        run_id: Some(run_id.to_string()),
        kind: e.kind,
        message: e.message.clone(),
        hint: e.hint.clone(),
    }
}

/// Where a run's events go. `Break` cancels the run: it stops at the next step
/// boundary and its trace is finished with stop reason `cancelled`; events still
/// arrive until `inference_complete`.
pub trait RunSink {
    fn event(&mut self, e: &RunEvent) -> ControlFlow<()>;

    /// Whether this sink wants the per-step `layer_metrics`, `component_metrics` and
    /// `operation_metrics` (a sink that only streams text says no, and they are not
    /// built).
    fn wants_sites(&self) -> bool {
        true
    }

    /// A flag that is set when the run should stop, for the waits before the first
    /// event is due (the idle baseline): polled there, so a cancel takes effect within
    /// 50 ms instead of after the whole baseline. `None`: only `Break` stops the run.
    fn cancel_flag(&self) -> Option<std::sync::Arc<std::sync::atomic::AtomicBool>> {
        None
    }
}

/// A sink that drops everything (a run nobody watches).
#[derive(Debug, Default)]
pub struct NoSink;

impl RunSink for NoSink {
    fn event(&mut self, _: &RunEvent) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    fn wants_sites(&self) -> bool {
        false
    }
}

impl<F: FnMut(&RunEvent) -> ControlFlow<()>> RunSink for F {
    fn event(&mut self, e: &RunEvent) -> ControlFlow<()> {
        self(e)
    }
}

/// Turns what the session flushes into [`RunEvent`]s for a sink (the pipeline's
/// [`Observer`]).
pub(crate) struct Live<'a> {
    pub sink: &'a mut dyn RunSink,
    desc: PowerSourceDesc,
    samples: Vec<PowerSample>,
    /// The newest reading's time.
    last_t: u64,
    cancel: bool,
}

impl<'a> Live<'a> {
    pub fn new(sink: &'a mut dyn RunSink, desc: PowerSourceDesc) -> Self {
        Live {
            sink,
            desc,
            samples: Vec::new(),
            last_t: 0,
            cancel: false,
        }
    }

    /// Send one event; remembers a cancel request.
    pub fn send(&mut self, e: RunEvent) {
        self.cancel |= self.sink.event(&e).is_break();
    }

    fn flow(&self) -> ControlFlow<()> {
        if self.cancel {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// New power readings as events.
    fn take_samples(&mut self, s: &Session) {
        let new = s.samples_since(self.samples.len());
        for smp in new {
            let prev = self.samples.last();
            let (watts, window_ns) = smp.watts(self.desc.kind, prev);
            let e = RunEvent::PowerSample {
                t_ns: smp.t1_ns,
                window_ns,
                total_w: self.desc.total_of(&watts),
                watts,
            };
            self.last_t = self.last_t.max(smp.t1_ns);
            self.samples.push(smp);
            if window_ns > 0 || self.desc.kind != SourceKind::Counter {
                self.send(e);
            }
        }
    }

    fn last_reading_ns(&self) -> u64 {
        self.last_t
    }
}

/// The first reading to build the energy curve from for spans starting at `t` or
/// later: two readings before the last one at or before `t` (readings come in time
/// order), so that every such span lies between readings of the curve, exactly as in
/// the curve of all readings.
fn readings_from(samples: &[PowerSample], t: u64) -> usize {
    samples.partition_point(|s| s.t1_ns <= t).saturating_sub(2)
}

impl Observer for Live<'_> {
    fn phase_started(&mut self, s: &Session, phase: Phase, t_ns: u64) -> ControlFlow<()> {
        self.take_samples(s);
        self.send(RunEvent::SectionStart {
            phase,
            name: phase.as_str().to_string(),
            t_ns,
        });
        self.flow()
    }

    fn flushed(&mut self, s: &Session, step: Option<&StepEvent<'_>>) -> ControlFlow<()> {
        self.take_samples(s);
        let f = s.last_flush();
        // Only the readings from just before the oldest span of this flush on, and at
        // least the last 256 (what the source's resolution, so the labels, is judged
        // from): a run of thousands of steps does not rebuild its whole energy curve
        // at each one. The trace's own figures use every reading.
        let earliest = f
            .sections
            .iter()
            .map(|x| x.start_ns)
            .chain(f.tokens.iter().filter_map(|t| t.step.map(|st| st.start_ns)))
            .chain(f.spans.start_ns.iter().copied())
            .min()
            .unwrap_or(u64::MAX);
        let from =
            readings_from(&self.samples, earliest).min(self.samples.len().saturating_sub(256));
        let att = Attribution::from_samples(&self.desc, &self.samples[from..]);
        let last = self.last_reading_ns();
        for n in &f.notes {
            self.send(RunEvent::Note {
                level: n.level,
                text: n.text.clone(),
            });
        }
        for sec in &f.sections {
            self.send(RunEvent::SectionEnd {
                phase: sec.phase,
                name: sec.name.clone(),
                step: sec.step,
                start_ns: sec.start_ns,
                end_ns: sec.end_ns,
                energy: att.energy(sec.start_ns, sec.end_ns),
                provisional: last < sec.end_ns,
            });
        }
        if let Some(ev) = step {
            let figures = if self.sink.wants_sites() {
                site_figures(s, &att, ev.step)
            } else {
                Vec::new()
            };
            for (kind, figures) in figures {
                self.send(match kind {
                    SiteKind::Layer => RunEvent::LayerMetrics {
                        step: ev.step,
                        layers: figures,
                    },
                    SiteKind::Component => RunEvent::ComponentMetrics {
                        step: ev.step,
                        components: figures,
                    },
                    SiteKind::Operation => RunEvent::OperationMetrics {
                        step: ev.step,
                        operations: figures,
                    },
                });
            }
            for t in f.tokens.iter().filter(|t| t.step.is_some()) {
                let st = t.step.expect("filtered");
                let power = att.power_w(st.start_ns, st.end_ns);
                self.send(RunEvent::TokenComplete {
                    position: t.position,
                    step: st.index,
                    id: t.id,
                    text: if st.index == ev.step {
                        ev.text.to_string()
                    } else {
                        String::new()
                    },
                    token_text: t.text.clone(),
                    phase: t.phase,
                    start_ns: st.start_ns,
                    duration_ns: st.end_ns.saturating_sub(st.start_ns),
                    energy: att.energy(st.start_ns, st.end_ns),
                    provisional: last < st.end_ns,
                    power_w: self.desc.total_of(&power),
                    decode_tokens_per_s: ev.decode_tokens_per_s,
                    elapsed_ns: ev.elapsed_ns,
                });
            }
        }
        self.flow()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SiteKind {
    Layer,
    Component,
    Operation,
}

fn kind_of(def: &eprof_format::SiteDef) -> SiteKind {
    if def.is_operation() {
        SiteKind::Operation
    } else if def.is_layer() {
        SiteKind::Layer
    } else {
        // Components of layers, and the model's own (embedding, final norm, lm_head).
        SiteKind::Component
    }
}

/// The last flush's spans and metrics of `step`, per site, as one [`SiteColumns`]
/// per kind of site (kinds without any figure are left out).
fn site_figures(s: &Session, att: &Attribution, step: u32) -> Vec<(SiteKind, SiteColumns)> {
    let f = s.last_flush();
    let sites = s.sites();
    // Per site id (a model has hundreds of sites): (its kind's columns, its row).
    let mut row: Vec<Option<(usize, usize)>> = vec![None; sites.len()];
    let mut out: Vec<(SiteKind, SiteColumns)> = Vec::new();
    let mut place = |site: u32, out: &mut Vec<(SiteKind, SiteColumns)>| -> Option<(usize, usize)> {
        let def = sites.get(site as usize)?;
        if let Some(r) = row[site as usize] {
            return Some(r);
        }
        let kind = kind_of(def);
        let k = match out.iter().position(|(x, _)| *x == kind) {
            Some(k) => k,
            None => {
                out.push((kind, SiteColumns::default()));
                out.len() - 1
            }
        };
        let r = out[k].1.push(def);
        row[site as usize] = Some((k, r));
        Some((k, r))
    };
    let sp = &f.spans;
    for i in (0..sp.len()).filter(|&i| sp.step[i] == step) {
        let (a, b) = (sp.start_ns[i], sp.end_ns[i]);
        if let Some((k, r)) = place(sp.site[i], &mut out) {
            let c = &mut out[k].1;
            c.duration_ns[r] += b.saturating_sub(a);
            let e = match (c.energy(r), att.energy(a, b)) {
                (Some(x), Some(y)) => Energy::sum([x, y]),
                (x, y) => x.or(y),
            };
            c.set_energy(r, e);
        }
    }
    for m in &f.metrics {
        let key = m.key();
        for i in (0..m.len()).filter(|&i| m.step[i] == step) {
            if let Some((k, r)) = place(m.site[i], &mut out) {
                let c = &mut out[k].1;
                let n = c.duration_ns.len();
                let col = c.metrics.entry(key.clone()).or_default();
                col.resize(n, None);
                col[r] = Some(m.value[i]);
            }
        }
    }
    for (_, c) in &mut out {
        let n = c.duration_ns.len();
        for col in c.metrics.values_mut() {
            col.resize(n, None);
        }
    }
    out.sort_by_key(|(k, _)| *k as u8);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curve_from_the_needed_readings_gives_every_later_span_its_energy() {
        let mut desc = eprof_format::synthetic::trace(&Default::default())
            .meta
            .power;
        desc.kind = SourceKind::Counter;
        // A counter read every 1 ms, its power changing at every reading.
        let mut e = 0.0;
        let samples: Vec<PowerSample> = (0..2_000u64)
            .map(|i| {
                e += (1 + i % 7) as f64 * 1e-3;
                PowerSample {
                    t0_ns: i * 1_000_000,
                    t1_ns: i * 1_000_000,
                    values: vec![Some(e); desc.channels.len()],
                }
            })
            .collect();
        let all = Attribution::from_samples(&desc, &samples);
        for earliest in [0, 1_500_000, 999_999_999, 1_500_250_000] {
            let from = readings_from(&samples, earliest);
            assert!(samples[from].t1_ns <= earliest || from == 0);
            let tail = Attribution::from_samples(&desc, &samples[from..]);
            for k in 0..200u64 {
                let a = earliest + k * 2_345_679;
                let b = a + 1_234_567;
                let (x, y) = (all.energy(a, b).unwrap(), tail.energy(a, b).unwrap());
                assert!(
                    (x.joules - y.joules).abs() <= 1e-9 * x.joules.abs(),
                    "{a}: {x:?} {y:?}"
                );
            }
        }
    }
}
