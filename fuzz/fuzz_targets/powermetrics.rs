//! The powermetrics plist parser on arbitrary bytes (a capture is a stream of NUL-
//! separated plist documents): errors, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = eprof_power::powermetrics::parse_document(data);
    let _ = eprof_power::powermetrics::parse_capture(data);
});
