//! `eprof record`: resolve the model, pick the adapter, open the power source, run the
//! pipeline under a session, write the trace, index it, print a summary.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use eprof_core::paths::DataDir;
use eprof_core::power::SourceOptions;
use eprof_core::probe::ProbeOptions;
use eprof_core::{Clock, Index, Registry, Session, SessionConfig};
use eprof_format::{Depth, RunMeta, Settings};
use eprof_models::pipeline::{GenerateOptions, StepEvent, generate};
use eprof_models::sampling::SamplingConfig;

use crate::fmt;

#[derive(Args)]
pub struct RecordArgs {
    /// The prompt
    pub prompt: String,
    /// A .gguf file or Hugging Face folder [default: $EPROF_MODEL, then the data
    /// directory's models/, then the Hugging Face cache, then the built-in tiny model]
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Power source: auto, estimate, synthetic[:w=10,mode=sampler,...], ...
    #[arg(long, default_value = "auto")]
    pub power: String,
    /// Milliseconds between power readings
    #[arg(long, default_value_t = 100)]
    pub power_interval: u64,
    /// Milliseconds of idle measurement before the run (0 disables the baseline)
    #[arg(long, default_value_t = 500)]
    pub idle_ms: u64,
    /// off: phases and tokens; module: + layers and components; deep: + attention ops
    #[arg(long, default_value = "module")]
    pub depth: Depth,
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
    /// 0 is greedy
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    #[arg(long)]
    pub top_k: Option<u32>,
    #[arg(long)]
    pub top_p: Option<f64>,
    #[arg(long, default_value_t = 299_792_458)]
    pub seed: u64,
    /// Send the prompt as is, without the model's chat template
    #[arg(long)]
    pub raw: bool,
    /// Only these probes (repeatable) [default: every probe the depth allows]
    #[arg(long = "probe", value_name = "NAME")]
    pub probes: Vec<String>,
    /// No probes at all
    #[arg(long, conflicts_with = "probes")]
    pub no_probes: bool,
    /// |x| below this counts as zero in sparsity metrics
    #[arg(long, default_value_t = 0.01)]
    pub sparsity_threshold: f32,
    /// Tag the run (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    #[arg(long)]
    pub experiment: Option<String>,
    /// Write the trace here [default: the data directory's traces/]
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Do not add the run to the index
    #[arg(long)]
    pub no_index: bool,
    /// Print the run's summary as JSON instead of text
    #[arg(long)]
    pub json: bool,
    /// Do not stream tokens to the terminal
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// cpu, cuda[:N] or metal (GPU devices need eprof built with --features cuda or
    /// metal; spans then synchronize the device, which --depth off avoids)
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Where the model comes from when `--model` is not given.
pub fn default_model(data: &DataDir) -> (PathBuf, String) {
    if let Some(p) = std::env::var_os("EPROF_MODEL").filter(|p| !p.is_empty()) {
        return (PathBuf::from(p), "from $EPROF_MODEL".into());
    }
    if let Some(p) = first_model_in(&data.models()) {
        return (p, format!("from {}", data.models().display()));
    }
    if let Some(p) = hf_cache_model() {
        return (p, "from the Hugging Face cache".into());
    }
    (
        PathBuf::from(eprof_models::load::BUILTIN_TINY),
        "no model found: using the built-in tiny Llama with random weights (its numbers are real, its text is noise); run scripts/fetch-model.sh for SmolLM2".into(),
    )
}

fn first_model_in(dir: &Path) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf") || p.join("config.json").exists())
        .collect();
    entries.sort();
    entries.into_iter().next()
}

fn hf_cache_model() -> Option<PathBuf> {
    let root = std::env::var_os("HF_HUB_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
        })?;
    let mut repos: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("models--"))
        })
        .collect();
    repos.sort();
    for r in repos {
        let Ok(snaps) = std::fs::read_dir(r.join("snapshots")) else {
            continue;
        };
        for s in snaps.filter_map(|e| e.ok().map(|e| e.path())) {
            if s.join("config.json").exists() && s.join("tokenizer.json").exists() {
                return Some(s);
            }
            if let Some(g) = first_model_in(&s) {
                return Some(g);
            }
        }
    }
    None
}

/// A fresh run id: 16 hex digits from the time and the process id.
pub fn new_run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut z = t ^ (u64::from(std::process::id()) << 32);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    format!("{:016x}", z ^ (z >> 31))
}

/// SHA-256 of the model's weight files (one GGUF, or a folder's safetensors).
fn model_hash(path: &Path) -> anyhow::Result<String> {
    if path.is_file() {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(eprof_core::index::sha256_hex(&bytes));
    }
    if !path.is_dir() {
        return Ok(String::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    let mut all = String::new();
    for f in files {
        all.push_str(&eprof_core::index::sha256_hex(&std::fs::read(&f)?));
    }
    Ok(eprof_core::index::sha256_hex(all.as_bytes()))
}

pub fn open_power(
    reg: &Registry,
    spec: &str,
    clock: Clock,
    interval: Duration,
) -> anyhow::Result<(Box<dyn eprof_core::PowerSource>, Option<String>)> {
    let (name, args) = SourceOptions::parse_spec(spec)?;
    let (entry, why) = if name == "auto" {
        let (e, why) = reg.auto_power()?;
        (e, Some(format!("power: auto picked {why}")))
    } else {
        (reg.power_source(&name)?, None)
    };
    let mut opts = SourceOptions::new(clock, interval);
    opts.args = args;
    let src = (entry.open)(&opts)?;
    Ok((src, why))
}

pub fn run(data: &DataDir, plugin_paths: &[PathBuf], a: RecordArgs) -> anyhow::Result<ExitCode> {
    let reg = Registry::discover()?;
    let plugins = crate::plugins::load(data, plugin_paths, &reg)?;
    let (model_path, origin) = match &a.model {
        Some(p) => (p.clone(), String::new()),
        None => default_model(data),
    };
    if !origin.is_empty() {
        eprintln!("model: {} ({origin})", model_path.display());
    }
    let src = eprof_models::load::detect(&model_path)?;
    let adapter = reg.adapter_for(&src)?;
    let device = match a.device.as_str() {
        "cpu" => candle_core::Device::Cpu,
        "metal" => candle_core::Device::new_metal(0)
            .context("--device metal needs eprof built with --features metal on a Mac")?,
        d if d.starts_with("cuda") => {
            let n: usize = d
                .strip_prefix("cuda:")
                .map_or(Ok(0), str::parse)
                .context("--device cuda:N takes a GPU index")?;
            candle_core::Device::new_cuda(n).context(
                "--device cuda needs eprof built with --features cuda and an NVIDIA driver",
            )?
        }
        other => bail!("unknown device {other:?}: use cpu, cuda[:N] or metal"),
    };
    let mut loaded = adapter.load(&src, &device)?;
    loaded.identity.file_hash = model_hash(&model_path)?;

    let depth = a.depth;
    let probe_opts = ProbeOptions {
        sparsity_threshold: a.sparsity_threshold,
    };
    // Built-in probes by depth and every loaded plugin probe, unless --probe chooses.
    let plugin_probes: Vec<&eprof_core::plugin_host::PluginProbeInfo> =
        plugins.iter().flat_map(|p| &p.probes).collect();
    let mut probes: Vec<Box<dyn eprof_core::Probe>> = Vec::new();
    if !a.no_probes && depth != Depth::Off {
        if a.probes.is_empty() {
            for p in reg
                .probes
                .iter()
                .filter(|p| p.min_depth as u8 <= depth as u8)
            {
                probes.push((p.create)(&probe_opts));
            }
            for p in &plugin_probes {
                probes.push(p.instantiate()?);
            }
        } else {
            for name in &a.probes {
                match plugin_probes.iter().find(|p| &p.name == name) {
                    Some(p) => probes.push(p.instantiate()?),
                    None => probes.push((reg.probe(name)?.create)(&probe_opts)),
                }
            }
        }
    }
    let probe_names: Vec<String> = probes.iter().map(|p| p.name().to_string()).collect();

    let clock = Clock::start();
    let interval = Duration::from_millis(a.power_interval.max(1));
    let (source, why) = open_power(&reg, &a.power, clock, interval)?;
    if let Some(w) = why {
        eprintln!("{w}");
    }
    if let Some(n) = source.notice() {
        eprintln!("{n}");
    }

    let chat = !a.raw && loaded.tokenizer.chat_prompt("").is_some();
    let id = new_run_id();
    let out = a.out.clone().unwrap_or_else(|| data.trace_path(&id));
    let meta = RunMeta {
        id: id.clone(),
        created_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        prompt: a.prompt.clone(),
        model: loaded.identity.clone(),
        settings: Settings {
            depth,
            max_tokens: a.max_tokens,
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            seed: a.seed,
            chat_template: chat,
            device: a.device.clone(),
            power_interval_ms: a.power_interval as u32,
            idle_baseline_ms: a.idle_ms as u32,
            probes: probe_names,
            sparsity_threshold: f64::from(a.sparsity_threshold),
        },
        machine: eprof_core::machine::detect(),
        power: source.desc(),
        software: format!("eprof {}", env!("CARGO_PKG_VERSION")),
        tags: a.tags.clone(),
        experiment: a.experiment.clone(),
    };
    let sites = loaded.model.sites().to_vec();
    let mut session = Session::start(
        SessionConfig {
            meta,
            out: out.clone(),
            clock,
            interval,
            idle_baseline: Duration::from_millis(a.idle_ms),
            boundary_reads: true,
            sites,
            probes,
            sync_device: !device.is_cpu(),
        },
        source,
    )?;
    if depth == Depth::Deep {
        session.note(
            eprof_format::NoteLevel::Info,
            "attention dropout is the identity at inference: it is not an operation and has no timing",
        );
    }

    let live = !a.quiet && std::io::stderr().is_terminal();
    let stream = !a.quiet && !a.json;
    let mut stdout = std::io::stdout();
    let mut on_step = |e: &StepEvent<'_>| {
        if stream {
            let _ = write!(stdout, "{}", e.text);
            let _ = stdout.flush();
        }
        if live {
            eprint!(
                "\r\x1b[2K\x1b[7m step {:>4}  {}  {}  {} \x1b[0m\r",
                e.step,
                e.decode_tokens_per_s
                    .map_or_else(|| "   - tok/s".into(), |t| format!("{t:6.1} tok/s")),
                fmt::watts(e.power_w),
                fmt::ns(e.elapsed_ns)
            );
        }
    };
    let opts = GenerateOptions {
        max_tokens: a.max_tokens,
        sampling: SamplingConfig {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            seed: a.seed,
        },
        chat,
    };
    let generation = generate(&mut loaded, &mut session, &a.prompt, &opts, &mut on_step);
    if live {
        eprint!("\r\x1b[2K");
    }
    if stream {
        println!();
    }
    let generation = match generation {
        Ok(g) => g,
        Err(e) => {
            let path = session.finish(String::new(), format!("error: {e}"))?;
            bail!(
                "generation failed: {e} (the partial trace is at {})",
                path.display()
            );
        }
    };
    let path = session.finish(generation.text.clone(), generation.stop_reason.clone())?;

    let bytes = std::fs::read(&path)?;
    let trace = eprof_format::decode_complete(&bytes)
        .with_context(|| format!("reading back {}", path.display()))?;
    if !a.no_index {
        let mut idx = Index::open(&data.index())?;
        idx.insert(&trace, &path, false)?;
    }
    let en = eprof_format::Energies::compute(&trace);
    let s = eprof_format::Summary::compute(&trace, &en);
    if a.json {
        let v = serde_json::json!({"id": id, "trace": path, "summary": s});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    out.push_str(&format!(
        "run {id}: {} prompt + {} generated tokens in {}, {} total ({}), {} avg\n",
        s.prompt_tokens,
        s.generated_tokens,
        fmt::ns(s.duration_ns),
        fmt::energy(s.total),
        fmt::label(s.total),
        fmt::watts(s.avg_power_w),
    ));
    out.push_str(&format!(
        "decode: {} per token, {}; trace {} ({} bytes)\n",
        fmt::opt_j(s.decode_j_per_token),
        s.decode_tokens_per_s
            .map_or_else(|| "- tok/s".into(), |t| format!("{t:.1} tok/s")),
        path.display(),
        bytes.len()
    ));
    out.push_str(&format!("details: eprof show {id}\n"));
    eprint!("{out}");
    Ok(ExitCode::SUCCESS)
}
