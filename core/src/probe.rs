//! Probes compute metrics from tensors at hook sites (ARCHITECTURE §2).

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
    let data = t
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    Ok(f(TensorView { data: &data, shape }))
}
