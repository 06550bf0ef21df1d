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
/// The MLP's gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// SiLU (Llama, Mistral, Qwen2).
    #[default]
    Silu,
    /// GELU, tanh approximation (Gemma's `gelu_pytorch_tanh`).
    GeluTanh,
}

/// What Gemma 3 adds to the Llama layer: a norm on each query and key head before
/// RoPE, a norm on the attention output and on the MLP output before each residual
/// add, embeddings scaled by √hidden, and local layers (a sliding window, their own
/// RoPE base) with every `global_every`-th layer global.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gemma3 {
    pub global_every: usize,
    pub rope_local_theta: f32,
    /// Scores are divided by √this (Gemma 3: usually the head dimension).
    pub query_pre_attn_scalar: usize,
}

impl Gemma3 {
    /// Whether layer `l` is local (sliding window, local RoPE base).
    pub fn is_local(&self, l: usize) -> bool {
        !(l + 1).is_multiple_of(self.global_every.max(1))
    }
}

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
    pub activation: Activation,
    /// Gemma 3's additions (`None` for the Llama family).
    pub gemma3: Option<Gemma3>,
}

impl DecoderConfig {
    /// The keys a query of layer `l` sees besides itself (`None`: all before it).
    pub fn window(&self, l: usize) -> Option<usize> {
        match self.gemma3 {
            // Gemma 3's window counts the query itself (Hugging Face and llama.cpp: a
            // key is visible while `q - k < sliding_window`).
            Some(g) if g.is_local(l) => self.sliding_window.map(|w| w.saturating_sub(1)),
            Some(_) => None,
            None => self.sliding_window,
        }
    }

    /// The RoPE base of layer `l`.
    pub fn rope_theta(&self, l: usize) -> f32 {
        match self.gemma3 {
            Some(g) if g.is_local(l) => g.rope_local_theta,
            _ => self.rope_theta,
        }
    }
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
    /// Gemma: `gelu_pytorch_tanh`.
    pub hidden_activation: Option<String>,
    /// Gemma 3: every n-th layer is global.
    pub sliding_window_pattern: Option<usize>,
    pub rope_local_base_freq: Option<f32>,
    pub query_pre_attn_scalar: Option<usize>,
    pub eos_token_id: Option<serde_json::Value>,
}

impl HfConfig {
    /// The architecture name: `model_type`, else derived from `architectures`.
    pub fn architecture(&self) -> String {
        if let Some(t) = &self.model_type {
            // Gemma 3's text-only checkpoints say `gemma3_text`.
            return t.to_lowercase().trim_end_matches("_text").to_string();
        }
        let a = self
            .architectures
            .first()
            .map(|s| s.to_lowercase())
            .unwrap_or_default();
        for known in ["llama", "mistral", "qwen2", "gemma3"] {
            if a.starts_with(known) {
                return known.into();
            }
        }
        a
    }

    pub fn to_decoder(&self) -> Result<DecoderConfig, String> {
        let head_dim = head_dim(self.hidden_size, self.num_attention_heads, self.head_dim)
            .map_err(|e| format!("config.json: {e}"))?;
        let arch = self.architecture();
        let rope_scaling = self.rope_scaling.as_ref().and_then(|v| {
            (v.get("rope_type").and_then(|t| t.as_str()) == Some("llama3"))
                .then(|| serde_json::from_value(v.clone()).ok())
                .flatten()
        });
        let gemma3 = (arch == "gemma3").then(|| Gemma3 {
            global_every: self.sliding_window_pattern.unwrap_or(6),
            rope_local_theta: self.rope_local_base_freq.unwrap_or(10_000.0),
            query_pre_attn_scalar: self.query_pre_attn_scalar.unwrap_or(head_dim),
        });
        let sliding_window = match arch.as_str() {
            "mistral" | "gemma3" => self.sliding_window,
            "qwen2" if self.use_sliding_window == Some(true) => self.sliding_window,
            _ => None,
        };
        let cfg = DecoderConfig {
            hidden_size: self.hidden_size,
            intermediate_size: self.intermediate_size,
            layers: self.num_hidden_layers,
            heads: self.num_attention_heads,
            kv_heads: self.num_key_value_heads.unwrap_or(self.num_attention_heads),
            head_dim,
            vocab_size: self.vocab_size,
            rms_norm_eps: self.rms_norm_eps,
            rope_theta: self.rope_theta.unwrap_or(10_000.0),
            rope_scaling,
            max_position_embeddings: self.max_position_embeddings.unwrap_or(4096),
            sliding_window,
            qkv_bias: arch == "qwen2",
            tie_word_embeddings: self
                .tie_word_embeddings
                .unwrap_or(arch == "qwen2" || arch == "gemma3"),
            rope_interleaved: false,
            activation: match self.hidden_activation.as_deref() {
                Some("gelu_pytorch_tanh" | "gelu") => Activation::GeluTanh,
                _ => Activation::Silu,
            },
            gemma3,
            architecture: arch,
        };
        cfg.check().map_err(|e| format!("config.json: {e}"))?;
        Ok(cfg)
    }
}

/// A head's width: `explicit` where the file gives it, else hidden size / heads. The
/// one place that divides by the head count, so a file with none is an error, not a
/// division by zero.
pub fn head_dim(hidden: usize, heads: usize, explicit: Option<usize>) -> Result<usize, String> {
    match explicit {
        Some(d) => Ok(d),
        None if heads == 0 => Err("the attention head count is 0".into()),
        None => Ok(hidden / heads),
    }
}

impl DecoderConfig {
    /// Sizes the decoder divides by or splits into: a file that breaks them is refused
    /// with what is wrong, before any weight is read.
    pub fn check(&self) -> Result<(), String> {
        let bad = |what: &str| Err(what.to_string());
        if self.heads == 0 {
            return bad("the attention head count is 0");
        }
        if self.kv_heads == 0 {
            return bad("the key/value head count is 0");
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(format!(
                "{} attention heads are not a multiple of {} key/value heads",
                self.heads, self.kv_heads
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return Err(format!(
                "a head of {} values (RoPE needs an even, non-zero width)",
                self.head_dim
            ));
        }
        if self.hidden_size == 0 || self.layers == 0 {
            return Err(format!(
                "hidden size {} and {} layers: both must be at least 1",
                self.hidden_size, self.layers
            ));
        }
        Ok(())
    }
}
