//! A `RecordRequest` body as the server receives it: parsed and checked, whatever the
//! bytes; errors, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<eprof_record::RecordRequest>(data) {
        let _ = req.check();
        let _ = req.power.path_args();
        let _ = serde_json::to_string(&req);
    }
});
