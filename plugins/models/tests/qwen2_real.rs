//! The real Qwen2.5-Coder-0.5B-Instruct GGUF (mostly Q5_0, with Q4_K, Q6_K and Q8_0;
//! q/k/v biases; untied output) against candle-transformers' `quantized_qwen2`: greedy
//! decoding of 16 tokens at depth off, module and deep. eprof's Q5_0 projections run
//! on its own kernels, candle's on its own: the logits differ by their rounding, which
//! this test prints. Token ids must be equal, except where the reference's top two
//! logits are closer than that difference (a near tie, printed if it happens). Fails
//! (never skips) when the model is missing: `scripts/fetch-model.sh qwen2.5-coder-0.5b`
//! (the test script does), or `EPROF_TEST_QWEN2`.

mod common;

use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_qwen2::ModelWeights;
use common::{TestRecorder, diff};
use eprof_core::ModelAdapter;
use eprof_core::recorder::{NullRecorder, Recorder};
use eprof_format::Depth;

fn path() -> std::path::PathBuf {
    common::real_model(
        "EPROF_TEST_QWEN2",
        "Qwen2.5-Coder-0.5B-Instruct.gguf",
        "qwen2.5-coder-0.5b",
    )
}

fn top2(t: &Tensor) -> (u32, f32) {
    let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    (idx[0] as u32, v[idx[0]] - v[idx[1]])
}

#[test]
fn greedy_16_tokens_match_quantized_qwen2_at_every_depth() {
    let p = path();
    let src = eprof_models::load::detect(&p).unwrap();
    assert_eq!(src.architecture, "qwen2");
    let mut m = eprof_models::QWEN2.load(&src, &Device::Cpu).unwrap();
    let prompt = m
        .tokenizer
        .encode(
            "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
            true,
        )
        .unwrap();
    let (content, mut r) = eprof_models::load::read_gguf(&p).unwrap();
    let mut reference = ModelWeights::from_gguf(content, &mut r, &Device::Cpu).unwrap();

    // The reference's greedy ids, with the top-two margin at each step.
    let x = Tensor::new(prompt.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let ref_first = reference.forward(&x, 0).unwrap();
    let (mut id, mut margin) = top2(&ref_first);
    let (mut want, mut margins) = (vec![id], vec![margin]);
    while want.len() < 16 {
        let x = Tensor::new(&[id], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        (id, margin) = top2(
            &reference
                .forward(&x, prompt.len() + want.len() - 1)
                .unwrap(),
        );
        want.push(id);
        margins.push(margin);
    }

    let mut run = |rec: &mut dyn Recorder| -> (Vec<u32>, Tensor) {
        m.model.clear_kv_cache();
        let x = Tensor::new(prompt.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let first = m.model.forward(&x, 0, rec).unwrap();
        let mut out = vec![top2(&first).0];
        // Teacher-forced on the reference's ids, so one near tie does not derail the
        // comparison of the steps after it.
        while out.len() < 16 {
            let x = Tensor::new(&[want[out.len() - 1]], &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            out.push(
                top2(
                    &m.model
                        .forward(&x, prompt.len() + out.len() - 1, rec)
                        .unwrap(),
                )
                .0,
            );
        }
        (out, first)
    };
    let (off, first) = run(&mut NullRecorder);
    let (d, mag) = diff(&first, &ref_first.flatten_all().unwrap());
    println!("depth off: max |logit diff| vs quantized_qwen2 = {d:e} (max |logit| {mag})");
    for (i, (a, b)) in off.iter().zip(&want).enumerate() {
        if a != b {
            println!(
                "step {i}: eprof {a}, reference {b}; the reference's top-two margin there is {}",
                margins[i]
            );
            assert!(
                margins[i] < d.max(0.5),
                "a token changed where the margin {} exceeds the kernels' difference {d}",
                margins[i]
            );
        }
    }
    assert!(
        d < 0.1 * mag,
        "logits within 10% of their range: {d} vs {mag}"
    );
    for depth in [Depth::Module, Depth::Deep] {
        let mut rec = TestRecorder::new(depth);
        let (ids, first_here) = run(&mut rec);
        let (dd, _) = diff(&first_here, &first);
        println!(
            "depth {depth:?}: max |logit diff| against off = {dd:e}, {} spans",
            rec.spans.len()
        );
        assert_eq!(ids, off, "instrumentation changes no token");
        assert_eq!(dd, 0.0, "nor a bit of the logits");
        assert!(
            rec.spans.len() >= 16 * 24 * 13,
            "every layer and component recorded"
        );
    }
}
