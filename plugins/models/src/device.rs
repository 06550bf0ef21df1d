//! What a device adds to the decoder: how its spans are timed.
//!
//! On a CUDA device, spans are timed with CUDA events recorded on the stream the
//! model's kernels run on (see [`eprof_core::stream_clock`]): the step's end is the one
//! synchronization. The CPU times spans with the host clock. Metal has no event
//! timing in candle yet: the session then asks the model to synchronize around each
//! span (correct times, serialized GPU).

use candle_core::Device;
use eprof_core::{Result, StreamClock};

/// The stream clock of `dev`, if it has one.
pub fn stream_clock(dev: &Device) -> Result<Option<Box<dyn StreamClock>>> {
    match dev {
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => Ok(Some(Box::new(cuda::CudaClock::new(d)?))),
        _ => Ok(None),
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use std::sync::Arc;

    use candle_core::cuda_backend::cudarc::driver::{CudaEvent, CudaStream, sys};
    use eprof_core::{Error, Result, StreamClock};

    fn err(what: &str, e: impl std::fmt::Debug) -> Error {
        Error::Config(format!("CUDA event timing: {what}: {e:?}"))
    }

    /// CUDA events on the model's stream, from a pool that grows to the largest step
    /// and is reused (creating an event costs a driver call; recording one is a
    /// launch-sized enqueue).
    pub struct CudaClock {
        stream: Arc<CudaStream>,
        pool: Vec<CudaEvent>,
        used: usize,
    }

    impl CudaClock {
        pub fn new(dev: &candle_core::CudaDevice) -> Result<Self> {
            Ok(CudaClock {
                stream: dev.cuda_stream(),
                pool: Vec::with_capacity(1024),
                used: 0,
            })
        }
    }

    impl StreamClock for CudaClock {
        fn synchronize(&mut self) -> Result<()> {
            self.stream.synchronize().map_err(|e| err("synchronize", e))
        }

        fn mark(&mut self) -> Result<()> {
            if self.used == self.pool.len() {
                // Timing events (the default flags; cudarc's own default disables timing).
                let e = self
                    .stream
                    .context()
                    .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
                    .map_err(|e| err("create an event", e))?;
                self.pool.push(e);
            }
            self.pool[self.used]
                .record(&self.stream)
                .map_err(|e| err("record an event", e))?;
            self.used += 1;
            Ok(())
        }

        fn resolve(&mut self, out: &mut Vec<u64>) -> Result<()> {
            self.stream
                .synchronize()
                .map_err(|e| err("synchronize", e))?;
            let used = std::mem::take(&mut self.used);
            let Some(first) = self.pool.first() else {
                return Ok(());
            };
            for e in &self.pool[..used] {
                let ms = first.elapsed_ms(e).map_err(|e| err("read an event", e))?;
                out.push((f64::from(ms.max(0.0)) * 1e6).round() as u64);
            }
            Ok(())
        }
    }
}
