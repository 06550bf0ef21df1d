//! The run summary table.

use super::*;

/// The run summary: what ran where, the totals, and how the figures were obtained.
pub fn summary(v: &TraceView) -> String {
    let t = &v.trace;
    let s = &v.summary;
    let m = &t.meta;
    let mut o = String::new();
    if let Some(tr) = &v.truncation {
        let _ = write!(
            o,
            r#"<p class="warn" role="alert">Truncated trace: {} — showing what was recovered.</p>"#,
            esc(&tr.to_string())
        );
    }
    o.push_str(r#"<dl class="summary">"#);
    dl_row(&mut o, "file", &v.name);
    dl_row(&mut o, "prompt", &m.prompt);
    let output = t
        .end
        .as_ref()
        .map(|e| e.generated_text.clone())
        .unwrap_or_else(|| t.generated().map(|x| x.text.as_str()).collect());
    // A long output is folded: the figures matter more than the text here.
    if output.chars().count() > 400 {
        let head: String = output.chars().take(300).collect();
        let _ = write!(
            o,
            "<dt>output</dt><dd><details><summary>{}… ({} characters)</summary>{}</details></dd>",
            esc(&head),
            output.chars().count(),
            esc(&output)
        );
    } else {
        dl_row(&mut o, "output", &output);
    }
    run_rows(&mut o, v);
    figure_rows(&mut o, s);
    o.push_str("</dl>");
    o.push_str(r#"<h3>How the energy figures were obtained</h3><ul class="labels">"#);
    if s.labels.is_empty() {
        o.push_str("<li>No energy figures: the power source gave no readings.</li>");
    }
    for (label, n) in &s.labels {
        let _ = write!(
            o,
            "<li><b>{}</b> ({n} figures): {}</li>",
            label.as_str(),
            esc(label.explain())
        );
    }
    o.push_str("</ul>");
    if !t.notes.is_empty() {
        o.push_str(r#"<h3>Notes recorded during the run</h3><ul class="notes">"#);
        for n in &t.notes {
            let _ = write!(o, "<li>{}</li>", esc(&n.text));
        }
        o.push_str("</ul>");
    }
    o
}

/// What ran where: model, machine, settings, power source.
fn run_rows(o: &mut String, v: &TraceView) {
    let (m, s) = (&v.trace.meta, &v.summary);
    dl_row(o, "model", &m.model.describe());
    dl_row(
        o,
        "machine",
        &format!(
            "{} · {} {} · {} ({} cores) · {:.1} GiB{}",
            m.machine.hostname,
            m.machine.os,
            m.machine.arch,
            m.machine.cpu,
            m.machine.cpu_cores,
            m.machine.memory_bytes as f64 / f64::from(1u32 << 30),
            m.machine
                .gpu
                .as_ref()
                .map_or(String::new(), |g| format!(" · {g}"))
        ),
    );
    dl_row(
        o,
        "settings",
        &format!(
            "depth {} · device {} · max {} tokens · temperature {} · seed {}",
            m.settings.depth.as_str(),
            m.settings.device,
            m.settings.max_tokens,
            m.settings.temperature,
            m.settings.seed
        ),
    );
    let channels: Vec<String> = m
        .power
        .channels
        .iter()
        .map(|c| {
            format!(
                "{}{}",
                c.name,
                if c.in_total { "" } else { " (not in total)" }
            )
        })
        .collect();
    dl_row(
        o,
        "power source",
        &format!(
            "{} ({}) · channels: {} · resolution {} (nominal {}, observed spacing {}) · {} readings",
            s.source,
            s.source_kind.as_str(),
            channels.join(", "),
            fmt_ns(s.resolution_ns as f64),
            fmt_ns(s.nominal_resolution_ns as f64),
            fmt_ns(s.observed_spacing_ns as f64),
            s.samples
        ),
    );
}

/// The run's figures: tokens, duration, energy, power, J per token, speed.
fn figure_rows(o: &mut String, s: &eprof_format::Summary) {
    dl_row(
        o,
        "tokens",
        &format!(
            "{} prompt · {} generated",
            s.prompt_tokens, s.generated_tokens
        ),
    );
    dl_row(o, "duration", &fmt_ns(s.duration_ns as f64));
    dl_row(
        o,
        "energy",
        &opt(s.total, |e| {
            format!("{} ({})", fmt_joules(e.joules), e.label.as_str())
        }),
    );
    dl_row(
        o,
        "idle / dynamic",
        &format!(
            "{} idle · {} above idle",
            opt(s.idle_w, |w| format!("{w:.2} W")),
            opt(s.dynamic_j, fmt_joules)
        ),
    );
    dl_row(
        o,
        "average power",
        &opt(s.avg_power_w, |w| format!("{w:.2} W")),
    );
    dl_row(
        o,
        "J / token",
        &format!(
            "{} per generated token · {} per decode token",
            opt(s.j_per_generated_token, fmt_joules),
            opt(s.decode_j_per_token, fmt_joules)
        ),
    );
    dl_row(
        o,
        "speed",
        &format!(
            "{} decode tokens/s · time to first token {}",
            opt(s.decode_tokens_per_s, |x| format!("{x:.1}")),
            opt(s.time_to_first_token_ns, |x| fmt_ns(x as f64))
        ),
    );
}
