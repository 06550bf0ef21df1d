//! The one decoder-only transformer behind the llama, mistral and qwen2 adapters, with
//! its instrumentation.
//!
//! The op order follows candle-transformers' `quantized_llama` so that logits match it
//! bit for bit on GGUF weights. Instrumentation wraps each component in two clock reads
//! and one span push; at depth `off` the same code runs with every check false.

use candle_core::quantized::QMatMul;
use candle_core::{D, DType, Device, IndexOp, Module, Tensor};
use eprof_core::recorder::{Recorder, SiteId};
use eprof_core::{InstrumentedModel, Result, TensorKind};
use eprof_format::{COMPONENTS, Depth, LAYER, SiteDef};

use crate::config::DecoderConfig;

/// Model-level sites, ids 0..4.
pub const MODEL_SITES: [&str; 4] = ["embedding", "layers", "final_norm", "lm_head"];
/// Operations inside attention recorded at deep depth. Attention dropout is identity
/// at inference, so it has no operation and no timing.
pub const ATTENTION_OPS: [&str; 6] = [
    "kv_cache_append",
    "qk_matmul",
    "scale",
    "mask_apply",
    "softmax",
    "value_matmul",
];
const PER_LAYER: u32 = 1 + COMPONENTS.len() as u32 + ATTENTION_OPS.len() as u32;

const EMBEDDING: SiteId = 0;
const FINAL_NORM: SiteId = 2;
const LM_HEAD: SiteId = 3;

// Component indices in COMPONENTS.
const C_INPUT_NORM: u32 = 0;
const C_Q: u32 = 1;
const C_K: u32 = 2;
const C_V: u32 = 3;
const C_ROPE: u32 = 4;
const C_ATTN: u32 = 5;
const C_O: u32 = 6;
const C_POST_NORM: u32 = 7;
const C_GATE: u32 = 8;
const C_UP: u32 = 9;
const C_ACT: u32 = 10;
const C_DOWN: u32 = 11;

// Operation indices in ATTENTION_OPS.
const OP_KV_APPEND: u32 = 0;
const OP_QK: u32 = 1;
const OP_SCALE: u32 = 2;
const OP_MASK: u32 = 3;
const OP_SOFTMAX: u32 = 4;
const OP_VALUE: u32 = 5;

fn layer_site(l: usize) -> SiteId {
    MODEL_SITES.len() as u32 + l as u32 * PER_LAYER
}
fn comp_site(l: usize, c: u32) -> SiteId {
    layer_site(l) + 1 + c
}
fn op_site(l: usize, o: u32) -> SiteId {
    layer_site(l) + 1 + COMPONENTS.len() as u32 + o
}

/// Every site of a model with `layers` layers, in id order.
pub fn sites(layers: usize) -> Vec<SiteDef> {
    let mut v: Vec<SiteDef> = MODEL_SITES
        .iter()
        .map(|c| SiteDef {
            layer: None,
            component: c.to_string(),
            op: None,
        })
        .collect();
    for l in 0..layers as u16 {
        v.push(SiteDef {
            layer: Some(l),
            component: LAYER.into(),
            op: None,
        });
        for c in COMPONENTS {
            v.push(SiteDef {
                layer: Some(l),
                component: c.into(),
                op: None,
            });
        }
        for o in ATTENTION_OPS {
            v.push(SiteDef {
                layer: Some(l),
                component: "attention".into(),
                op: Some(o.into()),
            });
        }
    }
    v
}

/// A projection: dense (safetensors), quantized through candle (GGUF), or quantized
/// through eprof's own CPU kernels (GGUF Q4_1 / Q5_0 / Q5_1 on the CPU, which candle
/// runs in scalar code), with an optional bias.
#[derive(Debug, Clone)]
pub enum Linear {
    Dense(candle_nn::Linear),
    Quant(QMatMul, Option<Tensor>),
    Blocks(BlockLinear, Option<Tensor>),
}

impl Linear {
    /// A GGUF weight on `dev`: through eprof's kernels where they apply (and
    /// [`own_kernels`] is on), else candle's.
    pub fn quantized(
        w: std::sync::Arc<candle_core::quantized::QTensor>,
        bias: Option<Tensor>,
        dev: &Device,
    ) -> candle_core::Result<Linear> {
        if own_kernels()
            && dev.is_cpu()
            && let Some(b) = BlockLinear::from_qtensor(&w)?
        {
            return Ok(Linear::Blocks(b, bias));
        }
        Ok(Linear::Quant(QMatMul::from_arc(w)?, bias))
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (y, b) = match self {
            Linear::Dense(l) => return l.forward(x),
            Linear::Quant(m, b) => (m.forward(x)?, b),
            Linear::Blocks(m, b) => (m.forward(x)?, b),
        };
        match b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// 0: not decided yet (read `EPROF_CPU_KERNELS`), 1: eprof's, 2: candle's.
static OWN_KERNELS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether models loaded from now on use eprof's CPU kernels for Q4_1, Q5_0 and Q5_1
/// weights or candle's (the benchmark compares both in one process).
pub fn set_own_kernels(on: bool) {
    OWN_KERNELS.store(if on { 1 } else { 2 }, std::sync::atomic::Ordering::Relaxed);
}

/// eprof's kernels unless `EPROF_CPU_KERNELS=candle` (or [`set_own_kernels`]).
pub fn own_kernels() -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    match OWN_KERNELS.load(Relaxed) {
        0 => {
            let on = std::env::var("EPROF_CPU_KERNELS").map_or(true, |v| v != "candle");
            OWN_KERNELS.store(if on { 1 } else { 2 }, Relaxed);
            on
        }
        v => v == 1,
    }
}

/// A `out x in` weight matrix of GGUF blocks, multiplied by eprof-kernels: each input
/// row quantized to Q8 once, output rows split across candle's CPU threads. The
/// blocks are repacked at load in the layout the kernels read fastest
/// ([`eprof_kernels::Packed`]).
#[derive(Debug, Clone)]
pub struct BlockLinear {
    w: std::sync::Arc<eprof_kernels::Packed>,
}

impl BlockLinear {
    /// `None` for a type or shape these kernels do not handle.
    pub fn from_qtensor(
        q: &candle_core::quantized::QTensor,
    ) -> candle_core::Result<Option<BlockLinear>> {
        use candle_core::quantized::GgmlDType;
        use eprof_kernels::WeightType;
        let wt = match q.dtype() {
            GgmlDType::Q4_1 => WeightType::Q4_1,
            GgmlDType::Q5_0 => WeightType::Q5_0,
            GgmlDType::Q5_1 => WeightType::Q5_1,
            _ => return Ok(None),
        };
        let (out_features, in_features) = match q.shape().dims() {
            [o, i] => (*o, *i),
            _ => return Ok(None),
        };
        if !in_features.is_multiple_of(eprof_kernels::BLOCK) {
            return Ok(None);
        }
        let data = q.data()?;
        if data.len() != out_features * in_features / eprof_kernels::BLOCK * wt.block_bytes() {
            return Ok(None);
        }
        let w = eprof_kernels::Packed::new(wt, &data, out_features, in_features);
        Ok(Some(BlockLinear { w: w.into() }))
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let k = *dims.last().unwrap_or(&0);
        if k != self.w.cols() {
            candle_core::bail!(
                "projection expects {} inputs, got shape {:?}",
                self.w.cols(),
                dims
            );
        }
        let m = x.elem_count() / k.max(1);
        let xs: Vec<f32> = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        let at = self.w.weight_type().activation();
        let act_row = k / eprof_kernels::BLOCK * at.block_bytes();
        let mut act = Vec::with_capacity(m * act_row);
        for row in xs.chunks_exact(k) {
            eprof_kernels::quantize_activations(row, at, &mut act);
        }
        let n = self.w.rows();
        let w = &*self.w;
        // Spans of four output rows are shared out by candle's own CPU pool (a spinning
        // barrier pool with a shared cursor, the one its quantized matmuls use), so the
        // threads are awake between projections. Each span runs every input row
        // through it: a weight row is read from memory once per call, also in prefill.
        // Results are stored as f32 bits in atomics (disjoint, relaxed: plain stores).
        use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
        let out_t: Vec<AtomicU32> = (0..n * m).map(|_| AtomicU32::new(0)).collect();
        candle_core::utils::barrier_pool().execute_chunked(w.units(), |units| {
            let rows = 4 * units.start..(4 * units.end).min(n);
            let mut col = vec![0f32; rows.len()];
            for i in 0..m {
                let a = &act[i * act_row..(i + 1) * act_row];
                w.matvec_units(units.clone(), a, &mut col);
                for (r, v) in rows.clone().zip(&col) {
                    out_t[r * m + i].store(v.to_bits(), Relaxed);
                }
            }
        });
        let out: Vec<f32> = if m == 1 {
            out_t
                .into_iter()
                .map(|v| f32::from_bits(v.into_inner()))
                .collect()
        } else {
            let mut out = vec![0f32; m * n];
            for (j, row) in out_t.chunks_exact(m).enumerate() {
                for (i, v) in row.iter().enumerate() {
                    out[i * n + j] = f32::from_bits(v.load(Relaxed));
                }
            }
            out
        };
        let mut shape = dims;
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        Tensor::from_vec(out, shape, x.device())
    }
}

/// Multiply-adds of one row through an `in x out` projection, counted as 2 FLOPs each.
fn proj_flops(in_features: usize, out_features: usize) -> f32 {
    2.0 * in_features as f32 * out_features as f32
}

/// The weights of one layer.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub input_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub post_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

/// The weights of a whole model.
#[derive(Debug, Clone)]
pub struct Weights {
    pub embedding: Tensor,
    pub layers: Vec<LayerWeights>,
    pub final_norm: Tensor,
    pub lm_head: Linear,
}

/// A preallocated KV cache: appending is a copy of the new rows, not of the cache.
#[derive(Debug, Clone)]
struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
}

impl KvCache {
    fn new() -> Self {
        KvCache {
            k: None,
            v: None,
            len: 0,
        }
    }

    fn append(
        &mut self,
        k: &Tensor,
        v: &Tensor,
        reserve: usize,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let (b, h, s, d) = k.dims4()?;
        let need = self.len + s;
        let cap = self.k.as_ref().map_or(0, |t| t.dim(2).unwrap_or(0));
        if need > cap {
            let new_cap = need.max(reserve).max(cap * 2);
            let grow = |old: &Option<Tensor>| -> candle_core::Result<Tensor> {
                let t = Tensor::zeros((b, h, new_cap, d), k.dtype(), k.device())?;
                if let Some(old) = old {
                    t.slice_set(&old.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
                Ok(t)
            };
            self.k = Some(grow(&self.k)?);
            self.v = Some(grow(&self.v)?);
        }
        let (kc, vc) = match (&self.k, &self.v) {
            (Some(kc), Some(vc)) => (kc, vc),
            _ => candle_core::bail!("kv cache not allocated"),
        };
        kc.slice_set(&k.contiguous()?, 2, self.len)?;
        vc.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = need;
        Ok((kc.narrow(2, 0, need)?, vc.narrow(2, 0, need)?))
    }
}

/// What the forward pass records, decided once per call.
struct Instr<'a> {
    rec: &'a mut dyn Recorder,
    on: bool,
    deep: bool,
    sync: Option<&'a Device>,
}

impl Instr<'_> {
    #[inline]
    fn start(&self) -> candle_core::Result<u64> {
        if !self.on {
            return Ok(0);
        }
        if let Some(d) = self.sync {
            d.synchronize()?;
        }
        Ok(self.rec.now())
    }

    #[inline]
    fn end(&mut self, site: SiteId, start: u64) -> candle_core::Result<u64> {
        if !self.on {
            return Ok(0);
        }
        if let Some(d) = self.sync {
            d.synchronize()?;
        }
        let e = self.rec.now();
        self.rec.span(site, start, e);
        Ok(e)
    }

    #[inline]
    fn observe(&mut self, site: SiteId, kind: TensorKind, t: &Tensor) -> Result<()> {
        if self.on && self.rec.wants(site, kind) {
            self.rec.observe(site, kind, t)?;
        }
        Ok(())
    }

    #[inline]
    fn flops(&mut self, site: SiteId, f: f32) {
        if self.deep {
            self.rec.value(site, "model", "flops", f);
        }
    }

    /// Whether a probe wants to see `kind` at `site` (so it is worth building).
    #[inline]
    fn wants(&self, site: SiteId, kind: TensorKind) -> bool {
        self.on && self.rec.wants(site, kind)
    }

    /// `f`, timed as `site` when recording.
    #[inline]
    fn timed<T>(&mut self, site: SiteId, f: impl FnOnce() -> candle_core::Result<T>) -> Result<T> {
        let t = self.start()?;
        let y = f()?;
        self.end(site, t)?;
        Ok(y)
    }

    /// A component: `f` timed as `site`, its output shown to the probes that want it.
    #[inline]
    fn component(
        &mut self,
        site: SiteId,
        f: impl FnOnce() -> candle_core::Result<Tensor>,
    ) -> Result<Tensor> {
        let y = self.timed(site, f)?;
        self.observe(site, TensorKind::Output, &y)?;
        Ok(y)
    }

    /// An operation inside a component: timed, with its FLOPs, at deep depth only.
    #[inline]
    fn op<T>(
        &mut self,
        site: SiteId,
        flops: Option<f32>,
        f: impl FnOnce() -> candle_core::Result<T>,
    ) -> Result<T> {
        if !self.deep {
            return Ok(f()?);
        }
        let y = self.timed(site, f)?;
        if let Some(n) = flops {
            self.flops(site, n);
        }
        Ok(y)
    }
}

/// The instrumented decoder.
pub struct Decoder {
    cfg: DecoderConfig,
    w: Weights,
    cos: Tensor,
    sin: Tensor,
    neg_inf: Tensor,
    caches: Vec<KvCache>,
    sites: Vec<SiteDef>,
    device: Device,
    reserve: usize,
    fast_attention: bool,
}

/// RoPE tables as candle-transformers' `quantized_llama` computes them (same ops, so
/// the same bits), with Llama 3 frequency scaling when the config has it.
fn rope_tables(cfg: &DecoderConfig, dev: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    const MAX_SEQ_LEN: usize = 4096;
    let hd = cfg.head_dim;
    let mut theta: Vec<f32> = (0..hd)
        .step_by(2)
        .map(|i| 1f32 / cfg.rope_theta.powf(i as f32 / hd as f32))
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
        let (cos, sin) = rope_tables(&cfg, &device)?;
        let neg_inf = Tensor::new(f32::NEG_INFINITY, &device)?;
        let caches = (0..cfg.layers).map(|_| KvCache::new()).collect();
        let sites = sites(cfg.layers);
        Ok(Decoder {
            cfg,
            w,
            cos,
            sin,
            neg_inf,
            caches,
            sites,
            fast_attention: device.is_cpu() && own_kernels(),
            device,
            reserve: 512,
        })
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    fn mask(&self, seq: usize, pos: usize) -> candle_core::Result<Tensor> {
        let kv = pos + seq;
        let sw = self.cfg.sliding_window;
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
            fast_attention,
            cos,
            sin,
            ..
        } = self;
        let w = &w.layers[l];
        let (nh, nkv, hd) = (cfg.heads, cfg.kv_heads, cfg.head_dim);
        let eps = cfg.rms_norm_eps as f32;
        let layer_start = ins.start()?;
        // A projection as its component, with its FLOPs.
        let proj = |ins: &mut Instr<'_>, c: u32, lin: &Linear, input: &Tensor, fout: usize| {
            let site = comp_site(l, c);
            let y = ins.component(site, || lin.forward(input))?;
            ins.flops(site, proj_flops(input.dim(D::Minus1)?, fout) * seq as f32);
            Ok::<_, eprof_core::Error>(y)
        };

        let residual = x;
        let site = comp_site(l, C_INPUT_NORM);
        ins.observe(site, TensorKind::NormInput, x)?;
        let h = ins.component(site, || candle_nn::ops::rms_norm(x, &w.input_norm, eps))?;
        let q = proj(ins, C_Q, &w.q, &h, nh * hd)?;
        let k = proj(ins, C_K, &w.k, &h, nkv * hd)?;
        let v = proj(ins, C_V, &w.v, &h, nkv * hd)?;

        let site = comp_site(l, C_ROPE);
        let (q, k, v) = ins.timed(site, || {
            let b = q.dim(0)?;
            let q = q.reshape((b, seq, nh, hd))?.transpose(1, 2)?;
            let k = k.reshape((b, seq, nkv, hd))?.transpose(1, 2)?;
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
        ins.observe(site, TensorKind::Output, &q)?;

        let site = comp_site(l, C_ATTN);
        let t = ins.start()?;
        let at = Attention {
            cfg,
            l,
            neg_inf,
            reserve: *reserve,
            fast: *fast_attention,
        };
        let y = at.forward(&mut caches[l], &q, &k, &v, mask, ins)?;
        ins.end(site, t)?;
        ins.observe(site, TensorKind::Output, &y)?;

        let o = proj(ins, C_O, &w.o, &y, hidden)?;
        let x = (o + residual)?;

        let residual = &x;
        let site = comp_site(l, C_POST_NORM);
        ins.observe(site, TensorKind::NormInput, &x)?;
        let h = ins.component(site, || candle_nn::ops::rms_norm(&x, &w.post_norm, eps))?;
        let inter = cfg.intermediate_size;
        let g = proj(ins, C_GATE, &w.gate, &h, inter)?;
        let u = proj(ins, C_UP, &w.up, &h, inter)?;
        let a = ins.component(comp_site(l, C_ACT), || candle_nn::ops::silu(&g)? * u)?;
        let d = proj(ins, C_DOWN, &w.down, &a, hidden)?;
        let x = (d + residual)?;
        ins.end(layer_site(l), layer_start)?;
        // The residual stream after the layer, for probes that want it (plugins).
        ins.observe(layer_site(l), TensorKind::Output, &x)?;
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

/// One layer's attention: the KV cache append, then the scores, scale, mask, softmax
/// and weighted values, each an operation timed at deep depth.
struct Attention<'a> {
    cfg: &'a DecoderConfig,
    l: usize,
    neg_inf: &'a Tensor,
    reserve: usize,
    /// Decode positions through [`crate::attention`] (CPU, f32), else candle's ops.
    fast: bool,
}

impl Attention<'_> {
    fn forward(
        &self,
        cache: &mut KvCache,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        ins: &mut Instr<'_>,
    ) -> Result<Tensor> {
        let (b, nh, seq, hd) = q.dims4()?;
        let op = |o: u32| op_site(self.l, o);
        let window = self.cfg.sliding_window;
        let (k, v) = ins.op(op(OP_KV_APPEND), None, || {
            let (k, v) = cache.append(k, v, self.reserve)?;
            match window {
                // A query sees itself and the `sw` keys before it (candle-transformers'
                // Mistral convention).
                Some(sw) if seq == 1 && k.dim(2)? > sw + 1 => {
                    let n = k.dim(2)?;
                    Ok((
                        k.narrow(2, n - sw - 1, sw + 1)?,
                        v.narrow(2, n - sw - 1, sw + 1)?,
                    ))
                }
                _ => Ok((k, v)),
            }
        })?;
        let kv_len = k.dim(2)?;
        let scores_n = (nh * seq * kv_len) as f32;
        let qk_flops = 2.0 * scores_n * hd as f32;
        if self.fast && b == 1 && seq == 1 {
            let start = cache.len - kv_len;
            if let Some(y) = self.decode(cache, q, start, kv_len, ins)? {
                return Ok(y);
            }
        }
        let k = candle_transformers_repeat_kv(k, nh / self.cfg.kv_heads)?;
        let v = candle_transformers_repeat_kv(v, nh / self.cfg.kv_heads)?;
        let att = ins.op(op(OP_QK), Some(qk_flops), || q.matmul(&k.t()?))?;
        let att = ins.op(op(OP_SCALE), Some(scores_n), || att / (hd as f64).sqrt())?;
        let att = match mask {
            None => att,
            Some(m) => ins.op(op(OP_MASK), Some(scores_n), || {
                let m = m.broadcast_as(att.shape())?;
                m.where_cond(&self.neg_inf.broadcast_as(att.shape().dims())?, &att)
            })?,
        };
        // exp, sum, divide and the max pass: about five operations per score.
        let att = ins.op(op(OP_SOFTMAX), Some(5.0 * scores_n), || {
            candle_nn::ops::softmax_last_dim(&att)
        })?;
        if ins.deep {
            // Masked scores hold -inf; the softmax output is what the probes can read.
            ins.observe(op(OP_SOFTMAX), TensorKind::AttentionWeights, &att)?;
        }
        let y = ins.op(op(OP_VALUE), Some(qk_flops), || {
            att.matmul(&v.contiguous()?)
        })?;
        Ok(y.transpose(1, 2)?.reshape(&[b, seq, nh * hd])?)
    }

    /// One position against cache rows `start..start + len`, in place; `None` when the
    /// cache is not plain f32 CPU memory (candle's path then runs).
    fn decode(
        &self,
        cache: &KvCache,
        q: &Tensor,
        start: usize,
        len: usize,
        ins: &mut Instr<'_>,
    ) -> Result<Option<Tensor>> {
        use crate::attention::{DecodeAttention, scale, softmax_rows};
        use candle_core::{CpuStorage, Storage};
        let (Some(kc), Some(vc)) = (&cache.k, &cache.v) else {
            return Ok(None);
        };
        if q.dtype() != DType::F32 || kc.dtype() != DType::F32 {
            return Ok(None);
        }
        let (_, nh, _, hd) = q.dims4()?;
        let cap = kc.dim(2)?;
        let qv: Vec<f32> = q.flatten_all()?.to_vec1()?;
        let (kg, kl) = kc.storage_and_layout();
        let (vg, vl) = vc.storage_and_layout();
        let (Storage::Cpu(CpuStorage::F32(kd)), Storage::Cpu(CpuStorage::F32(vd))) = (&*kg, &*vg)
        else {
            return Ok(None);
        };
        let (Some((k0, k1)), Some((v0, v1))) = (kl.contiguous_offsets(), vl.contiguous_offsets())
        else {
            return Ok(None);
        };
        let a = DecodeAttention {
            q: &qv,
            k: &kd[k0..k1],
            v: &vd[v0..v1],
            heads: nh,
            kv_heads: self.cfg.kv_heads,
            head_dim: hd,
            cap,
            start,
            len,
        };
        if !a.valid() {
            return Ok(None);
        }
        let op = |o: u32| op_site(self.l, o);
        let scores_n = (nh * len) as f32;
        let qk_flops = 2.0 * scores_n * hd as f32;
        let mut s = ins.op(op(OP_QK), Some(qk_flops), || {
            Ok(per_head(nh, len, nh * len * hd, |h, out| {
                a.head_scores(h, out)
            }))
        })?;
        ins.op(op(OP_SCALE), Some(scores_n), || {
            scale(&mut s, (hd as f32).sqrt());
            Ok(())
        })?;
        ins.op(op(OP_SOFTMAX), Some(5.0 * scores_n), || {
            softmax_rows(&mut s, len);
            Ok(())
        })?;
        let site = op(OP_SOFTMAX);
        if ins.deep && ins.wants(site, TensorKind::AttentionWeights) {
            let att = Tensor::from_slice(&s, (1, nh, 1, len), q.device())?;
            ins.observe(site, TensorKind::AttentionWeights, &att)?;
        }
        let y = ins.op(op(OP_VALUE), Some(qk_flops), || {
            Ok(per_head(nh, hd, nh * len * hd, |h, out| {
                a.head_values(h, &s[h * len..(h + 1) * len], out)
            }))
        })?;
        Ok(Some(Tensor::from_vec(y, (1, 1, nh * hd), q.device())?))
    }
}

/// `rows x width` values, row `r` computed by `f(r, out)`. With `work` multiply-adds
/// enough to pay, rows are shared out by candle's CPU pool (the KV cache is read from
/// memory at decode: two threads stream it faster than one), stored as f32 bits in
/// atomics: disjoint rows, relaxed, plain stores.
fn per_head(
    rows: usize,
    width: usize,
    work: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    // Below this many multiply-adds one thread is done before a second would start
    // (and a tiny model would wake the pool's spinning threads for nothing).
    const PARALLEL_FROM: usize = 32 * 1024;
    if work < PARALLEL_FROM {
        let mut out = vec![0f32; rows * width];
        for (r, o) in out.chunks_exact_mut(width.max(1)).enumerate() {
            f(r, o);
        }
        return out;
    }
    let out: Vec<AtomicU32> = (0..rows * width).map(|_| AtomicU32::new(0)).collect();
    candle_core::utils::barrier_pool().execute_chunked(rows, |range| {
        let mut buf = vec![0f32; width];
        for r in range {
            f(r, &mut buf);
            for (o, v) in out[r * width..(r + 1) * width].iter().zip(&buf) {
                o.store(v.to_bits(), Relaxed);
            }
        }
    });
    out.into_iter()
        .map(|v| f32::from_bits(v.into_inner()))
        .collect()
}

/// candle-transformers' `repeat_kv` (concatenate, then reshape), copied so the op order
/// (and so the bits) are the same.
fn candle_transformers_repeat_kv(xs: Tensor, n_rep: usize) -> candle_core::Result<Tensor> {
    if n_rep == 1 {
        return Ok(xs);
    }
    let (b, n_kv, s, d) = xs.dims4()?;
    Tensor::cat(&vec![&xs; n_rep], 2)?.reshape((b, n_kv * n_rep, s, d))
}

impl InstrumentedModel for Decoder {
    fn sites(&self) -> &[SiteDef] {
        &self.sites
    }

    fn forward(&mut self, ids: &Tensor, pos: usize, rec: &mut dyn Recorder) -> Result<Tensor> {
        let depth = rec.depth();
        let sync = rec.sync_device() && !self.device.is_cpu();
        let device = self.device.clone();
        let mut ins = Instr {
            on: depth != Depth::Off,
            deep: depth == Depth::Deep,
            sync: sync.then_some(&device),
            rec,
        };
        let (_, seq) = ids.dims2()?;
        let mask = if seq > 1 {
            Some(self.mask(seq, pos)?)
        } else {
            None
        };

        let t = ins.start()?;
        let mut x = candle_nn::Embedding::new(self.w.embedding.clone(), self.cfg.hidden_size)
            .forward(ids)?;
        let e = ins.end(EMBEDDING, t)?;
        if ins.on {
            ins.rec.section("embedding", t, e);
        }
        let layers_start = e;
        for l in 0..self.cfg.layers {
            x = self.layer(l, &x, mask.as_ref(), pos, &mut ins)?;
        }
        let layers_end = ins.end(1, layers_start)?;
        if ins.on {
            ins.rec.section("layers", layers_start, layers_end);
        }

        let t = ins.start()?;
        let x = candle_nn::ops::rms_norm(&x, &self.w.final_norm, self.cfg.rms_norm_eps as f32)?;
        let x = x.i((.., seq - 1, ..))?;
        let e = ins.end(FINAL_NORM, t)?;
        if ins.on {
            ins.rec.section("final_norm", t, e);
        }
        let t = ins.start()?;
        let logits = self.w.lm_head.forward(&x)?;
        let e = ins.end(LM_HEAD, t)?;
        if ins.on {
            ins.rec.section("lm_head", t, e);
            ins.flops(
                LM_HEAD,
                2.0 * self.cfg.hidden_size as f32 * self.cfg.vocab_size as f32,
            );
        }
        Ok(logits.squeeze(0)?.to_dtype(DType::F32)?)
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

/// Largest value along the last dimension, as an index (greedy decoding).
pub fn argmax(logits: &Tensor) -> candle_core::Result<u32> {
    logits.argmax(D::Minus1)?.to_scalar::<u32>()
}
