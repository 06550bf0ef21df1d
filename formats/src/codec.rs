//! The `.eprof` byte layout: header, chunk framing, and the bincode payloads.
//!
//! This is the only module that touches bincode (pinned to `=2.0.1` in the workspace
//! `Cargo.toml`: 3.0.0 is a non-compiling tombstone and the crate is unmaintained,
//! RUSTSEC-2025-0141), so replacing it later is a change to this file alone.
//!
//! | offset | size | field                                             |
//! |--------|------|---------------------------------------------------|
//! | 0      | 8    | magic `89 45 50 52 4F 46 0D 0A` (`\x89EPROF\r\n`) |
//! | 8      | 2    | format version, u16 little-endian (this is 1)     |
//! | 10     | 2    | flags, u16 LE (none defined; readers ignore them) |
//! | 12     | 4    | reserved, zero                                    |
//! | 16     | ...  | chunks, until the end of the file                 |
//!
//! A chunk is `tag[4] | len: u32 LE | payload[len] | crc32: u32 LE`, the CRC-32 (IEEE)
//! covering tag and payload. Payloads are bincode 2 `standard()` (varint) encodings;
//! the hot tables (spans, metrics) pack their columns as LEB128 deltas inside byte
//! vectors, which bincode copies as-is. `formats/SPEC.md` has the per-chunk layouts.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use crate::model::{MetricSeries, SpanTable};

/// Bytes that open every trace. The high byte and the CR LF catch 7-bit and
/// text-mode transfers that would corrupt the file, as in PNG.
pub const MAGIC: [u8; 8] = *b"\x89EPROF\r\n";
/// The newest format version this code reads and the one it writes.
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 16;
/// Chunk header (tag + length) and trailer (CRC) sizes.
pub const CHUNK_OVERHEAD: usize = 12;
/// No chunk payload may be larger; writers split big tables into several chunks.
pub const MAX_CHUNK_LEN: usize = 64 << 20;
/// Decoding a payload may claim at most this many bytes of memory per payload byte.
/// The decoded structures are at most ~16x their varint encoding (an all-`None`
/// `Vec<Option<f64>>`), so honest input always fits and hostile input cannot make the
/// reader allocate more than this multiple of what it actually holds.
pub const ALLOC_FACTOR: u64 = 32;

/// Chunk tags. A tag starting with an upper-case letter is required: a reader that
/// does not know it must refuse the file. Lower-case first letter: optional, skipped.
pub mod tag {
    pub const META: [u8; 4] = *b"META";
    pub const BASELINE: [u8; 4] = *b"BASE";
    pub const SITES: [u8; 4] = *b"SITE";
    pub const SAMPLES: [u8; 4] = *b"SAMP";
    pub const SECTIONS: [u8; 4] = *b"SECT";
    pub const TOKENS: [u8; 4] = *b"TOKN";
    pub const SPANS: [u8; 4] = *b"SPAN";
    pub const METRICS: [u8; 4] = *b"METR";
    pub const NOTES: [u8; 4] = *b"NOTE";
    pub const END: [u8; 4] = *b"END_";
    /// Optional: the run's [`crate::GroupRef`].
    pub const GROUP: [u8; 4] = *b"grup";
    /// Optional: the run's [`crate::Execution`].
    pub const EXECUTION: [u8; 4] = *b"exec";
    /// Optional: per channel, its source and resolution ([`crate::ChannelSource`]).
    pub const CHANNELS: [u8; 4] = *b"chan";
}

pub fn tag_name(tag: [u8; 4]) -> String {
    tag.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// A value's chunk payload. An encode error (none of eprof's types makes one today)
/// is returned, never replaced by an empty or short payload: a trace is right or the
/// write fails.
pub fn encode_payload<T: Encode>(value: &T) -> Result<Vec<u8>, crate::FormatError> {
    bincode::encode_to_vec(value, config()).map_err(encode_error)
}

/// [`encode_payload`] into `out` (cleared first), so that a writer reuses one buffer
/// for every chunk instead of growing a new one per chunk.
pub fn encode_payload_into<T: Encode + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), crate::FormatError> {
    out.clear();
    bincode::encode_into_std_write(value, out, config())
        .map(|_| ())
        .map_err(encode_error)
}

fn encode_error(e: EncodeError) -> crate::FormatError {
    crate::FormatError::Io(std::io::Error::other(format!("cannot encode a chunk: {e}")))
}

/// Decode a whole payload; trailing bytes are an error.
pub fn decode_payload<T: Decode<()>>(bytes: &[u8]) -> Result<T, String> {
    let budget = (bytes.len() as u64)
        .saturating_mul(ALLOC_FACTOR)
        .max(1 << 12);
    macro_rules! ladder {
        ($($e:literal)*) => {
            $( if budget <= (1u64 << $e) { return decode_limited::<T, { 1usize << $e }>(bytes); } )*
        };
    }
    ladder!(12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30);
    decode_limited::<T, { 1usize << 31 }>(bytes)
}

fn decode_limited<T: Decode<()>, const LIMIT: usize>(bytes: &[u8]) -> Result<T, String> {
    let cfg = config().with_limit::<LIMIT>();
    match bincode::decode_from_slice::<T, _>(bytes, cfg) {
        Ok((v, used)) if used == bytes.len() => Ok(v),
        Ok((_, used)) => Err(format!(
            "payload has {} unexpected trailing bytes",
            bytes.len() - used
        )),
        Err(e) => Err(describe(e)),
    }
}

fn describe(e: DecodeError) -> String {
    match e {
        DecodeError::UnexpectedEnd { additional } => {
            format!("payload ends {additional} bytes early")
        }
        DecodeError::LimitExceeded => {
            "payload declares more data than it holds (allocation refused)".into()
        }
        DecodeError::Utf8 { .. } => "payload holds a string that is not UTF-8".into(),
        DecodeError::OtherString(why) => why,
        other => format!("payload does not decode: {other}"),
    }
}

/// Append `v` as LEB128.
#[inline]
pub fn put_uleb(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads LEB128 values from a byte column.
struct Leb<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Leb<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Leb { bytes, pos: 0 }
    }

    #[inline]
    fn next(&mut self) -> Result<u64, DecodeError> {
        // One byte: the common case.
        if let Some(&b) = self.bytes.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(DecodeError::Other("packed column ends early"));
            };
            self.pos += 1;
            if shift == 63 && b > 1 {
                return Err(DecodeError::Other("packed value overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
            if shift > 63 {
                return Err(DecodeError::Other("packed value overflows 64 bits"));
            }
        }
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(DecodeError::Other("packed column has trailing bytes"))
        }
    }
}

/// Deltas of consecutive values, zigzag + LEB128.
fn pack_delta<I: Iterator<Item = u64>>(values: I, out: &mut Vec<u8>) {
    let mut prev = 0u64;
    pack(
        values.map(|v| {
            let d = zigzag(v.wrapping_sub(prev) as i64);
            prev = v;
            d
        }),
        out,
    );
}

/// [`pack_delta`] of a `u32` column (steps, sites): the same bytes, written into room
/// made once (a `u32` delta's zigzag takes at most five LEB128 bytes). The recorder
/// encodes 1,440 metric rows and 390 spans per SmolLM2 token at module depth.
fn pack_delta_u32(values: &[u32], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + 5 * values.len(), 0);
    let buf = &mut out[start..];
    let (mut at, mut prev) = (0usize, 0i64);
    // Sixteen values at a time where every delta's zigzag is one byte (a step column
    // repeats one step, a site column counts up by one): those bytes are the zigzags
    // themselves, made in vector registers. Otherwise, or for the last few values, one
    // value at a time.
    const N: usize = 16;
    let mut i = 0;
    while i + N <= values.len() {
        let c: &[u32; N] = values[i..i + N].try_into().expect("N values");
        let mut z = [0u64; N];
        let mut p = prev;
        for k in 0..N {
            let v = i64::from(c[k]);
            z[k] = zigzag(v - p);
            p = v;
        }
        if z.iter().fold(0, |a, &v| a | v) < 0x80 {
            for (b, &v) in buf[at..at + N].iter_mut().zip(&z) {
                *b = v as u8;
            }
            at += N;
        } else {
            for &v in &z {
                put_leb_at(buf, &mut at, v);
            }
        }
        prev = p;
        i += N;
    }
    for &v in &values[i..] {
        let v = i64::from(v);
        put_leb_at(buf, &mut at, zigzag(v - prev));
        prev = v;
    }
    out.truncate(start + at);
}

/// Write `v` as LEB128 at `buf[*at..]` (which has room) and move `at` past it.
#[inline(always)]
fn put_leb_at(buf: &mut [u8], at: &mut usize, mut v: u64) {
    while v >= 0x80 {
        buf[*at] = (v as u8) | 0x80;
        v >>= 7;
        *at += 1;
    }
    buf[*at] = v as u8;
    *at += 1;
}

/// Append each value as LEB128 (what [`put_uleb`] does one at a time), writing into
/// room made once per column instead of growing the vector byte by byte: a step's
/// columns are mostly one-byte values (1,440 metric values and hundreds of spans per
/// SmolLM2 token at module depth).
fn pack<I: Iterator<Item = u64>>(values: I, out: &mut Vec<u8>) {
    let mut at = out.len();
    for v in values {
        // Room for the longest value (10 bytes); the vector doubles as it fills.
        if at + 10 > out.len() {
            out.resize(out.len() + out.len().max(1024), 0);
        }
        put_leb_at(out, &mut at, v);
    }
    out.truncate(at);
}

/// Inverse of [`pack_delta`]; never reserves more than the column's byte count.
fn unpack_delta(bytes: &[u8], n: usize) -> Result<Vec<u64>, DecodeError> {
    let mut r = Leb::new(bytes);
    let mut out = Vec::with_capacity(n.min(bytes.len()));
    let mut prev = 0u64;
    for _ in 0..n {
        prev = prev.wrapping_add(unzigzag(r.next()?) as u64);
        out.push(prev);
    }
    r.finish()?;
    Ok(out)
}

fn unpack_plain(bytes: &[u8], n: usize) -> Result<Vec<u64>, DecodeError> {
    let mut r = Leb::new(bytes);
    let mut out = Vec::with_capacity(n.min(bytes.len()));
    for _ in 0..n {
        out.push(r.next()?);
    }
    r.finish()?;
    Ok(out)
}

/// [`unpack_delta`] of a column whose values must fit in u32 (steps, sites), straight
/// into a `Vec<u32>`: no 64-bit column and second pass per chunk.
fn unpack_delta_u32(bytes: &[u8], n: usize, what: &'static str) -> Result<Vec<u32>, DecodeError> {
    let mut r = Leb::new(bytes);
    let mut out = Vec::with_capacity(n.min(bytes.len()));
    let mut prev = 0u64;
    for _ in 0..n {
        prev = prev.wrapping_add(unzigzag(r.next()?) as u64);
        out.push(u32::try_from(prev).map_err(|_| DecodeError::Other(what))?);
    }
    r.finish()?;
    Ok(out)
}

/// `SPAN` payload: `n: varint`, then four byte columns (bincode `Vec<u8>`):
/// step (delta), site (delta), start_ns (delta), duration_ns (plain), each zigzag or
/// plain LEB128 as named.
impl Encode for SpanTable {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let n = self.len();
        (n as u64).encode(e)?;
        let mut col = Vec::with_capacity(n * 3);
        pack_delta_u32(&self.step, &mut col);
        col.encode(e)?;
        col.clear();
        pack_delta_u32(&self.site, &mut col);
        col.encode(e)?;
        col.clear();
        pack_delta(self.start_ns.iter().copied(), &mut col);
        col.encode(e)?;
        col.clear();
        pack(
            (0..n).map(|i| self.end_ns[i].wrapping_sub(self.start_ns[i])),
            &mut col,
        );
        col.encode(e)
    }
}

impl<Ctx> Decode<Ctx> for SpanTable {
    fn decode<D: Decoder<Context = Ctx>>(d: &mut D) -> Result<Self, DecodeError> {
        let n = u64::decode(d)?;
        let n = usize::try_from(n).map_err(|_| DecodeError::Other("span count too large"))?;
        let step: Vec<u8> = Vec::decode(d)?;
        let site: Vec<u8> = Vec::decode(d)?;
        let start: Vec<u8> = Vec::decode(d)?;
        let dur: Vec<u8> = Vec::decode(d)?;
        let step = unpack_delta_u32(&step, n, "span step exceeds u32")?;
        let site = unpack_delta_u32(&site, n, "span site exceeds u32")?;
        let start_ns = unpack_delta(&start, n)?;
        let dur = unpack_plain(&dur, n)?;
        let mut end_ns = Vec::with_capacity(n);
        for (s, d) in start_ns.iter().zip(&dur) {
            end_ns.push(
                s.checked_add(*d)
                    .ok_or(DecodeError::Other("span end overflows"))?,
            );
        }
        Ok(SpanTable {
            step,
            site,
            start_ns,
            end_ns,
        })
    }
}

bincode::impl_borrow_decode!(SpanTable);

/// `METR` payload, per series: probe, metric (strings), `n: varint`, step (delta
/// column), site (delta column), values (`4n` bytes of f32 little-endian).
impl Encode for MetricSeries {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        MetricRows::whole(self).encode(e)
    }
}

/// Rows `range` of a [`MetricSeries`], encoded exactly as a series holding only them
/// would be: the writer cuts series into chunks without copying them.
pub(crate) struct MetricRows<'a> {
    pub series: &'a MetricSeries,
    pub range: std::ops::Range<usize>,
}

impl<'a> MetricRows<'a> {
    pub fn whole(series: &'a MetricSeries) -> Self {
        MetricRows {
            series,
            range: 0..series.len(),
        }
    }
}

impl Encode for MetricRows<'_> {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let s = self.series;
        let r = self.range.clone();
        s.probe.encode(e)?;
        s.metric.encode(e)?;
        let n = r.len();
        (n as u64).encode(e)?;
        let mut col = Vec::with_capacity(n * 5);
        pack_delta_u32(&s.step[r.clone()], &mut col);
        col.encode(e)?;
        col.clear();
        pack_delta_u32(&s.site[r.clone()], &mut col);
        col.encode(e)?;
        col.clear();
        col.resize(n * 4, 0);
        for (c, v) in col.chunks_exact_mut(4).zip(&s.value[r]) {
            c.copy_from_slice(&v.to_le_bytes());
        }
        col.encode(e)
    }
}

impl<Ctx> Decode<Ctx> for MetricSeries {
    fn decode<D: Decoder<Context = Ctx>>(d: &mut D) -> Result<Self, DecodeError> {
        let probe = String::decode(d)?;
        let metric = String::decode(d)?;
        let n = u64::decode(d)?;
        let n = usize::try_from(n).map_err(|_| DecodeError::Other("metric count too large"))?;
        let step: Vec<u8> = Vec::decode(d)?;
        let site: Vec<u8> = Vec::decode(d)?;
        let values: Vec<u8> = Vec::decode(d)?;
        if Some(values.len()) != n.checked_mul(4) {
            return Err(DecodeError::Other(
                "metric value column has the wrong length",
            ));
        }
        Ok(MetricSeries {
            probe,
            metric,
            step: unpack_delta_u32(&step, n, "metric step exceeds u32")?,
            site: unpack_delta_u32(&site, n, "metric site exceeds u32")?,
            value: values
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        })
    }
}

bincode::impl_borrow_decode!(MetricSeries);

/// The `SITE` payload: sites are numbered in file order; `first_id` must equal the
/// number of sites already read, so a reader can check that no chunk went missing.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct SitesChunk {
    pub first_id: u32,
    pub sites: Vec<crate::model::SiteDef>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer encodes slices by reference into one reused buffer: the bytes are
    /// those of the owned values it used to copy.
    #[test]
    fn payloads_into_a_reused_buffer_equal_owned_ones() {
        let t = crate::synthetic::trace(&crate::synthetic::Shape::default());
        let mut buf = vec![0xAB; 7];
        encode_payload_into(&t.tokens[..], &mut buf).unwrap();
        assert_eq!(buf, encode_payload(&t.tokens.clone()).unwrap());
        encode_payload_into(&t.samples[..], &mut buf).unwrap();
        assert_eq!(buf, encode_payload(&t.samples.clone()).unwrap());
        encode_payload_into(&t.spans, &mut buf).unwrap();
        assert_eq!(buf, encode_payload(&t.spans.clone()).unwrap());
        encode_payload_into(&t.sections[..2], &mut buf).unwrap();
        assert_eq!(buf, encode_payload(&t.sections[..2].to_vec()).unwrap());
    }

    #[test]
    fn leb_and_zigzag_round_trip_extremes() {
        let values = [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX, 5, 0];
        let mut col = Vec::new();
        pack_delta(values.iter().copied(), &mut col);
        assert_eq!(unpack_delta(&col, values.len()).unwrap(), values);
        // A u32 column: values that fit decode, one that does not is refused.
        let small = [0u64, 7, u64::from(u32::MAX), 3];
        let mut col = Vec::new();
        pack_delta(small.iter().copied(), &mut col);
        assert_eq!(unpack_delta_u32(&col, 4, "x").unwrap(), [0, 7, u32::MAX, 3]);
        let mut col = Vec::new();
        pack_delta([1u64, u64::from(u32::MAX) + 1].into_iter(), &mut col);
        assert!(unpack_delta_u32(&col, 2, "x").is_err());
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn a_column_packs_to_the_bytes_of_one_value_at_a_time() {
        let values: Vec<u64> = (0..5_000u64)
            .map(|i| match i % 5 {
                0 => 0,
                1 => i,
                2 => i * 1_000_003,
                3 => u64::MAX - i,
                _ => 127 + (i & 1),
            })
            .collect();
        let mut one = vec![9u8, 9];
        for &v in &values {
            put_uleb(&mut one, v);
        }
        let mut col = vec![9u8, 9];
        pack(values.iter().copied(), &mut col);
        assert_eq!(col, one);
        let mut empty = Vec::new();
        pack(std::iter::empty(), &mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn a_u32_column_packs_to_the_bytes_of_the_u64_path() {
        let values: Vec<u32> = (0..5_000u32)
            .map(|i| match i % 6 {
                0 => 0,
                1 => i,
                2 => u32::MAX,
                3 => i.wrapping_mul(2_654_435_761),
                4 => 127 + (i & 1),
                _ => 64,
            })
            .collect();
        // Runs of one-byte deltas (the sixteen-at-a-time path) broken by deltas at
        // and past one byte's reach (zigzag 127 and 128: -64 and +64), at every
        // position of a run, and a length that leaves a tail.
        let mut runs: Vec<u32> = Vec::new();
        for k in 0..40u32 {
            let base = 1_000 + k * 37;
            runs.extend((0..16).map(|j| base + j));
            runs.extend(std::iter::repeat_n(7, 16));
            let mut jumpy: Vec<u32> = (0..16).map(|j| 500 + j).collect();
            let at = (k % 16) as usize;
            jumpy[at] = if k % 2 == 0 {
                jumpy[at.saturating_sub(1)].wrapping_sub(64)
            } else {
                jumpy[at.saturating_sub(1)] + 64
            };
            runs.extend(jumpy);
        }
        runs.extend([3, 4, 5]);
        for values in [values, runs] {
            let mut want = vec![3u8];
            pack_delta(values.iter().map(|&v| u64::from(v)), &mut want);
            let mut got = vec![3u8];
            pack_delta_u32(&values, &mut got);
            assert_eq!(got, want);
            assert_eq!(
                unpack_delta_u32(&got[1..], values.len(), "test").unwrap(),
                values
            );
        }
        let mut empty = Vec::new();
        pack_delta_u32(&[], &mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn overlong_leb_is_refused() {
        let col = [0xffu8; 11];
        assert!(unpack_plain(&col, 1).is_err());
    }

    #[test]
    fn hostile_length_does_not_allocate() {
        // A Vec<u8> claiming 2^40 elements in a 10-byte payload.
        let mut bytes = Vec::new();
        bytes.push(253u8); // bincode varint marker for u64
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        let r = decode_payload::<Vec<u8>>(&bytes);
        assert!(r.is_err(), "{r:?}");
    }
}
