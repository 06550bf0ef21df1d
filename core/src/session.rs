//! A recording session: owns the clock, the power sampler thread, the span and metric
//! buffers, the probes, and the streaming trace writer.
//!
//! Hot path (measured by `cargo bench -p eprof-probes --bench record`): `span` is a
//! push into four preallocated columns; `now` is one monotonic clock read. Buffers are
//! written out as chunks between steps ([`Session::flush`]), never inside one.

use std::fs::File;
use std::io::BufWriter;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use eprof_format::sync::lock;
use std::thread::JoinHandle;
use std::time::Duration;

use candle_core::Tensor;
use eprof_format::{
    Attribution, Depth, GroupRef, IdleBaseline, MetricSeries, Note, NoteLevel, Phase, PowerSample,
    PowerSourceDesc, RunEnd, RunMeta, Section, SiteDef, SourceKind, SpanTable, Token, TraceWriter,
};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::power::{CounterUnwrap, PowerSource, Reading};
use crate::probe::{
    At, MetricSink, MomentMetrics, Moments, Probe, TensorKind, TensorView, with_host_f32,
};
use crate::recorder::{Recorder, SiteId};

/// What a session needs to start.
pub struct SessionConfig {
    /// Run metadata; `power` is filled in from the source.
    pub meta: RunMeta,
    pub out: PathBuf,
    pub clock: Clock,
    /// Sampler thread interval.
    pub interval: Duration,
    /// Idle measurement before the run; zero disables it.
    pub idle_baseline: Duration,
    /// Set when the run is cancelled: the idle baseline stops waiting (and is then
    /// not recorded).
    pub cancel: Option<Arc<AtomicBool>>,
    /// Counter sources: also read at step boundaries, so per-token energy is measured.
    pub boundary_reads: bool,
    /// The model's sites; their ids are their indices.
    pub sites: Vec<SiteDef>,
    /// The model runs on an asynchronous device (CUDA, Metal): models synchronize it
    /// around each span so that a span times the kernels, not their launch.
    pub sync_device: bool,
    pub probes: Vec<Box<dyn Probe>>,
    /// Written into the trace when the run is one of a group (`eprof bench`).
    pub group: Option<GroupRef>,
    /// Threads and kernels, written into the trace.
    pub execution: Option<eprof_format::Execution>,
}

struct SamplerState {
    samples: Vec<PowerSample>,
    unwrap: CounterUnwrap,
    last_t: u64,
    errors: u32,
    last_error: Option<String>,
    max_spacing: u64,
}

struct Shared {
    source: Mutex<Box<dyn PowerSource>>,
    state: Mutex<SamplerState>,
    stop: AtomicBool,
    kind: SourceKind,
    clock: Clock,
}

impl Shared {
    /// Take one reading and append it as a sample; returns its timestamp.
    fn sample(&self) -> Option<u64> {
        let mut src = lock(&self.source);
        let r: Result<Reading> = src.read();
        let now = self.clock.now();
        drop(src);
        let mut st = lock(&self.state);
        match r {
            Ok(r) => {
                let t = r.t_ns.unwrap_or(now);
                let sample = match self.kind {
                    SourceKind::Counter => PowerSample {
                        t0_ns: t,
                        t1_ns: t,
                        values: st.unwrap.push(&r),
                    },
                    SourceKind::Sampler | SourceKind::Estimate => PowerSample {
                        t0_ns: r.window_ns.map_or(st.last_t, |w| t.saturating_sub(w)),
                        t1_ns: t,
                        values: r.values,
                    },
                };
                if st.last_t > 0 {
                    st.max_spacing = st.max_spacing.max(t.saturating_sub(st.last_t));
                }
                st.last_t = t;
                st.samples.push(sample);
                st.errors = 0;
                Some(t)
            }
            Err(e) => {
                st.errors += 1;
                st.last_error = Some(match e {
                    Error::Power { message, .. } => message,
                    other => other.to_string(),
                });
                None
            }
        }
    }
}

/// The trace's chunks are encoded at every [`Session::flush`] (every step) but handed
/// to the OS at most this often, and whenever [`WRITE_BUFFER`] fills: a `write` to
/// the file cost 25-45 us on the development VM, which at every SmolLM2 token was
/// 0.4-0.8% of decode at every depth, `off` included. A crash (or `kill -9`) loses at most this much of the run; the file is
/// still a readable prefix. An error or panic that drops the session writes the
/// buffer out.
pub const WRITE_EVERY_NS: u64 = 100_000_000;
/// See [`WRITE_EVERY_NS`].
const WRITE_BUFFER: usize = 1 << 20;

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

/// What the last [`Session::flush`] wrote: everything recorded between the two
/// flushes before it, for live displays ([`Session::last_flush`]). The session keeps
/// it by swapping buffers, so a flush costs no copy.
#[derive(Debug, Default)]
pub struct Flushed {
    pub sections: Vec<Section>,
    pub tokens: Vec<Token>,
    pub spans: SpanTable,
    /// Only the values of this flush (series with none are empty).
    pub metrics: Vec<MetricSeries>,
    pub notes: Vec<Note>,
}

/// A recording in progress.
pub struct Session {
    clock: Clock,
    depth: Depth,
    path: PathBuf,
    writer: Option<TraceWriter<BufWriter<File>>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    boundary_reads: bool,
    desc: PowerSourceDesc,
    sites: Vec<SiteDef>,
    /// Per site, what showing it a tensor does ([`SitePlan`]).
    plan: Vec<SitePlan>,
    probes: Vec<ProbeSlot>,
    spans: SpanTable,
    metrics: Vec<MetricSeries>,
    /// Metric values since the last flush ([`Staged`]).
    staged: Vec<Staged>,
    /// Moments probes' observations since the last flush.
    pending: Vec<PendingMoments>,
    /// Tensors on a GPU that probes want, kept (a reference, no copy) until the flush:
    /// copying one off the device at the site would synchronize the GPU there.
    on_device: Vec<(SiteId, TensorKind, u32, Tensor)>,
    moment_scratch: MomentScratch,
    sections: Vec<Section>,
    tokens: Vec<Token>,
    notes: Vec<Note>,
    last: Flushed,
    samples_written: usize,
    /// When the trace's buffer was last handed to the OS ([`WRITE_EVERY_NS`]); the
    /// first flush always writes.
    last_write_ns: Option<u64>,
    step: u32,
    phase: Phase,
    baseline: Option<IdleBaseline>,
    sync_device: bool,
}

impl Session {
    /// Create the trace file, start the sampler thread, and measure the idle baseline.
    pub fn start(cfg: SessionConfig, source: Box<dyn PowerSource>) -> Result<Session> {
        let SessionConfig {
            mut meta,
            out,
            clock,
            interval,
            idle_baseline,
            cancel,
            boundary_reads,
            sites,
            probes,
            sync_device,
            group,
            execution,
        } = cfg;
        let desc = source.desc();
        meta.power = desc.clone();
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = File::create(&out).map_err(|e| Error::io(&out, e))?;
        let mut writer = TraceWriter::new(BufWriter::with_capacity(WRITE_BUFFER, file), &meta)
            .map_err(|e| trace_err(&out, e))?;
        if let Some(c) = source.channel_sources() {
            writer.channel_sources(&c).map_err(|e| trace_err(&out, e))?;
        }
        if let Some(e) = &execution {
            writer.execution(e).map_err(|e| trace_err(&out, e))?;
        }
        if let Some(g) = &group {
            writer.group(g).map_err(|e| trace_err(&out, e))?;
        }
        writer.sites(&sites).map_err(|e| trace_err(&out, e))?;

        let shared = Arc::new(Shared {
            source: Mutex::new(source),
            state: Mutex::new(SamplerState {
                samples: Vec::with_capacity(1024),
                unwrap: CounterUnwrap::default(),
                last_t: clock.now(),
                errors: 0,
                last_error: None,
                max_spacing: 0,
            }),
            stop: AtomicBool::new(false),
            kind: desc.kind,
            clock,
        });
        // A first reading now, so that even a short run has a reading at both ends.
        if shared.sample().is_none() {
            let msg = lock(&shared.state).last_error.clone().unwrap_or_default();
            // Nothing was recorded: leave no empty trace behind.
            drop(writer);
            let _ = std::fs::remove_file(&out);
            return Err(Error::power(&desc.name, msg));
        }
        let t_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("eprof-sampler".into())
            .spawn(move || sampler_loop(&t_shared, interval))
            .map_err(|e| Error::power(&desc.name, format!("cannot start sampler thread: {e}")))?;

        let depth = meta.settings.depth;
        let probes: Vec<ProbeSlot> = probes
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
        let per_step = sites.len() * 2 + 64;
        let mut s = Session {
            clock,
            depth,
            path: out,
            writer: Some(writer),
            shared,
            thread: Some(thread),
            boundary_reads: boundary_reads && desc.kind == SourceKind::Counter,
            desc,
            plan: vec![SitePlan::default(); sites.len()],
            sites,
            probes,
            spans: SpanTable {
                step: Vec::with_capacity(per_step),
                site: Vec::with_capacity(per_step),
                start_ns: Vec::with_capacity(per_step),
                end_ns: Vec::with_capacity(per_step),
            },
            metrics: Vec::new(),
            staged: Vec::with_capacity(4096),
            pending: Vec::with_capacity(1024),
            on_device: Vec::new(),
            moment_scratch: MomentScratch::default(),
            sections: Vec::new(),
            tokens: Vec::new(),
            notes: Vec::new(),
            last: Flushed::default(),
            samples_written: 0,
            last_write_ns: None,
            step: 0,
            phase: Phase::PreInference,
            baseline: None,
            sync_device,
        };
        s.recompute_wants();
        if !idle_baseline.is_zero() {
            s.measure_baseline(idle_baseline, cancel.as_deref())?;
        }
        Ok(s)
    }

    /// Ask every enabled probe once per site which tensors it wants, so that the hot
    /// path tests bits instead of calling probes (a plugin's `wants` crosses the FFI).
    fn recompute_wants(&mut self) {
        if self.depth == Depth::Off {
            return;
        }
        let sites = &self.sites;
        for p in &mut self.probes {
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
            for (j, slot) in self.probes.iter().enumerate() {
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

    fn measure_baseline(&mut self, d: Duration, cancel: Option<&AtomicBool>) -> Result<()> {
        let start = self.clock.now();
        let until = std::time::Instant::now() + d;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            if cancel.is_some_and(|c| c.load(Ordering::Acquire)) {
                // Cancelled while idle: no baseline (a shortened one would not be the
                // one asked for); the run ends `cancelled` at its first event.
                return Ok(());
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
        let end = self.boundary_or_now();
        let a = Attribution::from_samples(&self.desc, &lock(&self.shared.state).samples);
        let b = IdleBaseline {
            duration_ns: end - start,
            power_w: a.power_w(start, end),
        };
        if let Some(w) = self.writer.as_mut() {
            w.baseline(&b).map_err(|e| trace_err(&self.path, e))?;
        }
        self.baseline = Some(b);
        Ok(())
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn power_desc(&self) -> &PowerSourceDesc {
        &self.desc
    }

    pub fn baseline(&self) -> Option<&IdleBaseline> {
        self.baseline.as_ref()
    }

    /// The instant of a step or phase boundary. Counter sources are read right now,
    /// and the reading's timestamp is the boundary, so that the energy between two
    /// boundaries is an exact counter difference (`measured`).
    pub fn boundary(&mut self) -> u64 {
        self.boundary_or_now()
    }

    fn boundary_or_now(&self) -> u64 {
        if self.boundary_reads
            && let Some(t) = self.shared.sample()
        {
            return t;
        }
        self.clock.now()
    }

    /// The step that spans and metrics are recorded into from now on.
    pub fn set_step(&mut self, step: u32) {
        self.step = step;
    }

    /// The phase that model sections are recorded into from now on.
    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }

    pub fn section(&mut self, phase: Phase, name: &str, step: Option<u32>, start: u64, end: u64) {
        self.sections.push(Section {
            phase,
            name: name.to_string(),
            step,
            start_ns: start,
            end_ns: end,
        });
    }

    pub fn token(&mut self, t: Token) {
        self.tokens.push(t);
    }

    /// A note for the trace and the user.
    pub fn note(&mut self, level: NoteLevel, text: impl Into<String>) {
        self.notes.push(Note {
            t_ns: self.clock.now(),
            level,
            text: text.into(),
        });
    }

    /// The newest power reading per channel (watts for samplers; for counters the
    /// power since the previous reading), for live displays.
    pub fn current_power_w(&self) -> Option<f64> {
        let st = lock(&self.shared.state);
        let n = st.samples.len();
        let total = |s: &PowerSample| self.desc.total_of(&s.values);
        match self.desc.kind {
            SourceKind::Counter => {
                let (a, b) = (st.samples.get(n.checked_sub(2)?)?, st.samples.get(n - 1)?);
                let dt = b.t0_ns.saturating_sub(a.t0_ns) as f64 * 1e-9;
                (dt > 0.0)
                    .then(|| Some((total(b)? - total(a)?) / dt))
                    .flatten()
            }
            _ => total(st.samples.last()?),
        }
    }

    /// Encode everything recorded since the last flush as chunks. Call between steps.
    /// The chunks reach the file at most [`WRITE_EVERY_NS`] later (or at [`Session::finish`]).
    pub fn flush(&mut self) -> Result<()> {
        // GPU tensors the probes wanted, copied off the device now, after the step.
        self.observe_on_device()?;
        // First, as it may write notes (a probe disabled).
        self.observe_pending();
        let Some(w) = self.writer.as_mut() else {
            return Ok(());
        };
        let samples: Vec<PowerSample> = {
            let st = lock(&self.shared.state);
            st.samples[self.samples_written..].to_vec()
        };
        self.samples_written += samples.len();
        let path = &self.path;
        let e = |e| trace_err(path, e);
        w.samples(&samples).map_err(e)?;
        w.sections(&self.sections).map_err(e)?;
        w.tokens(&self.tokens).map_err(e)?;
        w.spans(&self.spans).map_err(e)?;
        settle(&mut self.metrics, &mut self.staged);
        w.metrics(&self.metrics).map_err(e)?;
        w.notes(&self.notes).map_err(e)?;
        let now = self.clock.now();
        if self
            .last_write_ns
            .is_none_or(|t| now.saturating_sub(t) >= WRITE_EVERY_NS)
        {
            w.flush().map_err(e)?;
            self.last_write_ns = Some(now);
        }
        // Keep what was written as the last flush (swap, no copy); reuse the older
        // buffers for the next step.
        let last = &mut self.last;
        std::mem::swap(&mut self.sections, &mut last.sections);
        std::mem::swap(&mut self.tokens, &mut last.tokens);
        std::mem::swap(&mut self.spans, &mut last.spans);
        std::mem::swap(&mut self.notes, &mut last.notes);
        self.sections.clear();
        self.tokens.clear();
        self.spans.clear();
        self.notes.clear();
        for (i, m) in self.metrics.iter_mut().enumerate() {
            if last.metrics.len() <= i {
                last.metrics
                    .push(MetricSeries::new(m.probe.clone(), m.metric.clone()));
            }
            let l = &mut last.metrics[i];
            std::mem::swap(&mut m.step, &mut l.step);
            std::mem::swap(&mut m.site, &mut l.site);
            std::mem::swap(&mut m.value, &mut l.value);
            m.step.clear();
            m.site.clear();
            m.value.clear();
        }
        Ok(())
    }

    /// Show the probes the device tensors kept during the step, each as of the step
    /// it was observed in.
    fn observe_on_device(&mut self) -> Result<()> {
        if self.on_device.is_empty() {
            return Ok(());
        }
        let step = self.step;
        let mut kept = std::mem::take(&mut self.on_device);
        let mut r = Ok(());
        for (site, kind, at, t) in kept.drain(..) {
            self.step = at;
            r = with_host_f32(&t, |view| self.observe_view(site, kind, view)).and_then(|x| x);
            if r.is_err() {
                break;
            }
        }
        self.step = step;
        kept.clear();
        self.on_device = kept;
        r
    }

    /// What the last [`Session::flush`] wrote.
    pub fn last_flush(&self) -> &Flushed {
        &self.last
    }

    /// The power readings from the `from`-th on (all of them from 0), as the trace
    /// stores them.
    pub fn samples_since(&self, from: usize) -> Vec<PowerSample> {
        let st = lock(&self.shared.state);
        st.samples.get(from..).map_or_else(Vec::new, <[_]>::to_vec)
    }

    /// The model's sites; a span's site is an index into them.
    pub fn sites(&self) -> &[SiteDef] {
        &self.sites
    }

    /// Stop sampling, write the rest and the end marker. Returns the trace path.
    pub fn finish(mut self, generated_text: String, stop_reason: String) -> Result<PathBuf> {
        self.stop_sampler();
        // One last reading so the final section has a reading after it.
        self.shared.sample();
        let (errors, last_error) = {
            let st = lock(&self.shared.state);
            (st.errors, st.last_error.clone())
        };
        if let (true, Some(e)) = (errors > 0, last_error) {
            self.note(
                NoteLevel::Warning,
                format!(
                    "power source {} failed {errors} time(s) at the end: {e}",
                    self.desc.name
                ),
            );
        }
        self.flush()?;
        let st = lock(&self.shared.state);
        let mut spacing: Vec<u64> = st
            .samples
            .windows(2)
            .map(|w| w[1].t1_ns.saturating_sub(w[0].t1_ns))
            .collect();
        spacing.sort_unstable();
        let end = RunEnd {
            generated_text,
            stop_reason,
            end_ns: self.clock.now(),
            observed_spacing_ns: spacing.get(spacing.len() / 2).copied().unwrap_or(0),
            max_spacing_ns: st.max_spacing,
            stale_reads: st.unwrap.stale,
        };
        drop(st);
        if let Some(w) = self.writer.take() {
            w.finish(&end).map_err(|e| trace_err(&self.path, e))?;
        }
        Ok(self.path.clone())
    }

    fn stop_sampler(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }

    /// [`Recorder::observe_view`]'s moments probes where more want a site than its
    /// [`SitePlan`] holds: every enabled slot is asked.
    #[inline(never)]
    fn observe_crowded(&mut self, site: SiteId, kind: TensorKind, view: TensorView<'_>) {
        for (i, slot) in self.probes.iter().enumerate() {
            if !slot.enabled || slot.want[site as usize] & kind.bit() == 0 {
                continue;
            }
            if let Some((mm, _)) = &slot.moments {
                self.pending.push(PendingMoments {
                    slot: i as u32,
                    site,
                    step: self.step,
                    m: Moments::of(view.data, mm.threshold),
                });
            }
        }
    }

    /// Show a tensor to the probes that want it and are not moments probes
    /// ([`Recorder::observe_view`] does those).
    #[inline(never)]
    fn show(&mut self, site: SiteId, kind: TensorKind, view: TensorView<'_>) {
        let def = &self.sites[site as usize];
        let step = self.step;
        let at = At {
            phase: self.phase,
            step,
        };
        let mut failures: Vec<(usize, String)> = Vec::new();
        let metrics = &mut self.metrics;
        let staged = &mut self.staged;
        for (i, slot) in self.probes.iter_mut().enumerate() {
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
            let r = catch_unwind(AssertUnwindSafe(|| {
                slot.probe.observe(def, at, kind, view, &mut sink)
            }));
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push((i, e.to_string())),
                Err(p) => failures.push((i, format!("panicked: {}", crate::panic_text(&*p)))),
            }
        }
        for (i, why) in failures {
            self.disable_probe(i, why);
        }
    }

    /// The metrics of the moments probes' observations since the last flush, in the
    /// order the tensors were shown. Probe by probe: its values for every observation
    /// into one buffer, then each of its series extended by whole columns (the steps
    /// and sites copied, the values strided): about half the instructions of pushing
    /// value by value into the series' three columns (callgrind, per SmolLM2 token).
    fn observe_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let MomentScratch {
            mut values,
            mut steps,
            mut sites,
        } = std::mem::take(&mut self.moment_scratch);
        let mut failures: Vec<(usize, String)> = Vec::new();
        for (i, slot) in self.probes.iter_mut().enumerate() {
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
                match catch_unwind(AssertUnwindSafe(|| probe.moment_values(&p.m, out))) {
                    Ok(Ok(())) => done += 1,
                    Ok(Err(e)) => {
                        failures.push((i, e.to_string()));
                        break;
                    }
                    Err(p) => {
                        failures.push((i, format!("panicked: {}", crate::panic_text(&*p))));
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
        for (i, why) in failures {
            self.disable_probe(i, why);
        }
        // The buffers go back, emptied, to be reused at the next flush.
        self.pending = pending;
        self.pending.clear();
        self.moment_scratch = MomentScratch {
            values,
            steps,
            sites,
        };
    }

    /// Disable a probe after a failure, telling the user and the trace.
    fn disable_probe(&mut self, i: usize, why: String) {
        let name = self.probes[i].name.clone();
        self.probes[i].enabled = false;
        let msg = format!(
            "probe {name} disabled for the rest of the run at step {}: {why}",
            self.step
        );
        // Not printed: notes reach the user through the run's events and the trace.
        self.note(NoteLevel::Warning, msg);
        self.recompute_wants();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_sampler();
        // An unfinished session still leaves every flushed chunk readable.
        if let Some(mut w) = self.writer.take() {
            let _ = w.flush();
        }
    }
}

fn sampler_loop(shared: &Shared, interval: Duration) {
    const MAX_CONSECUTIVE_ERRORS: u32 = 20;
    let mut next = shared.clock.now() + interval.as_nanos() as u64;
    while !shared.stop.load(Ordering::Acquire) {
        let now = shared.clock.now();
        if now < next {
            std::thread::park_timeout(Duration::from_nanos(next - now));
            continue;
        }
        next += interval.as_nanos() as u64;
        if next < now {
            next = now + interval.as_nanos() as u64;
        }
        shared.sample();
        if lock(&shared.state).errors >= MAX_CONSECUTIVE_ERRORS {
            return;
        }
    }
}

fn trace_err(path: &Path, e: eprof_format::FormatError) -> Error {
    Error::Trace {
        path: path.to_path_buf(),
        source: e,
    }
}

impl Recorder for Session {
    fn depth(&self) -> Depth {
        self.depth
    }

    #[inline]
    fn now(&self) -> u64 {
        self.clock.now()
    }

    #[inline]
    fn span(&mut self, site: SiteId, start_ns: u64, end_ns: u64) {
        self.spans.push(self.step, site, start_ns, end_ns);
    }

    #[inline]
    fn wants(&self, site: SiteId, kind: TensorKind) -> bool {
        self.plan
            .get(site as usize)
            .is_some_and(|p| p.want & kind.bit() != 0)
    }

    fn observe(&mut self, site: SiteId, kind: TensorKind, t: &Tensor) -> Result<()> {
        if !self.wants(site, kind) {
            return Ok(());
        }
        if !t.device().is_cpu() {
            self.on_device.push((site, kind, self.step, t.clone()));
            return Ok(());
        }
        with_host_f32(t, |view| self.observe_view(site, kind, view))?
    }

    fn observe_view(&mut self, site: SiteId, kind: TensorKind, view: TensorView<'_>) -> Result<()> {
        let Some(&plan) = self.plan.get(site as usize) else {
            return Ok(());
        };
        let bit = kind.bit();
        if plan.want & bit == 0 {
            return Ok(());
        }
        if plan.n == SitePlan::CROWDED {
            self.observe_crowded(site, kind, view);
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
                    step: self.step,
                    m,
                });
            }
        }
        if plan.others & bit != 0 {
            self.show(site, kind, view);
        }
        Ok(())
    }

    fn value(&mut self, site: SiteId, probe: &'static str, metric: &'static str, v: f32) {
        let series = series_index(&mut self.metrics, probe, metric) as u32;
        self.staged.push(Staged {
            series,
            step: self.step,
            site,
            value: v,
        });
    }

    fn section(&mut self, name: &'static str, start_ns: u64, end_ns: u64) {
        self.section(self.phase, name, Some(self.step), start_ns, end_ns);
    }

    fn sync_device(&self) -> bool {
        self.sync_device
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
