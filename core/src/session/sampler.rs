//! The power sampler: a thread that reads the source at the session's interval, and
//! the readings it keeps (counters unwrapped, spacing and errors tracked).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use eprof_format::sync::lock;
use eprof_format::{PowerSample, SourceKind};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::power::{CounterUnwrap, PowerSource, Reading};

pub(super) struct SamplerState {
    pub(super) samples: Vec<PowerSample>,
    pub(super) unwrap: CounterUnwrap,
    pub(super) last_t: u64,
    pub(super) errors: u32,
    pub(super) last_error: Option<String>,
    pub(super) max_spacing: u64,
}

pub(super) struct Shared {
    pub(super) source: Mutex<Box<dyn PowerSource>>,
    pub(super) state: Mutex<SamplerState>,
    pub(super) stop: AtomicBool,
    pub(super) kind: SourceKind,
    pub(super) clock: Clock,
}

impl Shared {
    /// Take one reading and append it as a sample; returns its timestamp.
    pub(super) fn sample(&self) -> Option<u64> {
        let mut src = lock(&self.source);
        let r: Result<Reading> = src.read();
        let now = self.clock.now();
        drop(src);
        let mut st = lock(&self.state);
        match r {
            Ok(r) => {
                let t = r.t_ns.unwrap_or(now);
                let sample = match self.kind {
                    SourceKind::Counter => PowerSample {
                        t0_ns: t,
                        t1_ns: t,
                        values: st.unwrap.push(&r),
                    },
                    SourceKind::Sampler | SourceKind::Estimate => PowerSample {
                        t0_ns: r.window_ns.map_or(st.last_t, |w| t.saturating_sub(w)),
                        t1_ns: t,
                        values: r.values,
                    },
                };
                if st.last_t > 0 {
                    st.max_spacing = st.max_spacing.max(t.saturating_sub(st.last_t));
                }
                st.last_t = t;
                st.samples.push(sample);
                st.errors = 0;
                Some(t)
            }
            Err(e) => {
                st.errors += 1;
                st.last_error = Some(match e {
                    Error::Power { message, .. } => message,
                    other => other.to_string(),
                });
                None
            }
        }
    }
}

pub(super) fn sampler_loop(shared: &Shared, interval: Duration) {
    const MAX_CONSECUTIVE_ERRORS: u32 = 20;
    let mut next = shared.clock.now() + interval.as_nanos() as u64;
    while !shared.stop.load(Ordering::Acquire) {
        let now = shared.clock.now();
        if now < next {
            std::thread::park_timeout(Duration::from_nanos(next - now));
            continue;
        }
        next += interval.as_nanos() as u64;
        if next < now {
            next = now + interval.as_nanos() as u64;
        }
        shared.sample();
        if lock(&shared.state).errors >= MAX_CONSECUTIVE_ERRORS {
            return;
        }
    }
}
