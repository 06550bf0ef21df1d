//! eprof-power: the power sources, each registered through inventory.
//!
//! - `synthetic`: a deterministic waveform (constant, step, ramp) as a Counter or a
//!   Sampler, for tests and demos; never chosen by `--power auto`.
//! - `estimate`: CPU utilisation x a power model; what a machine without counters gets.
//! - `rapl`: Linux powercap energy counters (Intel, AMD), a Counter source.
//! - `powermetrics`: Apple Silicon CPU/GPU/ANE power windows, a Sampler source.
//! - `nvml`: NVIDIA GPU energy counters (power polling where unsupported).
//! - `nvml+rapl`: both in one recording, each channel with its own resolution.
//! - `replay`: a recorded stream (powermetrics capture or CSV) replayed as if live.

// Unsafe code is allowed only in `nvml` (FFI), where each block says why it is sound.
#![deny(unsafe_code)]

pub mod combined;
pub mod estimate;
pub mod nvml;
pub mod powermetrics;
pub mod rapl;
pub mod replay;
pub mod synthetic;

/// Call from a binary so the linker keeps this crate's registrations.
pub fn link() {}
