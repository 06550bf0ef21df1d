//! The instrumentation the decoder's forward pass reports through: spans, sections,
//! tensors for probes, FLOPs, timed on the host or by a device's stream clock.

use candle_core::{Device, Tensor};
use eprof_core::recorder::{Recorder, SiteId};
use eprof_core::{EventSpans, Result, TensorKind, TensorView};

use super::linear::Linear;

/// What the forward pass records, decided once per call.
pub(super) struct Instr<'a> {
    pub(super) rec: &'a mut dyn Recorder,
    pub(super) on: bool,
    pub(super) deep: bool,
    /// Synchronize the device around each span (a GPU without stream events).
    pub(super) sync: Option<&'a Device>,
    /// Time spans with stream marks resolved at the step's end (CUDA): span
    /// boundaries are then mark numbers, not times, until [`EventSpans::finish`].
    pub(super) events: Option<&'a mut EventSpans>,
}

impl Instr<'_> {
    #[inline]
    pub(super) fn start(&mut self) -> candle_core::Result<u64> {
        if !self.on {
            return Ok(0);
        }
        if let Some(ev) = self.events.as_deref_mut() {
            return ev.mark().map_err(candle_core::Error::wrap);
        }
        if let Some(d) = self.sync {
            d.synchronize()?;
        }
        Ok(self.rec.now())
    }

    #[inline]
    pub(super) fn end(&mut self, site: SiteId, start: u64) -> candle_core::Result<u64> {
        if !self.on {
            return Ok(0);
        }
        if let Some(ev) = self.events.as_deref_mut() {
            let e = ev.mark().map_err(candle_core::Error::wrap)?;
            ev.span(site, start, e);
            return Ok(e);
        }
        if let Some(d) = self.sync {
            d.synchronize()?;
        }
        let e = self.rec.now();
        self.rec.span(site, start, e);
        Ok(e)
    }

    /// A model-level section between two boundaries that [`Instr::start`] or
    /// [`Instr::end`] returned.
    #[inline]
    pub(super) fn section(&mut self, name: &'static str, start: u64, end: u64) {
        if !self.on {
            return;
        }
        match self.events.as_deref_mut() {
            Some(ev) => ev.section(name, start, end),
            None => self.rec.section(name, start, end),
        }
    }

    #[inline]
    pub(super) fn observe(&mut self, site: SiteId, kind: TensorKind, t: &Tensor) -> Result<()> {
        if self.on && self.rec.wants(site, kind) {
            self.rec.observe(site, kind, t)?;
        }
        Ok(())
    }

    #[inline]
    pub(super) fn flops(&mut self, site: SiteId, f: f32) {
        if self.deep {
            self.rec.value(site, "model", "flops", f);
        }
    }

    /// Whether a probe wants to see `kind` at `site` (so it is worth building).
    #[inline]
    pub(super) fn wants(&self, site: SiteId, kind: TensorKind) -> bool {
        self.on && self.rec.wants(site, kind)
    }

    /// `f`, timed as `site` when recording.
    #[inline]
    pub(super) fn timed<T>(
        &mut self,
        site: SiteId,
        f: impl FnOnce() -> candle_core::Result<T>,
    ) -> Result<T> {
        let t = self.start()?;
        let y = f()?;
        self.end(site, t)?;
        Ok(y)
    }

    /// A component: `f` timed as `site`, its output shown to the probes that want it.
    #[inline]
    pub(super) fn component(
        &mut self,
        site: SiteId,
        f: impl FnOnce() -> candle_core::Result<Tensor>,
    ) -> Result<Tensor> {
        let y = self.timed(site, f)?;
        self.observe(site, TensorKind::Output, &y)?;
        Ok(y)
    }

    /// A projection as its component. eprof's kernels' output is shown to the probes
    /// as the buffer it is before it becomes a tensor (see [`Recorder::observe_view`]).
    pub(super) fn projection(&mut self, site: SiteId, lin: &Linear, x: &Tensor) -> Result<Tensor> {
        match lin.blocks() {
            Some(m) if self.wants(site, TensorKind::Output) => {
                let y = self.timed(site, || m.forward_host(x))?;
                self.rec.observe_view(
                    site,
                    TensorKind::Output,
                    TensorView {
                        data: &y.data,
                        shape: &y.shape,
                    },
                )?;
                Ok(y.into_tensor(x.device())?)
            }
            _ => self.component(site, || lin.forward(x)),
        }
    }

    /// An operation inside a component: timed, with its FLOPs, at deep depth only.
    #[inline]
    pub(super) fn op<T>(
        &mut self,
        site: SiteId,
        flops: Option<f32>,
        f: impl FnOnce() -> candle_core::Result<T>,
    ) -> Result<T> {
        if !self.deep {
            return Ok(f()?);
        }
        let y = self.timed(site, f)?;
        if let Some(n) = flops {
            self.flops(site, n);
        }
        Ok(y)
    }
}
