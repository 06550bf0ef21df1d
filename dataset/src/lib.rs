//! Parquet datasets of eprof runs, for the tools teams already query with: DuckDB,
//! Polars, Spark, ClickHouse, a lakehouse. A dataset is a folder with one subfolder per
//! table (`runs`, `tokens`, `spans`, `metrics`, `power`; columns in `docs/dataset.md`),
//! each holding Parquet files named by the export that wrote them:
//!
//! ```text
//! DIR/runs/part-<batch>.parquet     DIR/tokens/part-<batch>.parquet   ...
//! ```
//!
//! Appending adds one new batch holding only the runs the dataset does not have yet;
//! files already there are never rewritten. A batch is committed by renaming its files
//! into place, `runs` last: a batch whose `runs` file is missing was interrupted, and
//! its other files are removed the next time the dataset is opened.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use eprof_format::Trace;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::RowAccessor;
use parquet::schema::parser::parse_message_type;

pub mod columns;
mod error;
pub mod tables;

pub use error::Error;
pub use tables::{RowCounts, TABLES};

use columns::TableWriter;

/// An open dataset folder: which runs it holds.
#[derive(Debug)]
pub struct Dataset {
    dir: PathBuf,
    runs: HashSet<String>,
    /// Files of interrupted exports removed on open.
    pub removed: Vec<PathBuf>,
    _lock: Lock,
}

/// One writer per dataset at a time: `DIR/.lock`, removed when the export ends.
#[derive(Debug)]
struct Lock(PathBuf);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn part_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some(batch) = name
            .strip_prefix("part-")
            .and_then(|n| n.strip_suffix(".parquet"))
        {
            out.push((batch.to_string(), p));
        } else if name.starts_with(".part-") && name.ends_with(".tmp") {
            // A batch still being written when an export was interrupted.
            out.push((String::new(), p));
        }
    }
    Ok(out)
}

/// The run ids in one `runs` file.
fn run_ids(path: &Path) -> Result<Vec<String>, Error> {
    let err = |e: parquet::errors::ParquetError| Error::Parquet(format!("{}: {e}", path.display()));
    let reader = SerializedFileReader::new(File::open(path)?).map_err(err)?;
    let projection =
        parse_message_type("message runs { required binary run_id (STRING); }").map_err(err)?;
    let mut ids = Vec::new();
    for row in reader.get_row_iter(Some(projection)).map_err(err)? {
        ids.push(row.map_err(err)?.get_string(0).map_err(err)?.clone());
    }
    Ok(ids)
}

impl Dataset {
    /// Open (or create) the dataset folder `dir`, read the run ids it holds, and
    /// remove what interrupted exports left.
    pub fn open(dir: &Path) -> Result<Dataset, Error> {
        std::fs::create_dir_all(dir)?;
        let lock = dir.join(".lock");
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Busy(format!(
                    "another export is writing to {} (if none is, remove {})",
                    dir.display(),
                    lock.display()
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let lock = Lock(lock);
        let mut runs = HashSet::new();
        let mut batches = HashSet::new();
        let mut removed = Vec::new();
        for (batch, p) in part_files(&dir.join("runs"))? {
            if batch.is_empty() {
                std::fs::remove_file(&p)?;
                removed.push(p);
                continue;
            }
            runs.extend(run_ids(&p)?);
            batches.insert(batch);
        }
        for (table, _) in &TABLES[1..] {
            for (batch, p) in part_files(&dir.join(table))? {
                if !batches.contains(&batch) {
                    std::fs::remove_file(&p)?;
                    removed.push(p);
                }
            }
        }
        Ok(Dataset {
            dir: dir.to_path_buf(),
            runs,
            removed,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the dataset holds this run already.
    pub fn contains(&self, run_id: &str) -> bool {
        self.runs.contains(run_id)
    }

    /// Runs the dataset holds.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Start a batch of new runs. Nothing is visible in the dataset before
    /// [`Batch::commit`].
    pub fn batch(&mut self) -> Result<Batch<'_>, Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // Batch names sort by time; nanoseconds and the process id keep batches of
        // different machines apart when their files are copied into one folder.
        let name = format!(
            "{}{:09}-{:08x}",
            now.as_secs(),
            now.subsec_nanos(),
            std::process::id()
        );
        let mut files = Vec::new();
        let mut writers = Vec::new();
        for (table, cols) in TABLES {
            let dir = self.dir.join(table);
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!(".part-{name}.parquet.tmp"));
            let fin = dir.join(format!("part-{name}.parquet"));
            writers.push(TableWriter::create(table, cols, File::create(&tmp)?)?);
            files.push((tmp, fin));
        }
        let writers: [TableWriter; 5] = writers
            .try_into()
            .map_err(|_| Error::Parquet("five tables".into()))?;
        Ok(Batch {
            ds: self,
            writers: Some(writers),
            files,
            added: Vec::new(),
            rows: [0; 5],
        })
    }
}

/// New runs being written. Dropped without [`Batch::commit`], it leaves nothing
/// behind in the dataset.
pub struct Batch<'a> {
    ds: &'a mut Dataset,
    /// `None` once committed.
    writers: Option<[TableWriter; 5]>,
    files: Vec<(PathBuf, PathBuf)>,
    added: Vec<String>,
    rows: RowCounts,
}

/// What an append wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Appended {
    /// Runs added, in order.
    pub runs: Vec<String>,
    /// Rows written per table, in [`TABLES`] order.
    pub rows: RowCounts,
    /// Bytes of the new Parquet files.
    pub bytes: u64,
}

impl Batch<'_> {
    /// Add one run; `false` (and nothing written) when the dataset or this batch
    /// already holds it.
    pub fn add(&mut self, trace: &Trace) -> Result<bool, Error> {
        let id = &trace.meta.id;
        if self.ds.contains(id) || self.added.contains(id) {
            return Ok(false);
        }
        let Some(writers) = self.writers.as_mut() else {
            return Err(Error::Parquet("batch already committed".into()));
        };
        let n = tables::write_run(trace, writers)?;
        for (r, k) in self.rows.iter_mut().zip(n) {
            *r += k;
        }
        self.added.push(id.clone());
        Ok(true)
    }

    /// Finish the files and move them into the dataset, `runs` last. With no run
    /// added, nothing is kept.
    pub fn commit(mut self) -> Result<Appended, Error> {
        let Some(writers) = self.writers.take() else {
            return Err(Error::Parquet("batch already committed".into()));
        };
        let mut finished = Ok(());
        for w in writers {
            if let Err(e) = w.finish() {
                finished = finished.and(Err(e));
            }
        }
        // On error or with nothing added, Drop removes the temporary files.
        finished?;
        if self.added.is_empty() {
            return Ok(Appended::default());
        }
        let mut bytes = 0;
        // `runs` (the first table) is renamed last: it is what marks the batch done.
        let files = std::mem::take(&mut self.files);
        for (tmp, fin) in files.iter().skip(1).chain(files.iter().take(1)) {
            bytes += std::fs::metadata(tmp)?.len();
            std::fs::rename(tmp, fin)?;
        }
        let added = std::mem::take(&mut self.added);
        self.ds.runs.extend(added.iter().cloned());
        Ok(Appended {
            runs: added,
            rows: self.rows,
            bytes,
        })
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        // Not committed (or failed half way): the temporary files are abandoned.
        for (tmp, _) in &self.files {
            let _ = std::fs::remove_file(tmp);
        }
    }
}
