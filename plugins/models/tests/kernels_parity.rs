//! eprof's CPU kernels against candle's on the same quantized weights: projections of
//! Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K and Q6_K matrices, one input row (decode) and
//! several (prefill); and eprof's reading of each block layout against candle's
//! dequantization (the kernel crate's tests take eprof's own as the reference, so this
//! is where a misread layout would show).
//! Both are checked against the exact f32 product of the same (dequantized) weights,
//! and the errors printed (`--nocapture`). Both quantize the input to Q8 and add the
//! same integer products; Q5_0 and Q8_0 agree to f32 rounding. For Q4_1 and Q5_1 they differ
//! in the block sum `s` of the Q8_1 input: eprof stores `f16(d * sum)` as llama.cpp
//! does, candle `f16(sum) * f16(d)` (rounded twice, and `sum` above 2048 loses bits in
//! f16); against the exact product their errors are of one size (within 4% of each
//! other here, either one the smaller).

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use eprof_format::stats::SplitMix;
use eprof_models::decoder::BlockLinear;

#[test]
fn block_linear_matches_candle_qmatmul() {
    let dev = Device::Cpu;
    for dtype in [
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q5_1,
        GgmlDType::Q8_0,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
    ] {
        for m in [1usize, 7] {
            let (n, k) = (96usize, 512usize);
            // Seeded: the same matrices on every run.
            let mut rng = SplitMix(0x5eed ^ (n * k * m) as u64);
            let mut draws = |count: usize, sd: f64| -> Vec<f32> {
                (0..count).map(|_| rng.normal(0.0, sd) as f32).collect()
            };
            let w = Tensor::from_vec(draws(n * k, 0.05), (n, k), &dev).unwrap();
            let q = QTensor::quantize(&w, dtype).unwrap();
            let q_dequant = q.dequantize(&dev).unwrap();
            let wt = eprof_kernels::WeightType::ALL
                .into_iter()
                .find(|t| t.name() == format!("{dtype:?}").to_lowercase())
                .expect("a type eprof's kernels handle");
            let mut ours_dequant = vec![0f32; n * k];
            eprof_kernels::dequantize_row(wt, &q.data().unwrap(), &mut ours_dequant);
            let candle_dequant: Vec<f32> = q_dequant.flatten_all().unwrap().to_vec1().unwrap();
            for (i, (a, b)) in ours_dequant.iter().zip(&candle_dequant).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
                    "{dtype:?} value {i}: eprof reads {a}, candle {b}"
                );
            }
            let ours = BlockLinear::from_qtensor(&q)
                .unwrap()
                .expect("a supported type");
            let theirs = QMatMul::from_qtensor(q).unwrap();
            let x = Tensor::from_vec(draws(m * k, 1.0), (1, m, k), &dev).unwrap();
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
            // Both quantize the inputs to 8 bits the same way, so their errors are of
            // one size (the bound itself is tested in eprof-kernels): eprof's may not be
            // more than 10% larger than candle's.
            assert!(
                ours_err <= 1.1 * candle_err + 1e-4 * mag,
                "{dtype:?} m={m}: eprof error {ours_err}, candle {candle_err}"
            );
        }
    }
}
