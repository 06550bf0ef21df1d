//! Groups of repeated runs: the figures of each run's [`Summary`], described over the
//! runs ([`describe_group`]) and compared between two groups ([`compare_groups`]).
//! Shared by `eprof bench`, `eprof compare` and the viewer, so all three give the same
//! numbers.

use serde::{Deserialize, Serialize};

use crate::attribution::{Energy, EnergyLabel};
use crate::stats::{self, Describe, Difference, Drift};
use crate::summary::{Row, Summary};
use crate::units;

/// Which figures are tested together: the run's headline figures are each tested
/// alone; phases, layers, components and layer x component cells are families whose
/// false discovery rate is held at 5% (Benjamini-Hochberg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Run,
    Phase,
    Layer,
    Component,
    Cell,
}

/// What a figure measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Joules,
    Seconds,
    TokensPerSecond,
}

impl Unit {
    /// A value of this unit for people: `12.300 mJ`, `2.500 ms`, `71.8 tok/s`.
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Joules => units::joules(v),
            Unit::Seconds => units::duration_ns(v * 1e9),
            Unit::TokensPerSecond => format!("{v:.1} tok/s"),
        }
    }

    /// A difference: `+12.300 mJ`, `-2.500 ms`.
    pub fn format_signed(self, v: f64) -> String {
        let s = self.format(v.abs());
        if v < 0.0 {
            format!("-{s}")
        } else {
            format!("+{s}")
        }
    }
}

/// A relative change: `+1.10%` (`-` where it is not a number).
pub fn percent(v: f64) -> String {
    if v.is_finite() {
        format!("{:+.2}%", v * 100.0)
    } else {
        "-".into()
    }
}

/// One figure of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Stable key: `j_per_generated_token`, `phase.decode.energy`, `layer.L3.time`,
    /// `component.q_proj.energy`, `cell.L3.q_proj.energy`.
    pub key: String,
    pub family: Family,
    pub unit: Unit,
    pub value: f64,
    pub label: Option<EnergyLabel>,
}

fn energy(key: String, family: Family, e: Option<Energy>, out: &mut Vec<Figure>) {
    if let Some(e) = e {
        out.push(Figure {
            key,
            family,
            unit: Unit::Joules,
            value: e.joules,
            label: Some(e.label),
        });
    }
}

fn time(key: String, family: Family, ns: u64, out: &mut Vec<Figure>) {
    out.push(Figure {
        key,
        family,
        unit: Unit::Seconds,
        value: ns as f64 * 1e-9,
        label: None,
    });
}

fn rows(prefix: &str, family: Family, rows: &[Row], out: &mut Vec<Figure>) {
    for r in rows {
        energy(format!("{prefix}.{}.energy", r.name), family, r.energy, out);
        time(
            format!("{prefix}.{}.time", r.name),
            family,
            r.duration_ns,
            out,
        );
    }
}

/// Every figure of one run, in a fixed order: headline figures, then phases, layers,
/// components and cells.
pub fn figures(s: &Summary) -> Vec<Figure> {
    let mut out = Vec::new();
    energy("total_energy".into(), Family::Run, s.total, &mut out);
    let label = s.total.map(|e| e.label);
    let mut plain = |key: &str, unit: Unit, v: Option<f64>, label: Option<EnergyLabel>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            out.push(Figure {
                key: key.into(),
                family: Family::Run,
                unit,
                value: v,
                label,
            });
        }
    };
    plain("dynamic_energy", Unit::Joules, s.dynamic_j, label);
    plain(
        "j_per_generated_token",
        Unit::Joules,
        s.j_per_generated_token,
        label,
    );
    let decode_label = s
        .phases
        .iter()
        .find(|r| r.name == "decode")
        .and_then(|r| r.energy)
        .map(|e| e.label);
    plain(
        "decode_j_per_token",
        Unit::Joules,
        s.decode_j_per_token,
        decode_label,
    );
    plain(
        "decode_tokens_per_s",
        Unit::TokensPerSecond,
        s.decode_tokens_per_s,
        None,
    );
    plain(
        "time_to_first_token",
        Unit::Seconds,
        s.time_to_first_token_ns.map(|ns| ns as f64 * 1e-9),
        None,
    );
    plain(
        "duration",
        Unit::Seconds,
        Some(s.duration_ns as f64 * 1e-9),
        None,
    );
    rows("phase", Family::Phase, &s.phases, &mut out);
    rows("layer", Family::Layer, &s.layers, &mut out);
    rows("component", Family::Component, &s.components, &mut out);
    rows("cell", Family::Cell, &s.layer_components, &mut out);
    out
}

/// Values of each figure over runs, in the runs' order; a figure missing from a run
/// is left out of that run (the `n` of its statistics says so).
fn gather(runs: &[&Summary]) -> Vec<(Figure, Vec<f64>, Option<EnergyLabel>)> {
    let mut out: Vec<(Figure, Vec<f64>, Option<EnergyLabel>)> = Vec::new();
    let mut at = std::collections::HashMap::new();
    for s in runs {
        for f in figures(s) {
            let i = *at.entry(f.key.clone()).or_insert_with(|| {
                out.push((f.clone(), Vec::new(), None));
                out.len() - 1
            });
            let slot = &mut out[i];
            slot.1.push(f.value);
            // The weakest label of the parts: a mean of estimates is an estimate.
            slot.2 = match (slot.2, f.label) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
    }
    out
}

/// One figure over a group's runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureStats {
    pub key: String,
    pub family: Family,
    pub unit: Unit,
    /// The run values, in run order (the viewer draws them as dots).
    pub values: Vec<f64>,
    pub stats: Describe,
    /// Trend over the run order (4 runs or more).
    pub drift: Option<Drift>,
}

/// Describe every figure over `runs` (given in the order they were made).
pub fn describe_group(runs: &[&Summary]) -> Vec<FigureStats> {
    gather(runs)
        .into_iter()
        .filter_map(|(f, values, label)| {
            let mut stats = stats::describe(&values)?;
            stats.label = label;
            Some(FigureStats {
                drift: stats::drift(&values),
                key: f.key,
                family: f.family,
                unit: f.unit,
                values,
                stats,
            })
        })
        .collect()
}

/// One figure, B against A.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureDiff {
    pub key: String,
    pub family: Family,
    pub unit: Unit,
    #[serde(flatten)]
    pub diff: Difference,
    pub label: Option<EnergyLabel>,
}

/// Compare every figure both groups have; per family (and per energy / time within
/// it) the p-values are adjusted together (Benjamini-Hochberg).
pub fn compare_groups(a: &[&Summary], b: &[&Summary]) -> Vec<FigureDiff> {
    let ga = gather(a);
    let gb = gather(b);
    let mut out: Vec<FigureDiff> = ga
        .iter()
        .filter_map(|(f, va, la)| {
            let (_, vb, lb) = gb.iter().find(|(g, _, _)| g.key == f.key)?;
            Some(FigureDiff {
                key: f.key.clone(),
                family: f.family,
                unit: f.unit,
                diff: stats::compare(va, vb)?,
                label: match (*la, *lb) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                },
            })
        })
        .collect();
    for family in [
        Family::Phase,
        Family::Layer,
        Family::Component,
        Family::Cell,
    ] {
        for unit in [Unit::Joules, Unit::Seconds] {
            let idx: Vec<usize> = (0..out.len())
                .filter(|&i| out[i].family == family && out[i].unit == unit)
                .collect();
            let mut fam: Vec<Difference> = idx.iter().map(|&i| out[i].diff.clone()).collect();
            stats::adjust_family(&mut fam);
            for (i, d) in idx.into_iter().zip(fam) {
                out[i].diff = d;
            }
        }
    }
    out
}

/// A figure's name for people: `J per generated token`, `decode energy`, `L3 time`.
pub fn display_name(key: &str) -> String {
    match key {
        "total_energy" => "energy".into(),
        "dynamic_energy" => "above-idle energy".into(),
        "j_per_generated_token" => "J per generated token".into(),
        "decode_j_per_token" => "decode J per token".into(),
        "decode_tokens_per_s" => "decode tok/s".into(),
        "time_to_first_token" => "time to first token".into(),
        "duration" => "duration".into(),
        other => {
            let mut parts: Vec<&str> = other.split('.').collect();
            if parts.len() >= 3 {
                parts.remove(0);
                let what = parts.pop().unwrap_or_default();
                format!("{} {what}", parts.join("."))
            } else {
                other.into()
            }
        }
    }
}
