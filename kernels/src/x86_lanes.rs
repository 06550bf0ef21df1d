//! Q4_1, Q5_0, Q5_1 and Q8_0 with eight weight rows side by side in the lanes of one
//! register, against one to four activation rows at once (the layout candle's x86
//! repacked kernels use for Q8_0 and the K-quants).
//!
//! Per 32-value block, a tile holds the eight rows' `d` (8 x f16), then per type:
//!
//! - Q4_1: their `m` (8 x f16), then four 32-byte registers of nibbles: register
//!   `j`'s low nibbles are values `4j .. 4j + 4` of rows 0..8 (four bytes per row,
//!   row-major), its high nibbles values `16 + 4j ..`. 160 bytes.
//! - Q5_0: eight words of fifth bits, word `g` for value group `g` (the low nibbles'
//!   groups 0..4, then the high ones' 4..8; bit `4r + t` for row `r`'s value `t`),
//!   then the nibbles as Q4_1's. 176 bytes.
//! - Q5_1: `m` as Q4_1's, then Q5_0's fifth bits and nibbles. 192 bytes.
//! - Q8_0: eight 32-byte registers, register `g` values `4g .. 4g + 4` of rows 0..8,
//!   each stored plus 128 as an unsigned byte. 272 bytes.
//!
//! The same bytes per row and block as GGUF's. One `vpdpbusd` of a register with four
//! activation bytes broadcast adds four products to each row's lane: no horizontal
//! sums, no per-row scale broadcasts, and with several activation rows (prefill) each
//! weight register is unpacked once for all of them. Q5_0 and Q8_0 multiply their
//! unsigned stored quants and subtract the bias times the activations' exact sum
//! (Q8_0 activations carry it). Each block's integer sum is exact (at most
//! 32 x 255 x 127 before the bias comes off), converted once and scaled as the row
//! kernels scale it: the same terms in another f32 order.
//!
//! AVX2 without VNNI sums with `maddubs`, which saturates on Q8_0's biased bytes
//! (2 x 255 x 127 > 32,767): there Q8_0 keeps the four-row groups ([`runs`]).

use std::arch::x86_64::*;

use crate::types::WeightType;
use crate::x86::{Flavor, bits, half, prefetch_ahead};

/// Weight rows per tile.
pub const ROWS: usize = 8;

/// Whether `t` is kept in lane tiles for flavour `f`.
pub fn runs(t: WeightType, f: Flavor) -> bool {
    match t {
        WeightType::Q4_1 | WeightType::Q5_0 | WeightType::Q5_1 => true,
        WeightType::Q8_0 => f != Flavor::Avx2,
        _ => false,
    }
}

/// Bytes of one tile per 32-value block.
pub fn tile_block(t: WeightType) -> usize {
    t.block_bytes() * ROWS
}

/// Packs eight rows of `t` blocks (`None`: a zero row past the matrix's end), each
/// `blocks` blocks long, as one tile, appended to `out`.
pub fn pack(t: WeightType, rows: [Option<&[u8]>; ROWS], blocks: usize, out: &mut Vec<u8>) {
    pack_n(t, rows, blocks, out)
}

/// [`pack`] for tiles of `N` rows (8 here, 16 for `x86_lanes16`): per block the `N`
/// rows' `d` (and Q4_1's and Q5_1's `m`), Q5's fifth bits as eight words of `N x 4`
/// bits (bit `4r + t` for row `r`'s value `t` of the word's group), then four registers
/// of `N x 4` nibble bytes.
pub(crate) fn pack_n<const N: usize>(
    t: WeightType,
    rows: [Option<&[u8]>; N],
    blocks: usize,
    out: &mut Vec<u8>,
) {
    let bb = t.block_bytes();
    out.reserve(blocks * bb * N);
    for b in 0..blocks {
        let block = |r: usize| rows[r].map(|row| &row[bb * b..bb * b + bb]);
        // `d`, and Q4_1's `m`: N f16 each.
        let with_m = matches!(t, WeightType::Q4_1 | WeightType::Q5_1);
        let scales: &[usize] = if with_m { &[0, 2] } else { &[0] };
        for &at in scales {
            for r in 0..N {
                out.extend_from_slice(block(r).map_or(&[0, 0][..], |x| &x[at..at + 2]));
            }
        }
        // Each row's values as stored (unsigned): their quants before the bias.
        let unpacked: [[u8; 32]; N] = std::array::from_fn(|r| {
            block(r).map_or([0; 32], |x| crate::rows::unpack_block(t, x).0)
        });
        let q = |r: usize, k: usize| unpacked[r][k];
        // Group g's values: 4g .. 4g + 4 for Q8_0; the nibble registers' order otherwise.
        let value = |g: usize, t4: usize| {
            if g < 4 {
                4 * g + t4
            } else {
                16 + 4 * (g - 4) + t4
            }
        };
        match t {
            WeightType::Q8_0 => {
                for g in 0..8 {
                    for r in 0..N {
                        for t4 in 0..4 {
                            out.push(q(r, 4 * g + t4));
                        }
                    }
                }
                continue;
            }
            WeightType::Q5_0 | WeightType::Q5_1 => {
                for g in 0..8 {
                    let mut word = 0u64;
                    for r in 0..N {
                        for t4 in 0..4 {
                            word |= u64::from(q(r, value(g, t4)) >> 4) << (4 * r + t4);
                        }
                    }
                    out.extend_from_slice(&word.to_le_bytes()[..N / 2]);
                }
            }
            _ => {}
        }
        for j in 0..4 {
            for r in 0..N {
                for t4 in 0..4 {
                    out.push((q(r, value(j, t4)) & 0x0F) | ((q(r, value(j + 4, t4)) & 0x0F) << 4));
                }
            }
        }
    }
}

/// A tile's `R` x 8 dot products with `R` activation rows (`blocks` blocks each, of
/// `t`'s activation type): `out[i][r]` is row `r` times activation row `i`.
pub fn dot<const R: usize>(
    f: Flavor,
    t: WeightType,
    tile: &[u8],
    acts: [&[u8]; R],
    blocks: usize,
) -> [[f32; ROWS]; R] {
    debug_assert!(f.available());
    assert!(
        runs(t, f),
        "{} is not kept in lane tiles for {f:?}",
        t.name()
    );
    assert!(tile.len() >= blocks * tile_block(t));
    assert!(acts.iter().all(|a| a.len() >= blocks * 36));
    let (x, ys) = (tile.as_ptr(), acts.map(<[u8]>::as_ptr));
    // SAFETY: the caller checked `f.available()`; the slices hold `blocks` tile blocks
    // and activation blocks (asserted above), which is all the kernels read; Q8_0 on
    // AVX2 alone is refused above.
    unsafe {
        match (f, t) {
            (Flavor::Avx2, WeightType::Q4_1) => avx2::tile::<0, R>(x, ys, blocks),
            (Flavor::Avx2, WeightType::Q5_0) => avx2::tile::<1, R>(x, ys, blocks),
            (Flavor::Avx2, WeightType::Q5_1) => avx2::tile::<3, R>(x, ys, blocks),
            (Flavor::AvxVnni, WeightType::Q4_1) => avx_vnni::tile::<0, R>(x, ys, blocks),
            (Flavor::AvxVnni, WeightType::Q5_0) => avx_vnni::tile::<1, R>(x, ys, blocks),
            (Flavor::AvxVnni, WeightType::Q5_1) => avx_vnni::tile::<3, R>(x, ys, blocks),
            (Flavor::AvxVnni, _) => avx_vnni::tile::<2, R>(x, ys, blocks),
            (Flavor::Avx512Vnni, WeightType::Q4_1) => avx512_vnni::tile::<0, R>(x, ys, blocks),
            (Flavor::Avx512Vnni, WeightType::Q5_0) => avx512_vnni::tile::<1, R>(x, ys, blocks),
            (Flavor::Avx512Vnni, WeightType::Q5_1) => avx512_vnni::tile::<3, R>(x, ys, blocks),
            (Flavor::Avx512Vnni, _) => avx512_vnni::tile::<2, R>(x, ys, blocks),
            (Flavor::Avx2, _) => unreachable!("refused above"),
        }
    }
}

/// How a copy sums a block's byte products per lane.
pub(crate) trait Sum {
    unsafe fn zero() -> __m256i;
    /// Adds the products of unsigned `w` and signed `a`, four per lane.
    unsafe fn add(acc: __m256i, w: __m256i, a: __m256i) -> __m256i;
    /// The lanes' i32 sums.
    unsafe fn finish(acc: __m256i) -> __m256i;
}

/// AVX2 for Q4_1: `maddubs` pairs (at most 2 x 15 x 127 = 3,810) added as i16 over the
/// block's eight registers (at most 30,480: no wrap), widened once.
pub(crate) struct Maddubs16;
impl Sum for Maddubs16 {
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

/// AVX2 for Q5_0 and Q5_1: each register's `maddubs` pairs (at most 2 x 31 x 127 = 7,874)
/// widened to i32 at once (eight of them could wrap an i16).
pub(crate) struct Maddubs32;
impl Sum for Maddubs32 {
    #[inline(always)]
    unsafe fn zero() -> __m256i {
        // SAFETY: register-only AVX arithmetic.
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    unsafe fn add(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        // SAFETY: register-only AVX2 arithmetic (callers enable AVX2).
        unsafe {
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), _mm256_set1_epi16(1));
            _mm256_add_epi32(acc, p)
        }
    }
    #[inline(always)]
    unsafe fn finish(acc: __m256i) -> __m256i {
        acc
    }
}

/// AVX-VNNI: one `vpdpbusd` per register.
pub(crate) struct AvxVnni;
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
pub(crate) struct Avx512Vnni;
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

/// The accumulators' lanes as rows of results: `out[i][r]` is lane `r` of `acc[i]`.
#[inline(always)]
pub(crate) unsafe fn rows_out<const R: usize>(acc: [__m256; R]) -> [[f32; ROWS]; R] {
    let mut out = [[0f32; ROWS]; R];
    for (o, a) in out.iter_mut().zip(acc) {
        // SAFETY: `o` has room for eight f32; AVX is enabled in every caller.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), a) };
    }
    out
}

/// Four activation bytes at `p`, in every lane.
#[inline(always)]
pub(crate) unsafe fn four(p: *const u8) -> __m256i {
    // SAFETY: `p` points at four readable bytes of an activation block.
    unsafe { _mm256_set1_epi32(std::ptr::read_unaligned(p as *const i32)) }
}

/// The kernels, once per instruction set: `$q4` sums Q4_1's products, `$q58` Q5_0's,
/// Q5_1's and Q8_0's.
macro_rules! lanes {
    ($name:ident, $features:literal, $q4:ident, $q58:ident) => {
        mod $name {
            use super::*;

            #[inline(always)]
            unsafe fn add<const K: u8>(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
                // SAFETY: register-only arithmetic with this copy's features.
                unsafe {
                    if K == 0 {
                        $q4::add(acc, w, a)
                    } else {
                        $q58::add(acc, w, a)
                    }
                }
            }

            /// `K`: 0 Q4_1, 1 Q5_0, 2 Q8_0, 3 Q5_1.
            #[target_feature(enable = $features)]
            pub unsafe fn tile<const K: u8, const R: usize>(
                x: *const u8,
                ys: [*const u8; R],
                blocks: usize,
            ) -> [[f32; ROWS]; R] {
                // SAFETY: block b of the tile is bytes [tb b, tb b + tb), of each
                // activation row [36 b, 36 b + 36).
                unsafe {
                    let tb = [160, 176, 272, 192][K as usize];
                    let m4 = _mm256_set1_epi8(0x0F);
                    let b10 = _mm256_set1_epi8(0x10);
                    let mut acc = [_mm256_setzero_ps(); R];
                    for b in 0..blocks {
                        let bx = x.add(b * tb);
                        prefetch_ahead(bx, tb);
                        let mut sums = [$q58::zero(); R];
                        if K == 2 {
                            // Nothing to unpack, so the sums' chain of dependent dot
                            // products bounds a lone activation row: two chains, added
                            // at the end (+20% on 2 threads, at the streaming read).
                            let mut odd = [$q58::zero(); R];
                            for g in 0..8 {
                                let w = _mm256_loadu_si256(bx.add(16 + 32 * g) as *const __m256i);
                                for i in 0..R {
                                    let a = four(ys[i].add(b * 36 + 4 + 4 * g));
                                    if R == 1 && g % 2 == 1 {
                                        odd[i] = add::<K>(odd[i], w, a);
                                    } else {
                                        sums[i] = add::<K>(sums[i], w, a);
                                    }
                                }
                            }
                            if R == 1 {
                                sums[0] = _mm256_add_epi32(sums[0], odd[0]);
                            }
                        } else {
                            let nib = bx.add([32, 48, 0, 64][K as usize]);
                            for j in 0..4 {
                                let p = _mm256_loadu_si256(nib.add(32 * j) as *const __m256i);
                                let mut lo = _mm256_and_si256(p, m4);
                                let mut hi = _mm256_and_si256(_mm256_srli_epi16(p, 4), m4);
                                if K == 1 || K == 3 {
                                    let h = bx.add(if K == 1 { 16 } else { 32 } + 4 * j);
                                    lo = _mm256_or_si256(lo, _mm256_and_si256(bits(h), b10));
                                    hi =
                                        _mm256_or_si256(hi, _mm256_and_si256(bits(h.add(16)), b10));
                                }
                                for i in 0..R {
                                    let qy = ys[i].add(b * 36 + 4);
                                    sums[i] = add::<K>(sums[i], lo, four(qy.add(4 * j)));
                                    sums[i] = add::<K>(sums[i], hi, four(qy.add(16 + 4 * j)));
                                }
                            }
                        }
                        let d = _mm256_cvtph_ps(_mm_loadu_si128(bx as *const __m128i));
                        for i in 0..R {
                            let by = ys[i].add(b * 36);
                            let dd = _mm256_mul_ps(d, _mm256_set1_ps(half(by)));
                            let s = if K == 0 {
                                $q4::finish(sums[i])
                            } else {
                                $q58::finish(sums[i])
                            };
                            if K == 0 || K == 3 {
                                acc[i] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(s), acc[i]);
                                let m =
                                    _mm256_cvtph_ps(_mm_loadu_si128(bx.add(16) as *const __m128i));
                                acc[i] =
                                    _mm256_fmadd_ps(m, _mm256_set1_ps(half(by.add(2))), acc[i]);
                            } else {
                                // The bias times the activations' sum comes off exactly.
                                let sum =
                                    i32::from(std::ptr::read_unaligned(by.add(2) as *const i16));
                                let bias = if K == 1 { 16 } else { 128 };
                                let s = _mm256_sub_epi32(s, _mm256_set1_epi32(bias * sum));
                                acc[i] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(s), acc[i]);
                            }
                        }
                    }
                    rows_out(acc)
                }
            }
        }
    };
}

lanes!(avx2, "avx2,fma,f16c", Maddubs16, Maddubs32);
lanes!(avx_vnni, "avx2,fma,f16c,avxvnni", AvxVnni, AvxVnni);
lanes!(
    avx512_vnni,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    Avx512Vnni,
    Avx512Vnni
);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every copy computes the same integer sums, so every available copy gives the
    /// same bits, for one and for four activation rows (Q8_0: the VNNI copies).
    #[test]
    fn every_copy_gives_the_same_bits() {
        let flavors = [Flavor::Avx2, Flavor::AvxVnni, Flavor::Avx512Vnni];
        let here: Vec<Flavor> = flavors.into_iter().filter(|f| f.available()).collect();
        for t in [
            WeightType::Q4_1,
            WeightType::Q5_0,
            WeightType::Q5_1,
            WeightType::Q8_0,
        ] {
            let copies: Vec<Flavor> = here.iter().copied().filter(|&f| runs(t, f)).collect();
            eprintln!("{}: {copies:?}", t.name());
            same_bits(t, &copies);
        }
    }

    fn same_bits(t: WeightType, copies: &[Flavor]) {
        let Some(&first) = copies.first() else {
            return;
        };
        let mut bytes = testing::Bytes(0x2545_F491_4F6C_DD1D);
        let blocks = 5;
        let rows = testing::rows(t, ROWS, blocks, &mut bytes);
        let mut tile = Vec::new();
        pack(
            t,
            std::array::from_fn(|r| Some(&rows[r][..])),
            blocks,
            &mut tile,
        );
        let acts = testing::activations(t, 4, blocks, &mut bytes);
        let four = [&acts[0][..], &acts[1][..], &acts[2][..], &acts[3][..]];
        let want1 = dot::<1>(first, t, &tile, [four[0]], blocks);
        let want4 = dot::<4>(first, t, &tile, four, blocks);
        assert_eq!(
            want4[0], want1[0],
            "four rows at once, the first as one row alone"
        );
        for &f in copies {
            assert_eq!(dot::<1>(f, t, &tile, [four[0]], blocks), want1, "{f:?}");
            assert_eq!(dot::<4>(f, t, &tile, four, blocks), want4, "{f:?} x4");
        }
    }
}

/// Random tiles' rows and activations for the tile tests here and in `x86_lanes16`.
#[cfg(test)]
pub(crate) mod testing {
    use crate::types::WeightType;

    /// xorshift64 bytes.
    pub struct Bytes(pub u64);

    impl Bytes {
        pub fn next(&mut self) -> u8 {
            let s = &mut self.0;
            *s ^= *s << 13;
            *s ^= *s >> 7;
            *s ^= *s << 17;
            *s as u8
        }
    }

    /// `n` rows of `blocks` random blocks of `t`, with finite scales and offsets (0.01
    /// and 0.002 as f16).
    pub fn rows(t: WeightType, n: usize, blocks: usize, bytes: &mut Bytes) -> Vec<Vec<u8>> {
        let bb = t.block_bytes();
        (0..n)
            .map(|_| {
                let mut r: Vec<u8> = (0..blocks * bb).map(|_| bytes.next()).collect();
                for b in r.chunks_exact_mut(bb) {
                    b[..2].copy_from_slice(&0x211Eu16.to_le_bytes());
                    if matches!(t, WeightType::Q4_1 | WeightType::Q5_1) {
                        b[2..4].copy_from_slice(&0x1819u16.to_le_bytes());
                    }
                }
                r
            })
            .collect()
    }

    /// `n` random activation rows of `blocks` blocks, quantized for `t`.
    pub fn activations(t: WeightType, n: usize, blocks: usize, bytes: &mut Bytes) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| {
                let x: Vec<f32> = (0..blocks * 32)
                    .map(|_| bytes.next() as i8 as f32 / 9.0)
                    .collect();
                let mut a = Vec::new();
                crate::quantize_activations(&x, t.activation(), &mut a);
                a
            })
            .collect()
    }
}
