//! The page's side of the server: the URL fragment (deep links, the token), API
//! calls, fetching runs into the views.

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::ctx::{Ctx, fetch_bytes, now_ms};
use crate::state::{ViewState, hash_param};

/// Whether this page is served by `eprof serve`.
pub fn is_server() -> bool {
    js_sys::Reflect::get(&window(), &"eprofServer".into()).is_ok_and(|v| v.is_object())
}

/// The server's token, when the URL carries one (`#auth=TOKEN`, as `eprof serve`
/// prints it when it needs one).
pub(super) fn auth() -> Option<String> {
    hash_param("auth").filter(|t| !t.is_empty())
}

/// One API call: (status, body as JSON, or the text when it is not JSON).
pub(super) async fn api(
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<(u16, Value), String> {
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
pub(super) fn error_text(v: &Value) -> String {
    match (v["error"].as_str(), v["hint"].as_str()) {
        (Some(e), Some(h)) => format!("{e} ({h})"),
        (Some(e), None) => e.to_string(),
        _ => v.to_string(),
    }
}

/// A run's trace from the server, named `ID.eprof`.
pub(super) async fn fetch_run(id: &str) -> Result<(String, js_sys::Uint8Array), String> {
    let (_, bytes) = fetch_bytes(format!("/api/profiling/run/{id}"), auth()).await?;
    Ok((format!("{id}.eprof"), bytes))
}

/// Open runs from the server in the views (replacing what is open), then select a
/// token.
pub fn open_runs(ctx: Ctx, ids: Vec<String>, token: Option<u32>) {
    open_runs_at(
        ctx,
        ids,
        ViewState {
            token,
            ..ViewState::default()
        },
    );
}

/// [`open_runs`], with the selection of a link.
pub(super) fn open_runs_at(ctx: Ctx, ids: Vec<String>, state: ViewState) {
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
        ctx.add_then(ok, started, state);
        if !errors.is_empty() {
            ctx.errors.update(|e| e.extend(errors));
        }
    });
}
