//! `eprof plugins check` (which plugins load is [`eprof_record::Profiler::new`]'s job).

use std::path::Path;

use eprof_core::plugin_host::Plugin;

/// `eprof plugins check PATH`.
pub fn check(path: &Path, json: bool, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let p = Plugin::load(path)?;
    if json {
        out.write_all(serde_json::to_string_pretty(&describe(&p))?.as_bytes())?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "ok: {} {} (plugin ABI {}, this eprof speaks ABI {}) from {}",
        p.name,
        p.version,
        p.abi_version,
        eprof_core::plugin_api::ABI_VERSION,
        p.path.display()
    )?;
    for probe in &p.probes {
        writeln!(out, "  probe {:<16} {}", probe.name, probe.description)?;
    }
    Ok(())
}

pub fn describe(p: &Plugin) -> serde_json::Value {
    serde_json::json!({
        "name": p.name,
        "version": p.version,
        "path": p.path,
        "abi_version": p.abi_version,
        "probes": p.probes.iter().map(|x| serde_json::json!({"name": x.name, "description": x.description})).collect::<Vec<_>>(),
    })
}
