//! The one lock helper of the workspace (it lives in the crate every other one, the
//! wasm viewer included, depends on).

use std::sync::{Mutex, MutexGuard};

/// Lock `m`, going on with the data when a thread panicked while holding it: every
/// mutex in eprof guards plain data (queues, buffers, counters) that a panic leaves
/// whole, and a server or recorder that stopped at the first poisoned lock would lose
/// every run after it.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
