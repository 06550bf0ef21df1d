//! What module depth costs per token, without a model: a real [`Session`] (trace
//! file, sampler thread) fed a SmolLM2-135M-shaped step: 30 layers of 12 components,
//! each a span with two clock reads and its output shown to the `activation` probe
//! (the one probe module depth enables: 270,720 values and 1,440 metric values per
//! token), then the step's flush. Variants are interleaved in each round and the
//! per-token medians printed side by side, to set against a decode step's time
//! (5.3 ms at 188 tok/s in the overhead benchmark). Twice: with everything in cache,
//! and with 256 KB of "weights" streamed before each component, as a real step
//! streams its matmuls' weights (the stand-in for a real run: it evicts the session's
//! buffers between observations). The calls are also timed from inside, which does
//! not depend on subtracting the streaming. Printed, not asserted.
//!
//! `cargo bench -p eprof-probes --bench record`

use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use eprof_core::probe::ProbeOptions;
use eprof_core::{
    Clock, PowerSource, ProbeRegistration, Reading, Recorder, Session, SessionConfig, TensorKind,
};
use eprof_format::{Depth, PowerSourceDesc, SiteDef};

const LAYERS: u16 = 30;
/// SmolLM2-135M's component outputs (hidden 576, k/v 192, MLP 1,536).
const COMPONENTS: [(&str, usize); 12] = [
    ("input_layernorm", 576),
    ("q_proj", 576),
    ("k_proj", 192),
    ("v_proj", 192),
    ("rope", 576),
    ("attention", 576),
    ("o_proj", 576),
    ("post_attention_layernorm", 576),
    ("gate_proj", 1536),
    ("up_proj", 1536),
    ("act", 1536),
    ("down_proj", 576),
];

/// A counter that reads a constant power, instantly.
struct Constant(Clock);

impl PowerSource for Constant {
    fn desc(&self) -> PowerSourceDesc {
        eprof_format::synthetic::trace(&Default::default())
            .meta
            .power
    }
    fn read(&mut self) -> eprof_core::Result<Reading> {
        Ok(Reading::new(vec![Some(self.0.now() as f64 * 1e-8)]))
    }
}

#[derive(Clone, Copy, Debug)]
enum Variant {
    /// Spans only (what `--no-probes` leaves).
    Spans,
    /// Spans and the activation probe on every component output.
    Probes,
}

fn session(variant: Variant, dir: &std::path::Path) -> Session {
    let mut sites = Vec::new();
    for l in 0..LAYERS {
        sites.push(SiteDef {
            layer: Some(l),
            component: eprof_format::Component::Layer.into(),
            op: None,
        });
        for (c, _) in COMPONENTS {
            sites.push(SiteDef {
                layer: Some(l),
                component: c.into(),
                op: None,
            });
        }
    }
    let probes = match variant {
        Variant::Spans => Vec::new(),
        Variant::Probes => inventory::iter::<ProbeRegistration>()
            .filter(|r| r.name == "activation")
            .map(|r| (r.create)(&ProbeOptions::default()))
            .collect(),
    };
    let mut meta = eprof_format::synthetic::trace(&Default::default()).meta;
    meta.settings.depth = Depth::Module;
    let clock = Clock::start();
    Session::start(
        SessionConfig {
            meta,
            out: dir.join(format!("{variant:?}.eprof")),
            clock,
            interval: Duration::from_millis(100),
            idle_baseline: Duration::ZERO,
            cancel: None,
            boundary_reads: true,
            sites,
            sync_device: false,
            probes,
            group: None,
            execution: None,
        },
        Box::new(Constant(clock)),
    )
    .expect("session starts")
}

/// What runs between two instrumentation calls, as a decode step would.
#[derive(Clone, Copy)]
enum Between<'a> {
    /// Nothing: every structure the instrumentation touches stays in cache.
    Nothing,
    /// A matmul's worth of weights streamed through the caches before each
    /// component (SmolLM2 reads about 90 MB of weights per token, 250 KB per
    /// component): what evicts the session's buffers, the probe's state and the
    /// tensor's metadata between two observations in a real run.
    Weights(&'a [u64]),
}

/// Stream the next `STREAM` bytes of `w` (from `at`), one read per cache line.
const STREAM: usize = 256 << 10;
fn stream(w: &[u64], at: &mut usize) -> u64 {
    let n = STREAM / 8;
    if *at + n > w.len() {
        *at = 0;
    }
    let acc = w[*at..*at + n].iter().step_by(8).fold(0u64, |a, &v| a ^ v);
    *at += n;
    acc
}

/// Record `tokens` steps (or, with `s` None, only what runs between the calls);
/// seconds per token: in all, and inside the component spans' instrumentation calls
/// and the flush (timed around them).
fn run(
    mut s: Option<&mut Session>,
    outputs: &[Vec<f32>],
    between: Between<'_>,
    first_step: u32,
    tokens: u32,
) -> (f64, f64) {
    let mut at = 0usize;
    let mut sink = 0u64;
    let mut inside = 0u64;
    let t = Instant::now();
    for step in first_step..first_step + tokens {
        if let Some(s) = s.as_deref_mut() {
            s.set_step(step);
            let _ = s.boundary();
        }
        let mut site = 0u32;
        for _ in 0..LAYERS {
            let layer = site;
            site += 1;
            let l0 = s.as_deref().map_or(0, |s| s.now());
            for out in outputs {
                let t0 = s.as_deref().map_or(0, |s| s.now());
                if let Between::Weights(w) = between {
                    sink ^= stream(w, &mut at);
                }
                // A fresh output, as the component would make it (in every variant).
                let out =
                    Tensor::from_vec(out.clone(), (1, 1, out.len()), &Device::Cpu).expect("tensor");
                if let Some(s) = s.as_deref_mut() {
                    let a = s.now();
                    s.span(site, t0, s.now());
                    s.observe(site, TensorKind::Output, &out).expect("observe");
                    inside += s.now() - a;
                }
                site += 1;
            }
            if let Some(s) = s.as_deref_mut() {
                s.span(layer, l0, s.now());
            }
        }
        if let Some(s) = s.as_deref_mut() {
            let a = s.now();
            s.flush().expect("flush");
            inside += s.now() - a;
        }
    }
    std::hint::black_box(sink);
    let all = t.elapsed().as_secs_f64() / f64::from(tokens);
    let inside = inside as f64 * 1e-9 / f64::from(tokens);
    (all, inside)
}

fn main() {
    eprof_probes::link();
    let dir = std::env::temp_dir().join(format!("eprof-record-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let outputs: Vec<Vec<f32>> = COMPONENTS
        .iter()
        .map(|&(_, n)| {
            (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect()
        })
        .collect();
    // 96 MB of "weights", more than this machine's caches hold.
    let weights: Vec<u64> = (0..(96usize << 20) / 8).map(|i| i as u64).collect();
    let variants = [Variant::Spans, Variant::Probes];
    let mut sessions: Vec<Session> = variants.iter().map(|&v| session(v, &dir)).collect();
    let (rounds, tokens) = (21, 60u32);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "per SmolLM2-shaped token ({} spans, {} activation observations, {} metric values), median of {rounds} rounds x {tokens} tokens:",
        u32::from(LAYERS) * 13,
        u32::from(LAYERS) * 12,
        u32::from(LAYERS) * 12 * 4
    );
    for (name, between) in [
        ("in cache", Between::Nothing),
        (
            "weights streamed between components",
            Between::Weights(&weights),
        ),
    ] {
        // [bare, spans, probes] per round, interleaved.
        let mut per: Vec<Vec<f64>> = vec![Vec::new(); 3];
        let mut inside: Vec<Vec<f64>> = vec![Vec::new(); 3];
        for r in 0..rounds {
            per[0].push(run(None, &outputs, between, 0, tokens).0);
            for (k, s) in sessions.iter_mut().enumerate() {
                let (all, ins) = run(Some(s), &outputs, between, r * tokens, tokens);
                per[k + 1].push(all);
                inside[k + 1].push(ins);
            }
        }
        let bare = median(&mut per[0]);
        println!(
            "{name}: the step without instrumentation {:.1} us",
            bare * 1e6
        );
        let spans = median(&mut per[1]) - bare;
        let probes = median(&mut per[2]) - bare;
        println!("  spans and flush:            {:7.1} us", spans * 1e6);
        println!(
            "  the activation probe:       {:7.1} us",
            (probes - spans) * 1e6
        );
        println!(
            "  all of it:                  {:7.1} us ({:.2}% of a 5.3 ms decode step)",
            probes * 1e6,
            probes / 5.3e-3 * 100.0
        );
        let (si, pi) = (median(&mut inside[1]), median(&mut inside[2]));
        println!(
            "  timed inside the calls:     spans {:.1} us, with the probe {:.1} us",
            si * 1e6,
            pi * 1e6
        );
    }
    for s in sessions {
        let _ = s.finish(String::new(), eprof_format::RunStop::MaxTokens);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
