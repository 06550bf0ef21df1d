//! The live run: its text, figures, power and heatmap as they arrive.

use std::sync::Arc;

use eprof_format::summary::GridMetric;
use eprof_format::sync::lock;
use leptos::prelude::*;

use super::inbox::*;
use crate::charts::{self, ColourScale};

#[component]
pub(super) fn LiveView(inbox: Shared, live: Live) -> impl IntoView {
    let metric = RwSignal::new("energy".to_string());
    let ib = Arc::clone(&inbox);
    let figures = move || {
        live.version.track();
        let ib = lock(&ib);
        let r = &ib.run;
        if r.run_id.is_empty() {
            return "no run yet: start one above, or with POST /api/profiling/generate".into();
        }
        format!(
            "run {} · {} · depth {} · {}",
            r.run_id,
            r.model,
            r.depth,
            r.figures()
        )
    };
    let ib = Arc::clone(&inbox);
    let now = move || {
        live.version.track();
        let ib = lock(&ib);
        match &ib.run.error {
            Some(e) => format!("failed: {e}"),
            None => ib.run.now.clone(),
        }
    };
    let ib = Arc::clone(&inbox);
    let count = move || {
        live.version.track();
        lock(&ib).run.tokens.len().to_string()
    };
    let ib = Arc::clone(&inbox);
    let text = move || {
        live.tokens.track();
        lock(&ib).run.text_html()
    };
    let ib = Arc::clone(&inbox);
    let power = move || {
        live.power.track();
        let ib = lock(&ib);
        let r = &ib.run;
        if r.run_id.is_empty() {
            return String::new();
        }
        charts::power_chart("live", &r.band_spans(), r.power().as_ref(), None, None)
    };
    let ib = Arc::clone(&inbox);
    let metrics = move || {
        live.sites.track();
        lock(&ib).run.metrics()
    };
    let ib = Arc::clone(&inbox);
    let heat = move || {
        live.sites.track();
        let ib = lock(&ib);
        let r = &ib.run;
        let m = metric.get();
        if r.cells(&m) == 0 {
            return "<p class=\"hint\">Layers and components appear here per token at module and deep depth.</p>".to_string();
        }
        let title = format!("{m}, {} tokens so far", r.tokens.len());
        charts::heatmap(
            &r.grid(&m),
            &title,
            &charts::metric_fmt(&m),
            ColourScale::Linear {
                zero_based: GridMetric::parse(&m).is_sum(),
            },
        )
    };
    view! {
        <section id="live">
            <h2>"Live run"</h2>
            <p id="live-figures">{figures}</p>
            <p>"Now: " <span id="live-now">{now}</span> " · tokens " <span id="live-tokens">{count}</span></p>
            <div id="live-text" class="live-text" inner_html=text></div>
            <div id="live-power" class="chart-box" inner_html=power></div>
            <div class="controls">
                <label>
                    "Heatmap "
                    <select id="live-metric" prop:value=move || metric.get() on:change=move |ev| metric.set(event_target_value(&ev))>
                        {move || {
                            metrics()
                                .into_iter()
                                .map(|m| view! { <option value=m.clone()>{m.clone()}</option> })
                                .collect_view()
                        }}
                    </select>
                </label>
            </div>
            <div id="live-heatmap" class="chart-box" inner_html=heat></div>
        </section>
    }
}
