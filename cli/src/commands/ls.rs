//! `eprof ls`: runs in the index, filtered, sorted, paged.

use eprof_core::paths::DataDir;
use eprof_index::{Index, RunFilter};

use crate::LsArgs;
use crate::fmt::{self, Table};

use super::Out;

pub fn ls(data: &DataDir, a: &LsArgs, out: Out) -> anyhow::Result<()> {
    let idx = Index::open(&data.index())?;
    let rows = idx.list(&RunFilter {
        sort: Some(a.sort.clone()),
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
            r.tags.join(","),
            fmt::clip(&r.prompt, 40),
        ]);
    }
    t.render(out)?;
    Ok(())
}
