//! Instrumentation overhead on the real SmolLM2-135M Q4_1 GGUF, measured side by side
//! in one process: candle-transformers' `quantized_llama` (reference), eprof at depth
//! off, module, module with the example outliers plugin, and deep (all but off record
//! through a real session with the built-in probes and a synthetic counter, flushing
//! the trace after every step). A plugin whose probe is not selected never enters the
//! session, so it costs nothing by construction; the plugin row is the selected cost.
//!
//! Rounds are interleaved (ref, off, module, deep, ref, ...) so that machine noise
//! hits all variants alike; medians are printed.
//!
//! `cargo bench -p eprof-models --bench overhead` (EPROF_TEST_MODEL or the data
//! directory's copy; BENCH_ROUNDS, BENCH_TOKENS override the defaults 5 and 64).

use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use eprof_core::power::SourceOptions;
use eprof_core::probe::ProbeOptions;
use eprof_core::recorder::NullRecorder;
use eprof_core::{Clock, LoadedModel, ModelAdapter, Registry, Session, SessionConfig};
use eprof_format::Depth;

fn model_path() -> std::path::PathBuf {
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

/// (prefill seconds, decode tokens per second)
fn run_ref(m: &mut ModelWeights, prompt: &[u32], n: usize) -> (f64, f64) {
    let x = Tensor::new(prompt, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let t = Instant::now();
    let mut last = argmax(&m.forward(&x, 0).unwrap());
    let prefill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..n {
        let x = Tensor::new(&[last], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        last = argmax(&m.forward(&x, prompt.len() + i).unwrap());
    }
    (prefill, n as f64 / t.elapsed().as_secs_f64())
}

/// eprof's decoder; with a session, the step is flushed to the trace like the
/// pipeline does (part of the recording cost).
fn run_ours(
    m: &mut LoadedModel,
    mut session: Option<&mut Session>,
    prompt: &[u32],
    n: usize,
) -> (f64, f64) {
    m.model.clear_kv_cache();
    m.model.reserve(prompt.len() + n + 1);
    let mut step = |x: &Tensor, pos: usize, s: &mut Option<&mut Session>| -> u32 {
        match s {
            Some(s) => {
                let logits = m.model.forward(x, pos, *s).unwrap();
                s.flush().unwrap();
                argmax(&logits)
            }
            None => argmax(&m.model.forward(x, pos, &mut NullRecorder).unwrap()),
        }
    };
    let x = Tensor::new(prompt, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let t = Instant::now();
    let mut last = step(&x, 0, &mut session);
    let prefill = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..n {
        if let Some(s) = session.as_mut() {
            s.set_step(i as u32 + 1);
        }
        let x = Tensor::new(&[last], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        last = step(&x, prompt.len() + i, &mut session);
    }
    (prefill, n as f64 / t.elapsed().as_secs_f64())
}

/// Build the example plugin (release, own target folder) and load it.
fn example_plugin() -> eprof_core::Plugin {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
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
    let lib = format!(
        "{target}/release/{}eprof_example_outliers{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    eprof_core::Plugin::load(std::path::Path::new(&lib)).unwrap()
}

fn session(
    m: &LoadedModel,
    depth: Depth,
    dir: &std::path::Path,
    plugin: Option<&eprof_core::Plugin>,
) -> Session {
    let reg = Registry::discover().unwrap();
    let clock = Clock::start();
    let src = (reg.power_source("synthetic").unwrap().open)(&SourceOptions::new(
        clock,
        Duration::from_millis(100),
    ))
    .unwrap();
    let mut probes: Vec<Box<dyn eprof_core::Probe>> = reg
        .probes
        .iter()
        .filter(|p| p.min_depth <= depth)
        .map(|p| (p.create)(&ProbeOptions::default()))
        .collect();
    if let Some(p) = plugin {
        probes.extend(p.probes.iter().map(|x| x.instantiate().unwrap()));
    }
    let mut meta = eprof_format::synthetic::meta(&Default::default());
    meta.settings.depth = depth;
    Session::start(
        SessionConfig {
            meta,
            out: dir.join(format!("{}.eprof", depth.as_str())),
            clock,
            interval: Duration::from_millis(100),
            idle_baseline: Duration::ZERO,
            boundary_reads: true,
            sites: m.model.sites().to_vec(),
            probes,
            sync_device: false,
        },
        src,
    )
    .unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    eprof_power::link();
    eprof_probes::link();
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let n: usize = std::env::var("BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let path = model_path();
    let src = eprof_models::load::detect(&path).unwrap();
    let mut ours = eprof_models::LLAMA.load(&src, &Device::Cpu).unwrap();
    let (c, mut r) = eprof_models::load::read_gguf(&path).unwrap();
    let mut reference = ModelWeights::from_gguf(c, &mut r, &Device::Cpu).unwrap();
    let prompt = ours
        .tokenizer
        .encode("Give me three tips for staying healthy.", true)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    let plugin = example_plugin();
    let names = [
        "reference (quantized_llama)",
        "eprof off",
        "eprof module",
        "eprof module + outliers plugin",
        "eprof deep",
    ];
    let mut prefill: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut tps: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    // One warm-up round, not counted.
    for round in 0..=rounds {
        let mut res = Vec::new();
        reference
            .forward(
                &Tensor::new(&[1u32], &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap(),
                0,
            )
            .unwrap();
        res.push(run_ref(&mut reference, &prompt, n));
        res.push(run_ours(&mut ours, None, &prompt, n));
        for (depth, plug) in [
            (Depth::Module, None),
            (Depth::Module, Some(&plugin)),
            (Depth::Deep, None),
        ] {
            let mut s = session(&ours, depth, dir.path(), plug);
            let r = run_ours(&mut ours, Some(&mut s), &prompt, n);
            let _ = s.finish(String::new(), "bench".into());
            res.push(r);
        }
        if round == 0 {
            continue;
        }
        for (i, (p, t)) in res.into_iter().enumerate() {
            prefill[i].push(p);
            tps[i].push(t);
        }
    }
    let off = median(tps[1].clone());
    println!(
        "SmolLM2-135M-Instruct Q4_1, prompt {} tokens, {n} decode tokens, {rounds} interleaved rounds (medians)",
        prompt.len()
    );
    println!("| variant | decode tok/s | vs off | prefill ms |");
    println!("|---|---|---|---|");
    for i in 0..names.len() {
        let t = median(tps[i].clone());
        println!(
            "| {} | {:.1} | {:+.1}% | {:.1} |",
            names[i],
            t,
            (t / off - 1.0) * 100.0,
            median(prefill[i].clone()) * 1e3
        );
    }
}
