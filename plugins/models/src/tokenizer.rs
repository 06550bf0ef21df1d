//! Tokenization through Hugging Face's `tokenizers` crate, and the model's own chat
//! template through `minijinja`.
//!
//! A Hugging Face folder's `tokenizer.json` is loaded as it is (any model: BPE, BPE with
//! byte fallback, Unigram, WordPiece). For a GGUF file, a `tokenizers::Tokenizer` is
//! built from the `tokenizer.ggml.*` metadata the way llama.cpp reads it:
//!
//! - `gpt2`: byte-level BPE from the vocabulary and merges, with the pre-tokenizer of
//!   `tokenizer.ggml.pre` (`default`/`gpt2`, `smollm`, `qwen2`, `llama-bpe`/`llama3`;
//!   any other is an error naming it, never a silent fallback);
//! - `llama`: SentencePiece BPE. The merges are derived from the scores, as llama.cpp's
//!   SentencePiece tokenizer merges the adjacent pair whose joined text is the
//!   vocabulary entry with the highest score; spaces become `▁` (with a leading one when
//!   `add_space_prefix`), and bytes outside the vocabulary fall back to `<0xXX>` tokens.
//!
//! Control tokens are special (matched whole when special tokens are parsed);
//! user-defined tokens are always matched whole, as llama.cpp does.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::quantized::gguf_file;
use eprof_core::{Error, Result, Tokenizer};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace, Sequence as NormSequence};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::tokenizer::SplitDelimiterBehavior;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

/// llama.cpp's `LLAMA_VOCAB_PRE_TYPE_QWEN2` pattern (as in Qwen2's `tokenizer.json`).
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's (`llama-bpe`): the same with digits in runs of up to three.
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token types (llama.cpp's `llama_token_type`).
const TYPE_NORMAL: i32 = 1;
const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;
const TYPE_BYTE: i32 = 6;

/// GPT-2's reversible map from bytes to printable characters (how byte-level BPE
/// vocabularies spell bytes; the tests build tiny vocabularies with it).
pub fn byte_chars() -> [char; 256] {
    let mut out = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        out[b as usize] = if printable {
            char::from_u32(b).unwrap_or('?')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('?')
        };
    }
    out
}

/// How a vocabulary entry maps back to the bytes it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pieces {
    /// GPT-2 byte-level: each character stands for one byte.
    ByteLevel,
    /// SentencePiece: `▁` is a space, `<0xXX>` one byte.
    SentencePiece,
    /// Whatever the tokenizer's decoder gives for the token alone.
    Decoded,
}

/// The raw bytes of every token (streaming output needs them: a token can end inside a
/// UTF-8 character, which a per-token `decode` would replace).
fn token_bytes(tok: &HfTokenizer, pieces: Pieces, specials: &HashSet<u32>) -> Vec<Vec<u8>> {
    let n = tok.get_vocab_size(true);
    let mut rev: HashMap<char, u8> = HashMap::new();
    for (b, c) in byte_chars().iter().enumerate() {
        rev.insert(*c, b as u8);
    }
    (0..n as u32)
        .map(|id| {
            let Some(t) = tok.id_to_token(id) else {
                return Vec::new();
            };
            if specials.contains(&id) {
                return t.into_bytes();
            }
            match pieces {
                Pieces::ByteLevel => t
                    .chars()
                    .map(|c| rev.get(&c).copied())
                    .collect::<Option<Vec<u8>>>()
                    .unwrap_or_else(|| t.into_bytes()),
                Pieces::SentencePiece => {
                    if let Some(hex) = t.strip_prefix("<0x").and_then(|h| h.strip_suffix('>'))
                        && hex.len() == 2
                        && let Ok(b) = u8::from_str_radix(hex, 16)
                    {
                        return vec![b];
                    }
                    t.replace('\u{2581}', " ").into_bytes()
                }
                Pieces::Decoded => tok.decode(&[id], false).unwrap_or(t).into_bytes(),
            }
        })
        .collect()
}

/// A tokenizer with its model's special tokens and chat template.
pub struct HfTokenizers {
    /// Special tokens in the text become their ids.
    special: HfTokenizer,
    /// Special tokens in the text are text (`encode_special_tokens`).
    plain: HfTokenizer,
    bytes: Vec<Vec<u8>>,
    bos: Option<u32>,
    eos: Vec<u32>,
    add_bos: bool,
    /// Append the (first) eos id to every encoding (`tokenizer.ggml.add_eos_token`,
    /// `add_eos_token`); rare, but the model's own setting.
    add_eos: bool,
    template: Option<ChatTemplate>,
    kind: String,
    added: usize,
}

impl HfTokenizers {
    fn new(
        tok: HfTokenizer,
        pieces: Pieces,
        kind: String,
        bos: Option<u32>,
        eos: Vec<u32>,
        (add_bos, add_eos): (bool, bool),
        template: Option<String>,
    ) -> std::result::Result<Self, String> {
        let specials: HashSet<u32> = tok
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        let added = tok.get_added_tokens_decoder().len();
        let bytes = token_bytes(&tok, pieces, &specials);
        let mut plain = tok.clone();
        plain.set_encode_special_tokens(true);
        let token_text = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i)).unwrap_or_default();
        let template = template
            .map(|source| {
                ChatTemplate::new(source, token_text(bos), token_text(eos.first().copied()))
            })
            .transpose()?;
        Ok(HfTokenizers {
            special: tok,
            plain,
            bytes,
            bos,
            eos,
            add_bos,
            add_eos,
            template,
            kind,
            added,
        })
    }

    /// From GGUF `tokenizer.ggml.*` metadata.
    pub fn from_gguf(c: &gguf_file::Content) -> std::result::Result<Self, String> {
        let get = |k: &str| c.metadata.get(k);
        let string = |k: &str| get(k).and_then(|v| v.to_string().ok().cloned());
        let strings = |k: &str| -> std::result::Result<Vec<String>, String> {
            get(k)
                .ok_or_else(|| format!("{k} is missing"))?
                .to_vec()
                .map_err(|e| format!("{k}: {e}"))?
                .iter()
                .map(|v| v.to_string().cloned().map_err(|e| format!("{k}: {e}")))
                .collect()
        };
        let model = string("tokenizer.ggml.model").unwrap_or_default();
        let tokens = strings("tokenizer.ggml.tokens")?;
        let types: Vec<i32> = match get("tokenizer.ggml.token_type").map(|v| v.to_vec()) {
            Some(Ok(v)) => v
                .iter()
                .map(|x| x.to_i32().unwrap_or(TYPE_NORMAL))
                .collect(),
            _ => vec![TYPE_NORMAL; tokens.len()],
        };
        let type_of = |i: usize| types.get(i).copied().unwrap_or(TYPE_NORMAL);
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let pre = string("tokenizer.ggml.pre").unwrap_or_else(|| "default".into());
        let flag = |k: &str| get(k).and_then(|v| v.to_bool().ok());
        let (mut tok, pieces, kind) = match model.as_str() {
            "gpt2" => {
                let merges: Vec<(String, String)> = strings("tokenizer.ggml.merges")?
                    .into_iter()
                    .map(|m| {
                        m.split_once(' ')
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                            .ok_or_else(|| format!("merge {m:?} is not two tokens"))
                    })
                    .collect::<std::result::Result<_, _>>()?;
                // A merge whose pieces or result are not in the vocabulary can never
                // apply (llama.cpp looks the result up); `tokenizers` refuses the file.
                let all = merges.len();
                let merges: Vec<(String, String)> = merges
                    .into_iter()
                    .filter(|(a, b)| {
                        vocab.contains_key(a)
                            && vocab.contains_key(b)
                            && vocab.contains_key(&format!("{a}{b}"))
                    })
                    .collect();
                let unusable = all - merges.len();
                let bpe = BPE::builder()
                    .vocab_and_merges(vocab, merges)
                    .build()
                    .map_err(|e| format!("BPE: {e}"))?;
                let mut tok = HfTokenizer::new(bpe);
                tok.with_pre_tokenizer(Some(byte_level_pre(&pre)?));
                tok.with_decoder(Some(ByteLevelDecoder::default()));
                let skipped = if unusable > 0 {
                    format!(", {unusable} merges outside the vocabulary ignored")
                } else {
                    String::new()
                };
                (
                    tok,
                    Pieces::ByteLevel,
                    format!("byte-level BPE (gguf, pre={pre}{skipped})"),
                )
            }
            "llama" => sentencepiece_from_gguf(c, &tokens, &types, vocab)?,
            other => {
                return Err(format!(
                    "tokenizer.ggml.model {other:?} is not supported (eprof reads \"gpt2\" and \"llama\")"
                ));
            }
        };
        // Control tokens: special. User-defined ones: always whole, never normalized.
        let added = |ty: i32, special: bool| -> Vec<AddedToken> {
            tokens
                .iter()
                .enumerate()
                .filter(|(i, t)| type_of(*i) == ty && !t.is_empty())
                .map(|(_, t)| AddedToken::from(t.clone(), special).normalized(false))
                .collect()
        };
        tok.add_special_tokens(added(TYPE_CONTROL, true))
            .map_err(|e| e.to_string())?;
        tok.add_tokens(added(TYPE_USER_DEFINED, false))
            .map_err(|e| e.to_string())?;
        let id = |k: &str| get(k).and_then(|v| v.to_u32().ok());
        let bos = id("tokenizer.ggml.bos_token_id");
        let mut eos: Vec<u32> = id("tokenizer.ggml.eos_token_id").into_iter().collect();
        // End-of-turn tokens end generation too (llama.cpp's `eog` set).
        for extra in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"] {
            if let Some(&i) = tok.get_added_vocabulary().get_vocab().get(extra)
                && !eos.contains(&i)
            {
                eos.push(i);
            }
        }
        let add_bos = flag("tokenizer.ggml.add_bos_token").unwrap_or(model == "llama");
        let add_eos = flag("tokenizer.ggml.add_eos_token").unwrap_or(false);
        Self::new(
            tok,
            pieces,
            kind,
            bos,
            eos,
            (add_bos, add_eos),
            string("tokenizer.chat_template"),
        )
    }

    /// From a Hugging Face `tokenizer.json`, with `tokenizer_config.json` beside it for
    /// the bos/eos tokens, `add_bos_token` and the chat template.
    pub fn from_tokenizer_json(path: &Path) -> std::result::Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        let tok = HfTokenizer::from_bytes(text.as_bytes()).map_err(|e| format!("{e}"))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?;
        let decoder = v["decoder"].to_string();
        let pieces = if decoder.contains("ByteLevel") {
            Pieces::ByteLevel
        } else if decoder.contains("ByteFallback") || decoder.contains("Metaspace") {
            Pieces::SentencePiece
        } else {
            Pieces::Decoded
        };
        let cfg: serde_json::Value =
            std::fs::read_to_string(path.with_file_name("tokenizer_config.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
        // `bos_token` / `eos_token` are a string or `{"content": ...}`.
        let named = |k: &str| -> Option<u32> {
            let s = cfg[k].as_str().or_else(|| cfg[k]["content"].as_str())?;
            tok.token_to_id(s)
        };
        // Without a config naming them: the special added tokens of the usual names.
        let specials: HashMap<String, u32> = tok
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, t)| (t.content, id))
            .collect();
        let known = |names: &[&str]| -> Vec<u32> {
            names
                .iter()
                .filter_map(|n| specials.get(*n).copied())
                .collect()
        };
        let bos = named("bos_token").or_else(|| {
            known(&["<bos>", "<s>", "<|begin_of_text|>"])
                .first()
                .copied()
        });
        let mut eos: Vec<u32> = named("eos_token").into_iter().collect();
        let turn_ends: Vec<u32> = known(&[
            "</s>",
            "<|endoftext|>",
            "<|im_end|>",
            "<|end_of_text|>",
            "<|eot_id|>",
            "<end_of_turn>",
            "<eos>",
        ]);
        for i in turn_ends {
            if !eos.contains(&i) {
                eos.push(i);
            }
        }
        let model = v["model"]["type"].as_str().unwrap_or("unknown").to_string();
        Self::new(
            tok,
            pieces,
            format!("{model} (tokenizer.json)"),
            bos,
            eos,
            (
                cfg["add_bos_token"].as_bool().unwrap_or(false),
                cfg["add_eos_token"].as_bool().unwrap_or(false),
            ),
            cfg["chat_template"].as_str().map(str::to_string),
        )
    }

    /// This tokenizer as a Hugging Face `tokenizer.json` (what `from_tokenizer_json`
    /// reads; e.g. to use a GGUF file's vocabulary with other tools).
    pub fn tokenizer_json(&self) -> std::result::Result<String, String> {
        self.special.to_string(false).map_err(|e| e.to_string())
    }

    /// 256 byte tokens plus `<s>`, `</s>`, `<pad>`: the built-in tiny model's tokenizer.
    pub fn bytes_only() -> Self {
        let vocab: Vocab = byte_chars()
            .iter()
            .enumerate()
            .map(|(i, c)| (c.to_string(), i as u32))
            .chain(
                ["<s>", "</s>", "<pad>"]
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.to_string(), 256 + i as u32)),
            )
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, Vec::new())
            .build()
            .expect("a vocabulary of 259 distinct tokens is valid");
        let mut tok = HfTokenizer::new(bpe);
        tok.with_pre_tokenizer(Some(ByteLevel::new(false, false, false)));
        tok.with_decoder(Some(ByteLevelDecoder::default()));
        tok.add_special_tokens(["<s>", "</s>", "<pad>"].map(|s| AddedToken::from(s, true)))
            .expect("special tokens of the vocabulary");
        Self::new(
            tok,
            Pieces::ByteLevel,
            "bytes (built-in)".into(),
            Some(256),
            vec![257],
            (false, false),
            None,
        )
        .expect("no template to compile")
    }
}

/// The pre-tokenizer llama.cpp uses for a byte-level BPE vocabulary's `pre` type.
fn byte_level_pre(pre: &str) -> std::result::Result<PreTokenizerWrapper, String> {
    let split = |pattern: &str| -> std::result::Result<PreTokenizerWrapper, String> {
        let s = Split::new(
            SplitPattern::Regex(pattern.into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| e.to_string())?;
        Ok(Sequence::new(vec![s.into(), ByteLevel::new(false, false, false).into()]).into())
    };
    Ok(match pre {
        // GPT-2's own pattern, inside the ByteLevel pre-tokenizer.
        "default" | "gpt2" => ByteLevel::new(false, false, true).into(),
        // Every digit on its own, then GPT-2's pattern (SmolLM2's tokenizer.json).
        "smollm" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, false, true).into(),
        ])
        .into(),
        "qwen2" => split(QWEN2_PATTERN)?,
        "llama-bpe" | "llama3" => split(LLAMA3_PATTERN)?,
        other => {
            return Err(format!(
                "tokenizer.ggml.pre {other:?} is not supported: eprof knows default, gpt2, smollm, qwen2 and llama-bpe"
            ));
        }
    })
}

/// A SentencePiece tokenizer (GGUF `tokenizer.ggml.model` "llama") as a BPE with byte
/// fallback: merges from the scores, `▁` for spaces, the space prefix llama.cpp adds.
fn sentencepiece_from_gguf(
    c: &gguf_file::Content,
    tokens: &[String],
    types: &[i32],
    vocab: Vocab,
) -> std::result::Result<(HfTokenizer, Pieces, String), String> {
    let get = |k: &str| c.metadata.get(k);
    let flag = |k: &str| get(k).and_then(|v| v.to_bool().ok());
    let scores: Vec<f32> = match get("tokenizer.ggml.scores").map(|v| v.to_vec()) {
        Some(Ok(v)) => v.iter().map(|x| x.to_f32().unwrap_or(0.0)).collect(),
        _ => return Err("tokenizer.ggml.scores is missing".into()),
    };
    let merges = sentencepiece_merges(tokens, &scores, types, &vocab);
    let mut b = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true);
    if let Some(unk) = get("tokenizer.ggml.unknown_token_id")
        .and_then(|v| v.to_u32().ok())
        .and_then(|i| tokens.get(i as usize))
    {
        b = b.unk_token(unk.clone());
    }
    let mut tok = HfTokenizer::new(b.build().map_err(|e| format!("BPE: {e}"))?);
    let space = flag("tokenizer.ggml.add_space_prefix").unwrap_or(true);
    let mut norm: Vec<NormalizerWrapper> = Vec::new();
    if space {
        norm.push(Prepend::new("\u{2581}".into()).into());
    }
    norm.push(
        Replace::new(" ", "\u{2581}")
            .map_err(|e| e.to_string())?
            .into(),
    );
    tok.with_normalizer(Some(NormSequence::new(norm)))
        .map_err(|e| e.to_string())?;
    tok.with_decoder(Some(DecoderSequence::new(vec![
        DecoderWrapper::Replace(Replace::new("\u{2581}", " ").map_err(|e| e.to_string())?),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ])));
    Ok((
        tok,
        Pieces::SentencePiece,
        format!("SentencePiece BPE (gguf, add_space_prefix={space})"),
    ))
}

/// Merges for a SentencePiece vocabulary: every way to split each entry into two
/// entries, ranked by the entry's score (highest first), so that BPE merges the pair
/// llama.cpp's SentencePiece tokenizer would (the adjacent pair whose joined text is
/// the best-scoring entry). Byte tokens (`<0xXX>`) are not merged into anything.
fn sentencepiece_merges(
    tokens: &[String],
    scores: &[f32],
    types: &[i32],
    vocab: &Vocab,
) -> Vec<(String, String)> {
    let mut ranked: Vec<(f32, u32, u32, String, String)> = Vec::new();
    for (id, t) in tokens.iter().enumerate() {
        if types.get(id).copied() == Some(TYPE_BYTE) || t.chars().nth(1).is_none() {
            continue;
        }
        let score = scores.get(id).copied().unwrap_or(0.0);
        for (at, _) in t.char_indices().skip(1) {
            let (l, r) = t.split_at(at);
            if let (Some(&li), Some(&ri)) = (vocab.get(l), vocab.get(r)) {
                ranked.push((score, li, ri, l.to_string(), r.to_string()));
            }
        }
    }
    // Highest score first; ties in the order of the pieces' ids (stable, deterministic).
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    ranked.into_iter().map(|(_, _, _, l, r)| (l, r)).collect()
}

/// A chat template compiled once: Jinja through `minijinja`, with the globals and
/// whitespace rules of Hugging Face's `apply_chat_template`.
struct ChatTemplate {
    env: minijinja::Environment<'static>,
    source: String,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    fn new(source: String, bos: String, eos: String) -> std::result::Result<Self, String> {
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template_owned("chat", source.clone())
            .map_err(|e| template_error(&source, &e))?;
        Ok(ChatTemplate {
            env,
            source,
            bos,
            eos,
        })
    }

    fn render(&self, user: &str) -> std::result::Result<String, String> {
        let t = self
            .env
            .get_template("chat")
            .map_err(|e| template_error(&self.source, &e))?;
        t.render(minijinja::context! {
            messages => vec![minijinja::context! { role => "user", content => user }],
            add_generation_prompt => true,
            bos_token => self.bos,
            eos_token => self.eos,
        })
        .map_err(|e| template_error(&self.source, &e))
    }
}

/// A template error with the line of the template it points at.
fn template_error(source: &str, e: &minijinja::Error) -> String {
    let mut msg = format!("chat template: {e}");
    if let Some(n) = e.line() {
        let line = source.lines().nth(n.saturating_sub(1)).unwrap_or("");
        msg.push_str(&format!("\n  line {n}: {}", line.trim_end()));
    }
    msg
}

impl Tokenizer for HfTokenizers {
    fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let tok = if special { &self.special } else { &self.plain };
        let enc = tok
            .encode(text, false)
            .map_err(|e| Error::model("tokenizer", e.to_string()))?;
        let mut out = Vec::with_capacity(enc.len() + 1);
        if self.add_bos {
            out.extend(self.bos);
        }
        out.extend_from_slice(enc.get_ids());
        // A template that writes the bos token itself, with add_bos: one bos, not two.
        if self.add_bos && out.len() > 1 && self.bos.is_some() && out[0] == out[1] {
            out.remove(0);
        }
        if self.add_eos {
            out.extend(self.eos.first());
        }
        Ok(out)
    }

    fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.bytes.get(id as usize).cloned().unwrap_or_default()
    }

    fn bos(&self) -> Option<u32> {
        self.bos
    }

    fn eos(&self) -> Vec<u32> {
        self.eos.clone()
    }

    fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    fn chat_prompt(&self, user: &str) -> Result<Option<String>> {
        self.template
            .as_ref()
            .map(|t| t.render(user).map_err(|e| Error::model("tokenizer", e)))
            .transpose()
    }

    fn vocab_size(&self) -> usize {
        self.bytes.len()
    }

    fn describe(&self) -> String {
        format!(
            "{}, {} tokens ({} added), bos={:?}, eos={:?}, add_bos={}, add_eos={}, chat template: {}",
            self.kind,
            self.bytes.len(),
            self.added,
            self.bos,
            self.eos,
            self.add_bos,
            self.add_eos,
            if self.template.is_some() { "yes" } else { "no" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_that_fails_names_its_line() {
        let broken = "{% for m in messages %}\n{{ m.content }\n{% endfor %}".to_string();
        let e = ChatTemplate::new(broken, String::new(), String::new())
            .err()
            .expect("a syntax error is an error");
        assert!(e.contains("line 2"), "{e}");
        assert!(
            e.contains("{{ m.content }"),
            "the line itself is shown: {e}"
        );

        let raising = "{% if messages[0].role != 'system' %}\n{{ raise_exception('a system message first') }}\n{% endif %}".to_string();
        let t = ChatTemplate::new(raising, String::new(), String::new()).unwrap();
        let e = t.render("hi").expect_err("raise_exception is an error");
        assert!(
            e.contains("a system message first") && e.contains("line 2"),
            "{e}"
        );

        let ok = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}".to_string();
        let t = ChatTemplate::new(ok, "<s>".into(), "</s>".into()).unwrap();
        assert_eq!(t.render("hi").unwrap(), "<s><user>hi<assistant>");
    }

    #[test]
    fn add_bos_and_add_eos_are_the_models_settings() {
        let dir = tempfile::tempdir().unwrap();
        let json = HfTokenizers::bytes_only().tokenizer_json().unwrap();
        std::fs::write(dir.path().join("tokenizer.json"), json).unwrap();
        let cfg = serde_json::json!({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true, "add_eos_token": true});
        std::fs::write(dir.path().join("tokenizer_config.json"), cfg.to_string()).unwrap();
        let t = HfTokenizers::from_tokenizer_json(&dir.path().join("tokenizer.json")).unwrap();
        assert_eq!(t.encode("hi", true).unwrap(), vec![256, 104, 105, 257]);
        // Special tokens in the text are text when not parsed.
        assert_eq!(t.encode("<s>", false).unwrap().len(), 2 + 3);
        assert_eq!(
            t.encode("<s>", true).unwrap(),
            vec![256, 257],
            "one bos, not two"
        );
    }
}
