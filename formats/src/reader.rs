//! Trace reader. It never panics and never allocates more than a bounded multiple of
//! the input it holds; a truncated file yields every complete chunk and says where it
//! ends; a corrupted one is refused with what is wrong and where.

use bincode::Decode;

use crate::codec::{self, SitesChunk, tag};
use crate::error::FormatError;
use crate::model::{
    IdleBaseline, MetricSeries, Note, PowerSample, RunEnd, RunMeta, Section, SpanTable, Token,
    TokenPhase, Trace,
};

/// Where and why a trace ends early.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Truncation {
    /// Bytes of the file that were read as complete chunks.
    pub complete_bytes: u64,
    pub file_bytes: u64,
    pub reason: String,
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trace is truncated: {} ({} of {} bytes recovered)",
            self.reason, self.complete_bytes, self.file_bytes
        )
    }
}

/// A decoded trace, and whether it was complete.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub trace: Trace,
    pub truncation: Option<Truncation>,
}

/// Decode a trace. A file cut short returns what its complete chunks hold with
/// `truncation` set; a file with no complete metadata, a bad header or a corrupted
/// chunk is an error.
pub fn decode(bytes: &[u8]) -> Result<Decoded, FormatError> {
    decode_with_progress(bytes, &mut |_| {})
}

/// [`decode`], calling `progress` with the bytes read so far after every chunk (the
/// viewer's progress bar; the callback decides how often to act).
pub fn decode_with_progress(
    bytes: &[u8],
    progress: &mut dyn FnMut(usize),
) -> Result<Decoded, FormatError> {
    let file_bytes = bytes.len() as u64;
    if bytes.len() < codec::HEADER_LEN {
        let n = bytes.len().min(codec::MAGIC.len());
        if bytes[..n] == codec::MAGIC[..n] {
            return Err(FormatError::Truncated {
                offset: file_bytes,
                what: "the file ends inside its 16-byte header".into(),
            });
        }
        return Err(FormatError::NotATrace);
    }
    if bytes[..8] != codec::MAGIC {
        return Err(FormatError::NotATrace);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if version > codec::FORMAT_VERSION {
        return Err(FormatError::NewerVersion {
            found: version,
            known: codec::FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(FormatError::Corrupt {
            chunk: "header".into(),
            offset: 8,
            what: "format version 0 does not exist".into(),
        });
    }

    let mut state = State::default();
    let mut pos = codec::HEADER_LEN;
    let mut truncation = None;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < 8 {
            truncation = Some(format!("the file ends inside a chunk header at byte {pos}"));
            break;
        }
        let chunk_tag = [rest[0], rest[1], rest[2], rest[3]];
        let len = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let corrupt = |what: String| FormatError::Corrupt {
            chunk: codec::tag_name(chunk_tag),
            offset: pos as u64,
            what,
        };
        if len > codec::MAX_CHUNK_LEN {
            return Err(corrupt(format!(
                "chunk length {len} exceeds the {} byte limit",
                codec::MAX_CHUNK_LEN
            )));
        }
        let total = len + codec::CHUNK_OVERHEAD;
        if rest.len() < total {
            truncation = Some(format!(
                "the file ends inside chunk {} at byte {pos} ({} of its {total} bytes present)",
                codec::tag_name(chunk_tag),
                rest.len()
            ));
            break;
        }
        let payload = &rest[8..8 + len];
        let stored_crc =
            u32::from_le_bytes([rest[8 + len], rest[9 + len], rest[10 + len], rest[11 + len]]);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&chunk_tag);
        crc.update(payload);
        if crc.finalize() != stored_crc {
            return Err(corrupt("checksum mismatch".into()));
        }
        state.chunk(chunk_tag, payload).map_err(corrupt)?;
        pos += total;
        progress(pos);
    }

    let Some(meta) = state.meta.take() else {
        return Err(FormatError::Truncated {
            offset: pos as u64,
            what: "the file ends before the run's metadata".into(),
        });
    };
    if truncation.is_none() && state.end.is_none() {
        truncation = Some("the recording did not finish (no end marker)".into());
    }
    let mut trace = Trace::new(meta);
    trace.group = state.group;
    trace.execution = state.execution;
    trace.channel_sources = state.channel_sources;
    trace.baseline = state.baseline;
    trace.sites = state.sites;
    trace.samples = state.samples;
    trace.sections = state.sections;
    trace.tokens = state.tokens;
    trace.spans = state.spans;
    trace.metrics = state.metrics;
    trace.notes = state.notes;
    trace.end = state.end;
    Ok(Decoded {
        trace,
        truncation: truncation.map(|reason| Truncation {
            complete_bytes: pos as u64,
            file_bytes,
            reason,
        }),
    })
}

/// Decode a trace that must be complete.
/// Whether a trace file whose last bytes are `tail` ends with its `END_` chunk (the
/// run finished and closed it), without decoding the file: an `END_` tag whose length
/// and checksum make a chunk that ends exactly at the end of `tail`. `tail` must hold
/// that whole chunk (the run's generated text and a few numbers); a tail too short for
/// it reads as unfinished.
pub fn ends_finished(tail: &[u8]) -> bool {
    let n = tail.len();
    let mut at = n.saturating_sub(codec::CHUNK_OVERHEAD);
    loop {
        if tail[at..].starts_with(&tag::END) {
            let len = tail
                .get(at + 4..at + 8)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
            if let Some(len) = len
                && at + codec::CHUNK_OVERHEAD + len == n
            {
                let mut crc = crc32fast::Hasher::new();
                crc.update(&tail[at..at + 4]);
                crc.update(&tail[at + 8..at + 8 + len]);
                if crc.finalize().to_le_bytes() == tail[n - 4..] {
                    return true;
                }
            }
        }
        if at == 0 {
            return false;
        }
        at -= 1;
    }
}

pub fn decode_complete(bytes: &[u8]) -> Result<Trace, FormatError> {
    let d = decode(bytes)?;
    match d.truncation {
        None => Ok(d.trace),
        Some(t) => Err(FormatError::Truncated {
            offset: t.complete_bytes,
            what: t.reason,
        }),
    }
}

#[derive(Default)]
struct State {
    meta: Option<RunMeta>,
    group: Option<crate::model::GroupRef>,
    execution: Option<crate::model::Execution>,
    channel_sources: Option<Vec<crate::model::ChannelSource>>,
    baseline: Option<IdleBaseline>,
    sites: Vec<crate::model::SiteDef>,
    samples: Vec<PowerSample>,
    sections: Vec<Section>,
    tokens: Vec<Token>,
    spans: SpanTable,
    metrics: Vec<MetricSeries>,
    notes: Vec<Note>,
    end: Option<RunEnd>,
}

fn payload<T: Decode<()>>(bytes: &[u8]) -> Result<T, String> {
    codec::decode_payload(bytes)
}

impl State {
    fn chunk(&mut self, chunk_tag: [u8; 4], bytes: &[u8]) -> Result<(), String> {
        if self.end.is_some() {
            return Err("data after the end marker".into());
        }
        if self.meta.is_none() && chunk_tag != tag::META {
            return Err("the first chunk must be META".into());
        }
        match chunk_tag {
            tag::META => {
                if self.meta.is_some() {
                    return Err("a second META chunk".into());
                }
                self.meta = Some(payload(bytes)?);
            }
            tag::BASELINE => {
                let b: IdleBaseline = payload(bytes)?;
                if b.power_w.len() != self.channels() {
                    return Err("baseline has a different channel count than the source".into());
                }
                self.baseline = Some(b);
            }
            tag::SITES => {
                let c: SitesChunk = payload(bytes)?;
                if c.first_id as usize != self.sites.len() {
                    return Err(format!(
                        "sites start at id {} but {} were read before: a chunk is missing",
                        c.first_id,
                        self.sites.len()
                    ));
                }
                self.sites.extend(c.sites);
            }
            tag::SAMPLES => {
                let s: Vec<PowerSample> = payload(bytes)?;
                let n = self.channels();
                if let Some(bad) = s.iter().find(|s| s.values.len() != n || s.t1_ns < s.t0_ns) {
                    return Err(format!(
                        "power sample at {} ns has {} values for {n} channels or ends before it starts",
                        bad.t0_ns,
                        bad.values.len()
                    ));
                }
                self.samples.extend(s);
            }
            tag::SECTIONS => {
                let s: Vec<Section> = payload(bytes)?;
                if let Some(bad) = s.iter().find(|s| s.end_ns < s.start_ns) {
                    return Err(format!("section {} ends before it starts", bad.name));
                }
                self.sections.extend(s);
            }
            tag::TOKENS => {
                let t: Vec<Token> = payload(bytes)?;
                for tok in &t {
                    match (&tok.step, tok.phase) {
                        (Some(s), TokenPhase::Prefill | TokenPhase::Decode)
                            if s.end_ns >= s.start_ns => {}
                        (None, TokenPhase::Prompt) => {}
                        _ => {
                            return Err(format!(
                                "token at position {} has an inconsistent step",
                                tok.position
                            ));
                        }
                    }
                }
                self.tokens.extend(t);
            }
            tag::SPANS => {
                let t: SpanTable = payload(bytes)?;
                let sites = self.sites.len();
                if let Some(&bad) = t.site.iter().find(|&&s| s as usize >= sites) {
                    return Err(format!("span refers to site {bad} but only {sites} exist"));
                }
                self.spans.extend(&t);
            }
            tag::METRICS => {
                let batch: Vec<MetricSeries> = payload(bytes)?;
                let sites = self.sites.len();
                for s in batch {
                    if s.step.len() != s.value.len() || s.site.len() != s.value.len() {
                        return Err(format!("metric {} has columns of unequal length", s.key()));
                    }
                    if let Some(&bad) = s.site.iter().find(|&&x| x as usize >= sites) {
                        return Err(format!(
                            "metric {} refers to site {bad} but only {sites} exist",
                            s.key()
                        ));
                    }
                    match self
                        .metrics
                        .iter_mut()
                        .find(|m| m.probe == s.probe && m.metric == s.metric)
                    {
                        Some(m) => {
                            m.step.extend_from_slice(&s.step);
                            m.site.extend_from_slice(&s.site);
                            m.value.extend_from_slice(&s.value);
                        }
                        None => self.metrics.push(s),
                    }
                }
            }
            tag::NOTES => {
                let n: Vec<Note> = payload(bytes)?;
                self.notes.extend(n);
            }
            tag::END => self.end = Some(payload(bytes)?),
            tag::EXECUTION => {
                if self.execution.is_some() {
                    return Err("a second exec chunk".into());
                }
                self.execution = Some(payload(bytes)?);
            }
            tag::CHANNELS => {
                if self.channel_sources.is_some() {
                    return Err("a second chan chunk".into());
                }
                self.channel_sources = Some(payload(bytes)?);
            }
            tag::GROUP => {
                if self.group.is_some() {
                    return Err("a second group chunk".into());
                }
                self.group = Some(payload(bytes)?);
            }
            other if other[0].is_ascii_uppercase() => {
                return Err(format!(
                    "unknown required chunk {:?}: it was written by a newer eprof",
                    codec::tag_name(other)
                ));
            }
            _ => {} // optional chunk of a newer writer: skipped by design
        }
        Ok(())
    }

    fn channels(&self) -> usize {
        self.meta.as_ref().map_or(0, |m| m.power.channels.len())
    }
}
