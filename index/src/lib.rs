//! The SQLite index of runs (docs/architecture.md).
//!
//! The trace files are the source of truth; the index holds what history lists filter
//! and sort on, plus per-section and per-token rows for cross-run queries, and can be
//! rebuilt from a folder of traces at any time. WAL mode and a busy timeout let several
//! `eprof` processes record at once; every write is one `BEGIN IMMEDIATE` transaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use eprof_format::{Energies, Summary, Trace};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

mod error;
mod rows;
mod schema;

pub use error::{Error, Result};
pub use rows::{GroupRow, RunRow};
use schema::{MIGRATIONS, retry_busy, setup};

/// What [`Index::list`] sorts by, largest (newest) first. `eprof ls --sort` and the
/// server's `?sort=` name it the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    Created,
    Energy,
    Duration,
    JPerToken,
}

impl SortKey {
    pub const ALL: [SortKey; 4] = [
        SortKey::Created,
        SortKey::Energy,
        SortKey::Duration,
        SortKey::JPerToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Created => "created",
            SortKey::Energy => "energy",
            SortKey::Duration => "duration",
            SortKey::JPerToken => "j_per_token",
        }
    }

    /// The key called `name`, or an error listing them.
    pub fn parse(name: &str) -> Result<SortKey> {
        SortKey::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "cannot sort by {name:?}: use {}",
                    SortKey::ALL.map(SortKey::as_str).join(", ")
                ))
            })
    }

    fn order_by(self) -> &'static str {
        match self {
            SortKey::Created => "created_at_ms DESC",
            SortKey::Energy => "total_j DESC",
            SortKey::Duration => "duration_ns DESC",
            SortKey::JPerToken => "decode_j_per_token DESC",
        }
    }
}

/// Filters and order of `eprof ls`.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub model: Option<String>,
    pub tag: Option<String>,
    pub experiment: Option<String>,
    pub prompt_contains: Option<String>,
    /// Only the runs of this group.
    pub group: Option<String>,
    /// `created`, `energy`, `duration`, `j_per_token` (newest/largest first).
    pub sort: SortKey,
    pub limit: Option<u32>,
    /// Skip this many matching runs (paging).
    pub offset: Option<u32>,
}

/// The filter part of [`Index::list`] and [`Index::count_matching`]: `?1`..`?5` are
/// model, tag, experiment, prompt text and group.
const FILTER: &str = "(?1 IS NULL OR model LIKE '%' || ?1 || '%')
   AND (?2 IS NULL OR EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = r.id AND t.tag = ?2))
   AND (?3 IS NULL OR experiment = ?3)
   AND (?4 IS NULL OR prompt LIKE '%' || ?4 || '%')
   AND (?5 IS NULL OR group_id = ?5)";

/// An open run index.
pub struct Index {
    conn: Connection,
    path: PathBuf,
}

/// SHA-256 of a file's bytes, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl Index {
    /// Open (creating and migrating as needed) the index at `path`.
    pub fn open(path: &Path) -> Result<Index> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let (conn, version) = retry_busy(|| setup(path)).map_err(|e| sql_err(path, e))?;
        if version as usize > MIGRATIONS.len() {
            return Err(Error::Index {
                path: path.to_path_buf(),
                message: format!(
                    "schema version {version} is newer than this eprof knows ({}); update eprof",
                    MIGRATIONS.len()
                ),
            });
        }
        Ok(Index {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        sql_err(&self.path, e)
    }

    /// Add or replace the row of a trace at `trace_path`.
    pub fn insert(&mut self, trace: &Trace, trace_path: &Path, imported: bool) -> Result<()> {
        let bytes = std::fs::read(trace_path).map_err(|e| Error::io(trace_path, e))?;
        let sha = sha256_hex(&bytes);
        let en = Energies::compute(trace);
        let s = Summary::compute(trace, &en);
        let m = &trace.meta;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // Absolute, so `eprof show ID` works from any directory.
        let path_str = std::fs::canonicalize(trace_path)
            .unwrap_or_else(|_| trace_path.to_path_buf())
            .to_string_lossy()
            .into_owned();
        let label_mix = s
            .labels
            .iter()
            .map(|(l, n)| format!("{} {n}", l.as_str()))
            .collect::<Vec<_>>()
            .join(" · ");
        let g = trace.group.as_ref();
        let conn = &mut self.conn;
        let res = retry_busy(|| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM runs WHERE id = ?1", params![m.id])?;
            tx.execute(
                "INSERT INTO runs VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28,?29,?30,?31,?32,?33,?34,?35,?36,?37,?38,?39,?40)",
                params![
                    m.id,
                    m.created_at_ms,
                    m.prompt,
                    trace.end.as_ref().map(|e| e.generated_text.clone()),
                    m.model.name,
                    m.model.architecture,
                    m.model.dtype,
                    m.model.file_hash,
                    m.settings.depth.as_str(),
                    m.settings.device.to_string(),
                    m.machine.hostname,
                    m.machine.cpu,
                    m.machine.os,
                    m.power.name,
                    m.power.kind.as_str(),
                    s.resolution_ns as i64,
                    s.duration_ns as i64,
                    s.time_to_first_token_ns.map(|v| v as i64),
                    s.prompt_tokens,
                    s.generated_tokens,
                    s.total.map(|e| e.joules),
                    s.dynamic_j,
                    s.avg_power_w,
                    s.decode_j_per_token,
                    s.j_per_generated_token,
                    s.decode_tokens_per_s,
                    s.total.map(|e| e.label.as_str()),
                    m.experiment,
                    s.complete,
                    imported,
                    path_str,
                    sha,
                    now_ms,
                    trace.end.as_ref().map(|e| e.stop_reason.to_string()),
                    label_mix,
                    g.map(|g| g.id.as_str()),
                    g.map(|g| g.config),
                    g.map(|g| g.config_label.as_str()),
                    g.map(|g| g.repeat),
                    g.map(|g| g.order),
                ],
            )?;
            for t in &m.tags {
                tx.execute(
                    "INSERT OR IGNORE INTO run_tags VALUES (?1, ?2)",
                    params![m.id, t],
                )?;
            }
            for r in &s.phases {
                tx.execute(
                    "INSERT INTO sections VALUES (?1,?2,?3,?4,?5,?6,?7)",
                    params![
                        m.id,
                        r.name,
                        r.name,
                        r.count,
                        r.duration_ns as i64,
                        r.joules(),
                        r.energy.map(|e| e.label.as_str())
                    ],
                )?;
            }
            for r in &s.sections {
                let (phase, name) = r.name.split_once('/').unwrap_or(("", &r.name));
                tx.execute(
                    "INSERT INTO sections VALUES (?1,?2,?3,?4,?5,?6,?7)",
                    params![
                        m.id,
                        phase,
                        name,
                        r.count,
                        r.duration_ns as i64,
                        r.joules(),
                        r.energy.map(|e| e.label.as_str())
                    ],
                )?;
            }
            let mut stmt = tx.prepare("INSERT INTO tokens VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)")?;
            for t in &s.tokens {
                stmt.execute(params![
                    m.id,
                    t.step,
                    t.position,
                    t.id,
                    t.text,
                    format!("{:?}", t.phase).to_lowercase(),
                    t.duration_ns as i64,
                    t.energy.map(|e| e.joules),
                    t.energy.map(|e| e.label.as_str())
                ])?;
            }
            drop(stmt);
            tx.commit()
        });
        res.map_err(|e| sql_err(&self.path, e))
    }

    pub fn list(&self, f: &RunFilter) -> Result<Vec<RunRow>> {
        let order = f.sort.order_by();
        let sql =
            format!("SELECT id FROM runs r WHERE {FILTER} ORDER BY {order} LIMIT ?6 OFFSET ?7");
        let ids: Vec<String> = (|| {
            let mut stmt = self.conn.prepare(&sql)?;
            let rows = stmt.query_map(
                params![
                    f.model,
                    f.tag,
                    f.experiment,
                    f.prompt_contains,
                    f.group,
                    f.limit.map_or(-1, i64::from),
                    f.offset.map_or(0, i64::from)
                ],
                |r| r.get(0),
            )?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
        })()
        .map_err(|e| self.err(e))?;
        ids.iter()
            .map(|id| {
                self.get(id)?
                    .ok_or_else(|| Error::NotFound(format!("run {id} vanished")))
            })
            .collect()
    }

    /// The run with this id, or the only run whose id starts with it.
    pub fn find(&self, id_or_prefix: &str) -> Result<RunRow> {
        if let Some(r) = self.get(id_or_prefix)? {
            return Ok(r);
        }
        let ids: Vec<String> = (|| {
            let mut stmt = self
                .conn
                .prepare("SELECT id FROM runs WHERE id LIKE ?1 || '%' LIMIT 3")?;
            let rows = stmt.query_map(params![id_or_prefix], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
        })()
        .map_err(|e| self.err(e))?;
        match ids.as_slice() {
            [one] => self
                .get(one)?
                .ok_or_else(|| Error::NotFound(format!("run {one} vanished"))),
            [] => Err(Error::NotFound(format!(
                "no run {id_or_prefix:?} in the index; `eprof ls` lists runs"
            ))),
            _ => Err(Error::Ambiguous(format!(
                "{id_or_prefix:?} matches several runs ({}...); give more of the id",
                ids.join(", ")
            ))),
        }
    }

    pub fn get(&self, id: &str) -> Result<Option<RunRow>> {
        let row = self
            .conn
            .query_row(
                "SELECT id, created_at_ms, prompt, generated_text, model, architecture, dtype, depth, device,
                        hostname, cpu, source, source_kind, duration_ns, prompt_tokens, generated_tokens,
                        total_j, dynamic_j, avg_power_w, decode_j_per_token, decode_tokens_per_s,
                        energy_label, experiment, complete, imported, trace_path, trace_sha256,
                        stop_reason, label_mix, group_id, config, config_label, repeat, run_order
                 FROM runs WHERE id = ?1",
                params![id],
                |r| {
                    Ok(RunRow {
                        id: r.get(0)?,
                        created_at_ms: r.get(1)?,
                        prompt: r.get(2)?,
                        generated_text: r.get(3)?,
                        model: r.get(4)?,
                        architecture: r.get(5)?,
                        dtype: r.get(6)?,
                        depth: r.get(7)?,
                        device: parsed(8, r.get(8)?)?,
                        hostname: r.get(9)?,
                        cpu: r.get(10)?,
                        source: r.get(11)?,
                        source_kind: r.get(12)?,
                        duration_ns: r.get(13)?,
                        prompt_tokens: r.get(14)?,
                        generated_tokens: r.get(15)?,
                        total_j: r.get(16)?,
                        dynamic_j: r.get(17)?,
                        avg_power_w: r.get(18)?,
                        decode_j_per_token: r.get(19)?,
                        decode_tokens_per_s: r.get(20)?,
                        energy_label: r.get(21)?,
                        experiment: r.get(22)?,
                        tags: Vec::new(),
                        complete: r.get(23)?,
                        imported: r.get(24)?,
                        trace_path: r.get(25)?,
                        trace_sha256: r.get(26)?,
                        stop_reason: r
                            .get::<_, Option<String>>(27)?
                            .map(|s| parsed(27, s))
                            .transpose()?,
                        label_mix: r.get(28)?,
                        group_id: r.get(29)?,
                        config: r.get(30)?,
                        config_label: r.get(31)?,
                        repeat: r.get(32)?,
                        run_order: r.get(33)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(mut row) = row else {
            return Ok(None);
        };
        row.tags = (|| {
            let mut stmt = self
                .conn
                .prepare("SELECT tag FROM run_tags WHERE run_id = ?1 ORDER BY tag")?;
            let rows = stmt.query_map(params![id], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
        })()
        .map_err(|e| self.err(e))?;
        Ok(Some(row))
    }

    /// Remove a run from the index and, when `delete_file` and it lies inside
    /// `traces_dir` (eprof stored it), its trace file: a trace written elsewhere
    /// (`record --out`) is the user's and stays. Returns the row and whether the file
    /// was deleted.
    pub fn delete_run(
        &mut self,
        id_or_prefix: &str,
        traces_dir: &Path,
        delete_file: bool,
    ) -> Result<(RunRow, bool)> {
        let row = self.find(id_or_prefix)?;
        self.remove(&row.id)?;
        let ours = std::fs::canonicalize(traces_dir)
            .is_ok_and(|t| Path::new(&row.trace_path).starts_with(t));
        if !(delete_file && ours) {
            return Ok((row, false));
        }
        match std::fs::remove_file(&row.trace_path) {
            Ok(()) => Ok((row, true)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((row, true)),
            Err(e) => Err(Error::Index {
                path: self.path.clone(),
                message: format!(
                    "removed {} from the index, but cannot delete {}: {e}",
                    row.id, row.trace_path
                ),
            }),
        }
    }

    /// Remove a run's rows (not its trace file).
    pub fn remove(&mut self, id: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM runs WHERE id = ?1", params![id])
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// How many runs match the filters of `f` (its sort, limit and offset aside).
    pub fn count_matching(&self, f: &RunFilter) -> Result<u64> {
        self.conn
            .query_row(
                &format!("SELECT COUNT(*) FROM runs r WHERE {FILTER}"),
                params![f.model, f.tag, f.experiment, f.prompt_contains, f.group],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Groups of repeated runs, newest first.
    pub fn groups(&self) -> Result<Vec<GroupRow>> {
        let res = (|| -> rusqlite::Result<Vec<GroupRow>> {
            let mut stmt = self.conn.prepare(
                "SELECT group_id, MIN(created_at_ms), MIN(prompt), COUNT(*) FROM runs
                 WHERE group_id IS NOT NULL GROUP BY group_id ORDER BY MIN(created_at_ms) DESC",
            )?;
            let mut groups: Vec<GroupRow> = stmt
                .query_map([], |r| {
                    Ok(GroupRow {
                        id: r.get(0)?,
                        created_at_ms: r.get(1)?,
                        prompt: r.get(2)?,
                        runs: r.get(3)?,
                        configs: Vec::new(),
                        models: Vec::new(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut configs = self.conn.prepare(
                "SELECT config, MIN(config_label), COUNT(*) FROM runs WHERE group_id = ?1
                 GROUP BY config ORDER BY config",
            )?;
            let mut models = self
                .conn
                .prepare("SELECT DISTINCT model FROM runs WHERE group_id = ?1 ORDER BY model")?;
            for g in &mut groups {
                g.configs = configs
                    .query_map(params![g.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                g.models = models
                    .query_map(params![g.id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
            }
            Ok(groups)
        })();
        res.map_err(|e| self.err(e))
    }

    /// The ids of a group's runs, in run order (empty when there is no such group).
    pub fn group_runs(&self, group: &str) -> Result<Vec<String>> {
        let res = (|| -> rusqlite::Result<Vec<String>> {
            let mut stmt = self.conn.prepare(
                "SELECT id FROM runs WHERE group_id = ?1 ORDER BY run_order, created_at_ms",
            )?;
            stmt.query_map(params![group], |r| r.get(0))?.collect()
        })();
        res.map_err(|e| self.err(e))
    }

    pub fn count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Drop every row and index each `*.eprof` file in `dir` again, and every trace the
    /// index held outside `dir` whose file still exists; a trace recorded on another
    /// host than `here` counts as imported. Returns the number indexed and, per file
    /// that could not be read, why.
    pub fn rebuild(&mut self, dir: &Path, here: &str) -> Result<(usize, Vec<(PathBuf, String)>)> {
        // The runs indexed from elsewhere (`record --out`, imports kept in place) are
        // read again from where they are, as long as their file still exists: a
        // rebuild never forgets a run it can still read.
        let elsewhere: Vec<PathBuf> = {
            let mut stmt = self
                .conn
                .prepare("SELECT trace_path FROM runs")
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(|e| self.err(e))?;
            let canon_dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            rows.filter_map(|r| r.ok().map(PathBuf::from))
                .filter(|p| !p.starts_with(&canon_dir) && !p.starts_with(dir) && p.is_file())
                .collect()
        };
        self.conn
            .execute_batch("DELETE FROM runs")
            .map_err(|e| self.err(e))?;
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eprof"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(dir, e)),
        };
        files.sort();
        files.extend(elsewhere);
        let mut ok = 0;
        let mut failed = Vec::new();
        for f in files {
            let bytes = match std::fs::read(&f) {
                Ok(b) => b,
                Err(e) => {
                    failed.push((f, e.to_string()));
                    continue;
                }
            };
            match eprof_format::decode(&bytes) {
                Ok(d) => {
                    let imported = d.trace.meta.machine.hostname != here;
                    self.insert(&d.trace, &f, imported)?;
                    ok += 1;
                }
                Err(e) => failed.push((f, e.to_string())),
            }
        }
        Ok((ok, failed))
    }

    /// Index the unfinished traces in `dir` that the index lacks: runs whose process
    /// died before it could close and index them (a killed server, a power loss) are
    /// history too. A finished trace outside the index is left alone (recorded with
    /// `--no-index`, or removed with `rm --keep-files`: kept out on purpose); so is a
    /// file written in the last `quiet` (a recording in progress indexes its own run
    /// when it ends) and one that does not decode. Returns the ids adopted.
    pub fn adopt(
        &mut self,
        dir: &Path,
        here: impl Fn() -> String,
        quiet: Duration,
    ) -> Result<Vec<String>> {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Ok(Vec::new());
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eprof"))
            .collect();
        files.sort();
        let now = std::time::SystemTime::now();
        let mut adopted = Vec::new();
        for f in files {
            // The file name is the run id for traces eprof writes there.
            let Some(stem) = f.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if self.get(stem)?.is_some() {
                continue;
            }
            let recent = std::fs::metadata(&f)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_none_or(|age| age < quiet);
            // A finished trace is kept out on purpose: known from its last chunk,
            // without reading (or decoding) the whole file on every call.
            if recent || tail(&f).is_none_or(|t| eprof_format::ends_finished(&t)) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&f) else {
                continue;
            };
            let Ok(d) = eprof_format::decode(&bytes) else {
                continue;
            };
            if d.trace.end.is_some() || self.get(&d.trace.meta.id)?.is_some() {
                continue;
            }
            let imported = d.trace.meta.machine.hostname != here();
            self.insert(&d.trace, &f, imported)?;
            adopted.push(d.trace.meta.id.clone());
        }
        Ok(adopted)
    }
}

/// The last MiB of a file (enough for a trace's `END_` chunk: the generated text and
/// a few numbers); `None` if it cannot be read.
fn tail(path: &Path) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    const TAIL: u64 = 1 << 20;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut buf = Vec::with_capacity(len.min(TAIL) as usize);
    f.read_to_end(&mut buf).ok()?;
    Some(buf)
}

fn sql_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::Index {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Column `i`'s text parsed as the trace's typed value it stores.
fn parsed<T: std::str::FromStr<Err = String>>(i: usize, text: String) -> rusqlite::Result<T> {
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    })
}
