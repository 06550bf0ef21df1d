//! x86-64 AVX2 + FMA + F16C dot products, after llama.cpp's
//! `ggml_vec_dot_q4_1_q8_1`, `_q5_0_q8_0` and `_q5_1_q8_1` (ggml-cpu, x86 quants).
//! One block per iteration: 32 products as `maddubs` (u8 x i8 -> i16 pairs) and
//! `madd` (pairs -> i32), scaled in f32 with one FMA.

use std::arch::x86_64::*;

use crate::{BLOCK, WeightType};

pub fn available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

pub fn dot(t: WeightType, row: &[u8], act: &[u8], blocks: usize) -> f32 {
    debug_assert!(available());
    debug_assert!(row.len() >= blocks * t.block_bytes());
    debug_assert!(act.len() >= blocks * t.activation().block_bytes());
    // SAFETY: the caller checked `available()` (AVX2, FMA, F16C present), and the
    // slices hold `blocks` whole blocks of each kind (asserted by `dot_with`), which
    // is all the kernels read.
    unsafe {
        match t {
            WeightType::Q4_1 => q4_1(row.as_ptr(), act.as_ptr(), blocks),
            WeightType::Q5_0 => q5_0(row.as_ptr(), act.as_ptr(), blocks),
            WeightType::Q5_1 => q5_1(row.as_ptr(), act.as_ptr(), blocks),
        }
    }
}

#[inline(always)]
unsafe fn half(p: *const u8) -> f32 {
    // SAFETY: `p` points at two readable bytes (inside a block); F16C is enabled in
    // every caller.
    unsafe {
        let h = std::ptr::read_unaligned(p as *const u16);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h))))
    }
}

/// 16 bytes of nibbles to 32 bytes: low nibbles (elements 0..16), then high ones.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: `p` points at the 16 `qs` bytes of a block; AVX2 is enabled in callers.
    unsafe {
        let tmp = _mm_loadu_si128(p as *const __m128i);
        let both = _mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }
}

/// The 32 bits of `qh` as 32 bytes: 0xFF where the bit is set, else 0.
#[inline(always)]
unsafe fn bits(p: *const u8) -> __m256i {
    // SAFETY: `p` points at the 4 `qh` bytes of a block; AVX2 is enabled in callers.
    unsafe {
        let x = std::ptr::read_unaligned(p as *const u32) as i32;
        let shuffle = _mm256_set_epi64x(
            0x0303_0303_0303_0303,
            0x0202_0202_0202_0202,
            0x0101_0101_0101_0101,
            0,
        );
        let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x), shuffle);
        let mask = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe);
        _mm256_cmpeq_epi8(_mm256_or_si256(bytes, mask), _mm256_set1_epi64x(-1))
    }
}

/// Sum of the 32 products of unsigned `ax` (0..32) and signed `sy`, as 8 f32 lanes.
#[inline(always)]
unsafe fn mul_sum_us8(ax: __m256i, sy: __m256i) -> __m256 {
    // SAFETY: register-only AVX2 arithmetic; no memory is touched. |products| fit i16
    // (31 x 127 x 2 < 32767), so maddubs does not saturate.
    unsafe {
        let dot = _mm256_maddubs_epi16(ax, sy);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)))
    }
}

/// The same for signed `x` (-16..16): |x| times y with x's sign moved onto y.
#[inline(always)]
unsafe fn mul_sum_i8(x: __m256i, y: __m256i) -> __m256 {
    // SAFETY: register-only AVX2 arithmetic.
    unsafe { mul_sum_us8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)) }
}

#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: register-only AVX arithmetic.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1(x: *const u8, y: *const u8, blocks: usize) -> f32 {
    // SAFETY: block i of x is bytes [20 i, 20 i + 20), of y [36 i, 36 i + 36), all
    // within the slices `dot` was given.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut offsets = 0.0f32;
        for i in 0..blocks {
            let (bx, by) = (x.add(i * 20), y.add(i * 36));
            let d = half(bx) * half(by);
            offsets += half(bx.add(2)) * half(by.add(2));
            let qx = nibbles(bx.add(4));
            let qy = _mm256_loadu_si256(by.add(4) as *const __m256i);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), mul_sum_us8(qx, qy), acc);
        }
        hsum(acc) + offsets
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0(x: *const u8, y: *const u8, blocks: usize) -> f32 {
    // SAFETY: block i of x is bytes [22 i, 22 i + 22), of y [34 i, 34 i + 34).
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for i in 0..blocks {
            let (bx, by) = (x.add(i * 22), y.add(i * 34));
            let d = half(bx) * half(by);
            // q - 16 as i8: where the fifth bit is clear, set the top four bits.
            let hi = _mm256_andnot_si256(bits(bx.add(2)), _mm256_set1_epi8(0xF0u8 as i8));
            let qx = _mm256_or_si256(nibbles(bx.add(6)), hi);
            let qy = _mm256_loadu_si256(by.add(2) as *const __m256i);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), mul_sum_i8(qx, qy), acc);
        }
        hsum(acc)
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1(x: *const u8, y: *const u8, blocks: usize) -> f32 {
    // SAFETY: block i of x is bytes [24 i, 24 i + 24), of y [36 i, 36 i + 36).
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut offsets = 0.0f32;
        for i in 0..blocks {
            let (bx, by) = (x.add(i * 24), y.add(i * 36));
            let d = half(bx) * half(by);
            offsets += half(bx.add(2)) * half(by.add(2));
            let hi = _mm256_and_si256(bits(bx.add(4)), _mm256_set1_epi8(0x10));
            let qx = _mm256_or_si256(nibbles(bx.add(8)), hi);
            let qy = _mm256_loadu_si256(by.add(4) as *const __m256i);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), mul_sum_us8(qx, qy), acc);
        }
        hsum(acc) + offsets
    }
}

/// Four weight rows against the same activations: each activation block is loaded once
/// for four rows, and the four accumulators are independent (more work in flight).
pub fn dot4(t: WeightType, rows: [&[u8]; 4], act: &[u8], blocks: usize) -> [f32; 4] {
    debug_assert!(available());
    debug_assert!(rows.iter().all(|r| r.len() >= blocks * t.block_bytes()));
    debug_assert!(act.len() >= blocks * t.activation().block_bytes());
    let p = rows.map(<[u8]>::as_ptr);
    // SAFETY: as for `dot`: the features are present and every slice holds `blocks`
    // whole blocks.
    unsafe {
        match t {
            WeightType::Q4_1 => q4_1_x4(p, act.as_ptr(), blocks),
            // One row at a time is faster for Q5_0 (see `matvec_rows_with`).
            WeightType::Q5_0 => p.map(|x| q5_0(x, act.as_ptr(), blocks)),
            WeightType::Q5_1 => q5_1_x4(p, act.as_ptr(), blocks),
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_x4(x: [*const u8; 4], y: *const u8, blocks: usize) -> [f32; 4] {
    // SAFETY: block i of each row is bytes [20 i, 20 i + 20), of y [36 i, 36 i + 36).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut offsets = [0.0f32; 4];
        for i in 0..blocks {
            let by = y.add(i * 36);
            let (dy, sy) = (half(by), half(by.add(2)));
            let qy = _mm256_loadu_si256(by.add(4) as *const __m256i);
            for r in 0..4 {
                let bx = x[r].add(i * 20);
                offsets[r] += half(bx.add(2)) * sy;
                let d = _mm256_set1_ps(half(bx) * dy);
                acc[r] = _mm256_fmadd_ps(d, mul_sum_us8(nibbles(bx.add(4)), qy), acc[r]);
            }
        }
        [0, 1, 2, 3].map(|r| hsum(acc[r]) + offsets[r])
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1_x4(x: [*const u8; 4], y: *const u8, blocks: usize) -> [f32; 4] {
    // SAFETY: block i of each row is bytes [24 i, 24 i + 24), of y [36 i, 36 i + 36).
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut offsets = [0.0f32; 4];
        let b10 = _mm256_set1_epi8(0x10);
        for i in 0..blocks {
            let by = y.add(i * 36);
            let (dy, sy) = (half(by), half(by.add(2)));
            let qy = _mm256_loadu_si256(by.add(4) as *const __m256i);
            for r in 0..4 {
                let bx = x[r].add(i * 24);
                offsets[r] += half(bx.add(2)) * sy;
                let hi = _mm256_and_si256(bits(bx.add(4)), b10);
                let qx = _mm256_or_si256(nibbles(bx.add(8)), hi);
                let d = _mm256_set1_ps(half(bx) * dy);
                acc[r] = _mm256_fmadd_ps(d, mul_sum_us8(qx, qy), acc[r]);
            }
        }
        [0, 1, 2, 3].map(|r| hsum(acc[r]) + offsets[r])
    }
}

const _: () = assert!(BLOCK == 32);
