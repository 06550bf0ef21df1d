//! `--power auto` on a machine with an NVIDIA GPU and RAPL (a fake `libnvidia-ml` and
//! a fake powercap tree): NVML and RAPL in one recording, each channel with its own
//! resolution and label, the total their sum.

use std::path::Path;
use std::time::Duration;

use eprof_core::power::SourceOptions;
use eprof_core::{Clock, Registry, Session, SessionConfig};
use eprof_format::{
    ChannelKind, Depth, Energies, EnergyLabel, Phase, SiteDef, Step, Summary, Token, TokenPhase,
    decode_complete, synthetic,
};

mod common;
use common::fake_lib;

fn zone(root: &Path, dir: &str, name: &str, uj: u64) {
    let d = root.join(dir);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("name"), format!("{name}\n")).unwrap();
    std::fs::write(d.join("energy_uj"), format!("{uj}\n")).unwrap();
    std::fs::write(d.join("max_energy_range_uj"), "262143328850\n").unwrap();
}

#[test]
fn auto_records_nvml_and_rapl_together_each_with_its_resolution() {
    eprof_power::link();
    // The registry reads EPROF_NVML_LIB and EPROF_RAPL_ROOT: set them in a child
    // process only.
    let sysfs = tempfile::tempdir().unwrap();
    zone(sysfs.path(), "intel-rapl:0", "package-0", 10_000_000);
    zone(sysfs.path(), "intel-rapl:0:0", "dram", 2_000_000);
    if common::in_child(
        "auto_records_nvml_and_rapl_together_each_with_its_resolution",
        "EPROF_RAPL_ROOT",
        &[
            ("EPROF_RAPL_ROOT", sysfs.path().into()),
            ("EPROF_NVML_LIB", fake_lib().into()),
            ("FAKE_NVML_PERIOD_MS", "10".into()),
        ],
    ) {
        return;
    }
    let root = std::path::PathBuf::from(std::env::var_os("EPROF_RAPL_ROOT").unwrap());

    let reg = Registry::discover().unwrap();
    let (entry, why) = reg.auto_power().unwrap();
    assert_eq!(entry.name, "nvml+rapl", "{why}");
    assert!(why.contains("gpu0") && why.contains("package-0"), "{why}");

    let clock = Clock::start();
    let source = (entry.open)(&SourceOptions::new(clock, Duration::from_millis(5))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut meta = synthetic::meta(&synthetic::Shape::default());
    meta.settings.depth = Depth::Module;
    let mut s = Session::start(
        SessionConfig {
            meta,
            out: dir.path().join("t.eprof"),
            clock,
            interval: Duration::from_millis(5),
            idle_baseline: Duration::ZERO,
            cancel: None,
            boundary_reads: true,
            sites: vec![SiteDef {
                layer: Some(0),
                component: "q_proj".into(),
                op: None,
            }],
            probes: vec![],
            sync_device: false,
            group: None,
            execution: None,
        },
        source,
    )
    .unwrap();
    // Ten 40 ms steps. The package counter moves every millisecond (12.5 W), as
    // RAPL's does; the GPU's every 10 ms.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rapl = {
        let (stop, file) = (stop.clone(), root.join("intel-rapl:0").join("energy_uj"));
        std::thread::spawn(move || {
            let mut pkg = 10_000_000u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                pkg += 12_500;
                // Written whole: a reader sees the old or the new value.
                let tmp = file.with_extension("tmp");
                std::fs::write(&tmp, format!("{pkg}\n")).unwrap();
                std::fs::rename(&tmp, &file).unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let mut t0 = s.boundary();
    let first = t0;
    for step in 0..10u32 {
        s.set_step(step);
        std::thread::sleep(Duration::from_millis(40));
        let end = s.boundary();
        s.token(Token {
            position: step,
            id: step,
            text: format!("t{step}"),
            phase: if step == 0 {
                TokenPhase::Prefill
            } else {
                TokenPhase::Decode
            },
            step: Some(Step {
                index: step,
                start_ns: t0,
                end_ns: end,
            }),
        });
        if step == 0 {
            s.section(Phase::Prefill, "prefill", None, t0, end);
        }
        t0 = end;
        s.flush().unwrap();
    }
    s.section(Phase::Decode, "decode", None, first, t0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rapl.join().unwrap();
    let path = s
        .finish("text".into(), eprof_format::RunStop::MaxTokens)
        .unwrap();
    let trace = decode_complete(&std::fs::read(path).unwrap()).unwrap();

    let p = &trace.meta.power;
    assert_eq!(p.name, "nvml+rapl");
    let names: Vec<(&str, ChannelKind, bool)> = p
        .channels
        .iter()
        .map(|c| (c.name.as_str(), c.kind, c.in_total))
        .collect();
    assert_eq!(
        names,
        [
            ("gpu0", ChannelKind::Gpu, true),
            ("package-0", ChannelKind::Package, true),
            ("package-0/dram", ChannelKind::Dram, true),
        ]
    );
    let chan = trace.channel_sources.as_ref().expect("a chan chunk");
    let sources: Vec<&str> = chan.iter().map(|c| c.source.as_str()).collect();
    assert_eq!(sources, ["nvml", "rapl", "rapl"]);
    let gpu_res = chan[0].nominal_resolution_ns;
    assert!((9_000_000..20_000_000).contains(&gpu_res), "{gpu_res}");
    assert_eq!(chan[1].nominal_resolution_ns, 1_000_000);
    assert_eq!(
        p.nominal_resolution_ns, gpu_res,
        "old readers get the coarser one"
    );

    let en = Energies::compute(&trace);
    let sum = Summary::compute(&trace, &en);
    let rows: Vec<(&str, &str)> = sum
        .channels
        .iter()
        .map(|c| (c.name.as_str(), c.source.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("gpu0", "nvml"),
            ("package-0", "rapl"),
            ("package-0/dram", "rapl")
        ]
    );
    let gpu = sum.channels[0].joules.unwrap();
    let pkg = sum.channels[1].joules.unwrap();
    let total = sum.total.unwrap().joules;
    assert!(gpu > 0.0 && pkg > 0.0, "gpu {gpu} J, package {pkg} J");
    let dram = sum.channels[2].joules.unwrap();
    assert!(
        (total - (gpu + pkg + dram)).abs() < 1e-9,
        "the total is their sum"
    );
    // A span between the two channels' resolutions: finer than NVML's 10 ms period
    // (attributed), coarser than RAPL's. RAPL's is its 1 ms, or, when the writer
    // thread above was late often enough that readings repeated, the period it was
    // seen to update at (a few ms on a loaded machine): read from the trace.
    let a = &en.attribution;
    let (r_gpu, r_pkg) = (
        a.channel_resolution_ns(0).unwrap(),
        a.channel_resolution_ns(1).unwrap(),
    );
    assert!(
        r_gpu >= gpu_res && r_pkg < r_gpu,
        "gpu {r_gpu} ns, package {r_pkg} ns"
    );
    let span = (r_pkg + r_gpu) / 2;
    let (x, y) = (trace.samples[3].t0_ns, trace.samples[3].t0_ns + span);
    assert_eq!(a.channel_label(0, x, y), EnergyLabel::Attributed);
    assert_ne!(a.channel_label(1, x, y), EnergyLabel::Attributed);
    assert_eq!(
        a.label(x, y),
        EnergyLabel::Attributed,
        "the total takes the weaker"
    );
    assert!(a.resolution_ns() >= gpu_res);
}
