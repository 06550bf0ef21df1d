//! `eprof compare`: runs side by side, or groups of repeated runs with intervals and
//! verdicts (groups.rs).

use anyhow::bail;
use eprof_core::paths::DataDir;
use eprof_format::{Energies, Summary, Trace};

use crate::args::CompareArgs;
use crate::fmt::{self, Table};

use super::groups;
use super::traces::{Out, load};

pub fn compare(data: &DataDir, a: &CompareArgs, out: Out) -> anyhow::Result<()> {
    if a.runs.iter().any(|r| groups::is_group_ref(r)) {
        if !a.runs.iter().all(|r| groups::is_group_ref(r)) {
            usage!("compare groups with groups and runs with runs (a run has no interval)");
        }
        let samples = if let [one] = &a.runs[..] {
            if one.contains('/') {
                usage!(
                    "{one} is one configuration: compare it with another (GROUP/0 GROUP/1), or give the group alone"
                );
            }
            let s = groups::configurations(data, one)?;
            if s.len() < 2 {
                bail!(
                    "group {one} has one configuration: name two groups, or two configurations (GROUP/0 GROUP/1)"
                );
            }
            s
        } else {
            a.runs
                .iter()
                .map(|r| groups::resolve(data, r))
                .collect::<anyhow::Result<_>>()?
        };
        return groups::report(&samples, a.json, a.fail_if_higher, out);
    }
    if a.runs.len() < 2 {
        usage!("compare needs two or more runs, or groups of repeated runs (`eprof ls --groups`)");
    }
    if a.fail_if_higher.is_some() {
        usage!(
            "--fail-if-higher needs groups of repeated runs (`eprof bench`): one run has no interval to test against"
        );
    }
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
    for w in comparability(&runs) {
        eprintln!("warning: {w}");
    }
    if a.json {
        let v: Vec<_> = runs
            .iter()
            .map(|(t, s)| serde_json::json!({"id": t.meta.id, "model": t.meta.model.name, "machine": t.meta.machine, "source": t.meta.power.name, "summary": s}))
            .collect();
        out.write_all(serde_json::to_string_pretty(&v)?.as_bytes())?;
        writeln!(out)?;
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
    t.render(out)?;
    // Each later run against the first: the difference and the ratio.
    let (first_t, first) = &runs[0];
    let mut head = vec![format!(
        "against {}",
        &first_t.meta.id[..first_t.meta.id.len().min(10)]
    )];
    head.extend(
        runs[1..]
            .iter()
            .map(|(t, _)| t.meta.id[..t.meta.id.len().min(10)].to_string()),
    );
    let hr: Vec<&str> = head.iter().map(String::as_str).collect();
    let mut d = Table::new(&hr);
    type Figure = fn(&Summary) -> Option<f64>;
    type Show = fn(f64) -> String;
    let figures: [(&str, Figure, Show); 4] = [
        ("total", |s| s.total.map(|e| e.joules), signed_joules),
        ("duration", |s| Some(s.duration_ns as f64), signed_ns),
        ("decode J/token", |s| s.decode_j_per_token, signed_joules),
        (
            "decode tok/s",
            |s| s.decode_tokens_per_s,
            |v| format!("{v:+.1}"),
        ),
    ];
    for (name, get, show) in figures {
        let mut cells = vec![name.to_string()];
        for (_, s) in &runs[1..] {
            cells.push(match (get(first), get(s)) {
                (Some(a), Some(b)) if a != 0.0 => format!("{} (x{:.3})", show(b - a), b / a),
                (Some(a), Some(b)) => show(b - a),
                _ => "-".into(),
            });
        }
        d.row(cells);
    }
    writeln!(out)?;
    d.render(out)?;
    Ok(())
}

fn signed_joules(j: f64) -> String {
    format!(
        "{}{}",
        if j < 0.0 { "-" } else { "+" },
        fmt::joules(j.abs())
    )
}

fn signed_ns(v: f64) -> String {
    format!(
        "{}{}",
        if v < 0.0 { "-" } else { "+" },
        fmt::ns(v.abs() as u64)
    )
}

/// What makes the runs' figures not like for like: another power source (energy
/// measured another way), another model, another prompt.
fn comparability(runs: &[(Trace, Summary)]) -> Vec<String> {
    let mut w = Vec::new();
    let differ = |f: &dyn Fn(&Trace) -> String| {
        let first = f(&runs[0].0);
        runs.iter().any(|(t, _)| f(t) != first)
    };
    let list = |f: &dyn Fn(&Trace) -> String| {
        runs.iter()
            .map(|(t, _)| f(t))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let source = |t: &Trace| t.meta.power.name.clone();
    if differ(&source) {
        w.push(format!(
            "the runs used different power sources ({}): their joules were not obtained the same way",
            list(&source)
        ));
    }
    let model = |t: &Trace| format!("{} {}", t.meta.model.name, t.meta.model.file_hash);
    if differ(&model) {
        w.push(format!(
            "the runs used different models ({})",
            list(&|t: &Trace| t.meta.model.name.clone())
        ));
    }
    if differ(&|t: &Trace| t.meta.prompt.clone()) {
        w.push("the runs had different prompts: per-token figures compare, totals less so".into());
    }
    w
}
