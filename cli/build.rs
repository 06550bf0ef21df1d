//! Embeds the viewer (`target/viewer/eprof-viewer.html`, built by `cargo xtask viewer`)
//! into the binary so `eprof view` needs nothing else. Without it the CLI still
//! builds, and `eprof view` says how to get the viewer.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=EPROF_VIEWER_HTML");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let html = match std::env::var_os("EPROF_VIEWER_HTML") {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("../target"))
            .join("viewer/eprof-viewer.html"),
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it")).join("viewer.rs");
    let code = if html.is_file() {
        println!("cargo:rerun-if-changed={}", html.display());
        let abs = html.canonicalize().unwrap_or(html);
        format!(
            "pub const VIEWER_HTML: Option<&str> = Some(include_str!({:?}));\n",
            abs.display().to_string()
        )
    } else {
        // Watch the folder, so building the viewer later re-runs this script.
        if let Some(dir) = html.parent() {
            let _ = std::fs::create_dir_all(dir);
            println!("cargo:rerun-if-changed={}", dir.display());
        }
        "pub const VIEWER_HTML: Option<&str> = None;\n".to_string()
    };
    std::fs::write(&out, code).expect("write OUT_DIR/viewer.rs");
}
