//! Where eprof keeps its data: traces, the run index, models and plugins.

use std::path::{Path, PathBuf};

/// The data directory and the files inside it.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// `explicit` (from `--data-dir`), else `EPROF_HOME`, else the per-user data
    /// directory (`$XDG_DATA_HOME/eprof`, `~/.local/share/eprof`, or
    /// `~/Library/Application Support/eprof` on macOS).
    pub fn resolve(explicit: Option<&Path>) -> Self {
        let root = explicit
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("EPROF_HOME").map(PathBuf::from))
            .unwrap_or_else(default_root);
        DataDir { root }
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn index(&self) -> PathBuf {
        self.root.join("index.sqlite")
    }
    pub fn traces(&self) -> PathBuf {
        self.root.join("traces")
    }
    pub fn models(&self) -> PathBuf {
        self.root.join("models")
    }
    pub fn plugins(&self) -> PathBuf {
        self.root.join("plugins")
    }
    pub fn trace_path(&self, run_id: &str) -> PathBuf {
        self.traces().join(format!("{run_id}.eprof"))
    }
}

fn default_root() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if let (true, Some(h)) = (cfg!(target_os = "macos"), &home) {
        return h.join("Library/Application Support/eprof");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("eprof");
    }
    match home {
        Some(h) => h.join(".local/share/eprof"),
        None => PathBuf::from(".eprof"),
    }
}
