//! End-to-end, what a GPU user meets that runs without a GPU: `eprof model synth`
//! writes a real model's exact shapes with random weights, `model info` counts the
//! real model's parameters, `record` runs it (on the CPU here; `scripts/gpu-check.sh`
//! runs it on CUDA) and marks every trace `random_weights`; `model check-device`
//! compares a device's logits with the CPU's; `show` gives each channel of a run that
//! combined power sources its own line.

use std::path::Path;
use std::process::{Command, Output};

use eprof_tests::eprof_bin;

fn cmd(home: &Path, args: &[&str]) -> Output {
    Command::new(eprof_bin())
        .args(args)
        .env("EPROF_HOME", home)
        .env("HOME", home)
        .env_remove("EPROF_MODEL")
        .output()
        .unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let o = cmd(home, args);
    assert!(
        o.status.success(),
        "eprof {args:?} failed ({:?}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json(home: &Path, args: &[&str]) -> serde_json::Value {
    let out = ok(home, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{out}"))
}

#[test]
fn llama_3_2_1b_shape_has_the_real_parameter_count_and_records_as_random_weights() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let file = home.join("models").join("llama-3.2-1b.q4_0.gguf");
    let f = file.to_str().unwrap();
    let made = json(
        home,
        &[
            "model",
            "synth",
            "--shape",
            "llama-3.2-1b",
            "--dtype",
            "q4_0",
            f,
            "--json",
        ],
    );
    assert_eq!(made["parameters"], 1_235_814_400u64, "{made}");
    let info = json(home, &["model", "info", "--json", f]);
    let id = &info["identity"];
    assert_eq!(id["parameters"], 1_235_814_400u64, "{info}");
    assert_eq!(id["random_weights"], true);
    assert_eq!(
        (
            &id["layers"],
            &id["hidden_size"],
            &id["heads"],
            &id["kv_heads"]
        ),
        (&16.into(), &2048.into(), &32.into(), &8.into())
    );
    assert_eq!(id["vocab_size"], 128_256);
    assert_eq!(id["dtype"], "q4_0");
    let text = ok(home, &["model", "info", f]);
    assert!(
        text.contains("1235814400") && text.contains("random weights"),
        "{text}"
    );

    // Recorded on the CPU: two tokens at module depth, the trace says random weights.
    let v = json(
        home,
        &[
            "record",
            "What does a transformer layer compute?",
            "--model",
            f,
            "--max-tokens",
            "2",
            "--power",
            "synthetic",
            "--idle-ms",
            "0",
            "--quiet",
            "--json",
        ],
    );
    let trace_path = v["trace"].as_str().unwrap();
    let trace = eprof_format::decode_complete(&std::fs::read(trace_path).unwrap()).unwrap();
    assert!(
        trace.meta.model.random_weights,
        "the trace says random weights"
    );
    assert_eq!(trace.meta.model.parameters, 1_235_814_400);
    assert_eq!(v["summary"]["generated_tokens"], 2, "{v}");
    // 16 layers x 12 components timed at module depth, per step.
    let components = trace
        .spans
        .site
        .iter()
        .filter(|&&s| trace.sites[s as usize].is_component())
        .count();
    assert_eq!(components, 2 * 16 * 12);
    let shown = ok(home, &["show", trace_path]);
    assert!(shown.contains("RANDOM WEIGHTS"), "{shown}");
}

#[test]
fn smaller_shapes_their_k_quant_fallbacks_and_the_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let file = home.join("smol.gguf");
    let f = file.to_str().unwrap();
    // SmolLM2's rows of 576 and 1536 values: 576 is not a whole number of Q4_K's
    // 256-value blocks, so those matrices fall back to Q5_0 (as llama.cpp does).
    let made = json(
        home,
        &[
            "model",
            "synth",
            "--shape",
            "smollm2-135m",
            "--dtype",
            "q4_k",
            f,
            "--json",
        ],
    );
    assert_eq!(made["parameters"], 134_515_008u64);
    assert!(
        made["fallbacks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x[1] == "q5_0"),
        "{made}"
    );
    let info = json(home, &["model", "info", "--json", f]);
    assert_eq!(info["identity"]["parameters"], 134_515_008u64);
    let mix = info["weight_mix"].to_string();
    assert!(mix.contains("q4k") && mix.contains("q5_0"), "{mix}");
    // Deep depth runs on it (and the tokenizer round-trips any text).
    let tok = json(home, &["model", "tokenize", "--json", f, "héllo wörld 🙂"]);
    assert!(tok["ids"].as_array().unwrap().len() >= 5, "{tok}");

    let o = cmd(home, &["model", "synth", "--shape", "llama-9b", f]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("llama-3.2-1b") && err.contains("gemma-3-1b"),
        "{err}"
    );
    let o = cmd(
        home,
        &[
            "model",
            "synth",
            "--shape",
            "llama-3.2-1b",
            "--dtype",
            "q3",
            f,
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("q4_k"));
}

#[test]
fn check_device_against_the_cpu_itself_agrees_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let v = json(
        home,
        &[
            "model",
            "check-device",
            "--device",
            "cpu",
            "--tokens",
            "4",
            "--json",
            "builtin:tiny-llama",
        ],
    );
    assert_eq!(v["steps"].as_array().unwrap().len(), 5, "{v}");
    assert_eq!(v["greedy_agree_steps"], 5);
    assert_eq!(v["max_abs_diff"], 0.0);
    // A device this build cannot open says how to get one.
    let o = cmd(
        home,
        &[
            "model",
            "check-device",
            "--device",
            "cuda",
            "builtin:tiny-llama",
        ],
    );
    if !o.status.success() {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("device cuda") && err.contains("--features cuda"),
            "{err}"
        );
    }
}

#[test]
fn show_lists_each_channel_of_a_combined_source_with_its_resolution() {
    use eprof_format::synthetic::{self, Shape};
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let mut t = synthetic::trace(&Shape::default());
    let n = t.meta.power.channels.len();
    t.channel_sources = Some(
        (0..n)
            .map(|_| eprof_format::ChannelSource {
                source: "rapl".into(),
                nominal_resolution_ns: 2_000_000,
            })
            .collect(),
    );
    let path = home.join("combined.eprof");
    std::fs::write(&path, eprof_format::encode(&t)).unwrap();
    let shown = ok(home, &["show", path.to_str().unwrap()]);
    let name = &t.meta.power.channels[0].name;
    let line = shown
        .lines()
        .find(|l| l.trim_start().starts_with(name.as_str()) && l.contains("(rapl, "))
        .unwrap_or_else(|| panic!("no channel line for {name}:\n{shown}"));
    assert!(line.contains("resolution 2.000 ms"), "{line}");
    let json = json(home, &["show", path.to_str().unwrap(), "--json"]);
    let ch = &json["channels"][0];
    assert_eq!(ch["source"], "rapl", "{json}");
    assert!(ch["joules"].as_f64().unwrap() > 0.0);
}
