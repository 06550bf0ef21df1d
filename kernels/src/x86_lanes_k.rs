//! Q4_K, Q5_K and Q6_K in lane tiles: eight weight rows side by side in the lanes of a
//! register, as `x86_lanes` keeps the 32-value types, per 256-value super-block,
//! against one to four Q8_K activation rows at once.
//!
//! A Q4_K tile's super-block (1,184 bytes for eight rows of 144):
//!
//! - `d` and `dmin` of rows 0..8 (8 x f16 each);
//! - the eight 6-bit scales, unpacked to bytes, sub-block major (`[j][r]`, 64 bytes);
//! - the eight 6-bit minimums as bytes, in pairs of sub-blocks per row
//!   (`[k][r][2k, 2k + 1]`, 64 bytes), which `madd` takes against the activations'
//!   pair of sub-block sums;
//! - 32 registers of nibbles: register `8c + g`'s low nibbles are values `4g .. 4g + 4`
//!   of sub-block `2c` of rows 0..8 (four bytes per row), its high nibbles the same of
//!   sub-block `2c + 1`.
//!
//! Per sub-block, eight `vpdpbusd` give each row's exact sum, multiplied by its scale
//! in i32 (at most 256 x 15 x 127 x 63 < 2^31 over the super-block); the minimums' term
//! is exact too (`madd` of minimums and Q8_K's block sums). One conversion and two FMAs
//! per super-block and activation row: the scalar kernel's terms in another f32 order.
//!
//! A Q5_K tile's super-block (1,440 bytes for eight rows of 176) is Q4_K's, then eight
//! registers of fifth bits: register `g` holds each row's `qh[4g .. 4g + 4]` as stored
//! (bit `2c` the fifth bit of the low nibbles of nibble register `8c + g`, bit `2c + 1`
//! of the high ones). Its values reach 31, so the sums go to i32 at once on AVX2 (as
//! Q6_K's do); at most 256 x 31 x 127 x 63 < 2^31.
//!
//! A Q6_K tile's super-block (1,680 bytes, eight rows of 210): `d` of rows 0..8
//! (8 x f16); the sixteen i8 scales in pairs of groups per row (`[k][r][2k, 2k + 1]`,
//! 128 bytes); then the quants (0..64, `q - 32` the value) of chunk `u` (values
//! `32u ..`), value group `g` (`4g ..` within the chunk) as register `(u, g)`: its low
//! four bits in nibble register `8 (u % 4) + g` (low nibbles chunks 0..4, high nibbles
//! chunks 4..8; 1,024 bytes), its top two bits in bit-pair register `8 (u % 2) + g`
//! (bits `2 (u / 2) ..`; 512 bytes). Each group of 16's unsigned sum is multiplied by
//! its scale in i32; 32 times the scales against Q8_K's block sums comes off exactly
//! (at most 256 x 63 x 127 x 128 < 2^31).

use std::arch::x86_64::*;

use crate::kquants::{Q8K_BSUMS, Q8K_QS, scales_mins};
use crate::types::WeightType;
use crate::x86::{Flavor, prefetch_ahead};
use crate::x86_lanes::{Avx512Vnni, AvxVnni, Maddubs16, Maddubs32, ROWS, Sum, four, rows_out};

/// Bytes of one Q4_K tile per super-block.
const TILE_Q4K: usize = 1184;
/// Bytes of one Q5_K tile per super-block: Q4_K's and the fifth bits.
const TILE_Q5K: usize = TILE_Q4K + 256;
/// Bytes of one Q6_K tile per super-block.
const TILE_Q6K: usize = 1680;

/// Packs eight rows of Q6_K super-blocks (`None`: a zero row), `blocks` each, as one
/// tile, appended to `out`.
fn pack_q6k(rows: [Option<&[u8]>; ROWS], blocks: usize, out: &mut Vec<u8>) {
    out.reserve(blocks * TILE_Q6K);
    for b in 0..blocks {
        let block = |r: usize| rows[r].map(|row| &row[210 * b..210 * b + 210]);
        for r in 0..ROWS {
            out.extend_from_slice(block(r).map_or(&[0, 0][..], |x| &x[208..210]));
        }
        for k in 0..8 {
            for r in 0..ROWS {
                out.extend_from_slice(
                    block(r).map_or(&[0, 0][..], |x| &x[192 + 2 * k..194 + 2 * k]),
                );
            }
        }
        // Each row's quants as stored (0..64).
        let q: [[u8; 256]; ROWS] = std::array::from_fn(|r| {
            block(r).map_or([0; 256], |x| {
                let u = crate::kquants::unpack(WeightType::Q6K, x);
                u.q.map(|v| (v + 32) as u8)
            })
        });
        let at = |r: usize, u: usize, g: usize, t: usize| q[r][32 * u + 4 * g + t];
        for n in 0..4 {
            for g in 0..8 {
                for r in 0..ROWS {
                    for t in 0..4 {
                        out.push((at(r, n, g, t) & 0x0F) | ((at(r, n + 4, g, t) & 0x0F) << 4));
                    }
                }
            }
        }
        for h in 0..2 {
            for g in 0..8 {
                for r in 0..ROWS {
                    for t in 0..4 {
                        let mut byte = 0;
                        for s in 0..4 {
                            byte |= (at(r, h + 2 * s, g, t) >> 4) << (2 * s);
                        }
                        out.push(byte);
                    }
                }
            }
        }
    }
}

/// Byte shuffles that pick the even (`h` = 0) or odd bytes of 16 into the low 8.
const PICK: [[u8; 16]; 2] = [
    [
        0, 2, 4, 6, 8, 10, 12, 14, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    ],
    [
        1, 3, 5, 7, 9, 11, 13, 15, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    ],
];

/// Packs eight rows of Q4_K (`FIFTH` false) or Q5_K super-blocks (`None`: a zero
/// row), `blocks` each, as one tile, appended to `out`.
fn pack_q45k<const FIFTH: bool>(rows: [Option<&[u8]>; ROWS], blocks: usize, out: &mut Vec<u8>) {
    // Q5_K's `qh` sits between the scales and the nibbles.
    let (bytes, qs_at) = if FIFTH { (176, 48) } else { (144, 16) };
    out.reserve(blocks * if FIFTH { TILE_Q5K } else { TILE_Q4K });
    for b in 0..blocks {
        let block = |r: usize| rows[r].map(|row| &row[bytes * b..bytes * (b + 1)]);
        for at in [0, 2] {
            for r in 0..ROWS {
                out.extend_from_slice(block(r).map_or(&[0, 0][..], |x| &x[at..at + 2]));
            }
        }
        let sm: [[u8; 16]; ROWS] =
            std::array::from_fn(|r| block(r).map_or([0; 16], |x| scales_mins(&x[4..16])));
        for j in 0..8 {
            for s in &sm {
                out.push(s[j]);
            }
        }
        for k in 0..4 {
            for s in &sm {
                out.extend_from_slice(&[s[8 + 2 * k], s[8 + 2 * k + 1]]);
            }
        }
        // Value v of sub-block pair c: low nibble of qs[32c + v] (sub-block 2c), high
        // nibble (sub-block 2c + 1).
        let qs = |r: usize, c: usize, v: usize| block(r).map_or(0, |x| x[qs_at + 32 * c + v]);
        for c in 0..4 {
            for g in 0..8 {
                for r in 0..ROWS {
                    for t in 0..4 {
                        out.push(qs(r, c, 4 * g + t));
                    }
                }
            }
        }
        if FIFTH {
            for g in 0..8 {
                for r in 0..ROWS {
                    out.extend_from_slice(
                        block(r).map_or(&[0; 4][..], |x| &x[16 + 4 * g..20 + 4 * g]),
                    );
                }
            }
        }
    }
}

/// Bytes of one tile of `t` (Q4_K, Q5_K or Q6_K) per super-block.
pub fn tile_block(t: WeightType) -> usize {
    match t {
        WeightType::Q4K => TILE_Q4K,
        WeightType::Q5K => TILE_Q5K,
        WeightType::Q6K => TILE_Q6K,
        _ => unreachable!("{} has no K-quant tile", t.name()),
    }
}

/// Packs eight rows of `t` (Q4_K, Q5_K or Q6_K) super-blocks as one tile.
pub fn pack(t: WeightType, rows: [Option<&[u8]>; ROWS], blocks: usize, out: &mut Vec<u8>) {
    match t {
        WeightType::Q4K => pack_q45k::<false>(rows, blocks, out),
        WeightType::Q5K => pack_q45k::<true>(rows, blocks, out),
        WeightType::Q6K => pack_q6k(rows, blocks, out),
        _ => unreachable!("{} has no K-quant tile", t.name()),
    }
}

/// A Q4_K, Q5_K or Q6_K tile's `R` x 8 dot products with `R` Q8_K activation rows.
pub fn dot<const R: usize>(
    f: Flavor,
    t: WeightType,
    tile: &[u8],
    acts: [&[u8]; R],
    blocks: usize,
) -> [[f32; ROWS]; R] {
    debug_assert!(f.available());
    assert!(tile.len() >= blocks * tile_block(t));
    assert!(acts.iter().all(|a| a.len() >= blocks * 292));
    let (x, ys) = (tile.as_ptr(), acts.map(<[u8]>::as_ptr));
    // SAFETY: the caller checked `f.available()`; the slices hold `blocks` tile blocks
    // and activation blocks (asserted above), which is all the kernels read.
    unsafe {
        match (f, t) {
            (Flavor::Avx2, WeightType::Q4K) => avx2::q4k::<R>(x, ys, blocks),
            (Flavor::AvxVnni, WeightType::Q4K) => avx_vnni::q4k::<R>(x, ys, blocks),
            (Flavor::Avx512Vnni, WeightType::Q4K) => avx512_vnni::q4k::<R>(x, ys, blocks),
            (Flavor::Avx2, WeightType::Q5K) => avx2::q5k::<R>(x, ys, blocks),
            (Flavor::AvxVnni, WeightType::Q5K) => avx_vnni::q5k::<R>(x, ys, blocks),
            (Flavor::Avx512Vnni, WeightType::Q5K) => avx512_vnni::q5k::<R>(x, ys, blocks),
            (Flavor::Avx2, _) => avx2::q6k::<R>(x, ys, blocks),
            (Flavor::AvxVnni, _) => avx_vnni::q6k::<R>(x, ys, blocks),
            (Flavor::Avx512Vnni, _) => avx512_vnni::q6k::<R>(x, ys, blocks),
        }
    }
}

/// Two sub-blocks' sums of Q8_K's block sums (four of its sixteen), as the two i16
/// halves of one i32 in every lane.
#[inline(always)]
unsafe fn pair_sums(by: *const u8, k: usize) -> __m256i {
    // SAFETY: `by` points at a Q8_K block (32 bytes of i16 sums at `Q8K_BSUMS`).
    unsafe {
        let b = |i: usize| {
            i32::from(std::ptr::read_unaligned(
                by.add(Q8K_BSUMS + 2 * i) as *const i16
            ))
        };
        // |sum of 32 quants| <= 32 x 127: an i16.
        let lo = b(4 * k) + b(4 * k + 1);
        let hi = b(4 * k + 2) + b(4 * k + 3);
        _mm256_set1_epi32((lo & 0xFFFF) | (hi << 16))
    }
}

macro_rules! lanes_k {
    ($name:ident, $features:literal, $sum:ident, $sum6:ident) => {
        mod $name {
            use super::*;

            #[target_feature(enable = $features)]
            pub unsafe fn q4k<const R: usize>(
                x: *const u8,
                ys: [*const u8; R],
                blocks: usize,
            ) -> [[f32; ROWS]; R] {
                // SAFETY: as `q45k`'s, with Q4_K's tile.
                unsafe { q45k::<R, false, $sum>(x, ys, blocks) }
            }

            #[target_feature(enable = $features)]
            pub unsafe fn q5k<const R: usize>(
                x: *const u8,
                ys: [*const u8; R],
                blocks: usize,
            ) -> [[f32; ROWS]; R] {
                // SAFETY: as `q45k`'s, with Q5_K's tile.
                unsafe { q45k::<R, true, $sum6>(x, ys, blocks) }
            }

            /// Q4_K's tile (`FIFTH` false) or Q5_K's, with the sums of `S`.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn q45k<const R: usize, const FIFTH: bool, S: Sum>(
                x: *const u8,
                ys: [*const u8; R],
                blocks: usize,
            ) -> [[f32; ROWS]; R] {
                let tile = if FIFTH { TILE_Q5K } else { TILE_Q4K };
                // SAFETY: super-block b of the tile is bytes [tile b, tile (b + 1)), of
                // each activation row [292 b, 292 b + 292).
                unsafe {
                    let m4 = _mm256_set1_epi8(0x0F);
                    let m10 = _mm256_set1_epi8(0x10);
                    let mut acc = [_mm256_setzero_ps(); R];
                    for b in 0..blocks {
                        let bx = x.add(b * tile);
                        prefetch_ahead(bx, tile);
                        let mut isum = [_mm256_setzero_si256(); R];
                        for c in 0..4 {
                            let mut lo_sum = [S::zero(); R];
                            let mut hi_sum = [S::zero(); R];
                            for g in 0..8 {
                                let p = _mm256_loadu_si256(
                                    bx.add(160 + 32 * (8 * c + g)) as *const __m256i
                                );
                                let mut lo = _mm256_and_si256(p, m4);
                                let mut hi = _mm256_and_si256(_mm256_srli_epi16(p, 4), m4);
                                if FIFTH {
                                    let h = _mm256_loadu_si256(
                                        bx.add(TILE_Q4K + 32 * g) as *const __m256i
                                    );
                                    // Bits 2c and 2c + 1 of each byte to bit 4 (the
                                    // 16-bit shifts move no other bit there).
                                    let (l5, h5) = match c {
                                        0 => (_mm256_slli_epi16(h, 4), _mm256_slli_epi16(h, 3)),
                                        1 => (_mm256_slli_epi16(h, 2), _mm256_slli_epi16(h, 1)),
                                        2 => (h, _mm256_srli_epi16(h, 1)),
                                        _ => (_mm256_srli_epi16(h, 2), _mm256_srli_epi16(h, 3)),
                                    };
                                    lo = _mm256_or_si256(lo, _mm256_and_si256(l5, m10));
                                    hi = _mm256_or_si256(hi, _mm256_and_si256(h5, m10));
                                }
                                for i in 0..R {
                                    let qy = ys[i].add(b * 292 + Q8K_QS + 64 * c + 4 * g);
                                    lo_sum[i] = S::add(lo_sum[i], lo, four(qy));
                                    hi_sum[i] = S::add(hi_sum[i], hi, four(qy.add(32)));
                                }
                            }
                            let sc = bx.add(32 + 16 * c);
                            let sc_lo = _mm256_cvtepu8_epi32(_mm_loadl_epi64(sc as *const __m128i));
                            let sc_hi =
                                _mm256_cvtepu8_epi32(_mm_loadl_epi64(sc.add(8) as *const __m128i));
                            for i in 0..R {
                                let l = _mm256_mullo_epi32(S::finish(lo_sum[i]), sc_lo);
                                let h = _mm256_mullo_epi32(S::finish(hi_sum[i]), sc_hi);
                                isum[i] = _mm256_add_epi32(isum[i], _mm256_add_epi32(l, h));
                            }
                        }
                        let d = _mm256_cvtph_ps(_mm_loadu_si128(bx as *const __m128i));
                        let dmin = _mm256_cvtph_ps(_mm_loadu_si128(bx.add(16) as *const __m128i));
                        for i in 0..R {
                            let by = ys[i].add(b * 292);
                            let dy = _mm256_set1_ps(std::ptr::read_unaligned(by as *const f32));
                            let mut msum = _mm256_setzero_si256();
                            for k in 0..4 {
                                let m = _mm256_cvtepu8_epi16(_mm_loadu_si128(
                                    bx.add(96 + 16 * k) as *const __m128i
                                ));
                                msum =
                                    _mm256_add_epi32(msum, _mm256_madd_epi16(m, pair_sums(by, k)));
                            }
                            acc[i] = _mm256_fmadd_ps(
                                _mm256_mul_ps(d, dy),
                                _mm256_cvtepi32_ps(isum[i]),
                                acc[i],
                            );
                            let dm = _mm256_mul_ps(dmin, dy);
                            acc[i] = _mm256_fnmadd_ps(dm, _mm256_cvtepi32_ps(msum), acc[i]);
                        }
                    }
                    rows_out(acc)
                }
            }

            #[target_feature(enable = $features)]
            pub unsafe fn q6k<const R: usize>(
                x: *const u8,
                ys: [*const u8; R],
                blocks: usize,
            ) -> [[f32; ROWS]; R] {
                // SAFETY: super-block b of the tile is bytes [1680 b, 1680 b + 1680), of
                // each activation row [292 b, 292 b + 292).
                unsafe {
                    let m4 = _mm256_set1_epi8(0x0F);
                    let m30 = _mm256_set1_epi8(0x30);
                    let mut acc = [_mm256_setzero_ps(); R];
                    for b in 0..blocks {
                        let bx = x.add(b * TILE_Q6K);
                        prefetch_ahead(bx, TILE_Q6K);
                        let mut isum = [_mm256_setzero_si256(); R];
                        for u in 0..8 {
                            let mut sums = [[$sum6::zero(); 2]; R];
                            for g in 0..8 {
                                let nib = _mm256_loadu_si256(
                                    bx.add(144 + 32 * (8 * (u % 4) + g)) as *const __m256i
                                );
                                let nib = if u < 4 {
                                    nib
                                } else {
                                    _mm256_srli_epi16(nib, 4)
                                };
                                let hb = _mm256_loadu_si256(
                                    bx.add(1168 + 32 * (8 * (u % 2) + g)) as *const __m256i
                                );
                                // Bits 2s, 2s + 1 of each byte to bits 4, 5 (s = u / 2).
                                let top = match u / 2 {
                                    0 => _mm256_slli_epi16(hb, 4),
                                    1 => _mm256_slli_epi16(hb, 2),
                                    2 => hb,
                                    _ => _mm256_srli_epi16(hb, 2),
                                };
                                let q = _mm256_or_si256(
                                    _mm256_and_si256(nib, m4),
                                    _mm256_and_si256(top, m30),
                                );
                                for i in 0..R {
                                    let qy = ys[i].add(b * 292 + Q8K_QS + 32 * u + 4 * g);
                                    sums[i][g / 4] = $sum6::add(sums[i][g / 4], q, four(qy));
                                }
                            }
                            let pair = _mm_loadu_si128(bx.add(16 + 16 * u) as *const __m128i);
                            for h in 0..2 {
                                let pick = _mm_loadu_si128(PICK[h].as_ptr() as *const __m128i);
                                let sc = _mm256_cvtepi8_epi32(_mm_shuffle_epi8(pair, pick));
                                for i in 0..R {
                                    let p = _mm256_mullo_epi32($sum6::finish(sums[i][h]), sc);
                                    isum[i] = _mm256_add_epi32(isum[i], p);
                                }
                            }
                        }
                        let d = _mm256_cvtph_ps(_mm_loadu_si128(bx as *const __m128i));
                        for i in 0..R {
                            let by = ys[i].add(b * 292);
                            let dy = _mm256_set1_ps(std::ptr::read_unaligned(by as *const f32));
                            // 32 x sum over groups of scale x block sum, per row.
                            let mut bias = _mm256_setzero_si256();
                            for k in 0..8 {
                                let sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(
                                    bx.add(16 + 16 * k) as *const __m128i
                                ));
                                let bs = std::ptr::read_unaligned(
                                    by.add(Q8K_BSUMS + 4 * k) as *const i32
                                );
                                bias = _mm256_add_epi32(
                                    bias,
                                    _mm256_madd_epi16(sc, _mm256_set1_epi32(bs)),
                                );
                            }
                            let s = _mm256_sub_epi32(isum[i], _mm256_slli_epi32(bias, 5));
                            acc[i] = _mm256_fmadd_ps(
                                _mm256_mul_ps(d, dy),
                                _mm256_cvtepi32_ps(s),
                                acc[i],
                            );
                        }
                    }
                    rows_out(acc)
                }
            }
        }
    };
}

lanes_k!(avx2, "avx2,fma,f16c", Maddubs16, Maddubs32);
lanes_k!(avx_vnni, "avx2,fma,f16c,avxvnni", AvxVnni, AvxVnni);
lanes_k!(
    avx512_vnni,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    Avx512Vnni,
    Avx512Vnni
);
