//! `eprof bench`: one profiling request run N times after K discarded warm-ups, for
//! one or several configurations (a flag given several values), interleaved so that
//! drift hits every configuration alike. Every run is an ordinary trace and index row
//! carrying its group, configuration and repeat ([`GroupRef`]); the report at the end
//! is `eprof compare GROUP`'s. Ctrl-C stops after the current run (which ends
//! `cancelled` and is left out of the statistics); the finished runs stay.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use eprof_core::paths::DataDir;
use eprof_format::stats::SplitMix;
use eprof_format::{Depth, GroupRef, NoteLevel, units};
use eprof_record::{ModelChoice, Profiler, RunEvent, RunSink};

use crate::commands::groups::{self, Sample};
use crate::record::{RunSettings, interrupt_flag, stop_flow};

#[derive(Args)]
pub struct BenchArgs {
    /// The prompt; `-` reads it from standard input, `@FILE` from a file (`@@` for a
    /// prompt that starts with `@`)
    pub prompt: String,
    /// Model(s): give several to compare them [default: as `eprof record`]
    #[arg(long = "model", short = 'm')]
    pub models: Vec<PathBuf>,
    /// Depth(s): give several to compare them (e.g. --depth off --depth module)
    #[arg(long = "depth", default_values = ["module"])]
    pub depths: Vec<Depth>,
    /// Token limit(s): give several to compare them
    #[arg(long = "max-tokens", default_values_t = [64u32])]
    pub max_tokens: Vec<u32>,
    /// Measured runs per configuration
    #[arg(long, default_value_t = 10)]
    pub repeat: u32,
    /// Runs per configuration made first and discarded (caches, frequency ramp-up)
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// Seconds to wait between runs (lets the machine cool down), 0 to 3600
    #[arg(long, value_name = "SECONDS", value_parser = cooldown_seconds)]
    pub cooldown: Option<f64>,
    /// Run the configurations of each round in a random order, from this seed
    /// [default order: A B A B ...]
    #[arg(long, value_name = "SEED", num_args = 0..=1, default_missing_value = "1")]
    pub shuffle: Option<u64>,
    #[command(flatten)]
    pub settings: RunSettings,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Exit 4 when energy or J per generated token of a configuration is significantly
    /// higher than the first's by more than PCT percent
    #[arg(long, value_name = "PCT")]
    pub fail_if_higher: Option<f64>,
}

/// One configuration: what varies, and its label.
struct Config {
    model: Option<PathBuf>,
    depth: Depth,
    max_tokens: u32,
    label: String,
}

fn configurations(a: &BenchArgs) -> Vec<Config> {
    let models: Vec<Option<PathBuf>> = if a.models.is_empty() {
        vec![None]
    } else {
        a.models.iter().cloned().map(Some).collect()
    };
    let mut out = Vec::new();
    for m in &models {
        for &d in &a.depths {
            for &t in &a.max_tokens {
                let mut parts = Vec::new();
                if models.len() > 1 {
                    let name = m
                        .as_ref()
                        .and_then(|p| p.file_name())
                        .map_or_else(|| "default".into(), |n| n.to_string_lossy().into_owned());
                    parts.push(format!("model={name}"));
                }
                if a.depths.len() > 1 {
                    parts.push(format!("depth={}", d.as_str()));
                }
                if a.max_tokens.len() > 1 {
                    parts.push(format!("max_tokens={t}"));
                }
                out.push(Config {
                    model: m.clone(),
                    depth: d,
                    max_tokens: t,
                    label: if parts.is_empty() {
                        "all".into()
                    } else {
                        parts.join(",")
                    },
                });
            }
        }
    }
    out
}

/// The order of one round's configurations: as given, or shuffled (Fisher-Yates) from
/// the seed and the round.
fn round_order(n: usize, shuffle: Option<u64>, round: u32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(seed) = shuffle {
        let mut rng = SplitMix(seed ^ u64::from(round).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for i in (1..n).rev() {
            order.swap(i, rng.below(i + 1));
        }
    }
    order
}

/// Quiet: warnings only; stops the run when Ctrl-C was pressed.
struct BenchSink {
    stop: Arc<AtomicBool>,
}

impl RunSink for BenchSink {
    fn event(&mut self, e: &RunEvent) -> ControlFlow<()> {
        if let RunEvent::Note {
            level: NoteLevel::Warning,
            text,
        } = e
        {
            eprintln!("warning: {text}");
        }
        stop_flow(&self.stop)
    }

    fn wants_sites(&self) -> bool {
        false
    }
}

/// `--cooldown`: a number of seconds from 0 to an hour (`inf`, `NaN` and negative
/// values are refused on the command line, not met as a panic between runs).
fn cooldown_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if v.is_finite() && (0.0..=3600.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s} is not 0 to 3600 seconds"))
    }
}

fn sleep_unless(stop: &AtomicBool, seconds: f64) {
    let end = std::time::Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    while std::time::Instant::now() < end && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn run(data: &DataDir, plugin_paths: &[PathBuf], a: BenchArgs) -> anyhow::Result<ExitCode> {
    if a.repeat < 2 {
        return Err(crate::exit::Exit(
            2,
            "--repeat must be 2 or more: one run has no interval (use `eprof record`)".into(),
        )
        .into());
    }
    if a.repeat < 5 {
        eprintln!(
            "warning: {} runs per configuration make wide 95% intervals (the t factor is {:.1}, against 2.3 at 10 runs); give --repeat 5 or more for intervals that tell configurations apart",
            a.repeat,
            eprof_format::stats::t_quantile(0.975, f64::from(a.repeat - 1))
        );
    }
    let prompt = crate::record::prompt_text(&a.prompt)?;
    let configs = configurations(&a);
    let mut profiler = Profiler::new(data.clone(), plugin_paths)?;
    for w in profiler.take_warnings() {
        eprintln!("warning: {w}");
    }
    // Refused before any model loads, as `record` and the server refuse them.
    for c in &configs {
        let req = a
            .settings
            .request(&prompt, c.model.clone(), c.depth, c.max_tokens);
        profiler
            .check(&req)
            .map_err(|e| crate::exit::Exit(2, e.message))?;
    }
    // Each model once, kept loaded for all its runs.
    let mut models = Vec::new();
    for c in &configs {
        if !models.iter().any(|(m, _)| *m == c.model) {
            let choice = c
                .model
                .clone()
                .map_or(ModelChoice::Default, ModelChoice::Path);
            let h = profiler.load_model(&choice, a.settings.device)?;
            crate::record::announce_model(&h);
            models.push((c.model.clone(), h));
        }
    }
    let group_id = format!("g{}", &eprof_record::new_run_id()[..12]);
    let stop = interrupt_flag();
    let mut sink = BenchSink {
        stop: Arc::clone(&stop),
    };
    let rounds = a.warmup + a.repeat;
    let total = configs.len() as u32 * a.repeat;
    eprintln!(
        "bench {group_id}: {} configuration{} x {} runs (+{} warm-up{} each), {}",
        configs.len(),
        if configs.len() == 1 { "" } else { "s" },
        a.repeat,
        a.warmup,
        if a.warmup == 1 { "" } else { "s" },
        if a.shuffle.is_some() {
            "shuffled order"
        } else {
            "interleaved"
        }
    );
    let warmup_path = data.traces().join(format!(".{group_id}-warmup.eprof"));
    let mut order = 0u32;
    let mut first = true;
    'rounds: for round in 0..rounds {
        let warm = round < a.warmup;
        for ci in round_order(configs.len(), a.shuffle, round) {
            if stop.load(Ordering::Relaxed) {
                break 'rounds;
            }
            if !first && let Some(s) = a.cooldown {
                sleep_unless(&stop, s);
            }
            first = false;
            let c = &configs[ci];
            let mut req = a
                .settings
                .request(&prompt, c.model.clone(), c.depth, c.max_tokens);
            if warm {
                req.out = Some(warmup_path.clone());
                req.index = false;
            } else {
                req.group = Some(GroupRef {
                    id: group_id.clone(),
                    config: ci as u32,
                    config_label: c.label.clone(),
                    repeat: round - a.warmup,
                    order,
                });
            }
            let Some((_, model)) = models.iter_mut().find(|(m, _)| *m == c.model) else {
                bail!("model of configuration {} not loaded", c.label);
            };
            let id = eprof_record::new_run_id();
            let r = profiler.record(model, &req, &id, &mut sink)?;
            if warm {
                let _ = std::fs::remove_file(&warmup_path);
                eprintln!("  warm-up  {:<24} done", c.label);
                continue;
            }
            if r.stop_reason == eprof_format::StopReason::Cancelled {
                eprintln!("  cancelled {:<23} {id} (left out)", c.label);
                continue;
            }
            order += 1;
            let s = &r.summary;
            eprintln!(
                "  [{order}/{total}] {:<24} {id}  {}  {}/token  {}",
                c.label,
                s.total
                    .map_or_else(|| "-".into(), |e| units::joules(e.joules)),
                s.j_per_generated_token
                    .map_or_else(|| "-".into(), units::joules),
                s.decode_tokens_per_s
                    .map_or_else(|| "-".into(), |v| format!("{v:.1} tok/s")),
            );
        }
    }
    if stop.load(Ordering::Relaxed) {
        eprintln!("interrupted: {order} of {total} runs finished; they are kept and reported");
    }
    let samples: Vec<Sample> = groups::configurations(data, &group_id)?;
    if samples.iter().any(|s| s.summaries.len() < 2) {
        bail!(
            "too few finished runs for statistics in group {group_id} (each configuration needs 2)"
        );
    }
    eprintln!(
        "group {group_id}: `eprof compare {group_id}` reports it again, `eprof ls --group {group_id}` lists its runs"
    );
    let stdout = std::io::stdout();
    groups::report(&samples, a.json, a.fail_if_higher, &mut stdout.lock())?;
    Ok(ExitCode::SUCCESS)
}
