//! [`Profiler`]: what `eprof record`, `eprof serve` and the benchmarks call to
//! record one prompt.

use std::path::{Path, PathBuf};
use std::time::Duration;

use eprof_core::paths::DataDir;
use eprof_core::plugin_host::{Plugin, plugin_files};
use eprof_core::probe::ProbeOptions;
use eprof_core::{Clock, LoadedModel, PowerSource, Probe, Registry, Session, SessionConfig};
use eprof_format::{Depth, NoteLevel, RunMeta, Settings, StopReason, Summary, Trace};
use eprof_index::Index;
use eprof_models::pipeline::{GenerateOptions, generate};
use eprof_models::sampling::SamplingConfig;

use crate::catalog::{ModelCatalog, models_in_ext};
use crate::error::{ErrorKind, RecordError, Result};
use crate::event::{Live, RunSink, error_event};
use crate::power::{PowerSourceInfo, open_power, power_sources};
use crate::request::{ModelChoice, PowerSpec, ProbeSelection, RecordRequest};
use eprof_format::DeviceSpec;
use eprof_format::live::{RunEvent, RunStarted};

/// The registry of built-in parts, the loaded plugins and the data directory: made
/// once per process, then used for any number of runs.
pub struct Profiler {
    data: DataDir,
    registry: Registry,
    plugins: Vec<Plugin>,
    catalog: ModelCatalog,
    warnings: Vec<String>,
}

/// A loaded model, ready for any number of runs.
pub struct ModelHandle {
    pub loaded: LoadedModel,
    pub path: PathBuf,
    pub device: DeviceSpec,
    /// How the model was chosen, for the user (empty when given explicitly).
    pub origin: String,
}

/// A finished run.
#[derive(Debug)]
pub struct RecordedRun {
    pub id: String,
    pub path: PathBuf,
    pub bytes: usize,
    pub trace: Trace,
    pub summary: Summary,
    pub stop_reason: StopReason,
}

/// A fresh run id: 16 hex digits from the time and the process id.
pub fn new_run_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut z = t ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    format!("{:016x}", z ^ (z >> 31))
}

/// Whether `s` can be a run id or id prefix: 1 to 64 ASCII letters, digits, `-`, `_`
/// (no path separators, no dots).
pub fn is_valid_run_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Profiler {
    /// Discover the built-in parts and load the plugins: every path in `plugin_paths`
    /// (an error if one fails), then `EPROF_PLUGIN_PATH` and the data directory's
    /// plugins/ (a warning if one fails, so one broken file there does not stop
    /// every command). Probe names must be unique across built-ins and plugins.
    pub fn new(data: DataDir, plugin_paths: &[PathBuf]) -> Result<Profiler> {
        let registry = Registry::discover()?;
        let mut plugins: Vec<Plugin> = Vec::new();
        let mut warnings = Vec::new();
        for path in plugin_files(plugin_paths, &data.plugins()) {
            match Plugin::load(&path) {
                Ok(p) => plugins.push(p),
                Err(e) if plugin_paths.contains(&path) => return Err(e.into()),
                Err(e) => warnings.push(format!("skipping plugin: {e}")),
            }
        }
        let mut seen: Vec<(String, String)> = registry
            .probes
            .iter()
            .map(|p| (p.name.to_string(), format!("built-in ({})", p.origin)))
            .collect();
        for p in &plugins {
            for probe in &p.probes {
                if let Some((_, first)) = seen.iter().find(|(n, _)| *n == probe.name) {
                    return Err(RecordError::bad_request(format!(
                        "two probes are named {:?}: one from {first}, one from {}; rename one",
                        probe.name,
                        p.path.display()
                    )));
                }
                seen.push((probe.name.clone(), p.path.display().to_string()));
            }
        }
        Ok(Profiler {
            catalog: ModelCatalog {
                data: data.clone(),
                extra: Vec::new(),
            },
            data,
            registry,
            plugins,
            warnings,
        })
    }

    pub fn data(&self) -> &DataDir {
        &self.data
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// Warnings from setting up (plugins skipped), for the front end to show once.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Make a model known by its path (it is then listed and chosen by id).
    pub fn add_model(&mut self, path: PathBuf) {
        if !self.catalog.extra.contains(&path) {
            self.catalog.extra.push(path);
        }
    }

    pub fn catalog(&self) -> &ModelCatalog {
        &self.catalog
    }

    /// The model [`ModelChoice::Default`] picks, and why (for the user).
    pub fn default_model(&self) -> (PathBuf, String) {
        self.catalog.default_model()
    }

    /// Every name a request may give in [`ProbeSelection::Only`]: built-in and plugin
    /// probes.
    pub fn probe_names(&self) -> Vec<String> {
        let builtin = self.registry.probes.iter().map(|p| p.name.to_string());
        let plugins = self
            .plugins
            .iter()
            .flat_map(|p| p.probes.iter().map(|x| x.name.clone()));
        builtin.chain(plugins).collect()
    }

    /// What a front end refuses before loading a model: [`RecordRequest::check`], and a
    /// power source or probe this profiler does not have (the message lists those it
    /// has).
    pub fn check(&self, req: &RecordRequest) -> Result<()> {
        req.check()?;
        eprof_models::check_kernel_env().map_err(RecordError::bad_request)?;
        let power: Vec<&str> = self.registry.power.iter().map(|p| p.name).collect();
        if req.power.name != "auto" && !power.contains(&req.power.name.as_str()) {
            return Err(RecordError::bad_request(format!(
                "unknown power source {:?}; known: auto, {} (see `eprof power list`)",
                req.power.name,
                power.join(", ")
            )));
        }
        // The trace's folder exists (created, as for the data directory's) before
        // a model is loaded, so a bad path costs no load.
        if let Some(p) = &req.out {
            let dir = if is_folder(p) {
                p.as_path()
            } else {
                p.parent().unwrap_or(Path::new(""))
            };
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    RecordError::bad_request(format!(
                        "cannot create the folder {} for the trace: {e}",
                        dir.display()
                    ))
                })?;
            }
        }
        if let ProbeSelection::Only(names) = &req.probes {
            let known = self.probe_names();
            if let Some(bad) = names.iter().find(|n| !known.contains(n)) {
                return Err(RecordError::bad_request(format!(
                    "unknown probe {bad:?}; known: {}",
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Where the trace of run `id` is written: `req.out`, or a file named for the run
    /// in it when it names a folder (one that exists, or a path ending in `/`), or the
    /// data directory's `traces/`.
    pub fn trace_out(&self, req: &RecordRequest, id: &str) -> PathBuf {
        match &req.out {
            None => self.data.trace_path(id),
            Some(p) if is_folder(p) => p.join(format!("{id}.eprof")),
            Some(p) => p.clone(),
        }
    }

    /// Load a model onto a device.
    pub fn load_model(&self, choice: &ModelChoice, device: DeviceSpec) -> Result<ModelHandle> {
        let (path, origin) = self.catalog.resolve_model(choice)?;
        let src = eprof_models::load::detect(&path)?;
        let adapter = self.registry.adapter_for(&src)?;
        let dev = candle_device(device)?;
        // A file that makes a loader panic is an error naming it, not a dead thread.
        let mut loaded =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| adapter.load(&src, &dev)))
                .unwrap_or_else(|p| {
                    Err(eprof_core::Error::model(
                        path.display().to_string(),
                        format!("loading panicked: {}", eprof_core::panic_text(p.as_ref())),
                    ))
                })?;
        loaded.identity.file_hash = model_hash(&path)?;
        Ok(ModelHandle {
            loaded,
            path,
            device,
            origin,
        })
    }

    /// Every power source and whether it can be used here.
    pub fn power_sources(&self) -> Vec<PowerSourceInfo> {
        power_sources(&self.registry)
    }

    /// Open a power source; the second value says what `auto` picked.
    pub fn open_power(
        &self,
        spec: &PowerSpec,
        clock: Clock,
        interval: Duration,
    ) -> Result<(Box<dyn PowerSource>, Option<String>)> {
        open_power(&self.registry, spec, clock, interval)
    }

    /// The probes of a request: built-ins by depth and every plugin probe, or the
    /// ones named.
    fn probes(&self, req: &RecordRequest) -> Result<Vec<Box<dyn Probe>>> {
        let opts = ProbeOptions {
            sparsity_threshold: req.sparsity_threshold,
        };
        let plugin_probes: Vec<_> = self.plugins.iter().flat_map(|p| &p.probes).collect();
        let mut probes: Vec<Box<dyn Probe>> = Vec::new();
        if req.depth == Depth::Off {
            return Ok(probes);
        }
        match &req.probes {
            ProbeSelection::None => {}
            ProbeSelection::Default => {
                for p in self
                    .registry
                    .probes
                    .iter()
                    .filter(|p| p.min_depth <= req.depth)
                {
                    probes.push((p.create)(&opts));
                }
                for p in &plugin_probes {
                    probes.push(p.instantiate()?);
                }
            }
            ProbeSelection::Only(names) => {
                for name in names {
                    match plugin_probes.iter().find(|p| &p.name == name) {
                        Some(p) => probes.push(p.instantiate()?),
                        None => probes.push((self.registry.probe(name)?.create)(&opts)),
                    }
                }
            }
        }
        Ok(probes)
    }

    /// Record one prompt on a loaded model: write the trace, index it (unless the
    /// request says not to), and send every [`RunEvent`] to `sink`, from
    /// `run_started` to `inference_complete` (or `error`). `id` is the run's id
    /// ([`new_run_id`]).
    pub fn record(
        &self,
        model: &mut ModelHandle,
        req: &RecordRequest,
        id: &str,
        sink: &mut dyn RunSink,
    ) -> Result<RecordedRun> {
        // A panic anywhere in the run (a model, a probe, a power source) ends this run
        // as an error, not the caller's thread: the server's recording thread carries
        // on with the next run. The partial trace is closed as an error and indexed.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.record_inner(model, req, id, sink)
        }))
        .unwrap_or_else(|p| {
            let what = eprof_core::panic_text(p.as_ref());
            let out = self.trace_out(req, id);
            let kept = self.close_as_error(&out, &format!("panic: {what}"), req.index);
            let mut e = RecordError::new(
                ErrorKind::Model,
                format!(
                    "the run panicked: {what}{}",
                    match kept {
                        Ok(()) => format!(" (its partial trace is at {})", out.display()),
                        Err(k) => format!(" (its trace could not be kept: {k})"),
                    }
                ),
            );
            e.panicked = true;
            Err(e)
        });
        if let Err(e) = &r {
            let _ = sink.event(&error_event(id, e));
        }
        r
    }

    /// A trace whose run died: what it holds, closed with `stop_reason` `error: WHY`
    /// (rewritten whole, through a temporary file) and indexed when asked.
    fn close_as_error(&self, path: &Path, why: &str, index: bool) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| {
            RecordError::new(
                ErrorKind::Io,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let mut trace = eprof_format::decode(&bytes)?.trace;
        if trace.end.is_none() {
            let last = trace
                .samples
                .iter()
                .map(|s| s.t1_ns)
                .chain(trace.sections.iter().map(|s| s.end_ns))
                .chain(trace.spans.end_ns.iter().copied())
                .max()
                .unwrap_or(0);
            trace.end = Some(eprof_format::RunEnd {
                generated_text: trace
                    .tokens
                    .iter()
                    .filter(|t| t.step.is_some())
                    .map(|t| t.text.as_str())
                    .collect(),
                stop_reason: eprof_format::RunStop::Error(why.to_string()),
                end_ns: last,
                observed_spacing_ns: eprof_format::attribution::median_spacing(&trace),
                max_spacing_ns: 0,
                stale_reads: 0,
            });
        }
        let bytes = eprof_format::try_encode(&trace)?;
        let tmp = path.with_extension("eprof.tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                RecordError::new(
                    ErrorKind::Io,
                    format!("cannot write {}: {e}", path.display()),
                )
            })?;
        if index {
            Index::open(&self.data.index())?.insert(&trace, path, false)?;
        }
        Ok(())
    }

    fn record_inner(
        &self,
        model: &mut ModelHandle,
        req: &RecordRequest,
        id: &str,
        sink: &mut dyn RunSink,
    ) -> Result<RecordedRun> {
        req.check()?;
        if !is_valid_run_id(id) {
            return Err(RecordError::bad_request(format!("invalid run id {id:?}")));
        }
        let probes = self.probes(req)?;
        let probe_names: Vec<String> = probes.iter().map(|p| p.name().to_string()).collect();
        let clock = Clock::start();
        let interval = Duration::from_millis(req.power_interval_ms.max(1));
        let (source, why) = self.open_power(&req.power, clock, interval)?;
        let notices: Vec<String> = why.into_iter().chain(source.notice()).collect();

        let loaded = &mut model.loaded;
        let chat = !req.raw && loaded.tokenizer.has_chat_template();
        let out = self.trace_out(req, id);
        let meta = RunMeta {
            id: id.to_string(),
            created_at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            prompt: req.prompt.clone(),
            model: loaded.identity.clone(),
            settings: Settings {
                depth: req.depth,
                max_tokens: req.max_tokens,
                temperature: req.temperature,
                top_k: req.top_k,
                top_p: req.top_p,
                seed: req.seed,
                chat_template: chat,
                device: model.device,
                power_interval_ms: req.power_interval_ms as u32,
                idle_baseline_ms: req.idle_ms as u32,
                probes: probe_names,
                sparsity_threshold: f64::from(req.sparsity_threshold),
            },
            machine: eprof_core::machine::detect(),
            power: source.desc(),
            software: format!("eprof {}", env!("CARGO_PKG_VERSION")),
            tags: req.tags.clone(),
            experiment: req.experiment.clone(),
        };
        let cancel = sink.cancel_flag();
        let mut live = Live::new(sink, meta.power.clone());
        live.send(RunEvent::RunStarted(Box::new(RunStarted {
            run_id: id.to_string(),
            prompt: meta.prompt.clone(),
            model: meta.model.clone(),
            settings: meta.settings.clone(),
            power: meta.power.clone(),
            machine: meta.machine.clone(),
            tags: meta.tags.clone(),
            experiment: meta.experiment.clone(),
        })));
        for text in notices {
            live.send(RunEvent::Note {
                level: NoteLevel::Info,
                text,
            });
        }
        let sites = loaded.model.sites().to_vec();
        let sync_device = !model.device.is_cpu();
        let mut session = Session::start(
            SessionConfig {
                meta,
                out,
                clock,
                interval,
                idle_baseline: Duration::from_millis(req.idle_ms),
                cancel,
                boundary_reads: true,
                sites,
                probes,
                sync_device,
                group: req.group.clone(),
                execution: Some(eprof_models::execution(!model.device.is_cpu())),
            },
            source,
        )?;
        if req.depth == Depth::Deep {
            session.note(
                NoteLevel::Info,
                "attention dropout is the identity at inference: it is not an operation and has no timing",
            );
        }
        let opts = GenerateOptions {
            max_tokens: req.max_tokens,
            sampling: SamplingConfig {
                temperature: req.temperature,
                top_k: req.top_k,
                top_p: req.top_p,
                seed: req.seed,
            },
            chat,
        };
        let generation = generate(loaded, &mut session, &req.prompt, &opts, &mut live);
        let (text, stop_reason) = match generation {
            Ok(g) => (g.text, g.stop_reason),
            Err(e) => {
                let path =
                    session.finish(String::new(), eprof_format::RunStop::Error(e.to_string()))?;
                return Err(RecordError::new(
                    ErrorKind::Model,
                    format!(
                        "generation failed: {e} (the partial trace is at {})",
                        path.display()
                    ),
                ));
            }
        };
        let path = session.finish(text.clone(), stop_reason.into())?;
        let bytes = std::fs::read(&path).map_err(|e| {
            RecordError::new(
                ErrorKind::Io,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let trace = eprof_format::decode_complete(&bytes)?;
        if req.index {
            let mut idx = Index::open(&self.data.index())?;
            idx.insert(&trace, &path, false)?;
        }
        let en = eprof_format::Energies::compute(&trace);
        let summary = Summary::compute(&trace, &en);
        live.send(RunEvent::InferenceComplete {
            run_id: id.to_string(),
            trace: path.display().to_string(),
            stop_reason,
            generated_text: text,
            summary: Box::new(summary.clone()),
        });
        Ok(RecordedRun {
            id: id.to_string(),
            path,
            bytes: bytes.len(),
            trace,
            summary,
            stop_reason,
        })
    }
}

/// The candle device of a [`DeviceSpec`], with a hint when this build or machine
/// cannot open it.
pub fn candle_device(d: DeviceSpec) -> Result<candle_core::Device> {
    let model_err = |e: candle_core::Error, hint: &str| {
        RecordError::new(ErrorKind::Model, format!("device {d}: {e}")).with_hint(hint)
    };
    match d {
        DeviceSpec::Cpu => Ok(candle_core::Device::Cpu),
        DeviceSpec::Metal => candle_core::Device::new_metal(0).map_err(|e| {
            model_err(
                e,
                "--device metal needs eprof built with --features metal on a Mac",
            )
        }),
        DeviceSpec::Cuda(n) => candle_core::Device::new_cuda(n).map_err(|e| {
            model_err(
                e,
                "--device cuda needs eprof built with --features cuda and an NVIDIA driver",
            )
        }),
    }
}

/// SHA-256 of the model's weight files (one GGUF, or a folder's safetensors).
fn model_hash(path: &Path) -> Result<String> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| {
            RecordError::new(ErrorKind::Io, format!("cannot read {}: {e}", p.display()))
        })
    };
    if path.is_file() {
        return Ok(eprof_index::sha256_hex(&read(path)?));
    }
    if !path.is_dir() {
        return Ok(String::new());
    }
    let mut all = String::new();
    for f in models_in_ext(path, "safetensors") {
        all.push_str(&eprof_index::sha256_hex(&read(&f)?));
    }
    Ok(eprof_index::sha256_hex(all.as_bytes()))
}

/// Whether an output path names a folder: one that exists, or a path ending in a
/// separator.
fn is_folder(p: &Path) -> bool {
    p.is_dir()
        || p.as_os_str()
            .to_string_lossy()
            .ends_with(std::path::MAIN_SEPARATOR)
}
