//! `eprof serve`: the REST API, the WebSocket stream of run events and the viewer,
//! on axum + tokio (docs/architecture.md, "The server"). `eprof view` runs on the same
//! stack ([`serve_view`]).
//!
//! Runs execute one at a time on their own thread ([`worker`]); handlers only queue
//! jobs, read the index and trace files (on tokio's blocking pool) and never wait
//! for inference. Every response is checked by [`security`] first: Host, Origin,
//! token, body size.

#![deny(unsafe_code)]

mod api;
mod error;
pub mod hub;
pub mod metrics;
mod options;
pub mod security;
pub mod worker;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use eprof_core::paths::DataDir;
use eprof_record::{ErrorKind, Profiler, RecordError};

pub use api::TRACE_SLOT;
pub use options::ServeOptions;
pub use security::Security;

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("eprof-http")
        .enable_io()
        .enable_time()
        .build()
}

/// Serve `router` on `listener` (already bound, so the caller could print its
/// address) until the process ends.
fn run(listener: TcpListener, router: Router) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    listener.set_nonblocking(true)?;
    runtime()?.block_on(async move {
        let l = tokio::net::TcpListener::from_std(listener)?.tap_io(limit_unsent);
        axum::serve(l, router.into_make_service()).await
    })
}

/// Keep little unsent data in the kernel per connection, so that a WebSocket client
/// that stops reading backs up into the hub's bounded queue (where power samples are
/// dropped first) instead of into megabytes of socket buffer that would deliver stale
/// samples late. In-flight data is not limited, so throughput is not either.
fn limit_unsent(tcp: &mut tokio::net::TcpStream) {
    let s = socket2::SockRef::from(&*tcp);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = s.set_tcp_notsent_lowat(16 << 10);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = s.set_send_buffer_size(256 << 10);
}

/// What the recording thread builds its [`Profiler`] from (a profiler holds plugin
/// code and stays on that thread).
#[derive(Debug, Clone)]
pub struct ProfilerSetup {
    pub data: DataDir,
    /// `--plugin` paths (each must load).
    pub plugins: Vec<PathBuf>,
    /// `--model` paths: known by id, the first is the default.
    pub models: Vec<PathBuf>,
}

/// Run the API server: the recording thread takes jobs from the queue while the
/// HTTP side answers. `ready` gets the setup's warnings (plugins skipped) once the
/// profiler is up. Blocks until the process ends.
pub fn serve(
    setup: ProfilerSetup,
    listener: TcpListener,
    opts: ServeOptions,
    ready: impl FnOnce(Vec<String>),
) -> Result<(), RecordError> {
    let io = |e: std::io::Error| RecordError::new(ErrorKind::Io, e.to_string());
    let addr: SocketAddr = listener.local_addr().map_err(io)?;
    let security = Arc::new(Security::new(addr, opts.token.clone(), opts.max_body_bytes));
    let queue = Arc::new(worker::Queue::new(opts.max_queue));
    let hub = Arc::new(hub::Hub::new(opts.ws_buffer_bytes, opts.ws_limit_bytes));
    let (tx, rx) = std::sync::mpsc::channel();
    let metrics = Arc::new(metrics::Metrics::new());
    let (q, h, m) = (Arc::clone(&queue), Arc::clone(&hub), Arc::clone(&metrics));
    let worker = std::thread::Builder::new()
        .name("eprof-recorder".into())
        .spawn(move || {
            let made = Profiler::new(setup.data, &setup.plugins).map(|mut p| {
                for m in setup.models {
                    p.add_model(m);
                }
                p
            });
            match made {
                Ok(mut p) => {
                    let mut notes = p.take_warnings();
                    // Runs that died with a previous server (SIGKILL, power loss) left
                    // readable traces but no index row: they are history too.
                    let adopted = eprof_index::Index::open(&p.data().index()).and_then(|mut i| {
                        i.adopt(
                            &p.data().traces(),
                            || eprof_core::machine::detect().hostname,
                            std::time::Duration::ZERO,
                        )
                    });
                    match adopted {
                        Ok(ids) if !ids.is_empty() => notes.push(format!(
                            "indexed {} trace(s) the index lacked (runs that ended without being indexed): {}",
                            ids.len(),
                            ids.join(", ")
                        )),
                        Ok(_) => {}
                        Err(e) => notes.push(format!("could not adopt unindexed traces: {e}")),
                    }
                    let _ = tx.send(Ok((p.catalog().clone(), p.probe_names(), notes)));
                    worker::run(p, q, h, m);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
        .map_err(io)?;
    let (catalog, probe_names, warnings) = rx
        .recv()
        .map_err(|_| RecordError::new(ErrorKind::Io, "the recording thread died at start"))??;
    ready(warnings);
    let app = Arc::new(api::App {
        data: catalog.data().clone(),
        catalog,
        probe_names,
        power_names: eprof_core::Registry::discover()
            .map(|r| r.power.iter().map(|p| p.name).collect())
            .unwrap_or_default(),
        opts,
        queue: Arc::clone(&queue),
        hub,
        metrics,
    });
    let r = run(listener, api::router(app, security));
    queue.shutdown();
    let _ = worker.join();
    r.map_err(io)
}

/// Serve the viewer and the given traces (`eprof view`): `/` is the page,
/// `/trace/{i}/{name}` the i-th trace. Blocks until the process ends.
pub fn serve_view(
    listener: TcpListener,
    html: &'static str,
    traces: Vec<(String, Vec<u8>)>,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let security = Arc::new(Security::new(addr, None, 0));
    run(listener, api::view_router(html, traces, security))
}
