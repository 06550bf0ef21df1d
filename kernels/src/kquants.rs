//! The K-quants: super-blocks of 256 values, against activations quantized to Q8_K, in
//! portable code (llama.cpp's `quantize_row_q8_K_ref`, `dequantize_row_q*_K` and the
//! generic `ggml_vec_dot_q*_K_q8_K`); the SIMD versions follow these sums exactly.
//!
//! | type | bytes | layout | value |
//! |---|---|---|---|
//! | Q4_K | 144 | `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]` | `d sc_j q - dmin m_j`, q in 0..16 |
//! | Q5_K | 176 | `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128]` | the same, q in 0..32 |
//! | Q6_K | 210 | `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16` | `d sc_g (q - 32)`, q in 0..64 |
//! | Q8_K | 292 | `d: f32, qs: [i8; 256], bsums: [i16; 16]` | `d q`; `bsums` the sums of each 16 `q` |
//!
//! Q4_K and Q5_K: sub-block `j` (values `32 j ..`) has a 6-bit scale `sc_j` and
//! minimum `m_j`, packed in `scales` ([`scales_mins`]). Value `64 c + l` (`l < 32`) is
//! the low nibble of `qs[32 c + l]`, value `64 c + 32 + l` its high nibble; Q5_K's
//! fifth bits are bit `2 c` (low) and `2 c + 1` (high) of `qh[l]`.
//!
//! Q6_K: group `g` (values `16 g ..`) has scale `scales[g]`. In each half `n` of 128
//! values, with `ql = ql[64 n ..]`, `qh = qh[32 n ..]` and `l < 32`, values
//! `128 n + l, + 32, + 64, + 96` take the low nibble of `ql[l]`, of `ql[l + 32]`, the
//! high nibble of `ql[l]`, of `ql[l + 32]`, and bits 0-1, 2-3, 4-5, 6-7 of `qh[l]` on
//! top.

use crate::half::f16_at;
use crate::types::{SUPER_BLOCK, WeightType};

/// The offsets of Q8_K's quants and block sums.
pub(crate) const Q8K_QS: usize = 4;
pub(crate) const Q8K_BSUMS: usize = 4 + SUPER_BLOCK;

pub(crate) fn f32_at(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// llama.cpp's `nearest_int`: round half to even, for |v| < 2^22. Adding 1.5 x 2^23
/// leaves the rounded integer in the low mantissa bits: no call and no saturating
/// cast, so loops over it vectorize.
#[inline(always)]
pub(crate) fn nearest_int(v: f32) -> i32 {
    ((v + 12_582_912.0).to_bits() as i32 & 0x007F_FFFF) - 0x0040_0000
}

/// Quantize `x` (a multiple of 256 values) to Q8_K blocks, appended to `out`, as
/// llama.cpp's reference does: `d = -max / 127` with `max` the value of largest
/// magnitude (its sign kept), `q = min(127, round(x / d))`.
pub(crate) fn quantize_q8k(x: &[f32], out: &mut Vec<u8>) {
    for chunk in x.chunks_exact(SUPER_BLOCK) {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in chunk {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        let mut qs = [0i8; SUPER_BLOCK];
        let d = if amax == 0.0 {
            0.0
        } else {
            let iscale = -127.0 / max;
            for (q, &v) in qs.iter_mut().zip(chunk) {
                *q = nearest_int(iscale * v).min(127) as i8;
            }
            1.0 / iscale
        };
        out.extend_from_slice(&d.to_le_bytes());
        out.extend(qs.iter().map(|q| *q as u8));
        for g in qs.chunks_exact(16) {
            let s: i32 = g.iter().map(|&q| i32::from(q)).sum();
            out.extend_from_slice(&(s as i16).to_le_bytes());
        }
    }
}

/// Q4_K's and Q5_K's eight 6-bit scales, then their eight 6-bit minimums, from the
/// 12 packed bytes (llama.cpp's `get_scale_min_k4`, done for all eight at once as its
/// SIMD kernels do).
pub(crate) fn scales_mins(p: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, v) in out.chunks_exact_mut(4).zip(scales_mins_words(p)) {
        o.copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// [`scales_mins`] as four little-endian words (scales 0-3, 4-7, minimums 0-3, 4-7),
/// which SIMD code moves to a vector from registers (building the bytes in memory
/// and loading them as one vector stalls store forwarding). Inlined into the SIMD
/// kernels: a call there costs a `vzeroupper` and spills the accumulators.
#[inline(always)]
pub(crate) fn scales_mins_words(p: &[u8]) -> [u32; 4] {
    const M1: u32 = 0x3f3f_3f3f;
    const M2: u32 = 0x0f0f_0f0f;
    const M3: u32 = 0x0303_0303;
    let w = |i: usize| u32::from_le_bytes([p[4 * i], p[4 * i + 1], p[4 * i + 2], p[4 * i + 3]]);
    let (a, b, c) = (w(0), w(1), w(2));
    [
        a & M1,
        (c & M2) | (((a >> 6) & M3) << 4),
        b & M1,
        ((c >> 4) & M2) | (((b >> 6) & M3) << 4),
    ]
}

/// One super-block unpacked: value `i` is `d * scale[i / group] * q[i] - dmin *
/// min[i / 32]` (Q6_K: `q` already less 32, no minimums).
pub(crate) struct Unpacked {
    pub q: [i8; SUPER_BLOCK],
    pub d: f32,
    pub dmin: f32,
    pub scales: [i32; 16],
    pub mins: [i32; 8],
    /// Values per scale: 32 (Q4_K, Q5_K) or 16 (Q6_K).
    pub group: usize,
}

pub(crate) fn unpack(t: WeightType, b: &[u8]) -> Unpacked {
    let mut q = [0i8; SUPER_BLOCK];
    match t {
        WeightType::Q4K | WeightType::Q5K => {
            let sm = scales_mins(&b[4..16]);
            let (qh, qs) = if t == WeightType::Q5K {
                (Some(&b[16..48]), &b[48..176])
            } else {
                (None, &b[16..144])
            };
            for c in 0..4 {
                for l in 0..32 {
                    let byte = qs[32 * c + l];
                    let (mut lo, mut hi) = (byte & 0x0F, byte >> 4);
                    if let Some(qh) = qh {
                        lo |= ((qh[l] >> (2 * c)) & 1) << 4;
                        hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
                    }
                    q[64 * c + l] = lo as i8;
                    q[64 * c + 32 + l] = hi as i8;
                }
            }
            let mut scales = [0i32; 16];
            let mut mins = [0i32; 8];
            for j in 0..8 {
                scales[j] = i32::from(sm[j]);
                mins[j] = i32::from(sm[8 + j]);
            }
            Unpacked {
                q,
                d: f16_at(b, 0),
                dmin: f16_at(b, 2),
                scales,
                mins,
                group: 32,
            }
        }
        WeightType::Q6K => {
            let (ql, qh, sc) = (&b[..128], &b[128..192], &b[192..208]);
            for n in 0..2 {
                let (ql, qh) = (&ql[64 * n..], &qh[32 * n..]);
                for l in 0..32 {
                    let six =
                        |low: u8, shift: u32| ((low | (((qh[l] >> shift) & 3) << 4)) as i8) - 32;
                    q[128 * n + l] = six(ql[l] & 0x0F, 0);
                    q[128 * n + l + 32] = six(ql[l + 32] & 0x0F, 2);
                    q[128 * n + l + 64] = six(ql[l] >> 4, 4);
                    q[128 * n + l + 96] = six(ql[l + 32] >> 4, 6);
                }
            }
            let mut scales = [0i32; 16];
            for (s, &b) in scales.iter_mut().zip(sc) {
                *s = i32::from(b as i8);
            }
            Unpacked {
                q,
                d: f16_at(b, 208),
                dmin: 0.0,
                scales,
                mins: [0; 8],
                group: 16,
            }
        }
        _ => unreachable!("{} is not a K-quant", t.name()),
    }
}

pub(crate) fn dequantize(t: WeightType, b: &[u8], out: &mut [f32]) {
    let u = unpack(t, b);
    for (i, o) in out.iter_mut().enumerate().take(SUPER_BLOCK) {
        let scaled = u.d * u.scales[i / u.group] as f32;
        *o = scaled * f32::from(u.q[i]) - u.dmin * u.mins[i / 32] as f32;
    }
}

/// The dot product of a row of super-blocks with Q8_K activations: per block, the
/// exact integer sums `sum_g scale_g sum(q x qy)` and `sum_j m_j (bsums of j)`, then
/// `d dy` and `dmin dy` times them in f32.
pub(crate) fn dot_scalar(t: WeightType, row: &[u8], act: &[u8]) -> f32 {
    let (wb, ab) = (t.block_bytes(), t.activation().block_bytes());
    let mut sum = 0.0f32;
    for (w, a) in row.chunks_exact(wb).zip(act.chunks_exact(ab)) {
        let u = unpack(t, w);
        let dy = f32_at(a, 0);
        let qy = &a[Q8K_QS..Q8K_QS + SUPER_BLOCK];
        let isum: i32 =
            u.q.chunks_exact(u.group)
                .zip(qy.chunks_exact(u.group))
                .zip(u.scales)
                .map(|((q, y), s)| {
                    s * q
                        .iter()
                        .zip(y)
                        .map(|(&q, &y)| i32::from(q) * i32::from(y as i8))
                        .sum::<i32>()
                })
                .sum();
        let bsum = |g: usize| {
            i32::from(i16::from_le_bytes([
                a[Q8K_BSUMS + 2 * g],
                a[Q8K_BSUMS + 2 * g + 1],
            ]))
        };
        let msum: i32 = (0..8)
            .map(|j| u.mins[j] * (bsum(2 * j) + bsum(2 * j + 1)))
            .sum();
        sum += u.d * dy * isum as f32 - u.dmin * dy * msum as f32;
    }
    sum
}
