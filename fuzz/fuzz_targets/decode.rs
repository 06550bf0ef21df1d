//! The trace reader (`scripts/fuzz.sh`, or `cargo +nightly fuzz run decode` in fuzz/): it must never panic and
//! never allocate more than a bounded multiple of its input, whatever the bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(d) = eprof_format::decode(data) {
        // Whatever decodes must also summarise without panicking.
        let en = eprof_format::Energies::compute(&d.trace);
        let _ = eprof_format::Summary::compute(&d.trace, &en);
    }
});
