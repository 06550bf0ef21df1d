//! eprof-viewer: opens `.eprof` traces in the browser, offline.
//!
//! `data` indexes a decoded trace for the views, `live` holds a run's state while its
//! events arrive from `eprof serve`, and `charts` draws every chart as one SVG/HTML
//! string; all three are plain Rust, tested natively. The Leptos app (wasm32 only):
//! `app` is the shell (loading, the open traces, Compare), `views` one component per
//! section of a trace's views, `server` the live dashboard and history that appear
//! when `eprof serve` serves the page, `worker` the same module in a Web Worker that
//! decodes traces and draws what needs their spans, `remote` the page's side of it.

#![cfg_attr(not(target_arch = "wasm32"), forbid(unsafe_code))]

pub mod charts;
pub mod data;
pub mod live;
pub mod search;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod ctx;
#[cfg(target_arch = "wasm32")]
mod remote;
#[cfg(target_arch = "wasm32")]
mod server;
// Natively only its fragment parsing is used (by its tests).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod state;
#[cfg(target_arch = "wasm32")]
mod views;
#[cfg(target_arch = "wasm32")]
pub mod worker;
#[cfg(target_arch = "wasm32")]
mod zoom;
