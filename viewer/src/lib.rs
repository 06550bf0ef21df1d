//! eprof-viewer: opens `.eprof` traces in the browser, offline.
//!
//! `data` indexes a decoded trace for the views and `charts` draws every chart as one
//! SVG/HTML string; both are plain Rust, tested natively. `app` (wasm32 only) is the
//! Leptos shell: loading, controls, selection, and where each chart goes.

#![cfg_attr(not(target_arch = "wasm32"), forbid(unsafe_code))]

pub mod charts;
pub mod data;

#[cfg(target_arch = "wasm32")]
mod app;
