//! Exports of a trace: full JSON, CSV tables, and Chrome trace-event JSON (opens in
//! Perfetto and chrome://tracing).

use std::fmt::Write as _;

use serde::Serialize;

use crate::attribution::Energy;
use crate::model::{
    Channel, IdleBaseline, Note, PowerSample, RunEnd, RunMeta, SourceKind, TokenPhase, Trace,
};
use crate::summary::{Energies, Summary};

#[derive(Serialize)]
struct JsonExport<'a> {
    format: &'static str,
    meta: &'a RunMeta,
    baseline: &'a Option<IdleBaseline>,
    end: &'a Option<RunEnd>,
    summary: &'a Summary,
    channels: &'a [Channel],
    samples: &'a [PowerSample],
    sections: Vec<SectionRow<'a>>,
    tokens: Vec<TokenRow<'a>>,
    spans: Vec<SpanRow<'a>>,
    metrics: Vec<MetricRow<'a>>,
    notes: &'a [Note],
}

#[derive(Serialize)]
struct SectionRow<'a> {
    phase: &'static str,
    name: &'a str,
    step: Option<u32>,
    start_ns: u64,
    end_ns: u64,
    energy: Option<Energy>,
}

#[derive(Serialize)]
struct TokenRow<'a> {
    position: u32,
    id: u32,
    text: &'a str,
    phase: TokenPhase,
    step: Option<u32>,
    start_ns: Option<u64>,
    end_ns: Option<u64>,
    energy: Option<Energy>,
}

#[derive(Serialize)]
struct SpanRow<'a> {
    step: u32,
    layer: Option<u16>,
    component: &'a str,
    op: Option<&'a str>,
    start_ns: u64,
    end_ns: u64,
    energy: Option<Energy>,
}

#[derive(Serialize)]
struct MetricRow<'a> {
    probe: &'a str,
    metric: &'a str,
    step: u32,
    layer: Option<u16>,
    component: &'a str,
    op: Option<&'a str>,
    value: f32,
}

fn section_rows<'a>(t: &'a Trace, en: &Energies) -> Vec<SectionRow<'a>> {
    t.sections
        .iter()
        .zip(&en.sections)
        .map(|(s, e)| SectionRow {
            phase: s.phase.as_str(),
            name: &s.name,
            step: s.step,
            start_ns: s.start_ns,
            end_ns: s.end_ns,
            energy: *e,
        })
        .collect()
}

fn token_rows<'a>(t: &'a Trace, en: &Energies) -> Vec<TokenRow<'a>> {
    t.tokens
        .iter()
        .zip(&en.tokens)
        .map(|(tok, e)| TokenRow {
            position: tok.position,
            id: tok.id,
            text: &tok.text,
            phase: tok.phase,
            step: tok.step.map(|s| s.index),
            start_ns: tok.step.map(|s| s.start_ns),
            end_ns: tok.step.map(|s| s.end_ns),
            energy: *e,
        })
        .collect()
}

fn span_rows<'a>(t: &'a Trace, en: &Energies) -> Vec<SpanRow<'a>> {
    let sp = &t.spans;
    (0..sp.len())
        .map(|i| {
            let site = &t.sites[sp.site[i] as usize];
            SpanRow {
                step: sp.step[i],
                layer: site.layer,
                component: &site.component,
                op: site.op.as_deref(),
                start_ns: sp.start_ns[i],
                end_ns: sp.end_ns[i],
                energy: en.spans[i],
            }
        })
        .collect()
}

fn metric_rows(t: &Trace) -> Vec<MetricRow<'_>> {
    let mut rows = Vec::new();
    for m in &t.metrics {
        for i in 0..m.len() {
            let site = &t.sites[m.site[i] as usize];
            rows.push(MetricRow {
                probe: &m.probe,
                metric: &m.metric,
                step: m.step[i],
                layer: site.layer,
                component: &site.component,
                op: site.op.as_deref(),
                value: m.value[i],
            });
        }
    }
    rows
}

/// The formats one run exports to, as `eprof export --format` and the server's
/// `GET /api/profiling/runs/{id}/export?format=` name them. One switch for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Everything: metadata, summary, sections, tokens, spans, metrics, samples.
    Json,
    /// One table per file.
    Csv,
    /// Chrome trace-event JSON (Perfetto, chrome://tracing), power as counter tracks.
    Chrome,
    /// The trace file itself.
    Eprof,
}

/// What [`Format::render`] makes of a run.
pub enum Rendered {
    /// One text file.
    Text(String),
    /// One file per table: (file name, text).
    Tables(Vec<(String, String)>),
    /// The trace file as stored: the front end copies it from where it keeps it.
    TraceFile,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Json, Format::Csv, Format::Chrome, Format::Eprof];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Chrome => "chrome",
            Format::Eprof => "eprof",
        }
    }

    /// The format called `name`, if any.
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Its media type (of each file, for CSV).
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json | Format::Chrome => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Eprof => "application/octet-stream",
        }
    }

    /// The file name a download of run `id` gets (for CSV, of table file `table`).
    pub fn file_name(self, id: &str, table: Option<&str>) -> String {
        match self {
            Format::Json => format!("{id}.json"),
            Format::Chrome => format!("{id}.chrome.json"),
            Format::Eprof => format!("{id}.eprof"),
            Format::Csv => format!("{id}.{}", table.unwrap_or("csv")),
        }
    }

    /// The run in this format.
    pub fn render(self, trace: &Trace, en: &Energies) -> Rendered {
        match self {
            Format::Json => Rendered::Text(to_json(trace, en, &Summary::compute(trace, en))),
            Format::Chrome => Rendered::Text(to_chrome_trace(trace, en)),
            Format::Csv => Rendered::Tables(to_csv(trace, en)),
            Format::Eprof => Rendered::TraceFile,
        }
    }
}

/// The whole trace as one JSON document, every record with its energy and label.
pub fn to_json(trace: &Trace, en: &Energies, summary: &Summary) -> String {
    let doc = JsonExport {
        format: "eprof-json-1",
        meta: &trace.meta,
        baseline: &trace.baseline,
        end: &trace.end,
        summary,
        channels: &trace.meta.power.channels,
        samples: &trace.samples,
        sections: section_rows(trace, en),
        tokens: token_rows(trace, en),
        spans: span_rows(trace, en),
        metrics: metric_rows(trace),
        notes: &trace.notes,
    };
    // Serialising plain data to a String cannot fail (no maps with non-string keys).
    serde_json::to_string(&doc).unwrap_or_default()
}

fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn energy_cols(e: Option<Energy>) -> String {
    match e {
        Some(e) => format!("{},{}", e.joules, e.label.as_str()),
        None => ",".into(),
    }
}

/// CSV tables, one per record kind: `(file name, contents)`.
pub fn to_csv(trace: &Trace, en: &Energies) -> Vec<(String, String)> {
    let mut sections = String::from("phase,name,step,start_ns,end_ns,energy_j,label\n");
    for r in section_rows(trace, en) {
        let _ = write!(sections, "{},", r.phase);
        csv_field(&mut sections, r.name);
        let _ = writeln!(
            sections,
            ",{},{},{},{}",
            opt(r.step),
            r.start_ns,
            r.end_ns,
            energy_cols(r.energy)
        );
    }
    let mut tokens = String::from("position,id,text,phase,step,start_ns,end_ns,energy_j,label\n");
    for r in token_rows(trace, en) {
        let _ = write!(tokens, "{},{},", r.position, r.id);
        csv_field(&mut tokens, r.text);
        let phase = r.phase.as_str();
        let _ = writeln!(
            tokens,
            ",{phase},{},{},{},{}",
            opt(r.step),
            opt(r.start_ns),
            opt(r.end_ns),
            energy_cols(r.energy)
        );
    }
    let mut spans = String::from("step,layer,component,op,start_ns,end_ns,energy_j,label\n");
    for r in span_rows(trace, en) {
        let _ = write!(spans, "{},{},", r.step, opt(r.layer));
        csv_field(&mut spans, r.component);
        spans.push(',');
        csv_field(&mut spans, r.op.unwrap_or(""));
        let _ = writeln!(
            spans,
            ",{},{},{}",
            r.start_ns,
            r.end_ns,
            energy_cols(r.energy)
        );
    }
    let mut metrics = String::from("probe,metric,step,layer,component,op,value\n");
    for r in metric_rows(trace) {
        csv_field(&mut metrics, r.probe);
        metrics.push(',');
        csv_field(&mut metrics, r.metric);
        let _ = write!(metrics, ",{},{},", r.step, opt(r.layer));
        csv_field(&mut metrics, r.component);
        metrics.push(',');
        csv_field(&mut metrics, r.op.unwrap_or(""));
        let _ = writeln!(metrics, ",{}", r.value);
    }
    let unit = match trace.meta.power.kind {
        SourceKind::Counter => "j",
        SourceKind::Sampler | SourceKind::Estimate => "w",
    };
    let mut samples = String::from("t0_ns,t1_ns");
    for c in &trace.meta.power.channels {
        samples.push(',');
        csv_field(&mut samples, &format!("{}_{unit}", c.name));
    }
    samples.push('\n');
    for s in &trace.samples {
        let _ = write!(samples, "{},{}", s.t0_ns, s.t1_ns);
        for v in &s.values {
            let _ = write!(samples, ",{}", opt(*v));
        }
        samples.push('\n');
    }
    vec![
        ("sections.csv".into(), sections),
        ("tokens.csv".into(), tokens),
        ("spans.csv".into(), spans),
        ("metrics.csv".into(), metrics),
        ("samples.csv".into(), samples),
    ]
}

#[derive(Serialize)]
struct ChromeEvent<'a> {
    name: std::borrow::Cow<'a, str>,
    cat: &'static str,
    ph: &'static str,
    ts: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    pid: u32,
    tid: u32,
    args: serde_json::Value,
}

/// Chrome trace-event JSON: phases, sections, steps, layers, components and
/// operations as nested slices on one track, power channels as counter tracks.
pub fn to_chrome_trace(trace: &Trace, en: &Energies) -> String {
    let us = |ns: u64| ns as f64 / 1000.0;
    let energy_args = |e: Option<Energy>| match e {
        Some(e) => serde_json::json!({"energy_j": e.joules, "label": e.label.as_str()}),
        None => serde_json::json!({}),
    };
    let mut ev: Vec<ChromeEvent> = Vec::new();
    for (s, e) in trace.sections.iter().zip(&en.sections) {
        ev.push(ChromeEvent {
            name: s.name.as_str().into(),
            cat: "section",
            ph: "X",
            ts: us(s.start_ns),
            dur: Some(us(s.duration_ns())),
            pid: 1,
            tid: 1,
            args: energy_args(*e),
        });
    }
    for (t, e) in trace.tokens.iter().zip(&en.tokens) {
        if let Some(s) = t.step {
            let mut args = energy_args(*e);
            args["token"] = t.text.clone().into();
            args["token_id"] = t.id.into();
            ev.push(ChromeEvent {
                name: format!("step {}", s.index).into(),
                cat: "token",
                ph: "X",
                ts: us(s.start_ns),
                dur: Some(us(s.end_ns.saturating_sub(s.start_ns))),
                pid: 1,
                tid: 1,
                args,
            });
        }
    }
    let sp = &trace.spans;
    for i in 0..sp.len() {
        let site = &trace.sites[sp.site[i] as usize];
        let cat = if site.is_layer() {
            "layer"
        } else if site.is_operation() {
            "operation"
        } else {
            "component"
        };
        ev.push(ChromeEvent {
            name: site.label().into(),
            cat,
            ph: "X",
            ts: us(sp.start_ns[i]),
            dur: Some(us(sp.duration_ns(i))),
            pid: 1,
            tid: 1,
            args: energy_args(en.spans[i]),
        });
    }
    let kind = trace.meta.power.kind;
    for (c, ch) in trace.meta.power.channels.iter().enumerate() {
        let name = format!("power {} (W)", ch.name);
        let mut push = |t: u64, w: f64| {
            ev.push(ChromeEvent {
                name: name.clone().into(),
                cat: "power",
                ph: "C",
                ts: us(t),
                dur: None,
                pid: 1,
                tid: 0,
                args: serde_json::json!({ "W": w }),
            })
        };
        match kind {
            SourceKind::Counter => {
                // Power between readings from the energy curve the figures use: a
                // counter read faster than it updates would otherwise draw 0 W with
                // a spike at each update.
                let times: Vec<u64> = trace
                    .samples
                    .iter()
                    .filter(|s| s.values.get(c).copied().flatten().is_some())
                    .map(|s| s.t0_ns)
                    .collect();
                for w in times.windows(2) {
                    if w[1] > w[0]
                        && let Some(j) = en.attribution.channel_joules(c, w[0], w[1])
                    {
                        push(w[0], j / ((w[1] - w[0]) as f64 * 1e-9));
                    }
                }
            }
            SourceKind::Sampler | SourceKind::Estimate => {
                for s in &trace.samples {
                    if let Some(v) = s.values.get(c).copied().flatten() {
                        push(s.t0_ns, v);
                    }
                }
            }
        }
    }
    // Events sorted by start, longest first, so viewers nest them without guessing.
    ev.sort_by(|a, b| {
        a.ts.total_cmp(&b.ts)
            .then(b.dur.unwrap_or(0.0).total_cmp(&a.dur.unwrap_or(0.0)))
    });
    let doc = serde_json::json!({
        "displayTimeUnit": "ms",
        "otherData": {"run": trace.meta.id, "model": trace.meta.model.name, "source": trace.meta.power.name},
        "traceEvents": ev,
    });
    doc.to_string()
}
