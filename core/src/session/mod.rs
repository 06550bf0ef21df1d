//! A recording session: owns the clock, the power sampler thread, the span and metric
//! buffers, the probes, and the streaming trace writer.
//!
//! Hot path (measured by `cargo bench -p eprof-probes --bench record`): `span` is a
//! push into four preallocated columns; `now` is one monotonic clock read. Buffers are
//! written out as chunks between steps ([`Session::flush`]), never inside one.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use eprof_format::sync::lock;
use std::thread::JoinHandle;
use std::time::Duration;

use candle_core::Tensor;
use eprof_format::{
    Attribution, Depth, GroupRef, IdleBaseline, MetricSeries, Note, NoteLevel, Phase, PowerSample,
    PowerSourceDesc, RunEnd, RunMeta, RunStop, Section, SiteDef, SourceKind, SpanTable, Token,
    TraceWriter,
};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::power::{CounterUnwrap, PowerSource};
use crate::probe::{At, Probe, TensorKind, TensorView, with_host_f32};
use crate::recorder::{Recorder, SiteId};

mod probes;
mod sampler;

use probes::ProbeHost;
use sampler::{SamplerState, Shared, sampler_loop};

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

/// The trace's chunks are encoded at every [`Session::flush`] (every step) but handed
/// to the OS at most this often, and whenever [`WRITE_BUFFER`] fills: a `write` to
/// the file cost 25-45 us on the development VM, which at every SmolLM2 token was
/// 0.4-0.8% of decode at every depth, `off` included. A crash (or `kill -9`) loses at most this much of the run; the file is
/// still a readable prefix. An error or panic that drops the session writes the
/// buffer out.
pub const WRITE_EVERY_NS: u64 = 100_000_000;
/// See [`WRITE_EVERY_NS`].
const WRITE_BUFFER: usize = 1 << 20;

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
    probes: ProbeHost,
    spans: SpanTable,
    /// Tensors on a GPU that probes want, kept (a reference, no copy) until the flush:
    /// copying one off the device at the site would synchronize the GPU there.
    on_device: Vec<(SiteId, TensorKind, u32, Tensor)>,
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
        let probes = ProbeHost::new(probes, sites.len());
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
            sites,
            probes,
            spans: SpanTable {
                step: Vec::with_capacity(per_step),
                site: Vec::with_capacity(per_step),
                start_ns: Vec::with_capacity(per_step),
                end_ns: Vec::with_capacity(per_step),
            },
            on_device: Vec::new(),
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
        s.probes.recompute_wants(&s.sites, s.depth);
        if !idle_baseline.is_zero() {
            s.measure_baseline(idle_baseline, cancel.as_deref())?;
        }
        Ok(s)
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
        let failures = self.probes.observe_pending();
        self.disable_probes(failures);
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
        self.probes.settle();
        w.metrics(&self.probes.metrics).map_err(e)?;
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
        for (i, m) in self.probes.metrics.iter_mut().enumerate() {
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
    pub fn finish(mut self, generated_text: String, stop_reason: RunStop) -> Result<PathBuf> {
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

    /// Disable the probes that failed, saying so in a note each, and ask the others'
    /// wants again.
    fn disable_probes(&mut self, failures: Vec<(usize, String)>) {
        if failures.is_empty() {
            return;
        }
        for (i, why) in failures {
            let msg = self.probes.disable(i, &why, self.step);
            // Not printed: notes reach the user through the run's events and the trace.
            self.note(NoteLevel::Warning, msg);
        }
        self.probes.recompute_wants(&self.sites, self.depth);
    }

    fn stop_sampler(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
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
        self.probes.wants(site, kind)
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
        let Some(def) = self.sites.get(site as usize) else {
            return Ok(());
        };
        let at = At {
            phase: self.phase,
            step: self.step,
        };
        let failures = self.probes.observe(def, at, site, kind, view);
        self.disable_probes(failures);
        Ok(())
    }

    fn value(&mut self, site: SiteId, probe: &'static str, metric: &'static str, v: f32) {
        self.probes.value(self.step, site, probe, metric, v);
    }

    fn section(&mut self, name: &'static str, start_ns: u64, end_ns: u64) {
        self.section(self.phase, name, Some(self.step), start_ns, end_ns);
    }

    fn sync_device(&self) -> bool {
        self.sync_device
    }
}
