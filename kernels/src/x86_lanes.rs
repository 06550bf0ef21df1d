//! Q4_1 with eight weight rows side by side in the lanes of one register, against one
//! to four activation rows at once (the layout candle's x86 repacked kernels use for
//! Q8_0 and the K-quants, here for Q4_1, which candle runs in scalar code).
//!
//! Per 32-value block, a tile holds the eight rows' `d` (8 x f16), their `m`
//! (8 x f16), then four 32-byte registers of nibbles: register `j`'s low nibbles are
//! values `4j .. 4j + 4` of rows 0..8 (four bytes per row, row-major), its high nibbles
//! values `16 + 4j ..`. One `vpdpbusd` of an unpacked register with four activation
//! bytes broadcast adds four products to each row's lane: no horizontal sums, no
//! per-row scale broadcasts, and with several activation rows (prefill) each weight
//! register is unpacked once for all of them. 160 bytes per block and tile, the same
//! 20 bytes per row and block as GGUF's.
//!
//! Each block's integer sum is exact (8 groups of 4 products, at most
//! 32 x 15 x 127 = 60,960), converted once and scaled as the row kernels scale it:
//! the same terms in another f32 order.

use std::arch::x86_64::*;

use crate::x86::Flavor;

/// Weight rows per tile.
pub const ROWS: usize = 8;
/// Bytes of one tile per 32-value block.
pub const TILE_BLOCK: usize = 160;

/// Packs eight rows of Q4_1 blocks (`None`: a zero row past the matrix's end), each
/// `blocks` blocks long, as one tile, appended to `out`.
pub fn pack_q4_1(rows: [Option<&[u8]>; ROWS], blocks: usize, out: &mut Vec<u8>) {
    out.reserve(blocks * TILE_BLOCK);
    for b in 0..blocks {
        let block = |r: usize| rows[r].map(|row| &row[20 * b..20 * b + 20]);
        for at in [0, 2] {
            for r in 0..ROWS {
                out.extend_from_slice(block(r).map_or(&[0, 0][..], |x| &x[at..at + 2]));
            }
        }
        // Value k of row r: k < 16 the low nibble of qs[k], else the high one of qs[k - 16].
        let q = |r: usize, k: usize| -> u8 {
            block(r).map_or(0, |x| {
                if k < 16 {
                    x[4 + k] & 0x0F
                } else {
                    x[4 + k - 16] >> 4
                }
            })
        };
        for j in 0..4 {
            for r in 0..ROWS {
                for t in 0..4 {
                    out.push(q(r, 4 * j + t) | (q(r, 16 + 4 * j + t) << 4));
                }
            }
        }
    }
}

/// A tile's `R` x 8 dot products with `R` activation rows (Q8_1, `blocks` blocks each):
/// `out[i][r]` is row `r` times activation row `i`.
pub fn q4_1<const R: usize>(
    f: Flavor,
    tile: &[u8],
    acts: [&[u8]; R],
    blocks: usize,
) -> [[f32; ROWS]; R] {
    debug_assert!(f.available());
    assert!(tile.len() >= blocks * TILE_BLOCK);
    assert!(acts.iter().all(|a| a.len() >= blocks * 36));
    let (x, ys) = (tile.as_ptr(), acts.map(<[u8]>::as_ptr));
    // SAFETY: the caller checked `f.available()`; the slices hold `blocks` tile blocks
    // and activation blocks (asserted above), which is all the kernels read.
    unsafe {
        match f {
            Flavor::Avx2 => avx2::q4_1::<R>(x, ys, blocks),
            Flavor::AvxVnni => avx_vnni::q4_1::<R>(x, ys, blocks),
            Flavor::Avx512Vnni => avx512_vnni::q4_1::<R>(x, ys, blocks),
        }
    }
}

/// How a copy sums a block's byte products per lane.
trait Sum {
    unsafe fn zero() -> __m256i;
    /// Adds the products of unsigned `w` and signed `a`, four per lane.
    unsafe fn add(acc: __m256i, w: __m256i, a: __m256i) -> __m256i;
    /// The lanes' i32 sums.
    unsafe fn finish(acc: __m256i) -> __m256i;
}

/// AVX2: `maddubs` pairs (at most 2 x 15 x 127 = 3,810) added as i16 over the block's
/// eight registers (at most 30,480: no wrap), widened once.
struct Maddubs;
impl Sum for Maddubs {
    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: register-only AVX arithmetic.
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn add(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // SAFETY: register-only AVX2 arithmetic (callers enable AVX2).
        unsafe { _mm256_add_epi16(acc, _mm256_maddubs_epi16(w, a)) }
    }
    #[inline(always)]
    unsafe fn finish(acc: __m256i) -> __m256i {
        // SAFETY: register-only AVX2 arithmetic.
        unsafe { _mm256_madd_epi16(acc, _mm256_set1_epi16(1)) }
    }
}

/// AVX-VNNI: one `vpdpbusd` per register.
struct AvxVnni;
impl Sum for AvxVnni {
    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: register-only AVX arithmetic.
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn add(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // SAFETY: register-only arithmetic; AVX-VNNI is enabled in the callers.
        unsafe { _mm256_dpbusd_avx_epi32(acc, w, a) }
    }
    #[inline(always)]
    unsafe fn finish(acc: __m256i) -> __m256i {
        acc
    }
}

/// AVX-512 VNNI on 256-bit registers.
struct Avx512Vnni;
impl Sum for Avx512Vnni {
    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: register-only AVX arithmetic.
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn add(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // SAFETY: register-only arithmetic; AVX-512 VNNI + VL are enabled in the callers.
        unsafe { _mm256_dpbusd_epi32(acc, w, a) }
    }
    #[inline(always)]
    unsafe fn finish(acc: __m256i) -> __m256i {
        acc
    }
}

#[inline(always)]
unsafe fn half(p: *const u8) -> f32 {
    // SAFETY: `p` points at two readable bytes; F16C is enabled in every caller.
    unsafe {
        let h = std::ptr::read_unaligned(p as *const u16);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h))))
    }
}

/// Four activation bytes at `p`, in every lane.
#[inline(always)]
unsafe fn four(p: *const u8) -> __m256i {
    // SAFETY: `p` points at four readable bytes of an activation block.
    unsafe { _mm256_set1_epi32(std::ptr::read_unaligned(p as *const i32)) }
}

macro_rules! lanes {
    ($name:ident, $features:literal, $sum:ident) => {
        mod $name {
            use super::*;

            #[target_feature(enable = $features)]
            pub unsafe fn q4_1<const R: usize>(
                x: *const u8,
                ys: [*const u8; R],
                blocks: usize,
            ) -> [[f32; ROWS]; R] {
                // SAFETY: block b of the tile is bytes [160 b, 160 b + 160), of each
                // activation row [36 b, 36 b + 36).
                unsafe {
                    let m4 = _mm256_set1_epi8(0x0F);
                    let mut acc = [_mm256_setzero_ps(); R];
                    for b in 0..blocks {
                        let bx = x.add(b * TILE_BLOCK);
                        let mut sums = [$sum::zero(); R];
                        for j in 0..4 {
                            let p = _mm256_loadu_si256(bx.add(32 + 32 * j) as *const __m256i);
                            let lo = _mm256_and_si256(p, m4);
                            let hi = _mm256_and_si256(_mm256_srli_epi16(p, 4), m4);
                            for i in 0..R {
                                let qy = ys[i].add(b * 36 + 4);
                                sums[i] = $sum::add(sums[i], lo, four(qy.add(4 * j)));
                                sums[i] = $sum::add(sums[i], hi, four(qy.add(16 + 4 * j)));
                            }
                        }
                        let d = _mm256_cvtph_ps(_mm_loadu_si128(bx as *const __m128i));
                        let m = _mm256_cvtph_ps(_mm_loadu_si128(bx.add(16) as *const __m128i));
                        for i in 0..R {
                            let by = ys[i].add(b * 36);
                            let dd = _mm256_mul_ps(d, _mm256_set1_ps(half(by)));
                            let s = _mm256_cvtepi32_ps($sum::finish(sums[i]));
                            acc[i] = _mm256_fmadd_ps(dd, s, acc[i]);
                            acc[i] = _mm256_fmadd_ps(m, _mm256_set1_ps(half(by.add(2))), acc[i]);
                        }
                    }
                    let mut out = [[0f32; ROWS]; R];
                    for i in 0..R {
                        _mm256_storeu_ps(out[i].as_mut_ptr(), acc[i]);
                    }
                    out
                }
            }
        }
    };
}

lanes!(avx2, "avx2,fma,f16c", Maddubs);
lanes!(avx_vnni, "avx2,fma,f16c,avxvnni", AvxVnni);
lanes!(avx512_vnni, "avx2,fma,f16c,avx512vnni,avx512vl", Avx512Vnni);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every copy computes the same integer sums, so every available copy gives the
    /// same bits as plain AVX2, for one and for four activation rows.
    #[test]
    fn every_copy_gives_the_same_bits() {
        let flavors = [Flavor::Avx2, Flavor::AvxVnni, Flavor::Avx512Vnni];
        let here: Vec<Flavor> = flavors.into_iter().filter(|f| f.available()).collect();
        if !here.contains(&Flavor::Avx2) {
            return eprintln!("no AVX2 here: nothing to compare");
        }
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        let mut byte = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        };
        let blocks = 5;
        let rows: Vec<Vec<u8>> = (0..ROWS)
            .map(|_| {
                let mut r: Vec<u8> = (0..blocks * 20).map(|_| byte()).collect();
                for b in r.chunks_exact_mut(20) {
                    // Finite scales and offsets: 0.01 and 0.002 as f16.
                    b[..2].copy_from_slice(&0x211Eu16.to_le_bytes());
                    b[2..4].copy_from_slice(&0x1819u16.to_le_bytes());
                }
                r
            })
            .collect();
        let mut tile = Vec::new();
        pack_q4_1(std::array::from_fn(|r| Some(&rows[r][..])), blocks, &mut tile);
        let acts: Vec<Vec<u8>> = (0..4)
            .map(|_| {
                let x: Vec<f32> = (0..blocks * 32).map(|_| byte() as i8 as f32 / 9.0).collect();
                let mut a = Vec::new();
                crate::quantize_activations(&x, crate::ActType::Q8_1, &mut a);
                a
            })
            .collect();
        let four = [&acts[0][..], &acts[1][..], &acts[2][..], &acts[3][..]];
        let want1 = q4_1::<1>(Flavor::Avx2, &tile, [four[0]], blocks);
        let want4 = q4_1::<4>(Flavor::Avx2, &tile, four, blocks);
        assert_eq!(want4[0], want1[0], "four rows at once, the first as one row alone");
        for &f in &here {
            assert_eq!(q4_1::<1>(f, &tile, [four[0]], blocks), want1, "{f:?}");
            assert_eq!(q4_1::<4>(f, &tile, four, blocks), want4, "{f:?} x4");
        }
    }
}
