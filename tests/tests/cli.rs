//! End-to-end: the `eprof` binary on real files, a real SQLite index, the built-in
//! tiny model and the real SmolLM2 GGUF.

use std::path::Path;

use std::process::Command;

use eprof_format::synthetic::{self, Shape};

type Env = eprof_tests::CliEnv;

fn smollm2() -> String {
    real_model("EPROF_TEST_MODEL", eprof_models::SMOLLM2_FILE, "smollm2")
}

#[test]
fn setup_commands_work_on_a_fresh_data_dir() {
    let e = Env::new();
    let d: serde_json::Value = {
        let o = e
            .cmd(&["doctor", "--json"])
            .env("EPROF_NVML_LIB", "/nonexistent/libnvidia-ml.so.1")
            .output()
            .unwrap();
        assert!(o.status.success());
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let nvml = d["power_sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "nvml")
        .unwrap();
    assert_eq!(nvml["available"], false);
    assert!(
        nvml["detail"]
            .as_str()
            .unwrap()
            .contains("NVIDIA driver not found"),
        "{nvml}"
    );
    assert_eq!(d["index"]["ok"], true);
    let names: Vec<&str> = d["power_sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"synthetic") && names.contains(&"estimate"),
        "{names:?}"
    );
    assert_eq!(
        d["adapters"],
        serde_json::json!(["gemma3", "llama", "mistral", "qwen2"])
    );
    assert!(e.ok(&["doctor"]).contains("--power auto picks"));

    let p = e.json(&["plugins", "--json"]);
    let kinds: Vec<&str> = p
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"probe")
            && kinds.contains(&"model adapter")
            && kinds.contains(&"power source")
    );

    let l = e.json(&["power", "list", "--json"]);
    assert!(
        l.as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "synthetic" && s["available"] == true)
    );

    let r = e.json(&[
        "power",
        "read",
        "--source",
        "synthetic:w=20",
        "--samples",
        "3",
        "--interval-ms",
        "20",
        "--json",
    ]);
    let vals: Vec<f64> = r["readings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["values"][0].as_f64().unwrap())
        .collect();
    assert_eq!(vals.len(), 3);
    assert!(
        vals[1] > vals[0] && vals[2] > vals[1],
        "a counter rises: {vals:?}"
    );
    let text = e.ok(&["power", "read", "--source", "synthetic", "--samples", "2"]);
    assert!(text.contains("synthetic (counter)"), "{text}");

    // A saved powermetrics capture (real M2 Ultra output) reads without a Mac.
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/powermetrics/pumas-powermetrics-output-m2ultra.xml"
    );
    let r = e.json(&[
        "power",
        "read",
        "--source",
        "powermetrics",
        "--from-file",
        fixture,
        "--samples",
        "2",
        "--json",
    ]);
    assert_eq!(r["source"], "replay");
    assert_eq!(r["readings"][0]["values"][0].as_f64().unwrap(), 0.835188);
    assert!(
        r["readings"][0]["values"][3].is_null(),
        "DRAM is absent, not zero"
    );
}

#[test]
fn record_show_ls_export_import_rm_rebuild_with_the_builtin_model() {
    let e = Env::new();
    // No model anywhere: the built-in tiny Llama, said in one line.
    let o = e.run(&[
        "record",
        "hello there",
        "--power",
        "synthetic:w=15",
        "--idle-ms",
        "20",
        "--max-tokens",
        "6",
        "--quiet",
        // Module depth's metrics come from the probes asked for.
        "--probe",
        "activation",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("built-in tiny Llama with RANDOM WEIGHTS"),
        "{err}"
    );
    let id = e.json(&["ls", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let show = e.ok(&["show", &id[..8]]);
    for needle in [
        "phases",
        "pre_inference",
        "prefill",
        "decode",
        "post_inference",
        "tokens",
        "layers (all steps)",
        "L3",
        "down_proj",
        "activation/mean",
        "how the figures were obtained",
        // Made-up figures never read as measured.
        "synthetic",
        "made up by the synthetic power source",
    ] {
        assert!(show.contains(needle), "show lacks {needle:?}:\n{show}");
    }
    let s = e.json(&["show", &id, "--json"]);
    assert_eq!(s["generated_tokens"], 6);
    assert_eq!(s["layers"].as_array().unwrap().len(), 4);
    assert_eq!(s["components"].as_array().unwrap().len(), 12);
    let total = s["total"]["joules"].as_f64().unwrap();
    let phases: f64 = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["energy"]["joules"].as_f64().unwrap())
        .sum();
    assert!(
        (phases - total).abs() <= 1e-9 * total,
        "phases {phases} vs total {total}"
    );

    let json = e.json(&["export", &id, "--format", "json"]);
    assert!(json["spans"].as_array().unwrap().len() >= 6 * 4 * 13);
    assert!(json["spans"][0]["energy"]["label"].is_string());
    let chrome = e.json(&["export", &id, "--format", "chrome"]);
    let events = chrome["traceEvents"].as_array().unwrap();
    assert!(events.iter().any(|x| x["ph"] == "C"), "power counter track");
    assert!(
        events
            .iter()
            .any(|x| x["cat"] == "component" && x["name"] == "L0.q_proj")
    );
    let csv = e.data().join("csv");
    e.ok(&[
        "export",
        &id,
        "--format",
        "csv",
        "--out",
        csv.to_str().unwrap(),
    ]);
    for f in [
        "sections.csv",
        "tokens.csv",
        "spans.csv",
        "metrics.csv",
        "samples.csv",
    ] {
        let text = std::fs::read_to_string(csv.join(f)).unwrap();
        assert!(text.lines().count() > 1, "{f} is empty");
    }

    // A colleague imports the trace into their own data directory.
    let other = Env::new();
    let trace = e.data().join(format!("traces/{id}.eprof"));
    let mut t = eprof_format::decode_complete(&std::fs::read(&trace).unwrap()).unwrap();
    t.meta.machine.hostname = "colleague-laptop".into();
    let shared = other.data().join("from-colleague.eprof");
    std::fs::write(&shared, eprof_format::encode(&t)).unwrap();
    assert!(
        other
            .ok(&["import", shared.to_str().unwrap()])
            .contains("another machine")
    );
    let ls = other.json(&["ls", "--json"]);
    assert_eq!(ls[0]["imported"], true);
    assert_eq!(ls[0]["hostname"], "colleague-laptop");
    assert!(other.ok(&["ls"]).contains("(imported)"));
    let cmp = other.ok(&["compare", &id, trace.to_str().unwrap()]);
    assert!(
        cmp.contains("colleague-laptop") && cmp.contains("decode J/token"),
        "{cmp}"
    );

    // The index can be rebuilt from the traces alone.
    let before = e.json(&["ls", "--json"]);
    std::fs::remove_file(e.data().join("index.sqlite")).unwrap();
    assert!(e.ok(&["index", "rebuild"]).contains("indexed 1 traces"));
    let after = e.json(&["ls", "--json"]);
    assert_eq!(before[0]["total_j"], after[0]["total_j"]);
    assert_eq!(before[0]["trace_sha256"], after[0]["trace_sha256"]);

    e.ok(&["rm", &id]);
    assert!(!trace.exists());
    assert_eq!(e.json(&["ls", "--json"]).as_array().unwrap().len(), 0);
}

#[test]
fn depth_off_records_no_spans_and_deep_records_operations() {
    let e = Env::new();
    let common = [
        "--model",
        "builtin:tiny-llama",
        "--power",
        "synthetic",
        "--max-tokens",
        "4",
    ];
    let mut args = common.to_vec();
    args.extend(["--depth", "off"]);
    let id = e.record(&args);
    let s = e.json(&["show", &id, "--json"]);
    assert_eq!(s["layers"].as_array().unwrap().len(), 0);
    assert_eq!(s["generated_tokens"], 4);
    // Module depth times the components and records each component's activation
    // statistics (the layer and component metrics of the design); `--no-probes` times
    // alone.
    let metrics = |s: &serde_json::Value| -> Vec<String> {
        s["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap().to_string())
            .collect()
    };
    let mut args = common.to_vec();
    args.extend(["--depth", "module"]);
    let id = e.record(&args);
    let s = e.json(&["show", &id, "--json"]);
    assert_eq!(s["layer_components"].as_array().unwrap().len(), 4 * 12);
    assert_eq!(
        metrics(&s),
        [
            "activation/mean",
            "activation/std",
            "activation/max",
            "activation/sparsity"
        ]
    );
    args.push("--no-probes");
    let id = e.record(&args);
    let s = e.json(&["show", &id, "--json"]);
    assert_eq!(s["layer_components"].as_array().unwrap().len(), 4 * 12);
    assert_eq!(metrics(&s), Vec::<String>::new());
    let mut args = common.to_vec();
    args.extend(["--depth", "deep"]);
    let id = e.record(&args);
    let s = e.json(&["show", &id, "--json"]);
    let ops: Vec<&str> = s["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for op in [
        "attention.qk_matmul",
        "attention.scale",
        "attention.mask_apply",
        "attention.softmax",
        "attention.value_matmul",
        "attention.kv_cache_append",
    ] {
        assert!(ops.contains(&op), "{op} missing from {ops:?}");
    }
    let metrics: Vec<&str> = s["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    for m in [
        "activation/mean",
        "activation/std",
        "activation/max",
        "activation/sparsity",
        "attention/entropy",
        "attention/max_weight",
        "attention/sparsity",
        "kill_ratio/kill_ratio",
        "variance_ratio/variance_ratio",
        "model/flops",
    ] {
        assert!(metrics.contains(&m), "{m} missing from {metrics:?}");
    }
    assert!(
        e.ok(&["show", &id])
            .contains("attention dropout is the identity")
    );
}

#[test]
fn estimate_and_sampler_sources_label_their_figures() {
    let e = Env::new();
    let id = e.record(&[
        "--model",
        "builtin:tiny-llama",
        "--power",
        "estimate:idle=3,max=30",
        "--max-tokens",
        "4",
    ]);
    let s = e.json(&["show", &id, "--json"]);
    assert_eq!(s["total"]["label"], "estimated");
    assert!(
        s["labels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l[0] == "estimated"),
        "{}",
        s["labels"]
    );
    let text = e.ok(&["show", &id]);
    assert!(
        text.contains("from a power model, not a measurement") && text.contains("idle_w: 3"),
        "{text}"
    );

    // Replaying a colleague's recorded stream: a sampler, never "measured".
    let csv = e.data().join("stream.csv");
    let mut text = String::from("t_s,cpu_w,gpu_w\n");
    for i in 0..=40 {
        text.push_str(&format!("{},{},{}\n", f64::from(i) * 0.01, 5 + i % 3, 20));
    }
    std::fs::write(&csv, text).unwrap();
    let spec = format!("replay:{}", csv.display());
    let id = e.record(&[
        "--model",
        "builtin:tiny-llama",
        "--power",
        &spec,
        "--power-interval",
        "5",
        "--max-tokens",
        "4",
    ]);
    let s = e.json(&["show", &id, "--json"]);
    assert_eq!(s["source"], "replay");
    let labels: Vec<&str> = s["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l[0].as_str().unwrap())
        .collect();
    assert!(
        !labels.contains(&"measured") && !labels.contains(&"estimated"),
        "{labels:?}"
    );
    let text = e.ok(&["show", &id]);
    assert!(
        text.contains("power      replay (sampler)") && text.contains("resolution 10.000 ms"),
        "{text}"
    );

    let id = e.record(&[
        "--model",
        "builtin:tiny-llama",
        "--power",
        "synthetic:mode=sampler,w=8",
        "--power-interval",
        "5",
        "--max-tokens",
        "4",
    ]);
    let s = e.json(&["show", &id, "--json"]);
    let labels: Vec<&str> = s["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l[0].as_str().unwrap())
        .collect();
    assert!(
        !labels.contains(&"measured"),
        "a sampler never measures: {labels:?}"
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let e = Env::new();
    let o = e.run(&[
        "record",
        "hi",
        "--model",
        "/nonexistent/model.gguf",
        "--power",
        "synthetic",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/nonexistent/model.gguf") && err.contains("does not exist"),
        "{err}"
    );

    let o = e.run(&[
        "record",
        "hi",
        "--model",
        "builtin:tiny-llama",
        "--power",
        "nvml-typo",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown power source \"nvml-typo\""));

    // A truncated trace still shows what it holds, says so, and exits 3.
    let id = e.record(&[
        "--model",
        "builtin:tiny-llama",
        "--power",
        "synthetic",
        "--max-tokens",
        "5",
    ]);
    let path = e.data().join(format!("traces/{id}.eprof"));
    let bytes = std::fs::read(&path).unwrap();
    let cut = e.data().join("cut.eprof");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    let o = e.run(&["show", cut.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("WARNING: trace is truncated") && out.contains("phases"),
        "{out}"
    );
    let not_trace = e.data().join("notes.txt");
    std::fs::write(&not_trace, "hello").unwrap();
    let o = e.run(&["show", not_trace.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an eprof trace"));
}

/// `export --format parquet`: runs by id, by filter or all; a trace that cannot be
/// read is named and skipped while the others are exported (exit 3); run selection
/// mistakes are clear errors. (DuckDB reads the result in tests/py/test_dataset.py.)
#[test]
fn parquet_export_selects_runs_and_skips_a_broken_trace() {
    let e = Env::new();
    let a = e.record(&[
        "--model",
        "builtin:tiny-llama",
        "--power",
        "synthetic",
        "--max-tokens",
        "4",
        "--tag",
        "keep",
    ]);
    let b = e.record_tiny(3);
    let ds = e.data().join("ds");
    let ds = ds.to_str().unwrap();

    let err = |args: &[&str]| {
        let o = e.run(args);
        assert_ne!(o.status.code(), Some(0), "eprof {args:?} should fail");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    assert!(err(&["export", "--format", "parquet", "--all"]).contains("needs --out DIR"));
    assert!(err(&["export", "--format", "parquet", "--out", ds]).contains("which runs?"));
    assert!(err(&["export", &a, "--format", "parquet", "--out", ds, "--all"]).contains("not both"));
    assert!(err(&["export", &a, &b]).contains("exports one run"));
    assert!(err(&["export", "--all"]).contains("for --format parquet only"));

    // By filter: the tagged run only.
    let out = e.ok(&[
        "export", "--format", "parquet", "--out", ds, "--tag", "keep",
    ]);
    assert!(
        out.contains("added 1 run (") && out.contains("runs 1,"),
        "{out}"
    );
    // By id: one already there, one new.
    let out = e.ok(&["export", &a, &b, "--format", "parquet", "--out", ds]);
    assert!(
        out.contains("added 1 run (") && out.contains("1 already in the dataset"),
        "{out}"
    );

    // A third run whose trace is then broken: named, skipped, exit 3; the good one is
    // still exported.
    let c = e.record_tiny(3);
    e.record_tiny(3);
    let broken = e.data().join(format!("traces/{c}.eprof"));
    std::fs::write(&broken, b"not a trace at all").unwrap();
    let o = e.run(&["export", "--format", "parquet", "--out", ds, "--all"]);
    assert_eq!(o.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(&format!("{c}.eprof")) && stderr.contains("skipped"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("added 1 run (") && stdout.contains("2 already"),
        "{stdout}"
    );
    let runs = std::fs::read_dir(Path::new(ds).join("runs"))
        .unwrap()
        .count();
    assert_eq!(runs, 3, "one file per export that added runs");
}

/// `eprof bench` with two configurations on the built-in model and a synthetic
/// source with seeded noise: ten interleaved runs in one group, each an ordinary trace;
/// `eprof compare` of the two configurations prints intervals and verdicts whose
/// numbers equal a recomputation from the runs' own `show --json`; groups list, gate
/// and delete as a whole.
#[test]
fn bench_groups_interleaved_runs_and_compare_recomputes_from_the_traces() {
    let e = Env::new();
    let o = e.run(&[
        "bench",
        "Give me three tips.",
        "--model",
        "builtin:tiny-llama",
        "--power",
        "synthetic:noise=2,seed=7",
        "--depth",
        "off",
        "--depth",
        "module",
        "--repeat",
        "5",
        "--max-tokens",
        "16",
        "--idle-ms",
        "20",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let group = report["configurations"][0]["group"]
        .as_str()
        .unwrap_or_else(|| panic!("no group id in {report}"))
        .to_string();
    assert!(stderr.contains(&format!("bench {group}:")), "{stderr}");

    // A group id where a run is expected points to what takes groups.
    let o = e.run(&["show", &group]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("is a group of runs") && err.contains("eprof compare"),
        "{err}"
    );

    // Ten runs in one group, alternating configurations, repeats 0..5 each.
    let runs = e.json(&["ls", "--group", &group, "--json"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 10);
    let mut by_order: Vec<&serde_json::Value> = runs.iter().collect();
    by_order.sort_by_key(|r| r["run_order"].as_u64());
    for (i, r) in by_order.iter().enumerate() {
        assert_eq!(r["run_order"].as_u64(), Some(i as u64));
        assert_eq!(r["config"].as_u64(), Some(i as u64 % 2), "interleaved");
        assert_eq!(r["repeat"].as_u64(), Some(i as u64 / 2));
        let label = if i % 2 == 0 {
            "depth=off"
        } else {
            "depth=module"
        };
        assert_eq!(r["config_label"], label);
        assert_eq!(r["depth"], label.trim_start_matches("depth="));
    }
    let groups = e.json(&["ls", "--groups", "--json"]);
    assert_eq!(groups[0]["id"], group.as_str());
    assert_eq!(groups[0]["runs"], 10);

    // Recompute J per generated token and decode tok/s from each run's show --json.
    let values = |config: u64, key: &str| -> Vec<f64> {
        by_order
            .iter()
            .filter(|r| r["config"].as_u64() == Some(config))
            .map(|r| {
                let s = e.json(&["show", r["id"].as_str().unwrap(), "--json"]);
                s[key].as_f64().unwrap()
            })
            .collect()
    };
    let cmp = e.json(&[
        "compare",
        &format!("{group}/depth=off"),
        &format!("{group}/1"),
        "--json",
    ]);
    assert_eq!(cmp, report, "compare reports what bench reported");
    for key in ["j_per_generated_token", "decode_tokens_per_s"] {
        let (a, b) = (values(0, key), values(1, key));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let var = |v: &[f64]| {
            let m = mean(v);
            v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64
        };
        let (va, vb) = (var(&a) / 5.0, var(&b) / 5.0);
        let df = (va + vb).powi(2) / (va * va / 4.0 + vb * vb / 4.0);
        let half = eprof_format::stats::t_quantile(0.975, df) * (va + vb).sqrt();
        let diff = mean(&b) - mean(&a);
        let fig = cmp["comparisons"][0]["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == key)
            .unwrap();
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs());
        assert!(
            close(fig["mean_a"].as_f64().unwrap(), mean(&a)),
            "{key} {fig}"
        );
        assert!(
            close(fig["mean_b"].as_f64().unwrap(), mean(&b)),
            "{key} {fig}"
        );
        assert!(close(fig["diff"].as_f64().unwrap(), diff), "{key} {fig}");
        assert!(
            close(fig["ci_low"].as_f64().unwrap(), diff - half),
            "{key} {fig}"
        );
        assert!(
            close(fig["ci_high"].as_f64().unwrap(), diff + half),
            "{key} {fig}"
        );
        let conf = &report["configurations"][0]["figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == key)
            .unwrap()["stats"];
        let t4 = eprof_format::stats::t_quantile(0.975, 4.0);
        assert!(
            close(conf["sd"].as_f64().unwrap(), var(&a).sqrt()),
            "{conf}"
        );
        if conf["method"] == "student_t" {
            assert!(close(
                conf["ci_high"].as_f64().unwrap(),
                mean(&a) + t4 * (var(&a) / 5.0).sqrt()
            ));
        }
        // The text report says the same thing in words.
        let verdict = fig["verdict"].as_str().unwrap().replace('_', " ");
        let text = e.ok(&["compare", &group]);
        assert!(text.contains(&verdict), "{text}");
    }
    // A verdict is what its interval says: a headline figure differs exactly when the
    // interval of the difference excludes zero.
    for f in cmp["comparisons"][0]["figures"].as_array().unwrap() {
        if f["family"] != "run" {
            continue;
        }
        let (lo, hi) = (
            f["ci_low"].as_f64().unwrap(),
            f["ci_high"].as_f64().unwrap(),
        );
        let excludes_zero = lo > 0.0 || hi < 0.0;
        assert_eq!(
            f["verdict"] != "no_detectable_difference",
            excludes_zero,
            "{f}"
        );
    }

    // A regression gate, on a difference no noise hides: 200 tokens cost more than 2
    // (one warm-up: a first run in a process can take several times longer).
    let o = e.run(&[
        "bench",
        "Give me three tips.",
        "--model",
        "builtin:tiny-llama",
        "--power",
        "synthetic:noise=2",
        "--depth",
        "off",
        "--max-tokens",
        "2",
        "--max-tokens",
        "200",
        "--repeat",
        "3",
        "--warmup",
        "1",
        "--idle-ms",
        "0",
        "--fail-if-higher",
        "50",
    ]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("over the 50% allowed"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("max_tokens=200 vs") && text.contains("higher"),
        "{text}"
    );
    let gated = e.json(&["ls", "--groups", "--json"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(gated, group);
    let o = e.run(&["compare", &gated, "--fail-if-higher", "100000"]);
    assert_eq!(o.status.code(), Some(0));
    e.ok(&["rm", &gated]);

    // Mistakes are clear errors.
    let err = |args: &[&str]| String::from_utf8_lossy(&e.run(args).stderr).to_string();
    assert!(err(&["compare", &format!("{group}/nope"), &group]).contains("has no configuration"));
    assert!(err(&["compare", &format!("{group}/0")]).contains("is one configuration"));
    assert!(err(&["compare", "gffffffffffff"]).contains("no group"));
    assert!(err(&["bench", "x", "--repeat", "1"]).contains("2 or more"));

    // rm of a group removes its runs and their traces.
    let out = e.ok(&["rm", &group]);
    assert!(out.contains("group") && out.contains("10 runs"), "{out}");
    assert_eq!(e.json(&["ls", "--json"]).as_array().unwrap().len(), 0);
}

/// Ctrl-C (SIGINT) during `eprof bench` stops after the current run, which ends
/// `cancelled` and is left out; the finished runs stay in the index and are reported.
/// During `eprof record` the run stops at the next token, is finished and indexed, and
/// the exit status is 130.
#[test]
fn ctrl_c_keeps_finished_runs_and_finishes_the_trace() {
    use std::io::{BufRead, BufReader};
    let e = Env::new();
    let interrupt = |child: &std::process::Child| {
        let ok = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    let mut child = e
        .cmd(&[
            "bench",
            "Give me three tips.",
            "--model",
            "builtin:tiny-llama",
            "--power",
            "synthetic",
            "--max-tokens",
            "300",
            "--repeat",
            "50",
            "--warmup",
            "0",
            "--idle-ms",
            "0",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // Bounded: at most 200 lines (50 runs print 52).
    for _ in 0..200 {
        let Some(Ok(l)) = lines.next() else { break };
        let third = l.contains("[3/50]");
        seen.push(l);
        if third {
            interrupt(&child);
            break;
        }
    }
    // Drain stderr on its own thread while the report is read from stdout (a full
    // pipe on either side would stall the other).
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let out = child.wait_with_output().unwrap();
    let stderr = format!("{}\n{}", seen.join("\n"), rest.join().unwrap().join("\n"));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("interrupted: "), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let group = report["configurations"][0]["group"].as_str().unwrap();
    let finished = report["configurations"][0]["runs"]
        .as_array()
        .unwrap()
        .len();
    assert!((3..50).contains(&finished), "{finished} runs reported");
    let rows = e.json(&["ls", "--group", group, "--json"]);
    let rows = rows.as_array().unwrap();
    let cancelled = rows
        .iter()
        .filter(|r| r["stop_reason"] == "cancelled")
        .count();
    assert!(cancelled <= 1, "{rows:?}");
    assert_eq!(rows.len(), finished + cancelled, "every finished run kept");

    // record: stops at the next token, trace finished and indexed, exit 130.
    let mut child = e
        .cmd(&[
            "record",
            "Give me three tips.",
            "--model",
            "builtin:tiny-llama",
            "--power",
            "synthetic",
            "--max-tokens",
            "8000",
            "--idle-ms",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first streamed bytes mean generation has started.
    let mut first = [0u8; 1];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("ends `cancelled`"), "{stderr}");
    let runs = e.json(&["ls", "--json"]);
    let last = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["group_id"].is_null())
        .unwrap();
    assert_eq!(last["stop_reason"], "cancelled");
    assert_eq!(last["complete"], true, "the trace was finished, not cut");
    assert!(last["generated_tokens"].as_u64().unwrap() < 8000);
}

#[test]
fn two_processes_importing_at_once_lose_no_run() {
    let e = Env::new();
    let src = e.data().join("incoming");
    std::fs::create_dir_all(&src).unwrap();
    // Four writers on a fresh data directory: they also race to create the index.
    let mut batches = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for i in 0..24 {
        let mut t = synthetic::trace(&Shape::default());
        t.meta.id = format!("{i:016x}");
        let p = src.join(format!("{i}.eprof"));
        std::fs::write(&p, eprof_format::encode(&t)).unwrap();
        batches[i % 4].push(p.display().to_string());
    }
    let children: Vec<_> = batches
        .iter()
        .map(|b| {
            let mut args = vec!["import"];
            args.extend(b.iter().map(String::as_str));
            e.cmd(&args)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(e.json(&["ls", "--json"]).as_array().unwrap().len(), 24);
}

#[test]
fn smollm2_deep_module_and_off_end_to_end() {
    let model = smollm2();
    let e = Env::new();
    // The mix of weight types, by share of parameters, and which kernels run them.
    let info = e.ok(&["model", "info", &model]);
    assert!(
        info.contains("weights       q4_1 78.9%, q8_0 21.0%, f32 <0.1%"),
        "{info}"
    );
    assert!(info.contains("cpu kernels   eprof "), "{info}");
    e.ok(&[
        "record",
        "Hi",
        "--model",
        &model,
        "--power",
        "synthetic",
        "--max-tokens",
        "2",
        "--idle-ms",
        "0",
        "--quiet",
        "--threads",
        "1",
    ]);
    let rows = e.json(&["ls", "--json"]);
    let shown = e.ok(&["show", rows[0]["id"].as_str().unwrap()]);
    assert!(
        shown.contains("execution  1 thread, kernels eprof "),
        "--threads reaches the trace: {shown}"
    );
    let id = e.record(&[
        "--model",
        &model,
        "--depth",
        "deep",
        "--power",
        "synthetic",
        "--max-tokens",
        "8",
    ]);
    let show = e.ok(&["show", &id]);
    for needle in [
        "L29",
        "q_proj",
        "post_norm",
        "down_proj",
        "attention.softmax",
        "attention/entropy",
        "kill_ratio/kill_ratio",
        "tokenization",
        "prefill/lm_head",
        "decode/sampling",
        "memory_cleanup",
    ] {
        assert!(show.contains(needle), "show lacks {needle:?}");
    }
    let s = e.json(&["show", &id, "--json"]);
    assert_eq!(s["layers"].as_array().unwrap().len(), 30);
    assert_eq!(s["components"].as_array().unwrap().len(), 12);
    assert_eq!(s["layer_components"].as_array().unwrap().len(), 30 * 12);
    assert_eq!(s["generated_tokens"], 8);
    assert!(
        s["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["energy"]["joules"].as_f64().unwrap() > 0.0)
    );
    assert!(e.ok(&["ls"]).contains("SmolLM2"));
    for depth in ["module", "off"] {
        let id = e.record(&[
            "--model",
            &model,
            "--depth",
            depth,
            "--power",
            "synthetic",
            "--max-tokens",
            "4",
        ]);
        let s = e.json(&["show", &id, "--json"]);
        assert_eq!(
            s["layers"].as_array().unwrap().len(),
            if depth == "off" { 0 } else { 30 }
        );
    }
}

#[test]
fn a_trace_written_with_out_is_indexed_absolute_and_kept_by_rm() {
    let e = Env::new();
    let work = e.data().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let o = e
        .cmd(&[
            "record",
            "hi",
            "--model",
            "builtin:tiny-llama",
            "--power",
            "synthetic",
            "--idle-ms",
            "0",
            "--max-tokens",
            "3",
            "--quiet",
            "--out",
            "mine.eprof",
        ])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let row = &e.json(&["ls", "--json"])[0];
    let path = row["trace_path"].as_str().unwrap();
    assert!(Path::new(path).is_absolute(), "{path}");
    // Found from another directory.
    e.ok(&["show", row["id"].as_str().unwrap()]);
    let out = e.ok(&["rm", row["id"].as_str().unwrap()]);
    assert!(
        out.contains("kept") && work.join("mine.eprof").exists(),
        "{out}"
    );
}

/// GET `path` from 127.0.0.1:`port`: (status, body).
fn http_get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let r = eprof_tests::http(port, "GET", path, &[], b"");
    (r.status, r.body)
}

#[test]
fn view_writes_one_html_file_and_serves_the_trace() {
    use base64::Engine as _;
    let e = Env::new();
    let id = e.record_tiny(4);
    let trace = std::fs::read(e.data().join(format!("traces/{id}.eprof"))).unwrap();

    // --html: the viewer with the trace inside, byte for byte.
    let html = e.data().join("shared.html");
    let out = e.ok(&["view", &id, "--html", html.to_str().unwrap()]);
    assert!(out.contains("1 trace(s) inside"), "{out}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("id=\"eprof-wasm\"") && page.contains("DecompressionStream"));
    let tag = format!(
        "<script class=\"eprof-trace\" type=\"application/octet-stream\" data-name=\"{id}.eprof\">"
    );
    let start = page.find(&tag).expect("the trace is embedded") + tag.len();
    let end = start + page[start..].find("</script>").unwrap();
    let embedded = base64::engine::general_purpose::STANDARD
        .decode(&page[start..end])
        .unwrap();
    assert_eq!(embedded, trace);

    // A file that is not a trace is refused before anything is written.
    let junk = e.data().join("junk.eprof");
    std::fs::write(&junk, "hello").unwrap();
    let bad = e.data().join("bad.html");
    let o = e.run(&[
        "view",
        junk.to_str().unwrap(),
        "--html",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an eprof trace"));
    assert!(!bad.exists());

    // Served: the page at /, the trace at the URL the page is given.
    let mut child = e
        .cmd(&["view", &id, "--no-open"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (url, port) = eprof_tests::served_url(&mut child);
    let trace_path = url.split("?trace=").nth(1).unwrap().to_string();
    let (status, body) = http_get(port, "/");
    let (tstatus, tbody) = http_get(port, &trace_path);
    let (missing, _) = http_get(port, "/trace/9/nope.eprof");
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("id=\"eprof-wasm\""));
    assert_eq!(tstatus, 200);
    assert_eq!(tbody, trace);
    assert_eq!(missing, 404);
}

#[test]
fn every_command_survives_a_closed_stdout() {
    let e = Env::new();
    let id = e.record_tiny(4);
    let trace = e.data().join(format!("traces/{id}.eprof"));
    let trace = trace.to_str().unwrap();
    let html = e.data().join("v.html");
    let dataset = e.data().join("dataset").to_str().unwrap().to_string();
    let tiny = "builtin:tiny-llama";
    let record = [
        "record",
        "Hello",
        "--model",
        tiny,
        "--power",
        "synthetic",
        "--max-tokens",
        "4",
        "--idle-ms",
        "0",
    ];
    let cases: Vec<Vec<&str>> = vec![
        vec!["ls"],
        vec!["ls", "--json"],
        vec!["show", &id],
        vec!["show", &id, "--json"],
        vec!["export", &id],
        vec!["export", &id, "--format", "chrome"],
        vec!["export", "--all", "--format", "parquet", "--out", &dataset],
        vec!["compare", &id, trace],
        vec!["compare", &id, trace, "--json"],
        vec!["doctor"],
        vec!["doctor", "--json"],
        vec!["plugins"],
        vec!["plugins", "--json"],
        vec!["power", "list"],
        vec!["power", "list", "--json"],
        vec![
            "power",
            "read",
            "--source",
            "synthetic",
            "--samples",
            "2",
            "--interval-ms",
            "1",
        ],
        vec!["model", "info", tiny],
        vec!["model", "tokenize", tiny, "hello world"],
        record.to_vec(),
        [&record[..], &["--json"]].concat(),
        vec!["view", &id, "--html", html.to_str().unwrap()],
        vec!["import", trace],
        vec!["index", "rebuild"],
        vec!["rm", &id],
        vec!["--help"],
    ];
    for args in cases {
        // The reader is gone before eprof writes a byte: every write fails at once.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = e
            .cmd(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "eprof {args:?} panicked: {err}");
        assert_eq!(o.status.code(), Some(0), "eprof {args:?}: {err}");
    }
}

/// A real model file: `$ENV`, else the data directory's `models/FILE`; fails (never
/// skips) when it is missing.
fn real_model(env: &str, file: &str, fetch: &str) -> String {
    let p = eprof_models::model_path(env, file);
    assert!(
        p.exists(),
        "the real model is missing at {}: run scripts/fetch-model.sh {fetch} (or set {env})",
        p.display()
    );
    p.display().to_string()
}

/// `eprof record` with the default template on each real model: the prompt the model
/// saw (the trace's prompt tokens, joined) is what the model's own template renders in
/// Jinja2, the reference implementation (fixture: `scripts/make-fixtures.sh`). Gemma
/// 3's file has no template: the prompt is the text as given, after `<bos>`.
#[test]
fn record_uses_each_models_own_chat_template() {
    let e = Env::new();
    let models = [
        (
            "smollm2",
            real_model("EPROF_TEST_MODEL", eprof_models::SMOLLM2_FILE, "smollm2"),
        ),
        (
            "qwen2.5-coder-0.5b",
            real_model(
                "EPROF_TEST_QWEN2",
                "Qwen2.5-Coder-0.5B-Instruct.gguf",
                "qwen2.5-coder-0.5b",
            ),
        ),
        (
            "gemma3-270m",
            real_model(
                "EPROF_TEST_GEMMA3",
                "gemma-3-270m-q4_k_m.gguf",
                "gemma3-270m",
            ),
        ),
    ];
    for (name, model) in models {
        let f: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/fixtures/tokenizers/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let user = "Give me three tips for staying healthy.";
        let out = e.data().join(format!("{name}.eprof"));
        let out_s = out.display().to_string();
        e.ok(&[
            "record",
            user,
            "--model",
            &model,
            "--max-tokens",
            "1",
            "--power",
            "synthetic",
            "--idle-ms",
            "0",
            "--out",
            &out_s,
        ]);
        let trace = e.json(&["export", &out_s, "--format", "json"]);
        let prompt: Vec<&serde_json::Value> = trace["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["phase"] == "prompt")
            .collect();
        let text: String = prompt.iter().map(|t| t["text"].as_str().unwrap()).collect();
        let want = match f["chat"]["prompt"].as_str() {
            Some(p) => {
                assert_eq!(f["chat"]["user"].as_str(), Some(user));
                p.to_string()
            }
            None => format!("<bos>{user}"),
        };
        assert_eq!(text, want, "{name}: the prompt the model saw");
        println!(
            "{name}: {} prompt tokens, {:?}",
            prompt.len(),
            &text[..text.len().min(60)]
        );
    }
}

#[test]
fn show_from_to_gives_what_a_stretch_cost_and_its_parts_add_up() {
    let env = eprof_tests::CliEnv::new();
    let id = env.record_tiny(8);
    let whole = env.json(&["show", &id, "--json"]);
    let total = whole["total"]["joules"].as_f64().expect("a total");
    let head = env.json(&["show", &id, "--to", "#3", "--json"]);
    assert_eq!(head["tokens"], serde_json::json!([0, 3]), "{head}");
    let cut = head["to_ns"].as_u64().unwrap().to_string();
    let tail = env.json(&["show", &id, "--from", &cut, "--json"]);
    assert_eq!(tail["tokens"], serde_json::json!([4, 7]), "{tail}");
    let sum = head["total"]["joules"].as_f64().unwrap() + tail["total"]["joules"].as_f64().unwrap();
    assert!((sum - total).abs() <= 1e-9 * total, "{sum} vs {total}");
    for r in [&head, &tail] {
        let dt = r["duration_ns"].as_f64().unwrap() * 1e-9;
        let w = r["avg_power_w"].as_f64().unwrap();
        assert!((w * dt - r["total"]["joules"].as_f64().unwrap()).abs() < 1e-12);
        assert_eq!(r["channels"][0]["label"], "synthetic", "{r}");
    }
    let text = env.ok(&["show", &id, "--from", "#2", "--to", "#4"]);
    assert!(
        text.contains("tokens #2 to #4") && text.contains("in decode"),
        "{text}"
    );
    let o = env.run(&["show", &id, "--from", "#99"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("#0 to #7"));
    let o = env.run(&["show", &id, "--from", "#5", "--to", "#1"]);
    assert_eq!(o.status.code(), Some(2), "backwards is a usage error");
    let o = env.run(&["show", &id, "--from", "2h"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_forced_kernel_isa_is_checked_before_the_model_loads() {
    let env = eprof_tests::CliEnv::new();
    for (isa, says) in [("sse", "unknown; one of"), ("scalar", "")] {
        let o = env
            .cmd(&[
                "record",
                "hi",
                "--max-tokens",
                "2",
                "--power",
                "synthetic",
                "--quiet",
            ])
            .env("EPROF_CPU_ISA", isa)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if says.is_empty() {
            assert!(o.status.success(), "{isa}: {err}");
        } else {
            assert_eq!(o.status.code(), Some(2), "{isa}: {err}");
            assert!(err.contains(says) && err.contains("avx2"), "{err}");
        }
    }
}
