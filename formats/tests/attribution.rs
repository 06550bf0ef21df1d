//! Attribution is exact on known waveforms, labels say how each figure was obtained,
//! and parts sum to the whole.

use eprof_format::synthetic::{self, Shape};
use eprof_format::*;

const MS: u64 = 1_000_000;

/// 10 W before 1 s, 30 W after: the energy in [a, b] in joules.
fn step_joules(a: u64, b: u64) -> f64 {
    let p = |t: u64| {
        let s = t as f64 * 1e-9;
        if s <= 1.0 {
            10.0 * s
        } else {
            10.0 + 30.0 * (s - 1.0)
        }
    };
    p(b) - p(a)
}

fn trace_with(kind: SourceKind, samples: Vec<PowerSample>) -> Trace {
    let mut t = synthetic::trace(&Shape::default());
    t.meta.power.kind = kind;
    t.meta.power.nominal_resolution_ns = MS;
    t.samples = samples;
    t
}

fn close(got: f64, want: f64) {
    assert!((got - want).abs() <= 1e-9 * want.abs(), "{got} vs {want}");
}

#[test]
fn counter_step_waveform_is_exact_and_measured_at_readings() {
    let times: Vec<u64> = (0..=20)
        .map(|k| k * 100 * MS)
        .chain([550 * MS, 1_230 * MS])
        .collect();
    let samples = times
        .iter()
        .map(|&t| PowerSample {
            t0_ns: t,
            t1_ns: t,
            values: vec![Some(step_joules(0, t))],
        })
        .collect();
    let a = Attribution::new(&trace_with(SourceKind::Counter, samples));
    let e = a.energy(550 * MS, 1_230 * MS).unwrap();
    close(e.joules, step_joules(550 * MS, 1_230 * MS));
    assert_eq!(e.label, EnergyLabel::Measured);
    // Between readings: interpolated, and still exact because the power is constant
    // between the readings that bracket it.
    let e = a.energy(1_250 * MS, 1_370 * MS).unwrap();
    close(e.joules, step_joules(1_250 * MS, 1_370 * MS));
    assert_eq!(e.label, EnergyLabel::Interpolated);
    // Shorter than the counter's resolution: a time share, labelled attributed.
    let e = a.energy(1_500 * MS, 1_500 * MS + 200_000).unwrap();
    close(e.joules, 30.0 * 200e-6);
    assert_eq!(e.label, EnergyLabel::Attributed);
}

#[test]
fn sampler_step_waveform_is_exact_and_interpolated() {
    let samples = (0..20)
        .map(|k| {
            let (t0, t1) = (k * 100 * MS, (k + 1) * 100 * MS);
            let w = step_joules(t0, t1) / ((t1 - t0) as f64 * 1e-9);
            PowerSample {
                t0_ns: t0,
                t1_ns: t1,
                values: vec![Some(w)],
            }
        })
        .collect();
    let a = Attribution::new(&trace_with(SourceKind::Sampler, samples));
    assert_eq!(a.resolution_ns(), 100 * MS, "the window is the resolution");
    for (x, y) in [(950, 1_050), (0, 2_000), (300, 1_700), (1_000, 1_100)] {
        let e = a.energy(x * MS, y * MS).unwrap();
        close(e.joules, step_joules(x * MS, y * MS));
        assert_eq!(e.label, EnergyLabel::Interpolated);
    }
    let e = a.energy(1_500 * MS, 1_510 * MS).unwrap();
    assert_eq!(
        e.label,
        EnergyLabel::Attributed,
        "10 ms inside a 100 ms window"
    );
    close(e.joules, 30.0 * 0.010);
}

#[test]
fn a_counter_that_updates_slower_than_it_is_read_resolves_no_finer_than_its_updates() {
    // Read every 10 ms, but the counter only moves every 50 ms (20 W).
    let samples = (0..=40u64)
        .map(|k| {
            let t = k * 10 * MS;
            let updated = (t / (50 * MS)) * 50 * MS;
            PowerSample {
                t0_ns: t,
                t1_ns: t,
                values: vec![Some(20.0 * updated as f64 * 1e-9)],
            }
        })
        .collect();
    let a = Attribution::new(&trace_with(SourceKind::Counter, samples));
    assert_eq!(a.resolution_ns(), 50 * MS);
    // Readings at both ends, but shorter than the real update period: not "measured".
    assert_eq!(
        a.energy(100 * MS, 130 * MS).unwrap().label,
        EnergyLabel::Attributed
    );
    // Longer than the period: read off the curve averaged over one period (the
    // energy of an update is not known to belong to the reads that first saw it).
    let e = a.energy(100 * MS, 200 * MS).unwrap();
    assert_eq!(e.label, EnergyLabel::Interpolated);
    close(e.joules, 2.0);
}

#[test]
fn estimate_sources_are_always_estimated() {
    let samples = (0..5)
        .map(|k| PowerSample {
            t0_ns: k * 100 * MS,
            t1_ns: (k + 1) * 100 * MS,
            values: vec![Some(5.0)],
        })
        .collect();
    let a = Attribution::new(&trace_with(SourceKind::Estimate, samples));
    let e = a.energy(0, 500 * MS).unwrap();
    assert_eq!(e.label, EnergyLabel::Estimated);
    close(e.joules, 2.5);
}

#[test]
fn absent_channels_give_no_figure_not_zero() {
    let samples = (0..5)
        .map(|k| PowerSample {
            t0_ns: k * MS,
            t1_ns: k * MS,
            values: vec![None],
        })
        .collect();
    let a = Attribution::new(&trace_with(SourceKind::Counter, samples));
    assert!(a.energy(0, 4 * MS).is_none());
    assert!(!a.has_energy());
}

#[test]
fn parts_sum_to_the_whole() {
    let t = synthetic::trace(&Shape {
        generated_tokens: 40,
        layers: 6,
        depth: Depth::Deep,
        ..Shape::default()
    });
    let en = Energies::compute(&t);
    let total = en.total.unwrap().joules;
    let phases: f64 = t
        .sections
        .iter()
        .zip(&en.sections)
        .filter(|(s, _)| s.is_phase())
        .map(|(_, e)| e.unwrap().joules)
        .sum();
    close(phases, total);
    let tokens: f64 = en.tokens.iter().flatten().map(|e| e.joules).sum();
    let gen_phases: f64 = t
        .sections
        .iter()
        .zip(&en.sections)
        .filter(|(s, _)| s.is_phase() && matches!(s.phase, Phase::Prefill | Phase::Decode))
        .map(|(_, e)| e.unwrap().joules)
        .sum();
    close(tokens, gen_phases);
    // Layers of one step sum to at most the step, and layer + rest == step exactly.
    for tok in t.generated() {
        let s = tok.step.unwrap();
        let step_e = en.attribution.energy(s.start_ns, s.end_ns).unwrap().joules;
        let mut layers = 0.0;
        let mut covered = 0u64;
        for i in 0..t.spans.len() {
            if t.spans.step[i] == s.index && t.sites[t.spans.site[i] as usize].is_layer() {
                layers += en.spans[i].unwrap().joules;
                covered += t.spans.duration_ns(i);
            }
        }
        let rest = en.attribution.energy(s.start_ns, s.end_ns).unwrap().joules - layers;
        close(layers + rest, step_e);
        // Constant power: each layer's share is its share of time.
        close(
            layers,
            step_e * covered as f64 / (s.end_ns - s.start_ns) as f64,
        );
    }
    let sum = Summary::compute(&t, &en);
    close(
        sum.phases.iter().map(|r| r.joules().unwrap()).sum::<f64>(),
        total,
    );
    close(total, 10.0 * sum.duration_ns as f64 * 1e-9);
}

#[test]
fn many_intervals_at_once_give_each_its_own_energy_bit_for_bit() {
    // Readings every 7 ms with a power that changes at each, as a counter and as a
    // sampler; intervals in time order (spans), overlapping, reversed, outside the
    // readings, and out of order.
    for kind in [SourceKind::Counter, SourceKind::Sampler] {
        let mut e = 0.0;
        let samples: Vec<PowerSample> = (1..300u64)
            .map(|k| {
                let w = 5.0 + (k % 11) as f64;
                e += w * 7e-3;
                let t = k * 7 * MS;
                PowerSample {
                    t0_ns: if kind == SourceKind::Counter {
                        t
                    } else {
                        t - 7 * MS
                    },
                    t1_ns: t,
                    values: vec![Some(if kind == SourceKind::Counter { e } else { w })],
                }
            })
            .collect();
        let a = Attribution::new(&trace_with(kind, samples));
        let mut intervals: Vec<(u64, u64)> = (0..5_000u64)
            .map(|i| (i * 431_000, i * 431_000 + 250_000 + (i % 13) * 3 * MS))
            .collect();
        intervals.extend([
            (0, 1),
            (5 * MS, 2 * MS),
            (3_000 * MS, 3_100 * MS),
            (10 * MS, 900 * MS),
        ]);
        intervals.extend(
            (0..500u64).map(|i| ((i * 7_919 % 500) * 4 * MS, (i * 7_919 % 500) * 4 * MS + MS)),
        );
        let one: Vec<Option<Energy>> = intervals.iter().map(|&(x, y)| a.energy(x, y)).collect();
        assert_eq!(a.energies(intervals.iter().copied()), one, "{kind:?}");
    }
}

/// A counter that updates every 100 ms, read every 5 ms, at a constant 120 W: the
/// reads between updates repeat the last value. Every 17 ms token must get its share
/// (2.04 J), not nothing, and the token in which an update was seen not the whole
/// 100 ms.
#[test]
fn a_counter_read_faster_than_it_updates_spreads_each_update_over_its_period() {
    let samples: Vec<PowerSample> = (0..=200u64)
        .map(|k| {
            let t = k * 5 * MS;
            // The counter's value: energy up to its last update (every 100 ms).
            let updated = (t / (100 * MS)) * 100 * MS;
            PowerSample {
                t0_ns: t,
                t1_ns: t,
                values: vec![Some(120.0 * updated as f64 * 1e-9)],
            }
        })
        .collect();
    let a = Attribution::new(&trace_with(SourceKind::Counter, samples));
    // 100 ms between changes, so that is what the source resolves.
    assert_eq!(a.resolution_ns(), 100 * MS);
    for k in 0..50u64 {
        let (s, e) = (40 * MS + k * 17 * MS, 40 * MS + (k + 1) * 17 * MS);
        let got = a.energy(s, e).unwrap();
        assert!(
            (got.joules - 2.04).abs() < 1e-9,
            "token {k} [{s}, {e}]: {} J, want 2.04 J",
            got.joules
        );
        assert_eq!(got.label, EnergyLabel::Attributed);
    }
    // Spans longer than an update period are read off the averaged curve: not a
    // difference of two readings, so never "measured".
    assert_eq!(a.label(100 * MS, 300 * MS), EnergyLabel::Interpolated);
    close(a.energy(100 * MS, 300 * MS).unwrap().joules, 24.0);
    close(a.energy(0, 1_000 * MS).unwrap().joules, 120.0);
}

/// A real run: SmolLM2-135M's shape (random weights, q4_0) on an NVIDIA H200 at module
/// depth, NVML's energy counter read every few ms while it updates about every 100 ms
/// (recorded by eprof's CUDA build on 2026-12-04). Every decode token (15-40 ms) gets
/// a share of the GPU's energy at a power the GPU can draw; before the curve skipped
/// repeated reads, 26 of 31 got 0 J and the others 600-800 W.
#[test]
fn real_h200_nvml_trace_gives_every_decode_token_energy() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/h200/smollm2-135m-synth-module.eprof"
    );
    let trace = decode_complete(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(trace.meta.power.name, "nvml");
    let a = Attribution::new(&trace);
    let steps: Vec<Step> = trace
        .tokens
        .iter()
        .filter(|t| t.phase == TokenPhase::Decode)
        .filter_map(|t| t.step)
        .collect();
    assert_eq!(steps.len(), 31);
    let mut sum = 0.0;
    for s in &steps {
        let e = a.energy(s.start_ns, s.end_ns).unwrap();
        let w = e.joules / ((s.end_ns - s.start_ns) as f64 * 1e-9);
        assert!(
            (60.0..300.0).contains(&w),
            "step {}: {} J, {w:.1} W average",
            s.index,
            e.joules
        );
        assert_eq!(e.label, EnergyLabel::Attributed);
        sum += e.joules;
    }
    // The tokens' shares add up to the energy of the time they cover.
    let (first, last) = (steps[0], steps[steps.len() - 1]);
    let gaps: f64 = steps
        .windows(2)
        .map(|w| a.energy(w[0].end_ns, w[1].start_ns).unwrap().joules)
        .sum();
    close(
        sum + gaps,
        a.energy(first.start_ns, last.end_ns).unwrap().joules,
    );
}
