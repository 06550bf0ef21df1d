//! `eprof ls`: runs in the index, filtered, sorted, paged.

use eprof_core::paths::DataDir;
use eprof_format::RunStop;
use eprof_index::{Index, RunFilter};

use crate::args::LsArgs;
use crate::fmt::{self, Table};

use super::traces::Out;

/// Traces written this long ago and not indexed are adopted by `ls`: a run whose
/// process died before indexing it. Newer ones may be recordings in progress.
const ADOPT_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

pub fn ls(data: &DataDir, a: &LsArgs, out: Out) -> anyhow::Result<()> {
    let mut idx = Index::open(&data.index())?;
    let adopted = idx.adopt(
        &data.traces(),
        || eprof_core::machine::detect().hostname,
        ADOPT_AFTER,
    )?;
    if !adopted.is_empty() && !a.json {
        eprintln!(
            "note: indexed {} trace(s) the index lacked (runs that ended without being indexed): {}",
            adopted.len(),
            adopted.join(", ")
        );
    }
    if a.groups {
        return groups(&idx, a.json, out);
    }
    let rows = idx.list(&RunFilter {
        sort: a.sort,
        limit: a.limit,
        offset: a.offset,
        ..a.filter.filter()
    })?;
    if a.json {
        out.write_all(serde_json::to_string_pretty(&rows)?.as_bytes())?;
        writeln!(out)?;
        return Ok(());
    }
    if rows.is_empty() {
        if a.filter.is_set() {
            out.write_all("no runs match\n".as_bytes())?;
            return Ok(());
        }
        out.write_all("no runs yet: `eprof record \"your prompt\"` makes one\n".as_bytes())?;
        return Ok(());
    }
    let mut t = Table::new(&[
        "id",
        "created (UTC)",
        "model",
        "depth",
        "power",
        "tokens",
        "total",
        "J/token",
        "tok/s",
        "how",
        "ended",
        "group",
        "tags",
        "prompt",
    ]);
    for r in rows {
        t.row(vec![
            r.id[..r.id.len().min(10)].to_string(),
            fmt::date(r.created_at_ms),
            fmt::clip(&r.model, 28),
            r.depth,
            format!(
                "{}{}",
                r.source,
                if r.imported { " (imported)" } else { "" }
            ),
            format!("{}+{}", r.prompt_tokens, r.generated_tokens),
            fmt::opt_j(r.total_j),
            fmt::opt_j(r.decode_j_per_token),
            r.decode_tokens_per_s
                .map_or_else(|| "-".into(), |v| format!("{v:.1}")),
            r.energy_label.unwrap_or_else(|| "-".into()),
            ended(r.stop_reason.as_ref()),
            match (&r.group_id, &r.config_label, r.repeat) {
                (Some(g), Some(c), Some(i)) => format!("{g} {c} #{i}"),
                _ => String::new(),
            },
            r.tags.join(","),
            fmt::clip(&r.prompt, 40),
        ]);
    }
    t.render(out)?;
    Ok(())
}

/// `eprof ls --groups`: groups of repeated runs (`eprof bench`).
fn groups(idx: &Index, json: bool, out: Out) -> anyhow::Result<()> {
    let groups = idx.groups()?;
    if json {
        out.write_all(serde_json::to_string_pretty(&groups)?.as_bytes())?;
        writeln!(out)?;
        return Ok(());
    }
    if groups.is_empty() {
        out.write_all("no groups yet: `eprof bench \"your prompt\"` makes one\n".as_bytes())?;
        return Ok(());
    }
    let mut t = Table::new(&[
        "group",
        "created (UTC)",
        "runs",
        "configurations",
        "models",
        "prompt",
    ]);
    for g in groups {
        t.row(vec![
            g.id,
            fmt::date(g.created_at_ms),
            g.runs.to_string(),
            g.configs
                .iter()
                .map(|(_, l, n)| format!("{l} ({n})"))
                .collect::<Vec<_>>()
                .join(", "),
            fmt::clip(&g.models.join(", "), 40),
            fmt::clip(&g.prompt, 40),
        ]);
    }
    t.render(out)?;
    Ok(())
}

/// How a run ended, for `ls`: a failed run says FAILED (its partial trace is kept and
/// indexed: what it measured before the failure is still there), a trace without an
/// end says unfinished (the recording process died).
fn ended(stop_reason: Option<&RunStop>) -> String {
    match stop_reason {
        Some(RunStop::Error(_)) => "FAILED".into(),
        Some(s) => s.to_string(),
        None => "unfinished".into(),
    }
}
