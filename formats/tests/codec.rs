//! Trace codec: round trips, truncation, corruption, hostile input, versioning, golden.

use eprof_format::codec::{self, tag};
use eprof_format::synthetic::{self, Shape};
use eprof_format::{Depth, FormatError, TraceWriter, decode, decode_complete, encode};
use proptest::prelude::*;

fn small(depth: Depth) -> eprof_format::Trace {
    synthetic::trace(&Shape {
        prompt_tokens: 3,
        generated_tokens: 4,
        layers: 2,
        depth,
        watts: 12.5,
    })
}

#[test]
fn round_trips_exactly_at_every_depth() {
    for depth in [Depth::Off, Depth::Module, Depth::Deep] {
        let t = small(depth);
        let bytes = encode(&t);
        let back = decode_complete(&bytes).unwrap();
        assert_eq!(back, t, "depth {depth:?}");
        // Encoding is deterministic: the same trace gives the same bytes.
        assert_eq!(encode(&back), bytes);
    }
}

/// A run of a group (`eprof bench`) keeps its group in the optional `grup` chunk; a
/// reader that does not know the chunk skips it (the next test forges one).
#[test]
fn group_round_trips() {
    let mut t = small(Depth::Module);
    t.group = Some(eprof_format::GroupRef {
        id: "g0123456789ab".into(),
        config: 1,
        config_label: "depth=module".into(),
        repeat: 3,
        order: 7,
    });
    t.execution = Some(eprof_format::Execution {
        threads: 2,
        kernels: "eprof avx2".into(),
    });
    let back = decode_complete(&encode(&t)).unwrap();
    assert_eq!(back.group, t.group);
    assert_eq!(back.execution, t.execution);
    assert_eq!(back, t);
}

#[test]
fn channel_sources_round_trip_and_a_reader_without_them_keeps_one_resolution() {
    let mut t = small(Depth::Module);
    let n = t.meta.power.channels.len();
    assert!(n >= 1);
    t.channel_sources = Some(
        (0..n)
            .map(|c| eprof_format::ChannelSource {
                source: if c == 0 { "nvml" } else { "rapl" }.into(),
                nominal_resolution_ns: if c == 0 { 25_000_000 } else { 1_000_000 },
            })
            .collect(),
    );
    let bytes = encode(&t);
    let back = decode_complete(&bytes).unwrap();
    assert_eq!(back.channel_sources, t.channel_sources);
    assert_eq!(back, t);
    // `chan` is optional (lower case): a reader that skips it reads the rest.
    assert!(bytes.windows(4).any(|w| w == b"chan"));
    let mut without = t.clone();
    without.channel_sources = None;
    let plain = decode_complete(&encode(&without)).unwrap();
    assert_eq!(plain.channel_sources, None);
    let a = eprof_format::Attribution::new(&plain);
    assert_eq!(a.channel_resolution_ns(0), Some(a.resolution_ns()));
    let b = eprof_format::Attribution::new(&back);
    assert!(b.channel_resolution_ns(0).unwrap() >= 25_000_000);
}

#[test]
fn big_tables_split_into_chunks_and_round_trip() {
    let t = synthetic::trace(&Shape {
        prompt_tokens: 4,
        generated_tokens: 300,
        layers: 30,
        depth: Depth::Module,
        watts: 3.0,
    });
    assert!(
        t.spans.len() > 1 << 16,
        "needs more rows than one chunk holds"
    );
    assert_eq!(decode_complete(&encode(&t)).unwrap(), t);
}

#[test]
fn missing_end_marker_reads_as_truncated() {
    let mut t = small(Depth::Module);
    t.end = None;
    let d = decode(&encode(&t)).unwrap();
    assert_eq!(d.trace, t);
    let why = d.truncation.expect("must say it is truncated");
    assert!(why.reason.contains("did not finish"), "{why}");
}

#[test]
fn newer_version_is_refused_naming_both_versions() {
    let mut bytes = encode(&small(Depth::Off));
    bytes[8..10].copy_from_slice(&7u16.to_le_bytes());
    let e = decode(&bytes).unwrap_err();
    assert!(matches!(
        e,
        FormatError::NewerVersion { found: 7, known: 1 }
    ));
    let msg = e.to_string();
    assert!(msg.contains("format 7") && msg.contains("up to 1"), "{msg}");
}

#[test]
fn not_a_trace_and_tiny_files() {
    assert!(matches!(
        decode(b"hello world, not a trace"),
        Err(FormatError::NotATrace)
    ));
    assert!(matches!(decode(b""), Err(FormatError::Truncated { .. })));
    assert!(matches!(
        decode(&codec::MAGIC[..5]),
        Err(FormatError::Truncated { .. })
    ));
}

#[test]
fn unknown_required_chunk_is_refused_and_optional_one_skipped() {
    let t = small(Depth::Off);
    let forge = |chunk_tag: [u8; 4]| {
        let mut w = TraceWriter::new(Vec::new(), &t.meta).unwrap();
        w.raw_chunk(chunk_tag, b"whatever").unwrap();
        w.finish(t.end.as_ref().unwrap()).unwrap()
    };
    let e = decode(&forge(*b"ZZZZ")).unwrap_err().to_string();
    assert!(e.contains("unknown required chunk \"ZZZZ\""), "{e}");
    let d = decode(&forge(*b"zzzz")).unwrap();
    assert!(d.truncation.is_none());
}

#[test]
fn checksum_mismatch_names_the_chunk() {
    let mut bytes = encode(&small(Depth::Module));
    let n = bytes.len();
    bytes[n - 20] ^= 0x55; // inside the END chunk's payload
    let e = decode(&bytes).unwrap_err().to_string();
    assert!(e.contains("checksum mismatch") && e.contains("END_"), "{e}");
}

#[test]
fn oversized_chunk_length_is_corrupt_not_an_allocation() {
    let mut bytes = encode(&small(Depth::Off));
    // The META chunk's length field.
    bytes[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = decode(&bytes).unwrap_err().to_string();
    assert!(e.contains("exceeds"), "{e}");
}

#[test]
fn dangling_site_reference_is_corrupt() {
    let t = small(Depth::Module);
    let mut w = TraceWriter::new(Vec::new(), &t.meta).unwrap();
    let mut spans = eprof_format::SpanTable::default();
    spans.push(0, 5, 10, 20); // no sites written
    w.spans(&spans).unwrap();
    let bytes = w.finish(t.end.as_ref().unwrap()).unwrap();
    let e = decode(&bytes).unwrap_err().to_string();
    assert!(e.contains("refers to site 5"), "{e}");
}

#[test]
fn golden_v1_still_reads() {
    // Written by format version 1 and never regenerated: later readers must read it.
    let bytes = include_bytes!("golden/v1.eprof");
    let t = decode_complete(bytes).expect("the v1 golden file must read");
    assert_eq!(t.meta.prompt, "Give me three tips for staying healthy.");
    assert_eq!(t.meta.settings.depth, Depth::Deep);
    assert_eq!(t.tokens.len(), 6);
    assert_eq!(t.generated().count(), 3);
    assert_eq!(t.sites.len(), 2 * (1 + 12 + 5));
    assert_eq!(t.spans.len(), 3 * 2 * (1 + 12 + 5));
    assert_eq!(t.metrics.len(), 4);
    assert_eq!(t.metrics[0].key(), "activation/mean");
    let en = eprof_format::Energies::compute(&t);
    let (a, b) = t.pipeline_bounds().unwrap();
    let expect = 12.5 * (b - a) as f64 * 1e-9;
    let got = en.total.unwrap().joules;
    assert!((got - expect).abs() <= 1e-9 * expect, "{got} vs {expect}");
}

fn chunk_starts(bytes: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut pos = codec::HEADER_LEN;
    while pos + 8 <= bytes.len() {
        v.push(pos);
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        pos += len + codec::CHUNK_OVERHEAD;
    }
    v
}

#[test]
fn truncated_at_every_byte_of_the_last_chunks() {
    let t = small(Depth::Deep);
    let bytes = encode(&t);
    let starts = chunk_starts(&bytes);
    let from = starts[starts.len().saturating_sub(4)];
    for cut in from..bytes.len() {
        let d = decode(&bytes[..cut]).expect("a prefix after META must be readable");
        let why = d.truncation.expect("a prefix must say it is truncated");
        // What was read is exactly the complete chunks before the cut.
        let complete = starts.iter().copied().filter(|&s| s <= cut).max().unwrap();
        assert_eq!(why.complete_bytes as usize, complete, "cut at {cut}");
        assert!(d.trace.spans.len() <= t.spans.len());
    }
    // The chunk tags we expect to be there.
    let tags: Vec<[u8; 4]> = starts
        .iter()
        .map(|&s| bytes[s..s + 4].try_into().unwrap())
        .collect();
    assert_eq!(tags.first(), Some(&tag::META));
    assert_eq!(tags.last(), Some(&tag::END));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_truncation_never_panics(cut in 0usize..4096) {
        let bytes = encode(&small(Depth::Deep));
        let cut = cut.min(bytes.len());
        match decode(&bytes[..cut]) {
            Ok(d) => { let complete = cut == bytes.len(); prop_assert!(d.truncation.is_some() || complete) }
            Err(e) => { let ok = matches!(e, FormatError::Truncated { .. } | FormatError::NotATrace); prop_assert!(ok, "unexpected error {}", e) }
        }
    }

    #[test]
    fn bit_flips_never_panic(flips in proptest::collection::vec((0usize..100_000, 0u8..8), 1..8)) {
        let mut bytes = encode(&small(Depth::Deep));
        for (pos, bit) in flips {
            let n = bytes.len();
            bytes[pos % n] ^= 1 << bit;
        }
        if let Ok(d) = decode(&bytes) {
            // Whatever decodes must also summarise without panicking.
            let en = eprof_format::Energies::compute(&d.trace);
            let _ = eprof_format::Summary::compute(&d.trace, &en);
        }
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..2048), magic in any::<bool>()) {
        if magic && bytes.len() >= 16 {
            bytes[..8].copy_from_slice(&codec::MAGIC);
            bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
        }
        let _ = decode(&bytes);
    }

    #[test]
    fn forged_payloads_inside_valid_chunks_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..512),
        which in 0usize..9,
    ) {
        let t = small(Depth::Module);
        let tags = [tag::BASELINE, tag::SITES, tag::SAMPLES, tag::SECTIONS, tag::TOKENS,
                    tag::SPANS, tag::METRICS, tag::NOTES, tag::END];
        let mut w = TraceWriter::new(Vec::new(), &t.meta).unwrap();
        w.sites(&t.sites).unwrap();
        w.raw_chunk(tags[which], &payload).unwrap();
        let bytes = w.finish(t.end.as_ref().unwrap()).unwrap();
        let _ = decode(&bytes);
    }
}

#[test]
fn ends_finished_reads_only_the_last_chunk() {
    let t = small(Depth::Module);
    let bytes = encode(&t);
    assert!(eprof_format::ends_finished(&bytes));
    // Any tail that holds the END_ chunk will do.
    assert!(eprof_format::ends_finished(&bytes[bytes.len() - 200..]));
    // Cut anywhere before the end: unfinished.
    for cut in [1, 4, 12, 40] {
        assert!(
            !eprof_format::ends_finished(&bytes[..bytes.len() - cut]),
            "{cut}"
        );
    }
    let mut open = t.clone();
    open.end = None;
    assert!(!eprof_format::ends_finished(&encode(&open)));
    // A flipped byte in the END_ payload fails its checksum.
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 6] ^= 0x55;
    assert!(!eprof_format::ends_finished(&bad));
    assert!(!eprof_format::ends_finished(b""));
}

#[test]
fn unknown_stop_reason_is_refused_with_its_text_not_read_as_an_error() {
    let t = small(Depth::Off);
    let end = t.end.as_ref().unwrap();
    let mut payload = codec::encode_payload(end).unwrap();
    let at = payload
        .windows(10)
        .position(|w| w == b"max_tokens")
        .expect("the stop reason is stored as its text");
    payload[at..at + 10].copy_from_slice(b"stopped_by");
    let mut w = TraceWriter::new(Vec::new(), &t.meta).unwrap();
    w.raw_chunk(tag::END, &payload).unwrap();
    let bytes = w.finish(end).unwrap();
    let e = decode(&bytes).unwrap_err().to_string();
    assert!(
        e.contains("END_") && e.contains("unknown stop reason \"stopped_by\""),
        "{e}"
    );
}
