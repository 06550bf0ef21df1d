//! Model adapters and instrumented models (docs/architecture.md).

use std::path::PathBuf;

use candle_core::{Device, Tensor};
use eprof_format::{ModelIdentity, SiteDef};

use crate::error::Result;
use crate::recorder::Recorder;

/// How a model is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelLayout {
    /// One GGUF file (quantized or not), tokenizer in its metadata.
    Gguf,
    /// A Hugging Face folder: `config.json`, `*.safetensors`, `tokenizer.json`.
    HfFolder,
    /// The built-in tiny Llama with deterministic random weights.
    BuiltinTiny,
}

/// A model to load, with the architecture name read from its metadata
/// (`config.json` `model_type`, or GGUF `general.architecture`).
#[derive(Debug, Clone)]
pub struct ModelSource {
    pub path: PathBuf,
    pub layout: ModelLayout,
    pub architecture: String,
}

/// Text to token ids and back.
pub trait Tokenizer: Send {
    /// Token ids of `text`; with `special`, special-token strings (`<|im_start|>`)
    /// in the text become their ids instead of being split as text.
    fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>>;
    /// The raw bytes of one token (a token can end inside a UTF-8 character).
    fn token_bytes(&self, id: u32) -> Vec<u8>;
    fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids.iter().flat_map(|&i| self.token_bytes(i)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
    fn bos(&self) -> Option<u32>;
    /// Ids that end generation.
    fn eos(&self) -> Vec<u32>;
    /// Whether the model brings a chat template.
    fn has_chat_template(&self) -> bool;
    /// The prompt wrapped in the model's own chat template for one user turn (with the
    /// generation prompt), if the model has one; a template that fails to render is an
    /// error naming its line.
    fn chat_prompt(&self, user: &str) -> Result<Option<String>>;
    fn vocab_size(&self) -> usize;
    /// One line: kind, vocabulary, special tokens.
    fn describe(&self) -> String;
}

/// A loaded model with its tokenizer.
pub struct LoadedModel {
    pub model: Box<dyn InstrumentedModel>,
    pub tokenizer: Box<dyn Tokenizer>,
    pub identity: ModelIdentity,
}

/// Detects and loads one architecture.
pub trait ModelAdapter: Sync {
    fn name(&self) -> &'static str;
    fn detects(&self, src: &ModelSource) -> bool;
    fn load(&self, src: &ModelSource, dev: &Device) -> Result<LoadedModel>;
}

/// A model whose forward pass reports spans and tensors to a [`Recorder`].
pub trait InstrumentedModel: Send {
    /// Every site the model can report, in id order (`SiteId` = index).
    fn sites(&self) -> &[SiteDef];
    /// Run `ids` (`[1, seq]`) at position `pos`; returns the last position's logits
    /// (`[vocab]`, f32).
    fn forward(&mut self, ids: &Tensor, pos: usize, rec: &mut dyn Recorder) -> Result<Tensor>;
    fn clear_kv_cache(&mut self);
    /// Preallocate the KV cache for this many positions (prompt + new tokens).
    fn reserve(&mut self, positions: usize) {
        let _ = positions;
    }
    fn device(&self) -> &Device;
}
