//! The block formats the kernels know: weight types and how activations are
//! quantized for each.

/// Values per block, for every type here.
pub const BLOCK: usize = 32;

/// A weight type these kernels handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightType {
    Q4_1,
    Q5_0,
    Q5_1,
    /// `d: f16, qs: [i8; 32]`: 8-bit weights (embeddings and output heads of most
    /// GGUF files, and every weight of a Q8_0 file).
    Q8_0,
}

/// How activations are quantized for a weight type's dot product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActType {
    /// `d: f16, qs: [i8; 32]`.
    Q8_0,
    /// `d: f16, s: f16, qs: [i8; 32]`: also carries `d * sum(q)`, which a weight
    /// type with an offset (`m`) needs.
    Q8_1,
}

impl WeightType {
    /// Every type these kernels handle.
    pub const ALL: [WeightType; 4] = [
        WeightType::Q4_1,
        WeightType::Q5_0,
        WeightType::Q5_1,
        WeightType::Q8_0,
    ];

    pub fn block_bytes(self) -> usize {
        match self {
            WeightType::Q4_1 => 20,
            WeightType::Q5_0 => 22,
            WeightType::Q5_1 => 24,
            WeightType::Q8_0 => 34,
        }
    }

    /// What is subtracted from the stored unsigned quant for a type without an offset
    /// (`m`): the value is `d * (q - bias)`; 0 for the types with an offset.
    pub fn bias(self) -> i32 {
        match self {
            WeightType::Q5_0 => 16,
            WeightType::Q8_0 => 128,
            WeightType::Q4_1 | WeightType::Q5_1 => 0,
        }
    }

    pub fn activation(self) -> ActType {
        match self {
            WeightType::Q5_0 | WeightType::Q8_0 => ActType::Q8_0,
            WeightType::Q4_1 | WeightType::Q5_1 => ActType::Q8_1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightType::Q4_1 => "q4_1",
            WeightType::Q5_0 => "q5_0",
            WeightType::Q5_1 => "q5_1",
            WeightType::Q8_0 => "q8_0",
        }
    }
}

impl ActType {
    pub fn block_bytes(self) -> usize {
        match self {
            ActType::Q8_0 => 34,
            ActType::Q8_1 => 36,
        }
    }
}
