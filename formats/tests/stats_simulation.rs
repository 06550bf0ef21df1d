//! The statistics of repeated runs, checked on simulated data with a known truth
//! (seeded, so the rates below are the same on every run). 1,000 experiments of N = 10
//! draws per configuration at a 2% coefficient of variation, like J/token over ten
//! repeats of one prompt. The rates are printed (`--nocapture`) and asserted.

use eprof_format::stats::{SplitMix, Verdict, adjust_family, compare, describe, drift};

/// Seeded draws: the rates below reproduce exactly.
struct Rng(SplitMix);

impl Rng {
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        self.0.normal(mean, sd)
    }
    fn draws(&mut self, n: usize, mean: f64, cv: f64) -> Vec<f64> {
        (0..n).map(|_| self.0.normal(mean, mean * cv)).collect()
    }
}

const EXPERIMENTS: usize = 1000;
const N: usize = 10;
const CV: f64 = 0.02;

fn rate(hits: usize) -> f64 {
    hits as f64 / EXPERIMENTS as f64
}

#[test]
fn the_interval_covers_the_true_mean() {
    let mut rng = Rng(SplitMix(1));
    let hits = (0..EXPERIMENTS)
        .filter(|_| {
            let d = describe(&rng.draws(N, 100.0, CV)).unwrap();
            d.ci_low <= 100.0 && 100.0 <= d.ci_high
        })
        .count();
    eprintln!(
        "95% interval covers the true mean in {:.1}% of experiments",
        rate(hits) * 100.0
    );
    assert!(rate(hits) >= 0.93, "coverage {}", rate(hits));
}

#[test]
fn a_true_five_percent_difference_is_detected() {
    let mut rng = Rng(SplitMix(2));
    let hits = (0..EXPERIMENTS)
        .filter(|_| {
            let a = rng.draws(N, 100.0, CV);
            let b = rng.draws(N, 105.0, CV);
            compare(&a, &b).unwrap().verdict == Verdict::Higher
        })
        .count();
    eprintln!(
        "a true 5% difference is detected in {:.1}% of experiments",
        rate(hits) * 100.0
    );
    assert!(rate(hits) >= 0.80, "power {}", rate(hits));
}

#[test]
fn identical_configurations_show_no_difference() {
    let mut rng = Rng(SplitMix(3));
    let hits = (0..EXPERIMENTS)
        .filter(|_| {
            let a = rng.draws(N, 100.0, CV);
            let b = rng.draws(N, 100.0, CV);
            compare(&a, &b).unwrap().verdict == Verdict::NoDetectableDifference
        })
        .count();
    eprintln!(
        "identical configurations: no detectable difference in {:.1}%",
        rate(hits) * 100.0
    );
    assert!(rate(hits) >= 0.93, "{}", rate(hits));
}

#[test]
fn a_one_percent_per_run_drift_is_flagged() {
    let mut rng = Rng(SplitMix(4));
    let mut flagged = 0;
    let mut false_alarms = 0;
    for _ in 0..EXPERIMENTS {
        let drifting: Vec<f64> = (0..N)
            .map(|i| rng.normal(100.0 * (1.0 + 0.01 * i as f64), 100.0 * CV))
            .collect();
        let d = drift(&drifting).unwrap();
        if d.drifting && d.slope_per_run > 0.0 {
            flagged += 1;
        }
        if drift(&rng.draws(N, 100.0, CV)).unwrap().drifting {
            false_alarms += 1;
        }
    }
    eprintln!(
        "a drift of 1% per run is flagged in {:.1}% of experiments (without drift: {:.1}%)",
        rate(flagged) * 100.0,
        rate(false_alarms) * 100.0
    );
    assert!(rate(flagged) > 0.5, "{}", rate(flagged));
    assert!(rate(false_alarms) <= 0.07, "{}", rate(false_alarms));
}

#[test]
fn many_cells_of_identical_configurations_rarely_flag_any() {
    let mut rng = Rng(SplitMix(5));
    let cells = 30 * 12;
    let mut any = 0;
    for _ in 0..EXPERIMENTS {
        let mut family: Vec<_> = (0..cells)
            .map(|_| {
                let a = rng.draws(N, 1.0, CV);
                let b = rng.draws(N, 1.0, CV);
                compare(&a, &b).unwrap()
            })
            .collect();
        adjust_family(&mut family);
        if family
            .iter()
            .any(|d| d.verdict != Verdict::NoDetectableDifference)
        {
            any += 1;
        }
    }
    eprintln!(
        "30 x 12 identical cells, Benjamini-Hochberg: some cell flagged in {:.1}% of experiments",
        rate(any) * 100.0
    );
    assert!(rate(any) <= 0.07, "{}", rate(any));
}
