//! Span timing on a device that runs work asynchronously (a CUDA stream).
//!
//! On a GPU, a host clock read around a component measures the *launch* of its
//! kernels, not their execution; synchronizing the device around every span makes the
//! time right but serializes the GPU, launch by launch. Instead, a model marks the
//! stream (a CUDA event) at each span boundary, the marks are queued in stream order
//! with the work, and the step's end resolves them all at once: one device
//! synchronization per step, then every mark's time is read and mapped onto the
//! session clock.
//!
//! Mapping: at the start of a step the device is synchronized (its queue is empty:
//! the previous step's logits were read back) and an anchor mark is recorded at host
//! time `h0`. A mark that ran `d` ns after the anchor on the device happened at
//! `h0 + d` on the session clock. The anchor's own latency (a few µs of launch) is the
//! error of that mapping; the durations of spans are exact to the event's resolution
//! (about 0.5 µs on NVIDIA GPUs).
//!
//! [`StreamClock`] is what a device provides (CUDA events in `eprof-models`, a host
//! clock in tests); [`EventSpans`] is the queue of pending spans and sections and their
//! resolution, device-independent and tested without a GPU.

use crate::error::Result;
use crate::recorder::{Recorder, SiteId};

/// Timestamps in a device's stream order.
pub trait StreamClock: Send {
    /// Wait until the device has finished all work queued so far.
    fn synchronize(&mut self) -> Result<()>;
    /// Queue a timestamp after the work queued so far. Marks are numbered from 0 in the
    /// order they are made, and start again at 0 after [`StreamClock::resolve`].
    fn mark(&mut self) -> Result<()>;
    /// Wait for the device, then append to `out`, for each mark since the last resolve,
    /// the nanoseconds from mark 0 to it on the device. Forgets the marks.
    fn resolve(&mut self, out: &mut Vec<u64>) -> Result<()>;
}

/// What a pending interval becomes once resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Span(SiteId),
    Section(&'static str),
}

/// Spans and sections of one step whose ends are stream marks, resolved at the step's
/// end. Buffers are reused from step to step: no allocation once warm.
pub struct EventSpans {
    clock: Box<dyn StreamClock>,
    anchor_ns: u64,
    marks: u32,
    pending: Vec<(Target, u32, u32)>,
    times: Vec<u64>,
    open: bool,
}

impl std::fmt::Debug for EventSpans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSpans")
            .field("marks", &self.marks)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl EventSpans {
    pub fn new(clock: Box<dyn StreamClock>) -> Self {
        EventSpans {
            clock,
            anchor_ns: 0,
            marks: 0,
            pending: Vec::with_capacity(1024),
            times: Vec::with_capacity(2048),
            open: false,
        }
    }

    /// Start a step: synchronize the device, then anchor mark 0 at `host_now_ns`
    /// (read right after the synchronization).
    pub fn begin(&mut self, rec: &dyn Recorder) -> Result<()> {
        if self.open {
            // The last step failed before its end: forget its marks.
            self.clock.resolve(&mut self.times)?;
            self.times.clear();
        }
        self.clock.synchronize()?;
        self.anchor_ns = rec.now();
        self.pending.clear();
        self.marks = 0;
        self.clock.mark()?;
        self.marks = 1;
        self.open = true;
        Ok(())
    }

    /// Queue a mark; its number stands for its time until the step is resolved.
    #[inline]
    pub fn mark(&mut self) -> Result<u64> {
        self.clock.mark()?;
        self.marks += 1;
        Ok(u64::from(self.marks - 1))
    }

    /// A span of `site` between two marks.
    #[inline]
    pub fn span(&mut self, site: SiteId, start_mark: u64, end_mark: u64) {
        self.pending
            .push((Target::Span(site), start_mark as u32, end_mark as u32));
    }

    /// A model-level section between two marks.
    #[inline]
    pub fn section(&mut self, name: &'static str, start_mark: u64, end_mark: u64) {
        self.pending
            .push((Target::Section(name), start_mark as u32, end_mark as u32));
    }

    /// End the step: synchronize once, read every mark, and hand the spans and
    /// sections to `rec` on its clock, in the order they were queued.
    pub fn finish(&mut self, rec: &mut dyn Recorder) -> Result<()> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        self.times.clear();
        self.clock.resolve(&mut self.times)?;
        if self.times.len() != self.marks as usize {
            return Err(crate::Error::Config(format!(
                "the device resolved {} of {} timing marks",
                self.times.len(),
                self.marks
            )));
        }
        let at = |m: u32| self.anchor_ns + self.times[m as usize];
        for &(target, s, e) in &self.pending {
            let (s, e) = (at(s), at(e).max(at(s)));
            match target {
                Target::Span(site) => rec.span(site, s, e),
                Target::Section(name) => rec.section(name, s, e),
            }
        }
        self.pending.clear();
        self.marks = 0;
        Ok(())
    }
}

/// A [`StreamClock`] for a device that runs work as it is issued (the CPU): a mark is
/// the host clock at the time it is made. It lets the event path run, and be tested,
/// where there is no GPU.
#[derive(Debug, Clone)]
pub struct HostStreamClock {
    clock: crate::Clock,
    marks: Vec<u64>,
}

impl HostStreamClock {
    pub fn new(clock: crate::Clock) -> Self {
        HostStreamClock {
            clock,
            marks: Vec::new(),
        }
    }
}

impl StreamClock for HostStreamClock {
    fn synchronize(&mut self) -> Result<()> {
        Ok(())
    }
    fn mark(&mut self) -> Result<()> {
        self.marks.push(self.clock.now());
        Ok(())
    }
    fn resolve(&mut self, out: &mut Vec<u64>) -> Result<()> {
        let first = self.marks.first().copied().unwrap_or(0);
        out.extend(self.marks.iter().map(|t| t - first));
        self.marks.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::TensorKind;
    use candle_core::Tensor;
    use eprof_format::Depth;
    use std::sync::{Arc, Mutex};

    /// A device whose marks complete at scripted times, and which counts its
    /// synchronizations.
    struct Scripted {
        device_ns: Vec<u64>,
        queued: usize,
        syncs: Arc<Mutex<u32>>,
    }

    impl StreamClock for Scripted {
        fn synchronize(&mut self) -> Result<()> {
            *self.syncs.lock().unwrap() += 1;
            Ok(())
        }
        fn mark(&mut self) -> Result<()> {
            self.queued += 1;
            Ok(())
        }
        fn resolve(&mut self, out: &mut Vec<u64>) -> Result<()> {
            *self.syncs.lock().unwrap() += 1;
            let t0 = self.device_ns[0];
            out.extend(self.device_ns[..self.queued].iter().map(|t| t - t0));
            self.device_ns.drain(..self.queued);
            self.queued = 0;
            Ok(())
        }
    }

    #[derive(Default)]
    struct Collect {
        now: u64,
        spans: Vec<(SiteId, u64, u64)>,
        sections: Vec<(&'static str, u64, u64)>,
    }

    impl Recorder for Collect {
        fn depth(&self) -> Depth {
            Depth::Module
        }
        fn now(&self) -> u64 {
            self.now
        }
        fn span(&mut self, site: SiteId, s: u64, e: u64) {
            self.spans.push((site, s, e));
        }
        fn wants(&self, _: SiteId, _: TensorKind) -> bool {
            false
        }
        fn observe(&mut self, _: SiteId, _: TensorKind, _: &Tensor) -> Result<()> {
            Ok(())
        }
        fn value(&mut self, _: SiteId, _: &'static str, _: &'static str, _: f32) {}
        fn section(&mut self, name: &'static str, s: u64, e: u64) {
            self.sections.push((name, s, e));
        }
    }

    #[test]
    fn marks_resolve_onto_the_session_clock_with_one_sync_per_step() {
        let syncs = Arc::new(Mutex::new(0));
        // Device times (ns on the GPU's own clock) of the anchor and four marks, then a
        // second step's anchor and two marks.
        let dev = vec![
            5_000, 5_100, 7_100, 7_150, 9_000, //
            50_000, 50_400, 51_000,
        ];
        let mut ev = EventSpans::new(Box::new(Scripted {
            device_ns: dev,
            queued: 0,
            syncs: syncs.clone(),
        }));
        let mut rec = Collect {
            now: 1_000_000,
            ..Default::default()
        };
        ev.begin(&rec).unwrap();
        let a = ev.mark().unwrap(); // 5_100
        let b = ev.mark().unwrap(); // 7_100
        ev.span(7, a, b);
        let c = ev.mark().unwrap(); // 7_150
        let d = ev.mark().unwrap(); // 9_000
        ev.span(8, c, d);
        ev.section("layers", a, d);
        assert!(
            rec.spans.is_empty(),
            "nothing is handed over before the step ends"
        );
        ev.finish(&mut rec).unwrap();
        assert_eq!(
            rec.spans,
            vec![(7, 1_000_100, 1_002_100), (8, 1_002_150, 1_004_000)]
        );
        assert_eq!(rec.sections, vec![("layers", 1_000_100, 1_004_000)]);
        assert_eq!(
            *syncs.lock().unwrap(),
            2,
            "one sync to anchor, one to resolve"
        );

        // The next step anchors again at its own host time.
        rec.now = 2_000_000;
        ev.begin(&rec).unwrap();
        let a = ev.mark().unwrap();
        let b = ev.mark().unwrap();
        ev.span(9, a, b);
        ev.finish(&mut rec).unwrap();
        assert_eq!(rec.spans[2], (9, 2_000_400, 2_001_000));
        assert_eq!(*syncs.lock().unwrap(), 4);
        // Finishing a step that was not begun hands over nothing.
        ev.finish(&mut rec).unwrap();
        assert_eq!(rec.spans.len(), 3);
    }

    #[test]
    fn a_step_that_failed_midway_leaves_nothing_for_the_next() {
        let clock = crate::Clock::start();
        let mut ev = EventSpans::new(Box::new(HostStreamClock::new(clock)));
        let mut rec = Collect {
            now: clock.now(),
            ..Default::default()
        };
        ev.begin(&rec).unwrap();
        let a = ev.mark().unwrap();
        let b = ev.mark().unwrap();
        ev.span(1, a, b);
        // No finish: the forward pass failed. The next step starts clean.
        ev.begin(&rec).unwrap();
        let a = ev.mark().unwrap();
        let b = ev.mark().unwrap();
        ev.span(2, a, b);
        ev.finish(&mut rec).unwrap();
        let sites: Vec<SiteId> = rec.spans.iter().map(|s| s.0).collect();
        assert_eq!(sites, [2]);
    }

    #[test]
    fn a_device_that_loses_marks_is_an_error_not_wrong_spans() {
        struct Lossy;
        impl StreamClock for Lossy {
            fn synchronize(&mut self) -> Result<()> {
                Ok(())
            }
            fn mark(&mut self) -> Result<()> {
                Ok(())
            }
            fn resolve(&mut self, out: &mut Vec<u64>) -> Result<()> {
                out.push(0);
                Ok(())
            }
        }
        let mut ev = EventSpans::new(Box::new(Lossy));
        let mut rec = Collect::default();
        ev.begin(&rec).unwrap();
        let a = ev.mark().unwrap();
        let b = ev.mark().unwrap();
        ev.span(1, a, b);
        let e = ev.finish(&mut rec).unwrap_err();
        assert!(e.to_string().contains("resolved 1 of 3"), "{e}");
        assert!(rec.spans.is_empty());
    }

    #[test]
    fn the_host_clock_resolves_to_its_own_readings() {
        let clock = crate::Clock::start();
        let mut ev = EventSpans::new(Box::new(HostStreamClock::new(clock)));
        let mut rec = Collect {
            now: clock.now(),
            ..Default::default()
        };
        ev.begin(&rec).unwrap();
        let a = ev.mark().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = ev.mark().unwrap();
        ev.span(3, a, b);
        ev.finish(&mut rec).unwrap();
        let (_, s, e) = rec.spans[0];
        assert!(e - s >= 2_000_000, "{s}..{e}");
        assert!(e <= clock.now());
    }
}
