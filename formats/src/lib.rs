//! eprof-format: the data model of a profiled run, the `.eprof` trace codec, energy
//! attribution, summaries and exports.
//!
//! It exists apart from the recorder so that one reader serves the CLI, the server and
//! the WebAssembly viewer: no I/O dependencies, no candle, compiles for
//! `wasm32-unknown-unknown`. The byte layout is specified in `formats/SPEC.md`.

#![forbid(unsafe_code)]

pub mod attribution;
pub mod codec;
pub mod error;
pub mod export;
pub mod group;
pub mod icicle;
pub mod kinds;
pub mod layout;
pub mod live;
pub mod model;
pub mod power;
pub mod range;
pub mod reader;
pub mod stats;
pub mod summary;
pub mod sync;
pub mod synthetic;
pub mod units;
pub mod writer;

pub use attribution::{Attribution, Energy, EnergyLabel};
pub use error::FormatError;
pub use model::*;
pub use reader::{
    Decoded, Truncation, decode, decode_complete, decode_with_progress, ends_finished,
};
pub use summary::{Energies, Grid, GridMetric, StepOrder, Summary};
pub use writer::{TraceWriter, encode, try_encode};
