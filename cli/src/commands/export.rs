//! `eprof export`: JSON, CSV tables, Chrome trace events, a copy of the trace, or rows
//! appended to a Parquet dataset.

use std::path::PathBuf;

use anyhow::Context;
use eprof_core::paths::DataDir;
use eprof_dataset::{Dataset, TABLES};
use eprof_format::{Energies, export, units};
use eprof_index::Index;

use crate::args::ExportArgs;
use crate::exit::Exit;

use super::traces::{Out, decode_file, finish_truncated, load, parent_folder, resolve};

pub fn export(data: &DataDir, a: &ExportArgs, out: Out) -> anyhow::Result<()> {
    if a.format == "parquet" {
        return parquet(data, a, out);
    }
    if a.all || a.filter.is_set() {
        usage!("--all and the run filters select runs for --format parquet only");
    }
    let run = match &a.runs[..] {
        [run] => run,
        [] => usage!("which run? give a run id (or prefix) or a .eprof path"),
        _ => usage!(
            "--format {} exports one run; --format parquet takes several",
            a.format
        ),
    };
    let (trace, path, warn) = load(data, run)?;
    let en = Energies::compute(&trace);
    // To the file, or streamed to stdout (never held twice).
    let write = |bytes: &[u8], out: Out| -> anyhow::Result<()> {
        match &a.out {
            Some(p) => {
                parent_folder(p)?;
                std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))
            }
            None => {
                out.write_all(bytes)?;
                writeln!(out)?;
                Ok(())
            }
        }
    };
    let Some(format) = export::Format::parse(&a.format) else {
        usage!(
            "unknown export format {:?}: use json, csv, chrome, eprof or parquet",
            a.format
        )
    };
    match format.render(&trace, &en) {
        export::Rendered::Text(text) => write(text.as_bytes(), out)?,
        export::Rendered::TraceFile => {
            let Some(p) = &a.out else {
                usage!("--format eprof needs --out FILE")
            };
            parent_folder(p)?;
            std::fs::copy(&path, p).with_context(|| format!("cannot write {}", p.display()))?;
        }
        export::Rendered::Tables(tables) => {
            let Some(dir) = &a.out else {
                usage!("--format csv needs --out DIR (one file per table)")
            };
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (name, text) in tables {
                let p = dir.join(name);
                std::fs::write(&p, text)
                    .with_context(|| format!("cannot write {}", p.display()))?;
            }
        }
    }
    if let Some(p) = &a.out {
        eprintln!("wrote {}", p.display());
    }
    finish_truncated(warn)
}

/// `--format parquet`: append runs to a dataset folder (docs/dataset.md). Runs come
/// from the command line, or from the index (`--all`, filters). One trace is in memory
/// at a time. A trace that cannot be read is reported and skipped, the others are
/// exported, and the exit code is 3.
fn parquet(data: &DataDir, a: &ExportArgs, out: Out) -> anyhow::Result<()> {
    let Some(dir) = &a.out else {
        usage!("--format parquet needs --out DIR (the dataset folder; created, or appended to)")
    };
    let from_index = a.all || a.filter.is_set();
    let paths: Vec<PathBuf> = match (from_index, a.runs.is_empty()) {
        (true, false) => usage!("give run ids or --all / filters, not both"),
        (false, true) => {
            usage!("which runs? give run ids (or prefixes, or .eprof paths), or --all")
        }
        (false, false) => a
            .runs
            .iter()
            .map(|r| resolve(data, r))
            .collect::<anyhow::Result<_>>()?,
        (true, true) => Index::open(&data.index())?
            .list(&a.filter.filter())?
            .into_iter()
            .map(|r| PathBuf::from(r.trace_path))
            .collect(),
    };
    let mut ds = Dataset::open(dir).with_context(|| format!("dataset {}", dir.display()))?;
    for p in &ds.removed {
        eprintln!(
            "note: removed {} (left by an interrupted export)",
            p.display()
        );
    }
    let started = std::time::Instant::now();
    let mut batch = ds.batch()?;
    let (mut already, mut failed) = (0usize, 0usize);
    for p in &paths {
        let read = std::fs::read(p)
            .with_context(|| format!("cannot read {}", p.display()))
            .and_then(|bytes| decode_file(p, &bytes));
        match read {
            Ok((trace, warn)) => {
                if let Some(w) = warn {
                    eprintln!("warning: {}: {w} (exported as incomplete)", p.display());
                }
                if !batch.add(&trace)? {
                    already += 1;
                }
            }
            Err(e) => {
                eprintln!("error: {e:#} (skipped)");
                failed += 1;
            }
        }
    }
    let added = batch.commit()?;
    if added.runs.is_empty() {
        writeln!(
            out,
            "{}: nothing new ({already} run{} already in the dataset)",
            dir.display(),
            if already == 1 { "" } else { "s" }
        )?;
        return exit_if_failed(failed);
    }
    let rows: Vec<String> = TABLES
        .iter()
        .zip(added.rows)
        .map(|((t, _), n)| format!("{t} {n}"))
        .collect();
    writeln!(
        out,
        "{}: added {} run{} ({} rows: {}; {} in {:.2} s){}",
        dir.display(),
        added.runs.len(),
        if added.runs.len() == 1 { "" } else { "s" },
        added.rows.iter().sum::<u64>(),
        rows.join(", "),
        units::bytes(added.bytes),
        started.elapsed().as_secs_f64(),
        if already > 0 {
            format!("; {already} already in the dataset")
        } else {
            String::new()
        }
    )?;
    exit_if_failed(failed)
}

fn exit_if_failed(failed: usize) -> anyhow::Result<()> {
    if failed > 0 {
        return Err(Exit(
            3,
            format!("{failed} trace(s) could not be read and were not exported"),
        )
        .into());
    }
    Ok(())
}
