//! What the page adds when `eprof serve` serves it (the server marks the page with
//! `window.eprofServer`): start and stop profiled runs, watch them live, browse the
//! run history, deep links. The offline single file never shows any of it.
//!
//! Live events are queued as they arrive and applied once per animation frame, then
//! the live views redraw once: never one DOM update per event.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use eprof_format::live::RunEvent;
use eprof_format::sync::lock;
use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::{Value, json};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::charts::{self, ColourScale, esc};
use crate::ctx::{Ctx, data_of, fetch_bytes, now_ms};
use crate::data::fmt_joules;
use crate::live::LiveRun;

/// Whether this page is served by `eprof serve`.
pub fn is_server() -> bool {
    js_sys::Reflect::get(&window(), &"eprofServer".into()).is_ok_and(|v| v.is_object())
}

/// `key=value` pairs of the URL's fragment (`#run=ID&token=12&auth=...`).
fn hash_params() -> Vec<(String, String)> {
    let h = window().location().hash().unwrap_or_default();
    h.trim_start_matches('#')
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = js_sys::decode_uri_component(v)
                .ok()
                .and_then(|s| s.as_string())
                .unwrap_or_else(|| v.to_string());
            (k.to_string(), v)
        })
        .collect()
}

fn hash_param(key: &str) -> Option<String> {
    hash_params()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// The server's token, when the URL carries one (`#auth=TOKEN`, as `eprof serve`
/// prints it when it needs one).
fn auth() -> Option<String> {
    hash_param("auth").filter(|t| !t.is_empty())
}

/// Rewrite the fragment (without a history entry or a scroll).
pub fn set_hash(runs: &[String], token: Option<u32>, metric: Option<&str>) {
    let mut parts = Vec::new();
    if !runs.is_empty() {
        parts.push(format!("run={}", runs.join(",")));
    }
    if let Some(t) = token {
        parts.push(format!("token={t}"));
    }
    if let Some(m) = metric {
        parts.push(format!(
            "metric={}",
            js_sys::encode_uri_component(m)
                .as_string()
                .unwrap_or_default()
        ));
    }
    if let Some(a) = auth() {
        parts.push(format!("auth={a}"));
    }
    let url = format!(
        "{}{}#{}",
        window().location().pathname().unwrap_or_default(),
        window().location().search().unwrap_or_default(),
        parts.join("&")
    );
    if let Ok(h) = window().history() {
        let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&url));
    }
}

/// One API call: (status, body as JSON, or the text when it is not JSON).
async fn api(method: &str, path: &str, body: Option<String>) -> Result<(u16, Value), String> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(b) = &body {
        init.set_body(&JsValue::from_str(b));
    }
    let req = web_sys::Request::new_with_str_and_init(path, &init)
        .map_err(|e| format!("{path}: {e:?}"))?;
    let h = req.headers();
    if body.is_some() {
        let _ = h.set("Content-Type", "application/json");
    }
    if let Some(t) = auth() {
        let _ = h.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = JsFuture::from(window().fetch_with_request(&req))
        .await
        .map_err(|e| format!("{path}: cannot reach the server ({e:?})"))?;
    let resp: web_sys::Response = resp.unchecked_into();
    let text = JsFuture::from(resp.text().map_err(|e| format!("{e:?}"))?)
        .await
        .ok()
        .and_then(|t| t.as_string())
        .unwrap_or_default();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((resp.status(), v))
}

/// The message of an error answer.
fn error_text(v: &Value) -> String {
    match (v["error"].as_str(), v["hint"].as_str()) {
        (Some(e), Some(h)) => format!("{e} ({h})"),
        (Some(e), None) => e.to_string(),
        _ => v.to_string(),
    }
}

/// A run's trace from the server, named `ID.eprof`.
async fn fetch_run(id: &str) -> Result<(String, js_sys::Uint8Array), String> {
    let (_, bytes) = fetch_bytes(format!("/api/profiling/run/{id}"), auth()).await?;
    Ok((format!("{id}.eprof"), bytes))
}

/// Open runs from the server in the views (replacing what is open), then select a
/// token.
pub fn open_runs(ctx: Ctx, ids: Vec<String>, token: Option<u32>) {
    open_runs_at(ctx, ids, token, None);
}

/// [`open_runs`], and show a heatmap metric.
fn open_runs_at(ctx: Ctx, ids: Vec<String>, token: Option<u32>, metric: Option<String>) {
    let started = now_ms();
    spawn_local(async move {
        let mut ok = Vec::new();
        let mut errors = Vec::new();
        for id in &ids {
            match fetch_run(id).await {
                Ok(x) => ok.push(x),
                Err(e) => errors.push(e),
            }
        }
        ctx.clear_traces();
        ctx.add_then(ok, started, token, metric);
        if !errors.is_empty() {
            ctx.errors.update(|e| e.extend(errors));
        }
    });
}

/// The inbox, shared by the socket's callback, the frame callback and the views (the
/// page is single-threaded; the lock is never contended).
type Shared = Arc<Mutex<Inbox>>;

/// Messages waiting for the next frame, and the live state they build.
#[derive(Default)]
struct Inbox {
    queue: Vec<String>,
    scheduled: bool,
    run: LiveRun,
    /// Per-frame work (parse, apply, redraw), for the page's benchmark.
    handle_ms: f64,
    /// The part of it spent parsing and applying events (the rest is redrawing).
    apply_ms: f64,
    frames: u32,
    events: u32,
    /// When the heatmap was last redrawn, and whether newer sites wait for it.
    heat_drawn_ms: f64,
    heat_pending: bool,
}

/// The heatmap (hundreds of cells) redraws at most this often; it still takes in
/// every token, the text and the figures update every frame.
const HEATMAP_EVERY_MS: f64 = 200.0;

/// What changed in a frame, so each live view redraws only when its data did.
#[derive(Clone, Copy)]
struct Live {
    /// Any event (figures, the current operation).
    version: RwSignal<u64>,
    /// Tokens (the streamed text).
    tokens: RwSignal<u64>,
    /// Layers and components (the heatmap).
    sites: RwSignal<u64>,
    /// Power readings and phases (the power chart).
    power: RwSignal<u64>,
    queue_text: RwSignal<String>,
    dropped: RwSignal<u64>,
    /// A run finished: the history reloads.
    finished: RwSignal<u64>,
}

/// Publish the benchmark figures as `window.eprofLive`.
fn report(inbox: &Inbox) {
    let o = js_sys::Object::new();
    let set = |k: &str, v: f64| {
        let _ = js_sys::Reflect::set(&o, &k.into(), &v.into());
    };
    set("handle_ms", inbox.handle_ms);
    set("apply_ms", inbox.apply_ms);
    set("frames", f64::from(inbox.frames));
    set("events", f64::from(inbox.events));
    set("tokens", inbox.run.tokens.len() as f64);
    let _ = js_sys::Reflect::set(&window(), &"eprofLive".into(), &o);
}

/// Apply everything queued, once per frame.
fn frame(inbox: Shared, live: Live, ctx: Ctx) {
    let t0 = now_ms();
    let msgs = std::mem::take(&mut lock(&inbox).queue);
    let mut finished: Option<String> = None;
    let (mut tokens, mut sites, mut power) = (false, false, false);
    {
        let mut ib = lock(&inbox);
        ib.scheduled = false;
        for m in &msgs {
            // The live views do not draw operations: skip parsing them (the largest
            // message of a deep step after the components).
            if m.starts_with(r#"{"type":"operation_metrics""#) {
                ib.events += 1;
                continue;
            }
            match serde_json::from_str::<RunEvent>(m) {
                Ok(e) => {
                    match &e {
                        RunEvent::InferenceComplete { run_id, .. } => {
                            finished = Some(run_id.clone());
                        }
                        RunEvent::TokenComplete { .. } => tokens = true,
                        RunEvent::LayerMetrics { .. } | RunEvent::ComponentMetrics { .. } => {
                            sites = true;
                        }
                        // The power chart changes with readings and phase bands, not
                        // with the sections inside each step.
                        RunEvent::PowerSample { .. } | RunEvent::SectionStart { .. } => {
                            power = true;
                        }
                        RunEvent::SectionEnd { phase, name, .. } if name == phase.as_str() => {
                            power = true;
                        }
                        RunEvent::RunStarted(_) => (tokens, sites, power) = (true, true, true),
                        _ => {}
                    }
                    ib.run.apply(&e);
                    ib.events += 1;
                }
                // Messages of the server, not of a run.
                Err(_) => {
                    let v: Value = serde_json::from_str(m).unwrap_or_default();
                    match v["type"].as_str() {
                        Some("queue") => {
                            let q = v["queued"].as_array().map_or(0, Vec::len);
                            live.queue_text.set(match v["running"].as_str() {
                                Some(r) => format!("running {r}; {q} queued"),
                                None => format!("idle; {q} queued"),
                            });
                        }
                        Some("dropped") => live
                            .dropped
                            .update(|d| *d += v["power_samples"].as_u64().unwrap_or(0)),
                        _ => {}
                    }
                }
            }
        }
    }
    {
        let mut ib = lock(&inbox);
        ib.apply_ms += now_ms() - t0;
        if sites || ib.heat_pending {
            let due = t0 - ib.heat_drawn_ms >= HEATMAP_EVERY_MS || finished.is_some();
            ib.heat_pending = !due;
            sites = due;
            if due {
                ib.heat_drawn_ms = t0;
            }
        }
    }
    live.version.update(|v| *v += 1);
    for (changed, sig) in [
        (tokens, live.tokens),
        (sites, live.sites),
        (power, live.power),
    ] {
        if changed {
            sig.update(|v| *v += 1);
        }
    }
    if let Some(id) = finished {
        live.finished.update(|v| *v += 1);
        open_runs(ctx, vec![id], None);
    }
    // Leptos redraws in a microtask queued by the update above; this one runs after
    // it, so the time counted includes the DOM work.
    let done = Closure::once_into_js(move || {
        let mut ib = lock(&inbox);
        ib.handle_ms += now_ms() - t0;
        ib.frames += 1;
        report(&ib);
    });
    window().queue_microtask(done.unchecked_ref());
}

fn connect(inbox: Shared, live: Live, ctx: Ctx) {
    let loc = window().location();
    let scheme = if loc.protocol().unwrap_or_default() == "https:" {
        "wss"
    } else {
        "ws"
    };
    let mut url = format!("{scheme}://{}/ws/profiling", loc.host().unwrap_or_default());
    if let Some(t) = auth() {
        url.push_str(&format!("?token={t}"));
    }
    let ws = match web_sys::WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(e) => {
            ctx.errors
                .update(|v| v.push(format!("live events: cannot connect ({e:?})")));
            return;
        }
    };
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |ev: web_sys::MessageEvent| {
            let Some(text) = ev.data().as_string() else {
                return;
            };
            let schedule = {
                let mut ib = lock(&inbox);
                ib.queue.push(text);
                !std::mem::replace(&mut ib.scheduled, true)
            };
            if schedule {
                let inbox = Arc::clone(&inbox);
                let cb = Closure::once_into_js(move || frame(inbox, live, ctx));
                let _ = window().request_animation_frame(cb.unchecked_ref());
            }
        });
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let on_close = Closure::<dyn FnMut()>::new(move || {
        live.queue_text
            .set("the event stream closed: reload the page to reconnect".into());
    });
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    on_close.forget();
}

/// The live dashboard and the run history.
#[component]
pub fn ServerPanel() -> impl IntoView {
    let ctx: Ctx = expect_context();
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let live = Live {
        version: RwSignal::new(0),
        tokens: RwSignal::new(0),
        sites: RwSignal::new(0),
        power: RwSignal::new(0),
        queue_text: RwSignal::new(String::new()),
        dropped: RwSignal::new(0),
        finished: RwSignal::new(0),
    };
    connect(Arc::clone(&inbox), live, ctx);

    // A deep link opens its runs and token.
    if let Some(runs) = hash_param("run") {
        let ids: Vec<String> = runs
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let token = hash_param("token").and_then(|t| t.parse().ok());
        if !ids.is_empty() {
            open_runs_at(ctx, ids, token, hash_param("metric"));
        }
    }
    // And the URL follows what is open.
    Effect::new(move |_| {
        let ids: Vec<String> = ctx.traces.with(|t| {
            t.iter()
                .map(|v| v.name.trim_end_matches(".eprof").to_string())
                .collect()
        });
        ctx.metric
            .with(|m| set_hash(&ids, ctx.step.get(), m.as_deref()));
    });

    view! {
        <Controls inbox=Arc::clone(&inbox) live=live/>
        <LiveView inbox=inbox live=live/>
        <History finished=live.finished/>
    }
}

/// What the panel says of run `id` once the live stream has it: running, or how it
/// ended; `None` before its `run_started`.
fn run_status(inbox: &Shared, id: &str) -> Option<String> {
    let ib = lock(inbox);
    if ib.run.run_id != id {
        return None;
    }
    Some(match ib.run.finished {
        Some(r) => format!("run {id} finished: {}", r.as_str()),
        None => format!("run {id} running"),
    })
}

#[component]
fn Controls(inbox: Shared, live: Live) -> impl IntoView {
    let prompt = RwSignal::new("Give me three tips for staying healthy.".to_string());
    let model = RwSignal::new(String::new());
    let depth = RwSignal::new("module".to_string());
    let max_tokens = RwSignal::new("64".to_string());
    let temperature = RwSignal::new("0".to_string());
    let top_k = RwSignal::new(String::new());
    let top_p = RwSignal::new(String::new());
    let seed = RwSignal::new("299792458".to_string());
    let power = RwSignal::new("auto".to_string());
    let tags = RwSignal::new(String::new());
    let experiment = RwSignal::new(String::new());
    let status = RwSignal::new(String::new());
    // The run this panel started: its status follows the run's events (running,
    // then how it ended), not only the answer to the POST.
    let posted = RwSignal::new(String::new());
    {
        let inbox = Arc::clone(&inbox);
        Effect::new(move |_| {
            live.version.track();
            live.finished.track();
            let id = posted.get_untracked();
            if id.is_empty() {
                return;
            }
            // Not started yet: it waits in the queue, as the POST's answer said.
            let Some(text) = run_status(&inbox, &id) else {
                return;
            };
            if status.get_untracked() != text {
                status.set(text);
            }
        });
    }
    let models: RwSignal<Vec<(String, bool)>> = RwSignal::new(Vec::new());
    let sources: RwSignal<Vec<(String, bool, String)>> = RwSignal::new(Vec::new());
    spawn_local(async move {
        if let Ok((200, v)) = api("GET", "/api/models", None).await {
            let list: Vec<(String, bool)> = v["models"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| {
                    (
                        m["id"].as_str().unwrap_or_default().to_string(),
                        m["default"].as_bool().unwrap_or(false),
                    )
                })
                .collect();
            if let Some((id, _)) = list.iter().find(|m| m.1).or(list.first()) {
                model.set(id.clone());
            }
            models.set(list);
        }
        if let Ok((200, v)) = api("GET", "/api/power", None).await {
            sources.set(
                v["sources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        (
                            s["name"].as_str().unwrap_or_default().to_string(),
                            s["available"].as_bool().unwrap_or(false),
                            s["detail"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
            );
        }
    });
    let inbox_start = Arc::clone(&inbox);
    let start = move |_| {
        let inbox_start = Arc::clone(&inbox_start);
        let num = |s: &str| s.trim().parse::<f64>().ok();
        let mut body = json!({
            "prompt": prompt.get_untracked(),
            "depth": depth.get_untracked(),
            "max_tokens": num(&max_tokens.get_untracked()).unwrap_or(64.0) as u64,
            "temperature": num(&temperature.get_untracked()).unwrap_or(0.0),
            "seed": num(&seed.get_untracked()).unwrap_or(299_792_458.0) as u64,
            "power": power.get_untracked(),
            "tags": tags
                .get_untracked()
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>(),
        });
        let m = model.get_untracked();
        if !m.is_empty() {
            body["model"] = json!(m);
        }
        if let Some(k) = num(&top_k.get_untracked()) {
            body["top_k"] = json!(k as u64);
        }
        if let Some(p) = num(&top_p.get_untracked()) {
            body["top_p"] = json!(p);
        }
        let e = experiment.get_untracked();
        if !e.trim().is_empty() {
            body["experiment"] = json!(e.trim());
        }
        status.set("sending…".into());
        spawn_local(async move {
            status.set(
                match api("POST", "/api/profiling/generate", Some(body.to_string())).await {
                    Ok((202, v)) => {
                        let id = v["id"].as_str().unwrap_or_default();
                        posted.set(id.to_string());
                        // A short run may have ended before this answer came.
                        if let Some(t) = run_status(&inbox_start, id) {
                            return status.set(t);
                        }
                        match v["queue_position"].as_u64() {
                            Some(0) | None => format!("run {id} starting"),
                            Some(n) => format!("run {id} queued: {n} ahead of it"),
                        }
                    }
                    Ok((_, v)) => format!("refused: {}", error_text(&v)),
                    Err(e) => e,
                },
            );
        });
    };
    let stop = move |_| {
        let run = lock(&inbox).run.clone();
        if run.run_id.is_empty() || run.finished.is_some() {
            status.set("no run is running".into());
            return;
        }
        let inbox = Arc::clone(&inbox);
        spawn_local(async move {
            status.set(
                match api(
                    "DELETE",
                    &format!("/api/profiling/run/{}", run.run_id),
                    None,
                )
                .await
                {
                    // The run may have ended (its status set) before this answer.
                    Ok((202, _)) => match run_status(&inbox, &run.run_id) {
                        Some(t) if t.contains(" finished: ") => t,
                        _ => format!("stopping run {}…", run.run_id),
                    },
                    Ok((_, v)) => format!("stop refused: {}", error_text(&v)),
                    Err(e) => e,
                },
            );
        });
    };
    let text_input = |id: &'static str, label: &'static str, sig: RwSignal<String>, size: u32| {
        view! {
            <label>
                {label}
                " "
                <input
                    id=id
                    size=size.to_string()
                    prop:value=move || sig.get()
                    on:input=move |ev| sig.set(event_target_value(&ev))
                />
            </label>
        }
    };
    view! {
        <section id="live-controls">
            <h2>"Profile a prompt"</h2>
            <textarea
                id="live-prompt"
                rows="3"
                cols="80"
                prop:value=move || prompt.get()
                on:input=move |ev| prompt.set(event_target_value(&ev))
            ></textarea>
            <div class="controls">
                <label>
                    "Model "
                    <select id="live-model" prop:value=move || model.get() on:change=move |ev| model.set(event_target_value(&ev))>
                        {move || {
                            models
                                .get()
                                .into_iter()
                                .map(|(id, _)| view! { <option value=id.clone()>{id.clone()}</option> })
                                .collect_view()
                        }}
                    </select>
                </label>
                <label>
                    "Depth "
                    <select id="live-depth" prop:value=move || depth.get() on:change=move |ev| depth.set(event_target_value(&ev))>
                        <option value="off">"off"</option>
                        <option value="module">"module"</option>
                        <option value="deep">"deep"</option>
                    </select>
                </label>
                <label>
                    "Power "
                    <select id="live-power" prop:value=move || power.get() on:change=move |ev| power.set(event_target_value(&ev))>
                        <option value="auto">"auto"</option>
                        {move || {
                            sources
                                .get()
                                .into_iter()
                                .map(|(name, ok, detail)| {
                                    let label = if ok { name.clone() } else { format!("{name} (unavailable)") };
                                    view! { <option value=name.clone() disabled=!ok title=detail>{label}</option> }
                                })
                                .collect_view()
                        }}
                    </select>
                </label>
                {text_input("live-max-tokens", "Max tokens", max_tokens, 5)}
                {text_input("live-temperature", "Temperature", temperature, 4)}
                {text_input("live-top-k", "Top-k", top_k, 4)}
                {text_input("live-top-p", "Top-p", top_p, 4)}
                {text_input("live-seed", "Seed", seed, 10)}
                {text_input("live-tags", "Tags", tags, 12)}
                {text_input("live-experiment", "Experiment", experiment, 12)}
            </div>
            <div class="controls">
                <button id="live-start" on:click=start>"Start"</button>
                <button id="live-stop" on:click=stop>"Stop"</button>
                <span id="live-status" aria-live="polite">{move || status.get()}</span>
                <span id="live-queue" class="hint">{move || live.queue_text.get()}</span>
                <span id="live-dropped" class="hint">
                    {move || {
                        let d = live.dropped.get();
                        (d > 0).then(|| format!("{d} power samples dropped (this page fell behind)"))
                    }}
                </span>
            </div>
        </section>
    }
}

#[component]
fn LiveView(inbox: Shared, live: Live) -> impl IntoView {
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
        charts::power_chart("live", &r.band_spans(), r.power().as_ref(), None)
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
                zero_based: m == "time" || m == "energy",
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

const PAGE: u64 = 20;

#[component]
fn History(finished: RwSignal<u64>) -> impl IntoView {
    let ctx: Ctx = expect_context();
    let model = RwSignal::new(String::new());
    let tag = RwSignal::new(String::new());
    let experiment = RwSignal::new(String::new());
    let prompt = RwSignal::new(String::new());
    let sort = RwSignal::new("created".to_string());
    let offset = RwSignal::new(0u64);
    let reload = RwSignal::new(0u64);
    let rows: RwSignal<Vec<Value>> = RwSignal::new(Vec::new());
    let total = RwSignal::new(0u64);
    let selected: RwSignal<BTreeSet<String>> = RwSignal::new(BTreeSet::new());
    let message = RwSignal::new(String::new());
    Effect::new(move |_| {
        finished.track();
        reload.track();
        let mut q = vec![
            format!("sort={}", sort.get()),
            format!("limit={PAGE}"),
            format!("offset={}", offset.get()),
        ];
        for (k, s) in [
            ("model", model),
            ("tag", tag),
            ("experiment", experiment),
            ("prompt", prompt),
        ] {
            let v = s.get();
            if !v.trim().is_empty() {
                q.push(format!(
                    "{k}={}",
                    js_sys::encode_uri_component(v.trim())
                        .as_string()
                        .unwrap_or_default()
                ));
            }
        }
        let path = format!("/api/profiling/runs?{}", q.join("&"));
        spawn_local(async move {
            match api("GET", &path, None).await {
                Ok((200, v)) => {
                    total.set(v["total"].as_u64().unwrap_or(0));
                    rows.set(v["runs"].as_array().cloned().unwrap_or_default());
                }
                Ok((_, v)) => message.set(error_text(&v)),
                Err(e) => message.set(e),
            }
        });
    });
    let table = move || {
        let sel = selected.get();
        let mut o = String::from(
            "<table class=\"history\"><thead><tr><th></th><th>created</th><th>prompt</th><th>model</th><th>machine</th><th>tokens</th><th>energy</th><th>J/token</th><th>how obtained</th><th>stop</th><th></th></tr></thead><tbody>",
        );
        for r in rows.get() {
            let id = r["id"].as_str().unwrap_or_default().to_string();
            let e = esc(&id);
            let tokens = r["generated_tokens"].as_u64().unwrap_or(0);
            let energy = r["total_j"].as_f64().map_or_else(|| "-".into(), fmt_joules);
            let jpt = r["decode_j_per_token"]
                .as_f64()
                .map_or_else(|| "-".into(), fmt_joules);
            let created = r["created_at_ms"].as_f64().map_or(String::new(), |ms| {
                js_sys::Date::new(&JsValue::from_f64(ms))
                    .to_iso_string()
                    .as_string()
                    .unwrap_or_default()
                    .replace('T', " ")[..16]
                    .to_string()
            });
            // A link cannot send the Authorization header: on a server with a token
            // the query carries it (the server takes `?token=` on every guarded path).
            let auth_q = auth()
                .map(|t| {
                    format!(
                        "&token={}",
                        esc(&js_sys::encode_uri_component(&t)
                            .as_string()
                            .unwrap_or_default())
                    )
                })
                .unwrap_or_default();
            let exports = ["json", "chrome", "eprof", "csv&table=tokens"]
                .iter()
                .map(|f| {
                    let name = f.split('&').next().unwrap_or(f);
                    format!(r#"<a class="hist-export" href="/api/profiling/export/{e}?format={f}{auth_q}" download>{name}</a>"#)
                })
                .collect::<Vec<_>>()
                .join(" ");
            o.push_str(&format!(
                r#"<tr class="hist-row" data-id="{e}"><td><input type="checkbox" class="hist-sel" data-sel="{e}"{checked} aria-label="select {e}"></td><td>{created}</td><td>{prompt}</td><td>{model}</td><td>{host}</td><td>{tokens}</td><td>{energy}</td><td>{jpt}</td><td class="hist-labels">{labels}</td><td class="hist-stop">{stop}</td><td><button class="hist-open" data-open="{e}">open</button> {exports} <button class="hist-del" data-del="{e}">delete</button></td></tr>"#,
                checked = if sel.contains(&id) { " checked" } else { "" },
                prompt = esc(&eprof_format::units::clip(r["prompt"].as_str().unwrap_or_default(), 60)),
                model = esc(r["model"].as_str().unwrap_or_default()),
                host = esc(r["hostname"].as_str().unwrap_or_default()),
                labels = esc(r["label_mix"].as_str().or(r["energy_label"].as_str()).unwrap_or("-")),
                stop = esc(r["stop_reason"].as_str().unwrap_or("-")),
            ));
        }
        o.push_str("</tbody></table>");
        o
    };
    let on_click = move |ev: web_sys::MouseEvent| {
        if let Some(id) = data_of(&ev, "open") {
            open_runs(ctx, vec![id], None);
        } else if let Some(id) = data_of(&ev, "sel") {
            selected.update(|s| {
                if !s.remove(&id) {
                    s.insert(id);
                }
            });
        } else if let Some(id) = data_of(&ev, "del") {
            let ok = window()
                .confirm_with_message(&format!("Delete run {id} and its trace?"))
                .unwrap_or(false);
            if !ok {
                return;
            }
            spawn_local(async move {
                match api("DELETE", &format!("/api/profiling/run/{id}"), None).await {
                    Ok((200 | 202, _)) => {
                        message.set(format!("deleted {id}"));
                        selected.update(|s| {
                            s.remove(&id);
                        });
                        ctx.traces
                            .update(|t| t.retain(|v| v.name != format!("{id}.eprof")));
                        reload.update(|r| *r += 1);
                    }
                    Ok((_, v)) => message.set(error_text(&v)),
                    Err(e) => message.set(e),
                }
            });
        }
    };
    let filter = |id: &'static str, label: &'static str, sig: RwSignal<String>| {
        view! {
            <label>
                {label}
                " "
                <input id=id size="12" prop:value=move || sig.get() on:change=move |ev| { offset.set(0); sig.set(event_target_value(&ev)); }/>
            </label>
        }
    };
    view! {
        <section id="history">
            <h2>"Run history"</h2>
            <div class="controls">
                {filter("hist-model", "Model", model)}
                {filter("hist-tag", "Tag", tag)}
                {filter("hist-experiment", "Experiment", experiment)}
                {filter("hist-prompt", "Prompt", prompt)}
                <label>
                    "Sort "
                    <select id="hist-sort" prop:value=move || sort.get() on:change=move |ev| { offset.set(0); sort.set(event_target_value(&ev)); }>
                        <option value="created">"date"</option>
                        <option value="energy">"energy"</option>
                        <option value="duration">"duration"</option>
                        <option value="j_per_token">"J/token"</option>
                    </select>
                </label>
                <button id="hist-prev" disabled=move || offset.get() == 0 on:click=move |_| offset.update(|o| *o = o.saturating_sub(PAGE))>"‹ newer"</button>
                <button id="hist-next" disabled=move || offset.get() + PAGE >= total.get() on:click=move |_| offset.update(|o| *o += PAGE)>"older ›"</button>
                <span id="hist-total" class="hint">
                    {move || format!("{} runs; showing {}–{}", total.get(), (offset.get() + 1).min(total.get()), (offset.get() + PAGE).min(total.get()))}
                </span>
                <button
                    id="hist-compare"
                    disabled=move || selected.with(|s| s.len() < 2)
                    on:click=move |_| open_runs(ctx, selected.get_untracked().into_iter().collect(), None)
                >
                    "Compare selected"
                </button>
                <span id="hist-message" class="hint">{move || message.get()}</span>
            </div>
            <div id="hist-table" inner_html=table on:click=on_click></div>
        </section>
    }
}
