//! The commands other than `record`. Each writes its output into `out`, which `main`
//! prints, so a failure after partial output still shows what was produced.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use eprof_core::paths::DataDir;
use eprof_core::{Clock, Registry};
use eprof_index::{Index, RunFilter};
use eprof_record::{PowerSpec, Profiler, open_power, power_sources};
use eprof_format::{Energies, GridMetric, Summary, TokenPhase, Trace, export, summary};

use crate::fmt::{self, Table};
use crate::{CompareArgs, Exit, ExportArgs, ImportArgs, LsArgs, PowerReadArgs, RmArgs, ShowArgs};

type Out<'a> = &'a mut String;

/// A trace by path, or by run id (prefix) through the index. Truncated traces load
/// with a warning; the returned flag says so.
fn load(data: &DataDir, run: &str) -> anyhow::Result<(Trace, PathBuf, Option<String>)> {
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

fn finish_truncated(warn: Option<String>) -> anyhow::Result<()> {
    match warn {
        Some(w) => Err(Exit(3, w).into()),
        None => Ok(()),
    }
}

pub fn ls(data: &DataDir, a: &LsArgs, out: Out) -> anyhow::Result<()> {
    let idx = Index::open(&data.index())?;
    let rows = idx.list(&RunFilter {
        model: a.model.clone(),
        tag: a.tag.clone(),
        experiment: a.experiment.clone(),
        prompt_contains: a.prompt.clone(),
        sort: Some(a.sort.clone()),
        limit: a.limit,
        offset: a.offset,
    })?;
    if a.json {
        out.push_str(&serde_json::to_string_pretty(&rows)?);
        out.push('\n');
        return Ok(());
    }
    if rows.is_empty() {
        out.push_str("no runs yet: `eprof record \"your prompt\"` makes one\n");
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
    t.render(out);
    Ok(())
}

pub fn show(data: &DataDir, a: &ShowArgs, out: Out) -> anyhow::Result<()> {
    let (trace, path, warn) = load(data, &a.run)?;
    let en = Energies::compute(&trace);
    let s = Summary::compute(&trace, &en);
    if a.json {
        out.push_str(&serde_json::to_string_pretty(&s)?);
        out.push('\n');
        return finish_truncated(warn);
    }
    if let Some(w) = &warn {
        out.push_str(&format!("WARNING: {w}\n\n"));
    }
    render_show(&trace, &path, &en, &s, out);
    finish_truncated(warn)
}

fn render_show(trace: &Trace, path: &Path, en: &Energies, s: &Summary, out: Out) {
    let m = &trace.meta;
    out.push_str(&format!("run        {}  ({})\n", m.id, path.display()));
    out.push_str(&format!(
        "created    {} UTC on {} ({}, {} cores, {})\n",
        fmt::date(m.created_at_ms),
        m.machine.hostname,
        m.machine.cpu,
        m.machine.cpu_cores,
        m.machine.os
    ));
    out.push_str(&format!("model      {}\n", m.model.describe()));
    out.push_str(&format!(
        "settings   depth {}, max {} tokens, temperature {}, seed {}, chat template {}, probes [{}]\n",
        m.settings.depth.as_str(), m.settings.max_tokens, m.settings.temperature, m.settings.seed,
        if m.settings.chat_template { "on" } else { "off" }, m.settings.probes.join(", ")
    ));
    if !m.tags.is_empty() || m.experiment.is_some() {
        out.push_str(&format!(
            "tags       [{}] experiment {}\n",
            m.tags.join(", "),
            m.experiment.as_deref().unwrap_or("-")
        ));
    }
    out.push_str(&format!("prompt     {}\n", fmt::clip(&m.prompt, 200)));
    if let Some(e) = &trace.end {
        out.push_str(&format!(
            "output     {} [{}]\n",
            fmt::clip(&e.generated_text, 300),
            e.stop_reason
        ));
    }
    out.push_str(&format!(
        "power      {} ({}), channels [{}]; resolution {} (nominal {}), {} readings, median spacing {}\n",
        m.power.name,
        m.power.kind.as_str(),
        m.power.channels.iter().map(|c| format!("{}{}", c.name, if c.in_total { "" } else { " (not in total)" })).collect::<Vec<_>>().join(", "),
        fmt::ns(s.resolution_ns), fmt::ns(s.nominal_resolution_ns), s.samples, fmt::ns(s.observed_spacing_ns)
    ));
    for (k, v) in &m.power.details {
        out.push_str(&format!("           {k}: {v}\n"));
    }
    out.push('\n');
    out.push_str(&format!(
        "total      {} over {} ({}), average {}\n",
        fmt::energy(s.total),
        fmt::ns(s.duration_ns),
        fmt::label(s.total),
        fmt::watts(s.avg_power_w)
    ));
    if let (Some(w), Some(d)) = (s.idle_w, s.dynamic_j) {
        out.push_str(&format!(
            "above idle {} (idle baseline {})\n",
            fmt::joules(d),
            fmt::watts(Some(w))
        ));
    }
    out.push_str(&format!(
        "tokens     {} prompt + {} generated; time to first token {}; decode {} per token, {}; {} per generated token overall\n",
        s.prompt_tokens, s.generated_tokens,
        s.time_to_first_token_ns.map_or_else(|| "-".into(), fmt::ns),
        fmt::opt_j(s.decode_j_per_token),
        s.decode_tokens_per_s.map_or_else(|| "- tok/s".into(), |t| format!("{t:.1} tok/s")),
        fmt::opt_j(s.j_per_generated_token),
    ));
    out.push_str("\nhow the figures were obtained:\n");
    for (l, n) in &s.labels {
        out.push_str(&format!(
            "  {:<13} {:>7} figures: {}\n",
            l.as_str(),
            n,
            l.explain()
        ));
    }

    out.push_str("\nphases\n");
    energy_table("phase", &s.phases, out);
    out.push_str("\nsections (summed over steps)\n");
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
    t.render(out);

    out.push_str("\ntokens\n");
    let mut t = Table::new(&[
        "step", "pos", "id", "token", "phase", "time", "energy", "power", "how",
    ]);
    for r in &s.tokens {
        let total_w = m.power.total_of(&r.power_w);
        t.row(vec![
            r.step.to_string(),
            r.position.to_string(),
            r.id.to_string(),
            format!("{:?}", fmt::clip(&r.text, 16)),
            match r.phase {
                TokenPhase::Prefill => "prefill",
                TokenPhase::Decode => "decode",
                TokenPhase::Prompt => "prompt",
            }
            .into(),
            fmt::ns(r.duration_ns),
            fmt::energy(r.energy),
            fmt::watts(total_w),
            fmt::label(r.energy).into(),
        ]);
    }
    t.render(out);

    if !s.layers.is_empty() {
        out.push_str("\nlayers (all steps)\n");
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
        t.render(out);
        out.push_str("\ncomponents (all layers, all steps)\n");
        energy_table("component", &s.components, out);
        let g = summary::grid(trace, en, &GridMetric::EnergyJ, None);
        out.push_str("\nlayer x component energy (mJ, all steps)\n");
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
        t.render(out);
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
        out.push_str("\ntop layer components by energy\n");
        let mut t = Table::new(&["site", "time", "energy", "how"]);
        for r in top.iter().take(10) {
            t.row(vec![
                r.name.clone(),
                fmt::ns(r.duration_ns),
                fmt::energy(r.energy),
                fmt::label(r.energy).into(),
            ]);
        }
        t.render(out);
    }
    if !s.operations.is_empty() {
        out.push_str("\noperations (deep; all layers, all steps)\n");
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
        t.render(out);
    }
    if !s.metrics.is_empty() {
        out.push_str("\nprobe metrics\n");
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
        t.render(out);
    }
    if !trace.notes.is_empty() {
        out.push_str("\nnotes\n");
        for n in &trace.notes {
            out.push_str(&format!("  [{:?}] {}\n", n.level, n.text));
        }
    }
}

/// Rows as name, time, energy, average power and how the energy was obtained.
fn energy_table(first: &str, rows: &[summary::Row], out: Out) {
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
    t.render(out);
}

pub fn export(data: &DataDir, a: &ExportArgs, out: Out) -> anyhow::Result<()> {
    let (trace, path, warn) = load(data, &a.run)?;
    let en = Energies::compute(&trace);
    let write = |bytes: &[u8], out: &mut String| -> anyhow::Result<()> {
        match &a.out {
            Some(p) => {
                std::fs::write(p, bytes).with_context(|| format!("cannot write {}", p.display()))
            }
            None => {
                out.push_str(&String::from_utf8_lossy(bytes));
                out.push('\n');
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

pub fn import(data: &DataDir, a: &ImportArgs, out: Out) -> anyhow::Result<()> {
    let mut idx = Index::open(&data.index())?;
    let here = eprof_core::machine::detect().hostname;
    std::fs::create_dir_all(data.traces())?;
    for f in &a.files {
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        let d =
            eprof_format::decode(&bytes).map_err(|e| Exit(3, format!("{}: {e}", f.display())))?;
        let dest = data.trace_path(&d.trace.meta.id);
        if std::fs::canonicalize(f).ok() != std::fs::canonicalize(&dest).ok() {
            std::fs::write(&dest, &bytes)
                .with_context(|| format!("cannot write {}", dest.display()))?;
        }
        let imported = d.trace.meta.machine.hostname != here;
        idx.insert(&d.trace, &dest, imported)?;
        out.push_str(&format!(
            "imported {} ({} on {}{}){}\n",
            d.trace.meta.id,
            d.trace.meta.model.name,
            d.trace.meta.machine.hostname,
            if imported { ", another machine" } else { "" },
            d.truncation
                .map_or_else(String::new, |t| format!(" WARNING: {t}"))
        ));
    }
    Ok(())
}

pub fn rm(data: &DataDir, a: &RmArgs, out: Out) -> anyhow::Result<()> {
    let mut idx = Index::open(&data.index())?;
    for r in &a.runs {
        let (row, deleted) = idx.delete_run(r, &data.traces(), !a.keep_files)?;
        out.push_str(&format!("removed {}\n", row.id));
        if !a.keep_files && !deleted {
            out.push_str(&format!(
                "  kept {} (written with --out, outside the data directory)\n",
                row.trace_path
            ));
        }
    }
    Ok(())
}

pub fn index_rebuild(data: &DataDir, out: Out) -> anyhow::Result<()> {
    let mut idx = Index::open(&data.index())?;
    let (n, failed) = idx.rebuild(&data.traces(), &eprof_core::machine::detect().hostname)?;
    out.push_str(&format!(
        "indexed {n} traces from {}\n",
        data.traces().display()
    ));
    for (p, why) in &failed {
        out.push_str(&format!("  skipped {}: {why}\n", p.display()));
    }
    Ok(())
}

pub fn compare(data: &DataDir, a: &CompareArgs, out: Out) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for r in &a.runs {
        let (t, _, warn) = load(data, r)?;
        if let Some(w) = warn {
            eprintln!("warning: {r}: {w}");
        }
        let en = Energies::compute(&t);
        let s = Summary::compute(&t, &en);
        runs.push((t, s));
    }
    if a.json {
        let v: Vec<_> = runs
            .iter()
            .map(|(t, s)| serde_json::json!({"id": t.meta.id, "model": t.meta.model.name, "machine": t.meta.machine, "source": t.meta.power.name, "summary": s}))
            .collect();
        out.push_str(&serde_json::to_string_pretty(&v)?);
        out.push('\n');
        return Ok(());
    }
    let mut head = vec!["".to_string()];
    head.extend(
        runs.iter()
            .map(|(t, _)| t.meta.id[..t.meta.id.len().min(10)].to_string()),
    );
    let hr: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut t = Table::new(&hr);
    let mut line = |name: &str, f: &dyn Fn(&Trace, &Summary) -> String| {
        let mut cells = vec![name.to_string()];
        cells.extend(runs.iter().map(|(t, s)| f(t, s)));
        t.row(cells);
    };
    line("model", &|t, _| fmt::clip(&t.meta.model.name, 24));
    line("machine", &|t, _| fmt::clip(&t.meta.machine.hostname, 24));
    line("power source", &|t, _| {
        format!("{} ({})", t.meta.power.name, t.meta.power.kind.as_str())
    });
    line("depth", &|t, _| t.meta.settings.depth.as_str().into());
    line("tokens", &|_, s| {
        format!("{}+{}", s.prompt_tokens, s.generated_tokens)
    });
    line("total", &|_, s| fmt::energy(s.total));
    line("how", &|_, s| fmt::label(s.total).into());
    line("duration", &|_, s| fmt::ns(s.duration_ns));
    line("avg power", &|_, s| fmt::watts(s.avg_power_w));
    line("decode J/token", &|_, s| fmt::opt_j(s.decode_j_per_token));
    line("decode tok/s", &|_, s| {
        s.decode_tokens_per_s
            .map_or_else(|| "-".into(), |v| format!("{v:.1}"))
    });
    for p in eprof_format::Phase::ALL {
        line(p.as_str(), &|_, s| {
            s.phases
                .iter()
                .find(|r| r.name == p.as_str())
                .map_or_else(|| "-".into(), |r| fmt::energy(r.energy))
        });
    }
    let layers = runs.iter().map(|(_, s)| s.layers.len()).max().unwrap_or(0);
    for l in 0..layers {
        line(&format!("L{l}"), &|_, s| {
            s.layers
                .get(l)
                .map_or_else(|| "-".into(), |r| fmt::energy(r.energy))
        });
    }
    t.render(out);
    Ok(())
}

pub fn doctor(data: &DataDir, json: bool, out: Out) -> anyhow::Result<()> {
    let reg = Registry::discover()?;
    let sources = power_sources(&reg);
    let auto = reg.auto_power().map(|(p, why)| (p.name, why));
    let profiler = Profiler::new(data.clone(), &[])?;
    let (model, origin) = profiler.default_model();
    let model_check = eprof_models::load::detect(&model)
        .and_then(|src| {
            reg.adapter_for(&src)
                .map(|a| format!("{} adapter", a.name()))
        })
        .map_err(|e| e.to_string());
    let index = Index::open(&data.index()).and_then(|i| i.count());
    if json {
        let v = serde_json::json!({
            "data_dir": data.root(),
            "index": match &index { Ok(n) => serde_json::json!({"ok": true, "runs": n}), Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}) },
            "power_sources": sources,
            "auto_power": match &auto { Ok((n, why)) => serde_json::json!({"source": n, "why": why}), Err(e) => serde_json::json!({"error": e.to_string()}) },
            "adapters": reg.adapters.iter().map(|a| a.adapter.name()).collect::<Vec<_>>(),
            "probes": reg.probes.iter().map(|p| p.name).collect::<Vec<_>>(),
            "default_model": {"path": model, "origin": origin, "check": match &model_check { Ok(s) => s.clone(), Err(e) => e.clone() }, "ok": model_check.is_ok()},
        });
        out.push_str(&serde_json::to_string_pretty(&v)?);
        out.push('\n');
        return Ok(());
    }
    out.push_str(&format!("data directory  {}\n", data.root().display()));
    match &index {
        Ok(n) => out.push_str(&format!(
            "run index       ok, {n} runs ({})\n",
            data.index().display()
        )),
        Err(e) => out.push_str(&format!("run index       PROBLEM: {e}\n")),
    }
    out.push_str("\npower sources\n");
    for p in &sources {
        out.push_str(&format!(
            "  {} {:<12} {:<9} {}\n",
            if p.available { "ok " } else { "-- " },
            p.name,
            p.kind,
            p.detail
        ));
    }
    match &auto {
        Ok((_, why)) => out.push_str(&format!("  --power auto picks {why}\n")),
        Err(e) => out.push_str(&format!("  --power auto: {e}\n")),
    }
    out.push_str("\nmodel adapters  ");
    out.push_str(
        &reg.adapters
            .iter()
            .map(|a| a.adapter.name())
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.push_str(&format!(
        "\ndefault model   {} ({origin})\n",
        model.display()
    ));
    match &model_check {
        Ok(s) => out.push_str(&format!("                ok: loads with the {s}\n")),
        Err(e) => out.push_str(&format!("                PROBLEM: {e}\n")),
    }
    out.push_str("probes          ");
    out.push_str(
        &reg.probes
            .iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", "),
    );
    out.push('\n');
    Ok(())
}

pub fn plugins(data: &DataDir, explicit: &[PathBuf], json: bool, out: Out) -> anyhow::Result<()> {
    let reg = Registry::discover()?;
    let mut profiler = Profiler::new(data.clone(), explicit)?;
    for w in profiler.take_warnings() {
        eprintln!("warning: {w}");
    }
    let dynamic = profiler.plugins();
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    for p in &reg.power {
        rows.push((
            "power source".into(),
            p.name.into(),
            p.summary.into(),
            format!("built-in ({})", p.origin),
        ));
    }
    for a in &reg.adapters {
        rows.push((
            "model adapter".into(),
            a.adapter.name().into(),
            "decoder-only transformer (GGUF, safetensors)".into(),
            format!("built-in ({})", a.origin),
        ));
    }
    for p in &reg.probes {
        rows.push((
            "probe".into(),
            p.name.into(),
            format!("{} [from depth {}]", p.summary, p.min_depth.as_str()),
            format!("built-in ({})", p.origin),
        ));
    }
    for p in dynamic {
        for probe in &p.probes {
            rows.push((
                "probe".into(),
                probe.name.clone(),
                probe.description.clone(),
                format!(
                    "{} {} (plugin ABI {}) {}",
                    p.name,
                    p.version,
                    p.abi_version,
                    p.path.display()
                ),
            ));
        }
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(
                |(k, n, s, o)| serde_json::json!({"kind": k, "name": n, "summary": s, "origin": o}),
            )
            .collect();
        out.push_str(&serde_json::to_string_pretty(&v)?);
        out.push('\n');
        return Ok(());
    }
    let mut t = Table::new(&["kind", "name", "what", "origin"]);
    for (k, n, s, o) in rows {
        t.row(vec![k, n, s, o]);
    }
    t.render(out);
    Ok(())
}

pub fn power_list(json: bool, out: Out) -> anyhow::Result<()> {
    let rows = power_sources(&Registry::discover()?);
    if json {
        out.push_str(&serde_json::to_string_pretty(&rows)?);
        out.push('\n');
        return Ok(());
    }
    let mut t = Table::new(&["source", "kind", "status", "detail"]);
    for r in rows {
        t.row(vec![
            r.name.into(),
            r.kind.into(),
            if r.available { "available" } else { "unavailable" }.into(),
            r.detail,
        ]);
    }
    t.render(out);
    Ok(())
}

pub fn power_read(a: &PowerReadArgs, out: Out) -> anyhow::Result<()> {
    let reg = Registry::discover()?;
    let mut spec = a.source.clone();
    if let Some(f) = &a.from_file {
        // A saved capture is read through the replay source, without pacing.
        if spec == "powermetrics" {
            spec = "replay".into();
        }
        spec.push(if spec.contains(':') { ',' } else { ':' });
        spec.push_str(&format!("file={}", f.display()));
        if !spec.contains("speed=") {
            spec.push_str(",speed=0");
        }
    }
    let clock = Clock::start();
    let interval = Duration::from_millis(a.interval_ms.max(1));
    let (mut src, why) = open_power(&reg, &spec.parse::<PowerSpec>()?, clock, interval)?;
    if let Some(w) = why {
        eprintln!("{w}");
    }
    let desc = src.desc();
    let mut readings = Vec::new();
    for i in 0..a.samples {
        if i > 0 {
            std::thread::sleep(interval);
        }
        let r = src.read()?;
        readings.push((r.t_ns.unwrap_or_else(|| clock.now()), r));
    }
    let unit = match desc.kind {
        eprof_format::SourceKind::Counter => "J (cumulative, as read)",
        _ => "W (average over the window)",
    };
    if a.json {
        let v = serde_json::json!({
            "source": desc.name, "kind": desc.kind.as_str(), "unit": unit,
            "nominal_resolution_ns": desc.nominal_resolution_ns,
            "channels": desc.channels,
            "details": desc.details,
            "readings": readings.iter().map(|(t, r)| serde_json::json!({"t_ns": t, "window_ns": r.window_ns, "values": r.values})).collect::<Vec<_>>(),
        });
        out.push_str(&serde_json::to_string_pretty(&v)?);
        out.push('\n');
        return Ok(());
    }
    out.push_str(&format!(
        "{} ({}), values in {unit}, nominal resolution {}\n",
        desc.name,
        desc.kind.as_str(),
        fmt::ns(desc.nominal_resolution_ns)
    ));
    let mut head = vec!["t".to_string(), "window".into()];
    head.extend(desc.channels.iter().map(|c| c.name.clone()));
    let hr: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut t = Table::new(&hr);
    for (ts, r) in &readings {
        let mut cells = vec![
            fmt::ns(*ts),
            r.window_ns.map_or_else(|| "-".into(), fmt::ns),
        ];
        cells.extend(
            r.values
                .iter()
                .map(|v| v.map_or_else(|| "absent".into(), |v| format!("{v:.4}"))),
        );
        t.row(cells);
    }
    t.render(out);
    Ok(())
}

pub fn model_info(path: &Path, json: bool, out: Out) -> anyhow::Result<()> {
    let reg = Registry::discover()?;
    let src = eprof_models::load::detect(path)?;
    let adapter = reg.adapter_for(&src)?;
    let m = adapter.load(&src, &candle_core::Device::Cpu)?;
    let id = &m.identity;
    if json {
        let v = serde_json::json!({"identity": id, "adapter": adapter.name(), "layout": format!("{:?}", src.layout), "tokenizer": m.tokenizer.describe(), "sites": m.model.sites().len()});
        out.push_str(&serde_json::to_string_pretty(&v)?);
        out.push('\n');
        return Ok(());
    }
    out.push_str(&format!("model         {}\n", id.name));
    out.push_str(&format!(
        "adapter       {} ({:?})\n",
        adapter.name(),
        src.layout
    ));
    out.push_str(&format!("layers        {}\nhidden        {}\nheads         {} ({} kv)\nvocabulary    {}\nparameters    {}\nweights       {}{}\n",
        id.layers, id.hidden_size, id.heads, id.kv_heads, id.vocab_size, id.parameters, id.dtype,
        if id.random_weights { " (random, built-in)" } else { "" }));
    out.push_str(&format!("tokenizer     {}\n", m.tokenizer.describe()));
    out.push_str(&format!(
        "sites         {} (model, layers, components, attention operations)\n",
        m.model.sites().len()
    ));
    Ok(())
}

pub fn model_tokenize(
    path: &Path,
    text: &str,
    special: bool,
    json: bool,
    out: Out,
) -> anyhow::Result<()> {
    let reg = Registry::discover()?;
    let src = eprof_models::load::detect(path)?;
    let m = reg
        .adapter_for(&src)?
        .load(&src, &candle_core::Device::Cpu)?;
    let ids = m.tokenizer.encode(text, special)?;
    if json {
        let v = serde_json::json!({"text": text, "ids": ids, "tokens": ids.iter().map(|&i| String::from_utf8_lossy(&m.tokenizer.token_bytes(i)).into_owned()).collect::<Vec<_>>()});
        out.push_str(&serde_json::to_string(&v)?);
        out.push('\n');
        return Ok(());
    }
    for i in ids {
        out.push_str(&format!(
            "{i:>7}  {:?}\n",
            String::from_utf8_lossy(&m.tokenizer.token_bytes(i))
        ));
    }
    Ok(())
}
