//! Loading weights: GGUF files, Hugging Face folders (single or sharded safetensors),
//! and the built-in tiny Llama.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use eprof_core::model::{ModelLayout, ModelSource};
use eprof_core::{Error, LoadedModel, Result};
use eprof_format::ModelIdentity;

use crate::config::{DecoderConfig, HfConfig};
use crate::decoder::{Decoder, GemmaNorms, LayerWeights, Linear, Weights};
use crate::tokenizer::HfTokenizers;

/// The path that names the built-in tiny model.
pub const BUILTIN_TINY: &str = "builtin:tiny-llama";

fn merr(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::model(path.display().to_string(), msg.to_string())
}

/// Open a GGUF file's metadata (buffered: unbuffered metadata reads are ~5x slower).
pub fn read_gguf(path: &Path) -> Result<(gguf_file::Content, BufReader<File>)> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let content = gguf_file::Content::read(&mut r)
        .map_err(|e| merr(path, format!("not a readable GGUF file: {e}")))?;
    Ok((content, r))
}

/// Identify what is at `path`: a `.gguf` file, a Hugging Face folder, or the built-in.
pub fn detect(path: &Path) -> Result<ModelSource> {
    if path.as_os_str() == BUILTIN_TINY {
        return Ok(ModelSource {
            path: path.to_path_buf(),
            layout: ModelLayout::BuiltinTiny,
            architecture: "llama".into(),
        });
    }
    if !path.exists() {
        return Err(merr(
            path,
            "does not exist; give a .gguf file or a Hugging Face folder (config.json + *.safetensors), or fetch one: `eprof model fetch smollm2` (or OWNER/REPO from the Hugging Face Hub)",
        ));
    }
    if path.is_dir() {
        if !path.join("config.json").exists() {
            // Likely the folder that holds the model file, given for the file.
            let mut ggufs: Vec<String> = std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
                .map(|p| p.display().to_string())
                .collect();
            ggufs.sort();
            return Err(merr(
                path,
                if ggufs.is_empty() {
                    "is a folder without config.json, so not a Hugging Face model folder, and it holds no .gguf file".to_string()
                } else {
                    format!(
                        "is a folder without config.json, so not a Hugging Face model folder; give one of its GGUF files instead: {}",
                        ggufs.join(", ")
                    )
                },
            ));
        }
        let cfg = read_hf_config(path)?;
        return Ok(ModelSource {
            path: path.to_path_buf(),
            layout: ModelLayout::HfFolder,
            architecture: cfg.architecture(),
        });
    }
    let (content, _) = read_gguf(path)?;
    let arch = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok().cloned())
        .ok_or_else(|| merr(path, "GGUF metadata has no general.architecture"))?;
    Ok(ModelSource {
        path: path.to_path_buf(),
        layout: ModelLayout::Gguf,
        architecture: arch,
    })
}

pub fn read_hf_config(dir: &Path) -> Result<HfConfig> {
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    serde_json::from_str(&text).map_err(|e| merr(&p, format!("invalid config.json: {e}")))
}

fn md<'a>(c: &'a gguf_file::Content, key: &str, path: &Path) -> Result<&'a gguf_file::Value> {
    c.metadata
        .get(key)
        .ok_or_else(|| merr(path, format!("GGUF metadata lacks {key}")))
}

fn md_u32(c: &gguf_file::Content, key: &str, path: &Path) -> Result<usize> {
    md(c, key, path)?
        .to_u32()
        .map(|v| v as usize)
        .map_err(|e| merr(path, format!("{key}: {e}")))
}

/// Decoder configuration from GGUF metadata of architecture `arch`.
pub fn gguf_config(c: &gguf_file::Content, arch: &str, path: &Path) -> Result<DecoderConfig> {
    let k = |s: &str| format!("{arch}.{s}");
    let hidden = md_u32(c, &k("embedding_length"), path)?;
    let heads = md_u32(c, &k("attention.head_count"), path)?;
    let vocab = match c.metadata.get("tokenizer.ggml.tokens") {
        Some(v) => v.to_vec().map(Vec::len).unwrap_or(0),
        None => 0,
    };
    let f32_or = |key: &str, d: f32| {
        c.metadata
            .get(&k(key))
            .and_then(|v| v.to_f32().ok())
            .unwrap_or(d)
    };
    let head_dim = crate::config::head_dim(
        hidden,
        heads,
        c.metadata
            .get(&k("attention.key_length"))
            .or_else(|| c.metadata.get(&k("rope.dimension_count")))
            .and_then(|v| v.to_u32().ok())
            .map(|v| v as usize),
    )
    .map_err(|e| merr(path, format!("GGUF metadata: {e}")))?;
    // llama.cpp's defaults for Gemma 3 where the file says nothing.
    let gemma3 = (arch == "gemma3").then(|| crate::config::Gemma3 {
        global_every: c
            .metadata
            .get(&k("attention.sliding_window_type"))
            .and_then(|v| v.to_u32().ok())
            .map_or(6, |v| v as usize),
        rope_local_theta: f32_or("rope.local_freq_base", 10_000.0),
        query_pre_attn_scalar: head_dim,
    });
    let cfg = DecoderConfig {
        architecture: arch.to_string(),
        hidden_size: hidden,
        intermediate_size: md_u32(c, &k("feed_forward_length"), path)?,
        layers: md_u32(c, &k("block_count"), path)?,
        heads,
        kv_heads: md_u32(c, &k("attention.head_count_kv"), path).unwrap_or(heads),
        head_dim,
        vocab_size: vocab,
        rms_norm_eps: f64::from(f32_or("attention.layer_norm_rms_epsilon", 1e-5)),
        rope_theta: f32_or("rope.freq_base", 10_000.0),
        rope_scaling: None,
        max_position_embeddings: md_u32(c, &k("context_length"), path).unwrap_or(4096),
        sliding_window: c
            .metadata
            .get(&k("attention.sliding_window"))
            .and_then(|v| v.to_u32().ok())
            .map(|v| v as usize),
        qkv_bias: arch == "qwen2",
        tie_word_embeddings: !c.tensor_infos.contains_key("output.weight"),
        // llama.cpp permutes llama/mistral Q and K for interleaved RoPE; qwen2 and
        // gemma3 keep the half-split (NeoX) form.
        rope_interleaved: arch != "qwen2" && arch != "gemma3",
        activation: if arch == "gemma3" {
            crate::config::Activation::GeluTanh
        } else {
            crate::config::Activation::Silu
        },
        gemma3,
    };
    cfg.check()
        .map_err(|e| merr(path, format!("GGUF metadata: {e}")))?;
    Ok(cfg)
}

/// Load a GGUF model of any of the four architectures.
pub fn load_gguf(src: &ModelSource, dev: &Device) -> Result<LoadedModel> {
    load_gguf_with(src, dev, |_| {})
}

/// [`load_gguf`] with the configuration read from the file adjusted first (tests swap
/// an activation to match a reference that differs there).
pub fn load_gguf_with(
    src: &ModelSource,
    dev: &Device,
    adjust: impl FnOnce(&mut DecoderConfig),
) -> Result<LoadedModel> {
    let path = &src.path;
    let (content, mut r) = read_gguf(path)?;
    let mut cfg = gguf_config(&content, &src.architecture, path)?;
    adjust(&mut cfg);
    let mut qt = |name: &str| {
        content
            .tensor(&mut r, name, dev)
            .map_err(|e| merr(path, format!("tensor {name}: {e}")))
    };
    let emb_q = qt("token_embd.weight")?;
    let dtype = main_dtype(&content);
    let embedding = emb_q.dequantize(dev)?;
    let final_norm = qt("output_norm.weight")?.dequantize(dev)?;
    // Tied embeddings have no output.weight. Asked, not tried: a failed read is a
    // candle error, which captures and (formatted here) symbolizes a backtrace when
    // RUST_BACKTRACE is set.
    let lm_head = if content.tensor_infos.contains_key("output.weight") {
        qt("output.weight")?
    } else {
        emb_q
    };
    let mut layers = Vec::with_capacity(cfg.layers);
    for l in 0..cfg.layers {
        let p = format!("blk.{l}");
        let mut lin = |n: &str, bias: bool| -> Result<Linear> {
            let w = qt(&format!("{p}.{n}.weight"))?;
            let b = if bias {
                Some(qt(&format!("{p}.{n}.bias"))?.dequantize(dev)?)
            } else {
                None
            };
            Ok(Linear::quantized(std::sync::Arc::new(w), b, dev)?)
        };
        layers.push(LayerWeights {
            q: lin("attn_q", cfg.qkv_bias)?,
            k: lin("attn_k", cfg.qkv_bias)?,
            v: lin("attn_v", cfg.qkv_bias)?,
            o: lin("attn_output", false)?,
            gate: lin("ffn_gate", false)?,
            up: lin("ffn_up", false)?,
            down: lin("ffn_down", false)?,
            input_norm: qt(&format!("{p}.attn_norm.weight"))?.dequantize(dev)?,
            post_norm: qt(&format!("{p}.ffn_norm.weight"))?.dequantize(dev)?,
            // GGUF Gemma norms already hold 1 + w (llama.cpp's converter adds it).
            extra: match cfg.gemma3 {
                Some(_) => Some(GemmaNorms {
                    q_norm: qt(&format!("{p}.attn_q_norm.weight"))?.dequantize(dev)?,
                    k_norm: qt(&format!("{p}.attn_k_norm.weight"))?.dequantize(dev)?,
                    attn_out_norm: qt(&format!("{p}.post_attention_norm.weight"))?
                        .dequantize(dev)?,
                    mlp_out_norm: qt(&format!("{p}.post_ffw_norm.weight"))?.dequantize(dev)?,
                }),
                None => None,
            },
        });
    }
    let weights = Weights {
        embedding,
        layers,
        final_norm,
        lm_head: Linear::quantized(std::sync::Arc::new(lm_head), None, dev)?,
    };
    let tokenizer = HfTokenizers::from_gguf(&content)
        .map_err(|e| merr(path, format!("tokenizer in GGUF metadata: {e}")))?;
    let mut identity = identity(src, &cfg, &dtype, params_gguf(&content));
    // `eprof model synth` files: a real model's shapes, random weights.
    identity.random_weights |= content
        .metadata
        .get("eprof.random_weights")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false);
    let model = Decoder::new(cfg, weights, dev.clone())?;
    Ok(LoadedModel {
        model: Box::new(model),
        tokenizer: Box::new(tokenizer),
        identity,
    })
}

/// Parameters per storage type of a GGUF file, largest first: a "Q4_1" file keeps
/// some tensors in other types (embeddings in q8_0, norms in f32), and a "Q5_0" one
/// mixes in Q4_K, Q6_K and Q8_0.
pub fn weight_mix(c: &gguf_file::Content) -> Vec<(String, u64)> {
    let mut by_type: HashMap<String, u64> = HashMap::new();
    for t in c.tensor_infos.values() {
        *by_type
            .entry(format!("{:?}", t.ggml_dtype).to_lowercase())
            .or_default() += t.shape.elem_count() as u64;
    }
    let mut mix: Vec<(String, u64)> = by_type.into_iter().collect();
    mix.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    mix
}

/// The storage type holding most of the parameters.
fn main_dtype(c: &gguf_file::Content) -> String {
    weight_mix(c)
        .into_iter()
        .next()
        .map(|(t, _)| t)
        .unwrap_or_default()
}

fn params_gguf(c: &gguf_file::Content) -> u64 {
    c.tensor_infos
        .values()
        .map(|t| t.shape.elem_count() as u64)
        .sum()
}

fn identity(src: &ModelSource, cfg: &DecoderConfig, dtype: &str, params: u64) -> ModelIdentity {
    ModelIdentity {
        name: src.path.file_name().map_or_else(
            || src.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        architecture: cfg.architecture.clone(),
        path: src.path.display().to_string(),
        file_hash: String::new(),
        parameters: params,
        layers: cfg.layers as u32,
        hidden_size: cfg.hidden_size as u32,
        heads: cfg.heads as u32,
        kv_heads: cfg.kv_heads as u32,
        vocab_size: cfg.vocab_size as u32,
        dtype: dtype.to_string(),
        random_weights: src.layout == ModelLayout::BuiltinTiny,
    }
}

/// The safetensors files of a folder: `model.safetensors.index.json`'s shards, or every
/// `*.safetensors`.
fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| merr(&index, format!("invalid JSON: {e}")))?;
        let mut files: Vec<String> = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| merr(&index, "has no weight_map"))?
            .values()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(merr(dir, "has config.json but no *.safetensors weights"));
    }
    Ok(files)
}

/// Load a Hugging Face folder (f32/f16/bf16 weights are computed in f32 on CPU).
pub fn load_hf(src: &ModelSource, dev: &Device) -> Result<LoadedModel> {
    let dir = &src.path;
    let hf = read_hf_config(dir)?;
    let cfg = hf.to_decoder().map_err(|e| merr(dir, e))?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut dtype = None;
    for f in safetensors_files(dir)? {
        let part = candle_core::safetensors::load(&f, dev)
            .map_err(|e| merr(&f, format!("cannot read safetensors: {e}")))?;
        for (k, t) in part {
            dtype.get_or_insert(t.dtype());
            tensors.insert(k, t);
        }
    }
    let compute = if dev.is_cpu() {
        DType::F32
    } else {
        dtype.unwrap_or(DType::F32)
    };
    let mut take = |name: &str| -> Result<Tensor> {
        let t = tensors
            .remove(name)
            .ok_or_else(|| merr(dir, format!("weights lack {name}")))?;
        Ok(t.to_dtype(compute)?)
    };
    let embedding = take("model.embed_tokens.weight")?;
    // Gemma's RMS norms scale by 1 + w (Hugging Face stores w); the others by w.
    let gemma = cfg.gemma3.is_some();
    let norm = |w: Tensor| -> Result<Tensor> { Ok(if gemma { (w + 1.0)? } else { w }) };
    let pre_mlp = if gemma {
        "pre_feedforward_layernorm"
    } else {
        "post_attention_layernorm"
    };
    let mut layers = Vec::with_capacity(cfg.layers);
    for l in 0..cfg.layers {
        let p = format!("model.layers.{l}");
        let mut lin = |n: &str, bias: bool| -> Result<Linear> {
            let w = take(&format!("{p}.{n}.weight"))?;
            let b = if bias {
                Some(take(&format!("{p}.{n}.bias"))?)
            } else {
                None
            };
            Ok(Linear::Dense(candle_nn::Linear::new(w, b)))
        };
        layers.push(LayerWeights {
            q: lin("self_attn.q_proj", cfg.qkv_bias)?,
            k: lin("self_attn.k_proj", cfg.qkv_bias)?,
            v: lin("self_attn.v_proj", cfg.qkv_bias)?,
            o: lin("self_attn.o_proj", false)?,
            gate: lin("mlp.gate_proj", false)?,
            up: lin("mlp.up_proj", false)?,
            down: lin("mlp.down_proj", false)?,
            input_norm: norm(take(&format!("{p}.input_layernorm.weight"))?)?,
            post_norm: norm(take(&format!("{p}.{pre_mlp}.weight"))?)?,
            extra: match cfg.gemma3 {
                Some(_) => Some(GemmaNorms {
                    q_norm: norm(take(&format!("{p}.self_attn.q_norm.weight"))?)?,
                    k_norm: norm(take(&format!("{p}.self_attn.k_norm.weight"))?)?,
                    attn_out_norm: norm(take(&format!("{p}.post_attention_layernorm.weight"))?)?,
                    mlp_out_norm: norm(take(&format!("{p}.post_feedforward_layernorm.weight"))?)?,
                }),
                None => None,
            },
        });
    }
    let final_norm = norm(take("model.norm.weight")?)?;
    let lm_head = if cfg.tie_word_embeddings {
        embedding.clone()
    } else {
        take("lm_head.weight")?
    };
    let untied_head = if cfg.tie_word_embeddings {
        0
    } else {
        lm_head.elem_count()
    };
    let params = (embedding.elem_count() + untied_head) as u64 + count_layer_params(&cfg);
    let weights = Weights {
        embedding,
        layers,
        final_norm,
        lm_head: Linear::Dense(candle_nn::Linear::new(lm_head, None)),
    };
    let tok_path = dir.join("tokenizer.json");
    let tokenizer = HfTokenizers::from_tokenizer_json(&tok_path).map_err(|e| merr(&tok_path, e))?;
    let identity = identity(
        src,
        &cfg,
        &format!("{:?}", dtype.unwrap_or(DType::F32)).to_lowercase(),
        params,
    );
    let model = Decoder::new(cfg, weights, dev.clone())?;
    Ok(LoadedModel {
        model: Box::new(model),
        tokenizer: Box::new(tokenizer),
        identity,
    })
}

fn count_layer_params(cfg: &DecoderConfig) -> u64 {
    let (h, i) = (cfg.hidden_size as u64, cfg.intermediate_size as u64);
    let (q, kv) = (
        (cfg.heads * cfg.head_dim) as u64,
        (cfg.kv_heads * cfg.head_dim) as u64,
    );
    // Gemma 3: q/k norms (a head each) and two more hidden-sized norms.
    let extra = if cfg.gemma3.is_some() {
        2 * cfg.head_dim as u64 + 2 * h
    } else {
        0
    };
    let per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h + extra;
    per_layer * cfg.layers as u64 + h
}

/// The built-in tiny Llama: 4 layers, hidden 64, deterministic random weights, and a
/// byte-level tokenizer. It lets every command run before any model is downloaded.
pub fn tiny_config() -> DecoderConfig {
    DecoderConfig {
        architecture: "llama".into(),
        hidden_size: 64,
        intermediate_size: 172,
        layers: 4,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        vocab_size: 256 + 3,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        rope_scaling: None,
        max_position_embeddings: 4096,
        sliding_window: None,
        qkv_bias: false,
        tie_word_embeddings: true,
        rope_interleaved: false,
        activation: crate::config::Activation::Silu,
        gemma3: None,
    }
}

/// Deterministic pseudo-random tensor (splitmix64), uniform in [-scale, scale].
pub fn det_tensor(seed: u64, shape: &[usize], scale: f32, dev: &Device) -> Result<Tensor> {
    let n: usize = shape.iter().product();
    let mut s = seed;
    let data: Vec<f32> = (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    Ok(Tensor::from_vec(data, shape, dev)?)
}

pub fn load_tiny(src: &ModelSource, dev: &Device) -> Result<LoadedModel> {
    let model = tiny_decoder(dev)?;
    let cfg = model.config();
    let params = count_layer_params(cfg) + (cfg.vocab_size * cfg.hidden_size) as u64;
    let identity = identity(src, cfg, "f32", params);
    Ok(LoadedModel {
        model: Box::new(model),
        tokenizer: Box::new(HfTokenizers::bytes_only()),
        identity,
    })
}

/// The built-in tiny Llama's decoder (its weights are the same on every call).
pub fn tiny_decoder(dev: &Device) -> Result<Decoder> {
    let cfg = tiny_config();
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (q, kv) = (cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim);
    let mut seed = 7u64;
    let mut next = |shape: &[usize], scale: f32| {
        seed += 1;
        det_tensor(seed, shape, scale, dev)
    };
    let lin = |t: Tensor| Linear::Dense(candle_nn::Linear::new(t, None));
    let embedding = next(&[v, h], 1.0)?;
    let mut layers = Vec::new();
    for _ in 0..cfg.layers {
        let s = 1.0 / (h as f32).sqrt();
        layers.push(LayerWeights {
            q: lin(next(&[q, h], s)?),
            k: lin(next(&[kv, h], s)?),
            v: lin(next(&[kv, h], s)?),
            o: lin(next(&[h, q], s)?),
            gate: lin(next(&[i, h], s)?),
            up: lin(next(&[i, h], s)?),
            down: lin(next(&[h, i], 1.0 / (i as f32).sqrt())?),
            input_norm: Tensor::ones(h, DType::F32, dev)?,
            post_norm: Tensor::ones(h, DType::F32, dev)?,
            extra: None,
        });
    }
    let weights = Weights {
        lm_head: lin(embedding.clone()),
        embedding,
        layers,
        final_norm: Tensor::ones(h, DType::F32, dev)?,
    };
    Decoder::new(cfg, weights, dev.clone())
}
