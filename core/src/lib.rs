//! eprof-core: what a recording is made of.
//!
//! The traits that power sources, model adapters and probes implement
//! ([`PowerSource`], [`ModelAdapter`] + [`InstrumentedModel`], [`Probe`]), the
//! [`Recorder`] that instrumented models report to, the registries that find them
//! ([`Registry`]), the [`Session`] that owns the clock, the sampler thread and the
//! trace writer, and the host that loads dynamic
//! [`Plugin`]s.

#![deny(unsafe_code)]

pub mod clock;
pub mod error;
pub mod machine;
pub mod model;
pub mod paths;
pub mod plugin_host;
pub mod power;
pub mod probe;
pub mod recorder;
pub mod registry;
pub mod session;
pub mod stream_clock;

pub use clock::Clock;
pub use error::{Error, Result};
pub use model::{InstrumentedModel, LoadedModel, ModelAdapter, ModelSource, Tokenizer};
pub use plugin_host::Plugin;
pub use power::{Availability, PowerSource, Reading, SourceOptions};
pub use probe::{MetricSink, MomentMetrics, Moments, Probe, TensorKind, TensorView};
pub use recorder::{NullRecorder, Recorder, SiteId};
pub use registry::{
    ModelAdapterRegistration, PowerSourceRegistration, ProbeRegistration, Registry,
};
pub use session::{Flushed, Session, SessionConfig};
pub use stream_clock::{EventSpans, HostStreamClock, StreamClock};

pub use eprof_format as format;

/// The text of a caught panic's payload (`panic!("...")` or a formatted message).
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
pub use eprof_plugin_api as plugin_api;
