//! `eprof view`: open traces in the viewer embedded in this binary, either served on
//! 127.0.0.1 by the same axum stack as `eprof serve` (the page fetches them with
//! `?trace=<url>`) or written into one self-contained HTML file (`--html`) to send to
//! someone.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::Context;
use base64::Engine as _;
use clap::Args;
use eprof_core::paths::DataDir;

use eprof_server::TRACE_SLOT;

use crate::commands::{decode_file, resolve};
use crate::exit::Exit;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/viewer.rs"));
}

#[derive(Args)]
pub struct ViewArgs {
    /// Run ids (or unique prefixes) or paths to .eprof files; several open side by side
    /// (the viewer's Compare section); a group id (`eprof bench`) opens all its runs
    /// (the Repeated runs section)
    #[arg(required = true)]
    runs: Vec<String>,
    /// Write one self-contained HTML file (viewer and traces) instead of serving
    #[arg(long, short = 'o', value_name = "FILE.html")]
    out: Option<PathBuf>,
    /// The old spelling of --out
    #[arg(long, hide = true, value_name = "FILE", conflicts_with = "out")]
    html: Option<PathBuf>,
    /// Do not try to open a browser; only print the URL
    #[arg(long)]
    no_open: bool,
    /// Port to serve on [default: a free port]
    #[arg(long)]
    port: Option<u16>,
}

/// The viewer page, or how to get it.
pub fn viewer_html() -> anyhow::Result<&'static str> {
    embedded::VIEWER_HTML.ok_or_else(|| {
        Exit(
            1,
            "this eprof was built without the viewer: run `cargo xtask viewer` (needs \
             `rustup target add wasm32-unknown-unknown`), then rebuild eprof"
                .into(),
        )
        .into()
    })
}

/// A trace to show: the name the page displays and the file's bytes.
struct Loaded {
    name: String,
    bytes: Vec<u8>,
}

fn load_all(data: &DataDir, runs: &[String]) -> anyhow::Result<Vec<Loaded>> {
    let mut out = Vec::new();
    let mut paths = Vec::new();
    for run in runs {
        if crate::commands::groups::is_group_ref(run) && !run.contains('/') {
            let idx = eprof_index::Index::open(&data.index())?;
            let ids = idx.group_runs(run)?;
            if ids.is_empty() {
                anyhow::bail!("no group {run:?} in the index (`eprof ls --groups` lists them)");
            }
            for id in ids {
                paths.push((id.clone(), resolve(data, &id)?));
            }
        } else {
            paths.push((run.clone(), resolve(data, run)?));
        }
    }
    for (run, path) in paths {
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        // Check it here so a broken file is reported in the terminal too; a truncated
        // one still opens (the page says what was recovered).
        let (_, warn) = decode_file(&path, &bytes)?;
        if let Some(w) = warn {
            eprintln!("warning: {}: {w}", path.display());
        }
        let name = path
            .file_name()
            .map_or_else(|| run.clone(), |n| n.to_string_lossy().into_owned());
        out.push(Loaded { name, bytes });
    }
    Ok(out)
}

/// The viewer page with `traces` embedded (base64, decoded by the page's loader).
fn page_with_traces(html: &str, traces: &[Loaded]) -> anyhow::Result<String> {
    let at = html
        .find(TRACE_SLOT)
        .context("the embedded viewer has no trace slot (rebuild it with `cargo xtask viewer`)")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut scripts = String::new();
    for t in traces {
        scripts.push_str(&format!(
            "<script class=\"eprof-trace\" type=\"application/octet-stream\" data-name=\"{}\">{}</script>\n",
            attr_escape(&t.name),
            b64.encode(&t.bytes)
        ));
    }
    let mut page = String::with_capacity(html.len() + scripts.len());
    page.push_str(&html[..at]);
    page.push_str(&scripts);
    page.push_str(&html[at + TRACE_SLOT.len()..]);
    Ok(page)
}

fn attr_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A file name safe in a URL path without encoding.
fn url_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn run(data: &DataDir, a: &ViewArgs) -> anyhow::Result<()> {
    let html = viewer_html()?;
    let traces = load_all(data, &a.runs)?;
    if a.html.is_some() {
        eprintln!("warning: --html is the old spelling of --out");
    }
    if let Some(out) = a.out.as_ref().or(a.html.as_ref()) {
        let page = page_with_traces(html, &traces)?;
        crate::commands::parent_folder(out)?;
        std::fs::write(out, page).with_context(|| format!("cannot write {}", out.display()))?;
        writeln!(
            std::io::stdout(),
            "{} ({} trace(s) inside; open it in a browser, no server needed)",
            out.display(),
            traces.len()
        )?;
        return Ok(());
    }
    serve(html, traces, a)
}

fn serve(html: &'static str, traces: Vec<Loaded>, a: &ViewArgs) -> anyhow::Result<()> {
    let port = a.port.unwrap_or(0);
    let listener = TcpListener::bind(("127.0.0.1", port))
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let port = listener.local_addr()?.port();
    let query: Vec<String> = traces
        .iter()
        .enumerate()
        .map(|(i, t)| format!("trace=/trace/{i}/{}", url_name(&t.name)))
        .collect();
    let url = format!("http://127.0.0.1:{port}/?{}", query.join("&"));
    let mut stdout = std::io::stdout();
    writeln!(stdout, "serving the viewer at {url}  (Ctrl-C to stop)")?;
    stdout.flush()?;
    if !a.no_open {
        open_browser(&url);
    }
    let traces = traces.into_iter().map(|t| (t.name, t.bytes)).collect();
    eprof_server::serve_view(listener, html, traces)?;
    Ok(())
}

pub fn open_browser(url: &str) {
    let cmd = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(cmd)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(_) => {}
        Err(_) => eprintln!("(could not start `{cmd}`: open the URL above in a browser)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_go_into_the_slot_escaped() {
        let page = page_with_traces(
            "<head></head><!--EPROF-TRACES--><script></script>",
            &[Loaded {
                name: "a\"<b>.eprof".into(),
                bytes: vec![0, 1, 2, 255],
            }],
        )
        .unwrap();
        assert_eq!(
            page,
            "<head></head><script class=\"eprof-trace\" type=\"application/octet-stream\" \
             data-name=\"a&quot;&lt;b&gt;.eprof\">AAEC/w==</script>\n<script></script>"
        );
        assert!(page_with_traces("<html></html>", &[]).is_err());
        assert_eq!(url_name("my run (1).eprof"), "my_run__1_.eprof");
    }
}
