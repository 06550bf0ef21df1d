//! The command line as a newcomer meets it: one exit code per kind of failure, one
//! spelling per flag, prompts from where people keep them, and the built-in model
//! announced for what it is.

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

type Env = eprof_tests::CliEnv;

/// `eprof record` of a short prompt on the synthetic source, without an idle
/// baseline, generating `tokens`, with `extra` flags.
fn quick(e: &Env, tokens: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "record",
        "hi",
        "--power",
        "synthetic",
        "--idle-ms",
        "0",
        "--max-tokens",
        tokens,
        "-q",
    ];
    args.extend_from_slice(extra);
    e.run(&args)
}

/// A short recorded run; its trace path.
fn trace(e: &Env) -> String {
    let out = e.path("run.eprof");
    let o = quick(e, "2", &["--out", &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The README's table: 2 is an invalid command line, whichever command and however
/// it is invalid; 1 a failure; 3 a damaged trace.
#[test]
fn every_command_exits_as_the_table_says() {
    let e = Env::new();
    let trace = trace(&e);
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    for (args, code) in [
        (vec!["export", trace.as_str(), "--format", "xml"], 2),
        (vec!["ls", "--sort", "joules"], 2),
        (
            vec!["record", "hi", "--power", "foo", "--model", "/none.gguf"],
            2,
        ),
        (vec!["bench", "hi", "--power", "foo", "--repeat", "2"], 2),
        (vec!["bench", "hi", "--repeat", "1"], 2),
        (vec!["compare", trace.as_str()], 2),
        (vec!["export"], 2),
        (vec!["export", trace.as_str(), "--format", "csv"], 2),
        (vec!["export", trace.as_str(), "--format", "eprof"], 2),
        (vec!["power", "read"], 2),
        (vec!["no-such-command"], 2),
        // A file that is no trace at all: the same failure from both.
        (vec!["import", readme], 1),
        (vec!["show", readme], 1),
        (vec!["show", "/no/such/run.eprof"], 1),
    ] {
        let o = e.run(&args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("error"),
            "{args:?} says why: {}",
            stderr(&o)
        );
    }
    // A damaged trace: 3, from `show` and `import` alike.
    let bytes = std::fs::read(&trace).unwrap();
    let cut = e.path("cut.eprof");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    for cmd in ["show", "import"] {
        let o = e.run(&[cmd, &cut]);
        assert_eq!(
            o.status.code(),
            Some(3),
            "{cmd} of a cut trace: {}",
            stderr(&o)
        );
    }
}

/// `power read` takes `record`'s spelling; the old one still works, with a note.
#[test]
fn power_read_and_view_take_the_flags_record_takes() {
    let e = Env::new();
    let o = e.run(&[
        "power",
        "read",
        "--power",
        "synthetic",
        "--samples",
        "2",
        "--power-interval",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("old spelling"));
    let o = e.run(&[
        "power",
        "read",
        "--source",
        "synthetic",
        "--samples",
        "2",
        "--interval-ms",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--source is the old spelling of --power"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("--interval-ms is the old spelling"),
        "{}",
        stderr(&o)
    );

    // `view --out FILE.html`, as `export -o`; `--html` still works.
    let trace = trace(&e);
    let html = e.path("v.html");
    let o = e.run(&["view", &trace, "--out", &html]);
    if stderr(&o).contains("built without the viewer") {
        panic!("this test needs the viewer in the binary: run `cargo xtask viewer` first");
    }
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::metadata(&html).unwrap().len() > 1000);
    let old = e.path("old.html");
    let o = e.run(&["view", &trace, "--html", &old]);
    assert!(
        o.status.success() && Path::new(&old).exists(),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--html is the old spelling of --out"));
}

/// `record --out DIR/` writes DIR/RUN_ID.eprof (creating DIR), and an output that
/// cannot be written is refused before the model loads.
#[test]
fn record_out_takes_a_folder_and_is_checked_before_the_model_loads() {
    let e = Env::new();
    // Other outputs make their folder too.
    let t = trace(&e);
    for (args, made) in [
        (
            vec!["export", t.as_str(), "-o", &e.path("a/b/run.json")],
            "a/b/run.json",
        ),
        (
            vec![
                "export",
                t.as_str(),
                "--format",
                "eprof",
                "-o",
                &e.path("c/copy.eprof"),
            ],
            "c/copy.eprof",
        ),
    ] {
        let o = e.run(&args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(e.data().join(made).is_file(), "{made}");
    }
    let dir = format!("{}/", e.path("new/runs"));
    let o = quick(&e, "2", &["--json", "--out", &dir]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = v["id"].as_str().unwrap();
    assert!(Path::new(&format!("{dir}{id}.eprof")).is_file());

    let file = e.path("a-file");
    std::fs::write(&file, "x").unwrap();
    let o = e.run(&[
        "record",
        "hi",
        "--model",
        "/nonexistent/model.gguf",
        "--out",
        &format!("{file}/x.eprof"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot create the folder"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("model.gguf"),
        "reached the model: {}",
        stderr(&o)
    );
}

/// A prompt from standard input (`-`) or a file (`@FILE`); `@@` is a literal `@`.
#[test]
fn prompts_come_from_stdin_or_a_file() {
    let e = Env::new();
    let args = |p: &str| {
        vec![
            "record".to_string(),
            p.to_string(),
            "--power".into(),
            "synthetic".into(),
            "--idle-ms".into(),
            "0".into(),
            "--max-tokens".into(),
            "1".into(),
            "-q".into(),
            "--json".into(),
            "--raw".into(),
        ]
    };
    let prompt_of = |o: &Output| -> String {
        assert!(o.status.success(), "{}", stderr(o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let t = std::fs::read(v["trace"].as_str().unwrap()).unwrap();
        eprof_format::decode(&t).unwrap().trace.meta.prompt
    };
    let mut child = e
        .cmd(&args("-").iter().map(String::as_str).collect::<Vec<_>>())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from standard input")
        .unwrap();
    assert_eq!(
        prompt_of(&child.wait_with_output().unwrap()),
        "from standard input"
    );

    let f = e.path("prompt.txt");
    std::fs::write(&f, "from a file\nwith two lines").unwrap();
    let o = e.run(
        &args(&format!("@{f}"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(prompt_of(&o), "from a file\nwith two lines");
    let o = e.run(
        &args("@@handle")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(prompt_of(&o), "@handle");
    let o = e.run(
        &args("@/no/such/prompt.txt")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot read the prompt from /no/such/prompt.txt"));
}

/// Without --model and with no model anywhere, `record` says in a warning that the
/// built-in model has random weights and its text is noise.
#[test]
fn the_built_in_model_is_announced_loudly() {
    let e = Env::new();
    let o = quick(&e, "1", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning:") && err.contains("RANDOM WEIGHTS") && err.contains("text is noise"),
        "{err}"
    );
}

/// An error names each cause once (an I/O error's text is in its message and is its
/// source too).
#[test]
fn errors_do_not_repeat_their_cause() {
    let e = Env::new();
    let file = e.path("plain");
    std::fs::write(&file, "x").unwrap();
    let o = e.run(&[
        "model",
        "synth",
        "--shape",
        "smollm2-135m",
        &format!("{file}/x.gguf"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.matches("os error").count(), 1, "{err}");
}

/// `compare A B` gives B's difference from A and the ratio, and warns when the runs
/// are not like for like.
#[test]
fn compare_shows_difference_and_ratio_and_warns_on_unlike_runs() {
    let e = Env::new();
    let rec = |out: &str, prompt: &str, power: &str| {
        let o = e.run(&[
            "record",
            prompt,
            "--power",
            power,
            "--idle-ms",
            "0",
            "--max-tokens",
            "3",
            "-q",
            "--out",
            out,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let (a, b, c) = (e.path("a.eprof"), e.path("b.eprof"), e.path("c.eprof"));
    rec(&a, "hi", "synthetic:w=10");
    rec(&b, "hi", "synthetic:w=20");
    rec(&c, "another prompt", "estimate");
    let o = e.run(&["compare", &a, &b]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let total = text
        .lines()
        .skip_while(|l| !l.starts_with("against"))
        .find(|l| l.starts_with("total"))
        .unwrap_or_else(|| panic!("no difference table: {text}"));
    assert!(
        (total.contains(" +") || total.contains(" -")) && total.contains("(x"),
        "{total}"
    );
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));

    let o = e.run(&["compare", &a, &c]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("different power sources (synthetic / estimate)"),
        "{err}"
    );
    assert!(err.contains("different prompts"), "{err}");
}

/// `bench --repeat 2`: a warning that two runs make wide intervals, and no energy or
/// time interval below zero.
#[test]
fn bench_with_few_repeats_warns_and_keeps_intervals_above_zero() {
    let e = Env::new();
    let o = e.run(&[
        "bench",
        "hi",
        "--repeat",
        "2",
        "--warmup",
        "0",
        "--power",
        "synthetic:noise=5",
        "--idle-ms",
        "0",
        "--max-tokens",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("make wide 95% intervals"),
        "{}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut lows = Vec::new();
    fn walk(v: &serde_json::Value, lows: &mut Vec<f64>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(l) = m.get("ci_low").and_then(serde_json::Value::as_f64) {
                    lows.push(l);
                }
                m.values().for_each(|x| walk(x, lows));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, lows)),
            _ => {}
        }
    }
    walk(&v, &mut lows);
    assert!(!lows.is_empty(), "no intervals in {v}");
    assert!(lows.iter().all(|l| *l >= 0.0), "{lows:?}");
}

/// `index rebuild` keeps a run whose trace was written outside the data directory.
#[test]
fn index_rebuild_keeps_runs_recorded_elsewhere() {
    let e = Env::new();
    let trace = trace(&e);
    let ls = |e: &Env| -> Vec<serde_json::Value> {
        let o = e.run(&["ls", "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap()
    };
    assert_eq!(ls(&e).len(), 1);
    let o = e.run(&["index", "rebuild"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = ls(&e);
    assert_eq!(rows.len(), 1, "the run at {trace} was forgotten: {rows:?}");
    // A trace that is gone is dropped.
    std::fs::remove_file(&trace).unwrap();
    assert!(e.run(&["index", "rebuild"]).status.success());
    assert!(ls(&e).is_empty());
}

/// A run that failed before its first token keeps its partial trace; after a rebuild
/// `ls` says it FAILED instead of showing an empty row as if it were a run.
#[test]
fn a_failed_run_is_marked_in_ls_after_a_rebuild() {
    let e = Env::new();
    let mut t = eprof_format::synthetic::trace(&eprof_format::synthetic::Shape::default());
    t.meta.id = "badrun0000000001".into();
    t.tokens.retain(|k| k.step.is_none());
    t.end.as_mut().expect("synthetic traces end").stop_reason =
        eprof_format::RunStop::Error("the model could not be loaded on cuda".into());
    let traces = e.data().join("traces");
    std::fs::create_dir_all(&traces).unwrap();
    std::fs::write(
        traces.join("badrun0000000001.eprof"),
        eprof_format::encode(&t),
    )
    .unwrap();
    let o = e.run(&["index", "rebuild"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = e.run(&["ls"]);
    let text = String::from_utf8_lossy(&o.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("badrun0000"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("FAILED"), "{text}");
}

/// Figures the synthetic source made up never read as measured: not in `record`'s
/// summary, `ls`, `show`, or the exported JSON.
#[test]
fn synthetic_figures_are_labelled_synthetic_everywhere() {
    let e = Env::new();
    let out = e.path("s.eprof");
    let o = quick(&e, "3", &["--out", &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("total (synthetic)") && !err.contains("(measured)"),
        "{err}"
    );
    let ls = String::from_utf8_lossy(&e.run(&["ls"]).stdout).into_owned();
    assert!(ls.contains("synthetic") && !ls.contains("measured"), "{ls}");
    let show = e.run(&["show", &out, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["total"]["label"], "synthetic", "{v}");
    let labels: Vec<&str> = v["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l[0].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["synthetic"]);
    let json = e.run(&["export", &out]);
    let text = String::from_utf8_lossy(&json.stdout);
    assert!(
        !text.contains("\"measured\""),
        "exported JSON has a measured figure"
    );
}
