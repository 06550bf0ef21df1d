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

const H: usize = 64;
const I: usize = 128;
const L: usize = 2;
const NH: usize = 4;
const NKV: usize = 2;
const V: usize = 258;

fn config(arch: &str) -> serde_json::Value {
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
        w.insert(
            format!("{p}.input_layernorm.weight"),
            (t(&[H], 0.2) + 1.0).unwrap(),
        );
        w.insert(
            format!("{p}.post_attention_layernorm.weight"),
            (t(&[H], 0.2) + 1.0).unwrap(),
        );
    }
    w.insert("model.norm.weight".into(), (t(&[H], 0.2) + 1.0).unwrap());
    if arch != "qwen2" {
        w.insert("lm_head.weight".into(), t(&[V, H], 0.2));
    }
    candle_core::safetensors::save(&w, dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), config(arch).to_string()).unwrap();
    // A byte-level BPE tokenizer: 256 byte tokens, no merges, two specials.
    let mut vocab = serde_json::Map::new();
    let bytes = (0..=255u8).map(|b| b as char).collect::<Vec<_>>();
    for (i, _) in bytes.iter().enumerate() {
        // GPT-2's byte-to-char map for the printable ASCII range, shifted code points
        // elsewhere; the loader only needs each byte to have one token.
        let c = if (33..=126).contains(&i) || (161..=172).contains(&i) || (174..=255).contains(&i) {
            char::from_u32(i as u32).unwrap()
        } else {
            let n = (0..i)
                .filter(|&j| {
                    !((33..=126).contains(&j)
                        || (161..=172).contains(&j)
                        || (174..=255).contains(&j))
                })
                .count();
            char::from_u32(256 + n as u32).unwrap()
        };
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

fn check(arch: &str, reference: Vec<Tensor>, dir: &Path) {
    let src = eprof_models::load::detect(dir).unwrap();
    assert_eq!(src.architecture, arch);
    let adapter: &dyn eprof_core::ModelAdapter = match arch {
        "llama" => &eprof_models::LLAMA,
        "mistral" => &eprof_models::MISTRAL,
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
                if own {
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
    check("llama", reference, dir.path());
}

#[test]
fn mistral_matches_candle_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_checkpoint(dir.path(), "mistral");
    let cfg: mistral::Config = serde_json::from_value(config("mistral")).unwrap();
    let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    let mut model = mistral::Model::new(&cfg, vb).unwrap();
    let reference = run(|x, pos| model.forward(x, pos).unwrap());
    check("mistral", reference, dir.path());
}

#[test]
fn qwen2_matches_candle_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let w = write_checkpoint(dir.path(), "qwen2");
    let cfg: qwen2::Config = serde_json::from_value(config("qwen2")).unwrap();
    let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    let mut model = qwen2::ModelForCausalLM::new(&cfg, vb).unwrap();
    let reference = run(|x, pos| model.forward(x, pos).unwrap());
    check("qwen2", reference, dir.path());
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
    check("llama", reference, dir.path());
    let src = eprof_models::load::detect(dir.path()).unwrap();
    let m = eprof_core::ModelAdapter::load(&eprof_models::LLAMA, &src, &Device::Cpu).unwrap();
    assert_eq!(m.identity.dtype, "bf16");
}
