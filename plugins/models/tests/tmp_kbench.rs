use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use eprof_models::decoder::BlockLinear;
#[test]
fn kbench() {
    let dev = Device::Cpu;
    for dtype in [
        GgmlDType::Q4K,
        GgmlDType::Q6K,
        GgmlDType::Q8_0,
        GgmlDType::Q5_0,
    ] {
        let (n, k) = (4096usize, 4096usize);
        let w = Tensor::randn(0f32, 0.05, (n, k), &dev).unwrap();
        let q = QTensor::quantize(&w, dtype).unwrap();
        let ours = BlockLinear::from_qtensor(&q).unwrap().unwrap();
        let theirs = QMatMul::from_qtensor(q).unwrap();
        for m in [1usize, 8] {
            let x = Tensor::randn(0f32, 1.0, (1, m, k), &dev).unwrap();
            for _ in 0..3 {
                ours.forward(&x).unwrap();
                theirs.forward(&x).unwrap();
            }
            let mut to = vec![];
            let mut tt = vec![];
            for _ in 0..15 {
                let t = std::time::Instant::now();
                ours.forward(&x).unwrap();
                to.push(t.elapsed().as_secs_f64() * 1e3);
                let t = std::time::Instant::now();
                theirs.forward(&x).unwrap();
                tt.push(t.elapsed().as_secs_f64() * 1e3);
            }
            to.sort_by(f64::total_cmp);
            tt.sort_by(f64::total_cmp);
            println!(
                "{dtype:?} m={m}: eprof {:.3} ms, candle {:.3} ms",
                to[7], tt[7]
            );
        }
    }
}
