//! NVML through a fake `libnvidia-ml` built here and loaded through the real code
//! path: the energy counter's deltas, the fallback to power polling, and the error
//! when no driver is installed.

use eprof_core::power::{CounterUnwrap, PowerSource};
use eprof_format::SourceKind;
use eprof_power::nvml::Nvml;

mod common;
use common::fake_lib;

#[test]
fn counter_mode_gives_energy_deltas_and_gpu_details() {
    // Counter mode is the fake's default; the fallback test sets FAKE_NVML_MODE in a
    // child process only, so this one never sees it.
    let lib = fake_lib();
    let mut n = Nvml::open(lib.to_str().unwrap()).unwrap();
    assert!(n.is_counter());
    let d = n.desc();
    assert_eq!(d.kind, SourceKind::Counter);
    assert_eq!(d.channels[0].name, "gpu0");
    assert!(
        d.details
            .iter()
            .any(|(k, v)| k == "gpu0" && v == "Fake GPU 80GB")
    );
    assert!(
        d.details
            .iter()
            .any(|(k, v)| k == "gpu0_power_limit_w" && v == "700")
    );
    let mut u = CounterUnwrap::default();
    let a = u.push(&n.read().unwrap())[0].unwrap();
    let b = u.push(&n.read().unwrap())[0].unwrap();
    let c = u.push(&n.read().unwrap())[0].unwrap();
    assert_eq!((b - a, c - b), (1.5, 1.5), "1500 mJ per read");
}

#[test]
fn unsupported_counter_falls_back_to_power_polling() {
    if common::in_child(
        "unsupported_counter_falls_back_to_power_polling",
        "FAKE_NVML_MODE",
        &[("FAKE_NVML_MODE", "nosupport".into())],
    ) {
        return;
    }
    let mut n = Nvml::open(fake_lib().to_str().unwrap()).unwrap();
    assert!(!n.is_counter());
    let d = n.desc();
    assert_eq!(d.kind, SourceKind::Sampler);
    assert_eq!(
        d.nominal_resolution_ns, 1_000_000_000,
        "1 s average on Ampere+"
    );
    assert!(d.details.iter().any(|(_, v)| v.contains("polling")));
    assert_eq!(n.read().unwrap().values, vec![Some(150.0)]);
}

#[test]
fn a_missing_library_says_the_driver_is_not_found() {
    let e = Nvml::open("/nonexistent/libnvidia-ml.so.1")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("NVIDIA driver not found") && e.contains("install the NVIDIA driver"),
        "{e}"
    );
}

#[test]
fn the_counter_update_period_is_measured_and_becomes_the_resolution() {
    // A child process: the fake reads FAKE_NVML_PERIOD_MS, and the measurement is
    // cached per process.
    if common::in_child(
        "the_counter_update_period_is_measured_and_becomes_the_resolution",
        "FAKE_NVML_PERIOD_MS",
        &[("FAKE_NVML_PERIOD_MS", "20".into())],
    ) {
        return;
    }
    let n = Nvml::open(fake_lib().to_str().unwrap()).unwrap();
    let d = n.desc();
    let ms = d.nominal_resolution_ns as f64 / 1e6;
    // Polled every 0.2 ms (plus scheduling): the median change-to-change time is the
    // period, never less, and a loaded machine delays a read by a few ms at most.
    assert!(
        (19.0..30.0).contains(&ms),
        "measured {ms} ms for a 20 ms counter"
    );
    let mode = &d.details.iter().find(|(k, _)| k == "mode").unwrap().1;
    assert!(
        mode.contains("counter updates every") && mode.contains("measured"),
        "{mode}"
    );
}
