//! Replays a recorded power stream as if it were live: for demos, tests, and
//! reproducing a colleague's measurement on another machine.
//!
//! `--power replay:FILE[,speed=1]` reads either a `powermetrics --format plist`
//! capture (one or more NUL-separated documents) or a CSV whose first column is the
//! end of each window in seconds (`t_s`) and whose other columns are average watts per
//! channel (`cpu_w,gpu_w,...`; an empty cell is an absent reading). Each reading is
//! delivered when its window would have ended (`speed=2` twice as fast, `speed=0`
//! at once); at the end of the file the stream starts over. Figures are `interpolated`
//! or `attributed`: a replay is a sampler, never a measurement of this run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use eprof_core::power::{Availability, PowerSource, Reading, SourceOptions};
use eprof_core::{Clock, Error, PowerSourceRegistration, Result};
use eprof_format::{Channel, ChannelKind, PowerSourceDesc, SourceKind};

use crate::powermetrics;

/// A recorded stream: windows of average power per channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub channels: Vec<Channel>,
    /// (window length in ns, watts per channel)
    pub windows: Vec<(u64, Vec<Option<f64>>)>,
}

fn err(msg: impl Into<String>) -> Error {
    Error::power("replay", msg)
}

fn kind_of(name: &str) -> ChannelKind {
    match name {
        "cpu" => ChannelKind::Cpu,
        "gpu" => ChannelKind::Gpu,
        "ane" => ChannelKind::Ane,
        "dram" => ChannelKind::Dram,
        n if n.starts_with("package") => ChannelKind::Package,
        "system" | "psys" => ChannelKind::System,
        _ => ChannelKind::Other,
    }
}

/// Parse a CSV recording (see the module docs).
pub fn parse_csv(text: &str) -> std::result::Result<Recording, String> {
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let header = lines.next().ok_or("the CSV is empty")?;
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    if cols.len() < 2 || !matches!(cols[0], "t_s" | "timestamp" | "time_s") {
        return Err(format!(
            "the CSV header must be t_s followed by channel columns in watts (e.g. t_s,cpu_w,gpu_w), not {header:?}"
        ));
    }
    let channels: Vec<Channel> = cols[1..]
        .iter()
        .map(|c| {
            let name = c.strip_suffix("_w").unwrap_or(c);
            Channel {
                name: name.to_string(),
                kind: kind_of(name),
                in_total: true,
            }
        })
        .collect();
    let mut windows = Vec::new();
    let mut prev: Option<u64> = None;
    for (i, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != cols.len() {
            return Err(format!(
                "row {} has {} cells for {} columns",
                i + 2,
                cells.len(),
                cols.len()
            ));
        }
        let t: f64 = cells[0].parse().map_err(|_| {
            format!(
                "row {}: time {:?} is not a number of seconds",
                i + 2,
                cells[0]
            )
        })?;
        let values = cells[1..]
            .iter()
            .map(|c| {
                if c.is_empty() {
                    Ok(None)
                } else {
                    c.parse::<f64>()
                        .map(Some)
                        .map_err(|_| format!("row {}: {c:?} is not a number of watts", i + 2))
                }
            })
            .collect::<std::result::Result<Vec<_>, String>>()?;
        // Whole nanoseconds first, so 0.3 s - 0.1 s is exactly 200 ms.
        let t_ns = (t * 1e9).round().max(0.0) as u64;
        if let Some(p) = prev {
            if t_ns <= p {
                return Err(format!("row {}: time {t} does not increase", i + 2));
            }
            windows.push((t_ns - p, values));
        }
        prev = Some(t_ns);
    }
    if windows.is_empty() {
        return Err(
            "the CSV needs at least two rows (the first row only starts the first window)".into(),
        );
    }
    Ok(Recording { channels, windows })
}

/// Read a recording from a file, powermetrics capture or CSV.
pub fn load(path: &Path) -> Result<Recording> {
    let bytes =
        std::fs::read(path).map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).to_string();
    if head.trim_start().starts_with("<?xml") || head.contains("<plist") {
        let (windows, cut) = powermetrics::parse_capture(&bytes);
        if windows.is_empty() {
            return Err(err(format!(
                "{}: no complete powermetrics sample{}",
                path.display(),
                cut.map(|c| format!(" ({c})")).unwrap_or_default()
            )));
        }
        return Ok(Recording {
            channels: powermetrics::channels(),
            windows: windows
                .into_iter()
                .map(|w| (w.elapsed_ns, w.watts.to_vec()))
                .collect(),
        });
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        err(format!(
            "{} is neither a plist capture nor a UTF-8 CSV",
            path.display()
        ))
    })?;
    parse_csv(&text).map_err(|e| err(format!("{}: {e}", path.display())))
}

pub struct Replay {
    path: PathBuf,
    rec: Recording,
    next: usize,
    loops: u32,
    speed: f64,
    clock: Clock,
    due_ns: u64,
}

impl Replay {
    pub fn open(opts: &SourceOptions) -> Result<Self> {
        let file = opts
            .args
            .get("file")
            .ok_or_else(|| err("give the recording: --power replay:FILE (a powermetrics capture or a t_s,<channel>_w CSV)"))?;
        let speed = match opts.args.get("speed") {
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|v| *v >= 0.0)
                .ok_or_else(|| err(format!("speed={s:?}: use a number >= 0")))?,
            None => 1.0,
        };
        let path = PathBuf::from(file);
        let rec = load(&path)?;
        Ok(Replay {
            path,
            rec,
            next: 0,
            loops: 0,
            speed,
            clock: opts.clock,
            due_ns: opts.clock.now(),
        })
    }
}

impl PowerSource for Replay {
    fn desc(&self) -> PowerSourceDesc {
        let mut windows: Vec<u64> = self.rec.windows.iter().map(|w| w.0).collect();
        windows.sort_unstable();
        PowerSourceDesc {
            name: "replay".into(),
            kind: SourceKind::Sampler,
            channels: self.rec.channels.clone(),
            nominal_resolution_ns: windows[windows.len() / 2],
            details: vec![
                ("file".into(), self.path.display().to_string()),
                ("windows".into(), self.rec.windows.len().to_string()),
                ("speed".into(), self.speed.to_string()),
                (
                    "note".into(),
                    "replayed readings, not a measurement of this run; the file loops at its end"
                        .into(),
                ),
            ],
        }
    }

    fn read(&mut self) -> Result<Reading> {
        let (len, values) = self.rec.windows[self.next].clone();
        self.next += 1;
        if self.next == self.rec.windows.len() {
            self.next = 0;
            self.loops += 1;
        }
        let scaled = if self.speed > 0.0 {
            (len as f64 / self.speed) as u64
        } else {
            0
        };
        self.due_ns += scaled;
        let now = self.clock.now();
        if self.due_ns > now {
            std::thread::sleep(Duration::from_nanos(self.due_ns - now));
        }
        let mut r = Reading::new(values);
        r.window_ns = Some(scaled.max(1));
        Ok(r)
    }
}

fn open(opts: &SourceOptions) -> Result<Box<dyn PowerSource>> {
    Ok(Box::new(Replay::open(opts)?))
}

inventory::submit! {
    PowerSourceRegistration {
        name: "replay",
        summary: "replays a powermetrics capture or a t_s,<channel>_w CSV as if live",
        kind: SourceKind::Sampler,
        auto_rank: None,
        availability: || Availability::Available { detail: "needs a file: --power replay:FILE".into() },
        open,
        origin: module_path!(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_windows_and_errors() {
        let r = parse_csv("t_s,cpu_w,gpu_w\n0.0,1,2\n0.1,10,\n0.3,20,5\n").unwrap();
        assert_eq!(r.channels.len(), 2);
        assert_eq!(r.channels[1].kind, ChannelKind::Gpu);
        assert_eq!(
            r.windows,
            vec![
                (100_000_000, vec![Some(10.0), None]),
                (200_000_000, vec![Some(20.0), Some(5.0)])
            ]
        );
        assert!(parse_csv("time,cpu\n").unwrap_err().contains("header"));
        assert!(
            parse_csv("t_s,cpu_w\n0,1\n0,2\n")
                .unwrap_err()
                .contains("does not increase")
        );
        assert!(
            parse_csv("t_s,cpu_w\n0,1\n1,x\n")
                .unwrap_err()
                .contains("not a number of watts")
        );
    }
}
