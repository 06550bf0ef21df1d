//! A tiny random Llama written as a GGUF file (Q8_0 matmul weights, f32 norms, a
//! byte-level tokenizer in the metadata): eprof's decoder at depth off, module and
//! deep gives the logits of candle-transformers' `quantized_llama` on the same file:
//! bit for bit with candle's kernels (the same ops in the same order), and to f32
//! rounding with eprof's (its kernels and attention loops add in another order).

mod common;

use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use common::{TestRecorder, diff};
use eprof_core::ModelAdapter;
use eprof_core::recorder::{NullRecorder, Recorder};
use eprof_format::Depth;
use eprof_models::load::det_tensor;

const H: usize = 64;
const I: usize = 128;
const L: usize = 2;
const NH: usize = 4;
const NKV: usize = 2;
const V: usize = 258;

fn write_gguf(path: &std::path::Path) {
    use gguf_file::Value;
    let dev = Device::Cpu;
    let mut seed = 500u64;
    let mut t = |shape: &[usize], scale: f32| {
        seed += 1;
        det_tensor(seed, shape, scale, &dev).unwrap()
    };
    let q = |x: Tensor| QTensor::quantize(&x, GgmlDType::Q8_0).unwrap();
    let f = |x: Tensor| QTensor::quantize(&x, GgmlDType::F32).unwrap();
    let hd = H / NH;
    let s = 1.0 / (H as f32).sqrt();
    let mut tensors: Vec<(String, QTensor)> = vec![
        ("token_embd.weight".into(), q(t(&[V, H], 1.0))),
        (
            "output_norm.weight".into(),
            f((t(&[H], 0.2) + 1.0).unwrap()),
        ),
        ("output.weight".into(), q(t(&[V, H], 0.2))),
    ];
    for l in 0..L {
        let p = format!("blk.{l}");
        tensors.push((format!("{p}.attn_q.weight"), q(t(&[NH * hd, H], s))));
        tensors.push((format!("{p}.attn_k.weight"), q(t(&[NKV * hd, H], s))));
        tensors.push((format!("{p}.attn_v.weight"), q(t(&[NKV * hd, H], s))));
        tensors.push((format!("{p}.attn_output.weight"), q(t(&[H, NH * hd], s))));
        tensors.push((format!("{p}.ffn_gate.weight"), q(t(&[I, H], s))));
        tensors.push((format!("{p}.ffn_up.weight"), q(t(&[I, H], s))));
        tensors.push((
            format!("{p}.ffn_down.weight"),
            q(t(&[H, I], 1.0 / (I as f32).sqrt())),
        ));
        tensors.push((
            format!("{p}.attn_norm.weight"),
            f((t(&[H], 0.2) + 1.0).unwrap()),
        ));
        tensors.push((
            format!("{p}.ffn_norm.weight"),
            f((t(&[H], 0.2) + 1.0).unwrap()),
        ));
    }
    let mut tokens: Vec<Value> = eprof_models::tokenizer::byte_chars()
        .iter()
        .map(|c| Value::String(c.to_string()))
        .collect();
    tokens.push(Value::String("<s>".into()));
    tokens.push(Value::String("</s>".into()));
    let types: Vec<Value> = (0..V)
        .map(|i| Value::I32(if i >= 256 { 3 } else { 1 }))
        .collect();
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.embedding_length", Value::U32(H as u32)),
        ("llama.feed_forward_length", Value::U32(I as u32)),
        ("llama.block_count", Value::U32(L as u32)),
        ("llama.attention.head_count", Value::U32(NH as u32)),
        ("llama.attention.head_count_kv", Value::U32(NKV as u32)),
        ("llama.rope.dimension_count", Value::U32(hd as u32)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.context_length", Value::U32(256)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens", Value::Array(tokens)),
        (
            "tokenizer.ggml.merges",
            Value::Array(vec![Value::String("a b".into())]),
        ),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.bos_token_id", Value::U32(256)),
        ("tokenizer.ggml.eos_token_id", Value::U32(257)),
    ];
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &md_refs, &t_refs).unwrap();
}

#[test]
fn tiny_gguf_llama_matches_quantized_llama() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_gguf(&path);

    let (c, mut r) = eprof_models::load::read_gguf(&path).unwrap();
    let mut reference = ModelWeights::from_gguf(c, &mut r, &Device::Cpu).unwrap();
    let prompt = [5u32, 77, 140, 3, 200, 9, 31];
    let x = |ids: &[u32]| {
        Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap()
    };
    let mut want = vec![reference.forward(&x(&prompt), 0).unwrap()];
    for (i, t) in [12u32, 250, 64].iter().enumerate() {
        want.push(reference.forward(&x(&[*t]), prompt.len() + i).unwrap());
    }

    let src = eprof_models::load::detect(&path).unwrap();
    assert_eq!(src.architecture, "llama");
    for (own, depth) in [false, true]
        .into_iter()
        .flat_map(|own| [Depth::Off, Depth::Module, Depth::Deep].map(|d| (own, d)))
    {
        // The only test in this binary: the process-wide switch is this test's own.
        eprof_models::decoder::set_own_kernels(own);
        let mut m = eprof_models::LLAMA.load(&src, &Device::Cpu).unwrap();
        assert_eq!(
            m.tokenizer.encode("hi<s>", true).unwrap(),
            vec![104, 105, 256]
        );
        let mut test_rec = TestRecorder::new(depth);
        let rec: &mut dyn Recorder = if depth == Depth::Off {
            &mut NullRecorder
        } else {
            &mut test_rec
        };
        let mut got = vec![m.model.forward(&x(&prompt), 0, rec).unwrap()];
        for (i, t) in [12u32, 250, 64].iter().enumerate() {
            got.push(m.model.forward(&x(&[*t]), prompt.len() + i, rec).unwrap());
        }
        for (step, (a, b)) in got.iter().zip(&want).enumerate() {
            let (d, mag) = diff(a, &b.flatten_all().unwrap());
            println!(
                "gguf llama, eprof kernels {own}, depth {depth:?} step {step}: max |logit diff| {d:e} (max |logit| {mag:.3})"
            );
            if own {
                assert!(d <= 1e-5 * mag, "depth {depth:?} step {step}: {d} of {mag}");
            } else {
                assert_eq!(
                    d, 0.0,
                    "depth {depth:?} step {step}: same op order, so the same bits"
                );
            }
        }
    }
}
