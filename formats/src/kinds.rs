//! Small vocabularies the trace keeps as text: why a run ended, the device it ran on,
//! and the component names of a layer. On disk (binary and JSON) each is the same
//! text older traces hold, so every trace written before these types existed reads
//! unchanged; in code each is a type, so a misspelt name is a compile error and text
//! nobody knows is refused with its value instead of being read as something else.

use std::fmt;
use std::str::FromStr;

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// Why generation stopped, as a live event says it. A trace keeps the message of an
/// error too: [`RunStop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced an end-of-sequence token.
    Eos,
    /// The token limit was reached.
    MaxTokens,
    /// The run was stopped by its caller (Ctrl-C, DELETE on the server).
    Cancelled,
    /// Generation failed; the trace holds what was recorded until then.
    Error,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::MaxTokens => "max_tokens",
            StopReason::Cancelled => "cancelled",
            StopReason::Error => "error",
        }
    }
}

/// Why a recorded run ended ([`crate::RunEnd::stop_reason`]). Its text is
/// `eos`, `max_tokens`, `cancelled` or `error: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RunStop {
    Eos,
    MaxTokens,
    Cancelled,
    /// Generation failed with this message (empty when none was given).
    Error(String),
}

impl RunStop {
    pub fn reason(&self) -> StopReason {
        match self {
            RunStop::Eos => StopReason::Eos,
            RunStop::MaxTokens => StopReason::MaxTokens,
            RunStop::Cancelled => StopReason::Cancelled,
            RunStop::Error(_) => StopReason::Error,
        }
    }

    /// The run stopped because its caller stopped it or it failed: its figures
    /// describe a part of a run.
    pub fn is_cut_short(&self) -> bool {
        matches!(self, RunStop::Cancelled | RunStop::Error(_))
    }
}

impl From<StopReason> for RunStop {
    /// An error this way has no message.
    fn from(r: StopReason) -> RunStop {
        match r {
            StopReason::Eos => RunStop::Eos,
            StopReason::MaxTokens => RunStop::MaxTokens,
            StopReason::Cancelled => RunStop::Cancelled,
            StopReason::Error => RunStop::Error(String::new()),
        }
    }
}

impl fmt::Display for RunStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunStop::Error(m) if !m.is_empty() => write!(f, "error: {m}"),
            r => f.write_str(r.reason().as_str()),
        }
    }
}

impl FromStr for RunStop {
    type Err = String;
    fn from_str(s: &str) -> Result<RunStop, String> {
        Ok(match s {
            "eos" => RunStop::Eos,
            "max_tokens" => RunStop::MaxTokens,
            "cancelled" => RunStop::Cancelled,
            "error" => RunStop::Error(String::new()),
            s => match s.strip_prefix("error: ") {
                Some(m) => RunStop::Error(m.to_string()),
                None => {
                    return Err(format!(
                        "unknown stop reason {s:?} (known: eos, max_tokens, cancelled, error: MESSAGE)"
                    ));
                }
            },
        })
    }
}

/// Where a model runs: `cpu`, `cuda` (GPU 0), `cuda:N`, `metal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
    Metal,
}

impl DeviceSpec {
    pub fn is_cpu(self) -> bool {
        self == DeviceSpec::Cpu
    }
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "metal" => Ok(DeviceSpec::Metal),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            d => match d.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(n)) => Ok(DeviceSpec::Cuda(n)),
                Some(Err(_)) => Err(format!("device {d:?}: cuda:N takes a GPU index")),
                None => Err(format!("unknown device {d:?}: use cpu, cuda[:N] or metal")),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(0) => f.write_str("cuda"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Metal => f.write_str("metal"),
        }
    }
}

/// Serde for a `Display` + `FromStr` type: as its text (a JSON string). Shared with
/// the request types of `eprof-record`.
#[macro_export]
macro_rules! serde_as_text {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Serialised as its text, in bincode and serde alike.
macro_rules! as_text {
    ($t:ty) => {
        impl Encode for $t {
            fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
                self.to_string().encode(e)
            }
        }
        impl<Ctx> Decode<Ctx> for $t {
            fn decode<D: Decoder<Context = Ctx>>(d: &mut D) -> Result<Self, DecodeError> {
                String::decode(d)?.parse().map_err(DecodeError::OtherString)
            }
        }
        bincode::impl_borrow_decode!($t);
        $crate::serde_as_text!($t);
    };
}
as_text!(RunStop);
as_text!(DeviceSpec);

/// `Component`: its variants with their trace names, written once.
macro_rules! components {
    ($($(#[$doc:meta])* $v:ident => $name:literal,)*) => {
        /// The component names of a layer that eprof's adapters write, in the trace's
        /// spelling ([`Component::name`]). A site's `component` stays text in the
        /// trace, since an adapter from a plugin may name its own; code that looks for
        /// one of these asks [`crate::SiteDef::is`] instead of comparing strings.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Component {
            $($(#[$doc])* $v,)*
        }

        impl Component {
            pub const ALL: &'static [Component] = &[$(Component::$v,)*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Component::$v => $name,)*
                }
            }
        }
    };
}

components! {
    /// A whole layer.
    Layer => "layer",
    InputLayernorm => "input_layernorm",
    QProj => "q_proj",
    KProj => "k_proj",
    VProj => "v_proj",
    /// Gemma 3.
    QNorm => "q_norm",
    /// Gemma 3.
    KNorm => "k_norm",
    Rope => "rope",
    Attention => "attention",
    OProj => "o_proj",
    /// Gemma 3: the norm on the attention output.
    PostAttentionNorm => "post_attention_norm",
    /// The Llama family's norm before the MLP.
    PostAttentionLayernorm => "post_attention_layernorm",
    /// Gemma 3's norm before the MLP.
    PreFeedforwardLayernorm => "pre_feedforward_layernorm",
    GateProj => "gate_proj",
    UpProj => "up_proj",
    /// The MLP's activation (SiLU, GELU) times the up projection.
    Act => "act",
    DownProj => "down_proj",
    /// Gemma 3: the norm on the MLP output.
    PostFeedforwardLayernorm => "post_feedforward_layernorm",
}

impl Component {
    /// The component of this name, if eprof's adapters write it.
    pub fn of(name: &str) -> Option<Component> {
        Component::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// On the attention side of a layer (the rest is the MLP side).
    pub fn is_attention_side(self) -> bool {
        use Component::*;
        matches!(
            self,
            InputLayernorm
                | QProj
                | KProj
                | VProj
                | QNorm
                | KNorm
                | Rope
                | Attention
                | OProj
                | PostAttentionNorm
        )
    }
}

impl From<Component> for String {
    fn from(c: Component) -> String {
        c.name().to_string()
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_read_as_they_were_written() {
        for text in [
            "eos",
            "max_tokens",
            "cancelled",
            "error",
            "error: out of memory",
        ] {
            let r: RunStop = text.parse().unwrap();
            assert_eq!(r.to_string(), text);
        }
        assert_eq!(
            "error: a: b".parse::<RunStop>().unwrap(),
            RunStop::Error("a: b".into())
        );
        let e = "stopped".parse::<RunStop>().unwrap_err();
        assert!(e.contains("\"stopped\""), "{e}");
        assert!("errors".parse::<RunStop>().is_err());
    }

    #[test]
    fn text_types_encode_as_the_strings_older_traces_hold() {
        let cfg = bincode::config::standard();
        for (v, text) in [
            (DeviceSpec::Cpu, "cpu"),
            (DeviceSpec::Cuda(0), "cuda"),
            (DeviceSpec::Cuda(3), "cuda:3"),
            (DeviceSpec::Metal, "metal"),
        ] {
            let typed = bincode::encode_to_vec(v, cfg).unwrap();
            assert_eq!(typed, bincode::encode_to_vec(text, cfg).unwrap());
            let (back, _): (DeviceSpec, _) = bincode::decode_from_slice(&typed, cfg).unwrap();
            assert_eq!(back, v);
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("{text:?}"));
        }
        assert_eq!(
            "cuda:0".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::Cuda(0),
            "older traces may spell GPU 0 out"
        );
        let bad = bincode::encode_to_vec("tpu", cfg).unwrap();
        let e = crate::codec::decode_payload::<DeviceSpec>(&bad).unwrap_err();
        assert!(e.contains("\"tpu\""), "{e}");
        let stop = RunStop::Error("boom".into());
        let typed = bincode::encode_to_vec(&stop, cfg).unwrap();
        assert_eq!(typed, bincode::encode_to_vec("error: boom", cfg).unwrap());
        assert!(serde_json::from_str::<RunStop>("\"weird\"").is_err());
    }

    #[test]
    fn component_names_are_unique_and_found_back() {
        for &c in Component::ALL {
            assert_eq!(Component::of(c.name()), Some(c));
        }
        assert_eq!(Component::of("q_proj"), Some(Component::QProj));
        assert_eq!(Component::of("my_adapter_part"), None);
    }
}
