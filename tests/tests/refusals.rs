//! Requests that cannot run are refused before a model loads, with exit code 2 and a
//! message that names the setting, the same way from `record`, `bench` and the
//! server (whose cases are in `server.rs`).

use std::process::{Command, Output};

use eprof_tests::eprof_bin;

fn run(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(eprof_bin())
        .args(args)
        .env("EPROF_HOME", dir.path())
        .env("HOME", dir.path())
        .env_remove("EPROF_MODEL")
        .output()
        .unwrap()
}

#[test]
fn record_and_bench_refuse_impossible_settings_before_loading_a_model() {
    // A model path that does not exist: if the refusal came after loading, the
    // message would be about the model instead.
    let missing = "/nonexistent/model.gguf";
    for (args, want) in [
        (
            vec!["record", "   ", "--model", missing],
            "the prompt is empty",
        ),
        (
            vec!["record", "hi", "--model", missing, "--max-tokens", "0"],
            "max_tokens must be at least 1",
        ),
        (
            vec!["record", "hi", "--model", missing, "--top-p", "1.5"],
            "top_p 1.5 is outside (0, 1]",
        ),
        (
            vec!["record", "hi", "--model", missing, "--top-p", "0"],
            "top_p 0 is outside (0, 1]",
        ),
        (
            vec!["record", "hi", "--model", missing, "--idle-ms", "86400000"],
            "idle_ms 86400000 is over the limit",
        ),
        (
            vec!["bench", "", "--model", missing, "--repeat", "2"],
            "the prompt is empty",
        ),
    ] {
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains("model.gguf"),
            "{args:?} reached the model: {err}"
        );
    }
}

#[test]
fn bench_cooldown_must_be_a_finite_number_of_seconds() {
    for bad in ["inf", "NaN", "-1", "1e300", "soon"] {
        let flag = format!("--cooldown={bad}");
        let o = run(&[
            "bench",
            "hi",
            "--model",
            "builtin:tiny-llama",
            "--repeat",
            "2",
            &flag,
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "--cooldown {bad}: {err}");
        assert!(err.contains("--cooldown"), "--cooldown {bad}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn errors_name_what_is_wrong_with_a_model_folder_or_a_trace_path() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::fs::write(models.join("tiny.Q4_0.gguf"), b"not really").unwrap();
    // The folder that holds the GGUF file, given as the model.
    let o = run(&["record", "hi", "--model", models.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("without config.json") && err.contains("tiny.Q4_0.gguf"),
        "{err}"
    );
    // A trace path that does not exist is a missing file, not a missing run.
    let o = run(&["show", "/path/that/does/not/exist.eprof"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("no such file") && !err.contains("index"),
        "{err}"
    );
}
