//! Tiny random Hugging Face checkpoints of each architecture: the instrumented decoder
//! at depth off, module and deep gives the logits of candle-transformers' own
//! implementation on the same weights, bit for bit (prefill, then decode steps with the
//! KV cache).

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::{llama, mistral, qwen2};
use common::{TestRecorder, diff};
use eprof_core::recorder::{NullRecorder, Recorder};
use eprof_format::Depth;
use eprof_models::load::det_tensor;
use eprof_models::tokenizer::byte_chars;

const H: usize = 64;
const I: usize = 128;
const L: usize = 2;
const NH: usize = 4;
const NKV: usize = 2;
const V: usize = 258;

fn config(arch: &str) -> serde_json::Value {
    if arch == "gemma3" {
        // Layer 0 local with a window of 8 (the last decode steps see fewer keys
        // than all), layer 1 global.
        return serde_json::json!({
            "model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"],
            "hidden_size": H, "intermediate_size": I, "num_hidden_layers": L,
            "num_attention_heads": NH, "num_key_value_heads": NKV, "head_dim": H / NH,
            "vocab_size": V, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0, "max_position_embeddings": 256,
            "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": H / NH,
            "sliding_window": 8, "sliding_window_pattern": 2, "attention_bias": false,
            "final_logit_softcapping": null, "attn_logit_softcapping": null,
            "tie_word_embeddings": true, "bos_token_id": 256, "eos_token_id": 257
        });
    }
    serde_json::json!({
        "model_type": arch,
        "architectures": [format!("{arch}ForCausalLM")],
        "hidden_size": H, "intermediate_size": I, "num_hidden_layers": L,
        "num_attention_heads": NH, "num_key_value_heads": NKV, "vocab_size": V,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 256,
        "hidden_act": "silu", "tie_word_embeddings": arch == "qwen2",
        "sliding_window": 64, "max_window_layers": L, "use_sliding_window": false,
        "bos_token_id": 256, "eos_token_id": 257
    })
}

fn write_checkpoint(dir: &Path, arch: &str) -> HashMap<String, Tensor> {
    let dev = Device::Cpu;
    let mut seed = 100u64;
    let mut t = |shape: &[usize], scale: f32| {
        seed += 1;
        det_tensor(seed, shape, scale, &dev).unwrap()
    };
    let mut w = HashMap::new();
    w.insert("model.embed_tokens.weight".to_string(), t(&[V, H], 1.0));
    let hd = H / NH;
    for l in 0..L {
        let p = format!("model.layers.{l}");
        let s = 1.0 / (H as f32).sqrt();
        for (n, o, i) in [
            ("q_proj", NH * hd, H),
            ("k_proj", NKV * hd, H),
            ("v_proj", NKV * hd, H),
            ("o_proj", H, NH * hd),
        ] {
            w.insert(format!("{p}.self_attn.{n}.weight"), t(&[o, i], s));
            if arch == "qwen2" && n != "o_proj" {
                w.insert(format!("{p}.self_attn.{n}.bias"), t(&[o], 0.1));
            }
        }
        w.insert(format!("{p}.mlp.gate_proj.weight"), t(&[I, H], s));
        w.insert(format!("{p}.mlp.up_proj.weight"), t(&[I, H], s));
        w.insert(
            format!("{p}.mlp.down_proj.weight"),
            t(&[H, I], 1.0 / (I as f32).sqrt()),
        );
        // Gemma stores w and scales by 1 + w; the others store the scale.
        let one = if arch == "gemma3" { 0.0 } else { 1.0 };
        let mut norms = vec![("input_layernorm", H), ("post_attention_layernorm", H)];
        if arch == "gemma3" {
            norms.extend([
                ("pre_feedforward_layernorm", H),
                ("post_feedforward_layernorm", H),
                ("self_attn.q_norm", hd),
                ("self_attn.k_norm", hd),
            ]);
        }
        for (n, d) in norms {
            w.insert(format!("{p}.{n}.weight"), (t(&[d], 0.2) + one).unwrap());
        }
    }
    let one = if arch == "gemma3" { 0.0 } else { 1.0 };
    w.insert("model.norm.weight".into(), (t(&[H], 0.2) + one).unwrap());
    if arch != "qwen2" && arch != "gemma3" {
        w.insert("lm_head.weight".into(), t(&[V, H], 0.2));
    }
    candle_core::safetensors::save(&w, dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), config(arch).to_string()).unwrap();
    // A byte-level BPE tokenizer: 256 byte tokens, no merges, two specials.
    let mut vocab = serde_json::Map::new();
    for (i, c) in byte_chars().iter().enumerate() {
        vocab.insert(c.to_string(), serde_json::json!(i));
    }
    let tok = serde_json::json!({
        "model": {"type": "BPE", "vocab": vocab, "merges": []},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
        "added_tokens": [
            {"id": 256, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 257, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
        ]
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    w
}

/// Prefill of 7 tokens, then 3 decode steps, through a forward function.
fn run(mut fwd: impl FnMut(&Tensor, usize) -> Tensor) -> Vec<Tensor> {
    let prompt = [5u32, 77, 140, 3, 200, 9, 31];
    let mut out = vec![fwd(
        &Tensor::new(&prompt, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap(),
        0,
    )];
    for (i, t) in [12u32, 250, 64].iter().enumerate() {
        out.push(fwd(
            &Tensor::new(&[*t], &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap(),
            prompt.len() + i,
        ));
    }
    out.into_iter().map(|t| t.flatten_all().unwrap()).collect()
}

/// `exact`: the reference runs the same ops in the same order (else it normalizes by
/// hand, as candle-transformers' `gemma3` does: the same math, other rounding).
fn check(arch: &str, reference: Vec<Tensor>, dir: &Path, exact: bool) {
    let src = eprof_models::load::detect(dir).unwrap();
    assert_eq!(src.architecture, arch);
    let adapter: &dyn eprof_core::ModelAdapter = match arch {
        "llama" => &eprof_models::LLAMA,
        "mistral" => &eprof_models::MISTRAL,
        "gemma3" => &eprof_models::GEMMA3,
        _ => &eprof_models::QWEN2,
    };
    assert!(adapter.detects(&src));
    // candle's kernels run candle-transformers' op order: the same bits. eprof's own
    // CPU paths (decode attention in plain loops) sum in another order: a bounded
    // difference, and the same greedy token at every step.
    for own in [false, true] {
        for depth in [Depth::Off, Depth::Module, Depth::Deep] {
            let mut m = {
                let _one_at_a_time = KERNELS.lock().unwrap_or_else(|e| e.into_inner());
                eprof_models::decoder::set_own_kernels(own);
                adapter.load(&src, &Device::Cpu).unwrap()
            };
            let mut test_rec = TestRecorder::new(depth);
            let rec: &mut dyn Recorder = if depth == Depth::Off {
                &mut NullRecorder
            } else {
                &mut test_rec
            };
            let ours = run(|x, pos| m.model.forward(x, pos, rec).unwrap());
            for (step, (a, b)) in ours.iter().zip(&reference).enumerate() {
                let (d, mag) = diff(a, b);
                println!(
                    "{arch} own kernels {own} depth {depth:?} step {step}: max |logit diff| {d:e} (max |logit| {mag:.3})"
                );
                if own || !exact {
                    assert!(
                        d <= 1e-5 * mag.max(1.0),
                        "{arch} {depth:?} step {step}: {d:e} is more than summation order explains"
                    );
                    assert_eq!(
                        eprof_models::decoder::argmax(a).unwrap(),
                        eprof_models::decoder::argmax(b).unwrap(),
                        "{arch} {depth:?} step {step}: greedy token"
                    );
                } else {
                    assert_eq!(
                        d, 0.0,
                        "{arch} {depth:?} step {step}: same op order, so the same bits"
                    );
                }
            }
        }
    }
}

/// Which kernels a model gets is decided when it loads, from one process-wide switch.
static KERNELS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn llama_matches_candle_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_checkpoint(dir.path(), "llama");
    let cfg: llama::LlamaConfig = serde_json::from_value(config("llama")).unwrap();
    let cfg = cfg.into_config(false);
    let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    let model = llama::Llama::load(vb, &cfg).unwrap();
    let mut cache = llama::Cache::new(true, DType::F32, &cfg, &Device::Cpu).unwrap();
    let reference = run(|x, pos| model.forward(x, pos, &mut cache).unwrap());
    check("llama", reference, dir.path(), true);
}

#[test]
fn mistral_matches_candle_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_checkpoint(dir.path(), "mistral");
    let cfg: mistral::Config = serde_json::from_value(config("mistral")).unwrap();
    let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    let mut model = mistral::Model::new(&cfg, vb).unwrap();
    let reference = run(|x, pos| model.forward(x, pos).unwrap());
    check("mistral", reference, dir.path(), true);
}

#[test]
fn qwen2_matches_candle_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_checkpoint(dir.path(), "qwen2");
    let cfg: qwen2::Config = serde_json::from_value(config("qwen2")).unwrap();
    let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    let mut model = qwen2::ModelForCausalLM::new(&cfg, vb).unwrap();
    let reference = run(|x, pos| model.forward(x, pos).unwrap());
    check("qwen2", reference, dir.path(), true);
}

/// The same llama stored as bf16 in two safetensors shards with an index: eprof loads
/// the shards and computes in f32 like candle-transformers does from the same bf16
/// weights.
#[test]
fn sharded_bf16_checkpoint_loads_and_matches() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_checkpoint(dir.path(), "llama");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let bf16: HashMap<String, Tensor> = w
        .iter()
        .map(|(k, t)| (k.clone(), t.to_dtype(DType::BF16).unwrap()))
        .collect();
    let mut names: Vec<&String> = bf16.keys().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let shard: HashMap<String, Tensor> = part
            .iter()
            .map(|k| ((*k).clone(), bf16[*k].clone()))
            .collect();
        candle_core::safetensors::save(&shard, dir.path().join(file)).unwrap();
        for k in part {
            map.insert((*k).clone(), serde_json::json!(file));
        }
    }
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();

    let cfg: llama::LlamaConfig = serde_json::from_value(config("llama")).unwrap();
    let cfg = cfg.into_config(false);
    let vb = VarBuilder::from_tensors(bf16, DType::F32, &Device::Cpu);
    let model = llama::Llama::load(vb, &cfg).unwrap();
    let mut cache = llama::Cache::new(true, DType::F32, &cfg, &Device::Cpu).unwrap();
    let reference = run(|x, pos| model.forward(x, pos, &mut cache).unwrap());
    check("llama", reference, dir.path(), true);
    let src = eprof_models::load::detect(dir.path()).unwrap();
    let m = eprof_core::ModelAdapter::load(&eprof_models::LLAMA, &src, &Device::Cpu).unwrap();
    assert_eq!(m.identity.dtype, "bf16");
}

/// The same tiny Gemma 3 as a GGUF file, as llama.cpp's converter writes it: its
/// names, norms holding 1 + w, f32 tensors, a byte-level tokenizer in the metadata.
fn write_gemma3_gguf(hf: &HashMap<String, Tensor>, path: &Path) {
    use candle_core::quantized::{
        GgmlDType, QTensor,
        gguf_file::{self, Value},
    };
    let rename = |k: &str| -> (String, bool) {
        if k == "model.embed_tokens.weight" {
            return ("token_embd.weight".into(), false);
        }
        if k == "model.norm.weight" {
            return ("output_norm.weight".into(), true);
        }
        let rest = k.strip_prefix("model.layers.").unwrap();
        let (l, name) = rest.split_once('.').unwrap();
        let (g, norm) = match name {
            "self_attn.q_proj.weight" => ("attn_q", false),
            "self_attn.k_proj.weight" => ("attn_k", false),
            "self_attn.v_proj.weight" => ("attn_v", false),
            "self_attn.o_proj.weight" => ("attn_output", false),
            "self_attn.q_norm.weight" => ("attn_q_norm", true),
            "self_attn.k_norm.weight" => ("attn_k_norm", true),
            "input_layernorm.weight" => ("attn_norm", true),
            "post_attention_layernorm.weight" => ("post_attention_norm", true),
            "pre_feedforward_layernorm.weight" => ("ffn_norm", true),
            "post_feedforward_layernorm.weight" => ("post_ffw_norm", true),
            "mlp.gate_proj.weight" => ("ffn_gate", false),
            "mlp.up_proj.weight" => ("ffn_up", false),
            "mlp.down_proj.weight" => ("ffn_down", false),
            other => panic!("unexpected tensor {other}"),
        };
        (format!("blk.{l}.{g}.weight"), norm)
    };
    let tensors: Vec<(String, QTensor)> = hf
        .iter()
        .map(|(k, t)| {
            let (name, norm) = rename(k);
            let t = if norm { (t + 1.0).unwrap() } else { t.clone() };
            (name, QTensor::quantize(&t, GgmlDType::F32).unwrap())
        })
        .collect();
    let tokens: Vec<Value> = byte_chars()
        .iter()
        .map(|c| Value::String(c.to_string()))
        .chain(["<s>", "</s>"].map(|s| Value::String(s.into())))
        .collect();
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("gemma3".into())),
        ("gemma3.embedding_length", Value::U32(H as u32)),
        ("gemma3.feed_forward_length", Value::U32(I as u32)),
        ("gemma3.block_count", Value::U32(L as u32)),
        ("gemma3.attention.head_count", Value::U32(NH as u32)),
        ("gemma3.attention.head_count_kv", Value::U32(NKV as u32)),
        ("gemma3.attention.key_length", Value::U32((H / NH) as u32)),
        ("gemma3.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("gemma3.rope.freq_base", Value::F32(1_000_000.0)),
        ("gemma3.attention.sliding_window", Value::U32(8)),
        ("gemma3.attention.sliding_window_type", Value::U32(2)),
        ("gemma3.context_length", Value::U32(256)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens", Value::Array(tokens)),
        ("tokenizer.ggml.merges", Value::Array(vec![])),
        (
            "tokenizer.ggml.token_type",
            Value::Array(
                (0..V)
                    .map(|i| Value::I32(if i >= 256 { 3 } else { 1 }))
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(256)),
        ("tokenizer.ggml.eos_token_id", Value::U32(257)),
    ];
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &md_refs, &t_refs).unwrap();
}

/// Gemma 3 from a Hugging Face folder and from the GGUF file llama.cpp would make of it
/// give the same logits at every depth, and the sliding window is the same in prefill
/// (a mask) and in decode (the last keys of the cache): 7 tokens then 3 decode steps
/// end where 10 tokens at once do. candle-transformers' unquantized `gemma3` cannot be
/// the reference here: on CPU its KV cache append fails ("slice-set only supports
/// contiguous tensors"). The decoder itself is checked bit for bit against
/// `quantized_gemma3` on the real file (test `gemma3_real`).
#[test]
fn gemma3_hugging_face_and_gguf_agree_and_the_window_is_one_window() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_checkpoint(dir.path(), "gemma3");
    let gguf = dir.path().join("tiny-gemma3.gguf");
    write_gemma3_gguf(&w, &gguf);
    let hf_src = eprof_models::load::detect(dir.path()).unwrap();
    assert_eq!(hf_src.architecture, "gemma3");
    let mut hf =
        eprof_core::ModelAdapter::load(&eprof_models::GEMMA3, &hf_src, &Device::Cpu).unwrap();
    let reference = run(|x, pos| hf.model.forward(x, pos, &mut NullRecorder).unwrap());

    // All ten tokens at once: the prefill mask against the decode steps' window.
    hf.model.clear_kv_cache();
    let all = [5u32, 77, 140, 3, 200, 9, 31, 12, 250, 64];
    let x = Tensor::new(&all, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let whole = hf.model.forward(&x, 0, &mut NullRecorder).unwrap();
    let (d, mag) = diff(&whole.flatten_all().unwrap(), &reference[3]);
    println!("gemma3: 10 tokens at once against 7 + 3 steps: {d:e} (max |logit| {mag:.3})");
    assert!(
        d <= 1e-5 * mag.max(1.0),
        "the window differs between prefill and decode: {d:e}"
    );

    // The GGUF file at every depth, with candle's kernels and eprof's, against the
    // folder's logits.
    check("gemma3", reference, &gguf, false);
}
