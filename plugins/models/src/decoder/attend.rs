//! One layer's attention: candle's ops, or (CPU, f32) the loops of
//! `crate::attention` over the KV cache's own memory, for decode and for prompts.

use candle_core::{DType, Tensor};
use eprof_core::{Result, TensorKind};

use super::instr::Instr;
use super::kv_cache::KvCache;
use super::layout::{Layout, OP_KV_APPEND, OP_MASK, OP_QK, OP_SCALE, OP_SOFTMAX, OP_VALUE};
use crate::config::DecoderConfig;

/// One layer's attention: the KV cache append, then the scores, scale, mask, softmax
/// and weighted values, each an operation timed at deep depth.
pub(super) struct Attention<'a> {
    pub(super) cfg: &'a DecoderConfig,
    pub(super) layout: &'a Layout,
    pub(super) l: usize,
    /// The keys a query sees besides itself (`None`: all before it).
    pub(super) window: Option<usize>,
    pub(super) neg_inf: &'a Tensor,
    pub(super) reserve: usize,
    /// Decode and prompt positions through [`crate::attention`] (CPU, f32), else
    /// candle's ops.
    pub(super) fast: bool,
}

impl Attention<'_> {
    /// Scores are divided by this: √head_dim (Gemma 3: √query_pre_attn_scalar).
    fn divisor(&self) -> f64 {
        let d = self
            .cfg
            .gemma3
            .map_or(self.cfg.head_dim, |g| g.query_pre_attn_scalar);
        (d as f64).sqrt()
    }

    pub(super) fn forward(
        &self,
        cache: &mut KvCache,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
        ins: &mut Instr<'_>,
    ) -> Result<Tensor> {
        let (b, nh, seq, hd) = q.dims4()?;
        let op = |o: u32| self.layout.op(self.l, o);
        let window = self.window;
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
        // (A query in another dtype, e.g. a bf16 checkpoint's, stays on candle's path.)
        if self.fast && b == 1 && q.dtype() == DType::F32 {
            let qv: Vec<f32> = q.flatten_all()?.to_vec1()?;
            let fast = with_cache_memory(cache, q, |kv| {
                if seq == 1 {
                    self.decode(&qv, q, kv, cache.len - kv_len, kv_len, ins)
                } else {
                    self.prompt(&qv, q, kv, cache.len - seq, ins)
                }
            })?;
            if let Some(y) = fast {
                return Ok(y);
            }
        }
        let k = candle_transformers_repeat_kv(k, nh / self.cfg.kv_heads)?;
        let v = candle_transformers_repeat_kv(v, nh / self.cfg.kv_heads)?;
        let att = ins.op(op(OP_QK), Some(qk_flops), || q.matmul(&k.t()?))?;
        let att = ins.op(op(OP_SCALE), Some(scores_n), || att / self.divisor())?;
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
    /// shapes do not hold (candle's path then runs).
    fn decode(
        &self,
        qv: &[f32],
        q: &Tensor,
        kv: KvMemory<'_>,
        start: usize,
        len: usize,
        ins: &mut Instr<'_>,
    ) -> Result<Option<Tensor>> {
        use crate::attention::{DecodeAttention, scale, softmax_rows};
        let (_, nh, _, hd) = q.dims4()?;
        let a = DecodeAttention {
            q: qv,
            k: kv.k,
            v: kv.v,
            heads: nh,
            kv_heads: self.cfg.kv_heads,
            head_dim: hd,
            cap: kv.cap,
            start,
            len,
        };
        if !a.valid() {
            return Ok(None);
        }
        if !ins.deep {
            // Nothing times the four operations apart: each head's scores, scale,
            // softmax and weighted values in one pass, one dispatch to the threads
            // (the same arithmetic per head, so the same bits as the steps below).
            let div = self.divisor() as f32;
            let y = per_head(nh, hd, 2 * nh * len * hd, |h, out| {
                let mut s = vec![0f32; len];
                a.head_scores(h, &mut s);
                scale(&mut s, div);
                softmax_rows(&mut s, len);
                a.head_values(h, &s, out);
            });
            return Ok(Some(Tensor::from_vec(y, (1, 1, nh * hd), q.device())?));
        }
        let op = |o: u32| self.layout.op(self.l, o);
        let scores_n = (nh * len) as f32;
        let qk_flops = 2.0 * scores_n * hd as f32;
        let mut s = ins.op(op(OP_QK), Some(qk_flops), || {
            Ok(per_head(nh, len, nh * len * hd, |h, out| {
                a.head_scores(h, out)
            }))
        })?;
        ins.op(op(OP_SCALE), Some(scores_n), || {
            scale(&mut s, self.divisor() as f32);
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

    /// A prompt's positions against the cache (prefill), in place: only the scores a
    /// position sees are computed; `None` when the shapes do not hold (candle's path
    /// then runs). Each step timed as candle's path times it.
    fn prompt(
        &self,
        qv: &[f32],
        q: &Tensor,
        kv: KvMemory<'_>,
        first: usize,
        ins: &mut Instr<'_>,
    ) -> Result<Option<Tensor>> {
        use crate::attention::{PromptAttention, scale, softmax_rows};
        let (_, nh, seq, hd) = q.dims4()?;
        let a = PromptAttention {
            q: qv,
            k: kv.k,
            v: kv.v,
            heads: nh,
            kv_heads: self.cfg.kv_heads,
            head_dim: hd,
            cap: kv.cap,
            queries: seq,
            first,
            window: self.window,
        };
        if !a.valid() {
            return Ok(None);
        }
        let (rows, n) = (nh * seq, a.keys());
        // About half the scores are seen (causal): the work `per_head` weighs.
        let work = rows * n * hd / 2;
        // Output row `i * heads + h` is score row `h * seq + i`: the layer's
        // `[seq][heads * head_dim]` as it is.
        let score_row = |o: usize| (o % nh) * seq + o / nh;
        if !ins.deep {
            // As decode's: each row's scores, scale, mask, softmax and weighted values
            // in one pass, rows shared out to the threads (the steps below run one
            // after another on one thread, apart from the two products), the same
            // arithmetic per row, so the same bits.
            let div = self.divisor() as f32;
            let kt = a.transposed_keys();
            let y = per_head(rows, hd, 2 * work, |o, out| {
                let r = score_row(o);
                let mut s = vec![0f32; n];
                a.row_scores(&kt, r, &mut s);
                scale(&mut s, div);
                a.mask_row(r, &mut s);
                softmax_rows(&mut s, n);
                a.row_values(r, &s, out);
            });
            return Ok(Some(Tensor::from_vec(y, (1, seq, nh * hd), q.device())?));
        }
        let op = |o: u32| self.layout.op(self.l, o);
        // The FLOPs of the whole score matrix, as candle's path counts them.
        let scores_n = (rows * n) as f32;
        let qk_flops = 2.0 * scores_n * hd as f32;
        let mut s = ins.op(op(OP_QK), Some(qk_flops), || {
            let kt = a.transposed_keys();
            Ok(per_head(rows, n, work, |r, out| a.row_scores(&kt, r, out)))
        })?;
        ins.op(op(OP_SCALE), Some(scores_n), || {
            scale(&mut s, self.divisor() as f32);
            Ok(())
        })?;
        ins.op(op(OP_MASK), Some(scores_n), || {
            for (r, row) in s.chunks_exact_mut(n).enumerate() {
                a.mask_row(r, row);
            }
            Ok(())
        })?;
        ins.op(op(OP_SOFTMAX), Some(5.0 * scores_n), || {
            softmax_rows(&mut s, n);
            Ok(())
        })?;
        let site = op(OP_SOFTMAX);
        if ins.deep && ins.wants(site, TensorKind::AttentionWeights) {
            let att = Tensor::from_slice(&s, (1, nh, seq, n), q.device())?;
            ins.observe(site, TensorKind::AttentionWeights, &att)?;
        }
        let y = ins.op(op(OP_VALUE), Some(qk_flops), || {
            Ok(per_head(rows, hd, work, |o, out| {
                let r = score_row(o);
                a.row_values(r, &s[r * n..(r + 1) * n], out)
            }))
        })?;
        Ok(Some(Tensor::from_vec(y, (1, seq, nh * hd), q.device())?))
    }
}

/// A layer's KV caches as plain f32 CPU memory, each whole (`[kv_heads][cap][head_dim]`):
/// what the loops of `crate::attention` read.
#[derive(Clone, Copy)]
struct KvMemory<'a> {
    k: &'a [f32],
    v: &'a [f32],
    cap: usize,
}

/// Runs `f` on a layer's KV caches as [`KvMemory`]; `None` when they or the queries are
/// not plain f32 CPU memory (candle's path then runs). The caches' storage stays
/// read-locked while `f` runs.
fn with_cache_memory<T>(
    cache: &KvCache,
    q: &Tensor,
    f: impl FnOnce(KvMemory<'_>) -> Result<Option<T>>,
) -> Result<Option<T>> {
    use candle_core::{CpuStorage, Storage};
    let (Some(kc), Some(vc)) = (&cache.k, &cache.v) else {
        return Ok(None);
    };
    if q.dtype() != DType::F32 || kc.dtype() != DType::F32 || vc.dtype() != DType::F32 {
        return Ok(None);
    }
    let cap = kc.dim(2)?;
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
    f(KvMemory {
        k: &kd[k0..k1],
        v: &vd[v0..v1],
        cap,
    })
}

/// `rows x width` values, row `r` computed by `f(r, out)`: attention's heads and rows,
/// the gated activation's prompt rows. With `work` operations enough to pay, rows are
/// shared out by candle's CPU pool (the KV cache is read from memory at decode: two
/// threads stream it faster than one), stored as f32 bits in atomics: disjoint rows,
/// relaxed, plain stores.
pub(super) fn per_head(
    rows: usize,
    width: usize,
    work: usize,
    f: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    // Below this many multiply-adds one thread is done before a second would start
    // (and a tiny model would wake the pool's spinning threads for nothing); a lone
    // row (decode's gated activation) has nothing to share.
    const PARALLEL_FROM: usize = 32 * 1024;
    if work < PARALLEL_FROM || rows < 2 {
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
