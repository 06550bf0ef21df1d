//! Dot products of the quantized weight types real GGUF files use: Q4_1, Q5_0 and Q5_1
//! (which candle's CPU backend runs through scalar code), Q8_0 (the embeddings and
//! output heads of most files: two thirds of Gemma 3 270M's weights) and the K-quants
//! Q4_K, Q5_K and Q6_K (what most downloaded files, `Q4_K_M`, are mostly made of),
//! against activations quantized to Q8_1 / Q8_0 / Q8_K, as llama.cpp's CPU backend
//! computes them (the K-quants' layouts are in `src/kquants.rs`). x86-64 AVX2
//! (+FMA, F16C), the same with VNNI, AVX-512 (F, BW, VNNI) and aarch64 NEON versions,
//! chosen at run time on x86 (so one binary runs on an older CPU too), and a portable
//! scalar version that is also the tests' reference. On x86, [`Packed`] keeps a weight
//! matrix in the layout the kernels read fastest: tiles of rows side by side, sixteen
//! to a 512-bit register with AVX-512 (Q4_1, Q5_0, Q5_1, Q8_0), else eight (those, with
//! Q8_0 only with VNNI, and the K-quants), which also take several activation rows per
//! pass (prefill) and ask for their weights ahead of reading them; or groups of four
//! rows (Q8_0 on AVX2 alone).
//!
//! Where things are: `types` (the formats), `rows` (activation quantization, the
//! portable reference, each implementation's one-row dot product), `isa` (which one
//! runs), `packed` (the tiles and groups), `kquants` (the K-quants' layouts and their
//! portable code), `x86` / `x86_k` (one-row and four-row x86 kernels, prefetching),
//! `x86_lanes` / `x86_lanes_k` (the eight-row tiles), `x86_lanes16` (the sixteen-row
//! tiles), `x86_quant` (activation quantization), `neon`.
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
mod isa;
mod kquants;
mod packed;
mod rows;
mod types;

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_k;
#[cfg(target_arch = "x86_64")]
mod x86_lanes;
#[cfg(target_arch = "x86_64")]
mod x86_lanes16;
#[cfg(target_arch = "x86_64")]
mod x86_lanes_k;
#[cfg(target_arch = "x86_64")]
mod x86_quant;

pub use isa::{Isa, best, isa_from_env};
pub use packed::Packed;
pub use rows::{
    dequantize_row, dot, dot_scalar, dot_with, matvec_rows_with, quantize_activations, unpack_block,
};
pub use types::{ActType, BLOCK, SUPER_BLOCK, WeightType};
