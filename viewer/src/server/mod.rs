//! What the page adds when `eprof serve` serves it (the server marks the page with
//! `window.eprofServer`): start and stop profiled runs, watch them live, browse the
//! run history, deep links. The offline single file never shows any of it.
//!
//! Live events are queued as they arrive and applied once per animation frame, then
//! the live views redraw once: never one DOM update per event.

use std::sync::{Arc, Mutex};

use eprof_format::live::RunEvent;
use eprof_format::sync::lock;
use leptos::prelude::*;
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use crate::ctx::{Ctx, now_ms};
use crate::state::{ViewState, hash_param, set_hash};

mod client;
mod controls;
mod history;
mod inbox;
mod live_view;

use client::*;
pub use client::{is_server, open_runs};
use controls::Controls;
use history::History;
use inbox::*;
use live_view::LiveView;

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
        if !ids.is_empty() {
            open_runs_at(ctx, ids, ViewState::from_url());
        }
    }
    // And the URL follows what is open.
    Effect::new(move |_| {
        let ids: Vec<String> = ctx.traces.with(|t| {
            t.iter()
                .map(|v| v.name.trim_end_matches(".eprof").to_string())
                .collect()
        });
        set_hash(&ids, &ctx.view_state());
    });

    view! {
        <Controls inbox=Arc::clone(&inbox) live=live/>
        <LiveView inbox=inbox live=live/>
        <History finished=live.finished/>
    }
}
