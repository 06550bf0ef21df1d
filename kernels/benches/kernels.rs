//! Weight bytes streamed per second by each kernel, against this machine's memory
//! bandwidth measured in the same run (a plain streaming read), one and all threads.
//! Decode is a matrix-vector product per projection: every weight byte is read once
//! per token, so decode speed is bounded by how close these come to the memory.
//!
//! `cargo bench -p eprof-kernels --bench kernels [-- TYPE...]`; measured here, never
//! asserted.

use std::time::Instant;

use eprof_kernels::{Isa, Packed, WeightType, best, half, matvec_rows_with, quantize_activations};

const WEIGHT_BYTES: usize = 96 << 20; // well past the caches

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Run `f(first_row, rows)` over `rows` split across `n` threads; seconds.
fn timed(rows: usize, n: usize, f: &(dyn Fn(usize, usize) -> f32 + Sync)) -> f64 {
    let t = Instant::now();
    let per = rows.div_ceil(n);
    let sink: f32 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| s.spawn(move || f(i * per, per.min(rows.saturating_sub(i * per)))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    std::hint::black_box(sink);
    t.elapsed().as_secs_f64()
}

fn main() {
    let cols = 2048usize;
    let n_threads = threads();
    // Memory bandwidth: sum of u64 words over a large buffer.
    let words: Vec<u64> = (0..WEIGHT_BYTES / 8).map(|i| i as u64).collect();
    let mut bw = Vec::new();
    for &n in &[1, n_threads] {
        let per_thread = words.len().div_ceil(n);
        let secs = median(
            (0..5)
                .map(|_| {
                    timed(n, n, &|first, _| {
                        let c =
                            &words[first * per_thread..((first + 1) * per_thread).min(words.len())];
                        c.iter().fold(0u64, |a, w| a.wrapping_add(*w)) as f32
                    })
                })
                .collect(),
        );
        bw.push((n, WEIGHT_BYTES as f64 / secs / 1e9));
    }
    drop(words);
    println!("memory: streaming read {} MB", WEIGHT_BYTES >> 20);
    for (n, gbs) in &bw {
        println!("  {n} thread(s): {gbs:.2} GB/s");
    }
    println!("\n| type | implementation | threads | GB/s of weights | vs streaming read |");
    println!("|---|---|---|---|---|");
    // `cargo bench ... -- q4k q6k` measures those types only.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for t in WeightType::ALL {
        if !only.is_empty() && !only.iter().any(|o| o == t.name()) {
            continue;
        }
        let row_bytes = cols / t.block_values() * t.block_bytes();
        let rows = WEIGHT_BYTES / row_bytes;
        // Random-looking blocks with a sane scale.
        let mut weights = vec![0u8; rows * row_bytes];
        let mut s = 7u32;
        for b in &mut weights {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            *b = s as u8;
        }
        // Q6_K keeps its `d` last; Q4_K and Q5_K have a `dmin` after `d`.
        let d_at = if t == WeightType::Q6K { 208 } else { 0 };
        for blk in weights.chunks_exact_mut(t.block_bytes()) {
            blk[d_at..d_at + 2].copy_from_slice(&half::f32_to_f16(0.01).to_le_bytes());
            if matches!(t, WeightType::Q4K | WeightType::Q5K) {
                blk[2..4].copy_from_slice(&half::f32_to_f16(0.002).to_le_bytes());
            }
        }
        let x: Vec<f32> = (0..cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let mut act = Vec::new();
        quantize_activations(&x, t.activation(), &mut act);
        // Scalar, the x86 paths below the best where it has them (AVX2 without VNNI:
        // what VNNI adds; AVX2-VNNI's eight-row tiles: what 512-bit registers add),
        // the best.
        let mut isas = vec![Isa::Scalar];
        if matches!(best(), Isa::AvxVnni | Isa::Avx512) {
            isas.push(Isa::Avx2);
        }
        if best() == Isa::Avx512 {
            isas.push(Isa::AvxVnni);
        }
        if best() != Isa::Scalar {
            isas.push(best());
        }
        // Eight activation rows (a prompt's), each quantized: what prefill multiplies.
        let mut act8 = Vec::new();
        for i in 0..8 {
            let xi: Vec<f32> = x.iter().map(|v| v * (1.0 + i as f32 / 8.0)).collect();
            quantize_activations(&xi, t.activation(), &mut act8);
        }
        for isa in isas {
            // Row by row, then (where it differs) packed in groups or tiles; and the
            // packed form against eight activation rows at once (prefill), counted
            // as the weight bytes times eight per second: how far reuse goes.
            let packed = Packed::with(isa, t, &weights, rows, cols);
            let tiled = format!("packed x{}", packed.unit_rows());
            let prefill = format!("{tiled}, 8 activation rows");
            let layouts: Vec<(&str, bool, usize)> = if packed.is_grouped() {
                vec![("rows", false, 1), (&tiled, true, 1), (&prefill, true, 8)]
            } else {
                vec![("rows", false, 1)]
            };
            for &(layout, grouped, m) in &layouts {
                for &(n, mem) in &bw {
                    let secs = median(
                        (0..3)
                            .map(|_| {
                                if grouped {
                                    timed(packed.units(), n, &|first, count| {
                                        let units = first..first + count;
                                        let span = packed.unit_span(&units);
                                        let mut out = vec![0f32; m * span.len()];
                                        let a = if m == 1 { &act[..] } else { &act8[..] };
                                        packed.matmul_units(units, a, m, &mut out);
                                        out.iter().sum()
                                    })
                                } else {
                                    timed(rows, n, &|first, count| {
                                        let mut out = vec![0f32; count];
                                        matvec_rows_with(
                                            isa, t, &weights, cols, first, &act, &mut out,
                                        );
                                        out.iter().sum()
                                    })
                                }
                            })
                            .collect(),
                    );
                    let gbs = (m * rows * row_bytes) as f64 / secs / 1e9;
                    println!(
                        "| {} | {} {layout} | {n} | {gbs:.2} | {:.0}% |",
                        t.name(),
                        isa.name(),
                        gbs / mem * 100.0
                    );
                }
            }
        }
    }
}
