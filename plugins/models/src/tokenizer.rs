//! Byte-level BPE (GPT-2 style) built from GGUF metadata or a `tokenizer.json`.
//!
//! candle's own GGUF tokenizer gets SmolLM2 wrong: for `tokenizer.ggml.pre = "smollm"`
//! it falls back to a ByteLevel pre-tokenizer that adds a prefix space. SmolLM2 (like
//! llama.cpp's `smollm` pre-tokenizer) splits every digit on its own, then applies the
//! GPT-2 pattern with no prefix space. Tested against llama.cpp's token ids.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file;
use eprof_core::{Error, Result, Tokenizer};
use regex::Regex;

/// GPT-2's pattern without its `\s+(?!\S)` look-ahead, which the regex crate lacks;
/// [`pretokenize`] applies that rule by hand.
const GPT2_PATTERN: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+";

/// GPT-2's reversible map from bytes to printable characters.
fn byte_chars() -> [char; 256] {
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

pub struct BpeTokenizer {
    /// Raw bytes of every token.
    bytes: Vec<Vec<u8>>,
    /// Token id of every byte.
    byte_id: [Option<u32>; 256],
    /// (left, right) -> (rank, merged id).
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// Special tokens matched as whole strings before pre-tokenization, longest first.
    specials: Vec<(String, u32)>,
    split_digits: bool,
    pattern: Option<Regex>,
    bos: Option<u32>,
    eos: Vec<u32>,
    add_bos: bool,
    chat_template: Option<String>,
    kind: String,
}

impl BpeTokenizer {
    fn build(
        tokens: Vec<String>,
        merges: &[(String, String)],
        special_ids: Vec<u32>,
        kind: String,
    ) -> std::result::Result<Self, String> {
        let chars = byte_chars();
        let mut rev: HashMap<char, u8> = HashMap::new();
        for (b, c) in chars.iter().enumerate() {
            rev.insert(*c, b as u8);
        }
        let lookup: HashMap<&str, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u32))
            .collect();
        let specials_set: std::collections::HashSet<u32> = special_ids.iter().copied().collect();
        let bytes: Vec<Vec<u8>> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if specials_set.contains(&(i as u32)) {
                    return t.as_bytes().to_vec();
                }
                t.chars()
                    .map(|c| rev.get(&c).copied())
                    .collect::<Option<Vec<u8>>>()
                    .unwrap_or_else(|| t.as_bytes().to_vec())
            })
            .collect();
        let mut byte_id = [None; 256];
        for (b, c) in chars.iter().enumerate() {
            byte_id[b] = lookup.get(c.to_string().as_str()).copied();
        }
        let mut merge_map = HashMap::with_capacity(merges.len());
        for (rank, (a, b)) in merges.iter().enumerate() {
            let (Some(&ia), Some(&ib)) = (lookup.get(a.as_str()), lookup.get(b.as_str())) else {
                continue;
            };
            if let Some(&m) = lookup.get(format!("{a}{b}").as_str()) {
                merge_map.entry((ia, ib)).or_insert((rank as u32, m));
            }
        }
        let mut specials: Vec<(String, u32)> = special_ids
            .iter()
            .filter_map(|&i| tokens.get(i as usize).map(|t| (t.clone(), i)))
            .filter(|(t, _)| !t.is_empty())
            .collect();
        specials.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        Ok(BpeTokenizer {
            bytes,
            byte_id,
            merges: merge_map,
            specials,
            split_digits: false,
            pattern: Some(Regex::new(GPT2_PATTERN).map_err(|e| e.to_string())?),
            bos: None,
            eos: Vec::new(),
            add_bos: false,
            chat_template: None,
            kind,
        })
    }

    /// From GGUF `tokenizer.ggml.*` metadata.
    pub fn from_gguf(c: &gguf_file::Content) -> std::result::Result<Self, String> {
        let get = |k: &str| c.metadata.get(k);
        let model = get("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok().cloned())
            .unwrap_or_default();
        if model != "gpt2" {
            return Err(format!(
                "tokenizer.ggml.model is {model:?}; eprof reads byte-level BPE (\"gpt2\") tokenizers"
            ));
        }
        let strings = |k: &str| -> std::result::Result<Vec<String>, String> {
            get(k)
                .ok_or_else(|| format!("{k} is missing"))?
                .to_vec()
                .map_err(|e| e.to_string())?
                .iter()
                .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges: Vec<(String, String)> = strings("tokenizer.ggml.merges")?
            .into_iter()
            .filter_map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .collect();
        let types: Vec<i64> = match get("tokenizer.ggml.token_type").map(|v| v.to_vec()) {
            Some(Ok(v)) => v
                .iter()
                .map(|x| x.to_i32().map(i64::from).unwrap_or(1))
                .collect(),
            _ => Vec::new(),
        };
        // 3 = control, 4 = user defined: matched whole, never split.
        let special_ids = types
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == 3 || **t == 4)
            .map(|(i, _)| i as u32)
            .collect();
        let pre = get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok().cloned())
            .unwrap_or_default();
        let mut t = Self::build(
            tokens,
            &merges,
            special_ids,
            format!("byte-level BPE (gguf, pre={pre})"),
        )?;
        t.split_digits = matches!(
            pre.as_str(),
            "smollm" | "llama3" | "llama-bpe" | "qwen2" | "deepseek-llm"
        );
        let id = |k: &str| get(k).and_then(|v| v.to_u32().ok());
        t.bos = id("tokenizer.ggml.bos_token_id");
        t.eos = id("tokenizer.ggml.eos_token_id").into_iter().collect();
        for extra in ["<|im_end|>", "<|endoftext|>", "<|eot_id|>"] {
            if let Some((_, i)) = t.specials.iter().find(|(s, _)| s == extra)
                && !t.eos.contains(i)
            {
                t.eos.push(*i);
            }
        }
        t.add_bos = get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        t.chat_template = get("tokenizer.chat_template").and_then(|v| v.to_string().ok().cloned());
        Ok(t)
    }

    /// From a Hugging Face `tokenizer.json` of a byte-level BPE model.
    pub fn from_tokenizer_json(path: &Path) -> std::result::Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?;
        let model = &v["model"];
        if model["type"].as_str() != Some("BPE") {
            return Err(format!(
                "model type {} is not supported; eprof reads byte-level BPE",
                model["type"]
            ));
        }
        let pre = v["pre_tokenizer"].to_string();
        if !pre.contains("ByteLevel") {
            return Err("only ByteLevel pre-tokenizers are supported".into());
        }
        let vocab = model["vocab"].as_object().ok_or("model.vocab is missing")?;
        let mut tokens = vec![String::new(); vocab.len()];
        let mut put = |t: &str, id: usize| {
            if id >= tokens.len() {
                tokens.resize(id + 1, String::new());
            }
            tokens[id] = t.to_string();
        };
        for (t, id) in vocab {
            put(t, id.as_u64().ok_or("vocab id is not a number")? as usize);
        }
        let mut special_ids = Vec::new();
        for a in v["added_tokens"].as_array().into_iter().flatten() {
            let (Some(id), Some(content)) = (a["id"].as_u64(), a["content"].as_str()) else {
                continue;
            };
            put(content, id as usize);
            special_ids.push(id as u32);
        }
        let merges: Vec<(String, String)> = model["merges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| match m {
                serde_json::Value::String(s) => {
                    s.split_once(' ').map(|(a, b)| (a.into(), b.into()))
                }
                serde_json::Value::Array(p) => {
                    Some((p.first()?.as_str()?.into(), p.get(1)?.as_str()?.into()))
                }
                _ => None,
            })
            .collect();
        let mut t = Self::build(
            tokens,
            &merges,
            special_ids,
            "byte-level BPE (tokenizer.json)".into(),
        )?;
        t.split_digits = pre.contains("\"individual_digits\":true");
        let find = |names: &[&str]| -> Vec<u32> {
            names
                .iter()
                .filter_map(|n| t.specials.iter().find(|(s, _)| s == n).map(|(_, i)| *i))
                .collect()
        };
        t.bos = find(&["<s>", "<|begin_of_text|>"]).first().copied();
        t.eos = find(&[
            "</s>",
            "<|endoftext|>",
            "<|im_end|>",
            "<|end_of_text|>",
            "<|eot_id|>",
        ]);
        let cfg = path.with_file_name("tokenizer_config.json");
        if let Some(c) = std::fs::read_to_string(cfg)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        {
            t.chat_template = c["chat_template"].as_str().map(str::to_string);
            t.add_bos = c["add_bos_token"].as_bool().unwrap_or(false);
        }
        Ok(t)
    }

    /// 256 byte tokens plus `<s>`, `</s>`, `<pad>`: the built-in tiny model's tokenizer.
    pub fn bytes_only() -> Self {
        let chars = byte_chars();
        let mut tokens: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        tokens.extend(["<s>".to_string(), "</s>".to_string(), "<pad>".to_string()]);
        let mut t = Self::build(tokens, &[], vec![256, 257, 258], "bytes (built-in)".into())
            .expect("the GPT-2 pattern is a valid constant regex");
        t.bos = Some(256);
        t.eos = vec![257];
        t
    }

    fn bpe(&self, piece: &[u8], out: &mut Vec<u32>) -> Result<()> {
        let mut syms: Vec<u32> = Vec::with_capacity(piece.len());
        for &b in piece {
            syms.push(
                self.byte_id[b as usize].ok_or_else(|| {
                    Error::model("tokenizer", format!("byte {b:#04x} has no token"))
                })?,
            );
        }
        loop {
            let best = syms
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| self.merges.get(&(w[0], w[1])).map(|&(r, m)| (r, i, m)))
                .min();
            let Some((_, i, m)) = best else { break };
            syms[i] = m;
            syms.remove(i + 1);
        }
        out.extend_from_slice(&syms);
        Ok(())
    }

    fn encode_text(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        let mut pieces: Vec<&str> = Vec::new();
        if self.split_digits {
            let mut start = 0;
            for (i, c) in text.char_indices() {
                if c.is_numeric() {
                    if start < i {
                        pieces.push(&text[start..i]);
                    }
                    pieces.push(&text[i..i + c.len_utf8()]);
                    start = i + c.len_utf8();
                }
            }
            if start < text.len() {
                pieces.push(&text[start..]);
            }
        } else {
            pieces.push(text);
        }
        for p in pieces {
            for word in pretokenize(self.pattern.as_ref(), p) {
                self.bpe(word.as_bytes(), out)?;
            }
        }
        Ok(())
    }
}

/// Split with GPT-2's pattern, giving back the last whitespace of a run that is
/// followed by a non-space (its `\s+(?!\S)` alternative).
fn pretokenize<'a>(re: Option<&Regex>, text: &'a str) -> Vec<&'a str> {
    let Some(re) = re else {
        return vec![text];
    };
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let Some(m) = re.find_at(text, pos) else {
            out.push(&text[pos..]);
            break;
        };
        let mut end = m.end();
        let s = m.as_str();
        if s.chars().all(char::is_whitespace) && end < text.len() && s.chars().count() > 1 {
            let last = s.chars().last().map_or(0, char::len_utf8);
            end -= last;
        }
        out.push(&text[m.start()..end]);
        pos = end;
    }
    out
}

impl Tokenizer for BpeTokenizer {
    fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        if self.add_bos {
            out.extend(self.bos);
        }
        if !special || self.specials.is_empty() {
            self.encode_text(text, &mut out)?;
            return Ok(out);
        }
        let mut rest = text;
        'outer: while !rest.is_empty() {
            for (i, _) in rest.char_indices() {
                if let Some((s, id)) = self
                    .specials
                    .iter()
                    .find(|(s, _)| rest[i..].starts_with(s.as_str()))
                {
                    self.encode_text(&rest[..i], &mut out)?;
                    out.push(*id);
                    rest = &rest[i + s.len()..];
                    continue 'outer;
                }
            }
            self.encode_text(rest, &mut out)?;
            break;
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

    fn chat_prompt(&self, user: &str) -> Option<String> {
        let t = self.chat_template.as_deref()?;
        if !t.contains("<|im_start|>") {
            return None;
        }
        // ChatML. A default system message written into the template (as SmolLM2's
        // is, for conversations that bring none) is kept; the newline after `system`
        // may be a real one or a `\n` escape inside a Jinja string.
        let system = ["<|im_start|>system\n", "<|im_start|>system\\n"]
            .iter()
            .find_map(|sep| t.split(sep).nth(1))
            .and_then(|s| s.split("<|im_end|>").next())
            .filter(|s| !s.contains('{') && !s.contains('\''));
        let mut p = String::new();
        if let Some(s) = system {
            p.push_str(&format!("<|im_start|>system\n{s}<|im_end|>\n"));
        }
        p.push_str(&format!(
            "<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
        ));
        Some(p)
    }

    fn vocab_size(&self) -> usize {
        self.bytes.len()
    }

    fn describe(&self) -> String {
        format!(
            "{}, {} tokens, {} merges, {} special, bos={:?}, eos={:?}, chat template: {}",
            self.kind,
            self.bytes.len(),
            self.merges.len(),
            self.specials.len(),
            self.bos,
            self.eos,
            if self.chat_template.is_some() {
                "yes"
            } else {
                "no"
            }
        )
    }
}
