//! eprof-plugin-api: the stable C ABI that dynamic eprof plugins will be built
//! against. It has no dependencies so that a plugin author's build pulls in nothing
//! else (like `tracing-core` beside `tracing`).
//!
//! The ABI itself (versioned entry symbol, `#[repr(C)]` probe vtables, tensor views,
//! `export_plugin!`) is not written yet; until it is, probes are compiled in and
//! registered through `eprof_core::ProbeRegistration`.
#![forbid(unsafe_code)]
