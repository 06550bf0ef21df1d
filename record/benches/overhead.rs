//! Instrumentation overhead on a real GGUF file (SmolLM2-135M Q4_1 by default;
//! Qwen2.5-Coder and Gemma 3 through `scripts/bench-engine.sh MODEL`), measured side by
//! side in one process: candle-transformers' quantized model of its architecture
//! (reference, its own decode loop) and eprof through the recording API every front end uses
//! ([`Profiler::record`]: session, sampler thread, synthetic counter read at every
//! step boundary, trace written and flushed after every step) at depth off, module
//! (the components' spans and the `activation` probe's statistics of every component's
//! output, module depth's default), module with spans alone (`--no-probes`),
//! module with the example outliers plugin, module with a sink that serializes every
//! event to JSON (what a connected dashboard costs the run), and deep.
//!
//! Rounds are interleaved (ref, off, module, ...), in an order that rotates from one
//! round to the next, so that machine noise and a position's cost hit all variants
//! alike; medians are printed, and each row against `off` as the mean of the
//! per-round differences with its 95% interval and verdict (a paired t-test,
//! `eprof_format::stats::compare_paired`): on a shared machine a bare median moves by
//! several percent between runs, the interval says what the rounds can tell.
//!
//! `cargo bench -p eprof-record --bench overhead` (EPROF_TEST_MODEL or the data
//! directory's copy; BENCH_ROUNDS, BENCH_TOKENS override the defaults 5 and 64;
//! BENCH_VARIANTS=module,spans,... runs only those rows and `off`).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use eprof_core::paths::DataDir;
use eprof_format::{Depth, Phase, TokenPhase, stats};
use eprof_record::{
    ModelChoice, ModelHandle, NoSink, PowerSpec, ProbeSelection, Profiler, RecordRequest, RunEvent,
    RunSink,
};

/// The allocator the eprof binary uses (`cli/src/main.rs`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PROMPT: &str = "Give me three tips for staying healthy.";

fn model_path() -> PathBuf {
    let p = eprof_models::smollm2_path();
    assert!(
        p.exists(),
        "SmolLM2 is missing at {}: run scripts/fetch-model.sh",
        p.display()
    );
    p
}

fn argmax(t: &Tensor) -> u32 {
    eprof_models::decoder::argmax(&t.flatten_all().unwrap()).unwrap()
}

/// One run's speed.
#[derive(Clone, Copy)]
struct Timing {
    prefill_s: f64,
    /// Time to first token: the pipeline's start to the end of prefill (the
    /// reference: its prefill).
    ttft_s: f64,
    /// Decode steps over the decode phase's time: what a user sees.
    tokens_per_s: f64,
    /// One over the median decode step's time: the same cost per step, without the
    /// few steps a shared machine takes from the run (a preemption costs one step
    /// milliseconds). It leaves out what costs only some steps: the trace reaches the
    /// file every 100 ms, so that write is not in the median step.
    median_step_per_s: f64,
}

fn run_ref(m: &mut Reference, prompt: &[u32], n: usize) -> Timing {
    let x = Tensor::new(prompt, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let t = Instant::now();
    let mut last = argmax(&m.forward(&x, 0));
    let prefill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut steps = Vec::with_capacity(n);
    for i in 0..n {
        let s = Instant::now();
        let x = Tensor::new(&[last], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        last = argmax(&m.forward(&x, prompt.len() + i));
        steps.push(s.elapsed().as_secs_f64());
    }
    Timing {
        prefill_s: prefill,
        ttft_s: prefill,
        tokens_per_s: n as f64 / t.elapsed().as_secs_f64(),
        median_step_per_s: 1.0 / median(steps),
    }
}

/// Serializes every event to JSON, as `eprof serve` does for its WebSocket clients.
#[derive(Default)]
struct JsonSink {
    bytes: usize,
    events: usize,
}

impl RunSink for JsonSink {
    fn event(&mut self, e: &RunEvent) -> ControlFlow<()> {
        self.bytes += serde_json::to_vec(e).unwrap().len();
        self.events += 1;
        ControlFlow::Continue(())
    }
}

/// One recording; its speed from its own summary.
fn run_ours(
    p: &Profiler,
    m: &mut ModelHandle,
    depth: Depth,
    n: u32,
    dir: &Path,
    sink: &mut dyn RunSink,
) -> Timing {
    run_with(p, m, depth, ProbeSelection::Default, n, dir, sink)
}

/// [`run_ours`] with a choice of probes.
fn run_with(
    p: &Profiler,
    m: &mut ModelHandle,
    depth: Depth,
    probes: ProbeSelection,
    n: u32,
    dir: &Path,
    sink: &mut dyn RunSink,
) -> Timing {
    let req = RecordRequest {
        probes,
        prompt: PROMPT.into(),
        model: ModelChoice::Path(m.path.clone()),
        power: "synthetic".parse::<PowerSpec>().unwrap(),
        idle_ms: 0,
        depth,
        max_tokens: n + 1,
        raw: true,
        index: false,
        out: Some(dir.join(format!("{}.eprof", depth.as_str()))),
        ..RecordRequest::default()
    };
    let run = p
        .record(m, &req, &eprof_record::new_run_id(), sink)
        .unwrap();
    let prefill = run
        .summary
        .phases
        .iter()
        .find(|r| r.name == Phase::Prefill.as_str())
        .map_or(0, |r| r.duration_ns);
    let steps = run
        .summary
        .tokens
        .iter()
        .filter(|t| t.phase == TokenPhase::Decode)
        .map(|t| t.duration_ns as f64 * 1e-9)
        .collect();
    Timing {
        prefill_s: prefill as f64 * 1e-9,
        ttft_s: run
            .summary
            .time_to_first_token_ns
            .map_or(f64::NAN, |t| t as f64 * 1e-9),
        tokens_per_s: run.summary.decode_tokens_per_s.unwrap_or(f64::NAN),
        median_step_per_s: 1.0 / median(steps),
    }
}

/// Build the example plugin (release, own target folder); its path.
fn example_plugin() -> PathBuf {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let target = format!("{root}/target/tmp/bench-plugin");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = std::process::Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "eprof-example-outliers",
            "--target-dir",
            &target,
        ])
        .current_dir(root)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "building the example plugin failed");
    PathBuf::from(format!(
        "{target}/release/{}eprof_example_outliers{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// The median of `v` (NaN for none).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// candle-transformers' own model of the file's architecture: the reference.
enum Reference {
    Llama(ModelWeights),
    Qwen2(candle_transformers::models::quantized_qwen2::ModelWeights),
    /// Its MLP gates with SiLU where Gemma 3 uses GELU (see the `gemma3_real` test):
    /// the same work, another function, so its speed still compares.
    Gemma3(candle_transformers::models::quantized_gemma3::ModelWeights),
}

impl Reference {
    fn load(path: &Path) -> (Reference, String) {
        let (c, mut r) = eprof_models::load::read_gguf(path).unwrap();
        let arch = c
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok().cloned())
            .unwrap_or_default();
        let m = match arch.as_str() {
            "qwen2" => Reference::Qwen2(
                candle_transformers::models::quantized_qwen2::ModelWeights::from_gguf(
                    c,
                    &mut r,
                    &Device::Cpu,
                )
                .unwrap(),
            ),
            "gemma3" => Reference::Gemma3(
                candle_transformers::models::quantized_gemma3::ModelWeights::from_gguf(
                    c,
                    &mut r,
                    &Device::Cpu,
                )
                .unwrap(),
            ),
            _ => Reference::Llama(ModelWeights::from_gguf(c, &mut r, &Device::Cpu).unwrap()),
        };
        (m, arch)
    }
    fn forward(&mut self, x: &Tensor, pos: usize) -> Tensor {
        match self {
            Reference::Llama(m) => m.forward(x, pos).unwrap(),
            Reference::Qwen2(m) => m.forward(x, pos).unwrap(),
            Reference::Gemma3(m) => m.forward(x, pos).unwrap(),
        }
    }
}

/// llama.cpp's rounds from scripts/bench-engine.sh (BENCH_LLAMA_CPP): JSON lines.
fn llama_cpp_rounds() -> Option<(Vec<f64>, Vec<f64>, String)> {
    let path = std::env::var("BENCH_LLAMA_CPP").ok()?;
    let text = std::fs::read_to_string(path).ok()?;
    let (mut tps, mut prefill, mut version) = (Vec::new(), Vec::new(), String::new());
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        tps.push(v["decode_tok_s"].as_f64()?);
        prefill.push(v["prefill_ms"].as_f64()? * 1e-3);
        version = v["version"].as_str().unwrap_or_default().to_string();
    }
    (!tps.is_empty()).then_some((tps, prefill, version))
}

fn main() {
    eprof_record::link();
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let n: u32 = std::env::var("BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let path = std::env::var("EPROF_TEST_MODEL")
        .map(PathBuf::from)
        .ok()
        .filter(|p| p.exists())
        .unwrap_or_else(model_path);
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::at(dir.path().join("data"));
    let plain = Profiler::new(data.clone(), &[]).unwrap();
    let with_plugin = Profiler::new(data, &[example_plugin()]).unwrap();
    // The same file loaded twice: through candle's quantized matmul, and through
    // eprof's own kernels for the types candle runs in scalar code.
    eprof_models::decoder::set_own_kernels(false);
    let mut candle_kernels = plain
        .load_model(&ModelChoice::Path(path.clone()), Default::default())
        .unwrap();
    eprof_models::decoder::set_own_kernels(true);
    let mut ours = plain
        .load_model(&ModelChoice::Path(path.clone()), Default::default())
        .unwrap();

    let (mut reference, arch) = Reference::load(&path);
    let prompt = ours.loaded.tokenizer.encode(PROMPT, true).unwrap();

    // (key for BENCH_VARIANTS, row name)
    let all = [
        (
            "ref",
            format!("reference (candle-transformers quantized_{arch})"),
        ),
        ("off-candle", "eprof off, candle's kernels".to_string()),
        ("off", "eprof off".to_string()),
        (
            "off-types",
            format!(
                "eprof off, eprof's kernels for {} only (BENCH_KERNEL_TYPES)",
                bench_types_name()
            ),
        ),
        (
            "off-again",
            "eprof off again (A/A control: what the order in a round costs)".to_string(),
        ),
        (
            "module",
            "eprof module (with the activation probe)".to_string(),
        ),
        (
            "spans",
            "eprof module, spans alone (--no-probes)".to_string(),
        ),
        ("plugin", "eprof module + outliers plugin".to_string()),
        ("json", "eprof module + JSON event sink".to_string()),
        ("deep", "eprof deep".to_string()),
    ];
    // BENCH_VARIANTS=module,spans runs only those and `off` (every row is against it):
    // more rounds in the same time when one difference is in question.
    let wanted: Option<Vec<String>> = std::env::var("BENCH_VARIANTS")
        .ok()
        .map(|v| v.split(',').map(|k| k.trim().to_string()).collect());
    if let Some(w) = &wanted
        && let Some(bad) = w.iter().find(|k| !all.iter().any(|(a, _)| a == k))
    {
        panic!(
            "BENCH_VARIANTS: unknown variant {bad:?}; known: {}",
            all.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(",")
        );
    }
    let keys: Vec<&str> = all
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| *k == "off" || wanted.as_ref().is_none_or(|w| w.iter().any(|x| x == k)))
        .collect();
    let names: Vec<String> = keys
        .iter()
        .map(|k| {
            all.iter()
                .find(|(a, _)| a == k)
                .expect("known key")
                .1
                .clone()
        })
        .collect();
    let off = keys
        .iter()
        .position(|k| *k == "off")
        .expect("off always runs");
    // Some types on eprof's kernels, the rest on candle's (variant `off-types`).
    let mut some_types = keys.contains(&"off-types").then(|| {
        eprof_models::set_own_weight_types(Some(bench_types()));
        let m = plain
            .load_model(&ModelChoice::Path(path.clone()), Default::default())
            .unwrap();
        eprof_models::set_own_weight_types(None);
        m
    });
    let mut prefill: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut tps: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut step_tps: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut ttft: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut json = JsonSink::default();
    // One warm-up round, not counted.
    for round in 0..=rounds {
        // The order rotates from round to round, so that what a position in a round
        // costs (the writeback of the previous run's trace, a warmer or colder cache)
        // falls on every variant alike and cancels in the per-round differences.
        let mut res = vec![
            Timing {
                prefill_s: f64::NAN,
                ttft_s: f64::NAN,
                tokens_per_s: f64::NAN,
                median_step_per_s: f64::NAN,
            };
            keys.len()
        ];
        let d = dir.path();
        for j in 0..keys.len() {
            let slot = (j + round) % keys.len();
            let k = keys[slot];
            res[slot] = match k {
                "ref" => {
                    reference.forward(
                        &Tensor::new(&[1u32], &Device::Cpu)
                            .unwrap()
                            .unsqueeze(0)
                            .unwrap(),
                        0,
                    );
                    run_ref(&mut reference, &prompt, n as usize)
                }
                "off-candle" => {
                    run_ours(&plain, &mut candle_kernels, Depth::Off, n, d, &mut NoSink)
                }
                "off" | "off-again" => run_ours(&plain, &mut ours, Depth::Off, n, d, &mut NoSink),
                "off-types" => {
                    let m = some_types.as_mut().expect("loaded when wanted");
                    run_ours(&plain, m, Depth::Off, n, d, &mut NoSink)
                }
                "module" => run_ours(&plain, &mut ours, Depth::Module, n, d, &mut NoSink),
                "spans" => run_with(
                    &plain,
                    &mut ours,
                    Depth::Module,
                    ProbeSelection::None,
                    n,
                    d,
                    &mut NoSink,
                ),
                "plugin" => run_ours(&with_plugin, &mut ours, Depth::Module, n, d, &mut NoSink),
                "json" => run_ours(&plain, &mut ours, Depth::Module, n, d, &mut json),
                "deep" => run_ours(&plain, &mut ours, Depth::Deep, n, d, &mut NoSink),
                _ => unreachable!("keys come from the table above"),
            };
        }
        if round == 0 {
            continue;
        }
        for (i, r) in res.into_iter().enumerate() {
            prefill[i].push(r.prefill_s);
            tps[i].push(r.tokens_per_s);
            step_tps[i].push(r.median_step_per_s);
            ttft[i].push(r.ttft_s * 1e3);
        }
    }
    let threads = rayon_threads();
    println!(
        "{}, prompt {} tokens, up to {n} decode tokens, {rounds} interleaved rounds (order rotating), {threads} threads, eprof kernels: {}",
        path.file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
        prompt.len(),
        eprof_kernels::best().name()
    );
    // What ran each weight type's matmuls in the eprof rows (the reference and the
    // "candle's kernels" row run candle's for all).
    if let Ok((c, _)) = eprof_models::load::read_gguf(&path) {
        println!(
            "weights (eprof rows): {}",
            eprof_models::mix_line(&eprof_models::load::weight_mix(&c), true)
        );
    }
    println!(
        "(medians; vs off: mean of the per-round differences with its 95% interval, paired t-test)"
    );
    println!(
        "JSON sink: {} events, {:.1} MB serialized over all its runs",
        json.events,
        json.bytes as f64 / 1e6
    );
    let llama = llama_cpp_rounds();
    if llama.is_some() {
        println!(
            "(vs llama.cpp: eprof's decode tok/s over llama.cpp's, llama.cpp's prefill time over eprof's, so above 1.00x eprof is faster; ratios of the means with a 95% interval, Welch: llama.cpp's rounds run before eprof's, not in pairs)"
        );
    }
    println!(
        "| variant | decode tok/s | vs off (95% interval) | verdict | decode vs llama.cpp | prefill ms | prefill vs llama.cpp |"
    );
    println!("|---|---|---|---|---|---|---|");
    if let Some((t, p, version)) = &llama {
        println!(
            "| llama.cpp (llama-cpp-python {version}) | {:.1} | | | 1.00x | {:.1} | 1.00x |",
            median(t.clone()),
            median(p.clone()) * 1e3
        );
    }
    let vs_off = |col: &[Vec<f64>], i: usize| -> (String, &'static str) {
        if i == off {
            return ("-".to_string(), "-");
        }
        match stats::compare_paired(&col[off], &col[i]) {
            Some(d) => {
                let pct = |v: f64| v / d.mean_a * 100.0;
                (
                    format!(
                        "{:+.1}% ({:+.1}% .. {:+.1}%)",
                        pct(d.diff),
                        pct(d.ci_low),
                        pct(d.ci_high)
                    ),
                    d.verdict.as_str(),
                )
            }
            None => ("-".to_string(), "-"),
        }
    };
    for i in 0..names.len() {
        let (vs, verdict) = vs_off(&tps, i);
        let (decode_ratio, prefill_ratio) = match &llama {
            Some((t, p, _)) => (ratio(t, &tps[i]), ratio(&prefill[i], p)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {:.1} | {vs} | {verdict} | {decode_ratio} | {:.1} | {prefill_ratio} |",
            names[i],
            median(tps[i].clone()),
            median(prefill[i].clone()) * 1e3,
        );
    }
    println!();
    println!(
        "The same rounds by each run's median decode step (1 / its time): a step's cost without the steps the machine takes from a run; the trace's write every 100 ms is not in it."
    );
    println!("| variant | median step, tok/s | vs off (95% interval) | verdict |");
    println!("|---|---|---|---|");
    for i in 0..names.len() {
        let (vs, verdict) = vs_off(&step_tps, i);
        println!(
            "| {} | {:.1} | {vs} | {verdict} |",
            names[i],
            median(step_tps[i].clone())
        );
    }
    println!();
    println!(
        "Time to first token (the pipeline's start to the end of prefill; the reference: its prefill), the same rounds; vs off, + is slower."
    );
    println!("| variant | time to first token, ms | vs off (95% interval) | verdict |");
    println!("|---|---|---|---|");
    for i in 0..names.len() {
        let (vs, verdict) = vs_off(&ttft, i);
        println!(
            "| {} | {:.2} | {vs} | {verdict} |",
            names[i],
            median(ttft[i].clone())
        );
    }
}

/// `mean(b) / mean(a)` with its 95% interval, from Welch's interval of `b - a`
/// (unpaired: the two sides come from separate runs).
fn ratio(a: &[f64], b: &[f64]) -> String {
    match stats::compare(a, b) {
        Some(d) => {
            let r = |v: f64| 1.0 + v / d.mean_a;
            format!(
                "{:.2}x ({:.2} .. {:.2})",
                r(d.diff),
                r(d.ci_low),
                r(d.ci_high)
            )
        }
        None => "-".into(),
    }
}

/// Threads of candle's CPU pools (eprof's kernels share them).
fn rayon_threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// `BENCH_KERNEL_TYPES` (as `EPROF_CPU_KERNEL_TYPES` takes it; default `q4_1,q5_0,q5_1`:
/// the types candle runs in scalar code): the types on eprof's kernels in the
/// `off-types` variant.
fn bench_types() -> Vec<eprof_kernels::WeightType> {
    let v = std::env::var("BENCH_KERNEL_TYPES").unwrap_or_else(|_| "q4_1,q5_0,q5_1".into());
    eprof_models::parse_kernel_types(&v).unwrap_or_else(|e| panic!("BENCH_KERNEL_TYPES: {e}"))
}

fn bench_types_name() -> String {
    let names: Vec<&str> = bench_types().iter().map(|t| t.name()).collect();
    names.join(", ")
}
