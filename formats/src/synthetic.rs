//! Deterministic synthetic traces of any size, for benchmarks, tests, the golden file
//! and viewer demos. Nothing here pretends to be a measurement: the model is named
//! `synthetic`, its power source `synthetic`, and the durations follow a fixed pattern.

use crate::model::*;

/// Shape of a synthetic trace.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub layers: u16,
    pub depth: Depth,
    /// Constant power of the synthetic source, watts.
    pub watts: f64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            prompt_tokens: 5,
            generated_tokens: 8,
            layers: 4,
            depth: Depth::Module,
            watts: 10.0,
        }
    }
}

/// Operations inside attention at deep depth, in execution order.
pub const DEEP_OPS: [&str; 5] = [
    "qk_matmul",
    "scale",
    "mask_apply",
    "softmax",
    "value_matmul",
];

pub fn meta(shape: &Shape) -> RunMeta {
    RunMeta {
        id: "00000000synth001".into(),
        created_at_ms: 1_767_225_600_000,
        prompt: "Give me three tips for staying healthy.".into(),
        model: ModelIdentity {
            name: "synthetic".into(),
            architecture: "llama".into(),
            path: String::new(),
            file_hash: String::new(),
            parameters: 0,
            layers: u32::from(shape.layers),
            hidden_size: 64,
            heads: 4,
            kv_heads: 2,
            vocab_size: 256,
            dtype: "f32".into(),
            random_weights: true,
        },
        settings: Settings {
            depth: shape.depth,
            max_tokens: shape.generated_tokens,
            ..Settings::default()
        },
        machine: Machine {
            hostname: "synthetic".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            cpu: "synthetic cpu".into(),
            cpu_cores: 2,
            memory_bytes: 24 << 30,
            gpu: None,
        },
        power: PowerSourceDesc {
            name: "synthetic".into(),
            kind: SourceKind::Counter,
            channels: vec![Channel {
                name: "package".into(),
                kind: ChannelKind::Package,
                in_total: true,
            }],
            nominal_resolution_ns: 1_000_000,
            details: vec![("waveform".into(), format!("constant {} W", shape.watts))],
        },
        software: "eprof-format synthetic".into(),
        tags: vec!["synthetic".into()],
        experiment: None,
    }
}

/// Build a complete synthetic trace.
pub fn trace(shape: &Shape) -> Trace {
    let mut t = Trace::new(meta(shape));
    let site_ids = add_sites(&mut t, shape);

    let mut now = 0u64;
    let mut samples_at = vec![0u64];
    let section = |t: &mut Trace, phase: Phase, name: &str, step, start, end| {
        t.sections.push(Section {
            phase,
            name: name.into(),
            step,
            start_ns: start,
            end_ns: end,
        })
    };
    let pre_end = now + 2_000_000;
    section(
        &mut t,
        Phase::PreInference,
        "tokenization",
        None,
        now,
        now + 1_500_000,
    );
    section(
        &mut t,
        Phase::PreInference,
        "pre_inference",
        None,
        now,
        pre_end,
    );
    now = pre_end;
    for p in 0..shape.prompt_tokens {
        t.tokens.push(Token {
            position: p,
            id: 100 + p,
            text: format!("p{p}"),
            phase: TokenPhase::Prompt,
            step: None,
        });
    }
    let prefill_start = now;
    let mut decode_start = now;
    for step in 0..shape.generated_tokens {
        let start = now;
        let comp_ns = if step == 0 {
            20_000 * u64::from(shape.prompt_tokens.max(1))
        } else {
            20_000
        };
        now = step_spans(&mut t, shape, &site_ids, step, comp_ns, now);
        now += 150_000; // lm_head, sampling
        let end = now;
        if step == 0 {
            section(&mut t, Phase::Prefill, "prefill", None, prefill_start, end);
            decode_start = end;
        } else {
            section(
                &mut t,
                Phase::Decode,
                "sampling",
                Some(step),
                end - 50_000,
                end,
            );
        }
        t.tokens.push(Token {
            position: shape.prompt_tokens + step,
            id: 1000 + step,
            text: format!(" tok{step}"),
            phase: if step == 0 {
                TokenPhase::Prefill
            } else {
                TokenPhase::Decode
            },
            step: Some(Step {
                index: step,
                start_ns: start,
                end_ns: end,
            }),
        });
        samples_at.push(end);
    }
    section(&mut t, Phase::Decode, "decode", None, decode_start, now);
    section(
        &mut t,
        Phase::PostInference,
        "post_inference",
        None,
        now,
        now + 500_000,
    );
    now += 500_000;
    finish(&mut t, shape, samples_at, now);
    t
}

/// Per layer: the layer's site, its components' and (at deep depth) its operations'.
type LayerSites = (u32, Vec<u32>, Vec<u32>);

/// The sites of `shape`'s layers, added to `t`.
fn add_sites(t: &mut Trace, shape: &Shape) -> Vec<LayerSites> {
    let mut site_ids = Vec::new();
    for l in 0..shape.layers {
        let layer = t.sites.len() as u32;
        t.sites.push(SiteDef {
            layer: Some(l),
            component: Component::Layer.into(),
            op: None,
        });
        let mut comps = Vec::new();
        for c in COMPONENTS {
            comps.push(t.sites.len() as u32);
            t.sites.push(SiteDef {
                layer: Some(l),
                component: c.into(),
                op: None,
            });
        }
        let mut ops = Vec::new();
        if shape.depth == Depth::Deep {
            for op in DEEP_OPS {
                ops.push(t.sites.len() as u32);
                t.sites.push(SiteDef {
                    layer: Some(l),
                    component: "attention".into(),
                    op: Some(op.into()),
                });
            }
        }
        site_ids.push((layer, comps, ops));
    }
    site_ids
}

/// One step's spans (every layer, its components and operations) and metrics, from
/// `now`; returns when they end.
fn step_spans(
    t: &mut Trace,
    shape: &Shape,
    site_ids: &[LayerSites],
    step: u32,
    comp_ns: u64,
    mut now: u64,
) -> u64 {
    for (l, (layer, comps, ops)) in site_ids.iter().enumerate() {
        let layer_start = now;
        for (ci, &c) in comps.iter().enumerate() {
            let d = comp_ns + (ci as u64 * 997 + l as u64 * 131 + u64::from(step) * 7) % 5_000;
            if ci == 5 {
                let mut op_t = now;
                for &o in ops {
                    t.spans.push(step, o, op_t, op_t + d / 8);
                    op_t += d / 6;
                }
            }
            t.spans.push(step, c, now, now + d);
            if shape.depth != Depth::Off {
                let x = (step as f32 + 1.0) * 0.01 + l as f32 * 0.1 + ci as f32 * 0.001;
                for (m, v) in [
                    ("mean", x),
                    ("std", 1.0 + x),
                    ("max", 4.0 + x),
                    ("sparsity", 0.1),
                ] {
                    push_metric(t, "activation", m, step, c, v);
                }
            }
            now += d + 300;
        }
        t.spans.push(step, *layer, layer_start, now);
    }
    now
}

/// The readings (at step ends and every 100 ms, constant power), notes and end.
fn finish(t: &mut Trace, shape: &Shape, mut samples_at: Vec<u64>, now: u64) {
    samples_at.push(now);
    let mut tick = 100_000_000;
    while tick < now {
        samples_at.push(tick);
        tick += 100_000_000;
    }
    samples_at.sort_unstable();
    samples_at.dedup();
    t.samples = samples_at
        .into_iter()
        .map(|ts| PowerSample {
            t0_ns: ts,
            t1_ns: ts,
            values: vec![Some(shape.watts * ts as f64 * 1e-9)],
        })
        .collect();
    t.sections
        .sort_by_key(|s| (s.start_ns, std::cmp::Reverse(s.end_ns)));
    t.notes.push(Note {
        t_ns: 0,
        level: NoteLevel::Info,
        text: "synthetic trace: deterministic durations, constant power".into(),
    });
    t.end = Some(RunEnd {
        generated_text: (0..shape.generated_tokens)
            .map(|s| format!(" tok{s}"))
            .collect(),
        stop_reason: RunStop::MaxTokens,
        end_ns: now,
        observed_spacing_ns: 100_000_000,
        max_spacing_ns: 100_000_000,
        stale_reads: 0,
    });
}

fn push_metric(t: &mut Trace, probe: &str, metric: &str, step: u32, site: u32, v: f32) {
    match t
        .metrics
        .iter_mut()
        .find(|m| m.probe == probe && m.metric == metric)
    {
        Some(m) => m.push(step, site, v),
        None => {
            let mut m = MetricSeries::new(probe, metric);
            m.push(step, site, v);
            t.metrics.push(m);
        }
    }
}
