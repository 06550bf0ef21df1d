//! x86-64 AVX2 dot products of the K-quants with Q8_K activations, after llama.cpp's
//! `ggml_vec_dot_q4_K_q8_K`, `_q5_K_q8_K` and `_q6_K_q8_K` (ggml-cpu, x86 quants): per
//! 32 values, `maddubs` (unsigned weight quants x signed activations -> i16 pairs),
//! then `madd` with the sub-block's scale (-> i32), summed over the super-block in
//! eight i32 lanes and scaled once in f32. Q4_K and Q5_K take their minimums' term from
//! the activations' block sums; Q6_K subtracts its 32 offset as `32 x qy` pairs.
//!
//! Every integer step is exact (bounds at each step below), so these give the scalar
//! version's integer sums; only the order of the f32 additions differs. One copy
//! serves every x86 flavour.

use std::arch::x86_64::*;

use crate::kquants::{Q8K_BSUMS, Q8K_QS, scales_mins_words};
use crate::types::WeightType;
use crate::x86::{half, hsum};

pub fn dot(t: WeightType, row: &[u8], act: &[u8], blocks: usize) -> f32 {
    debug_assert!(row.len() >= blocks * t.block_bytes());
    debug_assert!(act.len() >= blocks * t.activation().block_bytes());
    let (x, y) = (row.as_ptr(), act.as_ptr());
    // SAFETY: every x86 flavour includes AVX2 + FMA + F16C (the caller holds one
    // this CPU has), and the slices hold `blocks` whole blocks of each kind (asserted by
    // `dot_with`), which is all the kernels read.
    unsafe {
        match t {
            WeightType::Q4K => q45k::<false>(x, y, blocks),
            WeightType::Q5K => q45k::<true>(x, y, blocks),
            WeightType::Q6K => q6k(x, y, blocks),
            _ => unreachable!("{} is not a K-quant", t.name()),
        }
    }
}

/// Byte shuffles that put 16-bit element `k` of a vector (both 128-bit halves alike)
/// into all sixteen of its 16-bit lanes.
const fn broadcast_i16() -> [[u8; 32]; 8] {
    let mut t = [[0u8; 32]; 8];
    let mut k = 0;
    while k < 8 {
        let mut i = 0;
        while i < 32 {
            t[k][i] = (2 * k + i % 2) as u8;
            i += 1;
        }
        k += 1;
    }
    t
}
static BROADCAST_I16: [[u8; 32]; 8] = broadcast_i16();

/// Byte shuffles that put byte `2k` of 16 into the low 8 bytes and `2k + 1` into the
/// high 8: Q6_K's two scales of a 32-value step, before widening to i16.
const fn pair_bytes() -> [[u8; 16]; 8] {
    let mut t = [[0u8; 16]; 8];
    let mut k = 0;
    while k < 8 {
        let mut i = 0;
        while i < 16 {
            t[k][i] = (2 * k + i / 8) as u8;
            i += 1;
        }
        k += 1;
    }
    t
}
static PAIR_BYTES: [[u8; 16]; 8] = pair_bytes();

#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: `p` points at 32 readable bytes inside a block (callers).
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

#[inline(always)]
unsafe fn hsum4(s: __m128) -> f32 {
    // SAFETY: register-only SSE arithmetic.
    unsafe {
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
}

/// Q4_K and Q5_K's per-block setup: the eight scales as i16 in both halves of a
/// vector, and the minimums' term `sum_j m_j (bsums_2j + bsums_2j+1)` as four i32
/// lanes. |bsum| <= 16 x 127, a pair of them 4,064; 63 x 4,064 x 2 fits i32.
#[inline(always)]
unsafe fn scales_and_min_term(bx: *const u8, by: *const u8) -> (__m256i, __m128i) {
    // SAFETY: `bx` points at a Q4_K/Q5_K block (12 scale bytes at 4), `by` at a Q8_K
    // block (32 bytes of sums at `Q8K_BSUMS`); AVX2 is enabled in the callers.
    unsafe {
        let u = scales_mins_words(std::slice::from_raw_parts(bx.add(4), 12)).map(|w| w as i32);
        let sm16 = _mm256_cvtepu8_epi16(_mm_set_epi32(u[3], u[2], u[1], u[0]));
        let bsums = load(by.add(Q8K_BSUMS));
        let pairs = _mm_hadd_epi16(
            _mm256_castsi256_si128(bsums),
            _mm256_extracti128_si256(bsums, 1),
        );
        let mins = _mm_madd_epi16(_mm256_extracti128_si256(sm16, 1), pairs);
        let sc = _mm256_castsi256_si128(sm16);
        (_mm256_set_m128i(sc, sc), mins)
    }
}

/// 16 in each byte where bit `b` of that byte of `qh` is set, else 0 (Q5_K's fifth
/// bits).
#[inline(always)]
unsafe fn fifth(qh: __m256i, b: usize) -> __m256i {
    // SAFETY: register-only AVX2 arithmetic.
    unsafe {
        let m = _mm256_set1_epi8((1u8 << b) as i8);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(qh, m), m);
        _mm256_and_si256(set, _mm256_set1_epi8(16))
    }
}

/// Sub-block `k`'s 32 products (`q` 0..32 unsigned, `qy` signed) times its scale, as
/// eight i32 lanes: `maddubs` pairs are at most 31 x 127 x 2 = 7,874, times a 6-bit
/// scale and summed in pairs at most 992,124.
#[inline(always)]
unsafe fn scaled(scales: __m256i, k: usize, q: __m256i, qy: __m256i) -> __m256i {
    // SAFETY: register-only AVX2 arithmetic, and a 32-byte table entry.
    unsafe {
        let s = _mm256_shuffle_epi8(scales, load(BROADCAST_I16[k].as_ptr()));
        _mm256_madd_epi16(s, _mm256_maddubs_epi16(q, qy))
    }
}

/// Q4_K (`FIFTH` false, 144-byte blocks) and Q5_K (176 bytes, a fifth bit per value
/// from `qh`).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q45k<const FIFTH: bool>(x: *const u8, y: *const u8, blocks: usize) -> f32 {
    // SAFETY: block i of x is bytes [bb i, bb i + bb), of y [292 i, 292 i + 292). The
    // super-block's integer sum is at most 256 x 31 x 127 x 63 < 2^31.
    unsafe {
        let (bb, qs) = if FIFTH { (176, 48) } else { (144, 16) };
        let m4 = _mm256_set1_epi8(0x0F);
        let mut acc = _mm256_setzero_ps();
        let mut acc_m = _mm_setzero_ps();
        for i in 0..blocks {
            let (bx, by) = (x.add(i * bb), y.add(i * 292));
            let dy = std::ptr::read_unaligned(by as *const f32);
            let (scales, mins) = scales_and_min_term(bx, by);
            acc_m = _mm_fmadd_ps(
                _mm_set1_ps(-dy * half(bx.add(2))),
                _mm_cvtepi32_ps(mins),
                acc_m,
            );
            let qh = if FIFTH {
                load(bx.add(16))
            } else {
                _mm256_setzero_si256()
            };
            let mut sumi = _mm256_setzero_si256();
            for c in 0..4 {
                let bits = load(bx.add(qs + 32 * c));
                let qy = by.add(Q8K_QS + 64 * c);
                let mut lo = _mm256_and_si256(bits, m4);
                let mut hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
                if FIFTH {
                    lo = _mm256_or_si256(lo, fifth(qh, 2 * c));
                    hi = _mm256_or_si256(hi, fifth(qh, 2 * c + 1));
                }
                let lo = scaled(scales, 2 * c, lo, load(qy));
                let hi = scaled(scales, 2 * c + 1, hi, load(qy.add(32)));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(lo, hi));
            }
            let d = _mm256_set1_ps(dy * half(bx));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum(acc) + hsum4(acc_m)
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k(x: *const u8, y: *const u8, blocks: usize) -> f32 {
    // SAFETY: block i of x is bytes [210 i, 210 i + 210), of y [292 i, 292 i + 292).
    // Steps: `maddubs` of q (0..64) and qy at most 63 x 127 x 2 = 16,002, less
    // 32 x (qy pair) at most 8,128: within i16; times an i8 scale, pairs summed, at
    // most 128 x 24,130 x 2; the super-block's sum at most 256 x 32 x 127 x 128 < 2^31.
    unsafe {
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(3);
        let m32 = _mm256_set1_epi8(32);
        let mut acc = _mm256_setzero_ps();
        for i in 0..blocks {
            let (bx, by) = (x.add(i * 210), y.add(i * 292));
            let dy = std::ptr::read_unaligned(by as *const f32);
            let scales = _mm_loadu_si128(bx.add(192) as *const __m128i);
            let mut sumi = _mm256_setzero_si256();
            for n in 0..2 {
                let (ql, qh) = (bx.add(64 * n), load(bx.add(128 + 32 * n)));
                let (ql0, ql1) = (load(ql), load(ql.add(32)));
                // Bits 0-1, 2-3, 4-5, 6-7 of `qh`, moved to bits 4-5.
                let top = [
                    _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4),
                ];
                let q = [
                    _mm256_or_si256(_mm256_and_si256(ql0, m4), top[0]),
                    _mm256_or_si256(_mm256_and_si256(ql1, m4), top[1]),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), top[2]),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), top[3]),
                ];
                for (k, q) in q.into_iter().enumerate() {
                    let step = 4 * n + k;
                    let qy = load(by.add(Q8K_QS + 32 * step));
                    let p = _mm256_sub_epi16(
                        _mm256_maddubs_epi16(q, qy),
                        _mm256_maddubs_epi16(m32, qy),
                    );
                    let pair = _mm_loadu_si128(PAIR_BYTES[step].as_ptr() as *const __m128i);
                    let s = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, pair));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(s, p));
                }
            }
            let d = _mm256_set1_ps(dy * half(bx.add(208)));
            acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi), acc);
        }
        hsum(acc)
    }
}
