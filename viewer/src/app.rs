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

pub(crate) use crate::worker::now_ms;

/// Record when a load started and when its views were on screen, for the benchmark
/// (`window.eprofTimings`) and the test's wait (`body[data-loaded]`).
/// `times`: decoding and deriving the figures, and decoding alone (ms).
fn mark_rendered(ctx: Ctx, started: f64, times: [f64; 2], loaded: usize) {
    // After the next frame and the paint that follows it (a task queued from the
    // frame callback runs once the frame is drawn).
    let cb = Closure::once_into_js(move || {
        let after_paint =
            Closure::once_into_js(move || report_rendered(ctx, started, times, loaded));
        let _ = window().set_timeout_with_callback(after_paint.unchecked_ref());
    });
    let _ = window().request_animation_frame(cb.unchecked_ref());
}

fn report_rendered(ctx: Ctx, started: f64, times: [f64; 2], loaded: usize) {
    // Charts drawn by the worker (heatmap, drilldown) still on their way: the last
    // answer reports instead.
    if ctx.busy.get_untracked() > 0 {
        ctx.awaiting.set_value(Some((started, times, loaded)));
        return;
    }
    {
        let total = now_ms() - started;
        let t = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&t, &"decode_ms".into(), &times[0].into());
        let _ = js_sys::Reflect::set(&t, &"read_ms".into(), &times[1].into());
        let _ = js_sys::Reflect::set(&t, &"total_ms".into(), &total.into());
        let _ = js_sys::Reflect::set(&window(), &"eprofTimings".into(), &t);
        if let Some(b) = document().body() {
            let _ = b.set_attribute("data-loaded", &loaded.to_string());
        }
    }
}

/// One trace being read or decoded, for the progress bar.
#[derive(Clone, PartialEq)]
pub(crate) struct Loading {
    pub key: u32,
    pub name: String,
    /// Fraction decoded.
    pub done: f64,
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
    /// Traces being decoded (the progress bars).
    pub loading: RwSignal<Vec<Loading>>,
    /// Chart requests to the worker not answered yet.
    pub busy: RwSignal<usize>,
    /// A load whose "rendered" mark waits for those answers.
    pub awaiting: StoredValue<Option<(f64, [f64; 2], usize)>>,
}

/// The next key of a [`Loading`] entry.
static LOAD_KEY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Ctx {
    /// Decode traces (in the worker when there is one) and add each as it is ready;
    /// errors are shown, never swallowed. The first of them becomes the shown one.
    pub fn add(&self, files: Vec<(String, js_sys::Uint8Array)>, started: f64) {
        self.add_then(files, started, None, None);
    }

    /// [`Ctx::add`], then select a token and a heatmap metric once the first trace
    /// is shown.
    pub fn add_then(
        &self,
        files: Vec<(String, js_sys::Uint8Array)>,
        started: f64,
        step: Option<u32>,
        metric: Option<String>,
    ) {
        let ctx = *self;
        self.errors.set(Vec::new());
        spawn_local(async move {
            let worker = crate::remote::ready().await;
            let mut first = true;
            for (name, bytes) in files {
                let key = LOAD_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                ctx.loading.update(|l| {
                    l.push(Loading {
                        key,
                        name: name.clone(),
                        done: 0.0,
                    })
                });
                let r = if worker {
                    let progress = move |f: f64| {
                        ctx.loading.update(|l| {
                            if let Some(x) = l.iter_mut().find(|x| x.key == key) {
                                x.done = f;
                            }
                        })
                    };
                    crate::remote::open(&name, bytes, progress)
                        .await
                        .and_then(|o| {
                            TraceView::from_snapshot(&o.snapshot, o.id)
                                .map(|v| (v, [o.decode_ms, o.read_ms]))
                        })
                        .map_err(|e| format!("{name}: {e}"))
                } else {
                    let t0 = now_ms();
                    eprof_format::decode(&bytes.to_vec())
                        .map(|d| {
                            let read = now_ms() - t0;
                            (TraceView::new(name.clone(), d), [now_ms() - t0, read])
                        })
                        .map_err(|e| format!("{name}: {e}"))
                };
                // Reading the snapshot and drawing the views are two tasks, not one:
                // neither keeps the page from answering for long.
                next_task().await;
                ctx.loading.update(|l| l.retain(|x| x.key != key));
                match r {
                    Ok((v, times)) => {
                        let at = ctx.traces.with_untracked(Vec::len);
                        ctx.traces.update(|t| t.push(Arc::new(v)));
                        if first {
                            ctx.step.set(step);
                            ctx.metric.set(metric.clone());
                            ctx.active.set(at);
                            first = false;
                        }
                        mark_rendered(ctx, started, times, ctx.traces.with_untracked(Vec::len));
                    }
                    Err(e) => ctx.errors.update(|x| x.push(e)),
                }
            }
        });
    }

    /// Close every trace (the worker forgets them too).
    pub fn clear_traces(&self) {
        for v in self.traces.get_untracked() {
            if let Some(id) = v.remote {
                crate::remote::close(id);
            }
        }
        self.traces.set(Vec::new());
        self.active.set(0);
    }

    /// Run a request to the worker for a chart, counted in `busy` (the load's
    /// "rendered" mark waits for it); errors are shown.
    pub fn request(&self, f: impl Future<Output = Result<(), String>> + 'static) {
        let ctx = *self;
        ctx.busy.update(|b| *b += 1);
        spawn_local(async move {
            if let Err(e) = f.await {
                ctx.errors.update(|x| x.push(e));
            }
            ctx.busy.update(|b| *b = b.saturating_sub(1));
            if ctx.busy.get_untracked() == 0
                && let Some((started, times, loaded)) =
                    ctx.awaiting.try_update_value(Option::take).flatten()
            {
                mark_rendered(ctx, started, times, loaded);
            }
        });
    }
}

/// Let the browser run what waits (input, paint) before going on.
async fn next_task() {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        let _ = window().set_timeout_with_callback(&resolve);
    });
    let _ = JsFuture::from(p).await;
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

/// GET `url` (with `Authorization: Bearer` when a token is given): the last part of
/// its path, and its bytes.
pub(crate) async fn fetch_bytes(
    url: String,
    token: Option<String>,
) -> Result<(String, js_sys::Uint8Array), String> {
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
    Ok((name, js_sys::Uint8Array::new(&buf)))
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
