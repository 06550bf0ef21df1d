//! What the commands read: a run by id or path, its trace decoded, and where they
//! write.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use eprof_core::paths::DataDir;
use eprof_format::Trace;
use eprof_index::Index;

use crate::exit::Exit;

/// Where a command writes: stdout, locked.
pub(crate) type Out<'a> = &'a mut dyn Write;

/// A trace by path, or by run id (prefix) through the index. Truncated traces load
/// with a warning; the returned flag says so.
pub(crate) fn load(data: &DataDir, run: &str) -> anyhow::Result<(Trace, PathBuf, Option<String>)> {
    let path = resolve(data, run)?;
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let (trace, warn) = decode_file(&path, &bytes)?;
    Ok((trace, path, warn))
}

/// A run's trace file: `run` is a path, or a run id (prefix) looked up in the index.
pub(crate) fn resolve(data: &DataDir, run: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(run);
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    // What looks like a file (a path, or a name ending in .eprof) is not a run id:
    // say the file is missing rather than "no run in the index".
    if run.contains(std::path::MAIN_SEPARATOR) || run.ends_with(".eprof") {
        return Err(Exit(1, format!("{run}: no such file")).into());
    }
    // A group id (`eprof bench`) names several runs.
    if run.starts_with('g')
        && run.len() == 13
        && let Ok(idx) = Index::open(&data.index())
        && idx
            .list(&eprof_index::RunFilter {
                group: Some(run.to_string()),
                limit: Some(1),
                ..Default::default()
            })
            .is_ok_and(|r| !r.is_empty())
    {
        return Err(Exit(
            1,
            format!(
                "{run} is a group of runs (eprof bench): `eprof ls --group {run}` lists them, `eprof compare {run}` compares its configurations"
            ),
        )
        .into());
    }
    let idx = Index::open(&data.index())?;
    Ok(PathBuf::from(idx.find(run)?.trace_path))
}

/// Decode a trace file's bytes; a truncated file decodes with a warning, a corrupted
/// one is an error with exit code 3.
pub(crate) fn decode_file(path: &Path, bytes: &[u8]) -> anyhow::Result<(Trace, Option<String>)> {
    let d = eprof_format::decode(bytes).map_err(|e| {
        let code = match e {
            eprof_format::FormatError::Truncated { .. }
            | eprof_format::FormatError::Corrupt { .. } => 3,
            _ => 1,
        };
        Exit(code, format!("{}: {e}", path.display()))
    })?;
    Ok((d.trace, d.truncation.map(|t| t.to_string())))
}

/// Make the folder an output file goes in, as `record --out` does.
pub(crate) fn parent_folder(file: &Path) -> anyhow::Result<()> {
    match file.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))
        }
        None => Ok(()),
    }
}

pub(crate) fn finish_truncated(warn: Option<String>) -> anyhow::Result<()> {
    match warn {
        Some(w) => Err(Exit(3, w).into()),
        None => Ok(()),
    }
}
