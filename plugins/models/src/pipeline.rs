//! The inference pipeline (docs/architecture.md, "Recording one prompt"), recorded
//! section by section:
//! pre_inference (tokenization, tensor transfer, KV-cache init), prefill (the model's
//! sections, then sampling of the first token), decode (per token the same), and
//! post_inference (detokenization, memory cleanup).
//!
//! Each step (prefill, then each decode) ends at a session boundary, where Counter
//! sources are read, so per-token energy is a counter difference where possible.

use std::ops::ControlFlow;

use candle_core::Tensor;
use eprof_core::{LoadedModel, Result, Session};
use eprof_format::{Phase, Step, StopReason, Token, TokenPhase};

use crate::sampling::{Rng, SamplingConfig, sample};

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_tokens: u32,
    pub sampling: SamplingConfig,
    /// Wrap the prompt in the model's chat template, when it has one.
    pub chat: bool,
}

/// What the caller sees after each step (to stream tokens and a live status).
#[derive(Debug, Clone)]
pub struct StepEvent<'a> {
    pub step: u32,
    pub id: u32,
    /// Newly complete text (a token can end inside a UTF-8 character).
    pub text: &'a str,
    pub elapsed_ns: u64,
    pub decode_tokens_per_s: Option<f64>,
    pub power_w: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub prompt_text: String,
    pub prompt_ids: Vec<u32>,
    pub ids: Vec<u32>,
    pub text: String,
    pub stop_reason: StopReason,
}

/// Who watches a generation as it goes (a live display, a server's event stream).
/// Called between steps, right after the session flushed, never inside a forward
/// pass. `Break` from either method stops the generation at the next step boundary:
/// post_inference still runs and the stop reason is [`StopReason::Cancelled`].
pub trait Observer {
    /// A phase begins at `t_ns`.
    fn phase_started(&mut self, s: &Session, phase: Phase, t_ns: u64) -> ControlFlow<()>;
    /// The session flushed ([`Session::last_flush`] holds what it wrote): after
    /// pre_inference and post_inference with `step = None`, after each step with it.
    fn flushed(&mut self, s: &Session, step: Option<&StepEvent<'_>>) -> ControlFlow<()>;
}

/// An observer that only sees steps (tests, benchmarks).
impl<F: FnMut(&StepEvent<'_>)> Observer for F {
    fn phase_started(&mut self, _: &Session, _: Phase, _: u64) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    fn flushed(&mut self, _: &Session, step: Option<&StepEvent<'_>>) -> ControlFlow<()> {
        if let Some(e) = step {
            self(e);
        }
        ControlFlow::Continue(())
    }
}

/// Holds bytes until they form complete UTF-8 characters.
#[derive(Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // Invalid, not just incomplete: let it through as replacement characters.
            Err(_) => self.pending.len(),
        };
        let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        out
    }
}

pub fn generate(
    m: &mut LoadedModel,
    s: &mut Session,
    prompt: &str,
    opts: &GenerateOptions,
    obs: &mut dyn Observer,
) -> Result<Generation> {
    let max_tokens = opts.max_tokens.max(1);
    let clock = s.clock();
    let mut cancelled = false;
    let Prepared {
        prompt_text,
        ids,
        input,
        p0,
        p1,
        cancelled: stop_asked,
    } = pre_inference(m, s, prompt, opts.chat, max_tokens, obs)?;
    cancelled |= stop_asked;
    let tok = &m.tokenizer;
    let dev = m.model.device().clone();

    let eos = tok.eos();
    let mut rng = Rng(opts.sampling.seed);
    let mut stream = Utf8Stream::default();
    let mut generated: Vec<u32> = Vec::new();
    let mut pos = ids.len();
    let mut input = input;
    let mut step_start = p1;
    let mut decode_start = p1;
    let mut decode_steps = 0u32;

    let stop_reason = loop {
        if cancelled {
            break StopReason::Cancelled;
        }
        let step = generated.len() as u32;
        let phase = if step == 0 {
            Phase::Prefill
        } else {
            Phase::Decode
        };
        if step == 0 {
            cancelled |= obs.phase_started(s, phase, step_start).is_break();
        }
        s.set_phase(phase);
        s.set_step(step);
        let logits = m.model.forward(&input, pos - input.dim(1)?, s)?;
        let t = clock.now();
        let logits: Vec<f32> = logits.to_vec1()?;
        let next = sample(&logits, &opts.sampling, &mut rng);
        s.section(phase, "sampling", Some(step), t, clock.now());
        let end = s.boundary();
        if step == 0 {
            s.section(Phase::Prefill, "prefill", None, step_start, end);
            decode_start = end;
        } else {
            decode_steps += 1;
        }
        s.token(Token {
            position: pos as u32,
            id: next,
            text: String::from_utf8_lossy(&tok.token_bytes(next)).into_owned(),
            phase: if step == 0 {
                TokenPhase::Prefill
            } else {
                TokenPhase::Decode
            },
            step: Some(Step {
                index: step,
                start_ns: step_start,
                end_ns: end,
            }),
        });
        s.flush()?;
        generated.push(next);
        let is_eos = eos.contains(&next);
        let text = if is_eos {
            String::new()
        } else {
            stream.push(&tok.token_bytes(next))
        };
        let decode_ns = end.saturating_sub(decode_start);
        let event = StepEvent {
            step,
            id: next,
            text: &text,
            elapsed_ns: end.saturating_sub(p0),
            decode_tokens_per_s: (decode_steps > 0 && decode_ns > 0)
                .then(|| f64::from(decode_steps) / (decode_ns as f64 * 1e-9)),
            power_w: s.current_power_w(),
        };
        cancelled |= obs.flushed(s, Some(&event)).is_break();
        if step == 0 {
            // The decode phase starts where prefill ends, even if no decode step follows.
            cancelled |= obs.phase_started(s, Phase::Decode, end).is_break();
        }
        step_start = end;
        if is_eos {
            break StopReason::Eos;
        }
        if generated.len() as u32 >= max_tokens {
            break if cancelled {
                StopReason::Cancelled
            } else {
                StopReason::MaxTokens
            };
        }
        input = Tensor::new(&[next], &dev)?.unsqueeze(0)?;
        pos += 1;
    };
    s.section(Phase::Decode, "decode", None, decode_start, step_start);

    let text = post_inference(m, s, &generated, step_start, obs)?;
    Ok(Generation {
        prompt_text,
        prompt_ids: ids,
        ids: generated,
        text,
        stop_reason,
    })
}

/// What pre_inference hands to the steps.
struct Prepared {
    prompt_text: String,
    ids: Vec<u32>,
    input: Tensor,
    /// When the pipeline, and then its first step, started.
    p0: u64,
    p1: u64,
    cancelled: bool,
}

/// Tokenize the prompt (through the chat template when asked), move it to the device,
/// make the KV cache room, and record the prompt's tokens.
fn pre_inference(
    m: &mut LoadedModel,
    s: &mut Session,
    prompt: &str,
    chat: bool,
    max_tokens: u32,
    obs: &mut dyn Observer,
) -> Result<Prepared> {
    let tok = &m.tokenizer;
    let dev = m.model.device().clone();
    let clock = s.clock();
    let mut cancelled = false;
    s.set_phase(Phase::PreInference);
    let p0 = s.boundary();
    cancelled |= obs.phase_started(s, Phase::PreInference, p0).is_break();
    let prompt_text = if chat {
        tok.chat_prompt(prompt)?
            .unwrap_or_else(|| prompt.to_string())
    } else {
        prompt.to_string()
    };
    let t = clock.now();
    let ids = tok.encode(&prompt_text, true)?;
    if ids.is_empty() {
        return Err(eprof_core::Error::Config("the prompt has no tokens".into()));
    }
    s.section(Phase::PreInference, "tokenization", None, t, clock.now());
    let t = clock.now();
    let input = Tensor::new(ids.as_slice(), &dev)?.unsqueeze(0)?;
    s.section(Phase::PreInference, "tensor_transfer", None, t, clock.now());
    let t = clock.now();
    m.model.clear_kv_cache();
    m.model.reserve(ids.len() + max_tokens as usize);
    s.section(Phase::PreInference, "kv_cache_init", None, t, clock.now());
    let p1 = s.boundary();
    s.section(Phase::PreInference, "pre_inference", None, p0, p1);
    for (i, &id) in ids.iter().enumerate() {
        s.token(Token {
            position: i as u32,
            id,
            text: String::from_utf8_lossy(&tok.token_bytes(id)).into_owned(),
            phase: TokenPhase::Prompt,
            step: None,
        });
    }
    s.flush()?;
    cancelled |= obs.flushed(s, None).is_break();

    Ok(Prepared {
        prompt_text,
        ids,
        input,
        p0,
        p1,
        cancelled,
    })
}

/// Detokenize what was generated, free the KV cache, and close the pipeline.
fn post_inference(
    m: &mut LoadedModel,
    s: &mut Session,
    generated: &[u32],
    step_start: u64,
    obs: &mut dyn Observer,
) -> Result<String> {
    let clock = s.clock();
    let eos = m.tokenizer.eos();
    let tok = &m.tokenizer;
    s.set_phase(Phase::PostInference);
    // Cancelling now would change nothing: post_inference is short and always runs.
    let _ = obs.phase_started(s, Phase::PostInference, step_start);
    let t = clock.now();
    let visible: Vec<u32> = generated
        .iter()
        .copied()
        .filter(|i| !eos.contains(i))
        .collect();
    let text = tok.decode(&visible);
    s.section(Phase::PostInference, "detokenization", None, t, clock.now());
    let t = clock.now();
    m.model.clear_kv_cache();
    s.section(Phase::PostInference, "memory_cleanup", None, t, clock.now());
    let p3 = s.boundary();
    s.section(Phase::PostInference, "post_inference", None, step_start, p3);
    s.flush()?;
    let _ = obs.flushed(s, None);
    Ok(text)
}
