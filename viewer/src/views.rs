//! The views of one trace, one component per section: summary, timeline, power,
//! heatmap, treemap, Sankey, waterfall, drilldown. They share a [`Selection`] (what
//! the charts are sized by, the selected token, the drilled-into site, the heatmap
//! metric) through the context; each keeps its own controls' state.

use std::sync::Arc;

use eprof_format::layout::Measure;
use eprof_format::summary::GridMetric;
use leptos::prelude::*;

use crate::charts::{self, SpanChart, Stack};
use crate::ctx::{Ctx, data_of};
use crate::data::TraceView;
use crate::zoom::{PowerSection, TimelineSection};

/// What the sections of one trace's views share.
#[derive(Clone, Copy)]
struct Selection {
    /// Energy or time: what the timeline, treemap, Sankey and waterfall are sized by.
    measure: RwSignal<Measure>,
    /// The selected token (a step index; `None` is the whole run), shared with the
    /// page (its URL) through [`Ctx`].
    step: RwSignal<Option<u32>>,
    /// The layer and component the drilldown shows.
    drill: RwSignal<(usize, String)>,
    /// The treemap's zoom path (reset when the measure changes).
    tm_path: RwSignal<Vec<usize>>,
    /// The icicle's zoom path (reset when the measure changes).
    ic_path: RwSignal<Vec<usize>>,
}

fn sel() -> Selection {
    expect_context()
}

#[component]
pub fn TraceViews(v: Arc<TraceView>) -> impl IntoView {
    let s = Selection {
        measure: RwSignal::new(v.default_measure()),
        step: expect_context::<Ctx>().step,
        drill: RwSignal::new((0usize, "attention".to_string())),
        tm_path: RwSignal::new(Vec::new()),
        ic_path: RwSignal::new(Vec::new()),
    };
    provide_context(s);
    crate::zoom::keys(v.clone());
    let active = active_section();
    let has_energy = v.has_energy;
    view! {
        <nav class="sections">
            {SECTIONS
                .iter()
                .map(|&(id, name)| {
                    view! {
                        <a href=format!("#{id}") class:active=move || active.get() == id>{name}</a>
                    }
                })
                .collect_view()}
            <SearchBox v=v.clone()/>
            <label class="measure">
                "Size by "
                <select
                    id="measure"
                    on:change=move |ev| {
                        s.measure.set(if event_target_value(&ev) == "time" { Measure::TimeNs } else { Measure::EnergyJ });
                        s.tm_path.set(Vec::new());
                        s.ic_path.set(Vec::new());
                    }
                    prop:value=move || if s.measure.get() == Measure::TimeNs { "time" } else { "energy" }
                >
                    <option value="energy" disabled=!has_energy>"energy"</option>
                    <option value="time">"duration"</option>
                </select>
            </label>
        </nav>
        <SummarySection v=v.clone()/>
        <TimelineSection v=v.clone() measure=s.measure/>
        <PowerSection v=v.clone()/>
        <HeatmapSection v=v.clone()/>
        <TreemapSection v=v.clone()/>
        <IcicleSection v=v.clone()/>
        <SankeySection v=v.clone()/>
        <WaterfallSection v=v.clone()/>
        <DrilldownSection v=v/>
    }
}

/// The sections of a trace's views, in page order: id and name in the index.
const SECTIONS: [(&str, &str); 9] = [
    ("summary", "Summary"),
    ("timeline", "Timeline"),
    ("power", "Power"),
    ("heatmap", "Heatmap"),
    ("treemap", "Treemap"),
    ("icicle", "Icicle"),
    ("sankey", "Sankey"),
    ("waterfall", "Tokens"),
    ("drilldown", "Drilldown"),
];

/// The section at the top of the window (below the sticky index), updated as the
/// page scrolls (once per frame at most).
fn active_section() -> ReadSignal<&'static str> {
    let (active, set_active) = signal(SECTIONS[0].0);
    let queued = StoredValue::new(false);
    let handle = window_event_listener(leptos::ev::scroll, move |_| {
        if queued.get_value() {
            return;
        }
        queued.set_value(true);
        request_frame(move || {
            queued.set_value(false);
            let line = document()
                .query_selector("nav.sections")
                .ok()
                .flatten()
                .map_or(0.0, |n| n.get_bounding_client_rect().bottom())
                + 8.0;
            let mut at = SECTIONS[0].0;
            for (id, _) in SECTIONS {
                if let Some(el) = document().get_element_by_id(id)
                    && el.get_bounding_client_rect().top() <= line
                {
                    at = id;
                }
            }
            set_active.set(at);
        });
    });
    on_cleanup(move || handle.remove());
    active
}

#[component]
fn SummarySection(v: Arc<TraceView>) -> impl IntoView {
    let summary = charts::summary(&v);
    view! {
        <section id="summary">
            <details class="summary-box" open>
                <summary>"Run summary"</summary>
                <div inner_html=summary></div>
            </details>
        </section>
    }
}

#[component]
fn HeatmapSection(v: Arc<TraceView>) -> impl IntoView {
    let s = sel();
    let default_metric = if v.has_energy {
        GridMetric::ENERGY
    } else {
        GridMetric::TIME
    };
    // Shared with the page's URL (a deep link may choose it).
    let chosen = expect_context::<Ctx>().metric;
    let metric = Memo::new(move |_| chosen.get().unwrap_or_else(|| default_metric.to_string()));
    let log_scale = RwSignal::new(false);
    let heat = chart_html(v.clone(), move || {
        let (key, step, log) = (metric.get(), s.step.get(), log_scale.get());
        SpanChart::Heatmap { key, step, log }
    });
    let steps: Arc<[u32]> = v.steps.step.as_slice().into();
    let max_idx = steps.len().saturating_sub(1);
    let vv = v.clone();
    let slider_value = move || {
        s.step
            .get()
            .and_then(|st| vv.steps.row(st))
            .unwrap_or(0)
            .to_string()
    };
    // Dragging the slider sets the token at most once per frame: the newest position
    // wins, and the charts redraw for it only.
    let pending: StoredValue<Option<usize>> = StoredValue::new(None);
    let on_slider = move |i: usize| {
        let first = pending.with_value(Option::is_none);
        pending.set_value(Some(i));
        if first {
            let steps = steps.clone();
            request_frame(move || {
                if let Some(i) = pending.try_update_value(Option::take).flatten() {
                    s.step.set(steps.get(i).copied());
                }
            });
        }
    };
    let vv = v.clone();
    let token_text = move || match s.step.get() {
        None => "whole run".to_string(),
        Some(st) => {
            let row = vv.steps.row(st);
            format!(
                "token {st}{}: {:?}",
                if row.is_some_and(|r| vv.steps.prefill[r]) {
                    " (prefill)"
                } else {
                    ""
                },
                row.map_or("", |r| vv.steps.text[r].as_str())
            )
        }
    };
    let mut metrics = vec![GridMetric::TIME.to_string()];
    if v.has_energy {
        metrics.push(GridMetric::ENERGY.into());
    }
    metrics.extend(v.metric_keys().into_iter().filter(|k| k != "model/flops"));
    view! {
        <section id="heatmap">
            <h2>"Layer × component"</h2>
            <div class="controls">
                <label>
                    "Metric "
                    <select id="metric" on:change=move |ev| chosen.set(Some(event_target_value(&ev))) prop:value=move || metric.get()>
                        {metrics
                            .iter()
                            .map(|m| view! { <option value=m.clone()>{m.clone()}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    "Token "
                    <input
                        id="token-slider"
                        type="range"
                        min="0"
                        max=max_idx.to_string()
                        prop:value=slider_value
                        on:input=move |ev| {
                            if let Ok(i) = event_target_value(&ev).parse::<usize>() {
                                on_slider(i);
                            }
                        }
                    />
                </label>
                <button id="whole-run" on:click=move |_| s.step.set(None)>"Whole run"</button>
                <label>
                    <input
                        id="log-scale"
                        type="checkbox"
                        prop:checked=move || log_scale.get()
                        on:change=move |ev| log_scale.set(event_target_checked(&ev))
                    />
                    " log colour scale"
                </label>
                <span id="token-label">{token_text}</span>
            </div>
            <div
                class="chart-box"
                inner_html=move || heat.get()
                on:click=move |ev| {
                    if let (Some(l), Some(c)) = (data_of(&ev, "layer"), data_of(&ev, "comp"))
                        && let Ok(l) = l.parse()
                    {
                        s.drill.set((l, c));
                    }
                }
            ></div>
            <p class="hint">"Click a cell to see its operations and tensor metrics in the drilldown."</p>
        </section>
    }
}

#[component]
fn TreemapSection(v: Arc<TraceView>) -> impl IntoView {
    let s = sel();
    let vv = v.clone();
    let treemap = Memo::new(move |_| {
        charts::treemap(vv.tree(s.measure.get()), &s.tm_path.get(), s.measure.get())
    });
    let vv = v.clone();
    let crumbs = Memo::new(move |_| charts::path_names(vv.tree(s.measure.get()), &s.tm_path.get()));
    let zoomable = Memo::new(move |_| {
        let node = charts::node_at(v.tree(s.measure.get()), &s.tm_path.get());
        node.children
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.children.is_empty())
            .map(|(i, c)| (i, c.name.clone()))
            .collect::<Vec<_>>()
    });
    view! {
        <section id="treemap">
            <h2>"Treemap"</h2>
            <div class="controls">
                <Crumbs names=crumbs path=s.tm_path class="crumbs"/>
                <label>
                    "Zoom into "
                    <select
                        id="tm-zoom"
                        prop:value=move || {
                            s.tm_path.track();
                            String::new()
                        }
                        on:change=move |ev| {
                            if let Ok(i) = event_target_value(&ev).parse::<usize>() {
                                s.tm_path.update(|p| p.push(i));
                            }
                        }
                    >
                        <option value="">"—"</option>
                        {move || {
                            zoomable
                                .get()
                                .into_iter()
                                .map(|(i, n)| view! { <option value=i.to_string()>{n}</option> })
                                .collect_view()
                        }}
                    </select>
                </label>
            </div>
            <div
                class="chart-box"
                inner_html=move || treemap.get()
                on:click=move |ev| {
                    if let Some(i) = data_of(&ev, "idx").and_then(|i| i.parse::<usize>().ok())
                        && zoomable.with_untracked(|z| z.iter().any(|(j, _)| *j == i))
                    {
                        s.tm_path.update(|p| p.push(i));
                    }
                }
            ></div>
        </section>
    }
}

#[component]
fn SankeySection(v: Arc<TraceView>) -> impl IntoView {
    let s = sel();
    let sankey = Memo::new(move |_| charts::sankey(&v, s.measure.get()));
    view! {
        <section id="sankey">
            <h2>"Energy flow"</h2>
            <div class="chart-box" inner_html=move || sankey.get()></div>
        </section>
    }
}

#[component]
fn WaterfallSection(v: Arc<TraceView>) -> impl IntoView {
    let s = sel();
    let stack = RwSignal::new(Stack::Component);
    let fit_decode = RwSignal::new(true);
    let vv = v.clone();
    let waterfall =
        Memo::new(move |_| charts::waterfall(&vv, s.measure.get(), stack.get(), fit_decode.get()));
    // The selected token: an overlay over its bar, so selecting does not redraw the
    // chart.
    let selected = Memo::new(move |_| {
        s.step
            .get()
            .and_then(|st| charts::waterfall_slot(&v, st).map(|slot| (st, slot)))
    });
    view! {
        <section id="waterfall">
            <h2>"Per-token waterfall"</h2>
            <div class="controls">
                <label>
                    "Stack by "
                    <select
                        id="stack"
                        on:change=move |ev| {
                            stack.set(if event_target_value(&ev) == "layers" { Stack::LayerGroup } else { Stack::Component });
                        }
                    >
                        <option value="components">"component"</option>
                        <option value="layers">"layer group"</option>
                    </select>
                </label>
                <label>
                    <input
                        id="fit-decode"
                        type="checkbox"
                        prop:checked=move || fit_decode.get()
                        on:change=move |ev| fit_decode.set(event_target_checked(&ev))
                    />
                    " scale to decode tokens (cut the prefill bar)"
                </label>
                <span class="hint">"Click a token to select it everywhere."</span>
            </div>
            <div
                class="chart-box"
                on:click=move |ev| {
                    if let Some(st) = data_of(&ev, "step").and_then(|st| st.parse::<u32>().ok()) {
                        s.step.set(Some(st));
                    }
                }
            >
                <div class="wf-wrap">
                    <div inner_html=move || waterfall.get()></div>
                    {move || {
                        selected
                            .get()
                            .map(|(st, [x, w, y, h])| {
                                let style = format!(
                                    "left:{:.4}%;width:{:.4}%;top:{:.4}%;height:{:.4}%",
                                    x * 100.0,
                                    w * 100.0,
                                    y * 100.0,
                                    h * 100.0,
                                );
                                view! { <div class="wf-sel" data-step=st.to_string() style=style></div> }
                            })
                    }}
                </div>
            </div>
        </section>
    }
}

#[component]
fn DrilldownSection(v: Arc<TraceView>) -> impl IntoView {
    let s = sel();
    let layers = v.present_layers();
    let components = v.components.clone();
    let drilldown = chart_html(v, move || {
        let (layer, component) = s.drill.get();
        SpanChart::Drilldown {
            layer,
            component,
            step: s.step.get(),
        }
    });
    view! {
        <section id="drilldown">
            <h2>"Drilldown"</h2>
            <div class="controls">
                <label>
                    "Layer "
                    <select
                        id="drill-layer"
                        prop:value=move || s.drill.get().0.to_string()
                        on:change=move |ev| {
                            if let Ok(l) = event_target_value(&ev).parse() {
                                s.drill.update(|d| d.0 = l);
                            }
                        }
                    >
                        {layers
                            .iter()
                            .map(|l| view! { <option value=l.to_string()>{format!("L{l}")}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label>
                    "Component "
                    <select
                        id="drill-comp"
                        prop:value=move || s.drill.get().1
                        on:change=move |ev| {
                            let c = event_target_value(&ev);
                            s.drill.update(|d| d.1 = c);
                        }
                    >
                        {components
                            .iter()
                            .map(|c| view! { <option value=c.clone()>{c.clone()}</option> })
                            .collect_view()}
                    </select>
                </label>
            </div>
            <div class="drill" inner_html=move || drilldown.get()></div>
        </section>
    }
}

/// The HTML of the chart `which` names, kept up to date as the signals it reads
/// change. From the worker, only the answer to the newest request is shown (an older
/// one arriving late is dropped), and the previous chart stays until it comes.
fn chart_html(
    v: Arc<TraceView>,
    which: impl Fn() -> SpanChart + Send + Sync + 'static,
) -> ReadSignal<String> {
    let ctx = expect_context::<Ctx>();
    let html = RwSignal::new(String::new());
    let latest = StoredValue::new(0u64);
    let which = Memo::new(move |_| which());
    Effect::new(move |_| {
        let chart = which.get();
        let Some(id) = v.remote else {
            html.set(chart.draw(&v));
            return;
        };
        let n = latest.get_value() + 1;
        latest.set_value(n);
        let q = serde_json::to_string(&chart).expect("a chart request serializes");
        ctx.request(async move {
            let h = crate::remote::query(id, q).await?;
            // The views may have closed meanwhile (another trace shown): then the
            // answer has nowhere to go.
            if latest.try_get_value() == Some(n) {
                html.try_set(h);
            }
            Ok(())
        });
    });
    html.read_only()
}

/// Run `f` before the next frame is drawn.
fn request_frame(f: impl FnOnce() + 'static) {
    use wasm_bindgen::JsCast;
    let cb = wasm_bindgen::closure::Closure::once_into_js(f);
    let _ = web_sys::window().and_then(|w| w.request_animation_frame(cb.unchecked_ref()).ok());
}

/// The path into a hierarchy as buttons, root first: each one zooms back out to it.
#[component]
fn Crumbs(
    names: Memo<Vec<String>>,
    path: RwSignal<Vec<usize>>,
    class: &'static str,
) -> impl IntoView {
    view! {
        <span class=class>
            {move || {
                names
                    .get()
                    .into_iter()
                    .enumerate()
                    .map(|(depth, name)| {
                        view! {
                            <button class="crumb" on:click=move |_| path.update(|p| p.truncate(depth))>
                                {name}
                            </button>
                        }
                    })
                    .collect_view()
            }}
        </span>
    }
}

#[component]
fn IcicleSection(v: Arc<TraceView>) -> impl IntoView {
    let s = sel();
    let vv = v.clone();
    let tree = Memo::new(move |_| {
        let m = s.measure.get();
        eprof_format::icicle::icicle(vv.tree(m), &vv.trace, &vv.energies, m)
    });
    let chart =
        Memo::new(move |_| tree.with(|t| charts::icicle(t, &s.ic_path.get(), s.measure.get())));
    let crumbs = Memo::new(move |_| tree.with(|t| charts::path_names(t, &s.ic_path.get())));
    view! {
        <section id="icicle">
            <h2>"Icicle"</h2>
            <div class="controls">
                <Crumbs names=crumbs path=s.ic_path class="crumbs ic-crumbs"/>
            </div>
            <div
                class="chart-box"
                inner_html=move || chart.get()
                on:click=move |ev| {
                    if let Some(p) = data_of(&ev, "path") {
                        let path: Vec<usize> = p.split('.').filter_map(|x| x.parse().ok()).collect();
                        let leaf = tree.with(|t| charts::node_at(t, &path).children.is_empty());
                        if !leaf {
                            s.ic_path.set(path);
                        }
                    }
                }
            ></div>
            <p class="hint">"Phase, section, layer, component, operation. Click a node to zoom into it; the path above leads back out."</p>
        </section>
    }
}

/// The search field: a token by its text, a site by name (see `crate::search`).
#[component]
fn SearchBox(v: Arc<TraceView>) -> impl IntoView {
    use crate::search::{Found, find};
    let s = sel();
    let result = RwSignal::new(String::new());
    // The site found, marked on the heatmap.
    let marked = RwSignal::new(None::<(usize, String)>);
    let run = move |q: String| {
        let f = find(&v, &q, s.drill.get_untracked().0, s.step.get_untracked());
        result.set(f.describe());
        match f {
            Found::Token { step, .. } => s.step.set(Some(step)),
            Found::Site {
                layer, component, ..
            } => {
                marked.set(Some((layer, component.clone())));
                s.drill.set((layer, component));
                scroll_to("drilldown");
            }
            Found::Nothing => {}
        }
    };
    let style = move || {
        marked.get().map_or(String::new(), |(l, c)| {
            format!(
                r#".hm-cell[data-layer="{l}"][data-comp="{}"] {{ stroke: #D55E00; stroke-width: 3; }}"#,
                c.replace(['"', '\\'], "")
            )
        })
    };
    view! {
        <label class="search">
            "Find "
            <input
                id="search"
                type="search"
                placeholder="token text, L3.q_proj, softmax"
                on:keydown=move |ev: web_sys::KeyboardEvent| {
                    if ev.key() == "Enter" {
                        run(event_target_value(&ev));
                    }
                }
            />
            <span id="search-result" aria-live="polite">{move || result.get()}</span>
            <style>{style}</style>
        </label>
    }
}

/// Bring a section into view.
fn scroll_to(id: &str) {
    if let Some(el) = document().get_element_by_id(id) {
        el.scroll_into_view();
    }
}
