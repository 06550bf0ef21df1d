//! An eprof probe plugin: outliers in the residual stream.
//!
//! A few huge activations ("massive activations") in the residual stream are typical
//! of trained transformers and matter for quantization. For each layer's output this
//! probe reports how many values lie more than `k` standard deviations from the mean
//! (`outliers/count`, k = 6) and the largest |x - mean| / std (`outliers/max_ratio`).
//!
//! Build: `cargo build --release -p eprof-example-outliers`, then
//! `eprof record "..." --plugin target/release/libeprof_example_outliers.so`.

// export_plugin! exports an unmangled C symbol, which the unsafe_code lint flags.
#![allow(unsafe_code)]

use eprof_plugin_api::{Metrics, PluginProbe, Site, Tensor, export_plugin, kind};

/// Standard deviations from the mean beyond which a value counts as an outlier.
const K: f64 = 6.0;

pub struct Outliers;

impl PluginProbe for Outliers {
    const NAME: &'static str = "outliers";
    const DESCRIPTION: &'static str =
        "residual stream after each layer: values beyond 6 std, max |x-mean|/std";
    const KINDS: u32 = kind::OUTPUT;

    fn new() -> Self {
        Outliers
    }

    fn wants(&self, site: &Site<'_>, kind: u32) -> bool {
        kind == kind::OUTPUT && site.component == "layer" && site.layer.is_some()
    }

    fn observe(
        &mut self,
        _: &Site<'_>,
        _: u32,
        t: &Tensor<'_>,
        out: &mut Metrics<'_>,
    ) -> Result<(), &'static str> {
        if t.data.is_empty() {
            return Err("empty tensor");
        }
        let (count, max_ratio) = outliers(t.data, K);
        out.emit("count", count as f64);
        out.emit("max_ratio", max_ratio);
        Ok(())
    }
}

/// Values beyond `k` standard deviations, and the largest deviation in stds.
pub fn outliers(x: &[f32], k: f64) -> (usize, f64) {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = x
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let std = var.sqrt();
    if std == 0.0 {
        return (0, 0.0);
    }
    let mut count = 0;
    let mut max = 0.0f64;
    for &v in x {
        let r = (f64::from(v) - mean).abs() / std;
        count += usize::from(r > k);
        max = max.max(r);
    }
    (count, max)
}

export_plugin!(name: "outliers", version: env!("CARGO_PKG_VERSION"), probes: [Outliers]);

#[cfg(test)]
mod tests {
    #[test]
    fn one_outlier() {
        let mut x = vec![0.0f32; 999];
        x.push(1000.0);
        let (count, max) = super::outliers(&x, 6.0);
        assert_eq!(count, 1);
        assert!(max > 30.0, "{max}");
    }
}
