//! The fake `libnvidia-ml` the NVML tests load, built once per test binary.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Build the fake library once per test binary.
pub fn fake_lib() -> PathBuf {
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
