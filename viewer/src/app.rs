//! The Leptos shell: loading traces, the open traces and the selected token
//! ([`Ctx`]), the trace chooser, Compare. The views of a trace are `crate::views`;
//! charts are drawn by `crate::charts`, and clicks inside them are read from
//! `data-*` attributes (one listener per chart, not per element).

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::charts;
use crate::ctx::{Ctx, fetch_bytes, now_ms};
use crate::data::TraceView;

/// Start the app (called by the page once the module is instantiated).
#[wasm_bindgen(start)]
pub fn start() {
    // The same module also runs in the page's worker (`crate::worker`): no app there.
    if js_sys::global().dyn_into::<web_sys::Window>().is_err() {
        std::panic::set_hook(Box::new(|info| {
            web_sys::console::error_1(&format!("eprof viewer worker crashed: {info}").into());
        }));
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("eprof viewer crashed: {info}");
        web_sys::console::error_1(&msg.clone().into());
        if let Some(el) = document().get_element_by_id("fatal") {
            el.set_text_content(Some(&msg));
        }
    }));
    mount_to_body(App);
}

async fn read_file(file: web_sys::File) -> Result<(String, js_sys::Uint8Array), String> {
    let name = file.name();
    let buf = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("{name}: cannot read the file ({e:?})"))?;
    Ok((name, js_sys::Uint8Array::new(&buf)))
}

fn load_files(ctx: Ctx, list: Option<web_sys::FileList>) {
    let Some(list) = list else { return };
    let files: Vec<web_sys::File> = (0..list.length()).filter_map(|i| list.get(i)).collect();
    if files.is_empty() {
        return;
    }
    let started = now_ms();
    spawn_local(async move {
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for f in files {
            match read_file(f).await {
                Ok(x) => ok.push(x),
                Err(e) => errors.push(e),
            }
        }
        ctx.add(ok, started);
        if !errors.is_empty() {
            ctx.errors.update(|e| e.extend(errors));
        }
    });
}

/// Traces embedded in the page by `eprof view --html` (decoded by the page's loader
/// into `window.eprofEmbedded = [{name, bytes}]`) and `?trace=<url>` parameters.
fn load_initial(ctx: Ctx) {
    let started = now_ms();
    let mut embedded = Vec::new();
    if let Ok(list) = js_sys::Reflect::get(&window(), &"eprofEmbedded".into())
        && let Ok(list) = list.dyn_into::<js_sys::Array>()
    {
        for item in list.iter() {
            let name = js_sys::Reflect::get(&item, &"name".into())
                .ok()
                .and_then(|n| n.as_string())
                .unwrap_or_else(|| "embedded.eprof".into());
            if let Ok(bytes) = js_sys::Reflect::get(&item, &"bytes".into()) {
                embedded.push((name, js_sys::Uint8Array::new(&bytes)));
            }
        }
    }
    if !embedded.is_empty() {
        ctx.add_then(embedded, started, crate::state::ViewState::from_url());
    }
    let search = window().location().search().unwrap_or_default();
    let urls: Vec<String> = web_sys::UrlSearchParams::new_with_str(&search)
        .map(|p| {
            p.get_all("trace")
                .iter()
                .filter_map(|v| v.as_string())
                .collect()
        })
        .unwrap_or_default();
    if urls.is_empty() {
        return;
    }
    spawn_local(async move {
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for u in urls {
            match fetch_bytes(u, None).await {
                Ok(x) => ok.push(x),
                Err(e) => errors.push(e),
            }
        }
        ctx.add_then(ok, started, crate::state::ViewState::from_url());
        if !errors.is_empty() {
            ctx.errors.update(|e| e.extend(errors));
        }
    });
}

#[component]
fn App() -> impl IntoView {
    let ctx = Ctx {
        traces: RwSignal::new(Vec::new()),
        active: RwSignal::new(0),
        step: RwSignal::new(None),
        metric: RwSignal::new(None),
        zoom: RwSignal::new(None),
        range: RwSignal::new(None),
        errors: RwSignal::new(Vec::new()),
        loading: RwSignal::new(Vec::new()),
        busy: RwSignal::new(0),
        awaiting: StoredValue::new(None),
    };
    provide_context(ctx);
    let server = crate::server::is_server();

    // Drag and drop anywhere on the page.
    let over = window_event_listener(leptos::ev::dragover, |ev| ev.prevent_default());
    let drop = window_event_listener(leptos::ev::drop, move |ev| {
        ev.prevent_default();
        load_files(ctx, ev.data_transfer().and_then(|d| d.files()));
    });
    on_cleanup(move || {
        over.remove();
        drop.remove();
    });
    load_initial(ctx);
    // The URL follows the selection (on a server, its run list too: see `server`).
    if !server {
        Effect::new(move |_| {
            let state = ctx.view_state();
            if ctx.traces.with(|t| !t.is_empty()) {
                crate::state::set_hash(&[], &state);
            }
        });
    }

    let current = Memo::new(move |_| {
        ctx.traces
            .with(|t| t.get(ctx.active.get()).map(|v| TraceRef(v.clone())))
    });

    view! {
        <header>
            <h1>"eprof viewer"</h1>
            <label class="open">
                "Open trace(s) "
                <input
                    id="file-input"
                    type="file"
                    accept=".eprof"
                    multiple
                    on:change=move |ev| {
                        let input: web_sys::HtmlInputElement = event_target(&ev);
                        load_files(ctx, input.files());
                        input.set_value("");
                    }
                />
            </label>
            <span class="hint">"or drop .eprof files anywhere on the page"</span>
            <TraceChooser/>
            <span id="loading" aria-live="polite">
                {move || {
                    ctx.loading
                        .get()
                        .into_iter()
                        .map(|l| {
                            view! {
                                <label class="loading">
                                    {format!("Loading {} ", l.name)}
                                    <progress max="1" value=l.done></progress>
                                    {format!(" {:.0}%", l.done * 100.0)}
                                </label>
                            }
                        })
                        .collect_view()
                }}
            </span>
        </header>
        <div id="fatal" role="alert"></div>
        <div id="errors" role="alert">
            {move || {
                ctx.errors
                    .get()
                    .into_iter()
                    .map(|e| view! { <p class="error">{e}</p> })
                    .collect_view()
            }}
        </div>
        {server.then(|| view! { <crate::server::ServerPanel/> })}
        {move || match current.get() {
            None if server => view! { <span></span> }.into_any(),
            None => {
                view! {
                    <section class="welcome">
                        <p>
                            "Open an " <code>".eprof"</code>
                            " trace recorded by " <code>"eprof record"</code>
                            ". Everything stays in this page: nothing is uploaded."
                        </p>
                    </section>
                }
                    .into_any()
            }
            Some(TraceRef(v)) => view! { <crate::views::TraceViews v=v/> }.into_any(),
        }}
        <Compare/>
        <Groups/>
    }
}

/// Groups of repeated runs among the open traces (`eprof bench`): intervals, error
/// bars and verdicts.
#[component]
fn Groups() -> impl IntoView {
    let ctx: Ctx = expect_context();
    let html = Memo::new(move |_| {
        ctx.traces.with(|t| {
            let vs: Vec<&TraceView> = t.iter().map(|v| v.as_ref()).collect();
            charts::groups_html(&vs)
        })
    });
    view! {
        <Show when=move || html.with(|h| !h.is_empty())>
            <section id="groups">
                <h2>"Repeated runs"</h2>
                <p class="hint">
                    "Means with their 95% interval (runs as dots); each configuration against the first: the difference, its interval and a verdict."
                </p>
                <div inner_html=move || html.get()></div>
            </section>
        </Show>
    }
}

/// Pointer-equality wrapper so a trace can live in a memo.
#[derive(Clone)]
struct TraceRef(Arc<TraceView>);

impl PartialEq for TraceRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[component]
fn TraceChooser() -> impl IntoView {
    let ctx: Ctx = expect_context();
    view! {
        <Show when=move || ctx.traces.with(|t| !t.is_empty())>
            <label>
                "Trace "
                <select
                    id="trace-select"
                    on:change=move |ev| {
                        if let Ok(i) = event_target_value(&ev).parse() {
                            ctx.active.set(i);
                        }
                    }
                    prop:value=move || ctx.active.get().to_string()
                >
                    {move || {
                        ctx.traces
                            .with(|t| {
                                t.iter()
                                    .enumerate()
                                    .map(|(i, v)| {
                                        view! { <option value=i.to_string()>{v.name.clone()}</option> }
                                    })
                                    .collect_view()
                            })
                    }}
                </select>
            </label>
            <button
                id="clear"
                on:click=move |_| {
                    ctx.clear_traces();
                    ctx.errors.set(Vec::new());
                }
            >
                "Close all"
            </button>
        </Show>
    }
}

#[component]
fn Compare() -> impl IntoView {
    let ctx: Ctx = expect_context();
    let tables = Memo::new(move |_| {
        ctx.traces.with(|t| {
            if t.len() < 2 {
                return None;
            }
            let vs: Vec<&TraceView> = t.iter().map(|v| v.as_ref()).collect();
            Some((charts::compare_table(&vs), charts::compare_layers(&vs)))
        })
    });
    view! {
        <Show when=move || tables.with(Option::is_some)>
            <section id="compare">
                <h2>"Compare"</h2>
                <div inner_html=move || tables.get().map(|t| t.0).unwrap_or_default()></div>
                <h3>"Energy per layer"</h3>
                <div class="chart-box" inner_html=move || tables.get().map(|t| t.1).unwrap_or_default()></div>
            </section>
        </Show>
    }
}
