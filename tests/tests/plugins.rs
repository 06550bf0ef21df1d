//! Dynamic probe plugins end to end: the example plugin built with cargo and loaded by
//! a real `eprof record`; ABI mismatches, panicking and failing probes, and files that
//! are not plugins.

use std::path::{Path, PathBuf};

use eprof_tests::eprof_bin;
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Build a cdylib crate with cargo into its own target folder; returns the library.
fn build(manifest: &str, lib: &str, features: &[&str], tag: &str) -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("plugin-{tag}"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.args(["build", "--quiet", "--manifest-path"])
        .arg(root().join(manifest))
        .arg("--target-dir")
        .arg(&target);
    if !features.is_empty() {
        c.args(["--features", &features.join(",")]);
    }
    assert!(
        c.status().unwrap().success(),
        "cargo build of {manifest} failed"
    );
    let p = target.join("debug").join(format!(
        "{}{lib}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(p.exists(), "{} was not built", p.display());
    p
}

fn example() -> PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        build(
            "plugins/examples/outliers/Cargo.toml",
            "eprof_example_outliers",
            &[],
            "example",
        )
    })
    .clone()
}

fn fixtures(feature: &str) -> PathBuf {
    let features: Vec<&str> = if feature.is_empty() {
        vec![]
    } else {
        vec![feature]
    };
    let tag = if feature.is_empty() {
        "faulty"
    } else {
        feature
    };
    build(
        "tests/fixtures/plugin-fixtures/Cargo.toml",
        "eprof_plugin_fixtures",
        &features,
        tag,
    )
}

fn eprof(data: &Path, args: &[&str]) -> Output {
    Command::new(eprof_bin())
        .args(args)
        .env("EPROF_HOME", data)
        .env("HOME", data)
        .env_remove("EPROF_PLUGIN_PATH")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn record(data: &Path, plugin: &Path) -> (serde_json::Value, String) {
    let o = eprof(
        data,
        &[
            "record",
            "hello",
            "--model",
            "builtin:tiny-llama",
            "--power",
            "synthetic",
            "--idle-ms",
            "0",
            "--max-tokens",
            "5",
            "--quiet",
            "--json",
            "--plugin",
            plugin.to_str().unwrap(),
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "record failed:\n{out}\n{err}");
    (serde_json::from_str(&out).unwrap(), err)
}

#[test]
fn the_example_plugin_records_metrics_into_the_trace_and_show() {
    let data = tempfile::tempdir().unwrap();
    let lib = example();
    let (out, _) = text(&eprof(
        data.path(),
        &["plugins", "check", lib.to_str().unwrap()],
    ));
    assert!(
        out.contains("ok: outliers") && out.contains("plugin ABI 1"),
        "{out}"
    );

    let (v, _) = record(data.path(), &lib);
    let trace =
        eprof_format::decode_complete(&std::fs::read(v["trace"].as_str().unwrap()).unwrap())
            .unwrap();
    assert!(trace.meta.settings.probes.contains(&"outliers".to_string()));
    let count = trace
        .metric("outliers", "count")
        .expect("outliers/count in the trace");
    // One value per layer (4) per step (5), at the whole-layer sites.
    assert_eq!(count.len(), 4 * 5);
    assert!(
        count
            .site
            .iter()
            .all(|&s| trace.sites[s as usize].is_layer())
    );
    assert!(
        trace
            .metric("outliers", "max_ratio")
            .unwrap()
            .value
            .iter()
            .all(|v| *v > 0.0)
    );
    let (show, _) = text(&eprof(data.path(), &["show", v["id"].as_str().unwrap()]));
    assert!(
        show.contains("outliers/count") && show.contains("outliers/max_ratio"),
        "{show}"
    );

    // Found through EPROF_PLUGIN_PATH and listed with its origin.
    let o = Command::new(eprof_bin())
        .args(["plugins", "--json"])
        .env("EPROF_HOME", data.path())
        .env("EPROF_PLUGIN_PATH", lib.parent().unwrap())
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let row = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "outliers")
        .expect("listed");
    assert!(
        row["origin"].as_str().unwrap().contains("plugin ABI 1"),
        "{row}"
    );
}

#[test]
fn a_plugin_of_another_abi_is_refused_naming_both_versions() {
    let data = tempfile::tempdir().unwrap();
    let lib = fixtures("future-abi");
    let o = eprof(data.path(), &["plugins", "check", lib.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("ABI 999") && err.contains("speaks ABI 1"),
        "{err}"
    );
}

#[test]
fn panicking_and_failing_probes_are_disabled_and_the_run_completes() {
    let data = tempfile::tempdir().unwrap();
    let lib = fixtures("");
    let (v, err) = record(data.path(), &lib);
    assert!(
        err.contains("warning: probe failing disabled") && err.contains("deliberate failure"),
        "{err}"
    );
    assert!(
        err.contains("warning: probe panicky disabled")
            && err.contains("deliberate panic at step 2"),
        "{err}"
    );
    let trace =
        eprof_format::decode_complete(&std::fs::read(v["trace"].as_str().unwrap()).unwrap())
            .unwrap();
    assert_eq!(trace.generated().count(), 5, "the run completed");
    let notes: Vec<&str> = trace.notes.iter().map(|n| n.text.as_str()).collect();
    assert!(
        notes.iter().any(|n| n.contains("panicky disabled")),
        "{notes:?}"
    );
    // What the probe emitted before it panicked is kept.
    assert!(
        trace
            .metric("panicky", "seen")
            .is_some_and(|m| m.step.iter().all(|&s| s < 2))
    );
}

#[test]
fn files_that_are_not_plugins_give_clear_errors() {
    let data = tempfile::tempdir().unwrap();
    let txt = data.path().join("notes.txt");
    std::fs::write(&txt, "not a library").unwrap();
    let (_, err) = text(&eprof(
        data.path(),
        &["plugins", "check", txt.to_str().unwrap()],
    ));
    assert!(err.contains("not a loadable library"), "{err}");
    let lib = fixtures("no-entry");
    let (_, err) = text(&eprof(
        data.path(),
        &["plugins", "check", lib.to_str().unwrap()],
    ));
    assert!(
        err.contains("not an eprof plugin") && err.contains("eprof_plugin_entry"),
        "{err}"
    );
    // A broken file in the plugin folder does not stop other commands.
    std::fs::create_dir_all(data.path().join("plugins")).unwrap();
    std::fs::copy(
        &lib,
        data.path().join("plugins").join(lib.file_name().unwrap()),
    )
    .unwrap();
    let o = eprof(data.path(), &["plugins"]);
    let (out, err) = text(&o);
    assert!(
        o.status.success() && out.contains("activation"),
        "{out}{err}"
    );
    assert!(err.contains("warning: skipping plugin"), "{err}");
}
