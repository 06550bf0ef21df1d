//! Streaming trace writer: appends checksummed chunks as a recording goes, so that a
//! crash leaves a readable prefix.

use std::io::Write;

use bincode::Encode;

use crate::codec::{self, SitesChunk, tag};
use crate::error::FormatError;
use crate::model::{
    IdleBaseline, MetricSeries, Note, PowerSample, RunEnd, RunMeta, Section, SiteDef, SpanTable,
    Token, Trace,
};

/// Rows per `SPAN`/`METR` chunk when a table is written in one go; keeps every chunk
/// far below [`codec::MAX_CHUNK_LEN`].
const ROWS_PER_CHUNK: usize = 1 << 16;

/// Writes one trace chunk by chunk. Call [`TraceWriter::finish`] to mark it complete.
pub struct TraceWriter<W: Write> {
    out: W,
    written: u64,
    sites: u32,
    /// Every chunk's payload is encoded here (kept between chunks: a recording
    /// writes several chunks per step).
    scratch: Vec<u8>,
}

impl<W: Write> TraceWriter<W> {
    /// Write the header and the run's metadata.
    pub fn new(mut out: W, meta: &RunMeta) -> Result<Self, FormatError> {
        let mut header = [0u8; codec::HEADER_LEN];
        header[..8].copy_from_slice(&codec::MAGIC);
        header[8..10].copy_from_slice(&codec::FORMAT_VERSION.to_le_bytes());
        out.write_all(&header)?;
        let mut w = TraceWriter {
            out,
            written: header.len() as u64,
            sites: 0,
            scratch: Vec::new(),
        };
        w.chunk(tag::META, meta)?;
        Ok(w)
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    fn chunk<T: Encode + ?Sized>(&mut self, tag: [u8; 4], value: &T) -> Result<(), FormatError> {
        let mut payload = std::mem::take(&mut self.scratch);
        let r = codec::encode_payload_into(value, &mut payload)
            .and_then(|()| self.raw_chunk(tag, &payload));
        self.scratch = payload;
        r
    }

    /// Write a chunk whose payload is already encoded (also used by tests to forge
    /// unknown or hostile chunks).
    pub fn raw_chunk(&mut self, tag: [u8; 4], payload: &[u8]) -> Result<(), FormatError> {
        if payload.len() > codec::MAX_CHUNK_LEN {
            return Err(FormatError::Io(std::io::Error::other(format!(
                "chunk {} payload of {} bytes exceeds the {} byte limit",
                codec::tag_name(tag),
                payload.len(),
                codec::MAX_CHUNK_LEN
            ))));
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&tag);
        crc.update(payload);
        self.out.write_all(&tag)?;
        self.out.write_all(&(payload.len() as u32).to_le_bytes())?;
        self.out.write_all(payload)?;
        self.out.write_all(&crc.finalize().to_le_bytes())?;
        self.written += (payload.len() + codec::CHUNK_OVERHEAD) as u64;
        Ok(())
    }

    /// How the run was executed (threads, kernels), after the metadata.
    pub fn execution(&mut self, e: &crate::model::Execution) -> Result<(), FormatError> {
        self.chunk(tag::EXECUTION, e)
    }

    /// Per channel, its source and resolution (at most once, after the metadata).
    pub fn channel_sources(
        &mut self,
        c: &[crate::model::ChannelSource],
    ) -> Result<(), FormatError> {
        self.chunk(tag::CHANNELS, &c.to_vec())
    }

    /// The run's place in a group of repeated runs (at most once, after the metadata).
    pub fn group(&mut self, g: &crate::model::GroupRef) -> Result<(), FormatError> {
        self.chunk(tag::GROUP, g)
    }

    pub fn baseline(&mut self, b: &IdleBaseline) -> Result<(), FormatError> {
        self.chunk(tag::BASELINE, b)
    }

    /// Append newly interned sites; they get ids in order after the ones written.
    pub fn sites(&mut self, sites: &[SiteDef]) -> Result<(), FormatError> {
        if sites.is_empty() {
            return Ok(());
        }
        let chunk = SitesChunk {
            first_id: self.sites,
            sites: sites.to_vec(),
        };
        self.chunk(tag::SITES, &chunk)?;
        self.sites += sites.len() as u32;
        Ok(())
    }

    /// Number of sites written so far (the id the next site gets).
    pub fn site_count(&self) -> u32 {
        self.sites
    }

    pub fn samples(&mut self, s: &[PowerSample]) -> Result<(), FormatError> {
        if s.is_empty() {
            return Ok(());
        }
        self.chunk(tag::SAMPLES, s)
    }

    pub fn sections(&mut self, s: &[Section]) -> Result<(), FormatError> {
        if s.is_empty() {
            return Ok(());
        }
        self.chunk(tag::SECTIONS, s)
    }

    pub fn tokens(&mut self, t: &[Token]) -> Result<(), FormatError> {
        if t.is_empty() {
            return Ok(());
        }
        self.chunk(tag::TOKENS, t)
    }

    pub fn spans(&mut self, t: &SpanTable) -> Result<(), FormatError> {
        let n = t.len();
        if n == 0 {
            return Ok(());
        }
        if n <= ROWS_PER_CHUNK {
            // One chunk: the table itself, not a copy (a recording writes one a step).
            return self.chunk(tag::SPANS, t);
        }
        let mut i = 0;
        while i < n {
            let j = (i + ROWS_PER_CHUNK).min(n);
            let part = SpanTable {
                step: t.step[i..j].to_vec(),
                site: t.site[i..j].to_vec(),
                start_ns: t.start_ns[i..j].to_vec(),
                end_ns: t.end_ns[i..j].to_vec(),
            };
            self.chunk(tag::SPANS, &part)?;
            i = j;
        }
        Ok(())
    }

    pub fn metrics(&mut self, m: &[MetricSeries]) -> Result<(), FormatError> {
        // Series are cut into chunks of at most ROWS_PER_CHUNK rows, by reference (the
        // bytes are those of copies holding the same rows).
        let mut batch: Vec<codec::MetricRows<'_>> = Vec::new();
        let mut rows = 0;
        for s in m {
            let mut i = 0;
            while i < s.len() {
                let j = (i + ROWS_PER_CHUNK - rows).min(s.len());
                batch.push(codec::MetricRows {
                    series: s,
                    range: i..j,
                });
                rows += j - i;
                i = j;
                if rows >= ROWS_PER_CHUNK {
                    self.chunk(tag::METRICS, &std::mem::take(&mut batch))?;
                    rows = 0;
                }
            }
        }
        if !batch.is_empty() {
            self.chunk(tag::METRICS, &batch)?;
        }
        Ok(())
    }

    pub fn notes(&mut self, n: &[Note]) -> Result<(), FormatError> {
        if n.is_empty() {
            return Ok(());
        }
        self.chunk(tag::NOTES, n)
    }

    /// Push buffered bytes to the underlying writer: what a crash cannot lose. (eprof's
    /// session calls it at most every 100 ms: a `write` per step cost more than the
    /// step's encoding.)
    pub fn flush(&mut self) -> Result<(), FormatError> {
        self.out.flush()?;
        Ok(())
    }

    /// Write the end marker; the trace is complete.
    pub fn finish(mut self, end: &RunEnd) -> Result<W, FormatError> {
        self.chunk(tag::END, end)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Encode a whole trace at once (imports, exports, tests). Writing into a Vec cannot
/// fail and chunk sizes are bounded by ROWS_PER_CHUNK; where a failure would lose
/// data (a file rewritten in place), use [`try_encode`].
pub fn encode(trace: &Trace) -> Vec<u8> {
    encode_into(trace, Vec::new()).unwrap_or_default()
}

/// [`encode`], with the error instead of an empty result.
pub fn try_encode(trace: &Trace) -> Result<Vec<u8>, FormatError> {
    encode_into(trace, Vec::new())
}

fn encode_into(trace: &Trace, out: Vec<u8>) -> Result<Vec<u8>, FormatError> {
    let mut w = TraceWriter::new(out, &trace.meta)?;
    if let Some(c) = &trace.channel_sources {
        w.channel_sources(c)?;
    }
    if let Some(e) = &trace.execution {
        w.execution(e)?;
    }
    if let Some(g) = &trace.group {
        w.group(g)?;
    }
    if let Some(b) = &trace.baseline {
        w.baseline(b)?;
    }
    w.sites(&trace.sites)?;
    w.samples(&trace.samples)?;
    w.sections(&trace.sections)?;
    w.tokens(&trace.tokens)?;
    w.spans(&trace.spans)?;
    w.metrics(&trace.metrics)?;
    w.notes(&trace.notes)?;
    match &trace.end {
        Some(end) => w.finish(end),
        None => {
            w.flush()?;
            Ok(w.out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value whose encoding fails, as a future type's could.
    struct Unencodable;

    impl Encode for Unencodable {
        fn encode<E: bincode::enc::Encoder>(
            &self,
            _: &mut E,
        ) -> Result<(), bincode::error::EncodeError> {
            Err(bincode::error::EncodeError::Other("refuses to encode"))
        }
    }

    #[test]
    fn an_encode_error_fails_the_write_and_writes_nothing() {
        let meta = crate::synthetic::meta(&crate::synthetic::Shape::default());
        let mut w = TraceWriter::new(Vec::new(), &meta).unwrap();
        let before = w.bytes_written();
        let e = w.chunk(*b"test", &Unencodable).unwrap_err().to_string();
        assert!(
            e.contains("cannot encode a chunk") && e.contains("refuses"),
            "{e}"
        );
        assert_eq!(w.bytes_written(), before, "no partial or empty chunk");
        assert_eq!(w.out.len() as u64, before);
    }
}
