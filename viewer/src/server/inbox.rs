//! The live state the socket fills and the views read: the queued events, the run
//! they build, and what changed in a frame.

use std::sync::{Arc, Mutex};

use eprof_format::sync::lock;
use leptos::prelude::*;

use crate::live::LiveRun;

/// The inbox, shared by the socket's callback, the frame callback and the views (the
/// page is single-threaded; the lock is never contended).
pub(super) type Shared = Arc<Mutex<Inbox>>;

/// Messages waiting for the next frame, and the live state they build.
#[derive(Default)]
pub(super) struct Inbox {
    pub(super) queue: Vec<String>,
    pub(super) scheduled: bool,
    pub(super) run: LiveRun,
    /// Per-frame work (parse, apply, redraw), for the page's benchmark.
    pub(super) handle_ms: f64,
    /// The part of it spent parsing and applying events (the rest is redrawing).
    pub(super) apply_ms: f64,
    pub(super) frames: u32,
    pub(super) events: u32,
    /// When the heatmap was last redrawn, and whether newer sites wait for it.
    pub(super) heat_drawn_ms: f64,
    pub(super) heat_pending: bool,
}

/// The heatmap (hundreds of cells) redraws at most this often; it still takes in
/// every token, the text and the figures update every frame.
pub(super) const HEATMAP_EVERY_MS: f64 = 200.0;

/// What changed in a frame, so each live view redraws only when its data did.
#[derive(Clone, Copy)]
pub(super) struct Live {
    /// Any event (figures, the current operation).
    pub(super) version: RwSignal<u64>,
    /// Tokens (the streamed text).
    pub(super) tokens: RwSignal<u64>,
    /// Layers and components (the heatmap).
    pub(super) sites: RwSignal<u64>,
    /// Power readings and phases (the power chart).
    pub(super) power: RwSignal<u64>,
    pub(super) queue_text: RwSignal<String>,
    pub(super) dropped: RwSignal<u64>,
    /// A run finished: the history reloads.
    pub(super) finished: RwSignal<u64>,
}

/// What the panel says of run `id` once the live stream has it: running, or how it
/// ended; `None` before its `run_started`.
pub(super) fn run_status(inbox: &Shared, id: &str) -> Option<String> {
    let ib = lock(inbox);
    if ib.run.run_id != id {
        return None;
    }
    Some(match ib.run.finished {
        Some(r) => format!("run {id} finished: {}", r.as_str()),
        None => format!("run {id} running"),
    })
}
