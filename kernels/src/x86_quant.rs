//! Activation quantization (Q8_0, Q8_1) on x86: an AVX2 copy of the portable code of
//! `rows`, giving its bits (the same maximum, `1 / d`, products, ties-to-even rounding
//! and F16C's conversion; tested). It runs once per projection input on the calling
//! thread while the others wait, so its speed shows in every step: 1.2 ns a value
//! portable, 0.27 here on the development VM (an AVX-512 copy was no faster).

use std::arch::x86_64::*;

use crate::types::{ActType, BLOCK};

/// Quantizes `x` into `out` (its blocks, 36 bytes each); `false` (nothing written) for
/// an activation type other than Q8_0 and Q8_1.
///
/// # Safety
/// This CPU has AVX2, FMA and F16C.
pub(crate) unsafe fn quantize(x: &[f32], act: ActType, out: &mut [u8]) -> bool {
    if !matches!(act, ActType::Q8_0 | ActType::Q8_1) {
        return false;
    }
    assert_eq!(out.len(), x.len() / BLOCK * 36);
    // SAFETY: the caller vouches for the features.
    unsafe { avx2(x, act, out) };
    true
}

/// f32 to f16 bits with F16C (round to nearest, ties to even, as `half::f32_to_f16`).
#[inline(always)]
unsafe fn f16(v: f32) -> u16 {
    // SAFETY: register-only F16C arithmetic; callers enable F16C.
    unsafe {
        _mm_extract_epi16::<0>(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(v))) as u16
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn avx2(x: &[f32], act: ActType, out: &mut [u8]) {
    for (chunk, o) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(36)) {
        // SAFETY: `chunk` holds 32 f32 and `o` 36 bytes (whole blocks, asserted by the
        // caller's sizes); AVX2 and F16C are enabled above.
        unsafe {
            let p = chunk.as_ptr();
            let v = [0, 8, 16, 24].map(|k| _mm256_loadu_ps(p.add(k)));
            let sign = _mm256_set1_ps(-0.0);
            let a = v.map(|v| _mm256_andnot_ps(sign, v));
            let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
            let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let amax = _mm_cvtss_f32(_mm_max_ss(m2, _mm_movehdup_ps(m2)));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let vid = _mm256_set1_ps(id);
            // |v * id| <= 127; the default rounding mode rounds ties to even.
            let q = v.map(|v| _mm256_cvtps_epi32(_mm256_mul_ps(v, vid)));
            let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
            let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
            let sum = _mm_cvtsi128_si32(_mm_add_epi32(s2, _mm_shuffle_epi32::<1>(s2)));
            o[..2].copy_from_slice(&f16(d).to_le_bytes());
            if act == ActType::Q8_1 {
                o[2..4].copy_from_slice(&f16(sum as f32 * d).to_le_bytes());
            } else {
                o[2..4].copy_from_slice(&(sum as i16).to_le_bytes());
            }
            // Narrow to bytes (no saturation: |q| <= 127); the packs interleave the
            // 128-bit lanes, the permutation puts the values back in order.
            let w = _mm256_packs_epi32(q[0], q[1]);
            let z = _mm256_packs_epi32(q[2], q[3]);
            let b = _mm256_packs_epi16(w, z);
            let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(o.as_mut_ptr().add(4) as *mut __m256i, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 copy gives the portable code's bits, on blocks with ties, zeros,
    /// large and tiny values.
    #[test]
    fn the_avx2_copy_gives_the_portable_bits() {
        let mut s = 0x1234_5678_9ABC_DEF1u64;
        let mut x: Vec<f32> = (0..BLOCK * 40)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let v = (s % 2001) as f32 / 1000.0 - 1.0;
                v * [1.0, 1e-3, 37.0, 1e-30][i / BLOCK % 4]
            })
            .collect();
        // A zero block, and a block of exact ties: max 127 makes d = 1, and the
        // other values lie halfway between integers.
        x[..BLOCK].fill(0.0);
        for (k, v) in x[BLOCK..2 * BLOCK].iter_mut().enumerate() {
            *v = (k as f32 - 16.0) + 0.5;
        }
        x[BLOCK] = 127.0;
        for act in [ActType::Q8_0, ActType::Q8_1] {
            let mut want = vec![0u8; x.len() / BLOCK * 36];
            for (chunk, o) in x.chunks_exact(BLOCK).zip(want.chunks_exact_mut(36)) {
                crate::rows::quantize_block(chunk.try_into().unwrap(), act, o);
            }
            if !crate::x86::Flavor::Avx2.available() {
                eprintln!("no AVX2 here: nothing to compare");
                return;
            }
            let mut got = vec![0u8; want.len()];
            // SAFETY: AVX2, FMA and F16C are present (checked above).
            assert!(unsafe { quantize(&x, act, &mut got) });
            assert_eq!(got, want, "{act:?}");
        }
    }
}
