//! `eprof export`: JSON, CSV tables, Chrome trace events, or a copy of the trace.

use anyhow::{Context, bail};
use eprof_core::paths::DataDir;
use eprof_format::{Energies, Summary, export};

use crate::ExportArgs;

use super::{Out, finish_truncated, load};

pub fn export(data: &DataDir, a: &ExportArgs, out: Out) -> anyhow::Result<()> {
    let (trace, path, warn) = load(data, &a.run)?;
    let en = Energies::compute(&trace);
    // To the file, or streamed to stdout (never held twice).
    let write = |bytes: &[u8], out: Out| -> anyhow::Result<()> {
        match &a.out {
            Some(p) => {
                std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))
            }
            None => {
                out.write_all(bytes)?;
                writeln!(out)?;
                Ok(())
            }
        }
    };
    match a.format.as_str() {
        "json" => write(
            export::to_json(&trace, &en, &Summary::compute(&trace, &en)).as_bytes(),
            out,
        )?,
        "chrome" => write(export::to_chrome_trace(&trace, &en).as_bytes(), out)?,
        "eprof" => {
            let Some(p) = &a.out else {
                bail!("--format eprof needs --out FILE")
            };
            std::fs::copy(&path, p).with_context(|| format!("cannot write {}", p.display()))?;
        }
        "csv" => {
            let Some(dir) = &a.out else {
                bail!("--format csv needs --out DIR (one file per table)")
            };
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (name, text) in export::to_csv(&trace, &en) {
                let p = dir.join(name);
                std::fs::write(&p, text)
                    .with_context(|| format!("cannot write {}", p.display()))?;
            }
        }
        other => bail!("unknown export format {other:?}: use json, csv, chrome or eprof"),
    }
    if let Some(p) = &a.out {
        eprintln!("wrote {}", p.display());
    }
    finish_truncated(warn)
}
