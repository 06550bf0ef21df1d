//! eprof-probes: the built-in metric probes, registered through inventory.
//!
//! Each computes its metrics in one pass over the host f32 buffer of the tensor it is
//! shown (viewed in place for contiguous CPU tensors): statistics as candle tensor ops
//! cost ~8 us per probe, one pass over the buffer ~1.3 us. `activation` and
//! `kill_ratio` need only the tensor's [`Moments`], which a session computes itself as
//! the tensor is shown; their metrics are made at the step's flush
//! ([`Probe::moment_metrics`]).
//!
//! `activation` runs from `module` depth (the layer and component metrics module depth
//! records), the others at `deep` (the attention and MLP metrics deep adds); `--probe
//! NAME` runs one at module depth too, `--no-probes` none.
//!
//! | probe | sees | metrics |
//! |---|---|---|
//! | `activation` | every component's output | mean, std, max (of \|x\|), sparsity (\|x\| < threshold) |
//! | `attention` | softmax output (deep) | entropy (nats, mean over rows), max_weight, sparsity |
//! | `kill_ratio` | the MLP activation `act` | kill_ratio: share of \|x\| < threshold |
//! | `variance_ratio` | norm input and output (deep) | variance_ratio: var(out) / var(in) |

#![forbid(unsafe_code)]

use eprof_core::probe::{At, MomentMetrics, Moments, ProbeOptions};
use eprof_core::{MetricSink, Probe, ProbeRegistration, Result, TensorKind, TensorView};
use eprof_format::{Component, Depth, SiteDef};

/// Call from a binary so the linker keeps this crate's registrations.
pub fn link() {}

/// Mean, standard deviation, max |x| and share of |x| below a threshold, in one pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub mean: f64,
    pub std: f64,
    pub max_abs: f64,
    pub sparsity: f64,
}

impl From<&Moments> for Stats {
    fn from(m: &Moments) -> Stats {
        Stats {
            mean: m.mean(),
            std: m.std(),
            max_abs: f64::from(m.max_abs),
            sparsity: m.sparsity(),
        }
    }
}

/// [`Stats`] of `x` (through [`Moments::of`], the session's one pass).
pub fn stats(x: &[f32], threshold: f32) -> Stats {
    Stats::from(&Moments::of(x, threshold))
}

/// The `activation` probe's metrics, in the order it makes them.
const ACTIVATION_METRICS: [&str; 4] = ["mean", "std", "max", "sparsity"];

pub struct Activation {
    threshold: f32,
}

impl Probe for Activation {
    fn name(&self) -> &str {
        "activation"
    }
    fn kinds(&self) -> u8 {
        TensorKind::Output.bit()
    }
    fn wants(&self, site: &SiteDef, kind: TensorKind) -> bool {
        kind == TensorKind::Output && site.is_component()
    }
    fn observe(
        &mut self,
        _: &SiteDef,
        _: At,
        _: TensorKind,
        t: TensorView<'_>,
        out: &mut dyn MetricSink,
    ) -> Result<()> {
        let mut v = [0.0; ACTIVATION_METRICS.len()];
        self.moment_values(&Moments::of(t.data, self.threshold), &mut v)?;
        for (name, v) in ACTIVATION_METRICS.iter().zip(v) {
            out.emit(name, v);
        }
        Ok(())
    }
    /// A session computes the moments as each output is shown and asks for the
    /// metrics at the step's flush ([`Probe::moment_metrics`]).
    fn moment_metrics(&self) -> Option<MomentMetrics> {
        Some(MomentMetrics {
            threshold: self.threshold,
            names: ACTIVATION_METRICS.iter().map(|n| n.to_string()).collect(),
        })
    }
    fn moment_values(&mut self, m: &Moments, out: &mut [f32]) -> Result<()> {
        let s = Stats::from(m);
        out.copy_from_slice(&[
            s.mean as f32,
            s.std as f32,
            s.max_abs as f32,
            s.sparsity as f32,
        ]);
        Ok(())
    }
}

pub struct Attention {
    threshold: f32,
}

impl Probe for Attention {
    fn name(&self) -> &str {
        "attention"
    }
    fn kinds(&self) -> u8 {
        TensorKind::AttentionWeights.bit()
    }
    fn observe(
        &mut self,
        _: &SiteDef,
        _: At,
        _: TensorKind,
        t: TensorView<'_>,
        out: &mut dyn MetricSink,
    ) -> Result<()> {
        let row = t.shape.last().copied().unwrap_or(0).max(1);
        let rows = t.data.len() / row;
        let (mut entropy, mut max, mut small) = (0.0f64, 0.0f32, 0usize);
        for r in t.data.chunks_exact(row) {
            for &p in r {
                if p > 0.0 {
                    entropy -= f64::from(p) * f64::from(p).ln();
                }
                max = max.max(p);
                small += usize::from(p < self.threshold);
            }
        }
        out.emit("entropy", (entropy / rows.max(1) as f64) as f32);
        out.emit("max_weight", max);
        out.emit(
            "sparsity",
            (small as f64 / t.data.len().max(1) as f64) as f32,
        );
        Ok(())
    }
}

pub struct KillRatio {
    threshold: f32,
}

impl Probe for KillRatio {
    fn name(&self) -> &str {
        "kill_ratio"
    }
    fn kinds(&self) -> u8 {
        TensorKind::Output.bit()
    }
    fn wants(&self, site: &SiteDef, kind: TensorKind) -> bool {
        kind == TensorKind::Output && site.is(Component::Act) && site.op.is_none()
    }
    fn observe(
        &mut self,
        _: &SiteDef,
        _: At,
        _: TensorKind,
        t: TensorView<'_>,
        out: &mut dyn MetricSink,
    ) -> Result<()> {
        let mut v = [0.0];
        self.moment_values(&Moments::of(t.data, self.threshold), &mut v)?;
        out.emit("kill_ratio", v[0]);
        Ok(())
    }
    /// The share under the threshold is a moment: the session computes it as the
    /// activation is shown ([`Probe::moment_metrics`]).
    fn moment_metrics(&self) -> Option<MomentMetrics> {
        Some(MomentMetrics {
            threshold: self.threshold,
            names: vec!["kill_ratio".into()],
        })
    }
    fn moment_values(&mut self, m: &Moments, out: &mut [f32]) -> Result<()> {
        out[0] = m.sparsity() as f32;
        Ok(())
    }
}

/// Remembers a norm's input variance until its output arrives.
pub struct VarianceRatio {
    input_var: Option<f64>,
}

fn variance(x: &[f32]) -> f64 {
    let s = stats(x, 0.0);
    s.std * s.std
}

impl Probe for VarianceRatio {
    fn name(&self) -> &str {
        "variance_ratio"
    }
    fn kinds(&self) -> u8 {
        TensorKind::NormInput.bit() | TensorKind::Output.bit()
    }
    fn wants(&self, site: &SiteDef, kind: TensorKind) -> bool {
        site.component.ends_with("layernorm") && self.kinds() & kind.bit() != 0
    }
    fn observe(
        &mut self,
        _: &SiteDef,
        _: At,
        kind: TensorKind,
        t: TensorView<'_>,
        out: &mut dyn MetricSink,
    ) -> Result<()> {
        match kind {
            TensorKind::NormInput => self.input_var = Some(variance(t.data)),
            _ => {
                if let Some(vin) = self.input_var.take() {
                    let vout = variance(t.data);
                    out.emit(
                        "variance_ratio",
                        if vin > 0.0 {
                            (vout / vin) as f32
                        } else {
                            f32::NAN
                        },
                    );
                }
            }
        }
        Ok(())
    }
}

inventory::submit! {
    ProbeRegistration {
        name: "activation",
        summary: "per component output: mean, std, max |x|, sparsity",
        // Module depth: each layer's and component's activation mean, std, max and
        // sparsity are the layer and component metrics module depth records. On 360
        // tensors a SmolLM2 token it costs about 1.3% of decode speed (docs/performance.md,
        // the overhead benchmark); `--no-probes` records timing alone.
        min_depth: Depth::Module,
        create: |o: &ProbeOptions| Box::new(Activation { threshold: o.sparsity_threshold }),
        origin: module_path!(),
    }
}
inventory::submit! {
    ProbeRegistration {
        name: "attention",
        summary: "attention weights: entropy, max weight, sparsity",
        min_depth: Depth::Deep,
        create: |o: &ProbeOptions| Box::new(Attention { threshold: o.sparsity_threshold }),
        origin: module_path!(),
    }
}
inventory::submit! {
    ProbeRegistration {
        name: "kill_ratio",
        summary: "MLP activation: share of near-zero values",
        min_depth: Depth::Deep,
        create: |o: &ProbeOptions| Box::new(KillRatio { threshold: o.sparsity_threshold }),
        origin: module_path!(),
    }
}
inventory::submit! {
    ProbeRegistration {
        name: "variance_ratio",
        summary: "RMSNorm: output variance / input variance",
        min_depth: Depth::Deep,
        create: |_: &ProbeOptions| Box::new(VarianceRatio { input_var: None }),
        origin: module_path!(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_stats() {
        let s = stats(&[1.0, -1.0, 0.001, 3.0], 0.01);
        assert!((s.mean - 0.75025).abs() < 1e-9);
        assert_eq!(s.max_abs, 3.0);
        assert_eq!(s.sparsity, 0.25);
        let var = (1.0 + 1.0 + 0.000001 + 9.0) / 4.0 - 0.75025f64 * 0.75025;
        assert!((s.std - var.sqrt()).abs() < 1e-9);
    }

    /// Collects what a probe emits.
    struct Emitted(Vec<(String, f32)>);

    impl MetricSink for Emitted {
        fn emit(&mut self, metric: &str, value: f32) {
            self.0.push((metric.to_string(), value));
        }
    }

    #[test]
    fn moments_probes_emit_through_observe_what_they_make_from_moments() {
        let x: Vec<f32> = (0..37).map(|i| (i as f32 - 18.0) * 0.05).collect();
        let site = SiteDef {
            layer: Some(0),
            component: "act".into(),
            op: None,
        };
        let at = At {
            phase: eprof_format::Phase::Decode,
            step: 1,
        };
        let view = TensorView {
            data: &x,
            shape: &[1, 37],
        };
        let small = x.iter().filter(|v| v.abs() < 0.2).count() as f64 / 37.0;
        let mut k = KillRatio { threshold: 0.2 };
        let mut out = Emitted(Vec::new());
        k.observe(&site, at, TensorKind::Output, view, &mut out)
            .unwrap();
        assert_eq!(out.0, vec![("kill_ratio".to_string(), small as f32)]);
        let mut a = Activation { threshold: 0.2 };
        let mut out = Emitted(Vec::new());
        a.observe(&site, at, TensorKind::Output, view, &mut out)
            .unwrap();
        let names: Vec<&str> = out.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ACTIVATION_METRICS);
        let m = Moments::of(&x, 0.2);
        let mut v = [0.0; 4];
        a.moment_values(&m, &mut v).unwrap();
        assert_eq!(out.0.iter().map(|(_, v)| *v).collect::<Vec<_>>(), v);
        assert_eq!(v[3], small as f32);
        assert_eq!(v[2], x.iter().fold(0.0f32, |m, v| m.max(v.abs())));
    }

    #[test]
    fn vectorised_stats_match_a_plain_f64_pass() {
        let x: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 4.0)
            .collect();
        let s = stats(&x, 0.05);
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = x
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!((s.mean - mean).abs() < 1e-5, "{} vs {mean}", s.mean);
        assert!((s.std - var.sqrt()).abs() < 1e-4);
        assert_eq!(s.max_abs, f64::from(5.99f32));
        let small = x.iter().filter(|v| v.abs() < 0.05).count() as f64 / n;
        assert_eq!(s.sparsity, small);
    }
}
