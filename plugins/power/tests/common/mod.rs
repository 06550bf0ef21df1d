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

/// Run test `name` of this binary again in a child process with `env` set (the
/// environment change stays there), and check that it ran and passed. `true` in the
/// parent, which then returns; `false` in the child (where `marker` is set), which
/// runs the test's body. A stale name would run no test: that fails too.
pub fn in_child(name: &str, marker: &str, env: &[(&str, std::ffi::OsString)]) -> bool {
    if std::env::var_os(marker).is_some() {
        return false;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture"])
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("1 passed"),
        "the child ran no test {name:?}: {text}"
    );
    true
}
