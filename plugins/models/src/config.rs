//! The runtime configuration of the shared decoder, read from a Hugging Face
//! `config.json` or from GGUF metadata. Architectures differ here, not in code.

use serde::Deserialize;

/// Llama 3 style RoPE frequency scaling.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct RopeScaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: usize,
}

/// Everything the decoder needs to know about an architecture instance.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    pub architecture: String,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f32,
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    /// Mistral: each query sees at most this many preceding keys.
    pub sliding_window: Option<usize>,
    /// Qwen2: q/k/v projections have a bias.
    pub qkv_bias: bool,
    pub tie_word_embeddings: bool,
    /// GGUF llama weights are permuted for interleaved RoPE (`rope_i`); Hugging Face
    /// checkpoints use the half-split form (`rope`).
    pub rope_interleaved: bool,
}

/// The subset of a Hugging Face `config.json` that the three architectures use.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    pub model_type: Option<String>,
    #[serde(default)]
    pub architectures: Vec<String>,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub vocab_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: Option<f32>,
    pub rope_scaling: Option<serde_json::Value>,
    pub max_position_embeddings: Option<usize>,
    pub sliding_window: Option<usize>,
    pub use_sliding_window: Option<bool>,
    pub tie_word_embeddings: Option<bool>,
    pub bos_token_id: Option<serde_json::Value>,
    pub eos_token_id: Option<serde_json::Value>,
}

impl HfConfig {
    /// The architecture name: `model_type`, else derived from `architectures`.
    pub fn architecture(&self) -> String {
        if let Some(t) = &self.model_type {
            return t.to_lowercase();
        }
        let a = self
            .architectures
            .first()
            .map(|s| s.to_lowercase())
            .unwrap_or_default();
        for known in ["llama", "mistral", "qwen2"] {
            if a.starts_with(known) {
                return known.into();
            }
        }
        a
    }

    pub fn to_decoder(&self) -> DecoderConfig {
        let arch = self.architecture();
        let rope_scaling = self.rope_scaling.as_ref().and_then(|v| {
            (v.get("rope_type").and_then(|t| t.as_str()) == Some("llama3"))
                .then(|| serde_json::from_value(v.clone()).ok())
                .flatten()
        });
        let sliding_window = match arch.as_str() {
            "mistral" => self.sliding_window,
            "qwen2" if self.use_sliding_window == Some(true) => self.sliding_window,
            _ => None,
        };
        DecoderConfig {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            layers: self.num_hidden_layers,
            heads: self.num_attention_heads,
            kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim: self
                .head_dim
                .unwrap_or(self.hidden_size / self.num_attention_heads),
            vocab_size: self.vocab_size,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta.unwrap_or(10_000.0),
            rope_scaling,
            max_position_embeddings: self.max_position_embeddings.unwrap_or(4096),
            sliding_window,
            qkv_bias: arch == "qwen2",
            tie_word_embeddings: self.tie_word_embeddings.unwrap_or(arch == "qwen2"),
            rope_interleaved: false,
            architecture: arch,
        }
    }
}
