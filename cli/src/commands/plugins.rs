//! `eprof plugins [check]`: built-in and dynamic plugins.

use std::path::PathBuf;

use eprof_core::Registry;
use eprof_core::paths::DataDir;
use eprof_record::Profiler;

use crate::fmt::Table;

use super::traces::Out;

pub fn plugins(data: &DataDir, explicit: &[PathBuf], json: bool, out: Out) -> anyhow::Result<()> {
    let reg = Registry::discover()?;
    let mut profiler = Profiler::new(data.clone(), explicit)?;
    for w in profiler.take_warnings() {
        eprintln!("warning: {w}");
    }
    let dynamic = profiler.plugins();
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    for p in &reg.power {
        rows.push((
            "power source".into(),
            p.name.into(),
            p.summary.into(),
            format!("built-in ({})", p.origin),
        ));
    }
    for a in &reg.adapters {
        rows.push((
            "model adapter".into(),
            a.adapter.name().into(),
            "decoder-only transformer (GGUF, safetensors)".into(),
            format!("built-in ({})", a.origin),
        ));
    }
    for p in &reg.probes {
        rows.push((
            "probe".into(),
            p.name.into(),
            format!("{} [from depth {}]", p.summary, p.min_depth.as_str()),
            format!("built-in ({})", p.origin),
        ));
    }
    for p in dynamic {
        for probe in &p.probes {
            rows.push((
                "probe".into(),
                probe.name.clone(),
                probe.description.clone(),
                format!(
                    "{} {} (plugin ABI {}) {}",
                    p.name,
                    p.version,
                    p.abi_version,
                    p.path.display()
                ),
            ));
        }
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(
                |(k, n, s, o)| serde_json::json!({"kind": k, "name": n, "summary": s, "origin": o}),
            )
            .collect();
        out.write_all(serde_json::to_string_pretty(&v)?.as_bytes())?;
        writeln!(out)?;
        return Ok(());
    }
    let mut t = Table::new(&["kind", "name", "what", "origin"]);
    for (k, n, s, o) in rows {
        t.row(vec![k, n, s, o]);
    }
    t.render(out)?;
    Ok(())
}
