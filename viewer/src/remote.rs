//! The page's side of the worker (`crate::worker`): `window.eprofWorker`, started by
//! `shell.html` with the same module, as async functions. Without a worker (a browser
//! that refuses one) the page decodes on its own thread, as before.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

fn api() -> Option<JsValue> {
    let w = js_sys::Reflect::get(&js_sys::global(), &"eprofWorker".into()).ok()?;
    (!w.is_undefined() && !w.is_null()).then_some(w)
}

fn method(api: &JsValue, name: &str) -> Result<js_sys::Function, String> {
    js_sys::Reflect::get(api, &name.into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or_else(|| format!("the viewer's worker has no {name}"))
}

fn text(e: JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Whether the worker started (awaits its start).
pub async fn ready() -> bool {
    let Some(api) = api() else { return false };
    let Ok(p) = js_sys::Reflect::get(&api, &"ready".into()) else {
        return false;
    };
    let Ok(p) = p.dyn_into::<js_sys::Promise>() else {
        return false;
    };
    JsFuture::from(p)
        .await
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// A trace opened in the worker.
pub struct Opened {
    pub id: u32,
    pub snapshot: Vec<u8>,
    /// The worker's time: decoding and deriving the figures, and decoding alone.
    pub decode_ms: f64,
    pub read_ms: f64,
}

/// Hand `bytes` (their buffer moves to the worker) to the worker to decode;
/// `progress` gets the fraction read.
pub async fn open(
    name: &str,
    bytes: js_sys::Uint8Array,
    progress: impl FnMut(f64) + 'static,
) -> Result<Opened, String> {
    let api = api().ok_or("the viewer's worker is not running")?;
    let cb = Closure::<dyn FnMut(f64)>::new(progress);
    let p = method(&api, "open")?
        .call3(&api, &name.into(), &bytes, cb.as_ref().unchecked_ref())
        .map_err(text)?;
    let r = JsFuture::from(js_sys::Promise::from(p))
        .await
        .map_err(text)?;
    drop(cb);
    let get = |k: &str| js_sys::Reflect::get(&r, &k.into()).unwrap_or(JsValue::UNDEFINED);
    let id = get("id")
        .as_f64()
        .ok_or("the worker answered without an id")? as u32;
    let snapshot = js_sys::Uint8Array::new(&get("snapshot")).to_vec();
    Ok(Opened {
        id,
        snapshot,
        decode_ms: get("decode_ms").as_f64().unwrap_or(0.0),
        read_ms: get("read_ms").as_f64().unwrap_or(0.0),
    })
}

/// Ask the worker to draw a chart of trace `id` (a `charts::SpanChart` as JSON); its answer
/// is a chart's HTML.
pub async fn query(id: u32, query: String) -> Result<String, String> {
    let api = api().ok_or("the viewer's worker is not running")?;
    let p = method(&api, "query")?
        .call2(&api, &id.into(), &query.into())
        .map_err(text)?;
    let r = JsFuture::from(js_sys::Promise::from(p))
        .await
        .map_err(text)?;
    r.as_string()
        .ok_or_else(|| "the worker's answer is not text".into())
}

/// Let the worker forget trace `id`.
pub fn close(id: u32) {
    if let Some(api) = api()
        && let Ok(f) = method(&api, "close")
    {
        let _ = f.call1(&api, &id.into());
    }
}
