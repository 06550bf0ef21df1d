//! eprof-record: the one recording flow of eprof.
//!
//! A [`Profiler`] (registry, plugins, data directory) loads a model
//! ([`Profiler::load_model`]) and records a [`RecordRequest`] on it
//! ([`Profiler::record`]), sending [`RunEvent`]s to a [`RunSink`] as the run goes:
//! the CLI's sink prints tokens and a live status line, the server's sends each event
//! to its WebSocket clients, a benchmark's may serialize them. Every front end calls
//! this; none re-implements it.

#![deny(unsafe_code)]

pub mod catalog;
pub mod error;
pub mod event;
pub mod power;
pub mod profiler;
pub mod request;

pub use catalog::{KnownModel, ModelCatalog, hf_hub_cache};
pub use eprof_format::DeviceSpec;
pub use eprof_format::live::{RunEvent, RunStarted, SiteColumns};
pub use error::{ErrorKind, RecordError, Result};
pub use event::{NoSink, RunSink, error_event};
pub use power::{PowerSourceInfo, open_power, power_sources};
pub use profiler::{
    ModelHandle, Profiler, RecordedRun, candle_device, is_valid_run_id, new_run_id,
};
pub use request::{ModelChoice, PowerSpec, ProbeSelection, RecordRequest};

/// Keep the built-in power sources, model adapters and probes linked into a binary
/// that uses this crate (their registrations are collected at start-up).
pub fn link() {
    eprof_power::link();
    eprof_models::link();
    eprof_probes::link();
}
