//! The decoder's span timing by stream marks (what a CUDA device uses), run on the CPU
//! with a host stream clock: the same spans and sections as host timing, nested the
//! same way, on the session clock, with the logits unchanged.

use candle_core::{Device, Tensor};
use eprof_core::recorder::{Recorder, SiteId};
use eprof_core::{Clock, HostStreamClock, InstrumentedModel, Result, TensorKind};
use eprof_format::Depth;
use eprof_models::load::tiny_decoder;

struct Collect {
    clock: Clock,
    depth: Depth,
    spans: Vec<(SiteId, u64, u64)>,
    sections: Vec<(&'static str, u64, u64)>,
}

impl Recorder for Collect {
    fn depth(&self) -> Depth {
        self.depth
    }
    fn now(&self) -> u64 {
        self.clock.now()
    }
    fn span(&mut self, site: SiteId, s: u64, e: u64) {
        self.spans.push((site, s, e));
    }
    fn wants(&self, _: SiteId, _: TensorKind) -> bool {
        false
    }
    fn observe(&mut self, _: SiteId, _: TensorKind, _: &Tensor) -> Result<()> {
        Ok(())
    }
    fn value(&mut self, _: SiteId, _: &'static str, _: &'static str, _: f32) {}
    fn section(&mut self, name: &'static str, s: u64, e: u64) {
        self.sections.push((name, s, e));
    }
}

fn run(model: &mut dyn InstrumentedModel, depth: Depth) -> (Collect, Vec<Vec<f32>>, u64, u64) {
    let clock = Clock::start();
    let mut rec = Collect {
        clock,
        depth,
        spans: Vec::new(),
        sections: Vec::new(),
    };
    model.clear_kv_cache();
    let t0 = clock.now();
    let prompt = Tensor::new(&[[1u32, 72, 101, 108]], &Device::Cpu).unwrap();
    let mut logits = vec![model.forward(&prompt, 0, &mut rec).unwrap()];
    for (i, id) in [111u32, 32, 119].into_iter().enumerate() {
        let x = Tensor::new(&[[id]], &Device::Cpu).unwrap();
        logits.push(model.forward(&x, 4 + i, &mut rec).unwrap());
    }
    let t1 = clock.now();
    let logits = logits.iter().map(|l| l.to_vec1().unwrap()).collect();
    (rec, logits, t0, t1)
}

#[test]
fn stream_marks_give_the_host_timings_spans_on_the_session_clock() {
    for depth in [Depth::Module, Depth::Deep] {
        let mut host = tiny_decoder(&Device::Cpu).unwrap();
        assert!(
            !host.times_by_stream_marks(),
            "the CPU times on the host clock"
        );
        let mut marked = tiny_decoder(&Device::Cpu)
            .unwrap()
            .with_stream_clock(Box::new(HostStreamClock::new(Clock::start())));
        assert!(marked.times_by_stream_marks());

        let (a, la, _, _) = run(&mut host, depth);
        let (b, lb, t0, t1) = run(&mut marked, depth);
        assert_eq!(la, lb, "timing does not change the computation");
        let sites = |c: &Collect| c.spans.iter().map(|s| s.0).collect::<Vec<_>>();
        assert!(!a.spans.is_empty());
        assert_eq!(sites(&a), sites(&b), "{depth:?}: same spans, same order");
        let names = |c: &Collect| c.sections.iter().map(|s| s.0).collect::<Vec<_>>();
        assert_eq!(names(&a), names(&b));
        assert_eq!(
            names(&b)[..4],
            ["embedding", "layers", "final_norm", "lm_head"]
        );
        for &(site, s, e) in &b.spans {
            assert!(
                t0 <= s && s <= e && e <= t1,
                "span {site} {s}..{e} outside the run {t0}..{t1}"
            );
        }
        // Each layer's span holds its components' spans (sites between it and the next
        // layer's), as with host timing.
        let sites_def = marked.sites().to_vec();
        for &(site, s, e) in &b.spans {
            let def = &sites_def[site as usize];
            if !def.is(eprof_format::Component::Layer) {
                continue;
            }
            let inner = b.spans.iter().filter(|(x, xs, _)| {
                let d = &sites_def[*x as usize];
                d.layer == def.layer && *x != site && *xs >= s && *xs <= e
            });
            for &(x, xs, xe) in inner {
                assert!(
                    xe <= e,
                    "component {x} {xs}..{xe} ends after its layer {s}..{e}"
                );
            }
        }
        // Off records nothing either way.
        let (off, _, _, _) = run(&mut marked, Depth::Off);
        assert!(off.spans.is_empty() && off.sections.is_empty());
    }
}
