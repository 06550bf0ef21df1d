//! `eprof show`: one run's phases, tokens, layers, components, operations, metrics.

use std::path::Path;

use eprof_core::paths::DataDir;
use eprof_format::range::{RangeCost, RangeEnd};
use eprof_format::{Energies, GridMetric, Summary, Trace, summary};

use crate::args::ShowArgs;
use crate::fmt::{self, Table};

use super::traces::{Out, finish_truncated, load};

pub fn show(data: &DataDir, a: &ShowArgs, out: Out) -> anyhow::Result<()> {
    let (trace, path, warn) = load(data, &a.run)?;
    let en = Energies::compute(&trace);
    if a.from.is_some() || a.to.is_some() {
        let r = range(&trace, &en, a.from, a.to)?;
        if a.json {
            out.write_all(serde_json::to_string_pretty(&r)?.as_bytes())?;
            writeln!(out)?;
        } else {
            if let Some(w) = &warn {
                writeln!(out, "WARNING: {w}\n")?;
            }
            render_range(&trace, &path, &r, out)?;
        }
        return finish_truncated(warn);
    }
    let s = Summary::compute(&trace, &en);
    if a.json {
        out.write_all(serde_json::to_string_pretty(&s)?.as_bytes())?;
        writeln!(out)?;
        return finish_truncated(warn);
    }
    if let Some(w) = &warn {
        writeln!(out, "WARNING: {w}\n")?;
    }
    render_show(&trace, &path, &en, &s, out)?;
    finish_truncated(warn)
}

/// The figures of `--from`..`--to`; a missing end is the run's start or end.
fn range(
    trace: &Trace,
    en: &Energies,
    from: Option<RangeEnd>,
    to: Option<RangeEnd>,
) -> anyhow::Result<RangeCost> {
    let (start, end) = trace
        .pipeline_bounds()
        .ok_or_else(|| anyhow::anyhow!("this trace has no phases: there is no run to cut"))?;
    let a = match from {
        Some(f) => RangeCost::resolve(trace, f, true).map_err(anyhow::Error::msg)?,
        None => start,
    };
    let b = match to {
        Some(t) => RangeCost::resolve(trace, t, false).map_err(anyhow::Error::msg)?,
        None => end,
    };
    if b < a {
        usage!("--to ({}) is before --from ({})", fmt::ns(b), fmt::ns(a));
    }
    Ok(RangeCost::of(trace, en, a, b))
}

fn render_range(trace: &Trace, path: &Path, r: &RangeCost, out: Out) -> std::io::Result<()> {
    writeln!(out, "run        {}  ({})", trace.meta.id, path.display())?;
    let covers = match (r.tokens, r.steps) {
        (Some((f, l)), Some((sf, sl))) => format!("tokens #{f} to #{l}, steps {sf} to {sl}"),
        _ => "no generated token".into(),
    };
    writeln!(
        out,
        "range      {} to {} on the trace's clock: {}, in {} ({covers})",
        fmt::ns(r.from_ns),
        fmt::ns(r.to_ns),
        fmt::ns(r.duration_ns),
        if r.phases.is_empty() {
            "no phase".to_string()
        } else {
            r.phases.join(", ")
        },
    )?;
    writeln!(
        out,
        "energy     {} ({}), {} on average",
        fmt::energy(r.total),
        fmt::label(r.total),
        fmt::watts(r.avg_power_w)
    )?;
    let mut t = Table::new(&["channel", "energy", "power", "label", "in total"]);
    for c in &r.channels {
        t.row(vec![
            c.name.clone(),
            fmt::opt_j(c.joules),
            fmt::watts(c.avg_power_w),
            c.label.as_str().into(),
            if c.in_total { "yes" } else { "no" }.into(),
        ]);
    }
    t.render(out)?;
    let mix: Vec<String> = r
        .label_mix
        .iter()
        .map(|(l, n)| format!("{} {n}", l.as_str()))
        .collect();
    writeln!(
        out,
        "figures    of the sections and tokens inside: {}",
        if mix.is_empty() {
            "none".to_string()
        } else {
            mix.join(" · ")
        }
    )
}

fn render_show(
    trace: &Trace,
    path: &Path,
    en: &Energies,
    s: &Summary,
    out: Out,
) -> std::io::Result<()> {
    header(trace, path, s, out)?;
    totals(trace, s, out)?;
    step_tables(trace, s, out)?;
    site_tables(trace, en, s, out)
}

/// Which run, of what, where, with which settings and power source.
fn header(trace: &Trace, path: &Path, s: &Summary, out: Out) -> std::io::Result<()> {
    let m = &trace.meta;
    writeln!(out, "run        {}  ({})", m.id, path.display())?;
    writeln!(
        out,
        "created    {} UTC on {} ({}, {} cores, {})",
        fmt::date(m.created_at_ms),
        m.machine.hostname,
        m.machine.cpu,
        m.machine.cpu_cores,
        m.machine.os
    )?;
    writeln!(out, "model      {}", m.model.describe())?;
    writeln!(
        out,
        "settings   depth {}, max {} tokens, temperature {}, seed {}, chat template {}, probes [{}]",
        m.settings.depth.as_str(),
        m.settings.max_tokens,
        m.settings.temperature,
        m.settings.seed,
        if m.settings.chat_template {
            "on"
        } else {
            "off"
        },
        m.settings.probes.join(", ")
    )?;
    if let Some(e) = &trace.execution {
        writeln!(
            out,
            "execution  {} thread{}, kernels {}",
            e.threads,
            if e.threads == 1 { "" } else { "s" },
            e.kernels
        )?;
    }
    if let Some(g) = &trace.group {
        writeln!(
            out,
            "group      {} ({}, repeat {}, run {} of the group)",
            g.id,
            g.config_label,
            g.repeat,
            g.order + 1
        )?;
    }
    if !m.tags.is_empty() || m.experiment.is_some() {
        writeln!(
            out,
            "tags       [{}] experiment {}",
            m.tags.join(", "),
            m.experiment.as_deref().unwrap_or("-")
        )?;
    }
    writeln!(out, "prompt     {}", fmt::clip(&m.prompt, 200))?;
    if let Some(e) = &trace.end {
        writeln!(
            out,
            "output     {} [{}]",
            fmt::clip(&e.generated_text, 300),
            e.stop_reason
        )?;
    }
    writeln!(
        out,
        "power      {} ({}), channels [{}]; resolution {} (nominal {}), {} readings, median spacing {}",
        m.power.name,
        m.power.kind.as_str(),
        m.power
            .channels
            .iter()
            .map(|c| format!(
                "{}{}",
                c.name,
                if c.in_total { "" } else { " (not in total)" }
            ))
            .collect::<Vec<_>>()
            .join(", "),
        fmt::ns(s.resolution_ns),
        fmt::ns(s.nominal_resolution_ns),
        s.samples,
        fmt::ns(s.observed_spacing_ns)
    )?;
    for (k, v) in &m.power.details {
        writeln!(out, "           {k}: {v}")?;
    }
    writeln!(out)
}

/// The run's energy and time, per channel, above idle, per token, and how the figures
/// were obtained.
fn totals(trace: &Trace, s: &Summary, out: Out) -> std::io::Result<()> {
    writeln!(
        out,
        "total      {} over {} ({}), average {}",
        fmt::energy(s.total),
        fmt::ns(s.duration_ns),
        fmt::label(s.total),
        fmt::watts(s.avg_power_w)
    )?;
    // A run that combined sources: each channel with its source, resolution and label.
    if trace.channel_sources.is_some() {
        for c in &s.channels {
            writeln!(
                out,
                "  {:<14} {} ({}, {}; resolution {}){}",
                c.name,
                c.joules.map_or_else(|| "-".to_string(), fmt::joules),
                c.source,
                c.label.as_str(),
                fmt::ns(c.resolution_ns),
                if c.in_total { "" } else { ", not in total" }
            )?;
        }
    }
    if let (Some(w), Some(d)) = (s.idle_w, s.dynamic_j) {
        writeln!(
            out,
            "above idle {} (idle baseline {})",
            fmt::joules(d),
            fmt::watts(Some(w))
        )?;
    }
    writeln!(
        out,
        "tokens     {} prompt + {} generated; time to first token {}; decode {} per token, {}; {} per generated token overall",
        s.prompt_tokens,
        s.generated_tokens,
        s.time_to_first_token_ns.map_or_else(|| "-".into(), fmt::ns),
        fmt::opt_j(s.decode_j_per_token),
        s.decode_tokens_per_s
            .map_or_else(|| "- tok/s".into(), |t| format!("{t:.1} tok/s")),
        fmt::opt_j(s.j_per_generated_token),
    )?;
    out.write_all("\nhow the figures were obtained:\n".as_bytes())?;
    for (l, n) in &s.labels {
        writeln!(
            out,
            "  {:<13} {:>7} figures: {}",
            l.as_str(),
            n,
            l.explain()
        )?;
    }
    Ok(())
}

/// Phases, sections and tokens.
fn step_tables(trace: &Trace, s: &Summary, out: Out) -> std::io::Result<()> {
    out.write_all("\nphases\n".as_bytes())?;
    energy_table("phase", &s.phases, out)?;
    out.write_all("\nsections (summed over steps)\n".as_bytes())?;
    let mut t = Table::new(&["section", "count", "time", "energy", "avg power", "how"]);
    for r in &s.sections {
        t.row(vec![
            r.name.clone(),
            r.count.to_string(),
            fmt::ns(r.duration_ns),
            fmt::energy(r.energy),
            fmt::watts(r.avg_power_w()),
            fmt::label(r.energy).into(),
        ]);
    }
    t.render(out)?;

    out.write_all("\ntokens\n".as_bytes())?;
    let mut t = Table::new(&[
        "step", "pos", "id", "token", "phase", "time", "energy", "power", "how",
    ]);
    for r in &s.tokens {
        let total_w = trace.meta.power.total_of(&r.power_w);
        t.row(vec![
            r.step.to_string(),
            r.position.to_string(),
            r.id.to_string(),
            format!("{:?}", fmt::clip(&r.text, 16)),
            r.phase.as_str().into(),
            fmt::ns(r.duration_ns),
            fmt::energy(r.energy),
            fmt::watts(total_w),
            fmt::label(r.energy).into(),
        ]);
    }
    t.render(out)
}

/// Layers, the layer x component grid, components, operations, probe metrics, notes.
fn site_tables(trace: &Trace, en: &Energies, s: &Summary, out: Out) -> std::io::Result<()> {
    if !s.layers.is_empty() {
        out.write_all("\nlayers (all steps)\n".as_bytes())?;
        let mut t = Table::new(&["layer", "time", "energy", "share", "how"]);
        let total: f64 = s.layers.iter().filter_map(|r| r.joules()).sum();
        for r in &s.layers {
            t.row(vec![
                r.name.clone(),
                fmt::ns(r.duration_ns),
                fmt::energy(r.energy),
                r.joules()
                    .filter(|_| total > 0.0)
                    .map_or_else(|| "-".into(), |j| format!("{:.1}%", 100.0 * j / total)),
                fmt::label(r.energy).into(),
            ]);
        }
        t.render(out)?;
        out.write_all("\ncomponents (all layers, all steps)\n".as_bytes())?;
        energy_table("component", &s.components, out)?;
        let g = summary::grid(trace, en, &GridMetric::EnergyJ, None);
        out.write_all("\nlayer x component energy (mJ, all steps)\n".as_bytes())?;
        let mut head: Vec<String> = vec!["layer".into()];
        head.extend(g.components.iter().map(|c| summary::short_component(c)));
        let head_ref: Vec<&str> = head.iter().map(String::as_str).collect();
        let mut t = Table::new(&head_ref);
        for (l, row) in g.values.iter().enumerate() {
            let mut cells = vec![format!("L{l}")];
            cells.extend(
                row.iter()
                    .map(|v| v.map_or_else(|| "-".into(), |j| format!("{:.3}", j * 1e3))),
            );
            t.row(cells);
        }
        t.render(out)?;
        let mut top: Vec<&summary::Row> = s
            .layer_components
            .iter()
            .filter(|r| r.energy.is_some())
            .collect();
        top.sort_by(|a, b| {
            b.joules()
                .unwrap_or(0.0)
                .total_cmp(&a.joules().unwrap_or(0.0))
        });
        out.write_all("\ntop layer components by energy\n".as_bytes())?;
        let mut t = Table::new(&["site", "time", "energy", "how"]);
        for r in top.iter().take(10) {
            t.row(vec![
                r.name.clone(),
                fmt::ns(r.duration_ns),
                fmt::energy(r.energy),
                fmt::label(r.energy).into(),
            ]);
        }
        t.render(out)?;
    }
    if !s.operations.is_empty() {
        out.write_all("\noperations (deep; all layers, all steps)\n".as_bytes())?;
        let flops = trace.metric("model", "flops");
        let mut t = Table::new(&["operation", "count", "time", "energy", "GFLOP", "how"]);
        for r in &s.operations {
            let op = r.name.split('.').nth(1).unwrap_or("");
            let gf: f64 = flops.map_or(0.0, |f| {
                (0..f.len())
                    .filter(|&i| trace.sites[f.site[i] as usize].op.as_deref() == Some(op))
                    .map(|i| f64::from(f.value[i]))
                    .sum::<f64>()
                    / 1e9
            });
            t.row(vec![
                r.name.clone(),
                r.count.to_string(),
                fmt::ns(r.duration_ns),
                fmt::energy(r.energy),
                if gf > 0.0 {
                    format!("{gf:.4}")
                } else {
                    "-".into()
                },
                fmt::label(r.energy).into(),
            ]);
        }
        t.render(out)?;
    }
    if !s.metrics.is_empty() {
        out.write_all("\nprobe metrics\n".as_bytes())?;
        let mut t = Table::new(&["probe/metric", "values", "mean", "min", "max"]);
        for r in &s.metrics {
            t.row(vec![
                r.key.clone(),
                r.count.to_string(),
                format!("{:.4}", r.mean),
                format!("{:.4}", r.min),
                format!("{:.4}", r.max),
            ]);
        }
        t.render(out)?;
    }
    if !trace.notes.is_empty() {
        out.write_all("\nnotes\n".as_bytes())?;
        for n in &trace.notes {
            writeln!(out, "  [{:?}] {}", n.level, n.text)?;
        }
    }
    Ok(())
}

/// Rows as name, time, energy, average power and how the energy was obtained.
fn energy_table(first: &str, rows: &[summary::Row], out: Out) -> std::io::Result<()> {
    let mut t = Table::new(&[first, "time", "energy", "avg power", "how"]);
    for r in rows {
        t.row(vec![
            r.name.clone(),
            fmt::ns(r.duration_ns),
            fmt::energy(r.energy),
            fmt::watts(r.avg_power_w()),
            fmt::label(r.energy).into(),
        ]);
    }
    t.render(out)?;
    Ok(())
}
