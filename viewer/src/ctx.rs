//! What every part of the page shares ([`Ctx`]: the open traces, the shown one, the
//! selected token and metric, loads in progress), how traces are added to it, and the
//! small page helpers the shell, the views and the live panel all use.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use wasm_bindgen_futures::JsFuture;

use crate::data::TraceView;
use crate::state::ViewState;

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
    /// The shown stretch of the trace's clock (ns) on the time track and the power
    /// chart; `None` is the whole pipeline.
    pub zoom: RwSignal<Option<(u64, u64)>>,
    /// The selected range (ns on the trace's clock), whose cost the range panel shows.
    pub range: RwSignal<Option<(u64, u64)>>,
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
        self.add_then(files, started, ViewState::default());
    }

    /// The selection, as a link carries it.
    pub fn view_state(&self) -> ViewState {
        ViewState {
            token: self.step.get(),
            metric: self.metric.get(),
            range: self.range.get(),
            zoom: self.zoom.get(),
        }
    }

    /// [`Ctx::add`], then select what `state` says (a link's token, metric, range and
    /// zoom) once the first trace is shown.
    pub fn add_then(
        &self,
        files: Vec<(String, js_sys::Uint8Array)>,
        started: f64,
        state: ViewState,
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
                            ctx.step.set(state.token);
                            ctx.metric.set(state.metric.clone());
                            ctx.zoom.set(state.zoom);
                            ctx.range.set(state.range);
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

/// The `data-*` attribute of the nearest element under the event target that has it.
pub(crate) fn data_of(ev: &web_sys::Event, attr: &str) -> Option<String> {
    let el: web_sys::Element = ev.target()?.dyn_into().ok()?;
    let hit = el.closest(&format!("[data-{attr}]")).ok()??;
    hit.get_attribute(&format!("data-{attr}"))
}
