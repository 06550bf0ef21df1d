//! Groups of repeated runs, for `eprof bench` and `eprof compare`: resolving a group
//! reference (`g0123456789ab`, `g0123456789ab/depth=off`, `g0123456789ab/1`), and the
//! report: each configuration's figures with their 95% intervals, drift, and each
//! configuration against the first with a verdict. The numbers come from
//! `eprof_format::group`, which the viewer uses too.

use anyhow::{Context, bail};
use eprof_core::paths::DataDir;
use eprof_format::group::{self, Family, FigureDiff, FigureStats, Unit};
use eprof_format::stats::{ALPHA, Verdict};
use eprof_format::{Energies, RunStop, Summary};
use eprof_index::{Index, RunFilter};

use crate::exit::Exit;
use crate::fmt::Table;

use super::traces::Out;

/// Runs of one configuration (or one whole group), in run order.
pub struct Sample {
    /// The group it comes from.
    pub group: String,
    /// `GROUP/CONFIG`.
    pub label: String,
    pub run_ids: Vec<String>,
    pub summaries: Vec<Summary>,
}

/// Whether `arg` names a group (`g` + hex digits, optionally `/CONFIG`); run ids are
/// hex only, so they never do.
pub fn is_group_ref(arg: &str) -> bool {
    let id = arg.split('/').next().unwrap_or_default();
    id.len() > 1 && id.starts_with('g') && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// The runs a group reference names, summarised. Cancelled and failed runs are left
/// out (they did not run to their end), said on stderr.
pub fn resolve(data: &DataDir, arg: &str) -> anyhow::Result<Sample> {
    let (id, config) = match arg.split_once('/') {
        Some((g, c)) => (g, Some(c)),
        None => (arg, None),
    };
    let idx = Index::open(&data.index())?;
    let groups = idx.groups()?;
    let matches: Vec<_> = groups.iter().filter(|g| g.id.starts_with(id)).collect();
    let g = match matches.as_slice() {
        [one] => *one,
        [] => bail!("no group {id:?} in the index; `eprof ls --groups` lists them"),
        _ => bail!("{id:?} matches several groups; give more of the id"),
    };
    let rows = idx.list(&RunFilter {
        group: Some(g.id.clone()),
        ..Default::default()
    })?;
    let mut rows: Vec<_> = rows
        .into_iter()
        .filter(|r| match config {
            None => true,
            Some(c) => {
                r.config_label.as_deref() == Some(c)
                    || c.parse::<u32>().ok().is_some_and(|i| r.config == Some(i))
            }
        })
        .collect();
    if rows.is_empty() {
        let known: Vec<String> = g
            .configs
            .iter()
            .map(|(i, l, _)| format!("{i} ({l})"))
            .collect();
        bail!(
            "group {} has no configuration {:?}; it has {}",
            g.id,
            config.unwrap_or_default(),
            known.join(", ")
        );
    }
    rows.sort_by_key(|r| (r.run_order, r.created_at_ms));
    let label = match config {
        Some(_) => rows[0].config_label.clone().unwrap_or_default(),
        None if g.configs.len() == 1 => g.configs[0].1.clone(),
        None => "all configurations".into(),
    };
    let mut sample = Sample {
        group: g.id.clone(),
        label: format!("{}/{label}", g.id),
        run_ids: Vec::new(),
        summaries: Vec::new(),
    };
    for r in rows {
        if r.stop_reason.as_ref().is_some_and(RunStop::is_cut_short) || !r.complete {
            eprintln!(
                "note: {} left out ({})",
                r.id,
                r.stop_reason
                    .as_ref()
                    .map_or("unfinished".into(), |s| s.to_string())
            );
            continue;
        }
        let bytes = std::fs::read(&r.trace_path)
            .with_context(|| format!("cannot read the trace of run {}", r.id))?;
        let d = eprof_format::decode(&bytes).with_context(|| format!("run {}", r.id))?;
        let en = Energies::compute(&d.trace);
        sample.summaries.push(Summary::compute(&d.trace, &en));
        sample.run_ids.push(r.id);
    }
    Ok(sample)
}

/// A group's configurations as samples (for `eprof compare GROUP` and the end of
/// `eprof bench`).
pub fn configurations(data: &DataDir, group: &str) -> anyhow::Result<Vec<Sample>> {
    let idx = Index::open(&data.index())?;
    let g = idx
        .groups()?
        .into_iter()
        .find(|g| g.id.starts_with(group.split('/').next().unwrap_or(group)))
        .with_context(|| format!("no group {group:?} in the index"))?;
    g.configs
        .iter()
        .map(|(i, _, _)| resolve(data, &format!("{}/{i}", g.id)))
        .collect()
}

/// Every figure of `b` against `a`.
fn compare(a: &Sample, b: &Sample) -> Vec<FigureDiff> {
    let (ra, rb): (Vec<&Summary>, Vec<&Summary>) =
        (a.summaries.iter().collect(), b.summaries.iter().collect());
    group::compare_groups(&ra, &rb)
}

/// The JSON of a report: what `--json` prints. `diffs[i]` is sample `i + 1` against
/// the first.
fn report_json(samples: &[Sample], diffs: &[Vec<FigureDiff>]) -> serde_json::Value {
    let configs: Vec<_> = samples
        .iter()
        .map(|s| {
            let refs: Vec<&Summary> = s.summaries.iter().collect();
            serde_json::json!({
                "group": s.group,
                "label": s.label,
                "runs": s.run_ids,
                "figures": group::describe_group(&refs),
            })
        })
        .collect();
    let comparisons: Vec<_> = samples
        .iter()
        .skip(1)
        .zip(diffs)
        .map(|(b, figures)| {
            serde_json::json!({
                "a": samples[0].label,
                "b": b.label,
                "alpha": ALPHA,
                "figures": figures,
            })
        })
        .collect();
    serde_json::json!({"configurations": configs, "comparisons": comparisons})
}

/// Print the report; with `fail_if_higher`, a significant rise of energy or J per
/// generated token by more than that many percent is an error (exit 4).
pub fn report(
    samples: &[Sample],
    json: bool,
    fail_if_higher: Option<f64>,
    out: Out,
) -> anyhow::Result<()> {
    // Each configuration against the first, computed once for the report and the gate.
    let diffs: Vec<Vec<FigureDiff>> = samples
        .iter()
        .skip(1)
        .map(|b| compare(&samples[0], b))
        .collect();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report_json(samples, &diffs))?
        )?;
    } else {
        for s in samples {
            describe_text(s, out)?;
        }
        for (b, d) in samples.iter().skip(1).zip(&diffs) {
            compare_text(&samples[0], b, d, out)?;
        }
    }
    if let Some(limit) = fail_if_higher {
        for (b, bd) in samples.iter().skip(1).zip(&diffs) {
            for d in bd {
                if matches!(d.key.as_str(), "total_energy" | "j_per_generated_token")
                    && d.diff.verdict == Verdict::Higher
                    && d.diff.relative * 100.0 > limit
                {
                    return Err(Exit(
                        4,
                        format!(
                            "{} of {} is {} higher than {} (95% CI of the difference {} .. {}), over the {limit}% allowed",
                            group::display_name(&d.key),
                            b.label,
                            group::percent(d.diff.relative),
                            samples[0].label,
                            d.unit.format_signed(d.diff.ci_low),
                            d.unit.format_signed(d.diff.ci_high),
                        ),
                    )
                    .into());
                }
            }
        }
    }
    Ok(())
}

fn describe_text(s: &Sample, out: Out) -> anyhow::Result<()> {
    let refs: Vec<&Summary> = s.summaries.iter().collect();
    let figs = group::describe_group(&refs);
    writeln!(out, "\n{} ({} runs)", s.label, s.summaries.len())?;
    let mut t = Table::new(&["figure", "mean", "95% interval", "sd", "cv", "n", "how"]);
    let headline = figs.iter().filter(|f| f.family == Family::Run);
    let phases = figs
        .iter()
        .filter(|f| f.family == Family::Phase && f.unit == Unit::Joules);
    for f in headline.chain(phases) {
        t.row(vec![
            group::display_name(&f.key),
            f.unit.format(f.stats.mean),
            format!(
                "{} .. {}{}",
                f.unit.format(f.stats.ci_low),
                f.unit.format(f.stats.ci_high),
                if f.stats.method == eprof_format::stats::IntervalMethod::Bootstrap {
                    " (bootstrap)"
                } else {
                    ""
                }
            ),
            f.unit.format(f.stats.sd),
            group::percent(f.stats.cv)
                .trim_start_matches('+')
                .to_string(),
            f.stats.n.to_string(),
            f.stats.label.map_or("", |l| l.as_str()).to_string(),
        ]);
    }
    t.render(out)?;
    let drifting: Vec<&FigureStats> = figs
        .iter()
        .filter(|f| f.family == Family::Run && f.drift.as_ref().is_some_and(|d| d.drifting))
        .collect();
    for f in drifting {
        let d = f.drift.as_ref().map_or(0.0, |d| d.slope_per_run);
        writeln!(
            out,
            "drift: {} moves {} per run over the run order (p = {:.3}); interleave configurations, add --warmup or --cooldown",
            group::display_name(&f.key),
            group::percent(d),
            f.drift.as_ref().map_or(1.0, |d| d.p_value)
        )?;
    }
    Ok(())
}

fn compare_text(a: &Sample, b: &Sample, diffs: &[FigureDiff], out: Out) -> anyhow::Result<()> {
    writeln!(out, "\n{} vs {}", b.label, a.label)?;
    let mut t = Table::new(&[
        "figure",
        "A",
        "B",
        "B - A (95% interval)",
        "change",
        "verdict",
        "detectable",
    ]);
    let row = |t: &mut Table, d: &FigureDiff| {
        t.row(vec![
            group::display_name(&d.key),
            d.unit.format(d.diff.mean_a),
            d.unit.format(d.diff.mean_b),
            format!(
                "{} ({} .. {})",
                d.unit.format_signed(d.diff.diff),
                d.unit.format_signed(d.diff.ci_low),
                d.unit.format_signed(d.diff.ci_high)
            ),
            group::percent(d.diff.relative),
            d.diff.verdict.as_str().to_string(),
            format!(
                "{} ({})",
                d.unit.format(d.diff.detectable),
                group::percent(d.diff.detectable / d.diff.mean_a.abs()).trim_start_matches('+')
            ),
        ]);
    };
    for d in diffs.iter().filter(|d| d.family == Family::Run) {
        row(&mut t, d);
    }
    for d in diffs
        .iter()
        .filter(|d| d.family == Family::Phase && d.unit == Unit::Joules)
    {
        row(&mut t, d);
    }
    t.render(out)?;
    for (family, name) in [
        (Family::Layer, "layers"),
        (Family::Component, "components"),
        (Family::Cell, "layer x component cells"),
    ] {
        for unit in [Unit::Joules, Unit::Seconds] {
            let fam: Vec<&FigureDiff> = diffs
                .iter()
                .filter(|d| d.family == family && d.unit == unit)
                .collect();
            if fam.is_empty() {
                continue;
            }
            let differ: Vec<String> = fam
                .iter()
                .filter(|d| d.diff.verdict != Verdict::NoDetectableDifference)
                .map(|d| {
                    format!(
                        "{} {}",
                        d.key.split('.').nth(1).unwrap_or_default(),
                        group::percent(d.diff.relative)
                    )
                })
                .collect();
            writeln!(
                out,
                "{name} ({}): {} of {} differ (false discovery rate held at 5%, Benjamini-Hochberg){}{}",
                if unit == Unit::Joules {
                    "energy"
                } else {
                    "time"
                },
                differ.len(),
                fam.len(),
                if differ.is_empty() { "" } else { ": " },
                differ
                    .iter()
                    .take(12)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
                    + if differ.len() > 12 { ", ..." } else { "" }
            )?;
        }
    }
    Ok(())
}
