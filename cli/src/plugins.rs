//! Dynamic plugins in the CLI: which to load, and `eprof plugins [check]`.

use std::path::{Path, PathBuf};

use eprof_core::paths::DataDir;
use eprof_core::plugin_host::{Plugin, plugin_files};
use eprof_core::{Error, Registry};

/// Load the plugins of this invocation: every `--plugin PATH` (an error if one fails),
/// then `EPROF_PLUGIN_PATH` and the per-user plugin folder (a warning if one fails,
/// so one broken file there does not stop every command). Probe names must be unique
/// across built-ins and plugins.
pub fn load(data: &DataDir, explicit: &[PathBuf], reg: &Registry) -> anyhow::Result<Vec<Plugin>> {
    let mut plugins: Vec<Plugin> = Vec::new();
    for path in plugin_files(explicit, &data.plugins()) {
        match Plugin::load(&path) {
            Ok(p) => plugins.push(p),
            Err(e) if explicit.contains(&path) => return Err(e.into()),
            Err(e) => eprintln!("warning: skipping plugin: {e}"),
        }
    }
    let mut seen: Vec<(String, String)> = reg
        .probes
        .iter()
        .map(|p| (p.name.to_string(), format!("built-in ({})", p.origin)))
        .collect();
    for p in &plugins {
        for probe in &p.probes {
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == probe.name) {
                return Err(Error::Registry(format!(
                    "two probes are named {:?}: one from {first}, one from {}; rename one",
                    probe.name,
                    p.path.display()
                ))
                .into());
            }
            seen.push((probe.name.clone(), p.path.display().to_string()));
        }
    }
    Ok(plugins)
}

/// `eprof plugins check PATH`.
pub fn check(path: &Path, json: bool, out: &mut String) -> anyhow::Result<()> {
    let p = Plugin::load(path)?;
    if json {
        out.push_str(&serde_json::to_string_pretty(&describe(&p))?);
        out.push('\n');
        return Ok(());
    }
    out.push_str(&format!(
        "ok: {} {} (plugin ABI {}, this eprof speaks ABI {}) from {}\n",
        p.name,
        p.version,
        p.abi_version,
        eprof_core::plugin_api::ABI_VERSION,
        p.path.display()
    ));
    for probe in &p.probes {
        out.push_str(&format!(
            "  probe {:<16} {}\n",
            probe.name, probe.description
        ));
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
