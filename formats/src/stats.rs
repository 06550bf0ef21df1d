//! Statistics of repeated runs: a figure's mean with its 95% confidence interval, a
//! drift check over the repeat order, and the comparison of two groups with a verdict
//! (lower, higher, or no detectable difference) and the false discovery rate held
//! when many figures are compared at once. Pure functions, shared by `eprof bench`,
//! `eprof compare` and the viewer; the distributions come from `statrs`.
//!
//! Method, in one place:
//! - Interval of a mean: Student t with n - 1 degrees of freedom; when the sample is
//!   significantly skewed (|G1| over twice its standard error), an expanded percentile
//!   bootstrap of the mean instead (Hesterberg; 2,000 resamples, fixed seed: the same
//!   data give the same interval).
//! - Difference of two means: Welch's t (unequal variances), its interval and p-value.
//!   A difference is "detected" when p < 0.05, or, for a family of figures (every
//!   layer, every component), when its Benjamini-Hochberg adjusted p-value is < 0.05.
//! - Smallest detectable difference: (t(0.975) + t(0.80)) x the standard error, the
//!   difference these repeats would detect 80% of the time.
//! - Drift: least-squares slope of the values over the repeat order, t-tested.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use crate::attribution::EnergyLabel;

/// The significance level of every test and the confidence of every interval (95%).
pub const ALPHA: f64 = 0.05;

/// How an interval was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalMethod {
    StudentT,
    Bootstrap,
    /// Fewer than two values: no interval.
    None,
}

/// One figure over repeated runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Describe {
    pub n: usize,
    pub mean: f64,
    pub median: f64,
    /// Sample standard deviation (n - 1).
    pub sd: f64,
    /// Coefficient of variation, sd / |mean|.
    pub cv: f64,
    /// 95% interval of the mean; equal to the mean when n < 2; never below 0 when no
    /// value is.
    pub ci_low: f64,
    pub ci_high: f64,
    pub method: IntervalMethod,
    /// The weakest label among the runs' figures: a mean of estimates is an estimate.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub label: Option<EnergyLabel>,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn variance(v: &[f64], m: f64) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64
}

/// Quantile `p` of Student's t with `df` degrees of freedom.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df.max(1e-9)) {
        Ok(t) => t.inverse_cdf(p),
        Err(_) => f64::NAN,
    }
}

/// Two-sided p-value of a t statistic.
pub fn t_p_value(t: f64, df: f64) -> f64 {
    if !t.is_finite() {
        return if t.is_nan() { 1.0 } else { 0.0 };
    }
    match StudentsT::new(0.0, 1.0, df.max(1e-9)) {
        Ok(d) => (2.0 * (1.0 - d.cdf(t.abs()))).clamp(0.0, 1.0),
        Err(_) => 1.0,
    }
}

/// Sample skewness G1 (adjusted Fisher-Pearson) and whether it is significant: |G1|
/// over twice its standard error.
pub fn skewed(v: &[f64]) -> bool {
    let n = v.len() as f64;
    if v.len() < 4 {
        return false;
    }
    let m = mean(v);
    let m2 = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
    let m3 = v.iter().map(|x| (x - m).powi(3)).sum::<f64>() / n;
    if m2 <= 0.0 {
        return false;
    }
    let g1 = m3 / m2.powf(1.5) * (n * (n - 1.0)).sqrt() / (n - 2.0);
    let ses = (6.0 * n * (n - 1.0) / ((n - 2.0) * (n + 1.0) * (n + 3.0))).sqrt();
    g1.abs() > 2.0 * ses
}

/// A small deterministic generator (SplitMix64): the bootstrap (the same data give the
/// same interval on every machine and in the viewer), `bench --shuffle`, the synthetic
/// source's noise and the simulations that test these statistics.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Normal with this mean and standard deviation (Box-Muller).
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

const BOOTSTRAP_RESAMPLES: usize = 2000;
const BOOTSTRAP_SEED: u64 = 0x00e9_0f5e_ed00_0001;

fn bootstrap_mean_ci(v: &[f64]) -> (f64, f64) {
    let mut rng = SplitMix(BOOTSTRAP_SEED);
    let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| (0..v.len()).map(|_| v[rng.below(v.len())]).sum::<f64>() / v.len() as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    // Hesterberg's expanded percentile interval: plain percentiles are too narrow for
    // small samples (they use n, not n - 1, and z, not t); widen the tail area to
    // Phi(-sqrt(n / (n - 1)) t(0.975, n - 1)).
    let n = v.len() as f64;
    let z = (n / (n - 1.0)).sqrt() * t_quantile(1.0 - ALPHA / 2.0, n - 1.0);
    let tail = Normal::standard().cdf(-z);
    let at = |q: f64| means[((q * (means.len() - 1) as f64).round() as usize).min(means.len() - 1)];
    (at(tail), at(1.0 - tail))
}

fn median_of(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Describe one figure over runs (non-finite values are left out). `None` when no
/// value is left.
pub fn describe(values: &[f64]) -> Option<Describe> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    let m = mean(&v);
    let sd = variance(&v, m).sqrt();
    let (ci_low, ci_high, method) = if n < 2 {
        (m, m, IntervalMethod::None)
    } else if skewed(&v) {
        let (lo, hi) = bootstrap_mean_ci(&v);
        (lo, hi, IntervalMethod::Bootstrap)
    } else {
        let half = t_quantile(1.0 - ALPHA / 2.0, (n - 1) as f64) * sd / (n as f64).sqrt();
        (m - half, m + half, IntervalMethod::StudentT)
    };
    // Figures that cannot be negative (energy, time, rates: every figure eprof
    // describes) have a mean that cannot be either: the interval is cut at zero,
    // which keeps its coverage (a t interval of 2 runs reaches far below).
    let ci_low = if v.iter().all(|x| *x >= 0.0) {
        ci_low.max(0.0)
    } else {
        ci_low
    };
    Some(Describe {
        n,
        mean: m,
        median: median_of(&v),
        sd,
        cv: if m != 0.0 { sd / m.abs() } else { f64::NAN },
        ci_low,
        ci_high,
        method,
        label: None,
    })
}

/// A trend of a figure over the order its runs were made in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Least-squares change per run, as a fraction of the mean (0.01 = 1% per run).
    pub slope_per_run: f64,
    pub p_value: f64,
    /// The slope is significant at 5%.
    pub drifting: bool,
}

/// Drift of `values` taken in this order (at least 4 values).
pub fn drift(values: &[f64]) -> Option<Drift> {
    let n = values.len();
    if n < 4 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let xm = (n - 1) as f64 / 2.0;
    let ym = mean(values);
    let sxx: f64 = (0..n).map(|i| (i as f64 - xm).powi(2)).sum();
    let sxy: f64 = values
        .iter()
        .enumerate()
        .map(|(i, y)| (i as f64 - xm) * (y - ym))
        .sum();
    let slope = sxy / sxx;
    let resid: f64 = values
        .iter()
        .enumerate()
        .map(|(i, y)| (y - ym - slope * (i as f64 - xm)).powi(2))
        .sum();
    let df = (n - 2) as f64;
    let se = (resid / df / sxx).sqrt();
    let p = if se > 0.0 {
        t_p_value(slope / se, df)
    } else if slope != 0.0 {
        0.0
    } else {
        1.0
    };
    Some(Drift {
        slope_per_run: if ym != 0.0 {
            slope / ym.abs()
        } else {
            f64::NAN
        },
        p_value: p,
        drifting: p < ALPHA,
    })
}

/// The outcome of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// B is lower than A beyond the noise.
    Lower,
    /// B is higher than A beyond the noise.
    Higher,
    /// The difference is within what these repeats can tell from noise.
    NoDetectableDifference,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Lower => "lower",
            Verdict::Higher => "higher",
            Verdict::NoDetectableDifference => "no detectable difference",
        }
    }
}

/// B against A for one figure (Welch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub mean_a: f64,
    pub mean_b: f64,
    /// mean_b - mean_a, with its 95% interval.
    pub diff: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// diff / mean_a (0.05 = 5% higher).
    pub relative: f64,
    pub p_value: f64,
    /// After Benjamini-Hochberg within the figure's family; equal to `p_value` for a
    /// figure tested alone.
    pub p_adjusted: f64,
    pub verdict: Verdict,
    /// The smallest difference these repeats detect 80% of the time (absolute).
    pub detectable: f64,
    pub n_a: usize,
    pub n_b: usize,
}

fn verdict(diff: f64, p: f64) -> Verdict {
    if p < ALPHA && diff < 0.0 {
        Verdict::Lower
    } else if p < ALPHA && diff > 0.0 {
        Verdict::Higher
    } else {
        Verdict::NoDetectableDifference
    }
}

/// Compare B with A (non-finite values left out). `None` with fewer than two values
/// on either side.
pub fn compare(a: &[f64], b: &[f64]) -> Option<Difference> {
    let a: Vec<f64> = a.iter().copied().filter(|x| x.is_finite()).collect();
    let b: Vec<f64> = b.iter().copied().filter(|x| x.is_finite()).collect();
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (ma, mb) = (mean(&a), mean(&b));
    let (va, vb) = (variance(&a, ma) / na, variance(&b, mb) / nb);
    let se = (va + vb).sqrt();
    let diff = mb - ma;
    // Welch-Satterthwaite degrees of freedom (n - 1 each side when both are exact).
    let df = if va + vb > 0.0 {
        (va + vb).powi(2) / (va * va / (na - 1.0) + vb * vb / (nb - 1.0))
    } else {
        na + nb - 2.0
    };
    let p = if se > 0.0 {
        t_p_value(diff / se, df)
    } else if diff != 0.0 {
        0.0
    } else {
        1.0
    };
    let t975 = t_quantile(1.0 - ALPHA / 2.0, df);
    let half = t975 * se;
    Some(Difference {
        mean_a: ma,
        mean_b: mb,
        diff,
        ci_low: diff - half,
        ci_high: diff + half,
        relative: if ma != 0.0 { diff / ma.abs() } else { f64::NAN },
        p_value: p,
        p_adjusted: p,
        verdict: verdict(diff, p),
        detectable: (t975 + t_quantile(0.8, df)) * se,
        n_a: a.len(),
        n_b: b.len(),
    })
}

/// Compare B with A measured in pairs (`a[i]` and `b[i]` in the same round, as the
/// overhead benchmark interleaves them): a one-sample t-test of the differences, which
/// cancels what a round shares (machine load, frequency). `None` with fewer than two
/// complete pairs.
pub fn compare_paired(a: &[f64], b: &[f64]) -> Option<Difference> {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x, y))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if pairs.len() < 2 {
        return None;
    }
    let n = pairs.len() as f64;
    let d: Vec<f64> = pairs.iter().map(|(x, y)| y - x).collect();
    let md = mean(&d);
    let se = (variance(&d, md) / n).sqrt();
    let df = n - 1.0;
    let p = if se > 0.0 {
        t_p_value(md / se, df)
    } else if md != 0.0 {
        0.0
    } else {
        1.0
    };
    let ma = pairs.iter().map(|p| p.0).sum::<f64>() / n;
    let mb = pairs.iter().map(|p| p.1).sum::<f64>() / n;
    let t975 = t_quantile(1.0 - ALPHA / 2.0, df);
    Some(Difference {
        mean_a: ma,
        mean_b: mb,
        diff: md,
        ci_low: md - t975 * se,
        ci_high: md + t975 * se,
        relative: if ma != 0.0 { md / ma.abs() } else { f64::NAN },
        p_value: p,
        p_adjusted: p,
        verdict: verdict(md, p),
        detectable: (t975 + t_quantile(0.8, df)) * se,
        n_a: pairs.len(),
        n_b: pairs.len(),
    })
}

/// Benjamini-Hochberg adjusted p-values (same order as `p`): rejecting where the
/// adjusted value is below q keeps the expected share of false discoveries at q.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adj = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        let v = (p[i] * m as f64 / (rank + 1) as f64).min(1.0);
        running = running.min(v);
        adj[i] = running;
    }
    adj
}

/// Apply Benjamini-Hochberg across a family of comparisons (every layer, or every
/// layer x component cell): adjusted p-values and verdicts are updated in place.
pub fn adjust_family(family: &mut [Difference]) {
    let p: Vec<f64> = family.iter().map(|d| d.p_value).collect();
    for (d, q) in family.iter_mut().zip(benjamini_hochberg(&p)) {
        d.p_adjusted = q;
        d.verdict = verdict(d.diff, q);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_of_figures_that_cannot_be_negative_stop_at_zero() {
        // Two runs: t(0.975, 1) = 12.7, so mean - half is far below zero.
        let d = describe(&[0.1, 1.9]).unwrap();
        assert_eq!(d.ci_low, 0.0, "{d:?}");
        assert!(d.ci_high > 1.9);
        // Values that can be negative keep their interval.
        let d = describe(&[-0.1, 1.9]).unwrap();
        assert!(d.ci_low < -1.0, "{d:?}");
    }

    #[test]
    fn known_values() {
        // t(0.975, 9) = 2.262157, from tables.
        assert!((t_quantile(0.975, 9.0) - 2.262_157).abs() < 1e-5);
        let d = describe(&[10.0, 12.0, 11.0, 13.0, 9.0]).unwrap();
        assert_eq!(d.mean, 11.0);
        assert_eq!(d.median, 11.0);
        assert!((d.sd - 1.581_139).abs() < 1e-6);
        // 11 +- 2.776445 * 1.581139 / sqrt(5)
        assert!((d.ci_high - 12.963_243).abs() < 1e-5, "{d:?}");
        assert_eq!(d.method, IntervalMethod::StudentT);
        let one = describe(&[3.0]).unwrap();
        assert_eq!(
            (one.ci_low, one.ci_high, one.method),
            (3.0, 3.0, IntervalMethod::None)
        );
        assert!(describe(&[f64::NAN]).is_none());
        // BH: the example of Benjamini & Hochberg's procedure, by hand.
        // Paired: differences 1, 2, 3 -> mean 2, sd 1, t(0.975, 2) = 4.302653.
        let d = compare_paired(&[10.0, 10.0, 10.0], &[11.0, 12.0, 13.0]).unwrap();
        assert_eq!(d.diff, 2.0);
        assert!(
            (d.ci_high - (2.0 + 4.302_653 / 3f64.sqrt())).abs() < 1e-5,
            "{d:?}"
        );
        // The interval (-0.48 .. 4.48) holds zero: three pairs cannot tell.
        assert_eq!(d.verdict, Verdict::NoDetectableDifference);
        // Sorted 0.01, 0.03, 0.04, 0.2 -> 0.04, 0.06, 0.0533, 0.2, then the running
        // minimum from the largest: 0.04, 0.0533, 0.0533, 0.2.
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.2]);
        let want = [0.04, 0.16 / 3.0, 0.16 / 3.0, 0.2];
        for (got, want) in q.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{q:?}");
        }
    }
}
