//! Tokenizers on arbitrary text: the byte-level one of the built-in model and a GGUF
//! byte-level BPE (the vocabulary `eprof model synth` writes). Encoding any text and
//! decoding any ids never panics, and bytes come back as they went in.
#![no_main]

use std::sync::OnceLock;

use candle_core::quantized::gguf_file;
use eprof_core::Tokenizer;
use eprof_models::tokenizer::HfTokenizers;

fn bpe() -> &'static HfTokenizers {
    static T: OnceLock<HfTokenizers> = OnceLock::new();
    T.get_or_init(|| {
        let c = gguf_file::Content {
            magic: gguf_file::VersionedMagic::GgufV3,
            metadata: eprof_models::synth::tokenizer_metadata(2000).into_iter().collect(),
            tensor_infos: Default::default(),
            tensor_data_offset: 0,
        };
        HfTokenizers::from_gguf(&c).expect("the synth vocabulary loads")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let bytes = HfTokenizers::bytes_only();
    for t in [&bytes as &dyn Tokenizer, bpe() as &dyn Tokenizer] {
        for special in [false, true] {
            if let Ok(ids) = t.encode(&text, special) {
                let back: Vec<u8> = ids.iter().flat_map(|&i| t.token_bytes(i)).collect();
                if !special && !text.is_empty() {
                    // Beside a begin-of-text token it may add, the text's bytes.
                    let t = text.as_bytes();
                    assert!(
                        back.windows(t.len()).any(|w| w == t),
                        "{text:?} came back as {:?}",
                        String::from_utf8_lossy(&back)
                    );
                }
                let _ = t.decode(&ids);
            }
        }
        // Ids from the input, in and out of the vocabulary.
        let ids: Vec<u32> = data
            .chunks(4)
            .map(|c| c.iter().fold(0u32, |a, &b| a << 8 | u32::from(b)))
            .collect();
        let _ = t.decode(&ids);
        for &i in &ids {
            let _ = t.token_bytes(i);
        }
    }
});
