//! Probes compute metrics from tensors at hook sites (docs/architecture.md).

use eprof_format::{Phase, SiteDef};

use crate::error::Result;

/// Which tensor a probe is shown at a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorKind {
    /// The output of a component (q_proj, act, down_proj, ...).
    Output,
    /// Attention weights after softmax, `[heads, q_len, kv_len]` (deep depth).
    AttentionWeights,
    /// A norm's input; the norm's output follows as `Output` (deep depth).
    NormInput,
}

impl TensorKind {
    pub const ALL: [TensorKind; 3] = [
        TensorKind::Output,
        TensorKind::AttentionWeights,
        TensorKind::NormInput,
    ];
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// When a tensor was seen: the pipeline phase and the step (0 is prefill).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub phase: Phase,
    pub step: u32,
}

/// A host-side f32 view of a tensor: contiguous CPU tensors are viewed in place,
/// others are copied once and the copy is shared by every probe.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    pub data: &'a [f32],
    pub shape: &'a [usize],
}

/// A tensor's values summed up in one pass: what mean, standard deviation, max |x| and
/// sparsity are computed from. A probe whose metrics need no more than this declares
/// it ([`Probe::moment_metrics`]) and the session computes the moments for it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub count: u64,
    pub sum: f64,
    pub sum_sq: f64,
    pub max_abs: f32,
    /// Values with |x| below the threshold the moments were computed with.
    pub below: u64,
}

/// Lanes of the vectorised loop of [`Moments::of`]: independent f32 accumulators the
/// compiler keeps in SIMD registers, folded into f64 every [`FOLD`] chunks so that
/// long tensors keep f64 accuracy.
const LANES: usize = 16;
const FOLD: usize = 64;

/// The sum of `l` in f64, pairwise: four levels of vector adds where a left-to-right
/// sum is a chain of sixteen dependent adds, the larger part of a short tensor's time.
#[inline(always)]
fn fold_sum(l: &[f32; LANES]) -> f64 {
    let mut h = [0.0f64; LANES / 2];
    for i in 0..LANES / 2 {
        h[i] = f64::from(l[i]) + f64::from(l[i + LANES / 2]);
    }
    let mut q = [0.0f64; LANES / 4];
    for i in 0..LANES / 4 {
        q[i] = h[i] + h[i + LANES / 4];
    }
    (q[0] + q[2]) + (q[1] + q[3])
}

/// The largest of `l` and `init`, pairwise as [`fold_sum`].
#[inline(always)]
fn fold_max(l: &[f32; LANES], init: f32) -> f32 {
    let mut h = [0.0f32; LANES / 2];
    for i in 0..LANES / 2 {
        h[i] = l[i].max(l[i + LANES / 2]);
    }
    let mut q = [0.0f32; LANES / 4];
    for i in 0..LANES / 4 {
        q[i] = h[i].max(h[i + LANES / 4]);
    }
    q[0].max(q[2]).max(q[1].max(q[3])).max(init)
}

impl Moments {
    /// The moments of `x`, `below` counting |x| < `threshold`.
    pub fn of(x: &[f32], threshold: f32) -> Moments {
        let (mut sum, mut sq) = (0.0f64, 0.0f64);
        let mut lmax = [0.0f32; LANES];
        let mut lsmall = [0u32; LANES];
        let (mut max, mut small) = (0.0f32, 0u64);
        // Blocks of FOLD chunks: f32 lane sums inside a block, f64 across blocks. Each
        // chunk is a fixed-size array and the max a plain comparison (the values are
        // absolute, so NaN-aware `f32::max` buys nothing), which lets the compiler keep
        // all four accumulators in vector registers: 2.4x faster than indexing slices.
        // The lanes are folded pairwise ([`fold_sum`]): 11-19% faster on 192 to 1,536
        // values than folding them in order.
        for block in x.chunks(LANES * FOLD) {
            let mut lsum = [0.0f32; LANES];
            let mut lsq = [0.0f32; LANES];
            let chunks = block.chunks_exact(LANES);
            let rest = chunks.remainder();
            for c in chunks {
                let c: &[f32; LANES] = c.try_into().expect("chunks_exact gives LANES values");
                for i in 0..LANES {
                    let v = c[i];
                    let a = v.abs();
                    lsum[i] += v;
                    // Not `mul_add`: the loop waits on its accumulators, and a fused
                    // multiply-add's latency made it 4-27% slower here.
                    lsq[i] += v * v;
                    lmax[i] = if a > lmax[i] { a } else { lmax[i] };
                    lsmall[i] += u32::from(a < threshold);
                }
            }
            sum += fold_sum(&lsum);
            sq += fold_sum(&lsq);
            for &v in rest {
                let f = f64::from(v);
                sum += f;
                sq += f * f;
                max = max.max(v.abs());
                small += u64::from(v.abs() < threshold);
            }
        }
        Moments {
            count: x.len() as u64,
            sum,
            sum_sq: sq,
            max_abs: fold_max(&lmax, max),
            below: small + lsmall.iter().map(|&v| u64::from(v)).sum::<u64>(),
        }
    }

    /// The mean (0 for no values).
    pub fn mean(&self) -> f64 {
        self.sum / self.count.max(1) as f64
    }

    /// The population standard deviation (0 for no values).
    pub fn std(&self) -> f64 {
        let mean = self.mean();
        (self.sum_sq / self.count.max(1) as f64 - mean * mean)
            .max(0.0)
            .sqrt()
    }

    /// The share of values below the threshold (0 for no values).
    pub fn sparsity(&self) -> f64 {
        self.below as f64 / self.count.max(1) as f64
    }
}

/// Where metrics go. Names are looked up in a short list, so emitting the same
/// metric again allocates nothing.
pub trait MetricSink {
    fn emit(&mut self, metric: &str, value: f32);
}

/// Computes metrics from tensors at hook sites.
pub trait Probe: Send {
    fn name(&self) -> &str;
    /// Bit set of [`TensorKind::bit`] this probe wants to see.
    fn kinds(&self) -> u8;
    /// Whether the probe wants `kind` at `site` (e.g. only component outputs).
    fn wants(&self, site: &SiteDef, kind: TensorKind) -> bool {
        let _ = site;
        self.kinds() & kind.bit() != 0
    }
    /// Observe one tensor; emit metrics into `out`. An error disables the probe for
    /// the rest of the run with a warning in the output and in the trace.
    fn observe(
        &mut self,
        site: &SiteDef,
        at: At,
        kind: TensorKind,
        t: TensorView<'_>,
        out: &mut dyn MetricSink,
    ) -> Result<()>;
    /// For a probe whose metrics are functions of a tensor's [`Moments`]: which
    /// metrics, and the threshold `below` counts under. A session then computes the
    /// moments itself as each tensor is shown, and calls [`Probe::moment_values`] for
    /// all of a step's observations at the step's flush, in place of
    /// [`Probe::observe`] at each tensor. A decode step streams weights between two
    /// tensors, which evicts the probe's code and state from the caches: shown a
    /// tensor, the session runs one tight loop and one push, and the metric code runs
    /// once per step, hot, with no name to look up.
    fn moment_metrics(&self) -> Option<MomentMetrics> {
        None
    }
    /// The values of [`Probe::moment_metrics`]' metrics, in its order, from one
    /// tensor's moments. An error disables the probe, as in [`Probe::observe`].
    fn moment_values(&mut self, m: &Moments, out: &mut [f32]) -> Result<()> {
        let _ = (m, out);
        Err(crate::error::Error::Probe {
            probe: self.name().to_string(),
            message: "declares moment_metrics but does not implement moment_values".into(),
        })
    }
}

/// The metrics a probe makes from a tensor's [`Moments`] ([`Probe::moment_metrics`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MomentMetrics {
    /// [`Moments::below`] counts |x| under this.
    pub threshold: f32,
    /// The metrics [`Probe::moment_values`] fills, in its order.
    pub names: Vec<String>,
}

/// Options every probe constructor receives.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// |x| below this counts as zero for sparsity metrics (default 0.01).
    pub sparsity_threshold: f32,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            sparsity_threshold: 0.01,
        }
    }
}

/// Run `f` on an f32 host view of `t`, copying only when the tensor is not a
/// contiguous f32 CPU tensor.
pub fn with_host_f32<R>(t: &candle_core::Tensor, f: impl FnOnce(TensorView<'_>) -> R) -> Result<R> {
    let shape = t.dims();
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(TensorView {
                data: &v[a..b],
                shape,
            }));
        }
    }
    let data = host_copy(t)?;
    Ok(f(TensorView { data: &data, shape }))
}

/// The copy [`with_host_f32`] makes of a tensor it cannot view in place; out of line,
/// so that the in-place path stays a few cache lines of code.
#[cold]
#[inline(never)]
fn host_copy(t: &candle_core::Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}
