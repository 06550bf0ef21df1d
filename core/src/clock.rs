//! The run's one monotonic clock: nanoseconds since the session started.

use std::time::Instant;

/// A monotonic clock shared by the session, its sampler thread and the power sources,
/// so that every timestamp in a trace is on the same time line.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds since the clock started.
    #[inline]
    pub fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::start()
    }
}
