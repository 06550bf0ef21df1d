//! The GGUF loader's reading of a file: its metadata, the decoder configuration and
//! tokenizer built from it, and every tensor it declares. Whatever the bytes: errors,
//! never a panic, a division by zero or an allocation the file cannot back.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use candle_core::Device;
use candle_core::quantized::gguf_file;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut r = Cursor::new(data);
    let Ok(c) = gguf_file::Content::read(&mut r) else {
        return;
    };
    let arch = c
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_else(|| "llama".into());
    let _ = eprof_models::load::gguf_config(&c, &arch, Path::new("fuzz.gguf"));
    let _ = eprof_models::tokenizer::HfTokenizers::from_gguf(&c);
    let _ = eprof_models::load::weight_mix(&c);
    for name in c.tensor_infos.keys() {
        let _ = c.tensor(&mut r, name, &Device::Cpu);
    }
});
