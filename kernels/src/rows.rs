//! Row-by-row dot products and the portable reference: activation quantization,
//! block unpacking and dequantization, and each implementation's dot product of one
//! weight row.

use crate::half::{self, f16_at};
use crate::isa::{Isa, best};
use crate::kquants::{self, nearest_int};
#[cfg(target_arch = "aarch64")]
use crate::neon;
use crate::types::{ActType, BLOCK, SUPER_BLOCK, WeightType};
#[cfg(target_arch = "x86_64")]
use crate::x86;

/// Quantize `x` (a whole number of `act`'s blocks) to Q8_0, Q8_1 or Q8_K blocks,
/// appended to `out`, as llama.cpp does (Q8_0/Q8_1: `d = max|x| / 127`,
/// `q = round(x / d)`, ties to even; Q8_K: see the `kquants` module).
pub fn quantize_activations(x: &[f32], act: ActType, out: &mut Vec<u8>) {
    assert!(
        x.len().is_multiple_of(act.block_values()),
        "{} values is not a whole number of {}-value blocks",
        x.len(),
        act.block_values()
    );
    out.reserve(x.len() / act.block_values() * act.block_bytes());
    if act == ActType::Q8K {
        return kquants::quantize_q8k(x, out);
    }
    let start = out.len();
    let bb = act.block_bytes();
    out.resize(start + x.len() / BLOCK * bb, 0);
    let out = &mut out[start..];
    #[cfg(target_arch = "x86_64")]
    if matches!(best(), Isa::Avx2 | Isa::AvxVnni | Isa::Avx512)
        // SAFETY: every one of those implementations has AVX2, FMA and F16C, and
        // `best()` only names one this CPU runs.
        && unsafe { crate::x86_quant::quantize(x, act, out) }
    {
        return;
    }
    for (chunk, o) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(bb)) {
        quantize_block(chunk.try_into().expect("whole blocks"), act, o);
    }
}

/// One Q8_0 or Q8_1 block of activations into `o` (36 bytes): the portable code,
/// which `x86_quant`'s copies follow.
pub(crate) fn quantize_block(chunk: &[f32; BLOCK], act: ActType, o: &mut [u8]) {
    // Eight running maxima, so that the compiler vectorizes the pass.
    let mut m8 = [0f32; 8];
    for c in chunk.chunks_exact(8) {
        for (m, v) in m8.iter_mut().zip(c) {
            *m = m.max(v.abs());
        }
    }
    let amax = m8.iter().fold(0.0f32, |a, &v| a.max(v));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // |v * id| <= 127 by construction. Ties to even, as llama.cpp's x86 and NEON
    // quantizers round (`_mm256_round_ps`, `vcvtnq`); its portable reference rounds
    // them away from zero.
    let q: [i32; BLOCK] = std::array::from_fn(|k| nearest_int(chunk[k] * id));
    let sum: i32 = q.iter().sum();
    o[..2].copy_from_slice(&half::f32_to_f16(d).to_le_bytes());
    if act == ActType::Q8_1 {
        o[2..4].copy_from_slice(&half::f32_to_f16(sum as f32 * d).to_le_bytes());
    } else {
        // |sum| <= 32 x 127: an i16.
        o[2..4].copy_from_slice(&(sum as i16).to_le_bytes());
    }
    for (b, q) in o[4..].iter_mut().zip(q) {
        *b = q as i8 as u8;
    }
}

/// The 32 quant values of block `b` of a weight row (before scale and offset), and the
/// block's scale and offset: `value = d * q + m` (Q5_0: `m = -16 d`; Q8_0: the signed
/// byte plus 128, `m = -128 d`). Exactly: `value = d * (q - t.bias()) + m'`, with
/// `m'` the stored offset of Q4_1 and Q5_1. The 32-value types only (panics on a
/// K-quant).
pub fn unpack_block(t: WeightType, b: &[u8]) -> ([u8; BLOCK], f32, f32) {
    assert!(!t.is_k(), "{} has 256-value super-blocks", t.name());
    let mut q = [0u8; BLOCK];
    let d = f16_at(b, 0);
    if t == WeightType::Q8_0 {
        for (q, &x) in q.iter_mut().zip(&b[2..34]) {
            *q = (x as i8 as i16 + 128) as u8;
        }
        return (q, d, -128.0 * d);
    }
    let (m, qh, qs) = match t {
        WeightType::Q8_0 | WeightType::Q4K | WeightType::Q5K | WeightType::Q6K => {
            unreachable!("handled above")
        }
        WeightType::Q4_1 => (f16_at(b, 2), 0u32, &b[4..20]),
        WeightType::Q5_0 => (
            -16.0 * d,
            u32::from_le_bytes([b[2], b[3], b[4], b[5]]),
            &b[6..22],
        ),
        WeightType::Q5_1 => (
            f16_at(b, 2),
            u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            &b[8..24],
        ),
    };
    for j in 0..16 {
        let hi = |k: usize| -> u8 {
            if t == WeightType::Q4_1 {
                0
            } else {
                (((qh >> k) & 1) as u8) << 4
            }
        };
        q[j] = (qs[j] & 0x0F) | hi(j);
        q[j + 16] = (qs[j] >> 4) | hi(j + 16);
    }
    (q, d, m)
}

/// Dequantize a weight row (a whole number of blocks) to f32: the reference the
/// kernels are tested against.
pub fn dequantize_row(t: WeightType, row: &[u8], out: &mut [f32]) {
    if t.is_k() {
        for (b, o) in row
            .chunks_exact(t.block_bytes())
            .zip(out.chunks_exact_mut(SUPER_BLOCK))
        {
            kquants::dequantize(t, b, o);
        }
        return;
    }
    for (b, o) in row
        .chunks_exact(t.block_bytes())
        .zip(out.chunks_exact_mut(BLOCK))
    {
        let (q, d, m) = unpack_block(t, b);
        let bias = t.bias();
        for (v, q) in o.iter_mut().zip(q) {
            *v = if bias == 0 {
                d * f32::from(q) + m
            } else {
                d * (i32::from(q) - bias) as f32
            };
        }
    }
}

/// The dot product of one weight row with quantized activations, in portable code
/// (llama.cpp's generic `ggml_vec_dot_*`).
pub fn dot_scalar(t: WeightType, row: &[u8], act: &[u8]) -> f32 {
    if t.is_k() {
        return kquants::dot_scalar(t, row, act);
    }
    let (wb, ab) = (t.block_bytes(), t.activation().block_bytes());
    let mut sum = 0.0f32;
    for (w, a) in row.chunks_exact(wb).zip(act.chunks_exact(ab)) {
        let (q, d, m) = unpack_block(t, w);
        let dy = f16_at(a, 0);
        let qy = &a[ab - BLOCK..];
        let bias = t.bias();
        let sumi: i32 = q
            .iter()
            .zip(qy)
            .map(|(&x, &y)| (i32::from(x) - bias) * i32::from(y as i8))
            .sum();
        sum += if bias != 0 {
            d * dy * sumi as f32
        } else {
            // The offset times the sum of the activations: Q8_1 carries it as `s`.
            d * dy * sumi as f32 + m * f16_at(a, 2)
        };
    }
    sum
}

/// The dot product with a given implementation (which must be available; tests and
/// benchmarks compare them). Falls back to scalar for one this CPU lacks.
pub fn dot_with(isa: Isa, t: WeightType, row: &[u8], act: &[u8]) -> f32 {
    let blocks = row.len() / t.block_bytes();
    assert!(
        row.len() == blocks * t.block_bytes() && act.len() >= blocks * t.activation().block_bytes(),
        "row of {} bytes is not whole {} blocks, or activations are short",
        row.len(),
        t.name()
    );
    #[cfg(target_arch = "x86_64")]
    if let Some(f) = isa.flavor() {
        if t.is_k() {
            // One copy for every flavour: the K-quants' sums go through 16-bit scale
            // products that VNNI has no single instruction for (llama.cpp's use AVX2
            // alone).
            return crate::x86_k::dot(t, row, act, blocks);
        }
        return x86::dot(f, t, row, act, blocks);
    }
    match isa {
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => neon::dot(t, row, act, blocks),
        _ => dot_scalar(t, row, act),
    }
}

/// The dot product with the best implementation this CPU runs.
pub fn dot(t: WeightType, row: &[u8], act: &[u8]) -> f32 {
    dot_with(best(), t, row, act)
}

/// `out[r] = row r of weights . activations` for the rows `first..first + out.len()`
/// of a `rows x cols` weight matrix stored as consecutive rows of blocks, with a given
/// implementation (tests compare them; [`Packed`] is the fast layout). x86 takes Q4_1
/// and Q5_1 rows four at a time, sharing each activation load; the K-quants go row by
/// row, as llama.cpp's do.
pub fn matvec_rows_with(
    isa: Isa,
    t: WeightType,
    weights: &[u8],
    cols: usize,
    first: usize,
    act: &[u8],
    out: &mut [f32],
) {
    let blocks = cols / t.block_values();
    let row_bytes = blocks * t.block_bytes();
    assert!(
        (first + out.len()) * row_bytes <= weights.len()
            && act.len() >= blocks * t.activation().block_bytes(),
        "rows {first}..{} of {row_bytes}-byte rows, or the activations, out of range",
        first + out.len()
    );
    let row = |r: usize| &weights[r * row_bytes..(r + 1) * row_bytes];
    // Rows done four at a time (x86, Q4_1 and Q5_1); the rest one by one.
    let done = {
        #[cfg(target_arch = "x86_64")]
        {
            let mut done = 0;
            // Q5_0's four-row form measured slower than its one-row form (10.3
            // against 14.2 GB/s on 2 threads here): its sign shuffles leave too few
            // registers for four rows. Q8_0's unpacked rows go one by one too (the
            // packed layout is its fast form).
            if let Some(f) = isa
                .flavor()
                .filter(|_| matches!(t, WeightType::Q4_1 | WeightType::Q5_1))
            {
                while done + 4 <= out.len() {
                    let r = first + done;
                    let rows = [row(r), row(r + 1), row(r + 2), row(r + 3)];
                    let d = x86::dot4(f, t, rows, act, blocks);
                    out[done..done + 4].copy_from_slice(&d);
                    done += 4;
                }
            }
            done
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            0
        }
    };
    for (j, o) in out.iter_mut().enumerate().skip(done) {
        *o = dot_with(isa, t, row(first + j), act);
    }
}
