//! A session end to end with the synthetic source: the trace it writes carries exact
//! energies per step for counters (with wrap-around), and conserves energy.

use std::time::Duration;

use eprof_core::power::{PowerSource, Reading};
use eprof_core::probe::{At, MetricSink, MomentMetrics, Moments, Probe, TensorKind, TensorView};
use eprof_core::recorder::Recorder;
use eprof_core::{Clock, Session, SessionConfig};
use eprof_format::*;

/// A counter source with a step waveform (5 W, then 40 W after 30 ms), wrapping at
/// `wrap` joules like a RAPL counter.
struct StepCounter {
    clock: Clock,
    origin: u64,
    wrap: f64,
    sampler: bool,
    last: u64,
}

impl StepCounter {
    /// A counter from now on that never wraps.
    fn never_wrapping(clock: Clock) -> StepCounter {
        StepCounter {
            clock,
            origin: clock.now(),
            wrap: f64::INFINITY,
            sampler: false,
            last: 0,
        }
    }
}

fn wave_j(t_ns: u64, origin: u64) -> f64 {
    let t = t_ns.saturating_sub(origin) as f64 * 1e-9;
    if t <= 0.03 {
        5.0 * t
    } else {
        0.15 + 40.0 * (t - 0.03)
    }
}

impl PowerSource for StepCounter {
    fn desc(&self) -> PowerSourceDesc {
        PowerSourceDesc {
            name: "test-step".into(),
            kind: if self.sampler {
                SourceKind::Sampler
            } else {
                SourceKind::Counter
            },
            channels: vec![Channel {
                name: "package".into(),
                kind: ChannelKind::Package,
                in_total: true,
            }],
            nominal_resolution_ns: 1000,
            details: vec![],
        }
    }
    fn read(&mut self) -> eprof_core::Result<Reading> {
        let t = self.clock.now();
        let mut r = if self.sampler {
            let w = (wave_j(t, self.origin) - wave_j(self.last, self.origin))
                / ((t - self.last) as f64 * 1e-9);
            let mut r = Reading::new(vec![Some(w)]);
            r.window_ns = Some(t - self.last);
            r
        } else {
            let mut r = Reading::new(vec![Some(wave_j(t, self.origin) % self.wrap)]);
            r.wrap_j = vec![Some(self.wrap)];
            r
        };
        r.t_ns = Some(t);
        self.last = t;
        Ok(r)
    }
}

/// A module-depth session with one site (layer 0's q_proj) writing to `out`.
fn start(out: std::path::PathBuf, src: StepCounter, interval: Duration, idle: Duration) -> Session {
    start_with(out, src, interval, idle, vec![])
}

/// [`start`] with probes.
fn start_with(
    out: std::path::PathBuf,
    src: StepCounter,
    interval: Duration,
    idle: Duration,
    probes: Vec<Box<dyn Probe>>,
) -> Session {
    let mut meta = synthetic::meta(&synthetic::Shape::default());
    meta.settings.depth = Depth::Module;
    let clock = src.clock;
    Session::start(
        SessionConfig {
            meta,
            out,
            clock,
            interval,
            idle_baseline: idle,
            cancel: None,
            boundary_reads: true,
            sites: vec![SiteDef {
                layer: Some(0),
                component: "q_proj".into(),
                op: None,
            }],
            probes,
            sync_device: false,
            group: None,
            execution: None,
        },
        Box::new(src),
    )
    .unwrap()
}

fn record(sampler: bool, wrap: f64) -> (Trace, u64) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    let origin = clock.now();
    let src = StepCounter {
        clock,
        origin,
        wrap,
        sampler,
        last: origin,
    };
    let mut s = start(
        dir.path().join("t.eprof"),
        src,
        Duration::from_millis(3),
        Duration::from_millis(5),
    );
    let start = s.boundary();
    let mut t0 = start;
    for step in 0..6u32 {
        s.set_step(step);
        let a = s.now();
        std::thread::sleep(Duration::from_millis(6));
        let b = s.now();
        s.span(0, a, b);
        let end = s.boundary();
        s.token(Token {
            position: step,
            id: step,
            text: format!("t{step}"),
            phase: if step == 0 {
                TokenPhase::Prefill
            } else {
                TokenPhase::Decode
            },
            step: Some(Step {
                index: step,
                start_ns: t0,
                end_ns: end,
            }),
        });
        if step == 0 {
            s.section(Phase::Prefill, "prefill", None, t0, end);
        }
        t0 = end;
        s.flush().unwrap();
    }
    let path = s.finish("text".into(), RunStop::MaxTokens).unwrap();
    let trace = decode_complete(&std::fs::read(path).unwrap()).unwrap();
    (trace, origin)
}

#[test]
fn counter_steps_are_measured_exactly_across_wraps() {
    let (trace, origin) = record(false, 0.4);
    let en = Energies::compute(&trace);
    assert!(trace.baseline.is_some(), "idle baseline measured");
    let mut seen = 0;
    for (tok, e) in trace.tokens.iter().zip(&en.tokens) {
        let st = tok.step.unwrap();
        let e = e.unwrap();
        let want = wave_j(st.end_ns, origin) - wave_j(st.start_ns, origin);
        assert!(
            (e.joules - want).abs() <= 1e-9 * want,
            "step {}: {} vs {want}",
            st.index,
            e.joules
        );
        assert_eq!(e.label, EnergyLabel::Measured);
        seen += 1;
    }
    assert_eq!(seen, 6);
    // The 0.4 J counter wrapped and was unwrapped into monotonic joules: at least 5 ms
    // idle + 6 x 6 ms of steps, so at least 0.15 J + 40 W x 11 ms = 0.59 J. (It wraps
    // every 10 ms at 40 W; reads come every 3 to 6 ms. A counter read less than once
    // per wrap cannot be unwrapped: RAPL's range lasts hours, so it never is.)
    let last = trace.samples.last().unwrap().values[0].unwrap();
    assert!(
        last > 0.4,
        "cumulative energy {last} must span several wraps"
    );
    assert!(
        trace
            .samples
            .windows(2)
            .all(|w| w[1].values[0] >= w[0].values[0])
    );
    // Spans inside steps are shorter than a reading interval only if the resolution
    // says so; here resolution is 1 us, so they are interpolated, and conserve.
    let spans: f64 = en.spans.iter().flatten().map(|e| e.joules).sum();
    let steps: f64 = en.tokens.iter().flatten().map(|e| e.joules).sum();
    assert!(spans < steps && spans > 0.0);
}

#[test]
fn sampler_total_is_exact_over_whole_windows() {
    let (trace, origin) = record(true, f64::INFINITY);
    let first = trace.samples.first().unwrap().t1_ns;
    let last = trace.samples.last().unwrap().t1_ns;
    let a = Attribution::new(&trace);
    let got = a.energy(first, last).unwrap();
    let want = wave_j(last, origin) - wave_j(first, origin);
    assert!(
        (got.joules - want).abs() <= 1e-9 * want,
        "{} vs {want}",
        got.joules
    );
    assert_eq!(got.label, EnergyLabel::Interpolated);
}

/// Chunks are encoded at every flush and reach the file at most
/// `WRITE_EVERY_NS` later; a session dropped unfinished (an error, a panic) still
/// leaves every flushed step in a readable, truncated trace.
#[test]
fn flushed_steps_reach_the_file_within_the_write_interval_and_survive_a_drop() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    let src = StepCounter::never_wrapping(clock);
    let out = dir.path().join("t.eprof");
    let mut s = start(out.clone(), src, Duration::from_millis(50), Duration::ZERO);
    let on_disk = || std::fs::metadata(&out).unwrap().len();
    let step_spans = |s: &mut Session, step: u32| {
        s.set_step(step);
        for _ in 0..100 {
            let a = s.now();
            s.span(0, a, s.now());
        }
        s.flush().unwrap();
    };
    // The first flush writes; the next ones within the interval stay in the buffer.
    step_spans(&mut s, 0);
    let first = on_disk();
    assert_eq!(
        decode(&std::fs::read(&out).unwrap())
            .unwrap()
            .trace
            .spans
            .len(),
        100
    );
    let t = s.now();
    step_spans(&mut s, 1);
    step_spans(&mut s, 2);
    if s.now() - t < eprof_core::session::WRITE_EVERY_NS {
        assert_eq!(on_disk(), first, "flushes within the interval are buffered");
    }
    // Past the interval, the next flush hands everything to the file.
    std::thread::sleep(Duration::from_nanos(
        eprof_core::session::WRITE_EVERY_NS + 5_000_000,
    ));
    step_spans(&mut s, 3);
    let written = on_disk();
    assert!(written > first, "{written} > {first}");
    let d = decode(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(d.trace.spans.len(), 400, "steps 0-3 are in the file");
    // One more step, then the session is dropped without `finish`.
    step_spans(&mut s, 4);
    drop(s);
    let d = decode(&std::fs::read(&out).unwrap()).unwrap();
    assert!(d.truncation.is_some(), "no end marker: truncated");
    assert_eq!(
        d.trace.spans.len(),
        500,
        "every flushed step survives the drop"
    );
    assert_eq!(d.trace.spans.step.iter().max(), Some(&4));
}

/// A probe of moments: `mean` and `below` of every tensor, or (`fail`) an error or a
/// panic at its third tensor.
struct MomentsProbe {
    name: &'static str,
    fail: Option<bool>,
    seen: u32,
    threshold: f32,
}

/// The `observe` of a probe the session must not call: it gets moments instead.
fn never_observed() -> eprof_core::Result<()> {
    panic!("a session asks a moments probe for moment_values, not observe")
}

impl Probe for MomentsProbe {
    fn name(&self) -> &str {
        self.name
    }
    fn kinds(&self) -> u8 {
        TensorKind::Output.bit()
    }
    fn observe(
        &mut self,
        _: &SiteDef,
        _: At,
        _: TensorKind,
        _: TensorView<'_>,
        _: &mut dyn MetricSink,
    ) -> eprof_core::Result<()> {
        never_observed()
    }
    fn moment_metrics(&self) -> Option<MomentMetrics> {
        Some(MomentMetrics {
            threshold: self.threshold,
            names: vec!["mean".into(), "below".into()],
        })
    }
    fn moment_values(&mut self, m: &Moments, out: &mut [f32]) -> eprof_core::Result<()> {
        self.seen += 1;
        match self.fail {
            Some(true) if self.seen == 3 => panic!("boom at the third tensor"),
            Some(false) if self.seen == 3 => {
                return Err(eprof_core::Error::Config(
                    "no good at the third tensor".into(),
                ));
            }
            _ => {}
        }
        out.copy_from_slice(&[m.mean() as f32, m.below as f32]);
        Ok(())
    }
}

/// A moments probe without its own `moment_values`: it gets the trait's default.
struct Forgetful;

impl Probe for Forgetful {
    fn name(&self) -> &str {
        "forgetful"
    }
    fn kinds(&self) -> u8 {
        TensorKind::Output.bit()
    }
    fn observe(
        &mut self,
        _: &SiteDef,
        _: At,
        _: TensorKind,
        _: TensorView<'_>,
        _: &mut dyn MetricSink,
    ) -> eprof_core::Result<()> {
        never_observed()
    }
    fn moment_metrics(&self) -> Option<MomentMetrics> {
        Some(MomentMetrics {
            threshold: 0.5,
            names: vec!["mean".into()],
        })
    }
}

#[test]
fn moments_probes_get_their_metrics_at_the_flush_and_a_failing_one_is_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::start();
    let src = StepCounter::never_wrapping(clock);
    let probe = |name, fail| -> Box<dyn Probe> {
        Box::new(MomentsProbe {
            name,
            fail,
            seen: 0,
            threshold: 0.5,
        })
    };
    let mut s = start_with(
        dir.path().join("t.eprof"),
        src,
        Duration::from_millis(50),
        Duration::ZERO,
        vec![
            probe("good", None),
            probe("erring", Some(false)),
            probe("panicking", Some(true)),
            Box::new(Forgetful),
        ],
    );
    // Per step, two tensors: one shown as a tensor, one as a host buffer. Step 0 and 1
    // have more moments probes at the site than its plan holds inline, step 2 one.
    let shown = |step: u32| -> [Vec<f32>; 2] {
        let a = (0..40)
            .map(|i| (i as f32 - 7.0) * 0.1 * (step + 1) as f32)
            .collect();
        let b = (0..17).map(|i| i as f32 * 0.25 - 1.0).collect();
        [a, b]
    };
    for step in 0..3u32 {
        s.set_step(step);
        let [a, b] = shown(step);
        let t = candle_core::Tensor::from_slice(&a, (1, 40), &candle_core::Device::Cpu).unwrap();
        s.observe(0, TensorKind::Output, &t).unwrap();
        s.observe_view(
            0,
            TensorKind::Output,
            TensorView {
                data: &b,
                shape: &[1, 17],
            },
        )
        .unwrap();
        s.flush().unwrap();
    }
    let path = s.finish("text".into(), RunStop::MaxTokens).unwrap();
    let trace = decode_complete(&std::fs::read(path).unwrap()).unwrap();
    let series = |probe: &str, metric: &str| {
        trace
            .metrics
            .iter()
            .find(|m| m.probe == probe && m.metric == metric)
            .unwrap_or_else(|| panic!("{probe}/{metric} in the trace"))
    };
    // The good probe: every tensor of every step, in the order shown.
    let mean = series("good", "mean");
    let below = series("good", "below");
    assert_eq!(mean.step, vec![0, 0, 1, 1, 2, 2]);
    assert_eq!(mean.site, vec![0; 6]);
    for step in 0..3u32 {
        for (k, x) in shown(step).iter().enumerate() {
            let m = Moments::of(x, 0.5);
            let n = x.len() as f64;
            let plain = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            assert!((m.mean() - plain).abs() < 1e-6, "{} vs {plain}", m.mean());
            let i = step as usize * 2 + k;
            assert_eq!(mean.value[i], m.mean() as f32);
            let small = x.iter().filter(|v| v.abs() < 0.5).count();
            assert_eq!(below.value[i], small as f32);
        }
    }
    // The failing ones: step 0's values kept, nothing after, and a note naming each.
    for name in ["erring", "panicking"] {
        assert_eq!(series(name, "mean").step, vec![0, 0], "{name}");
    }
    let notes: Vec<&str> = trace.notes.iter().map(|n| n.text.as_str()).collect();
    let note = |probe: &str, why: &str| {
        notes
            .iter()
            .any(|n| n.contains(&format!("probe {probe} disabled")) && n.contains(why))
    };
    assert!(note("erring", "no good at the third tensor"), "{notes:?}");
    assert!(note("panicking", "boom at the third tensor"), "{notes:?}");
    assert!(
        note("forgetful", "does not implement moment_values"),
        "{notes:?}"
    );
    assert!(!trace.metrics.iter().any(|m| m.probe == "forgetful"));
}

/// Moments probes at one site, inline in its plan (two) or more (three): each gets
/// its own threshold's `below`, whether or not another shares its pass.
#[test]
fn moments_probes_at_one_site_each_count_below_their_own_threshold() {
    let x: Vec<f32> = (0..100).map(|i| (i as f32 - 50.0) * 0.013).collect();
    for thresholds in [&[0.5f32, 0.1][..], &[0.5, 0.1, 0.5], &[0.2, 0.2]] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::start();
        let names = ["p0", "p1", "p2"];
        let probes = thresholds
            .iter()
            .zip(names)
            .map(|(&threshold, name)| -> Box<dyn Probe> {
                Box::new(MomentsProbe {
                    name,
                    fail: None,
                    seen: 0,
                    threshold,
                })
            })
            .collect();
        let mut s = start_with(
            dir.path().join("t.eprof"),
            StepCounter::never_wrapping(clock),
            Duration::from_millis(50),
            Duration::ZERO,
            probes,
        );
        for step in 0..2u32 {
            s.set_step(step);
            s.observe_view(
                0,
                TensorKind::Output,
                TensorView {
                    data: &x,
                    shape: &[1, 100],
                },
            )
            .unwrap();
            s.flush().unwrap();
        }
        let path = s.finish("text".into(), RunStop::MaxTokens).unwrap();
        let trace = decode_complete(&std::fs::read(path).unwrap()).unwrap();
        for (&t, name) in thresholds.iter().zip(names) {
            let below = trace
                .metrics
                .iter()
                .find(|m| m.probe == name && m.metric == "below")
                .unwrap_or_else(|| panic!("{name}/below in the trace"));
            let small = x.iter().filter(|v| v.abs() < t).count() as f32;
            assert_eq!(
                below.value,
                vec![small; 2],
                "{name} at {t} of {thresholds:?}"
            );
        }
    }
}
