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
use crate::data::TraceView;

/// Start the app (called by the page once the module is instantiated).
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("eprof viewer crashed: {info}");
        web_sys::console::error_1(&msg.clone().into());
        if let Some(el) = document().get_element_by_id("fatal") {
            el.set_text_content(Some(&msg));
        }
    }));
    mount_to_body(App);
}

pub(crate) fn now_ms() -> f64 {
    window().performance().map_or(0.0, |p| p.now())
}

/// Record when a load started and when its views were on screen, for the benchmark
/// (`window.eprofTimings`) and the test's wait (`body[data-loaded]`).
fn mark_rendered(started: f64, decode_ms: f64, loaded: usize) {
    // After the next frame and the paint that follows it (a task queued from the
    // frame callback runs once the frame is drawn).
    let cb = Closure::once_into_js(move || {
        let after_paint =
            Closure::once_into_js(move || report_rendered(started, decode_ms, loaded));
        let _ = window().set_timeout_with_callback(after_paint.unchecked_ref());
    });
    let _ = window().request_animation_frame(cb.unchecked_ref());
}

fn report_rendered(started: f64, decode_ms: f64, loaded: usize) {
    {
        let total = now_ms() - started;
        let t = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&t, &"decode_ms".into(), &decode_ms.into());
        let _ = js_sys::Reflect::set(&t, &"total_ms".into(), &total.into());
        let _ = js_sys::Reflect::set(&window(), &"eprofTimings".into(), &t);
        if let Some(b) = document().body() {
            let _ = b.set_attribute("data-loaded", &loaded.to_string());
        }
    }
}

/// What every part of the page shares: the open traces, which one is shown, the
/// selected token (a step index; `None` is the whole run), errors.
#[derive(Clone, Copy)]
pub(crate) struct Ctx {
    pub traces: RwSignal<Vec<Arc<TraceView>>>,
    pub active: RwSignal<usize>,
    pub step: RwSignal<Option<u32>>,
    /// The heatmap's metric (`energy`, `time`, `probe/metric`); `None` is the
    /// trace's default.
    pub metric: RwSignal<Option<String>>,
    pub errors: RwSignal<Vec<String>>,
}

impl Ctx {
    /// Decode and add traces; errors are shown, never swallowed.
    pub fn add(&self, files: Vec<(String, Vec<u8>)>, started: f64) {
        let t0 = now_ms();
        let mut added = Vec::new();
        let mut errors = Vec::new();
        for (name, bytes) in files {
            match eprof_format::decode(&bytes) {
                Ok(d) => added.push(Arc::new(TraceView::new(name, d))),
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        let decode_ms = now_ms() - t0;
        self.errors.set(errors);
        if added.is_empty() {
            return;
        }
        let first = self.traces.with_untracked(Vec::len);
        self.step.set(None);
        self.metric.set(None);
        self.traces.update(|t| t.extend(added));
        self.active.set(first);
        mark_rendered(started, decode_ms, self.traces.with_untracked(Vec::len));
    }
}

async fn read_file(file: web_sys::File) -> Result<(String, Vec<u8>), String> {
    let name = file.name();
    let buf = JsFuture::from(file.array_buffer())
        .await
        .map_err(|e| format!("{name}: cannot read the file ({e:?})"))?;
    Ok((name, js_sys::Uint8Array::new(&buf).to_vec()))
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

/// GET `url` (with `Authorization: Bearer` when a token is given): the last part of
/// its path, and its bytes.
pub(crate) async fn fetch_bytes(
    url: String,
    token: Option<String>,
) -> Result<(String, Vec<u8>), String> {
    let init = web_sys::RequestInit::new();
    let req = web_sys::Request::new_with_str_and_init(&url, &init)
        .map_err(|e| format!("{url}: {e:?}"))?;
    if let Some(t) = token {
        let _ = req.headers().set("Authorization", &format!("Bearer {t}"));
    }
    let resp = JsFuture::from(window().fetch_with_request(&req))
        .await
        .map_err(|e| format!("{url}: cannot fetch ({e:?})"))?;
    let resp: web_sys::Response = resp.unchecked_into();
    if !resp.ok() {
        return Err(format!("{url}: the server answered {}", resp.status()));
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(|e| format!("{url}: {e:?}"))?)
        .await
        .map_err(|e| format!("{url}: cannot read the body ({e:?})"))?;
    let name = url.rsplit('/').next().unwrap_or(&url).to_string();
    Ok((name, js_sys::Uint8Array::new(&buf).to_vec()))
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
                embedded.push((name, js_sys::Uint8Array::new(&bytes).to_vec()));
            }
        }
    }
    if !embedded.is_empty() {
        ctx.add(embedded, started);
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
        ctx.add(ok, started);
        if !errors.is_empty() {
            ctx.errors.update(|e| e.extend(errors));
        }
    });
}

/// The `data-*` attribute of the nearest element under the event target that has it.
pub(crate) fn data_of(ev: &web_sys::Event, attr: &str) -> Option<String> {
    let el: web_sys::Element = ev.target()?.dyn_into().ok()?;
    let hit = el.closest(&format!("[data-{attr}]")).ok()??;
    hit.get_attribute(&format!("data-{attr}"))
}

#[component]
fn App() -> impl IntoView {
    let ctx = Ctx {
        traces: RwSignal::new(Vec::new()),
        active: RwSignal::new(0),
        step: RwSignal::new(None),
        metric: RwSignal::new(None),
        errors: RwSignal::new(Vec::new()),
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
                    ctx.traces.set(Vec::new());
                    ctx.active.set(0);
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
