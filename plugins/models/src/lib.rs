//! eprof-models: instrumented Llama, Mistral, Qwen2 and Gemma 3 on candle.
//!
//! One decoder ([`decoder::Decoder`]) serves the four architectures; the adapters
//! differ in configuration (Qwen2: q/k/v bias and tied embeddings; Mistral: sliding
//! window; Gemma 3: QK-norm, norms around attention and MLP, GELU, local and global
//! layers, see [`config::Gemma3`]) and in how they are detected. Both GGUF files (quantized matmuls, tokenizer
//! from metadata) and Hugging Face folders (safetensors, `tokenizer.json`) load.

#![forbid(unsafe_code)]

pub mod activation;
pub mod attention;
pub mod config;
pub mod decoder;
pub mod device;
pub mod load;
pub mod pipeline;
pub mod sampling;
pub mod synth;
pub mod tokenizer;

use candle_core::Device;
use eprof_core::model::{ModelLayout, ModelSource};
use eprof_core::{LoadedModel, ModelAdapter, ModelAdapterRegistration, Result};

/// One adapter per architecture name; the code path is shared.
pub struct Adapter {
    name: &'static str,
}

impl ModelAdapter for Adapter {
    fn name(&self) -> &'static str {
        self.name
    }

    fn detects(&self, src: &ModelSource) -> bool {
        src.architecture == self.name
    }

    fn load(&self, src: &ModelSource, dev: &Device) -> Result<LoadedModel> {
        match src.layout {
            ModelLayout::Gguf => load::load_gguf(src, dev),
            ModelLayout::HfFolder => load::load_hf(src, dev),
            ModelLayout::BuiltinTiny => load::load_tiny(src, dev),
        }
    }
}

pub static LLAMA: Adapter = Adapter { name: "llama" };
pub static MISTRAL: Adapter = Adapter { name: "mistral" };
pub static QWEN2: Adapter = Adapter { name: "qwen2" };
pub static GEMMA3: Adapter = Adapter { name: "gemma3" };

inventory::submit! { ModelAdapterRegistration { adapter: &LLAMA, origin: module_path!() } }
inventory::submit! { ModelAdapterRegistration { adapter: &MISTRAL, origin: module_path!() } }
inventory::submit! { ModelAdapterRegistration { adapter: &QWEN2, origin: module_path!() } }
inventory::submit! { ModelAdapterRegistration { adapter: &GEMMA3, origin: module_path!() } }

/// Call from a binary so the linker keeps this crate's registrations.
pub fn link() {}

/// The real model of the quick start, tests and benchmarks, as `scripts/fetch-model.sh`
/// installs it into the data directory's `models/`.
pub const SMOLLM2_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Where tests and benchmarks find a real model: the file `$env` names, else the
/// data directory's `models/FILE` (where `scripts/fetch-model.sh` puts it). Callers
/// fail (never skip) when it is not there.
pub fn model_path(env: &str, file: &str) -> std::path::PathBuf {
    std::env::var_os(env)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            eprof_core::paths::DataDir::resolve(None)
                .models()
                .join(file)
        })
}

/// SmolLM2: `EPROF_TEST_MODEL`, else the data directory's copy ([`model_path`]).
pub fn smollm2_path() -> std::path::PathBuf {
    model_path("EPROF_TEST_MODEL", SMOLLM2_FILE)
}

/// Threads and kernels the next run's matmuls use (what its trace records).
pub fn execution(gpu: bool) -> eprof_format::Execution {
    eprof_format::Execution {
        threads: pool_threads() as u32,
        kernels: if gpu || !decoder::own_kernels() {
            "candle".into()
        } else {
            format!("eprof {}", eprof_kernels::best().name())
        },
    }
}

pub use decoder::{check_kernel_env, own_weight_types, parse_kernel_types, set_own_weight_types};

/// [`own_weight_types`] by name (`q4_1`, `q4k`, ...).
pub fn own_kernel_types() -> Vec<&'static str> {
    own_weight_types().iter().map(|t| t.name()).collect()
}

/// A weight mix as one line, largest first: `q4_1 78.9%, q8_0 21.0%, f32 <0.1%`; with
/// `kernels`, each type says what runs its CPU matmuls: `q4_1 78.9% (eprof avx2-vnni)`,
/// `q4k 8.3% (candle)` (as models loaded now would: `EPROF_CPU_KERNELS`,
/// `EPROF_CPU_ISA`).
pub fn mix_line(mix: &[(String, u64)], kernels: bool) -> String {
    let total = mix.iter().map(|(_, n)| n).sum::<u64>().max(1);
    let ours = execution(false).kernels;
    let own = own_kernel_types();
    mix.iter()
        .map(|(t, n)| {
            let share = match *n as f64 / total as f64 * 100.0 {
                p if p < 0.05 => format!("{t} <0.1%"),
                p => format!("{t} {p:.1}%"),
            };
            if !kernels {
                share
            } else if ours != "candle" && own.contains(&t.as_str()) {
                format!("{share} ({ours})")
            } else {
                format!("{share} (candle)")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Threads of candle's CPU pool, which its quantized matmuls and eprof's kernels run
/// on: `CANDLE_NUM_THREADS` when set (what candle's pool reads first), else rayon's
/// count (`RAYON_NUM_THREADS` or the cores), as candle decides it.
fn pool_threads() -> usize {
    std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(candle_core::utils::get_num_threads)
}
