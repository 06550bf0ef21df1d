//! Helpers of the end-to-end tests in `tests/tests/`.

use std::path::PathBuf;

/// The `eprof` binary of this build (`EPROF_BIN` overrides): the test executables live
/// in `target/<profile>/deps/`, the binary in `target/<profile>/`.
pub fn eprof_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("EPROF_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("test executables live in target/<profile>/deps");
    let p = dir.join(format!("eprof{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "the eprof binary is not built at {}: run `cargo build -p eprof` first (scripts/test.sh does)",
        p.display()
    );
    p
}
