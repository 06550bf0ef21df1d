//! Helpers shared by the model tests.
// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use candle_core::Tensor;
use eprof_core::recorder::{Recorder, SiteId};
use eprof_core::{Result, TensorKind};
use eprof_format::Depth;

/// A recorder that keeps spans and counts observed tensors, wanting every tensor, so
/// the instrumented paths run in full without a session.
pub struct TestRecorder {
    pub depth: Depth,
    pub spans: Vec<(SiteId, u64, u64)>,
    pub observed: usize,
    pub values: usize,
    pub start: std::time::Instant,
}

impl TestRecorder {
    pub fn new(depth: Depth) -> Self {
        TestRecorder {
            depth,
            spans: Vec::new(),
            observed: 0,
            values: 0,
            start: std::time::Instant::now(),
        }
    }
}

impl Recorder for TestRecorder {
    fn depth(&self) -> Depth {
        self.depth
    }
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn span(&mut self, site: SiteId, s: u64, e: u64) {
        self.spans.push((site, s, e));
    }
    fn wants(&self, _: SiteId, _: TensorKind) -> bool {
        true
    }
    fn observe(&mut self, _: SiteId, _: TensorKind, t: &Tensor) -> Result<()> {
        eprof_core::probe::with_host_f32(t, |v| assert!(!v.data.is_empty()))?;
        self.observed += 1;
        Ok(())
    }
    fn value(&mut self, _: SiteId, _: &'static str, _: &'static str, _: f32) {
        self.values += 1;
    }
}

/// Largest absolute difference and largest reference magnitude.
pub fn diff(a: &Tensor, b: &Tensor) -> (f32, f32) {
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a.len(), b.len());
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    let m = b.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
    (d, m)
}

/// The real SmolLM2 model: `EPROF_TEST_MODEL`, else the data directory's copy.
/// Missing is a failure, never a skip: run scripts/fetch-model.sh.
pub fn smollm2() -> std::path::PathBuf {
    real_model("EPROF_TEST_MODEL", eprof_models::SMOLLM2_FILE, "smollm2")
}

/// A real model file for a test: `$ENV`, else the data directory's `models/FILE`.
/// Fails (never skips) when it is missing, naming the script that fetches it.
pub fn real_model(env: &str, file: &str, fetch: &str) -> std::path::PathBuf {
    let p = eprof_models::model_path(env, file);
    assert!(
        p.exists(),
        "the real model is missing at {}: run scripts/fetch-model.sh {fetch} (or set {env})",
        p.display()
    );
    p
}

/// A fixture of the repository's `tests/fixtures`.
pub fn fixture(rel: &str) -> serde_json::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (tests/fixtures is part of the repository)",
            p.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// A fixture's array of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of token ids")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("a token id")).expect("an id fits u32"))
        .collect()
}
