//! NVML through a fake `libnvidia-ml` built here and loaded through the real code
//! path: the energy counter's deltas, the fallback to power polling, and the error
//! when no driver is installed.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use eprof_core::power::{CounterUnwrap, PowerSource};
use eprof_format::SourceKind;
use eprof_power::nvml::Nvml;

/// Build the fake library once per test binary.
fn fake_lib() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = env!("CARGO_MANIFEST_DIR");
        let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fake-nvml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--quiet", "--offline", "--manifest-path"])
            .arg(format!("{dir}/tests/fake-nvml/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("cargo runs");
        assert!(st.success(), "building the fake libnvidia-ml failed");
        let name = format!(
            "{}fake_nvml{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        let p = target.join("debug").join(name);
        assert!(p.exists(), "{} was not built", p.display());
        p
    })
    .clone()
}

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
    // Run in a child process so the environment change stays there.
    if std::env::var("FAKE_NVML_MODE").is_err() {
        let exe = std::env::current_exe().unwrap();
        let st = Command::new(exe)
            .args([
                "unsupported_counter_falls_back_to_power_polling",
                "--exact",
                "--nocapture",
            ])
            .env("FAKE_NVML_MODE", "nosupport")
            .status()
            .unwrap();
        assert!(st.success());
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
