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
    pub fn block_bytes(self) -> usize {
        match self {
            WeightType::Q4_1 => 20,
            WeightType::Q5_0 => 22,
            WeightType::Q5_1 => 24,
        }
    }

    pub fn activation(self) -> ActType {
        match self {
            WeightType::Q5_0 => ActType::Q8_0,
            WeightType::Q4_1 | WeightType::Q5_1 => ActType::Q8_1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightType::Q4_1 => "q4_1",
            WeightType::Q5_0 => "q5_0",
            WeightType::Q5_1 => "q5_1",
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
