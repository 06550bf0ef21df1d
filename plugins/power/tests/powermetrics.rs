//! powermetrics parsing on real M1 and M2 Ultra output (tests/fixtures), and on a
//! NUL-separated stream assembled from it, delivered in arbitrary chunks.

use eprof_power::powermetrics::{Stream, Window, parse_capture, parse_document};

fn fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../../tests/fixtures/powermetrics/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p)
        .unwrap_or_else(|e| panic!("{p}: {e} (tests/fixtures is part of the repository)"))
}

fn close(a: Option<f64>, b: f64) {
    let a = a.expect("channel present");
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

#[test]
fn the_three_fixtures_parse_to_their_values() {
    let m2 = parse_document(&fixture("pumas-powermetrics-output-m2ultra.xml")).unwrap();
    assert_eq!(m2.elapsed_ns, 1_023_721_416);
    close(m2.watts[0], 0.835188);
    close(m2.watts[1], 70.9246);
    close(m2.watts[2], 0.0);
    assert_eq!(
        m2.watts[3], None,
        "no DRAM keys since macOS 13: absent, not zero"
    );

    let m1 = parse_document(&fixture("pumas-powermetrics-output-m1.xml")).unwrap();
    assert_eq!(m1.elapsed_ns, 2_019_178_750);
    close(m1.watts[0], 0.0440773);
    close(m1.watts[1], 0.0153528);

    let m1b = parse_document(&fixture("pumas-powermetrics-output-m1-2.xml")).unwrap();
    assert_eq!(m1b.elapsed_ns, 525_992_374);
    close(m1b.watts[0], 0.102663);
}

/// The M2 Ultra document with its duplicate `idle_ratio` key restored, as raw
/// powermetrics writes it.
fn with_repeated_key() -> Vec<u8> {
    let text = String::from_utf8(fixture("pumas-powermetrics-output-m2ultra.xml")).unwrap();
    let restored = text.replace(
        "<!-- <key>idle_ratio</key><real>0.0536782</real> -->",
        "<key>idle_ratio</key><real>0.0536782</real>",
    );
    assert_ne!(
        restored, text,
        "the fixture's commented duplicate key was found"
    );
    restored.into_bytes()
}

fn assembled() -> (Vec<u8>, Vec<Window>) {
    let docs = [
        fixture("pumas-powermetrics-output-m1.xml"),
        with_repeated_key(),
        fixture("pumas-powermetrics-output-m1-2.xml"),
    ];
    let want = docs.iter().map(|d| parse_document(d).unwrap()).collect();
    let mut stream = Vec::new();
    for d in &docs {
        stream.extend_from_slice(d);
        stream.push(0);
    }
    (stream, want)
}

#[test]
fn a_stream_parses_sample_by_sample_in_any_chunking() {
    let (stream, want) = assembled();
    for chunk in [1usize, 7, 100, 4096, stream.len()] {
        let mut s = Stream::default();
        let mut got = Vec::new();
        for c in stream.chunks(chunk) {
            for w in s.push(c) {
                got.push(w.unwrap());
            }
        }
        assert!(s.finish().is_none());
        assert_eq!(got, want, "chunks of {chunk} bytes");
    }
}

#[test]
fn a_stream_cut_mid_document_yields_complete_samples_and_an_error() {
    let (stream, want) = assembled();
    let cut = stream.len() - 500;
    let (got, err) = parse_capture(&stream[..cut]);
    assert_eq!(got, want[..2]);
    let err = err.expect("must say the stream was cut");
    assert!(err.contains("ended inside a document"), "{err}");
    // A single document without a trailing NUL (a saved capture) is complete.
    let (one, err) = parse_capture(&fixture("pumas-powermetrics-output-m1.xml"));
    assert_eq!((one.len(), err), (1, None));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let (got, err) = parse_capture(b"<plist><dict><key>elapsed_ns</key></dict>\0garbage\0");
    assert!(got.is_empty());
    assert!(err.is_some());
}
