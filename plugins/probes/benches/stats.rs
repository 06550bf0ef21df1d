//! The activation probe's one-pass statistics, per value, on the sizes a SmolLM2
//! layer observes at module depth (576 hidden, 192 k/v, 1,536 MLP): the probe runs on
//! every component output of every token, 270,720 values per SmolLM2 token, which is
//! most of what module depth costs over off. Printed, not asserted.
//!
//! `cargo bench -p eprof-probes --bench stats`

use std::time::Instant;

fn main() {
    for n in [192usize, 576, 1536] {
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let reps = 2_000_000 / n;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            let mut acc = 0.0;
            for _ in 0..reps {
                acc += eprof_probes::stats(std::hint::black_box(&x), 1e-3).mean;
            }
            std::hint::black_box(acc);
            best = best.min(t.elapsed().as_secs_f64() / reps as f64);
        }
        println!(
            "{n:>5} values: {:.1} ns per call, {:.3} ns per value",
            best * 1e9,
            best * 1e9 / n as f64
        );
    }
    let per_token = 30.0 * (7.0 * 576.0 + 2.0 * 192.0 + 3.0 * 1536.0);
    println!("SmolLM2 at module depth: {per_token} values per token");
}
