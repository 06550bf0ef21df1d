//! `eprof`: where do the joules of transformer inference go?
//!
//! `main` calls `run`, which returns the exit code; errors print one lowercase line
//! naming what failed and how to fix it; a closed pipe (`eprof ls | head`) exits quietly.
//! The one `unsafe` is [`set_thread_count`], before any thread starts.

/// mimalloc instead of glibc's malloc (see `cli/Cargo.toml`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod commands;
mod fmt;
mod plugins;
mod record;
mod serve;
mod view;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "Exit codes:
  0  success
  1  error (the message says what failed and how to fix it)
  2  invalid command line
  3  the trace is truncated or corrupted (what could be read was still shown)
  4  --fail-if-higher: a figure rose beyond the allowed percentage";

#[derive(Parser)]
#[command(
    name = "eprof",
    version,
    about = "Energy and latency profiler for transformer inference: where do the joules go?",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Data directory for traces, the run index, models and plugins
    /// [default: $EPROF_HOME, else the per-user data directory]
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Load a probe plugin (repeatable); also loaded: $EPROF_PLUGIN_PATH and the data
    /// directory's plugins/ folder
    #[arg(long = "plugin", global = true, value_name = "PATH")]
    plugins: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Profile one prompt: run the model, record energy and time, write a trace
    Record(record::RecordArgs),
    /// Run one prompt N times (several configurations interleaved) and report each
    /// figure with its 95% interval, and whether configurations differ beyond the noise
    Bench(bench::BenchArgs),
    /// List recorded runs
    Ls(LsArgs),
    /// Summarise one run: phases, tokens, layers, components, operations, metrics
    Show(ShowArgs),
    /// Open runs in the viewer: served on 127.0.0.1, or one HTML file with --html
    View(view::ViewArgs),
    /// Serve the REST API, the live event stream (WebSocket) and the viewer
    Serve(serve::ServeArgs),
    /// Export a run as JSON, CSV tables, Chrome trace-event JSON, or a copy of the trace
    Export(ExportArgs),
    /// Add trace files (e.g. from a colleague's machine) to the index
    Import(ImportArgs),
    /// Remove runs from the index and delete their trace files (those in the data directory)
    Rm(RmArgs),
    /// Maintain the run index
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Compare runs side by side (different machines and models included)
    Compare(CompareArgs),
    /// Check what can be used on this machine and how to fix what cannot
    Doctor(JsonFlag),
    /// List built-in and dynamic plugins: power sources, model adapters, probes
    Plugins {
        #[command(subcommand)]
        command: Option<PluginsCommand>,
        #[arg(long)]
        json: bool,
    },
    /// Power sources: list them, or read one to check a setup
    Power {
        #[command(subcommand)]
        command: PowerCommand,
    },
    /// Inspect a model: architecture, sizes, tokenizer; tokenize text
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
}

#[derive(Args)]
struct JsonFlag {
    /// Print JSON for scripts
    #[arg(long)]
    json: bool,
}

/// Which runs of the index: shared by `ls` and `export --format parquet`.
#[derive(Args)]
struct RunFilterArgs {
    /// Only runs whose model name contains this
    #[arg(long)]
    model: Option<String>,
    /// Only runs with this tag
    #[arg(long)]
    tag: Option<String>,
    /// Only runs of this experiment
    #[arg(long)]
    experiment: Option<String>,
    /// Only runs whose prompt contains this
    #[arg(long)]
    prompt: Option<String>,
    /// Only the runs of this group (`eprof bench`)
    #[arg(long)]
    group: Option<String>,
}

impl RunFilterArgs {
    fn is_set(&self) -> bool {
        self.model.is_some()
            || self.tag.is_some()
            || self.experiment.is_some()
            || self.prompt.is_some()
            || self.group.is_some()
    }

    /// The index filter, unsorted and unpaged.
    fn filter(&self) -> eprof_index::RunFilter {
        eprof_index::RunFilter {
            model: self.model.clone(),
            tag: self.tag.clone(),
            experiment: self.experiment.clone(),
            prompt_contains: self.prompt.clone(),
            group: self.group.clone(),
            ..Default::default()
        }
    }
}

#[derive(Args)]
struct LsArgs {
    #[command(flatten)]
    filter: RunFilterArgs,
    /// List groups of repeated runs (`eprof bench`) instead of runs
    #[arg(long)]
    groups: bool,
    /// Sort by created, energy, duration or j_per_token (largest first)
    #[arg(long, default_value = "created")]
    sort: String,
    /// Show at most this many runs
    #[arg(long, short = 'n')]
    limit: Option<u32>,
    /// Skip this many runs first (paging, with --limit)
    #[arg(long)]
    offset: Option<u32>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ShowArgs {
    /// Run id (or unique prefix) or a path to a .eprof file
    run: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExportArgs {
    /// Run id (or unique prefix) or a path to a .eprof file; parquet takes several
    runs: Vec<String>,
    /// json (full), csv (a folder of tables), chrome (Perfetto / chrome://tracing),
    /// eprof (a copy), parquet (a dataset folder for DuckDB, Polars, Spark: docs/dataset.md)
    #[arg(long, default_value = "json")]
    format: String,
    /// Output file (a folder for csv and parquet) [default: stdout for json/chrome]
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
    /// parquet: every run in the index (or every one matching the filters)
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    filter: RunFilterArgs,
}

#[derive(Args)]
struct ImportArgs {
    /// Trace files to import
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Args)]
struct RmArgs {
    /// Run ids (or unique prefixes), or group ids (all their runs)
    #[arg(required = true)]
    runs: Vec<String>,
    /// Keep the trace files, remove only the index rows
    #[arg(long)]
    keep_files: bool,
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// Load one plugin and report whether this eprof can use it
    Check {
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Drop the index and rebuild it from the trace files in the data directory
    Rebuild,
}

#[derive(Args)]
struct CompareArgs {
    /// Two or more run ids, prefixes or trace paths; or groups of repeated runs
    /// (`eprof bench`): GROUP (its configurations against the first), GROUP/CONFIG
    /// (a configuration by label or index), several groups
    #[arg(num_args = 1.., required = true)]
    runs: Vec<String>,
    #[arg(long)]
    json: bool,
    /// Groups: exit 4 when energy or J per generated token is significantly higher
    /// than the first group's by more than PCT percent (a CI gate)
    #[arg(long, value_name = "PCT")]
    fail_if_higher: Option<f64>,
}

#[derive(Subcommand)]
enum PowerCommand {
    /// Every power source, whether it is usable here, and why not
    List(JsonFlag),
    /// Print readings from one source
    Read(PowerReadArgs),
}

#[derive(Args)]
struct PowerReadArgs {
    /// Source name, with options: synthetic:step=10/30@0.5, estimate:idle=5,max=40 ...
    #[arg(long)]
    source: String,
    /// Read a saved capture instead of live hardware (replay; powermetrics captures)
    #[arg(long)]
    from_file: Option<PathBuf>,
    /// Number of readings
    #[arg(long, default_value_t = 5)]
    samples: u32,
    /// Milliseconds between readings
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Architecture, sizes, quantization and tokenizer of a model
    Info {
        /// A .gguf file, a Hugging Face folder, or builtin:tiny-llama
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Write a GGUF of random weights with a real model's exact shapes
    ///
    /// Time and energy depend on shapes and storage types, not on the values: this is
    /// how a machine without model files profiles a real-size model. Its traces say
    /// `random_weights`, and its text is noise.
    ///
    /// Examples:
    ///   eprof model synth --shape llama-3.2-1b --dtype q4_0 llama-1b.gguf
    ///   eprof model synth --shape qwen2.5-7b --dtype q4_k qwen-7b.gguf
    #[command(verbatim_doc_comment)]
    Synth {
        /// The model whose shapes to copy: smollm2-135m, qwen2.5-0.5b, llama-3.2-1b,
        /// gemma-3-1b, mistral-7b, qwen2.5-7b, llama-3.1-8b
        #[arg(long)]
        shape: String,
        /// Storage type of the matrices: f32, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k,
        /// q5_k, q6_k (norms and biases stay f32)
        #[arg(long, default_value = "q4_0")]
        dtype: String,
        /// Seed of the random weights
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The .gguf file to write
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Compare a model's logits and greedy tokens on a device against the CPU
    ///
    /// Example: eprof model check-device --device cuda llama-1b.gguf
    CheckDevice {
        /// A .gguf file, a Hugging Face folder, or builtin:tiny-llama
        path: PathBuf,
        /// The device to check against the CPU: cuda, cuda:N or metal
        #[arg(long, default_value = "cuda")]
        device: eprof_record::DeviceSpec,
        /// Greedy tokens to generate on both
        #[arg(long, default_value_t = 8)]
        tokens: usize,
        /// The prompt
        #[arg(long, default_value = "The capital of France is")]
        prompt: String,
        #[arg(long)]
        json: bool,
    },
    /// Token ids of a text
    Tokenize {
        path: PathBuf,
        text: String,
        /// Treat special-token strings (<|im_start|>) as plain text
        #[arg(long)]
        no_special: bool,
        #[arg(long)]
        json: bool,
    },
}

/// An error that carries its own exit code.
#[derive(Debug)]
pub struct Exit(pub u8, pub String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

fn main() -> ExitCode {
    eprof_power::link();
    eprof_models::link();
    eprof_probes::link();
    match run() {
        Ok(code) => code,
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            let code = e.downcast_ref::<Exit>().map_or(1, |x| x.0);
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!(": {cause}"));
            }
            let _ = writeln!(std::io::stderr(), "{msg}");
            ExitCode::from(code)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return Ok(ExitCode::from(code));
        }
    };
    let threads = match &cli.command {
        Command::Record(a) => a.settings.threads.or_else(default_threads),
        Command::Bench(a) => a.settings.threads.or_else(default_threads),
        Command::Serve(_) => default_threads(),
        _ => None,
    };
    if let Some(n) = threads {
        set_thread_count(n);
    }
    let data = eprof_core::paths::DataDir::resolve(cli.data_dir.as_deref());
    // Commands write straight to stdout: `export` streams, and a reader that goes away
    // (`eprof ls | head -1`) ends the command with a closed pipe, not a panic.
    let stdout = std::io::stdout();
    let out: &mut dyn Write = &mut stdout.lock();
    let code = match cli.command {
        Command::Record(a) => return record::run(&data, &cli.plugins, a),
        Command::Bench(a) => return bench::run(&data, &cli.plugins, a),
        Command::Ls(a) => commands::ls(&data, &a, out),
        Command::Show(a) => commands::show(&data, &a, out),
        Command::View(a) => view::run(&data, &a),
        Command::Serve(a) => serve::run(&data, &cli.plugins, &a),
        Command::Export(a) => commands::export(&data, &a, out),
        Command::Import(a) => commands::import(&data, &a, out),
        Command::Rm(a) => commands::rm(&data, &a, out),
        Command::Index {
            command: IndexCommand::Rebuild,
        } => commands::index_rebuild(&data, out),
        Command::Compare(a) => commands::compare(&data, &a, out),
        Command::Doctor(a) => commands::doctor(&data, a.json, out),
        Command::Plugins {
            command: Some(PluginsCommand::Check { path, json }),
            ..
        } => plugins::check(&path, json, out),
        Command::Plugins {
            command: None,
            json,
        } => commands::plugins(&data, &cli.plugins, json, out),
        Command::Power {
            command: PowerCommand::List(a),
        } => commands::power_list(a.json, out),
        Command::Power {
            command: PowerCommand::Read(a),
        } => commands::power_read(&a, out),
        Command::Model {
            command: ModelCommand::Info { path, json },
        } => commands::model_info(&path, json, out),
        Command::Model {
            command:
                ModelCommand::Synth {
                    shape,
                    dtype,
                    seed,
                    out: file,
                    json,
                },
        } => commands::model_synth(&shape, &dtype, seed, &file, json, out),
        Command::Model {
            command:
                ModelCommand::CheckDevice {
                    path,
                    device,
                    tokens,
                    prompt,
                    json,
                },
        } => commands::model_check_device(&path, device, tokens, &prompt, json, out),
        Command::Model {
            command:
                ModelCommand::Tokenize {
                    path,
                    text,
                    no_special,
                    json,
                },
        } => commands::model_tokenize(&path, &text, !no_special, json, out),
    };
    out.flush()?;
    code.map(|()| ExitCode::SUCCESS)
}

/// The thread count of a command that runs a model and was given none: candle's own
/// default (physical cores, or `CANDLE_NUM_THREADS`), set explicitly. Unless
/// `RAYON_NUM_THREADS` is set, candle 0.11 looks the count up again in every f32
/// matmul, and on Linux that reads and parses `/proc/cpuinfo`: in every prefill, and
/// with candle's attention ops (`EPROF_CPU_KERNELS=candle`) 60 times per SmolLM2 token, 20%
/// of its decode speed measured on this VM. `None` when `RAYON_NUM_THREADS` already
/// names a count.
fn default_threads() -> Option<u16> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|n| *n > 0)
    };
    if var("RAYON_NUM_THREADS").is_some() {
        return None;
    }
    var("CANDLE_NUM_THREADS").or_else(|| u16::try_from(num_cpus::get_physical().max(1)).ok())
}

/// `--threads N` (or the default above): candle sizes its CPU thread pools (which
/// eprof's kernels share) from `CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS` when they
/// first start, so both are set before anything runs. (Not by running eprof again
/// with them set: a signal sent to eprof's pid would then reach only the parent.)
#[allow(unsafe_code)]
fn set_thread_count(n: u16) {
    let n = n.to_string();
    // SAFETY: called once from `run`, right after the arguments are parsed and before
    // this process starts any thread, so nothing reads or writes the environment
    // concurrently, which is what `set_var` requires.
    unsafe {
        std::env::set_var("CANDLE_NUM_THREADS", &n);
        std::env::set_var("RAYON_NUM_THREADS", &n);
    }
}
