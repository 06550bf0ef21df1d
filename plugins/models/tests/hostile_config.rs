//! Model files whose sizes the decoder divides by or splits into: zero heads, zero
//! key/value heads, heads that do not split into key/value groups. Each is a clear
//! error naming the file, never a division by zero or a panic.

use candle_core::Device;
use candle_core::quantized::gguf_file::{self, Value};
use eprof_core::Registry;

fn gguf(dir: &std::path::Path, heads: u32, kv: u32, key_length: Option<u32>) -> std::path::PathBuf {
    let mut md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.embedding_length", Value::U32(64)),
        ("llama.feed_forward_length", Value::U32(128)),
        ("llama.block_count", Value::U32(2)),
        ("llama.attention.head_count", Value::U32(heads)),
        ("llama.attention.head_count_kv", Value::U32(kv)),
    ];
    if let Some(k) = key_length {
        md.push(("llama.attention.key_length", Value::U32(k)));
    }
    let path = dir.join(format!("h{heads}-kv{kv}-{key_length:?}.gguf"));
    let refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let mut f = std::fs::File::create(&path).unwrap();
    gguf_file::write(&mut f, &refs, &[]).unwrap();
    path
}

fn load_error(path: &std::path::Path) -> String {
    eprof_models::link();
    let reg = Registry::discover().unwrap();
    let src = eprof_models::load::detect(path).unwrap();
    match reg.adapter_for(&src).unwrap().load(&src, &Device::Cpu) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn gguf_head_counts_that_cannot_work_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (heads, kv, key, want) in [
        (0, 0, None, "the attention head count is 0"),
        (0, 1, Some(16), "the attention head count is 0"),
        (4, 0, None, "the key/value head count is 0"),
        (
            4,
            3,
            None,
            "4 attention heads are not a multiple of 3 key/value heads",
        ),
        (4, 2, Some(7), "a head of 7 values"),
    ] {
        let p = gguf(dir.path(), heads, kv, key);
        let e = load_error(&p);
        assert!(e.contains(want), "{heads}/{kv}/{key:?}: {e}");
        assert!(e.contains("GGUF metadata"), "{e}");
    }
}

#[test]
fn config_json_with_no_heads_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = serde_json::json!({
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 0, "vocab_size": 100,
        "rms_norm_eps": 1e-5
    });
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    let e = load_error(dir.path());
    assert!(
        e.contains("config.json") && e.contains("the attention head count is 0"),
        "{e}"
    );
}
