//! The viewer's Web Worker side: the same module, started by the page in a worker
//! (`shell.html`), decodes traces and keeps each whole [`TraceView`]; the page gets a
//! [`crate::data::Snapshot`] and asks here for what needs the spans (the heatmap and
//! the drilldown of one step or of the whole run).
//!
//! Each function runs to completion in the worker; the page's thread never waits for
//! one, so it answers input while a trace loads.

use std::cell::RefCell;
use std::collections::HashMap;

use wasm_bindgen::prelude::*;

use crate::charts;
use crate::data::TraceView;

thread_local! {
    static OPEN: RefCell<(u32, HashMap<u32, TraceView>)> = RefCell::new((0, HashMap::new()));
}

/// `performance.now()` of whichever global this runs in (the page or the worker).
pub(crate) fn now_ms() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &"now".into()).ok()?;
            let f: js_sys::Function = now.dyn_into().ok()?;
            f.call0(&p).ok()?.as_f64()
        })
        .unwrap_or(0.0)
}

/// Decode `bytes` and keep the view; returns `{id, snapshot, decode_ms, read_ms}`
/// (all of it, and the reader's part) or throws the
/// reader's error. `progress(fraction)` is called as chunks are read (at most every
/// 1%), then with 1 before the figures are derived.
#[wasm_bindgen]
pub fn worker_open(
    name: String,
    bytes: js_sys::Uint8Array,
    progress: &js_sys::Function,
) -> Result<JsValue, JsValue> {
    let t0 = now_ms();
    let data = bytes.to_vec();
    drop(bytes);
    let total = data.len().max(1);
    let mut next = 0.0;
    let mut report = |done: usize| {
        let f = done as f64 / total as f64;
        if f >= next {
            next = f + 0.01;
            let _ = progress.call1(&JsValue::NULL, &JsValue::from_f64(f));
        }
    };
    let decoded = eprof_format::decode_with_progress(&data, &mut report)
        .map_err(|e| JsValue::from_str(&e.to_string()))?;
    drop(data);
    let _ = progress.call1(&JsValue::NULL, &JsValue::from_f64(1.0));
    let read_ms = now_ms() - t0;
    let view = TraceView::new(name, decoded);
    let snapshot = view.snapshot();
    let decode_ms = now_ms() - t0;
    let id = OPEN.with_borrow_mut(|(next_id, open)| {
        *next_id += 1;
        open.insert(*next_id, view);
        *next_id
    });
    let out = js_sys::Object::new();
    js_sys::Reflect::set(&out, &"id".into(), &id.into())?;
    js_sys::Reflect::set(
        &out,
        &"snapshot".into(),
        &js_sys::Uint8Array::from(snapshot.as_slice()),
    )?;
    js_sys::Reflect::set(&out, &"decode_ms".into(), &decode_ms.into())?;
    js_sys::Reflect::set(&out, &"read_ms".into(), &read_ms.into())?;
    Ok(out.into())
}

/// Draw a chart of trace `id` (a [`charts::SpanChart`] as JSON): its HTML.
#[wasm_bindgen]
pub fn worker_query(id: u32, query: &str) -> Result<String, JsValue> {
    let chart: charts::SpanChart =
        serde_json::from_str(query).map_err(|e| JsValue::from_str(&format!("bad query: {e}")))?;
    OPEN.with_borrow(|(_, open)| {
        let v = open.get(&id).ok_or_else(|| {
            JsValue::from_str(
                "this trace is no longer held by the viewer's worker (it was restarted after a failure): open the file again",
            )
        })?;
        Ok(chart.draw(v))
    })
}

/// Forget trace `id` (the page closed it).
#[wasm_bindgen]
pub fn worker_close(id: u32) {
    OPEN.with_borrow_mut(|(_, open)| open.remove(&id));
}

/// Bytes of this worker's wasm memory (the benchmark's peak memory).
#[wasm_bindgen]
pub fn worker_memory_bytes() -> f64 {
    memory_bytes()
}

/// Bytes of this module instance's wasm memory (it only grows, so this is its peak).
pub(crate) fn memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .map_or(0.0, |m| {
            m.buffer()
                .dyn_into::<js_sys::ArrayBuffer>()
                .map_or(0.0, |b| f64::from(b.byte_length()))
        })
}
