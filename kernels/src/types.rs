//! The block formats the kernels know: weight types and how activations are
//! quantized for each.

/// Values per block of the 32-value types (Q4_1, Q5_0, Q5_1, Q8_0 and their
/// activations).
pub const BLOCK: usize = 32;

/// Values per super-block of the K-quants (Q4_K, Q5_K, Q6_K and their Q8_K
/// activations): llama.cpp's `QK_K`.
pub const SUPER_BLOCK: usize = 256;

/// A weight type these kernels handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightType {
    Q4_1,
    Q5_0,
    Q5_1,
    /// `d: f16, qs: [i8; 32]`: 8-bit weights (embeddings and output heads of most
    /// GGUF files, and every weight of a Q8_0 file).
    Q8_0,
    /// 4-bit K-quant: super-blocks of 256 values in eight sub-blocks of 32, each with
    /// a 6-bit scale and a 6-bit minimum (most of a `Q4_K_M` file).
    Q4K,
    /// The same with a fifth bit per value (`Q5_K_M` files).
    Q5K,
    /// 6-bit K-quant: sixteen sub-blocks of 16 with signed 8-bit scales (the
    /// `_M` files' more sensitive tensors).
    Q6K,
}

/// How activations are quantized for a weight type's dot product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActType {
    /// `d: f16, sum: i16, qs: [i8; 32]`: llama.cpp's `block_q8_0` plus the exact sum
    /// of the quants, which the lane tiles need to take a weight type's bias (`q - 16`,
    /// `q - 128`) out of their unsigned byte products.
    Q8_0,
    /// `d: f16, s: f16, qs: [i8; 32]`: also carries `d * sum(q)`, which a weight
    /// type with an offset (`m`) needs.
    Q8_1,
    /// `d: f32, qs: [i8; 256], bsums: [i16; 16]` (the sums of each 16 quants), for
    /// the K-quants.
    Q8K,
}

impl WeightType {
    /// Every type these kernels handle.
    pub const ALL: [WeightType; 7] = [
        WeightType::Q4_1,
        WeightType::Q5_0,
        WeightType::Q5_1,
        WeightType::Q8_0,
        WeightType::Q4K,
        WeightType::Q5K,
        WeightType::Q6K,
    ];

    pub fn block_bytes(self) -> usize {
        match self {
            WeightType::Q4_1 => 20,
            WeightType::Q5_0 => 22,
            WeightType::Q5_1 => 24,
            WeightType::Q8_0 => 34,
            WeightType::Q4K => 144,
            WeightType::Q5K => 176,
            WeightType::Q6K => 210,
        }
    }

    /// Values per block: [`BLOCK`], or [`SUPER_BLOCK`] for the K-quants.
    pub fn block_values(self) -> usize {
        if self.is_k() { SUPER_BLOCK } else { BLOCK }
    }

    /// One of the K-quants (super-blocks of 256 values).
    pub fn is_k(self) -> bool {
        matches!(self, WeightType::Q4K | WeightType::Q5K | WeightType::Q6K)
    }

    /// What is subtracted from the stored unsigned quant for a type without an offset
    /// (`m`): the value is `d * (q - bias)`; 0 for the types with an offset. (The
    /// 32-value types; Q6_K's quants are stored as `q + 32`.)
    pub fn bias(self) -> i32 {
        match self {
            WeightType::Q5_0 => 16,
            WeightType::Q8_0 => 128,
            WeightType::Q6K => 32,
            WeightType::Q4_1 | WeightType::Q5_1 | WeightType::Q4K | WeightType::Q5K => 0,
        }
    }

    pub fn activation(self) -> ActType {
        match self {
            WeightType::Q5_0 | WeightType::Q8_0 => ActType::Q8_0,
            WeightType::Q4_1 | WeightType::Q5_1 => ActType::Q8_1,
            WeightType::Q4K | WeightType::Q5K | WeightType::Q6K => ActType::Q8K,
        }
    }

    /// The name GGUF tools print in lower case, as `eprof model info` lists weights.
    pub fn name(self) -> &'static str {
        match self {
            WeightType::Q4_1 => "q4_1",
            WeightType::Q5_0 => "q5_0",
            WeightType::Q5_1 => "q5_1",
            WeightType::Q8_0 => "q8_0",
            WeightType::Q4K => "q4k",
            WeightType::Q5K => "q5k",
            WeightType::Q6K => "q6k",
        }
    }
}

impl ActType {
    pub fn block_bytes(self) -> usize {
        match self {
            ActType::Q8_0 => 36,
            ActType::Q8_1 => 36,
            ActType::Q8K => 292,
        }
    }

    /// Values per block.
    pub fn block_values(self) -> usize {
        match self {
            ActType::Q8K => SUPER_BLOCK,
            ActType::Q8_0 | ActType::Q8_1 => BLOCK,
        }
    }
}
