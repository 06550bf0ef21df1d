//! `eprof import`, `eprof rm`, `eprof index rebuild`: what the index holds.

use anyhow::Context;
use eprof_core::paths::DataDir;
use eprof_index::Index;

use crate::args::{ImportArgs, RmArgs};
use crate::exit::Exit;

use super::traces::Out;

pub fn import(data: &DataDir, a: &ImportArgs, out: Out) -> anyhow::Result<()> {
    let mut idx = Index::open(&data.index())?;
    let here = eprof_core::machine::detect().hostname;
    std::fs::create_dir_all(data.traces())?;
    let mut damaged = Vec::new();
    for f in &a.files {
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        // Exit codes as `show`'s: 3 for a damaged trace, 1 for a file that is none.
        let (trace, truncation) = super::decode_file(f, &bytes)?;
        let dest = data.trace_path(&trace.meta.id);
        if std::fs::canonicalize(f).ok() != std::fs::canonicalize(&dest).ok() {
            std::fs::write(&dest, &bytes)
                .with_context(|| format!("cannot write {}", dest.display()))?;
        }
        let imported = trace.meta.machine.hostname != here;
        idx.insert(&trace, &dest, imported)?;
        writeln!(
            out,
            "imported {} ({} on {}{}){}",
            trace.meta.id,
            trace.meta.model.name,
            trace.meta.machine.hostname,
            if imported { ", another machine" } else { "" },
            truncation
                .as_ref()
                .map_or_else(String::new, |t| format!(" WARNING: {t}"))
        )?;
        if truncation.is_some() {
            damaged.push(f.display().to_string());
        }
    }
    // As `show` does: what could be read is in, and the exit code says it was not all.
    if !damaged.is_empty() {
        return Err(Exit(
            3,
            format!(
                "imported what could be read of damaged trace(s): {}",
                damaged.join(", ")
            ),
        )
        .into());
    }
    Ok(())
}

pub fn rm(data: &DataDir, a: &RmArgs, out: Out) -> anyhow::Result<()> {
    let mut idx = Index::open(&data.index())?;
    // A group (`eprof bench`) stands for all its runs.
    let mut ids = Vec::new();
    for r in &a.runs {
        if super::groups::is_group_ref(r) && !r.contains('/') {
            let runs = idx.group_runs(r)?;
            if runs.is_empty() {
                anyhow::bail!(
                    "no group {r:?} in the index (`eprof ls --groups` lists them; give the whole id)"
                );
            }
            writeln!(out, "group {r}: {} runs", runs.len())?;
            ids.extend(runs);
        } else {
            ids.push(r.clone());
        }
    }
    for r in &ids {
        let (row, deleted) = idx.delete_run(r, &data.traces(), !a.keep_files)?;
        writeln!(out, "removed {}", row.id)?;
        if !a.keep_files && !deleted {
            writeln!(
                out,
                "  kept {} (written with --out, outside the data directory)",
                row.trace_path
            )?;
        }
    }
    Ok(())
}

pub fn index_rebuild(data: &DataDir, out: Out) -> anyhow::Result<()> {
    let mut idx = Index::open(&data.index())?;
    let (n, failed) = idx.rebuild(&data.traces(), &eprof_core::machine::detect().hostname)?;
    writeln!(
        out,
        "indexed {n} traces from {} and the indexed ones kept elsewhere",
        data.traces().display()
    )?;
    for (p, why) in &failed {
        writeln!(out, "  skipped {}: {why}", p.display())?;
    }
    Ok(())
}
