//! x86-64 dot products, after llama.cpp's `ggml_vec_dot_q4_1_q8_1`, `_q5_0_q8_0`,
//! `_q5_1_q8_1` and `_q8_0_q8_0` (ggml-cpu, x86 quants). One block per iteration: 32 products of
//! unsigned weight quants and signed activations summed to eight i32 lanes, scaled in
//! f32 with one FMA. With AVX2 alone the sum is `maddubs` (u8 x i8 -> i16 pairs) then
//! `madd` (pairs -> i32); with VNNI (AVX-VNNI, or AVX-512 VNNI on 256-bit registers)
//! it is one `vpdpbusd`, as llama.cpp uses where the CPU has it.
//!
//! The kernels are written once (`kernels!`) and compiled for each instruction set,
//! each copy with its own `#[target_feature]`, chosen at run time by [`Flavor`].

use std::arch::x86_64::*;

use crate::types::{BLOCK, WeightType};

/// Which copy of the kernels runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// AVX2 + FMA + F16C.
    Avx2,
    /// The same with AVX-VNNI.
    AvxVnni,
    /// The same with AVX-512 VNNI + VL (256-bit registers).
    Avx512Vnni,
}

impl Flavor {
    pub fn available(self) -> bool {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let avx2 = *AVX2.get_or_init(|| {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        });
        avx2 && match self {
            Flavor::Avx2 => true,
            Flavor::AvxVnni => is_x86_feature_detected!("avxvnni"),
            Flavor::Avx512Vnni => {
                is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
            }
        }
    }

    /// Whether this CPU runs the sixteen-row tiles of `x86_lanes16`: AVX-512 VNNI (and
    /// VL) with AVX-512 F and BW.
    pub fn avx512() -> bool {
        Flavor::Avx512Vnni.available()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
    }

    /// The VNNI copy this CPU runs, if any.
    pub fn vnni() -> Option<Flavor> {
        [Flavor::AvxVnni, Flavor::Avx512Vnni]
            .into_iter()
            .find(|f| f.available())
    }
}

pub fn dot(f: Flavor, t: WeightType, row: &[u8], act: &[u8], blocks: usize) -> f32 {
    debug_assert!(f.available());
    debug_assert!(row.len() >= blocks * t.block_bytes());
    debug_assert!(act.len() >= blocks * t.activation().block_bytes());
    let (x, y) = (row.as_ptr(), act.as_ptr());
    // SAFETY: the caller checked `f.available()` (the copy's features are present),
    // and the slices hold `blocks` whole blocks of each kind (asserted by `dot_with`),
    // which is all the kernels read.
    unsafe {
        match (f, t) {
            (Flavor::Avx2, WeightType::Q4_1) => avx2::q4_1(x, y, blocks),
            (Flavor::Avx2, WeightType::Q5_0) => avx2::q5_0(x, y, blocks),
            (Flavor::Avx2, WeightType::Q5_1) => avx2::q5_1(x, y, blocks),
            (Flavor::AvxVnni, WeightType::Q4_1) => avx_vnni::q4_1(x, y, blocks),
            (Flavor::AvxVnni, WeightType::Q5_0) => avx_vnni::q5_0(x, y, blocks),
            (Flavor::AvxVnni, WeightType::Q5_1) => avx_vnni::q5_1(x, y, blocks),
            (Flavor::Avx512Vnni, WeightType::Q4_1) => avx512_vnni::q4_1(x, y, blocks),
            (Flavor::Avx512Vnni, WeightType::Q5_0) => avx512_vnni::q5_0(x, y, blocks),
            (Flavor::Avx512Vnni, WeightType::Q5_1) => avx512_vnni::q5_1(x, y, blocks),
            (Flavor::Avx2, WeightType::Q8_0) => avx2::q8_0(x, y, blocks),
            (Flavor::AvxVnni, WeightType::Q8_0) => avx_vnni::q8_0(x, y, blocks),
            (Flavor::Avx512Vnni, WeightType::Q8_0) => avx512_vnni::q8_0(x, y, blocks),
            (_, WeightType::Q4K | WeightType::Q5K | WeightType::Q6K) => {
                unreachable!("the K-quants run in x86_k")
            }
        }
    }
}

/// Four weight rows against the same activations: each activation block is loaded once
/// for four rows, and the four accumulators are independent (more work in flight).
/// Q4_1 and Q5_1 only (Q5_0's four-row form measured slower, Q8_0's fast form is
/// packed, the K-quants go row by row: the others run row by row here).
pub fn dot4(f: Flavor, t: WeightType, rows: [&[u8]; 4], act: &[u8], blocks: usize) -> [f32; 4] {
    debug_assert!(f.available());
    debug_assert!(rows.iter().all(|r| r.len() >= blocks * t.block_bytes()));
    debug_assert!(act.len() >= blocks * t.activation().block_bytes());
    if !matches!(t, WeightType::Q4_1 | WeightType::Q5_1) {
        return rows.map(|r| dot(f, t, r, act, blocks));
    }
    let (p, y) = (rows.map(<[u8]>::as_ptr), act.as_ptr());
    // SAFETY: as for `dot`: the features are present and every slice holds `blocks`
    // whole blocks.
    unsafe {
        match (f, t) {
            (Flavor::Avx2, WeightType::Q4_1) => avx2::q4_1_x4(p, y, blocks),
            (Flavor::AvxVnni, WeightType::Q4_1) => avx_vnni::q4_1_x4(p, y, blocks),
            (Flavor::Avx512Vnni, WeightType::Q4_1) => avx512_vnni::q4_1_x4(p, y, blocks),
            (Flavor::Avx2, _) => avx2::q5_1_x4(p, y, blocks),
            (Flavor::AvxVnni, _) => avx_vnni::q5_1_x4(p, y, blocks),
            (Flavor::Avx512Vnni, _) => avx512_vnni::q5_1_x4(p, y, blocks),
        }
    }
}

/// How far ahead of the block it is reading a tile kernel asks for the weights
/// ([`prefetch_ahead`]): with the hardware prefetcher alone, one core's stream of tiles
/// reached 70-80% of its read bandwidth on the development VM. Measured there (decode
/// tok/s at `--depth off`, medians of four interleaved runs, no prefetch / 4 KiB / 8 KiB
/// ahead): SmolLM2 with 16-row tiles 273 / 313 / 311, on AVX2 201 / 250 / 258;
/// Qwen2.5-Coder 55.4 / 65.8 / 65.5 and AVX2 43.0 / 52.0 / 52.9; Gemma 3 90.7 / 109.2 /
/// 109.9 and AVX2 73.6 / 85.8 / 87.0. 4 KiB: as good within the noise, and an eighth of
/// a 32 KiB L1. Past a span's end it reaches into the next tile (the next span's, or
/// another matrix): bandwidth only.
pub(crate) const PREFETCH_AHEAD: usize = 4096;

/// Asks for the `bytes` at `p + PREFETCH_AHEAD` (one request per 64-byte line) to be
/// brought into cache. A hint: it never faults, whatever the address.
#[inline(always)]
pub(crate) unsafe fn prefetch_ahead(p: *const u8, bytes: usize) {
    let mut o = 0;
    while o < bytes {
        // SAFETY: a prefetch reads nothing the program sees and never faults.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_AHEAD + o) as *const i8);
        }
        o += 64;
    }
}

/// Four Q8_0 rows packed as a group (see `crate::Packed`; the layout Q8_0 keeps on AVX2
/// alone, where the lane tiles' `maddubs` would saturate): the same sums as [`dot`] on
/// each row, bit for bit, with the group's four scales converted at once.
pub fn dot4_packed(f: Flavor, t: WeightType, group: &[u8], act: &[u8], blocks: usize) -> [f32; 4] {
    debug_assert!(f.available());
    assert_eq!(
        t,
        WeightType::Q8_0,
        "only Q8_0 (on AVX2 alone) is packed in groups"
    );
    assert!(group.len() >= blocks * 4 * t.block_bytes());
    assert!(act.len() >= blocks * t.activation().block_bytes());
    let (x, y) = (group.as_ptr(), act.as_ptr());
    // SAFETY: the features are present (checked by the caller) and the slices hold
    // `blocks` whole group blocks and activation blocks (asserted above).
    unsafe {
        match f {
            Flavor::Avx2 => avx2::q8_0_x4p(x, y, blocks),
            Flavor::AvxVnni => avx_vnni::q8_0_x4p(x, y, blocks),
            Flavor::Avx512Vnni => avx512_vnni::q8_0_x4p(x, y, blocks),
        }
    }
}

#[inline(always)]
pub(crate) unsafe fn half(p: *const u8) -> f32 {
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
pub(crate) unsafe fn bits(p: *const u8) -> __m256i {
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

/// The same with one VNNI instruction (AVX-VNNI encoding); no i16 step, so no
/// saturation bound at all.
#[inline(always)]
unsafe fn mul_sum_us8_avx_vnni(ax: __m256i, sy: __m256i) -> __m256 {
    // SAFETY: register-only arithmetic; AVX-VNNI is enabled in the callers.
    unsafe { _mm256_cvtepi32_ps(_mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), ax, sy)) }
}

/// The same with AVX-512 VNNI on 256-bit registers.
#[inline(always)]
unsafe fn mul_sum_us8_avx512_vnni(ax: __m256i, sy: __m256i) -> __m256 {
    // SAFETY: register-only arithmetic; AVX-512 VNNI + VL are enabled in the callers.
    unsafe { _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy)) }
}

/// One of the `mul_sum_us8` forms, as a type parameter of [`mul_sum_i8`].
trait MulSum {
    unsafe fn mul_sum(ax: __m256i, sy: __m256i) -> __m256;
}

/// The same for signed `x` (Q5_0: -16..16, Q8_0: -128..128): |x| times y with x's
/// sign moved onto y. |x| <= 128 and |y| <= 127, so a pair of products is at most
/// 32,512 and `maddubs` does not saturate.
#[inline(always)]
unsafe fn mul_sum_i8<M: MulSum>(x: __m256i, y: __m256i) -> __m256 {
    // SAFETY: register-only AVX2 arithmetic.
    unsafe { M::mul_sum(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)) }
}

#[inline(always)]
pub(crate) unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: register-only AVX arithmetic.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// Lane `r` of `v` in all eight lanes.
#[inline(always)]
unsafe fn lane(v: __m128, r: usize) -> __m256 {
    // SAFETY: register-only AVX2 arithmetic.
    unsafe { _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), _mm256_set1_epi32(r as i32)) }
}

/// The kernels, once per instruction set: `$features` for `#[target_feature]`, `$mul`
/// the 32-product sum.
macro_rules! kernels {
    ($name:ident, $features:literal, $mul:ident) => {
        mod $name {
            use super::*;

            struct Mul;
            impl MulSum for Mul {
                #[inline(always)]
                unsafe fn mul_sum(ax: __m256i, sy: __m256i) -> __m256 {
                    // SAFETY: register-only arithmetic with this copy's features.
                    unsafe { $mul(ax, sy) }
                }
            }

            #[target_feature(enable = $features)]
            pub unsafe fn q4_1(x: *const u8, y: *const u8, blocks: usize) -> f32 {
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
                        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), $mul(qx, qy), acc);
                    }
                    hsum(acc) + offsets
                }
            }

            #[target_feature(enable = $features)]
            pub unsafe fn q5_0(x: *const u8, y: *const u8, blocks: usize) -> f32 {
                // SAFETY: block i of x is bytes [22 i, 22 i + 22), of y [36 i, 36 i + 36).
                unsafe {
                    let mut acc = _mm256_setzero_ps();
                    for i in 0..blocks {
                        let (bx, by) = (x.add(i * 22), y.add(i * 36));
                        let d = half(bx) * half(by);
                        // q - 16 as i8: where the fifth bit is clear, set the top four bits.
                        let hi =
                            _mm256_andnot_si256(bits(bx.add(2)), _mm256_set1_epi8(0xF0u8 as i8));
                        let qx = _mm256_or_si256(nibbles(bx.add(6)), hi);
                        let qy = _mm256_loadu_si256(by.add(4) as *const __m256i);
                        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), mul_sum_i8::<Mul>(qx, qy), acc);
                    }
                    hsum(acc)
                }
            }

            #[target_feature(enable = $features)]
            pub unsafe fn q8_0(x: *const u8, y: *const u8, blocks: usize) -> f32 {
                // SAFETY: block i of x is bytes [34 i, 34 i + 34), of y [36 i, 36 i + 36).
                unsafe {
                    let mut acc = _mm256_setzero_ps();
                    for i in 0..blocks {
                        let (bx, by) = (x.add(i * 34), y.add(i * 36));
                        let d = half(bx) * half(by);
                        let qx = _mm256_loadu_si256(bx.add(2) as *const __m256i);
                        let qy = _mm256_loadu_si256(by.add(4) as *const __m256i);
                        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), mul_sum_i8::<Mul>(qx, qy), acc);
                    }
                    hsum(acc)
                }
            }

            #[target_feature(enable = $features)]
            pub unsafe fn q8_0_x4p(x: *const u8, y: *const u8, blocks: usize) -> [f32; 4] {
                // SAFETY: block i of the group is bytes [136 i, 136 i + 136) (four f16
                // scales, four rows' 32 quant bytes), of y [36 i, 36 i + 36).
                unsafe {
                    let mut acc = [_mm256_setzero_ps(); 4];
                    for i in 0..blocks {
                        let (bx, by) = (x.add(i * 136), y.add(i * 36));
                        prefetch_ahead(bx, 136);
                        let d = _mm_cvtph_ps(_mm_loadl_epi64(bx as *const __m128i));
                        let dd = _mm_mul_ps(d, _mm_set1_ps(half(by)));
                        let qy = _mm256_loadu_si256(by.add(4) as *const __m256i);
                        for r in 0..4 {
                            let qx = _mm256_loadu_si256(bx.add(8 + 32 * r) as *const __m256i);
                            let q = mul_sum_i8::<Mul>(qx, qy);
                            acc[r] = _mm256_fmadd_ps(lane(dd, r), q, acc[r]);
                        }
                    }
                    [0, 1, 2, 3].map(|r| hsum(acc[r]))
                }
            }

            #[target_feature(enable = $features)]
            pub unsafe fn q5_1(x: *const u8, y: *const u8, blocks: usize) -> f32 {
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
                        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), $mul(qx, qy), acc);
                    }
                    hsum(acc) + offsets
                }
            }

            #[target_feature(enable = $features)]
            pub unsafe fn q4_1_x4(x: [*const u8; 4], y: *const u8, blocks: usize) -> [f32; 4] {
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
                            acc[r] = _mm256_fmadd_ps(d, $mul(nibbles(bx.add(4)), qy), acc[r]);
                        }
                    }
                    [0, 1, 2, 3].map(|r| hsum(acc[r]) + offsets[r])
                }
            }

            #[target_feature(enable = $features)]
            pub unsafe fn q5_1_x4(x: [*const u8; 4], y: *const u8, blocks: usize) -> [f32; 4] {
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
                            acc[r] = _mm256_fmadd_ps(d, $mul(qx, qy), acc[r]);
                        }
                    }
                    [0, 1, 2, 3].map(|r| hsum(acc[r]) + offsets[r])
                }
            }
        }
    };
}

kernels!(avx2, "avx2,fma,f16c", mul_sum_us8);
kernels!(avx_vnni, "avx2,fma,f16c,avxvnni", mul_sum_us8_avx_vnni);
kernels!(
    avx512_vnni,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    mul_sum_us8_avx512_vnni
);

const _: () = assert!(BLOCK == 32);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every copy computes the same integer sums (`maddubs` cannot saturate on these
    /// ranges), so every available copy gives the same bits as plain AVX2.
    #[test]
    fn every_copy_gives_the_same_bits() {
        let flavors = [Flavor::Avx2, Flavor::AvxVnni, Flavor::Avx512Vnni];
        let here: Vec<Flavor> = flavors.into_iter().filter(|f| f.available()).collect();
        eprintln!("x86 copies here: {here:?}");
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut byte = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        };
        for t in [
            WeightType::Q4_1,
            WeightType::Q5_0,
            WeightType::Q5_1,
            WeightType::Q8_0,
        ] {
            let blocks = 7;
            let mut rows: Vec<Vec<u8>> = (0..4)
                .map(|_| (0..blocks * t.block_bytes()).map(|_| byte()).collect())
                .collect();
            for r in &mut rows {
                for b in r.chunks_exact_mut(t.block_bytes()) {
                    // Finite scales: 0.01 and 0.002 as f16.
                    b[..2].copy_from_slice(&0x211Eu16.to_le_bytes());
                    if t.bias() == 0 {
                        b[2..4].copy_from_slice(&0x1819u16.to_le_bytes());
                    }
                }
            }
            let x: Vec<f32> = (0..blocks * BLOCK)
                .map(|_| byte() as i8 as f32 / 9.0)
                .collect();
            let mut act = Vec::new();
            crate::quantize_activations(&x, t.activation(), &mut act);
            let r4 = [&rows[0][..], &rows[1][..], &rows[2][..], &rows[3][..]];
            let want1 = dot(Flavor::Avx2, t, r4[0], &act, blocks);
            let want4 = dot4(Flavor::Avx2, t, r4, &act, blocks);
            for &f in &here {
                assert_eq!(
                    dot(f, t, r4[0], &act, blocks).to_bits(),
                    want1.to_bits(),
                    "{f:?} {t:?}"
                );
                let got = dot4(f, t, r4, &act, blocks);
                assert_eq!(
                    got.map(f32::to_bits),
                    want4.map(f32::to_bits),
                    "{f:?} {t:?} x4"
                );
            }
        }
    }
}
