//! Token sampling: greedy at temperature 0, else temperature, top-k and top-p with a
//! seeded generator, so a run is reproducible from its settings.

/// Sampling settings of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingConfig {
    pub temperature: f64,
    pub top_k: Option<u32>,
    pub top_p: Option<f64>,
    pub seed: u64,
}

/// splitmix64: small, fast, and the same on every platform (shared with the statistics).
pub use eprof_format::stats::SplitMix as Rng;

/// Pick the next token from `logits`.
pub fn sample(logits: &[f32], cfg: &SamplingConfig, rng: &mut Rng) -> u32 {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                if v > bv { (i, v) } else { (bi, bv) }
            })
            .0 as u32
    };
    if cfg.temperature <= 0.0 {
        return argmax();
    }
    let mut cand: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, &v)| (i as u32, f64::from(v) / cfg.temperature))
        .collect();
    if cand.is_empty() {
        return argmax();
    }
    cand.sort_by(|a, b| b.1.total_cmp(&a.1));
    if let Some(k) = cfg.top_k.filter(|&k| k > 0) {
        cand.truncate(k as usize);
    }
    let max = cand[0].1;
    let mut sum = 0.0;
    for c in &mut cand {
        c.1 = (c.1 - max).exp();
        sum += c.1;
    }
    for c in &mut cand {
        c.1 /= sum;
    }
    if let Some(p) = cfg.top_p.filter(|&p| p > 0.0 && p < 1.0) {
        let mut acc = 0.0;
        let mut keep = cand.len();
        for (i, c) in cand.iter().enumerate() {
            acc += c.1;
            if acc >= p {
                keep = i + 1;
                break;
            }
        }
        cand.truncate(keep);
        let s: f64 = cand.iter().map(|c| c.1).sum();
        for c in &mut cand {
            c.1 /= s;
        }
    }
    let mut r = rng.uniform();
    for c in &cand {
        if r < c.1 {
            return c.0;
        }
        r -= c.1;
    }
    cand[cand.len() - 1].0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_seeded_sampling() {
        let logits = [0.1f32, 3.0, 0.5, 2.9];
        let greedy = SamplingConfig {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 1,
        };
        assert_eq!(sample(&logits, &greedy, &mut Rng(1)), 1);
        let hot = SamplingConfig {
            temperature: 1.0,
            top_k: Some(2),
            top_p: None,
            seed: 1,
        };
        let a: Vec<u32> = {
            let mut r = Rng(9);
            (0..50).map(|_| sample(&logits, &hot, &mut r)).collect()
        };
        let b: Vec<u32> = {
            let mut r = Rng(9);
            (0..50).map(|_| sample(&logits, &hot, &mut r)).collect()
        };
        assert_eq!(a, b, "same seed, same tokens");
        assert!(
            a.iter().all(|&t| t == 1 || t == 3),
            "top-k 2 keeps the two best"
        );
        assert!(a.contains(&1) && a.contains(&3));
    }
}
