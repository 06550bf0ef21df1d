//! The real SmolLM2-135M-Instruct Q4_1 GGUF: tokenizer against llama.cpp's ids, greedy
//! decoding against candle-transformers' `quantized_llama` at every depth, and the
//! completion against llama.cpp's. Fails (never skips) when the model is missing.
//!
//! eprof's kernels quantize activations as llama.cpp does and add in another order
//! than candle, so logits differ in their last digits, and a rounding of an 8-bit
//! activation can flip on the way through 30 layers: the first token's logits differ
//! by up to about 1 (of 20). Greedy tokens are compared step by step on the
//! reference's own tokens (teacher forcing), at every step where the reference's top
//! two logits are not a near tie ([`NEAR_TIE`]); near ties are printed, not asserted:
//! this prompt's 15th token is "1" against "2" at 0.007 logits, which any change in
//! the last bits decides.

mod common;

use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights;
use common::{TestRecorder, diff, smollm2};
use eprof_core::recorder::{NullRecorder, Recorder};
use eprof_core::{LoadedModel, ModelAdapter};
use eprof_format::Depth;

fn ours() -> LoadedModel {
    let src = eprof_models::load::detect(&smollm2()).unwrap();
    assert_eq!(src.architecture, "llama");
    eprof_models::LLAMA.load(&src, &Device::Cpu).unwrap()
}

fn reference() -> ModelWeights {
    let (content, mut r) = eprof_models::load::read_gguf(&smollm2()).unwrap();
    ModelWeights::from_gguf(content, &mut r, &Device::Cpu).unwrap()
}

fn fixture() -> serde_json::Value {
    common::fixture("smollm2-llamacpp-reference.json")
}

fn argmax(t: &Tensor) -> u32 {
    eprof_models::decoder::argmax(&t.flatten_all().unwrap()).unwrap()
}

/// A step whose reference logits' top two are closer than this (0.25% of the logits'
/// range here) is a near tie: either token is right to the model's precision.
const NEAR_TIE: f32 = 0.05;

/// The top logit less the second.
fn margin(t: &Tensor) -> f32 {
    let mut v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    v.sort_by(|a, b| b.total_cmp(a));
    v[0] - v[1]
}

/// Logits after the prompt, then after each of `ids` but the last (teacher forcing):
/// `step(tokens, pos)` runs one forward pass.
fn forced(
    mut step: impl FnMut(&[u32], usize) -> Tensor,
    prompt: &[u32],
    ids: &[u32],
) -> Vec<Tensor> {
    let mut out = vec![step(prompt, 0)];
    for k in 1..ids.len() {
        out.push(step(&[ids[k - 1]], prompt.len() + k - 1));
    }
    out
}

fn input(ids: &[u32]) -> Tensor {
    Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

/// eprof's greedy token at each step on the reference's tokens `want` equals the
/// reference's, except at near ties (printed). Returns the near ties' steps.
fn matches_where_decided(
    m: &mut LoadedModel,
    prompt: &[u32],
    want: &[u32],
    margins: &[f32],
) -> Vec<usize> {
    m.model.clear_kv_cache();
    let ours = forced(
        |ids, pos| {
            m.model
                .forward(&input(ids), pos, &mut NullRecorder)
                .unwrap()
        },
        prompt,
        want,
    );
    let mut ties = Vec::new();
    for (k, (l, w)) in ours.iter().zip(want).enumerate() {
        let got = argmax(l);
        if margins[k] < NEAR_TIE {
            println!(
                "step {k}: near tie (margin {:.3}): eprof {got}, reference {w}",
                margins[k]
            );
            ties.push(k);
        } else {
            assert_eq!(got, *w, "step {k}: reference margin {:.3}", margins[k]);
        }
    }
    ties
}

#[test]
fn tokenizer_matches_llamacpp_on_every_fixture_entry() {
    let m = ours();
    let f = fixture();
    let cases = f["tokenize"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want: Vec<u32> = common::ids(&c["ids"]);
        let got = m.tokenizer.encode(text, true).unwrap();
        assert_eq!(got, want, "tokenizing {text:?}");
        assert_eq!(m.tokenizer.decode(&got), text, "decoding {text:?}");
    }
}

fn greedy(
    m: &mut LoadedModel,
    rec: &mut dyn Recorder,
    prompt: &[u32],
    n: usize,
) -> (Vec<u32>, Tensor) {
    m.model.clear_kv_cache();
    let ids = Tensor::new(prompt, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let first = m.model.forward(&ids, 0, rec).unwrap();
    let mut out = vec![argmax(&first)];
    while out.len() < n {
        let x = Tensor::new(&[*out.last().unwrap()], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = m
            .model
            .forward(&x, prompt.len() + out.len() - 1, rec)
            .unwrap();
        out.push(argmax(&logits));
    }
    (out, first)
}

#[test]
fn greedy_32_tokens_match_quantized_llama_at_every_depth() {
    let f = fixture();
    let g = &f["greedy"][0];
    let prompt: Vec<u32> = common::ids(&g["prompt_ids"]);
    let mut m = ours();
    assert_eq!(
        m.tokenizer
            .encode(g["prompt"].as_str().unwrap(), true)
            .unwrap(),
        prompt
    );

    let mut r = reference();
    let x = Tensor::new(prompt.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let ref_first = r.forward(&x, 0).unwrap();
    let mut want = vec![argmax(&ref_first)];
    while want.len() < 32 {
        let x = Tensor::new(&[*want.last().unwrap()], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        want.push(argmax(
            &r.forward(&x, prompt.len() + want.len() - 1).unwrap(),
        ));
    }

    r.clear_kv_cache();
    let ref_logits = forced(
        |ids, pos| r.forward(&input(ids), pos).unwrap(),
        &prompt,
        &want,
    );
    let margins: Vec<f32> = ref_logits.iter().map(margin).collect();
    let ties = matches_where_decided(&mut m, &prompt, &want, &margins);
    assert!(
        ties.len() <= 2,
        "near ties at steps {ties:?}: not this prompt"
    );

    let (off, first) = greedy(&mut m, &mut NullRecorder, &prompt, 32);
    let (d, mag) = diff(&first, &ref_first.flatten_all().unwrap());
    let reference_logits: Vec<f32> = ref_first.flatten_all().unwrap().to_vec1().unwrap();
    let mut sorted = reference_logits.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    println!(
        "depth off: max |logit diff| vs quantized_llama = {d:e} (max |logit| {mag}; first token's top-two margin {})",
        sorted[0] - sorted[1]
    );
    // eprof's Q4_1 kernels quantize the activations as llama.cpp does, candle rounds
    // the Q8_1 block sum differently (tests/kernels_parity.rs), and the sums run in
    // another order: the logits differ by that; the tokens up to the first near tie
    // must not.
    let first_tie = ties.first().copied().unwrap_or(want.len());
    assert_eq!(
        off[..first_tie],
        want[..first_tie],
        "greedy ids at depth off"
    );
    assert!(
        d < 0.1 * mag,
        "logits within 10% of their range: {d} vs {mag}"
    );
    for depth in [Depth::Module, Depth::Deep] {
        let mut rec = TestRecorder::new(depth);
        let (ids, first_here) = greedy(&mut m, &mut rec, &prompt, 32);
        let (d, _) = diff(&first_here, &first);
        println!(
            "depth {depth:?}: max |logit diff| = {d:e}, {} spans, {} tensors observed",
            rec.spans.len(),
            rec.observed
        );
        assert_eq!(
            ids, off,
            "greedy ids at depth {depth:?} (against depth off)"
        );
        assert_eq!(
            d, 0.0,
            "instrumentation must not change a bit of the logits (against depth off)"
        );
        // 30 layers x (layer + 12 components) per step, plus the model-level sites.
        assert!(rec.spans.len() >= 32 * 30 * 13);
    }
}

#[test]
fn raw_completion_matches_llamacpp_for_16_tokens() {
    let f = fixture();
    let g = &f["greedy"][0];
    let mut m = ours();
    let prompt = m
        .tokenizer
        .encode(g["prompt"].as_str().unwrap(), true)
        .unwrap();
    let (ids, _) = greedy(&mut m, &mut NullRecorder, &prompt, 16);
    let text = m.tokenizer.decode(&ids);
    let completion = g["completion"].as_str().unwrap();
    println!("eprof:     {text:?}\nllama.cpp: {completion:?}");
    assert!(text.starts_with(" Paris."));
    // llama.cpp's tokens (its tokenizer is ours: the test above), step by step, with
    // candle-transformers' margins to tell near ties.
    let want: Vec<u32> = m.tokenizer.encode(completion, false).unwrap()[..16].to_vec();
    assert_eq!(
        m.tokenizer.decode(&want),
        completion[..m.tokenizer.decode(&want).len()]
    );
    let mut r = reference();
    let margins: Vec<f32> = forced(
        |ids, pos| r.forward(&input(ids), pos).unwrap(),
        &prompt,
        &want,
    )
    .iter()
    .map(margin)
    .collect();
    let ties = matches_where_decided(&mut m, &prompt, &want, &margins);
    println!("near ties at steps {ties:?}");
}

#[test]
fn chat_template_keeps_smollm2_default_system_message() {
    let m = ours();
    assert_eq!(
        m.tokenizer.chat_prompt("Hi").unwrap().unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        m.tokenizer.eos(),
        vec![2, 0],
        "<|im_end|> and <|endoftext|> end generation"
    );
}
