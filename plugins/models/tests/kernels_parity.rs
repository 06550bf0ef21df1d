//! eprof's CPU kernels against candle's on the same quantized weights: projections of
//! Q4_1, Q5_0 and Q5_1 matrices, one input row (decode) and several (prefill).
//! Both are checked against the exact f32 product of the same (dequantized) weights,
//! and the errors printed (`--nocapture`). Both quantize the input to Q8 and add the
//! same integer products; Q5_0 agrees to f32 rounding. For Q4_1 and Q5_1 they differ
//! in the block sum `s` of the Q8_1 input: eprof stores `f16(d * sum)` as llama.cpp
//! does, candle `f16(sum) * f16(d)` (rounded twice, and `sum` above 2048 loses bits in
//! f16); eprof's error against the exact product is the smaller one here.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use eprof_models::decoder::BlockLinear;

#[test]
fn block_linear_matches_candle_qmatmul() {
    let dev = Device::Cpu;
    for dtype in [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1] {
        for m in [1usize, 7] {
            let (n, k) = (96usize, 256usize);
            let w = Tensor::randn(0f32, 0.05, (n, k), &dev).unwrap();
            let q = QTensor::quantize(&w, dtype).unwrap();
            let q_dequant = q.dequantize(&dev).unwrap();
            let ours = BlockLinear::from_qtensor(&q)
                .unwrap()
                .expect("a supported type");
            let theirs = QMatMul::from_qtensor(q).unwrap();
            let x = Tensor::randn(0f32, 1.0, (1, m, k), &dev).unwrap();
            let a = ours.forward(&x).unwrap();
            let b = theirs.forward(&x).unwrap();
            assert_eq!(a.dims(), b.dims());
            // The exact product of the same (dequantized) weights, in f32.
            let exact = x.broadcast_matmul(&q_dequant.t().unwrap()).unwrap();
            let max_abs = |t: Tensor| -> f32 {
                t.abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            let ours_err = max_abs((a.clone() - &exact).unwrap());
            let candle_err = max_abs((b.clone() - &exact).unwrap());
            let between = max_abs((a - &b).unwrap());
            let mag = max_abs(exact);
            println!(
                "{dtype:?} m={m}: max |y| {mag:.3}; max error vs exact f32: eprof {ours_err:.3e}, candle {candle_err:.3e}; eprof vs candle {between:.3e}"
            );
            // Q8 activations: each input is off by up to max|x|/254 per block, so the
            // error is a few 1e-3 of |y| here; both stay well inside 1%.
            assert!(
                ours_err <= 0.01 * mag,
                "{dtype:?} m={m}: eprof error {ours_err}"
            );
            assert!(
                candle_err <= 0.01 * mag,
                "{dtype:?} m={m}: candle error {candle_err}"
            );
        }
    }
}
