//! The one decoder-only transformer behind the llama, mistral and qwen2 adapters, with
//! its instrumentation.
//!
//! The op order follows candle-transformers' `quantized_llama` so that logits match it
//! bit for bit on GGUF weights. Instrumentation wraps each component in two clock reads
//! and one span push; at depth `off` the same code runs with every check false.

use candle_core::{D, DType, Device, IndexOp, Module, Tensor};
use eprof_core::recorder::Recorder;
use eprof_core::{EventSpans, InstrumentedModel, Result, StreamClock, TensorKind};
use eprof_format::{Depth, SiteDef};

use crate::config::{Activation, DecoderConfig};

mod attend;
mod instr;
mod kv_cache;
mod layout;
mod linear;

use attend::Attention;
use instr::Instr;
use kv_cache::KvCache;
pub use layout::{ATTENTION_OPS, Layout, MODEL_SITES, sites};
use layout::{C, EMBEDDING, FINAL_NORM, LM_HEAD};
use linear::proj_flops;
pub use linear::{
    BlockLinear, HostOutput, Linear, check_kernel_env, own_kernels, own_weight_types,
    parse_kernel_types, set_own_kernels, set_own_weight_types,
};

/// The weights of one layer.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub input_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    /// The norm before the MLP (`post_attention_layernorm` in the Llama family,
    /// `pre_feedforward_layernorm` in Gemma 3).
    pub post_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
    /// Gemma 3: per-head norms of queries and keys, the norm on the attention output
    /// and the one on the MLP output (`None` in the Llama family).
    pub extra: Option<GemmaNorms>,
}

/// Gemma 3's four norms beyond the Llama layer's two.
#[derive(Debug, Clone)]
pub struct GemmaNorms {
    pub q_norm: Tensor,
    pub k_norm: Tensor,
    pub attn_out_norm: Tensor,
    pub mlp_out_norm: Tensor,
}

/// The weights of a whole model.
#[derive(Debug, Clone)]
pub struct Weights {
    pub embedding: Tensor,
    pub layers: Vec<LayerWeights>,
    pub final_norm: Tensor,
    pub lm_head: Linear,
}

/// The instrumented decoder.
pub struct Decoder {
    cfg: DecoderConfig,
    w: Weights,
    /// RoPE tables per distinct base; `layer_rope[l]` indexes them.
    ropes: Vec<(f32, Tensor, Tensor)>,
    layer_rope: Vec<usize>,
    layout: Layout,
    neg_inf: Tensor,
    caches: Vec<KvCache>,
    sites: Vec<SiteDef>,
    device: Device,
    reserve: usize,
    /// CPU with eprof's kernels: attention and the gated activation run as host loops
    /// (`crate::attention`, `crate::activation`) instead of candle's ops.
    host_loops: bool,
    /// Span timing by stream marks (CUDA events), `None` on the host clock.
    events: Option<EventSpans>,
}

/// RoPE tables as candle-transformers' `quantized_llama` computes them (same ops, so
/// the same bits), with Llama 3 frequency scaling when the config has it.
fn rope_tables(
    cfg: &DecoderConfig,
    base: f32,
    dev: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    const MAX_SEQ_LEN: usize = 4096;
    let hd = cfg.head_dim;
    let mut theta: Vec<f32> = (0..hd)
        .step_by(2)
        .map(|i| 1f32 / base.powf(i as f32 / hd as f32))
        .collect();
    if let Some(s) = cfg.rope_scaling {
        let low_wavelen = s.original_max_position_embeddings as f32 / s.low_freq_factor;
        let high_wavelen = s.original_max_position_embeddings as f32 / s.high_freq_factor;
        for f in &mut theta {
            let wavelen = 2.0 * std::f32::consts::PI / *f;
            if wavelen > low_wavelen {
                *f /= s.factor;
            } else if wavelen >= high_wavelen {
                let smooth = (s.original_max_position_embeddings as f32 / wavelen
                    - s.low_freq_factor)
                    / (s.high_freq_factor - s.low_freq_factor);
                *f = (1.0 - smooth) * *f / s.factor + smooth * *f;
            }
        }
    }
    let n = MAX_SEQ_LEN.max(cfg.max_position_embeddings.min(1 << 17));
    let theta = Tensor::new(theta.as_slice(), dev)?;
    let idx = Tensor::arange(0, n as u32, dev)?
        .to_dtype(DType::F32)?
        .reshape((n, 1))?
        .matmul(&theta.reshape((1, theta.elem_count()))?)?;
    Ok((idx.cos()?, idx.sin()?))
}

impl Decoder {
    pub fn new(cfg: DecoderConfig, w: Weights, device: Device) -> Result<Self> {
        let mut ropes: Vec<(f32, Tensor, Tensor)> = Vec::new();
        let mut layer_rope = Vec::with_capacity(cfg.layers);
        for l in 0..cfg.layers {
            let base = cfg.rope_theta(l);
            let i = match ropes.iter().position(|(b, _, _)| *b == base) {
                Some(i) => i,
                None => {
                    let (cos, sin) = rope_tables(&cfg, base, &device)?;
                    ropes.push((base, cos, sin));
                    ropes.len() - 1
                }
            };
            layer_rope.push(i);
        }
        // Activations run in the embedding's dtype (f32 on the CPU and for GGUF; a
        // Hugging Face bf16/f16 folder on a GPU keeps its dtype): the tables and the
        // mask value follow it, so ops never mix dtypes.
        let dt = w.embedding.dtype();
        for (_, cos, sin) in &mut ropes {
            *cos = cos.to_dtype(dt)?;
            *sin = sin.to_dtype(dt)?;
        }
        let neg_inf = Tensor::new(f32::NEG_INFINITY, &device)?.to_dtype(dt)?;
        let caches = (0..cfg.layers).map(|_| KvCache::new()).collect();
        let layout = Layout::for_config(&cfg);
        let sites = layout.sites(cfg.layers);
        Ok(Decoder {
            cfg,
            w,
            ropes,
            layer_rope,
            layout,
            neg_inf,
            caches,
            sites,
            host_loops: device.is_cpu() && own_kernels(),
            events: crate::device::stream_clock(&device)?.map(EventSpans::new),
            device,
            reserve: 512,
        })
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    fn mask(&self, seq: usize, pos: usize, sw: Option<usize>) -> candle_core::Result<Tensor> {
        let kv = pos + seq;
        let m: Vec<u8> = (0..seq)
            .flat_map(|i| {
                (0..kv).map(move |j| {
                    let q = pos + i;
                    u8::from(j > q || sw.is_some_and(|w| j + w < q))
                })
            })
            .collect();
        Tensor::from_slice(&m, (seq, kv), &self.device)
    }

    fn layer(
        &mut self,
        l: usize,
        x: &Tensor,
        mask: Option<&Tensor>,
        pos: usize,
        ins: &mut Instr<'_>,
    ) -> Result<Tensor> {
        let (_, seq, hidden) = x.dims3()?;
        let Decoder {
            cfg,
            w,
            caches,
            neg_inf,
            reserve,
            host_loops,
            ropes,
            layer_rope,
            layout,
            ..
        } = self;
        let w = &w.layers[l];
        let (nh, nkv, hd) = (cfg.heads, cfg.kv_heads, cfg.head_dim);
        let eps = cfg.rms_norm_eps as f32;
        let site = |c: C| layout.comp(l, c);
        let layer_start = ins.start()?;
        // A projection as its component, with its FLOPs.
        let proj = |ins: &mut Instr<'_>, c: C, lin: &Linear, input: &Tensor, fout: usize| {
            let y = ins.projection(site(c), lin, input)?;
            ins.flops(
                site(c),
                proj_flops(input.dim(D::Minus1)?, fout) * seq as f32,
            );
            Ok::<_, eprof_core::Error>(y)
        };
        // A norm as its component (its input shown to the probes that want it).
        let norm = |ins: &mut Instr<'_>, c: C, x: &Tensor, weight: &Tensor| {
            ins.observe(site(c), TensorKind::NormInput, x)?;
            ins.component(site(c), || {
                candle_nn::ops::rms_norm(&x.contiguous()?, weight, eps)
            })
        };

        let residual = x;
        let h = norm(ins, C::InputNorm, x, &w.input_norm)?;
        let q = proj(ins, C::Q, &w.q, &h, nh * hd)?;
        let k = proj(ins, C::K, &w.k, &h, nkv * hd)?;
        let v = proj(ins, C::V, &w.v, &h, nkv * hd)?;

        let b = q.dim(0)?;
        let mut q = q.reshape((b, seq, nh, hd))?.transpose(1, 2)?;
        let mut k = k.reshape((b, seq, nkv, hd))?.transpose(1, 2)?;
        if let Some(g) = &w.extra {
            q = norm(ins, C::QNorm, &q, &g.q_norm)?;
            k = norm(ins, C::KNorm, &k, &g.k_norm)?;
        }
        let (cos, sin) = {
            let (_, c, s) = &ropes[layer_rope[l]];
            (c, s)
        };
        let (q, k, v) = ins.timed(site(C::Rope), || {
            let v = v
                .reshape((b, seq, nkv, hd))?
                .transpose(1, 2)?
                .contiguous()?;
            Ok((
                rope(cfg, cos, sin, &q, pos)?,
                rope(cfg, cos, sin, &k, pos)?,
                v,
            ))
        })?;
        ins.observe(site(C::Rope), TensorKind::Output, &q)?;

        let t = ins.start()?;
        let at = Attention {
            cfg,
            layout,
            l,
            window: cfg.window(l),
            neg_inf,
            reserve: *reserve,
            fast: *host_loops,
        };
        let y = at.forward(&mut caches[l], &q, &k, &v, mask, ins)?;
        ins.end(site(C::Attn), t)?;
        ins.observe(site(C::Attn), TensorKind::Output, &y)?;

        let mut o = proj(ins, C::O, &w.o, &y, hidden)?;
        if let Some(g) = &w.extra {
            o = norm(ins, C::AttnOutNorm, &o, &g.attn_out_norm)?;
        }
        let x = (o + residual)?;

        let residual = &x;
        let h = norm(ins, C::PreMlpNorm, &x, &w.post_norm)?;
        let inter = cfg.intermediate_size;
        let g = proj(ins, C::Gate, &w.gate, &h, inter)?;
        let u = proj(ins, C::Up, &w.up, &h, inter)?;
        let a = ins.component(site(C::Act), || {
            if *host_loops && g.dtype() == DType::F32 {
                // One pass over host memory (CPU, f32): `crate::activation`.
                let (gv, uv): (Vec<f32>, Vec<f32>) =
                    (g.flatten_all()?.to_vec1()?, u.flatten_all()?.to_vec1()?);
                // A prompt's rows shared out to the threads; about 20 operations an
                // element is the work `per_head` weighs.
                let rows = gv.len() / inter.max(1);
                let a = attend::per_head(rows, inter, 20 * gv.len(), |r, out| {
                    let at = r * inter..(r + 1) * inter;
                    crate::activation::gated_into(cfg.activation, &gv[at.clone()], &uv[at], out)
                });
                return Tensor::from_vec(a, g.shape(), g.device());
            }
            let g = match cfg.activation {
                Activation::Silu => candle_nn::ops::silu(&g)?,
                Activation::GeluTanh => g.gelu()?,
            };
            g * u
        })?;
        let mut d = proj(ins, C::Down, &w.down, &a, hidden)?;
        if let Some(g) = &w.extra {
            d = norm(ins, C::MlpOutNorm, &d, &g.mlp_out_norm)?;
        }
        let x = (d + residual)?;
        ins.end(layout.layer(l), layer_start)?;
        // The residual stream after the layer, for probes that want it (plugins).
        ins.observe(layout.layer(l), TensorKind::Output, &x)?;
        Ok(x)
    }
}

/// RoPE on `(b, heads, seq, head_dim)` from position `pos`.
fn rope(
    cfg: &DecoderConfig,
    cos: &Tensor,
    sin: &Tensor,
    x: &Tensor,
    pos: usize,
) -> candle_core::Result<Tensor> {
    let (_, _, s, _) = x.dims4()?;
    let cos = cos.narrow(0, pos, s)?;
    let sin = sin.narrow(0, pos, s)?;
    let x = x.contiguous()?;
    if cfg.rope_interleaved {
        candle_nn::rotary_emb::rope_i(&x, &cos, &sin)
    } else {
        candle_nn::rotary_emb::rope(&x, &cos, &sin)
    }
}

impl InstrumentedModel for Decoder {
    fn sites(&self) -> &[SiteDef] {
        &self.sites
    }

    fn forward(&mut self, ids: &Tensor, pos: usize, rec: &mut dyn Recorder) -> Result<Tensor> {
        // Stream marks (a GPU with events): taken out for the call, so the layers can
        // borrow the model, and put back whatever happens.
        let mut events = match rec.depth() {
            Depth::Off => None,
            _ => self.events.take(),
        };
        let r = match events.as_mut() {
            None => self.forward_timed(ids, pos, rec, None),
            Some(ev) => ev.begin(rec).and_then(|()| {
                let logits = self.forward_timed(ids, pos, rec, Some(ev))?;
                // The step's one synchronization: every span's time is read now.
                ev.finish(rec)?;
                Ok(logits)
            }),
        };
        if events.is_some() {
            self.events = events;
        }
        r
    }

    fn clear_kv_cache(&mut self) {
        for c in &mut self.caches {
            *c = KvCache::new();
        }
    }

    fn reserve(&mut self, tokens: usize) {
        self.reserve = tokens;
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

impl Decoder {
    /// Time spans with `clock`'s stream marks instead of the host clock (what a CUDA
    /// device gets by default; tests give a CPU model a [`eprof_core::HostStreamClock`]).
    pub fn with_stream_clock(mut self, clock: Box<dyn StreamClock>) -> Self {
        self.events = Some(EventSpans::new(clock));
        self
    }

    /// Whether spans are timed by stream marks (see [`Decoder::with_stream_clock`]).
    pub fn times_by_stream_marks(&self) -> bool {
        self.events.is_some()
    }

    fn forward_timed(
        &mut self,
        ids: &Tensor,
        pos: usize,
        rec: &mut dyn Recorder,
        events: Option<&mut EventSpans>,
    ) -> Result<Tensor> {
        let depth = rec.depth();
        let sync = events.is_none() && rec.sync_device() && !self.device.is_cpu();
        let device = self.device.clone();
        let mut ins = Instr {
            on: depth != Depth::Off,
            deep: depth == Depth::Deep,
            sync: sync.then_some(&device),
            events,
            rec,
        };
        let (_, seq) = ids.dims2()?;
        // One mask per distinct window (Gemma 3: local and global layers), at prefill.
        let mut masks: Vec<(Option<usize>, Tensor)> = Vec::new();
        if seq > 1 {
            for l in 0..self.cfg.layers {
                let w = self.cfg.window(l);
                if !masks.iter().any(|(mw, _)| *mw == w) {
                    masks.push((w, self.mask(seq, pos, w)?));
                }
            }
        }

        let t = ins.start()?;
        let mut x = candle_nn::Embedding::new(self.w.embedding.clone(), self.cfg.hidden_size)
            .forward(ids)?;
        if self.cfg.gemma3.is_some() {
            // Gemma scales embeddings by √hidden (as candle-transformers' gemma3).
            x = (x * (self.cfg.hidden_size as f64).sqrt())?;
        }
        let e = ins.end(EMBEDDING, t)?;
        ins.section("embedding", t, e);
        let layers_start = e;
        for l in 0..self.cfg.layers {
            let w = self.cfg.window(l);
            let mask = masks.iter().find(|(mw, _)| *mw == w).map(|(_, m)| m);
            x = self.layer(l, &x, mask, pos, &mut ins)?;
        }
        let layers_end = ins.end(1, layers_start)?;
        ins.section("layers", layers_start, layers_end);

        let t = ins.start()?;
        let x = candle_nn::ops::rms_norm(&x, &self.w.final_norm, self.cfg.rms_norm_eps as f32)?;
        let x = x.i((.., seq - 1, ..))?;
        let e = ins.end(FINAL_NORM, t)?;
        ins.section("final_norm", t, e);
        let t = ins.start()?;
        let logits = self.w.lm_head.forward(&x)?;
        let e = ins.end(LM_HEAD, t)?;
        ins.section("lm_head", t, e);
        if ins.on {
            ins.flops(
                LM_HEAD,
                2.0 * self.cfg.hidden_size as f32 * self.cfg.vocab_size as f32,
            );
        }
        Ok(logits.squeeze(0)?.to_dtype(DType::F32)?)
    }
}

/// Largest value along the last dimension, as an index (greedy decoding).
pub fn argmax(logits: &Tensor) -> candle_core::Result<u32> {
    logits.argmax(D::Minus1)?.to_scalar::<u32>()
}
