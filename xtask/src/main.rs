//! Build and maintenance helpers: `cargo xtask <command>`.
//!
//! - `viewer`: build the trace viewer into one self-contained HTML file
//!   (`target/viewer/eprof-viewer.html`), which the `eprof` binary then embeds.
//! - `synth`: write a synthetic trace of any size (viewer benchmark, demos).
//! - `bench`: run the format, Parquet export, recording cost and overhead (real model)
//!   benchmarks one after the other, so their tables are printed from one machine
//!   state.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use base64::Engine as _;

/// The wasm-bindgen version this xtask's `wasm-bindgen-cli-support` is. It must equal
/// the `wasm-bindgen` in Cargo.lock (the macro and the CLI share a schema).
const WASM_BINDGEN: &str = "0.2.130";

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut c: Command) -> bool {
    eprintln!("xtask: {c:?}");
    c.status().is_ok_and(|s| s.success())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("viewer") => viewer(&args[1..]),
        Some("synth") => synth(&args[1..]),
        Some("bench") => {
            let mut format = cargo();
            format.args(["bench", "-p", "eprof-format", "--bench", "codec"]);
            let mut dataset = cargo();
            dataset.args(["bench", "-p", "eprof-dataset", "--bench", "export"]);
            let mut record = cargo();
            record.args(["bench", "-p", "eprof-probes", "--bench", "record"]);
            let mut overhead = cargo();
            overhead.args(["bench", "-p", "eprof-record", "--bench", "overhead"]);
            if run(format) && run(dataset) && run(record) && run(overhead) {
                Ok(())
            } else {
                Err("a benchmark failed".into())
            }
        }
        _ => {
            eprintln!(
                "usage: cargo xtask viewer [--out FILE] [--no-wasm-opt]\n\
                 \x20      cargo xtask synth --tokens N --layers L [--depth module|deep] OUT\n\
                 \x20      cargo xtask bench"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

fn flag_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// The `wasm-bindgen` version in Cargo.lock.
fn locked_wasm_bindgen() -> Option<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == r#"name = "wasm-bindgen""# {
            let v = lines.next()?;
            return Some(v.strip_prefix("version = \"")?.trim_end_matches('"').into());
        }
    }
    None
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).map_err(|e| e.to_string())?;
    enc.finish().map_err(|e| e.to_string())
}

/// `wasm-opt` from PATH, `$WASM_OPT`, or the e2e harness's npm `binaryen`.
fn find_wasm_opt() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WASM_OPT") {
        return Some(PathBuf::from(p));
    }
    let local = root().join("tests/e2e/node_modules/.bin/wasm-opt");
    if local.exists() {
        return Some(local);
    }
    Command::new("wasm-opt")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("wasm-opt"))
}

fn viewer(args: &[String]) -> Result<()> {
    let out = flag_value(args, "--out")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("viewer/eprof-viewer.html"));
    match locked_wasm_bindgen() {
        Some(v) if v == WASM_BINDGEN => {}
        Some(v) => {
            return Err(format!(
                "Cargo.lock has wasm-bindgen {v} but xtask's wasm-bindgen-cli-support is {WASM_BINDGEN}: \
                 bump both together (xtask/Cargo.toml, viewer/Cargo.toml, WASM_BINDGEN in xtask/src/main.rs)"
            ));
        }
        None => return Err("no wasm-bindgen in Cargo.lock".into()),
    }
    let mut build = cargo();
    build.current_dir(root()).args([
        "build",
        "--profile",
        "wasm-release",
        "--target",
        "wasm32-unknown-unknown",
        "-p",
        "eprof-viewer",
    ]);
    if !run(build) {
        return Err(
            "building the viewer for wasm32 failed (is the target installed? \
             `rustup target add wasm32-unknown-unknown`)"
                .into(),
        );
    }
    let wasm_in = target_dir().join("wasm32-unknown-unknown/wasm-release/eprof_viewer.wasm");
    let raw = std::fs::metadata(&wasm_in).map_err(|e| format!("{}: {e}", wasm_in.display()))?;
    let mut output = wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm_in)
        .no_modules(true)
        .map_err(|e| e.to_string())?
        .typescript(false)
        .generate_output()
        .map_err(|e| format!("wasm-bindgen: {e}"))?;
    let js = output.js().to_owned();
    let mut wasm = output.wasm_mut().emit_wasm();
    let bindgen_len = wasm.len();
    let skip_opt = args.iter().any(|a| a == "--no-wasm-opt");
    match find_wasm_opt().filter(|_| !skip_opt) {
        Some(opt) => {
            let dir = target_dir().join("viewer");
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let (a, b) = (dir.join("bindgen.wasm"), dir.join("opt.wasm"));
            std::fs::write(&a, &wasm).map_err(|e| e.to_string())?;
            let mut c = Command::new(&opt);
            c.args([
                "-Oz",
                "--enable-bulk-memory",
                "--enable-nontrapping-float-to-int",
            ])
            .args(["--enable-sign-ext", "--enable-mutable-globals"])
            .args(["--enable-reference-types", "--enable-multivalue"])
            .arg(&a)
            .arg("-o")
            .arg(&b);
            if run(c) {
                wasm = std::fs::read(&b).map_err(|e| e.to_string())?;
            } else {
                eprintln!("xtask: wasm-opt failed; keeping the unoptimised module");
            }
        }
        None => eprintln!(
            "xtask: wasm-opt not found (optional: Debian or npm `binaryen`, or set WASM_OPT); skipping it"
        ),
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let js_gz = gzip(js.as_bytes())?;
    let wasm_gz = gzip(&wasm)?;
    let shell = std::fs::read_to_string(root().join("viewer/shell.html"))
        .map_err(|e| format!("viewer/shell.html: {e}"))?;
    let html = shell
        .replace("{{VERSION}}", env!("CARGO_PKG_VERSION"))
        .replace("{{JS}}", &b64.encode(&js_gz))
        .replace("{{WASM}}", &b64.encode(&wasm_gz));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(&out, &html).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!(
        "xtask: wasm {} B (rustc) -> {} B (wasm-bindgen) -> {} B (final) -> {} B gzip; js {} B -> {} B gzip",
        raw.len(),
        bindgen_len,
        wasm.len(),
        wasm_gz.len(),
        js.len(),
        js_gz.len()
    );
    println!("{} ({} bytes)", out.display(), html.len());
    Ok(())
}

fn synth(args: &[String]) -> Result<()> {
    use eprof_format::Depth;
    use eprof_format::synthetic::{Shape, trace};
    let num = |name: &str, default: u32| -> Result<u32> {
        flag_value(args, name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("{name}: not a number: {v}"))
        })
    };
    let depth = match flag_value(args, "--depth").as_deref() {
        None | Some("module") => Depth::Module,
        Some("deep") => Depth::Deep,
        Some(d) => return Err(format!("--depth: expected module or deep, got {d}")),
    };
    let out = args
        .last()
        .filter(|a| !a.starts_with("--"))
        .ok_or("missing output path")?;
    let shape = Shape {
        generated_tokens: num("--tokens", 64)?,
        layers: u16::try_from(num("--layers", 4)?).map_err(|_| "--layers: too many")?,
        depth,
        ..Shape::default()
    };
    let bytes = eprof_format::encode(&trace(&shape));
    std::fs::write(out, &bytes).map_err(|e| format!("{out}: {e}"))?;
    println!("{out} ({} bytes)", bytes.len());
    Ok(())
}
