//! The interface instrumented models report to.
//!
//! Hot-path contract: `span` pushes three integers into a preallocated column buffer
//! (no allocation, no strings); `now` reads the monotonic clock. Site ids are the
//! indices of the model's own [`crate::InstrumentedModel::sites`], which the session
//! registers first, so models compute them arithmetically and never look names up.

use candle_core::Tensor;
use eprof_format::Depth;

use crate::error::Result;
use crate::probe::{TensorKind, TensorView};

pub type SiteId = u32;

pub trait Recorder {
    /// What to record. At `Off` a model records nothing and observes nothing.
    fn depth(&self) -> Depth;
    /// Nanoseconds on the session clock.
    fn now(&self) -> u64;
    /// A finished span of `site` in the current step.
    fn span(&mut self, site: SiteId, start_ns: u64, end_ns: u64);
    /// Whether any enabled probe wants `kind` at `site`: check before preparing a tensor.
    fn wants(&self, site: SiteId, kind: TensorKind) -> bool;
    /// Show a tensor to the probes that want it.
    fn observe(&mut self, site: SiteId, kind: TensorKind, t: &Tensor) -> Result<()>;
    /// Show a host buffer to the probes that want it: a tensor the model holds as a
    /// buffer before it becomes one (the output of eprof's own CPU kernels). The
    /// probes see what [`Recorder::observe`] would show them of that tensor, without
    /// a tensor or its storage lock. The default makes a CPU tensor of a copy.
    fn observe_view(&mut self, site: SiteId, kind: TensorKind, t: TensorView<'_>) -> Result<()> {
        let x = Tensor::from_slice(t.data, t.shape, &candle_core::Device::Cpu)?;
        self.observe(site, kind, &x)
    }
    /// A value the model computes itself, e.g. the FLOP estimate of an operation.
    fn value(&mut self, site: SiteId, probe: &'static str, metric: &'static str, v: f32);
    /// A model-level pipeline section of the current step (`embedding`, `layers`,
    /// `final_norm`, `lm_head`).
    fn section(&mut self, name: &'static str, start_ns: u64, end_ns: u64) {
        let _ = (name, start_ns, end_ns);
    }
    /// Whether models should synchronize the device around spans (GPU devices), so
    /// that a span's time is the kernel's time, not its launch.
    fn sync_device(&self) -> bool {
        false
    }
}

/// A recorder that records nothing: depth `off` without a session (benchmarks,
/// parity tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullRecorder;

impl Recorder for NullRecorder {
    fn depth(&self) -> Depth {
        Depth::Off
    }
    fn now(&self) -> u64 {
        0
    }
    fn span(&mut self, _: SiteId, _: u64, _: u64) {}
    fn wants(&self, _: SiteId, _: TensorKind) -> bool {
        false
    }
    fn observe(&mut self, _: SiteId, _: TensorKind, _: &Tensor) -> Result<()> {
        Ok(())
    }
    fn observe_view(&mut self, _: SiteId, _: TensorKind, _: TensorView<'_>) -> Result<()> {
        Ok(())
    }
    fn value(&mut self, _: SiteId, _: &'static str, _: &'static str, _: f32) {}
}
