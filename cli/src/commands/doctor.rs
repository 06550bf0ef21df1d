//! `eprof doctor`: what can be used here and how to fix what cannot.

use eprof_core::Registry;
use eprof_core::paths::DataDir;
use eprof_index::Index;
use eprof_record::{Profiler, power_sources};

use super::traces::Out;

pub fn doctor(data: &DataDir, json: bool, out: Out) -> anyhow::Result<()> {
    let reg = Registry::discover()?;
    let sources = power_sources(&reg);
    let auto = reg.auto_power().map(|(p, why)| (p.name, why));
    let profiler = Profiler::new(data.clone(), &[])?;
    let (model, origin) = profiler.default_model();
    let model_check = eprof_models::load::detect(&model)
        .and_then(|src| {
            reg.adapter_for(&src)
                .map(|a| format!("{} adapter", a.name()))
        })
        .map_err(|e| e.to_string());
    let index = Index::open(&data.index()).and_then(|i| i.count());
    if json {
        let v = serde_json::json!({
            "data_dir": data.root(),
            "index": match &index { Ok(n) => serde_json::json!({"ok": true, "runs": n}), Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}) },
            "power_sources": sources,
            "auto_power": match &auto { Ok((n, why)) => serde_json::json!({"source": n, "why": why}), Err(e) => serde_json::json!({"error": e.to_string()}) },
            "adapters": reg.adapters.iter().map(|a| a.adapter.name()).collect::<Vec<_>>(),
            "probes": reg.probes.iter().map(|p| p.name).collect::<Vec<_>>(),
            "default_model": {"path": model, "origin": origin, "check": match &model_check { Ok(s) => s.clone(), Err(e) => e.clone() }, "ok": model_check.is_ok()},
        });
        out.write_all(serde_json::to_string_pretty(&v)?.as_bytes())?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "data directory  {}", data.root().display())?;
    match &index {
        Ok(n) => writeln!(
            out,
            "run index       ok, {n} runs ({})",
            data.index().display()
        )?,
        Err(e) => writeln!(out, "run index       PROBLEM: {e}")?,
    }
    out.write_all("\npower sources\n".as_bytes())?;
    for p in &sources {
        writeln!(
            out,
            "  {} {:<12} {:<9} {}",
            if p.available { "ok " } else { "-- " },
            p.name,
            p.kind,
            p.detail
        )?;
    }
    match &auto {
        Ok((_, why)) => writeln!(out, "  --power auto picks {why}")?,
        Err(e) => writeln!(out, "  --power auto: {e}")?,
    }
    out.write_all("\nmodel adapters  ".as_bytes())?;
    out.write_all(
        reg.adapters
            .iter()
            .map(|a| a.adapter.name())
            .collect::<Vec<_>>()
            .join(", ")
            .as_bytes(),
    )?;
    writeln!(out, "\ndefault model   {} ({origin})", model.display())?;
    match &model_check {
        Ok(s) => writeln!(out, "                ok: loads with the {s}")?,
        Err(e) => writeln!(out, "                PROBLEM: {e}")?,
    }
    out.write_all("probes          ".as_bytes())?;
    out.write_all(
        reg.probes
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
            .as_bytes(),
    )?;
    writeln!(out)?;
    Ok(())
}
