//! Q4_1, Q5_0, Q5_1 and Q8_0 in tiles of sixteen rows, one row per 32-bit lane of a
//! 512-bit register: the eight-row tiles of `x86_lanes` twice as wide, for CPUs with
//! AVX-512 (F, BW, VNNI). One `vpdpbusd` adds four products to each of sixteen rows,
//! so a block of weights takes half the instructions of the eight-row tile (the
//! decode-bound part of a step on a small model is instruction-bound, not
//! memory-bound: SmolLM2's Q4_1 tiles streamed 53% of the read bandwidth on eight
//! rows).
//!
//! Per 32-value block a tile holds the sixteen rows' `d` (16 x f16), then Q4_1's and
//! Q5_1's `m` (16 x f16), Q5's fifth bits as eight 64-bit words (word `g`: bit `4r + t`
//! for row `r`'s value `t` of group `g`, loaded straight into a byte mask), and four
//! 64-byte registers of nibbles (Q8_0: eight registers of biased bytes), in the order
//! `x86_lanes` documents for eight rows ([`crate::x86_lanes::pack_n`] packs both). The
//! per-lane arithmetic is the eight-row tile's, term for term, so the results are
//! the same bits (tested).

use std::arch::x86_64::*;

use crate::types::WeightType;
use crate::x86::{half, prefetch_ahead};

/// Weight rows per tile.
pub const ROWS: usize = 16;

/// Whether this CPU runs these kernels.
pub fn available() -> bool {
    crate::x86::Flavor::avx512()
}

/// Whether `t` is kept in these tiles.
pub fn runs(t: WeightType) -> bool {
    matches!(
        t,
        WeightType::Q4_1 | WeightType::Q5_0 | WeightType::Q5_1 | WeightType::Q8_0
    )
}

/// Bytes of one tile per 32-value block.
pub fn tile_block(t: WeightType) -> usize {
    t.block_bytes() * ROWS
}

/// Packs sixteen rows (`None`: a zero row past the matrix's end) as one tile.
pub fn pack(t: WeightType, rows: [Option<&[u8]>; ROWS], blocks: usize, out: &mut Vec<u8>) {
    crate::x86_lanes::pack_n(t, rows, blocks, out)
}

/// A tile's `R` x 16 dot products with `R` activation rows (`blocks` blocks each, of
/// `t`'s activation type): `out[i][r]` is row `r` times activation row `i`.
pub fn dot<const R: usize>(
    t: WeightType,
    tile: &[u8],
    acts: [&[u8]; R],
    blocks: usize,
) -> [[f32; ROWS]; R] {
    assert!(available(), "this CPU has no AVX-512 VNNI");
    assert!(runs(t), "{} is not kept in 16-row tiles", t.name());
    assert!(tile.len() >= blocks * tile_block(t));
    assert!(acts.iter().all(|a| a.len() >= blocks * 36));
    let (x, ys) = (tile.as_ptr(), acts.map(<[u8]>::as_ptr));
    // SAFETY: the features are present (asserted); the slices hold `blocks` tile blocks
    // and activation blocks (asserted above), which is all the kernel reads.
    unsafe {
        match t {
            WeightType::Q4_1 => kernel::<0, R>(x, ys, blocks),
            WeightType::Q5_0 => kernel::<1, R>(x, ys, blocks),
            WeightType::Q8_0 => kernel::<2, R>(x, ys, blocks),
            _ => kernel::<3, R>(x, ys, blocks),
        }
    }
}

/// Four activation bytes at `p`, in every lane.
#[inline(always)]
unsafe fn four(p: *const u8) -> __m512i {
    // SAFETY: `p` points at four readable bytes of an activation block.
    unsafe { _mm512_set1_epi32(std::ptr::read_unaligned(p as *const i32)) }
}

/// Sixteen f16 at `p` as f32.
#[inline(always)]
unsafe fn halves(p: *const u8) -> __m512 {
    // SAFETY: `p` points at 32 readable bytes of a tile block; AVX-512F is enabled.
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
}

/// `K`: 0 Q4_1, 1 Q5_0, 2 Q8_0, 3 Q5_1.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<const K: u8, const R: usize>(
    x: *const u8,
    ys: [*const u8; R],
    blocks: usize,
) -> [[f32; ROWS]; R] {
    // SAFETY: block b of the tile is bytes [tb b, tb b + tb), of each activation row
    // [36 b, 36 b + 36); AVX-512 F/BW/VNNI are enabled above.
    unsafe {
        let tb = [320, 352, 544, 384][K as usize];
        let m4 = _mm512_set1_epi8(0x0F);
        let b10 = _mm512_set1_epi8(0x10);
        let mut acc = [_mm512_setzero_ps(); R];
        for b in 0..blocks {
            let bx = x.add(b * tb);
            prefetch_ahead(bx, tb);
            let mut sums = [_mm512_setzero_si512(); R];
            if K == 2 {
                // Two chains for a lone activation row, as the eight-row tile.
                let mut odd = [_mm512_setzero_si512(); R];
                for g in 0..8 {
                    let w = _mm512_loadu_si512(bx.add(32 + 64 * g) as *const __m512i);
                    for i in 0..R {
                        let a = four(ys[i].add(b * 36 + 4 + 4 * g));
                        if R == 1 && g % 2 == 1 {
                            odd[i] = _mm512_dpbusd_epi32(odd[i], w, a);
                        } else {
                            sums[i] = _mm512_dpbusd_epi32(sums[i], w, a);
                        }
                    }
                }
                if R == 1 {
                    sums[0] = _mm512_add_epi32(sums[0], odd[0]);
                }
            } else {
                let nib = bx.add([64, 96, 0, 128][K as usize]);
                for j in 0..4 {
                    let p = _mm512_loadu_si512(nib.add(64 * j) as *const __m512i);
                    let mut lo = _mm512_and_si512(p, m4);
                    let mut hi = _mm512_and_si512(_mm512_srli_epi16(p, 4), m4);
                    if K == 1 || K == 3 {
                        let h = bx.add(if K == 1 { 32 } else { 64 } + 8 * j);
                        let kl: __mmask64 = std::ptr::read_unaligned(h as *const u64);
                        let kh: __mmask64 = std::ptr::read_unaligned(h.add(32) as *const u64);
                        lo = _mm512_mask_add_epi8(lo, kl, lo, b10);
                        hi = _mm512_mask_add_epi8(hi, kh, hi, b10);
                    }
                    for i in 0..R {
                        let qy = ys[i].add(b * 36 + 4);
                        sums[i] = _mm512_dpbusd_epi32(sums[i], lo, four(qy.add(4 * j)));
                        sums[i] = _mm512_dpbusd_epi32(sums[i], hi, four(qy.add(16 + 4 * j)));
                    }
                }
            }
            let d = halves(bx);
            for i in 0..R {
                let by = ys[i].add(b * 36);
                let dd = _mm512_mul_ps(d, _mm512_set1_ps(half(by)));
                if K == 0 || K == 3 {
                    acc[i] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(sums[i]), acc[i]);
                    let m = halves(bx.add(32));
                    acc[i] = _mm512_fmadd_ps(m, _mm512_set1_ps(half(by.add(2))), acc[i]);
                } else {
                    // The bias times the activations' sum comes off exactly.
                    let sum = i32::from(std::ptr::read_unaligned(by.add(2) as *const i16));
                    let bias = if K == 1 { 16 } else { 128 };
                    let s = _mm512_sub_epi32(sums[i], _mm512_set1_epi32(bias * sum));
                    acc[i] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(s), acc[i]);
                }
            }
        }
        let mut out = [[0f32; ROWS]; R];
        for (o, a) in out.iter_mut().zip(acc) {
            _mm512_storeu_ps(o.as_mut_ptr(), a);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sixteen rows in one tile give the bits of the same rows in two eight-row tiles
    /// (the per-lane arithmetic is the same), for one to four activation rows.
    #[test]
    fn sixteen_rows_give_the_eight_row_tiles_bits() {
        use crate::x86::Flavor;
        if !available() {
            eprintln!("no AVX-512 VNNI here: nothing to compare");
            return;
        }
        use crate::x86_lanes::testing;
        let mut bytes = testing::Bytes(0x9E37_79B9_7F4A_7C15);
        let blocks = 6;
        for t in [
            WeightType::Q4_1,
            WeightType::Q5_0,
            WeightType::Q5_1,
            WeightType::Q8_0,
        ] {
            let rows = testing::rows(t, ROWS, blocks, &mut bytes);
            let mut wide = Vec::new();
            pack(
                t,
                std::array::from_fn(|r| Some(&rows[r][..])),
                blocks,
                &mut wide,
            );
            let mut lo8 = Vec::new();
            let mut hi8 = Vec::new();
            crate::x86_lanes::pack(
                t,
                std::array::from_fn(|r| Some(&rows[r][..])),
                blocks,
                &mut lo8,
            );
            crate::x86_lanes::pack(
                t,
                std::array::from_fn(|r| Some(&rows[8 + r][..])),
                blocks,
                &mut hi8,
            );
            let acts = testing::activations(t, 4, blocks, &mut bytes);
            let four = [&acts[0][..], &acts[1][..], &acts[2][..], &acts[3][..]];
            let got4 = dot::<4>(t, &wide, four, blocks);
            let got1 = dot::<1>(t, &wide, [four[0]], blocks);
            let f = Flavor::Avx512Vnni;
            let a4 = crate::x86_lanes::dot::<4>(f, t, &lo8, four, blocks);
            let b4 = crate::x86_lanes::dot::<4>(f, t, &hi8, four, blocks);
            for i in 0..4 {
                let want: Vec<u32> = a4[i].iter().chain(&b4[i]).map(|v| v.to_bits()).collect();
                let got: Vec<u32> = got4[i].iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "{} activation row {i} of four", t.name());
            }
            assert_eq!(got1[0], got4[0], "{}: one activation row alone", t.name());
        }
    }
}
