//! Which models a profiler can run, and where it finds them: the path given, then
//! `$EPROF_MODEL`, the data directory's `models/`, the Hugging Face cache, the
//! built-in tiny model.

use std::path::{Path, PathBuf};

use eprof_core::paths::DataDir;
use serde::Serialize;

use crate::error::{ErrorKind, RecordError, Result};
use crate::request::ModelChoice;

/// The models a profiler can run by id: the data directory's `models/`, the Hugging
/// Face cache, `$EPROF_MODEL`, models given by path at start, the built-in tiny model.
/// Cheap to clone; listing reads the folders each time, so a model fetched while a
/// server runs appears without a restart.
#[derive(Debug, Clone)]
pub struct ModelCatalog {
    pub(crate) data: DataDir,
    /// Models given by path when the profiler was made (`eprof serve --model`).
    pub(crate) extra: Vec<PathBuf>,
}

/// A model the profiler can run by id (`GET /api/models`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KnownModel {
    /// What a request names: the file or folder name, `org/name` for the Hugging Face
    /// cache, `builtin:tiny-llama`.
    pub id: String,
    pub path: PathBuf,
    /// `data_dir`, `hf_cache`, `env` ($EPROF_MODEL), `given` (at start), `builtin`.
    pub origin: &'static str,
    /// The model [`ModelChoice::Default`] picks.
    pub default: bool,
}

impl ModelCatalog {
    pub fn data(&self) -> &DataDir {
        &self.data
    }

    /// Every model this profiler can run by id, the default first.
    pub fn models(&self) -> Vec<KnownModel> {
        let mut out: Vec<KnownModel> = Vec::new();
        let mut add = |path: PathBuf, id: String, origin: &'static str| {
            if !out.iter().any(|m| m.path == path || m.id == id) {
                out.push(KnownModel {
                    id,
                    path,
                    origin,
                    default: false,
                });
            }
        };
        let name_of = |p: &Path| {
            p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        };
        for p in &self.extra {
            add(p.clone(), name_of(p), "given");
        }
        if let Some(p) = env_model() {
            add(p.clone(), name_of(&p), "env");
        }
        for p in models_in(&self.data.models()) {
            add(p.clone(), name_of(&p), "data_dir");
        }
        for (id, p) in hf_cache_models() {
            add(p, id, "hf_cache");
        }
        add(
            PathBuf::from(eprof_models::load::BUILTIN_TINY),
            eprof_models::load::BUILTIN_TINY.into(),
            "builtin",
        );
        let (default, _) = self.default_model();
        if let Some(m) = out.iter_mut().find(|m| m.path == default) {
            m.default = true;
        }
        out
    }

    /// The model [`ModelChoice::Default`] picks, and why (for the user).
    pub fn default_model(&self) -> (PathBuf, String) {
        if let Some(p) = self.extra.first() {
            return (p.clone(), "given at start".into());
        }
        if let Some(p) = env_model() {
            return (p, "from $EPROF_MODEL".into());
        }
        if let Some(p) = models_in(&self.data.models()).into_iter().next() {
            return (p, format!("from {}", self.data.models().display()));
        }
        if let Some((_, p)) = hf_cache_models().into_iter().next() {
            return (p, "from the Hugging Face cache".into());
        }
        (
            PathBuf::from(eprof_models::load::BUILTIN_TINY),
            "no --model given and none found ($EPROF_MODEL, the data directory's models/, \
             the Hugging Face cache): this is the built-in tiny Llama with RANDOM WEIGHTS; \
             its time and energy are real, its text is noise. Give --model FILE.gguf or a \
             Hugging Face folder, or fetch one: `eprof model fetch smollm2`"
                .into(),
        )
    }

    /// The file or folder a choice names, and how it was chosen.
    pub fn resolve_model(&self, choice: &ModelChoice) -> Result<(PathBuf, String)> {
        match choice {
            ModelChoice::Default => Ok(self.default_model()),
            ModelChoice::Path(p) => Ok((p.clone(), String::new())),
            ModelChoice::Id(id) => self
                .models()
                .into_iter()
                .find(|m| &m.id == id)
                .map(|m| (m.path, String::new()))
                .ok_or_else(|| {
                    RecordError::new(ErrorKind::NotFound, format!("no model with id {id:?}"))
                        .with_hint("GET /api/models (or `eprof model list`) lists the ids")
                }),
        }
    }
}

fn env_model() -> Option<PathBuf> {
    std::env::var_os("EPROF_MODEL")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// GGUF files and Hugging Face folders in `dir`, sorted.
fn models_in(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf") || p.join("config.json").exists())
        .collect();
    entries.sort();
    entries
}

/// Models in the Hugging Face cache: (`org/name`, snapshot folder or GGUF file).
/// The Hugging Face cache's `hub` folder, as the Hub's own clients find it:
/// `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. Where
/// `eprof model fetch` puts what it downloads and where a run looks for a model.
pub fn hf_hub_cache() -> PathBuf {
    std::env::var_os("HF_HUB_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
        })
        .unwrap_or_else(|| PathBuf::from(".cache/huggingface/hub"))
}

fn hf_cache_models() -> Vec<(String, PathBuf)> {
    let root = hf_hub_cache();
    let mut repos: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("models--"))
        })
        .collect();
    repos.sort();
    let mut out = Vec::new();
    for r in repos {
        let id = r
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .trim_start_matches("models--")
                    .replace("--", "/")
            })
            .unwrap_or_default();
        let Ok(snaps) = std::fs::read_dir(r.join("snapshots")) else {
            continue;
        };
        for s in snaps.filter_map(|e| e.ok().map(|e| e.path())) {
            if s.join("config.json").exists() && s.join("tokenizer.json").exists() {
                out.push((id.clone(), s));
                break;
            }
            if let Some(g) = models_in(&s).into_iter().next() {
                out.push((id.clone(), g));
                break;
            }
        }
    }
    out
}

/// The files of `dir` with extension `ext`, sorted.
pub(crate) fn models_in_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}
