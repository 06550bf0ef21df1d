//! Where each site of the decoder is: model-level sites, then per layer the layer,
//! its components and (at deep depth) its attention operations, numbered as the
//! trace's site table lists them.

use eprof_core::recorder::SiteId;
use eprof_format::{COMPONENTS, Component, SiteDef};

use crate::config::DecoderConfig;

/// Model-level sites, ids 0..4.
pub const MODEL_SITES: [&str; 4] = ["embedding", "layers", "final_norm", "lm_head"];
/// Operations inside attention recorded at deep depth. Attention dropout is identity
/// at inference, so it has no operation and no timing.
pub const ATTENTION_OPS: [&str; 6] = [
    "kv_cache_append",
    "qk_matmul",
    "scale",
    "mask_apply",
    "softmax",
    "value_matmul",
];

pub(super) const EMBEDDING: SiteId = 0;
pub(super) const FINAL_NORM: SiteId = 2;
pub(super) const LM_HEAD: SiteId = 3;

/// Every component a layer can have. Which ones an architecture has, and their names
/// and order in its traces, is its [`Layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum C {
    InputNorm,
    Q,
    K,
    V,
    QNorm,
    KNorm,
    Rope,
    Attn,
    O,
    /// Gemma 3: the norm on the attention output.
    AttnOutNorm,
    /// The norm before the MLP.
    PreMlpNorm,
    Gate,
    Up,
    Act,
    Down,
    /// Gemma 3: the norm on the MLP output.
    MlpOutNorm,
}
pub(super) const N_C: usize = 16;

// Operation indices in ATTENTION_OPS.
pub(super) const OP_KV_APPEND: u32 = 0;
pub(super) const OP_QK: u32 = 1;
pub(super) const OP_SCALE: u32 = 2;
pub(super) const OP_MASK: u32 = 3;
pub(super) const OP_SOFTMAX: u32 = 4;
pub(super) const OP_VALUE: u32 = 5;

/// An architecture's per-layer sites: its components in execution order (with the
/// names its Hugging Face code uses), then the attention operations.
#[derive(Debug, Clone)]
pub struct Layout {
    pub(super) names: Vec<Component>,
    /// Index of each [`C`] in `names` (`u32::MAX`: the architecture has none).
    pub(super) slot: [u32; N_C],
}

impl Layout {
    pub(super) fn new(parts: &[(C, Component)]) -> Layout {
        let mut slot = [u32::MAX; N_C];
        for (i, (c, _)) in parts.iter().enumerate() {
            slot[*c as usize] = i as u32;
        }
        Layout {
            names: parts.iter().map(|(_, n)| *n).collect(),
            slot,
        }
    }

    /// Llama, Mistral, Qwen2: [`eprof_format::COMPONENTS`].
    pub fn llama() -> Layout {
        use C::*;
        let parts = [
            InputNorm, Q, K, V, Rope, Attn, O, PreMlpNorm, Gate, Up, Act, Down,
        ];
        Layout::new(&std::array::from_fn::<_, 12, _>(|i| {
            (parts[i], COMPONENTS[i])
        }))
    }

    /// Gemma 3: the Llama components plus `q_norm`, `k_norm`, and the norms around the
    /// MLP and after attention. Its norm after attention is `post_attention_norm`
    /// (llama.cpp's name): Hugging Face calls it `post_attention_layernorm`, the name
    /// the Llama family uses for the norm before the MLP, which Gemma calls
    /// `pre_feedforward_layernorm`.
    pub fn gemma3() -> Layout {
        use C::*;
        use Component as N;
        Layout::new(&[
            (InputNorm, N::InputLayernorm),
            (Q, N::QProj),
            (K, N::KProj),
            (V, N::VProj),
            (QNorm, N::QNorm),
            (KNorm, N::KNorm),
            (Rope, N::Rope),
            (Attn, N::Attention),
            (O, N::OProj),
            (AttnOutNorm, N::PostAttentionNorm),
            (PreMlpNorm, N::PreFeedforwardLayernorm),
            (Gate, N::GateProj),
            (Up, N::UpProj),
            (Act, N::Act),
            (Down, N::DownProj),
            (MlpOutNorm, N::PostFeedforwardLayernorm),
        ])
    }

    pub(super) fn for_config(cfg: &DecoderConfig) -> Layout {
        if cfg.gemma3.is_some() {
            Layout::gemma3()
        } else {
            Layout::llama()
        }
    }

    pub(super) fn per_layer(&self) -> u32 {
        1 + self.names.len() as u32 + ATTENTION_OPS.len() as u32
    }

    pub(super) fn layer(&self, l: usize) -> SiteId {
        MODEL_SITES.len() as u32 + l as u32 * self.per_layer()
    }

    pub(super) fn comp(&self, l: usize, c: C) -> SiteId {
        let slot = self.slot[c as usize];
        debug_assert!(slot != u32::MAX, "{c:?} is not in this layout");
        self.layer(l) + 1 + slot
    }

    pub(super) fn op(&self, l: usize, o: u32) -> SiteId {
        self.layer(l) + 1 + self.names.len() as u32 + o
    }

    /// Every site of a model with `layers` layers, in id order.
    pub fn sites(&self, layers: usize) -> Vec<SiteDef> {
        let mut v: Vec<SiteDef> = MODEL_SITES
            .iter()
            .map(|c| SiteDef {
                layer: None,
                component: c.to_string(),
                op: None,
            })
            .collect();
        for l in 0..layers as u16 {
            v.push(SiteDef {
                layer: Some(l),
                component: Component::Layer.into(),
                op: None,
            });
            for c in &self.names {
                v.push(SiteDef {
                    layer: Some(l),
                    component: (*c).into(),
                    op: None,
                });
            }
            for o in ATTENTION_OPS {
                v.push(SiteDef {
                    layer: Some(l),
                    component: Component::Attention.into(),
                    op: Some(o.into()),
                });
            }
        }
        v
    }
}

/// Every site of a Llama-family model with `layers` layers, in id order.
pub fn sites(layers: usize) -> Vec<SiteDef> {
    Layout::llama().sites(layers)
}
