//! Apple Silicon power from `powermetrics` (macOS; needs root, so `sudo -n`).
//!
//! `powermetrics --format plist` writes one plist document per window, separated by
//! NUL bytes. Each window's `processor` dict holds `cpu_power`, `gpu_power`,
//! `ane_power` in mW (and `*_energy` in mJ over the window); the real window length is
//! `elapsed_ns`, which overshoots the requested interval. DRAM keys were removed in
//! macOS 13: when absent the channel is absent, not zero. Raw powermetrics repeats a
//! key (`idle_ratio` in the `gpu` dict); the parser keeps the last value.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use eprof_core::power::{Availability, PowerSource, Reading, SourceOptions};
use eprof_core::{Error, PowerSourceRegistration, Result};
use eprof_format::{Channel, ChannelKind, PowerSourceDesc, SourceKind};

/// One powermetrics window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub elapsed_ns: u64,
    /// Watts per channel, in [`CHANNELS`] order; `None` when the keys are absent.
    pub watts: [Option<f64>; 4],
}

/// Channel names, in reading order.
pub const CHANNELS: [(&str, ChannelKind); 4] = [
    ("cpu", ChannelKind::Cpu),
    ("gpu", ChannelKind::Gpu),
    ("ane", ChannelKind::Ane),
    ("dram", ChannelKind::Dram),
];

fn number(v: &plist::Value) -> Option<f64> {
    v.as_real()
        .or_else(|| v.as_signed_integer().map(|i| i as f64))
        .or_else(|| v.as_unsigned_integer().map(|i| i as f64))
}

/// Parse one plist document.
pub fn parse_document(doc: &[u8]) -> std::result::Result<Window, String> {
    let v = plist::Value::from_reader_xml(doc).map_err(|e| format!("not a plist document: {e}"))?;
    let d = v.as_dictionary().ok_or("the plist is not a dictionary")?;
    let elapsed_ns = d
        .get("elapsed_ns")
        .and_then(number)
        .filter(|e| *e > 0.0)
        .ok_or("the sample has no elapsed_ns")? as u64;
    let p = d
        .get("processor")
        .and_then(|p| p.as_dictionary())
        .ok_or("the sample has no processor dict (was powermetrics run with --samplers cpu_power,gpu_power,ane_power?)")?;
    let secs = elapsed_ns as f64 * 1e-9;
    let mut watts = [None; 4];
    for (i, (name, _)) in CHANNELS.iter().enumerate() {
        watts[i] = p
            .get(&format!("{name}_power"))
            .and_then(number)
            .map(|mw| mw / 1000.0)
            .or_else(|| {
                p.get(&format!("{name}_energy"))
                    .and_then(number)
                    .map(|mj| mj / 1000.0 / secs)
            });
    }
    Ok(Window { elapsed_ns, watts })
}

/// Splits a NUL-separated stream of plist documents, fed in arbitrary chunks.
#[derive(Debug, Default)]
pub struct Stream {
    buf: Vec<u8>,
    /// Bytes of `buf` already known to hold no NUL (keeps byte-by-byte feeding linear).
    scanned: usize,
}

impl Stream {
    /// Feed bytes; returns every document completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<std::result::Result<Window, String>> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(i) = self.buf[self.scanned..].iter().position(|&b| b == 0) {
            let end = self.scanned + i;
            let doc: Vec<u8> = self.buf.drain(..=end).take(end).collect();
            self.scanned = 0;
            if !doc.iter().all(u8::is_ascii_whitespace) {
                out.push(parse_document(&doc));
            }
        }
        self.scanned = self.buf.len();
        out
    }

    /// The stream ended: a last document without its NUL is parsed if complete; an
    /// incomplete one is an error that says so.
    pub fn finish(&mut self) -> Option<std::result::Result<Window, String>> {
        let rest = std::mem::take(&mut self.buf);
        self.scanned = 0;
        let text = String::from_utf8_lossy(&rest);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return None;
        }
        if trimmed.ends_with("</plist>") {
            return Some(parse_document(trimmed.as_bytes()));
        }
        Some(Err(format!(
            "the powermetrics stream ended inside a document ({} bytes of it arrived)",
            rest.len()
        )))
    }
}

/// Read every window of a captured stream (or a single document).
pub fn parse_capture(bytes: &[u8]) -> (Vec<Window>, Option<String>) {
    let mut s = Stream::default();
    let mut windows = Vec::new();
    let mut error = None;
    for r in s.push(bytes).into_iter().chain(s.finish()) {
        match r {
            Ok(w) => windows.push(w),
            Err(e) => error = Some(e),
        }
    }
    (windows, error)
}

/// The channels of a powermetrics stream, all adding into the total
/// (`combined_power` is their sum).
pub fn channels() -> Vec<Channel> {
    CHANNELS
        .iter()
        .map(|(n, k)| Channel {
            name: (*n).into(),
            kind: *k,
            in_total: true,
        })
        .collect()
}

fn desc(interval_ms: u64) -> PowerSourceDesc {
    PowerSourceDesc {
        name: "powermetrics".into(),
        kind: SourceKind::Sampler,
        channels: channels(),
        nominal_resolution_ns: interval_ms * 1_000_000,
        details: vec![(
            "command".into(),
            format!(
                "sudo -n powermetrics --samplers cpu_power,gpu_power,ane_power --sample-interval {interval_ms} --format plist"
            ),
        )],
    }
}

/// The live source: a `powermetrics` child whose stdout a thread parses.
pub struct Powermetrics {
    child: Child,
    rx: mpsc::Receiver<std::result::Result<Window, String>>,
    interval_ms: u64,
}

fn sudoers_hint() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "username".into());
    format!(
        "powermetrics needs root without a password prompt; add this line with `sudo visudo -f /etc/sudoers.d/eprof`: {user} ALL=(ALL) NOPASSWD: /usr/bin/powermetrics"
    )
}

impl Powermetrics {
    pub fn open(opts: &SourceOptions) -> Result<Self> {
        let interval_ms = (opts.interval.as_millis() as u64).max(1);
        let mut child = Command::new("sudo")
            .args([
                "-n",
                "powermetrics",
                "--samplers",
                "cpu_power,gpu_power,ane_power",
            ])
            .args([
                "--sample-interval",
                &interval_ms.to_string(),
                "--format",
                "plist",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::power("powermetrics", format!("cannot run sudo powermetrics: {e}"))
            })?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::power("powermetrics", "no stdout from the child"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("eprof-powermetrics".into())
            .spawn(move || {
                let mut s = Stream::default();
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match stdout.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            for w in s.push(&buf[..n]) {
                                if tx.send(w).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
                if let Some(w) = s.finish() {
                    let _ = tx.send(w);
                }
            })
            .map_err(|e| {
                Error::power("powermetrics", format!("cannot start reader thread: {e}"))
            })?;
        Ok(Powermetrics {
            child,
            rx,
            interval_ms,
        })
    }
}

impl PowerSource for Powermetrics {
    fn desc(&self) -> PowerSourceDesc {
        desc(self.interval_ms)
    }

    fn read(&mut self) -> Result<Reading> {
        match self.rx.recv() {
            Ok(Ok(w)) => {
                let mut r = Reading::new(w.watts.to_vec());
                r.window_ns = Some(w.elapsed_ns);
                Ok(r)
            }
            Ok(Err(e)) => Err(Error::power("powermetrics", e)),
            Err(_) => {
                let mut err = String::new();
                if let Some(mut s) = self.child.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                let why = if err.contains("password") || err.contains("sudo") {
                    sudoers_hint()
                } else {
                    format!("powermetrics stopped: {}", err.trim())
                };
                Err(Error::power("powermetrics", why))
            }
        }
    }
}

impl Drop for Powermetrics {
    fn drop(&mut self) {
        // Always reap the child, on errors and early exits too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn availability() -> Availability {
    if !cfg!(target_os = "macos") {
        return Availability::Unavailable {
            reason: "powermetrics exists on macOS only".into(),
            fix: None,
        };
    }
    if !std::path::Path::new("/usr/bin/powermetrics").exists() {
        return Availability::Unavailable {
            reason: "/usr/bin/powermetrics is missing".into(),
            fix: None,
        };
    }
    let ok = Command::new("sudo")
        .args(["-n", "-l", "/usr/bin/powermetrics"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Availability::Available {
            detail: "CPU/GPU/ANE power windows via sudo -n powermetrics".into(),
        }
    } else {
        Availability::Unavailable {
            reason: "sudo -n cannot run powermetrics".into(),
            fix: Some(sudoers_hint()),
        }
    }
}

fn open(opts: &SourceOptions) -> Result<Box<dyn PowerSource>> {
    Ok(Box::new(Powermetrics::open(opts)?))
}

inventory::submit! {
    PowerSourceRegistration {
        name: "powermetrics",
        summary: "Apple Silicon CPU/GPU/ANE power windows from sudo powermetrics (plist stream)",
        kind: SourceKind::Sampler,
        auto_rank: Some(20),
        availability,
        open,
        origin: module_path!(),
    }
}
