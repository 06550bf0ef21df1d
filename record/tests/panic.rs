//! A run that panics (here a model, on its third step) ends as an error, not as the
//! caller's thread: the recording API catches it, closes the partial trace with
//! `error: panic: ...`, indexes it, reports an `error` event, and the next run on the
//! same profiler works. The server's recording thread relies on this.

use std::ops::ControlFlow;

use candle_core::{Device, Tensor};
use eprof_core::paths::DataDir;
use eprof_core::recorder::Recorder;
use eprof_core::{InstrumentedModel, Result};
use eprof_format::SiteDef;
use eprof_index::Index;
use eprof_record::{ModelChoice, PowerSpec, Profiler, RecordRequest, RunEvent, RunSink};

struct Panicky {
    inner: Box<dyn InstrumentedModel>,
    calls: u32,
}

impl InstrumentedModel for Panicky {
    fn sites(&self) -> &[SiteDef] {
        self.inner.sites()
    }
    fn forward(&mut self, ids: &Tensor, pos: usize, rec: &mut dyn Recorder) -> Result<Tensor> {
        self.calls += 1;
        if self.calls == 3 {
            panic!("deliberate panic in the model");
        }
        self.inner.forward(ids, pos, rec)
    }
    fn clear_kv_cache(&mut self) {
        self.inner.clear_kv_cache()
    }
    fn device(&self) -> &Device {
        self.inner.device()
    }
}

#[derive(Default)]
struct Events(Vec<String>);

impl RunSink for Events {
    fn event(&mut self, e: &RunEvent) -> ControlFlow<()> {
        let v = serde_json::to_value(e).unwrap();
        self.0
            .push(v["type"].as_str().unwrap_or_default().to_string());
        ControlFlow::Continue(())
    }
}

#[test]
fn a_panicking_run_is_an_error_with_a_closed_indexed_trace_and_the_next_run_works() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::at(dir.path());
    let profiler = Profiler::new(data.clone(), &[]).unwrap();
    let choice = ModelChoice::Path("builtin:tiny-llama".into());
    let mut handle = profiler
        .load_model(&choice, eprof_record::DeviceSpec::Cpu)
        .unwrap();
    let tiny = std::mem::replace(
        &mut handle.loaded.model,
        Box::new(Panicky {
            inner: profiler
                .load_model(&choice, eprof_record::DeviceSpec::Cpu)
                .unwrap()
                .loaded
                .model,
            calls: 0,
        }),
    );
    let req = RecordRequest {
        prompt: "Hello there".into(),
        max_tokens: 8,
        power: "synthetic".parse::<PowerSpec>().unwrap(),
        idle_ms: 0,
        ..RecordRequest::default()
    };
    let id = eprof_record::new_run_id();
    let mut events = Events::default();
    let Err(e) = profiler.record(&mut handle, &req, &id, &mut events) else {
        panic!("the run succeeded");
    };
    assert!(e.panicked);
    assert!(
        e.message
            .contains("the run panicked: deliberate panic in the model"),
        "{}",
        e.message
    );
    assert_eq!(events.0.first().map(String::as_str), Some("run_started"));
    assert_eq!(
        events.0.last().map(String::as_str),
        Some("error"),
        "{:?}",
        events.0
    );

    let path = data.trace_path(&id);
    let trace = eprof_format::decode_complete(&std::fs::read(&path).unwrap())
        .expect("the partial trace is closed, not truncated");
    let end = trace.end.as_ref().unwrap();
    assert!(
        matches!(&end.stop_reason, eprof_format::RunStop::Error(m) if m.starts_with("panic: deliberate panic")),
        "{}",
        end.stop_reason
    );
    assert!(
        trace.tokens.iter().any(|t| t.step.is_some()),
        "the steps before it are kept"
    );
    let row = Index::open(&data.index()).unwrap().get(&id).unwrap();
    assert!(row.is_some(), "the failed run is in the history");

    // The same profiler records the next run.
    handle.loaded.model = tiny;
    let id2 = eprof_record::new_run_id();
    let ok = profiler.record(&mut handle, &req, &id2, &mut Events::default());
    assert!(ok.is_ok(), "{:?}", ok.err());
}
