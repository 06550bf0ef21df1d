//! `eprof power list|read`: power sources, and readings to check a setup.

use std::time::Duration;

use eprof_core::{Clock, Registry};
use eprof_record::{PowerSpec, open_power, power_sources};

use crate::args::PowerReadArgs;
use crate::fmt::{self, Table};

use super::traces::Out;

pub fn power_list(json: bool, out: Out) -> anyhow::Result<()> {
    let rows = power_sources(&Registry::discover()?);
    if json {
        out.write_all(serde_json::to_string_pretty(&rows)?.as_bytes())?;
        writeln!(out)?;
        return Ok(());
    }
    let mut t = Table::new(&["source", "kind", "status", "detail"]);
    for r in rows {
        t.row(vec![
            r.name.into(),
            r.kind.into(),
            if r.available {
                "available"
            } else {
                "unavailable"
            }
            .into(),
            r.detail,
        ]);
    }
    t.render(out)?;
    Ok(())
}

pub fn power_read(a: &PowerReadArgs, out: Out) -> anyhow::Result<()> {
    let reg = Registry::discover()?;
    if a.source.is_some() {
        eprintln!("warning: --source is the old spelling of --power (as `record` takes it)");
    }
    if a.interval_ms.is_some() {
        eprintln!("warning: --interval-ms is the old spelling of --power-interval");
    }
    let Some(mut spec) = a.power.clone().or_else(|| a.source.clone()) else {
        usage!("which source? give --power NAME (`eprof power list` names them)");
    };
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
    let interval = Duration::from_millis(a.interval_ms.unwrap_or(a.power_interval).max(1));
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
        out.write_all(serde_json::to_string_pretty(&v)?.as_bytes())?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} ({}), values in {unit}, nominal resolution {}",
        desc.name,
        desc.kind.as_str(),
        fmt::ns(desc.nominal_resolution_ns)
    )?;
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
    t.render(out)?;
    Ok(())
}
