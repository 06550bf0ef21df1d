//! eprof-power: the power sources, each registered through inventory.
//!
//! - `synthetic`: a deterministic waveform (constant, step, ramp) as a Counter or a
//!   Sampler, for tests and demos; never chosen by `--power auto`.
//! - `estimate`: CPU utilisation x a power model; what a machine without counters gets.

#![forbid(unsafe_code)]

pub mod estimate;
pub mod synthetic;

/// Call from a binary so the linker keeps this crate's registrations.
pub fn link() {}
