//! `eprof serve`: the REST API, the WebSocket event stream and the viewer
//! (eprof-server), with the recording flow of `eprof record` (eprof-record).

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use eprof_core::paths::DataDir;
use eprof_server::{ProfilerSetup, ServeOptions};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback needs a token
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Port [default: a free port]
    #[arg(long)]
    port: Option<u16>,
    /// Token that every API call and the WebSocket must carry [default:
    /// $EPROF_TOKEN; generated and printed when binding beyond loopback without one]
    #[arg(long)]
    token: Option<String>,
    /// A model to offer (repeatable; the first is the default); the data directory's
    /// models/ and the Hugging Face cache are offered too
    #[arg(long = "model", short = 'm')]
    models: Vec<PathBuf>,
    /// Let requests name a model by path instead of by id
    #[arg(long)]
    allow_model_paths: bool,
    /// Largest request body in bytes
    #[arg(long, default_value_t = 64 * 1024)]
    max_body: usize,
    /// Longest prompt in characters
    #[arg(long, default_value_t = 32 * 1024)]
    max_prompt: usize,
    /// Bytes queued per WebSocket client before its oldest power samples are dropped
    #[arg(long, default_value_t = 4 << 20)]
    ws_buffer: usize,
}

pub fn run(data: &DataDir, plugin_paths: &[PathBuf], a: &ServeArgs) -> anyhow::Result<()> {
    let mut token = a
        .token
        .clone()
        .or_else(|| std::env::var("EPROF_TOKEN").ok())
        .filter(|t| !t.is_empty());
    if !a.bind.is_loopback() && token.is_none() {
        token = Some(eprof_record::new_run_id() + &eprof_record::new_run_id());
    }
    if let Some(t) = &token
        && t.len() < 16
    {
        bail!("--token must be at least 16 characters");
    }
    let port = a.port.unwrap_or(0);
    let listener = TcpListener::bind(SocketAddr::new(a.bind, port))
        .with_context(|| format!("cannot listen on {}:{port}", a.bind))?;
    let addr = listener.local_addr()?;
    let opts = ServeOptions {
        token: token.clone(),
        allow_model_paths: a.allow_model_paths,
        max_body_bytes: a.max_body,
        max_prompt_chars: a.max_prompt,
        ws_buffer_bytes: a.ws_buffer,
        viewer_html: crate::view::viewer_html().ok(),
        ..ServeOptions::default()
    };
    let setup = ProfilerSetup {
        data: data.clone(),
        plugins: plugin_paths.to_vec(),
        models: a.models.clone(),
    };
    let host = if a.bind.is_loopback() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    eprof_server::serve(setup, listener, opts, |warnings| {
        for w in warnings {
            eprintln!("warning: {w}");
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "eprof serve: http://{host}/  (API under /api, events on /ws/profiling; Ctrl-C to stop)"
        );
        if let Some(t) = &token {
            let _ = writeln!(out, "token: {t}  (send `Authorization: Bearer {t}`)");
        }
        let _ = out.flush();
    })?;
    Ok(())
}
