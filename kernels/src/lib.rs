//! Dot products of the quantized weight types real GGUF files use: Q4_1, Q5_0 and Q5_1
//! (which candle's CPU backend runs through scalar code), Q8_0 (the embeddings and
//! output heads of most files: two thirds of Gemma 3 270M's weights) and the K-quants
//! Q4_K, Q5_K and Q6_K (what most downloaded files, `Q4_K_M`, are mostly made of),
//! against activations quantized to Q8_1 / Q8_0 / Q8_K, as llama.cpp's CPU backend
//! computes them (the K-quants' layouts are in `src/kquants.rs`). x86-64 AVX2
//! (+FMA, F16C), the same with VNNI, and aarch64 NEON versions, chosen at run time on
//! x86 (so one binary runs on an older CPU too), and a portable scalar version that is
//! also the tests' reference. On x86, [`Packed`] keeps a weight matrix in groups of
//! four rows, the layout the kernels read fastest.
//!
//! No dependencies: block layouts, half-precision conversion, activation quantization,
//! packing and dot products only, so the crate builds and tests quickly for other targets
//! (the NEON code is tested under `qemu-aarch64`). `unsafe` is confined to the SIMD
//! modules; each block says why it is sound.
//!
//! Block layouts (32 values each, little-endian, as in GGUF):
//!
//! | type | bytes | layout | value |
//! |---|---|---|---|
//! | Q4_1 | 20 | `d: f16, m: f16, qs: [u8; 16]` | `d * q + m`, q in 0..16 |
//! | Q5_0 | 22 | `d: f16, qh: u32, qs: [u8; 16]` | `d * (q - 16)`, q in 0..32 |
//! | Q5_1 | 24 | `d: f16, m: f16, qh: u32, qs: [u8; 16]` | `d * q + m`, q in 0..32 |
//! | Q8_0 | 34 | `d: f16, qs: [i8; 32]` | `d * q` (weights) |
//! | Q8_0 activations | 36 | `d: f16, sum: i16, qs: [i8; 32]` | `d * q`; `sum` the sum of `q` |
//! | Q8_1 | 36 | `d: f16, s: f16, qs: [i8; 32]` | `d * q`; `s = d * sum(q)` |
//!
//! Element `j < 16` is the low nibble of `qs[j]`, element `j + 16` its high nibble;
//! the fifth bit of element `j` is bit `j` of `qh`.

#![allow(unsafe_code)]

pub mod half;
mod kquants;
mod packed;
mod types;

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_k;
#[cfg(target_arch = "x86_64")]
mod x86_lanes;

pub use packed::Packed;
pub use types::{ActType, BLOCK, SUPER_BLOCK, WeightType};

/// Which implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Scalar,
    /// x86-64 AVX2 with FMA and F16C.
    Avx2,
    /// The same with VNNI byte dot products (AVX-VNNI, or AVX-512 VNNI + VL).
    AvxVnni,
    /// aarch64 Advanced SIMD (baseline on every aarch64 CPU).
    Neon,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avx2-vnni",
            Isa::Neon => "neon",
        }
    }

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 | Isa::AvxVnni => self.flavor().is_some(),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Isa {
    /// The x86 copy of the kernels this runs, if this CPU has it.
    fn flavor(self) -> Option<x86::Flavor> {
        match self {
            Isa::Avx2 => Some(x86::Flavor::Avx2).filter(|f| f.available()),
            Isa::AvxVnni => x86::Flavor::vnni(),
            _ => None,
        }
    }
}

impl Isa {
    /// Every implementation, in the order [`best`] prefers them.
    pub const ALL: [Isa; 4] = [Isa::AvxVnni, Isa::Avx2, Isa::Neon, Isa::Scalar];

    /// The implementation of this [`Isa::name`].
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// What `EPROF_CPU_ISA` asks for (`scalar`, `avx2`, `avx2-vnni`, `neon`), when this
/// CPU runs it: a benchmark forces the AVX2 path on a CPU with VNNI this way.
/// `Err` names a value that is unknown or that this CPU cannot run.
pub fn isa_from_env() -> Result<Option<Isa>, String> {
    let Ok(v) = std::env::var("EPROF_CPU_ISA") else {
        return Ok(None);
    };
    let names: Vec<&str> = Isa::ALL.iter().map(|i| i.name()).collect();
    match Isa::from_name(v.trim()) {
        Some(i) if i.available() => Ok(Some(i)),
        Some(i) => Err(format!(
            "EPROF_CPU_ISA={v}: this CPU cannot run {}",
            i.name()
        )),
        None => Err(format!(
            "EPROF_CPU_ISA={v}: unknown; one of {}",
            names.join(", ")
        )),
    }
}

/// The implementation the kernels use (decided once): `EPROF_CPU_ISA` when it names
/// one this CPU runs (see [`isa_from_env`]; callers that can report an error check it
/// first), else the best this CPU has.
pub fn best() -> Isa {
    static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| {
        if let Ok(Some(forced)) = isa_from_env() {
            return forced;
        }
        if Isa::AvxVnni.available() {
            Isa::AvxVnni
        } else if Isa::Avx2.available() {
            Isa::Avx2
        } else if Isa::Neon.available() {
            Isa::Neon
        } else {
            Isa::Scalar
        }
    })
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// Quantize `x` (a whole number of `act`'s blocks) to Q8_0, Q8_1 or Q8_K blocks,
/// appended to `out`, rounding as llama.cpp's reference does (Q8_0/Q8_1:
/// `d = max|x| / 127`, `q = round(x / d)`; Q8_K: see the `kquants` module).
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
    for chunk in x.chunks_exact(BLOCK) {
        let amax = chunk.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; BLOCK];
        let mut sum = 0i32;
        for (q, v) in qs.iter_mut().zip(chunk) {
            // |v * id| <= 127 by construction; round half away from zero, like roundf.
            *q = (v * id).round() as i8;
            sum += i32::from(*q);
        }
        out.extend_from_slice(&half::f32_to_f16(d).to_le_bytes());
        if act == ActType::Q8_1 {
            out.extend_from_slice(&half::f32_to_f16(sum as f32 * d).to_le_bytes());
        } else {
            // |sum| <= 32 x 127: an i16.
            out.extend_from_slice(&(sum as i16).to_le_bytes());
        }
        out.extend(qs.iter().map(|q| *q as u8));
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
