//! `eprof record`: flags -> [`RecordRequest`] -> [`Profiler::record`], with a sink
//! that streams the tokens to stdout and a live status line to the terminal.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use eprof_core::paths::DataDir;
use eprof_format::{Depth, NoteLevel};
use eprof_record::{
    DeviceSpec, ModelChoice, PowerSpec, ProbeSelection, Profiler, RecordRequest, RunEvent, RunSink,
};

use crate::fmt;

#[derive(Args)]
pub struct RecordArgs {
    /// The prompt; `-` reads it from standard input, `@FILE` from a file (`@@` for a
    /// prompt that starts with `@`)
    pub prompt: String,
    /// A .gguf file or Hugging Face folder [default: $EPROF_MODEL, then the data
    /// directory's models/, then the Hugging Face cache, then the built-in tiny model]
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// off: phases and tokens; module: + layers and components, timed, with their
    /// activation statistics (--no-probes: timing alone); deep: + attention ops and
    /// every built-in probe's metrics (--probe NAME runs one at module depth)
    #[arg(long, default_value = "module")]
    pub depth: Depth,
    /// Tokens to generate at most (the run stops earlier at the end-of-text token)
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
    #[command(flatten)]
    pub settings: RunSettings,
    /// Write the trace to this file, or into this folder (an existing one, or a path
    /// ending in /) as RUN_ID.eprof; folders are created [default: the data
    /// directory's traces/]
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
}

/// The settings `record` and `bench` share (bench varies model, depth and token
/// limit across configurations; these are the same for all of them).
#[derive(Args)]
pub struct RunSettings {
    /// Power source: auto (the best that works here), nvml+rapl, rapl, nvml,
    /// powermetrics, estimate[:idle=5,max=40] (a CPU-utilisation model), replay:FILE,
    /// synthetic[:w=10,mode=sampler,noise=2] (made up, for tests); `eprof power list`
    /// says which work here
    #[arg(long, value_name = "SOURCE", default_value = "auto")]
    pub power: PowerSpec,
    /// Milliseconds between power readings
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub power_interval: u64,
    /// Milliseconds of idle measurement before the run (0 disables the baseline)
    #[arg(long, default_value_t = 500)]
    pub idle_ms: u64,
    /// Sampling temperature; 0 is greedy (the most likely token every time)
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    /// Sample only among the K most likely tokens (with --temperature above 0)
    #[arg(long, value_name = "K")]
    pub top_k: Option<u32>,
    /// Sample only among the most likely tokens whose probabilities add up to P, in
    /// (0, 1] (nucleus sampling, with --temperature above 0)
    #[arg(long, value_name = "P")]
    pub top_p: Option<f64>,
    /// Seed of the sampler: the same seed, prompt and settings give the same tokens
    #[arg(long, default_value_t = 299_792_458)]
    pub seed: u64,
    /// Send the prompt as is, without the model's chat template
    #[arg(long)]
    pub raw: bool,
    /// Only these probes (repeatable), at any depth but off [default: plugin probes,
    /// and at deep the built-in ones]
    #[arg(long = "probe", value_name = "NAME")]
    pub probes: Vec<String>,
    /// No probes at all
    #[arg(long, conflicts_with = "probes")]
    pub no_probes: bool,
    /// |x| below this counts as zero in sparsity metrics
    #[arg(long, default_value_t = 0.01)]
    pub sparsity_threshold: f32,
    /// Tag the run (repeatable); `eprof ls --tag` finds it
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Name of the experiment the run belongs to; `eprof ls --experiment` finds it
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
    /// cpu, cuda[:N] or metal (GPU devices need eprof built with --features cuda or
    /// metal; on CUDA spans are timed by CUDA events, on Metal they synchronize the
    /// device)
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// CPU threads for the matmuls [default: $RAYON_NUM_THREADS, else
    /// $CANDLE_NUM_THREADS, else one per physical core]; the trace records it
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
}

impl RunSettings {
    /// The typed request of these settings with one model, depth and token limit.
    pub fn request(
        &self,
        prompt: &str,
        model: Option<PathBuf>,
        depth: Depth,
        max_tokens: u32,
    ) -> RecordRequest {
        RecordRequest {
            prompt: prompt.to_string(),
            model: model.map_or(ModelChoice::Default, ModelChoice::Path),
            device: self.device,
            power: self.power.clone(),
            power_interval_ms: self.power_interval,
            idle_ms: self.idle_ms,
            depth,
            probes: if self.no_probes {
                ProbeSelection::None
            } else if self.probes.is_empty() {
                ProbeSelection::Default
            } else {
                ProbeSelection::Only(self.probes.clone())
            },
            sparsity_threshold: self.sparsity_threshold,
            max_tokens,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            seed: self.seed,
            raw: self.raw,
            tags: self.tags.clone(),
            experiment: self.experiment.clone(),
            out: None,
            index: true,
            group: None,
        }
    }
}

impl RecordArgs {
    /// The typed request these flags describe.
    pub fn request(&self) -> RecordRequest {
        RecordRequest {
            out: self.out.clone(),
            index: !self.no_index,
            ..self.settings.request(
                &self.prompt,
                self.model.clone(),
                self.depth,
                self.max_tokens,
            )
        }
    }
}

/// The prompt a command-line argument stands for: itself, standard input (`-`), or a
/// file's text (`@FILE`; `@@text` is the text `@text`).
pub fn prompt_text(arg: &str) -> anyhow::Result<String> {
    use std::io::Read;
    if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| anyhow::anyhow!("cannot read the prompt from standard input: {e}"))?;
        return Ok(s);
    }
    if let Some(rest) = arg.strip_prefix("@@") {
        return Ok(format!("@{rest}"));
    }
    if let Some(path) = arg.strip_prefix('@') {
        return std::fs::read_to_string(path).map_err(|e| {
            crate::exit::Exit(
                2,
                format!(
                    "cannot read the prompt from {path}: {e} (a prompt that starts with @ is written @@)"
                ),
            )
            .into()
        });
    }
    Ok(arg.to_string())
}

/// Say which model a run uses when the user did not name it; loudly when it is the
/// built-in random-weight one, whose text is noise.
pub fn announce_model(h: &eprof_record::ModelHandle) {
    if h.origin.is_empty() {
        return;
    }
    if h.path.as_os_str() == eprof_models::load::BUILTIN_TINY {
        eprintln!("warning: {}", h.origin);
    } else {
        eprintln!("model: {} ({})", h.path.display(), h.origin);
    }
}

/// Ctrl-C sets the flag (the run in progress ends `cancelled`); a second one exits.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    // Registration fails only for forbidden signals; SIGINT is not one.
    let _ = signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        130,
        Arc::clone(&flag),
    );
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&flag));
    flag
}

/// Streams the generated text to stdout and a status line to a terminal's stderr;
/// notes (warnings, what `auto` picked) go to stderr. A closed stdout stops the
/// streaming, not the run.
struct TerminalSink {
    stream: bool,
    live: bool,
    stdout: std::io::Stdout,
    /// Set by Ctrl-C: the run stops at the next token, its trace ends `cancelled`.
    stop: Arc<AtomicBool>,
}

impl RunSink for TerminalSink {
    fn event(&mut self, e: &RunEvent) -> ControlFlow<()> {
        match e {
            RunEvent::TokenComplete {
                text,
                step,
                decode_tokens_per_s,
                power_w,
                elapsed_ns,
                ..
            } => {
                if self.stream {
                    let ok = write!(self.stdout, "{text}").and_then(|()| self.stdout.flush());
                    self.stream = ok.is_ok();
                }
                if self.live {
                    eprint!(
                        "\r\x1b[2K\x1b[7m step {step:>4}  {}  {}  {} \x1b[0m\r",
                        decode_tokens_per_s
                            .map_or_else(|| "   - tok/s".into(), |t| format!("{t:6.1} tok/s")),
                        fmt::watts(*power_w),
                        fmt::ns(*elapsed_ns)
                    );
                }
            }
            RunEvent::Note { level, text } => {
                self.clear_status();
                match level {
                    NoteLevel::Warning => eprintln!("warning: {text}"),
                    NoteLevel::Info if text.starts_with("power:") => eprintln!("{text}"),
                    // Other information is in the trace (`eprof show`).
                    NoteLevel::Info => {}
                }
            }
            RunEvent::InferenceComplete { .. } | RunEvent::Error { .. } => {
                self.clear_status();
                if self.stream {
                    let _ = writeln!(self.stdout);
                }
            }
            _ => {}
        }
        stop_flow(&self.stop)
    }

    fn wants_sites(&self) -> bool {
        false
    }

    fn cancel_flag(&self) -> Option<Arc<AtomicBool>> {
        Some(Arc::clone(&self.stop))
    }
}

/// `Break` once Ctrl-C was pressed: the run stops at the next token.
pub fn stop_flow(stop: &AtomicBool) -> ControlFlow<()> {
    if stop.load(Ordering::Relaxed) {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

impl TerminalSink {
    fn clear_status(&self) {
        if self.live {
            eprint!("\r\x1b[2K");
        }
    }
}

pub fn run(data: &DataDir, plugin_paths: &[PathBuf], a: RecordArgs) -> anyhow::Result<ExitCode> {
    let mut profiler = Profiler::new(data.clone(), plugin_paths)?;
    for w in profiler.take_warnings() {
        eprintln!("warning: {w}");
    }
    let prompt = prompt_text(&a.prompt)?;
    let req = RecordRequest {
        prompt,
        ..a.request()
    };
    // Refused before the model loads, as the server refuses them (exit 2).
    profiler
        .check(&req)
        .map_err(|e| crate::exit::Exit(2, e.message))?;
    let mut model = profiler.load_model(&req.model, req.device)?;
    announce_model(&model);
    let mut sink = TerminalSink {
        stream: !a.quiet && !a.json,
        live: !a.quiet && std::io::stderr().is_terminal(),
        stdout: std::io::stdout(),
        stop: interrupt_flag(),
    };
    let id = eprof_record::new_run_id();
    let run = profiler.record(&mut model, &req, &id, &mut sink)?;
    let s = &run.summary;
    // Ctrl-C: the trace is finished (`cancelled`) and indexed; the shell sees 130.
    let code = if run.stop_reason == eprof_format::StopReason::Cancelled {
        eprintln!(
            "interrupted: run {id} stopped after {} tokens; its trace ends `cancelled`",
            s.generated_tokens
        );
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    };
    if a.json {
        let v = serde_json::json!({"id": id, "trace": run.path, "summary": s});
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", serde_json::to_string_pretty(&v)?)?;
        stdout.flush()?;
        return Ok(code);
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
        run.path.display(),
        run.bytes
    ));
    out.push_str(&format!("details: eprof show {id}\n"));
    eprint!("{out}");
    Ok(code)
}
