//! GGUF files of random weights with a real model's exact tensor shapes.
//!
//! Time and energy of inference depend on the shapes and storage types of the weights,
//! not on their values, so a machine with no model files (a borrowed GPU, CI) can
//! profile a real-size model from one of these. Every trace of such a file says
//! `random_weights` (the file's `eprof.random_weights` metadata), and its text is
//! noise.
//!
//! The tokenizer is a byte-level BPE (every byte a token, so any text encodes and any
//! id decodes), with merges for a space before a letter and letter pairs, special
//! tokens for begin and end of text, and filler tokens up to the real vocabulary size.

use std::io::{BufWriter, Seek, Write};
use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use eprof_core::{Error, Result};

use crate::load::det_tensor;

/// The shape of a real model: what `eprof model synth --shape NAME` writes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub name: &'static str,
    /// What the model is, for `--help` and `model info`.
    pub about: &'static str,
    /// GGUF `general.architecture` (llama.cpp's: Mistral 7B is a `llama`).
    pub arch: &'static str,
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub tied_embeddings: bool,
    pub qkv_bias: bool,
    pub rope_theta: f32,
    pub context: usize,
    pub rms_eps: f32,
    /// Gemma 3's sliding window (its local layers).
    pub sliding_window: Option<usize>,
    /// The parameter count the model's publisher states (`model info` must agree).
    pub parameters: u64,
}

/// The shapes eprof can synthesize, with their published parameter counts.
pub const SHAPES: &[Shape] = &[
    Shape {
        name: "smollm2-135m",
        about: "SmolLM2-135M (Llama architecture)",
        arch: "llama",
        hidden: 576,
        intermediate: 1536,
        layers: 30,
        heads: 9,
        kv_heads: 3,
        head_dim: 64,
        vocab: 49_152,
        tied_embeddings: true,
        qkv_bias: false,
        rope_theta: 100_000.0,
        context: 8192,
        rms_eps: 1e-5,
        sliding_window: None,
        parameters: 134_515_008,
    },
    Shape {
        name: "llama-3.2-1b",
        about: "Llama 3.2 1B",
        arch: "llama",
        hidden: 2048,
        intermediate: 8192,
        layers: 16,
        heads: 32,
        kv_heads: 8,
        head_dim: 64,
        vocab: 128_256,
        tied_embeddings: true,
        qkv_bias: false,
        rope_theta: 500_000.0,
        context: 131_072,
        rms_eps: 1e-5,
        sliding_window: None,
        parameters: 1_235_814_400,
    },
    Shape {
        name: "llama-3.1-8b",
        about: "Llama 3.1 8B",
        arch: "llama",
        hidden: 4096,
        intermediate: 14_336,
        layers: 32,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        vocab: 128_256,
        tied_embeddings: false,
        qkv_bias: false,
        rope_theta: 500_000.0,
        context: 131_072,
        rms_eps: 1e-5,
        sliding_window: None,
        parameters: 8_030_261_248,
    },
    Shape {
        name: "mistral-7b",
        about: "Mistral 7B v0.1 (a llama in GGUF)",
        arch: "llama",
        hidden: 4096,
        intermediate: 14_336,
        layers: 32,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        vocab: 32_000,
        tied_embeddings: false,
        qkv_bias: false,
        rope_theta: 10_000.0,
        context: 32_768,
        rms_eps: 1e-5,
        sliding_window: None,
        parameters: 7_241_732_096,
    },
    Shape {
        name: "qwen2.5-0.5b",
        about: "Qwen2.5 0.5B (and Qwen2.5-Coder 0.5B)",
        arch: "qwen2",
        hidden: 896,
        intermediate: 4864,
        layers: 24,
        heads: 14,
        kv_heads: 2,
        head_dim: 64,
        vocab: 151_936,
        tied_embeddings: true,
        qkv_bias: true,
        rope_theta: 1_000_000.0,
        context: 32_768,
        rms_eps: 1e-6,
        sliding_window: None,
        parameters: 494_032_768,
    },
    Shape {
        name: "qwen2.5-7b",
        about: "Qwen2.5 7B",
        arch: "qwen2",
        hidden: 3584,
        intermediate: 18_944,
        layers: 28,
        heads: 28,
        kv_heads: 4,
        head_dim: 128,
        vocab: 152_064,
        tied_embeddings: false,
        qkv_bias: true,
        rope_theta: 1_000_000.0,
        context: 32_768,
        rms_eps: 1e-6,
        sliding_window: None,
        parameters: 7_615_616_512,
    },
    Shape {
        name: "gemma-3-1b",
        about: "Gemma 3 1B",
        arch: "gemma3",
        hidden: 1152,
        intermediate: 6912,
        layers: 26,
        heads: 4,
        kv_heads: 1,
        head_dim: 256,
        vocab: 262_144,
        tied_embeddings: true,
        qkv_bias: false,
        rope_theta: 1_000_000.0,
        context: 32_768,
        rms_eps: 1e-6,
        sliding_window: Some(512),
        parameters: 999_885_952,
    },
];

/// The shape called `name`, or an error listing them.
pub fn shape(name: &str) -> Result<&'static Shape> {
    SHAPES.iter().find(|s| s.name == name).ok_or_else(|| {
        Error::Config(format!(
            "unknown shape {name:?}; known: {}",
            SHAPES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
        ))
    })
}

/// The storage types `synth` writes, by the names `--dtype` takes.
pub const DTYPES: &[(&str, GgmlDType)] = &[
    ("f32", GgmlDType::F32),
    ("f16", GgmlDType::F16),
    ("q8_0", GgmlDType::Q8_0),
    ("q4_0", GgmlDType::Q4_0),
    ("q4_1", GgmlDType::Q4_1),
    ("q5_0", GgmlDType::Q5_0),
    ("q5_1", GgmlDType::Q5_1),
    ("q4_k", GgmlDType::Q4K),
    ("q5_k", GgmlDType::Q5K),
    ("q6_k", GgmlDType::Q6K),
];

pub fn dtype(name: &str) -> Result<GgmlDType> {
    DTYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            Error::Config(format!(
                "unknown weight type {name:?}; known: {}",
                DTYPES.iter().map(|d| d.0).collect::<Vec<_>>().join(", ")
            ))
        })
}

/// A tensor of the file: its GGUF name, shape (rows, columns; one dimension for norms
/// and biases) and whether it is a matrix (stored in the requested type) or a vector
/// (stored in f32, as llama.cpp does).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dims: Vec<usize>,
}

impl TensorSpec {
    fn new(name: impl Into<String>, dims: &[usize]) -> Self {
        TensorSpec {
            name: name.into(),
            dims: dims.to_vec(),
        }
    }
    pub fn elems(&self) -> u64 {
        self.dims.iter().product::<usize>() as u64
    }
    pub fn is_matrix(&self) -> bool {
        self.dims.len() == 2
    }
}

impl Shape {
    /// Every tensor of the model, in GGUF order and names (llama.cpp's). GGUF dims are
    /// listed here as candle holds them: (out, in) for a projection.
    pub fn tensors(&self) -> Vec<TensorSpec> {
        let (h, i, v) = (self.hidden, self.intermediate, self.vocab);
        let (q, kv) = (self.heads * self.head_dim, self.kv_heads * self.head_dim);
        let mut t = vec![TensorSpec::new("token_embd.weight", &[v, h])];
        if !self.tied_embeddings {
            t.push(TensorSpec::new("output.weight", &[v, h]));
        }
        t.push(TensorSpec::new("output_norm.weight", &[h]));
        let gemma = self.arch == "gemma3";
        for l in 0..self.layers {
            let p = |n: &str| format!("blk.{l}.{n}");
            t.push(TensorSpec::new(p("attn_norm.weight"), &[h]));
            t.push(TensorSpec::new(p("attn_q.weight"), &[q, h]));
            t.push(TensorSpec::new(p("attn_k.weight"), &[kv, h]));
            t.push(TensorSpec::new(p("attn_v.weight"), &[kv, h]));
            if self.qkv_bias {
                t.push(TensorSpec::new(p("attn_q.bias"), &[q]));
                t.push(TensorSpec::new(p("attn_k.bias"), &[kv]));
                t.push(TensorSpec::new(p("attn_v.bias"), &[kv]));
            }
            if gemma {
                t.push(TensorSpec::new(p("attn_q_norm.weight"), &[self.head_dim]));
                t.push(TensorSpec::new(p("attn_k_norm.weight"), &[self.head_dim]));
                t.push(TensorSpec::new(p("post_attention_norm.weight"), &[h]));
                t.push(TensorSpec::new(p("post_ffw_norm.weight"), &[h]));
            }
            t.push(TensorSpec::new(p("attn_output.weight"), &[h, q]));
            t.push(TensorSpec::new(p("ffn_norm.weight"), &[h]));
            t.push(TensorSpec::new(p("ffn_gate.weight"), &[i, h]));
            t.push(TensorSpec::new(p("ffn_up.weight"), &[i, h]));
            t.push(TensorSpec::new(p("ffn_down.weight"), &[h, i]));
        }
        t
    }

    /// Parameters of [`Shape::tensors`]: what `model info` counts in the file.
    pub fn parameter_count(&self) -> u64 {
        self.tensors().iter().map(TensorSpec::elems).sum()
    }

    fn metadata(&self) -> Vec<(String, gguf_file::Value)> {
        use gguf_file::Value as V;
        let a = self.arch;
        let k = |s: &str| format!("{a}.{s}");
        let u = |n: usize| V::U32(n as u32);
        let mut m = vec![
            ("general.architecture".to_string(), V::String(a.into())),
            (
                "general.name".into(),
                V::String(format!("{} (random weights)", self.about)),
            ),
            ("eprof.random_weights".into(), V::Bool(true)),
            ("eprof.shape".into(), V::String(self.name.into())),
            (k("context_length"), u(self.context)),
            (k("embedding_length"), u(self.hidden)),
            (k("feed_forward_length"), u(self.intermediate)),
            (k("block_count"), u(self.layers)),
            (k("attention.head_count"), u(self.heads)),
            (k("attention.head_count_kv"), u(self.kv_heads)),
            (k("attention.key_length"), u(self.head_dim)),
            (k("attention.value_length"), u(self.head_dim)),
            (k("rope.dimension_count"), u(self.head_dim)),
            (k("rope.freq_base"), V::F32(self.rope_theta)),
            (k("attention.layer_norm_rms_epsilon"), V::F32(self.rms_eps)),
        ];
        if let Some(w) = self.sliding_window {
            m.push((k("attention.sliding_window"), u(w)));
            m.push((k("rope.local_freq_base"), V::F32(10_000.0)));
        }
        m.extend(tokenizer_metadata(self.vocab));
        m
    }
}

/// Byte-level BPE metadata for a vocabulary of `vocab` tokens (also what the
/// tokenizer fuzz target tokenizes with).
pub fn tokenizer_metadata(vocab: usize) -> Vec<(String, gguf_file::Value)> {
    use gguf_file::Value as V;
    // GPT-2's byte-to-character map: printable bytes stand for themselves, the others
    // are shifted above 255.
    let mut chars = Vec::with_capacity(256);
    let mut n = 0u32;
    for b in 0u32..256 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
        chars.push(if printable {
            char::from_u32(b).unwrap_or('?')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('?')
        });
    }
    let mut tokens: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
    let mut types = vec![1i32; 256];
    let mut merges = Vec::new();
    let space = chars[b' ' as usize];
    let letters: Vec<char> = ('a'..='z').collect();
    for &c in &letters {
        merges.push(format!("{space} {c}"));
        tokens.push(format!("{space}{c}"));
    }
    for &a in &letters {
        for &b in &letters {
            merges.push(format!("{a} {b}"));
            tokens.push(format!("{a}{b}"));
        }
    }
    let bos = tokens.len() as u32;
    tokens.push("<|begin_of_text|>".into());
    types.resize(tokens.len() - 1, 1);
    types.push(3);
    let eos = tokens.len() as u32;
    tokens.push("<|end_of_text|>".into());
    types.push(3);
    let mut i = 0;
    while tokens.len() < vocab {
        tokens.push(format!("<|synth_{i}|>"));
        types.push(1);
        i += 1;
    }
    tokens.truncate(vocab);
    types.truncate(vocab);
    let strings = |v: Vec<String>| V::Array(v.into_iter().map(V::String).collect());
    vec![
        ("tokenizer.ggml.model".into(), V::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), V::String("default".into())),
        ("tokenizer.ggml.tokens".into(), strings(tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            V::Array(types.into_iter().map(V::I32).collect()),
        ),
        ("tokenizer.ggml.merges".into(), strings(merges)),
        ("tokenizer.ggml.bos_token_id".into(), V::U32(bos)),
        ("tokenizer.ggml.eos_token_id".into(), V::U32(eos)),
        ("tokenizer.ggml.add_bos_token".into(), V::Bool(true)),
    ]
}

/// What [`synthesize`] wrote.
#[derive(Debug, Clone)]
pub struct Synthesized {
    pub parameters: u64,
    pub bytes: u64,
    /// Matrices stored in another type than asked, because their rows are not a
    /// whole number of that type's blocks (llama.cpp's fallbacks: a k-quant row must
    /// hold 256 values): (tensor, type used).
    pub fallbacks: Vec<(String, String)>,
}

/// The type a matrix with `cols` columns is stored in when `want` was asked: `want`
/// where its blocks fit a row, else llama.cpp's fallback.
fn fitting(want: GgmlDType, cols: usize) -> GgmlDType {
    if cols.is_multiple_of(want.block_size()) {
        return want;
    }
    let fallback = match want {
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        GgmlDType::Q6K => GgmlDType::Q8_0,
        _ => GgmlDType::F16,
    };
    if cols.is_multiple_of(fallback.block_size()) {
        fallback
    } else {
        GgmlDType::F16
    }
}

/// Write `shape` with random weights of type `want` to `out` (deterministic in
/// `seed`). Norm weights are 1 and vectors are f32, as in llama.cpp's files.
pub fn synthesize(shape: &Shape, want: GgmlDType, out: &Path, seed: u64) -> Result<Synthesized> {
    let dev = Device::Cpu;
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut fallbacks = Vec::new();
    for (k, spec) in shape.tensors().into_iter().enumerate() {
        let q = if spec.is_matrix() {
            let cols = spec.dims[1];
            let scale = 1.0 / (cols as f32).sqrt();
            let t = det_tensor(seed.wrapping_add(k as u64 * 7919), &spec.dims, scale, &dev)?;
            let ty = fitting(want, cols);
            if ty != want {
                fallbacks.push((spec.name.clone(), format!("{ty:?}").to_lowercase()));
            }
            QTensor::quantize(&t, ty)?
        } else if spec.name.ends_with(".bias") {
            let t = det_tensor(seed.wrapping_add(k as u64 * 7919), &spec.dims, 0.02, &dev)?;
            QTensor::quantize(&t, GgmlDType::F32)?
        } else {
            QTensor::quantize(
                &Tensor::ones(spec.dims.as_slice(), candle_core::DType::F32, &dev)?,
                GgmlDType::F32,
            )?
        };
        tensors.push((spec.name, q));
    }
    let meta = shape.metadata();
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = out.with_extension("gguf.tmp");
    let write = || -> Result<u64> {
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        let m: Vec<(&str, &gguf_file::Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let t: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut w, &m, &t)?;
        w.flush().map_err(|e| Error::io(&tmp, e))?;
        let bytes = w.stream_position().map_err(|e| Error::io(&tmp, e))?;
        Ok(bytes)
    };
    let bytes = match write() {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
    Ok(Synthesized {
        parameters: shape.parameter_count(),
        bytes,
        fallbacks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_has_its_published_parameter_count() {
        for s in SHAPES {
            assert_eq!(s.parameter_count(), s.parameters, "{}", s.name);
        }
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = shape("llama-9").unwrap_err().to_string();
        assert!(
            e.contains("llama-3.2-1b") && e.contains("qwen2.5-7b"),
            "{e}"
        );
        assert!(dtype("q4_k").is_ok());
        assert!(dtype("q3").unwrap_err().to_string().contains("q8_0"));
    }

    #[test]
    fn rows_that_do_not_hold_whole_k_blocks_fall_back_as_llama_cpp_does() {
        assert_eq!(fitting(GgmlDType::Q4K, 2048), GgmlDType::Q4K);
        assert_eq!(fitting(GgmlDType::Q4K, 1152), GgmlDType::Q5_0);
        assert_eq!(fitting(GgmlDType::Q6K, 1152), GgmlDType::Q8_0);
        assert_eq!(fitting(GgmlDType::Q4_0, 1152), GgmlDType::Q4_0);
    }
}
