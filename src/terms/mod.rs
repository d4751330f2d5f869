//! The vocabulary the request model, the initializers and the model importers share: the
//! framework, the element type, the activation, and `fields` (typed JSON access with JSON
//! paths in every error). A leaf: it uses nothing of the crate but `error` (itself a leaf), so
//! `hf`, `keras` and `init` take these from here instead of from `spec`, and `spec` can use
//! them without a cycle. `spec` re-exports every name at its old path (`spec::Framework`,
//! `spec::fields`…).

pub mod fields;

use serde_json::{Value, json};

use crate::error::{Result, SpecError};
use fields::wrong_type;

/// The framework whose conventions (names, layouts, initializer defaults) a request follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framework {
    PyTorch,
    Keras,
    Flax,
}

impl Framework {
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::PyTorch => "pytorch",
            Framework::Keras => "keras",
            Framework::Flax => "flax",
        }
    }
    pub(crate) fn parse(s: &str, path: &str) -> Result<Self> {
        match s {
            "pytorch" | "torch" => Ok(Framework::PyTorch),
            "keras" => Ok(Framework::Keras),
            "flax" | "jax" => Ok(Framework::Flax),
            _ => Err(SpecError::invalid_value(
                path,
                format!("unknown framework `{s}`; use pytorch, keras or flax"),
            )),
        }
    }
}

/// Output element types. `I64` is used for PyTorch's `num_batches_tracked` buffer and for raw
/// tensors that ask for it (integer buffers, constant initializers only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F16,
    BF16,
    F32,
    F64,
    I64,
}

impl DType {
    pub fn size(self) -> u64 {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }
    /// The request spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I64 => "int64",
        }
    }
    /// The safetensors spelling.
    pub fn safetensors(self) -> &'static str {
        match self {
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F32 => "F32",
            DType::F64 => "F64",
            DType::I64 => "I64",
        }
    }
    /// Position in the safetensors `Dtype` enum; the reference writer orders tensors by this,
    /// descending, so every tensor starts aligned to its element size.
    pub fn safetensors_rank(self) -> u8 {
        match self {
            DType::F16 => 13,
            DType::BF16 => 14,
            DType::F32 => 17,
            DType::F64 => 19,
            DType::I64 => 20,
        }
    }
    pub(crate) fn parse(v: &Value, path: &str) -> Result<Self> {
        let s = match v {
            Value::String(s) => s.as_str(),
            other => return Err(wrong_type(path, "a dtype name", other)),
        };
        match s {
            "float32" | "f32" | "fp32" => Ok(DType::F32),
            "float16" | "f16" | "fp16" | "half" => Ok(DType::F16),
            "bfloat16" | "bf16" => Ok(DType::BF16),
            "float64" | "f64" | "fp64" | "double" => Ok(DType::F64),
            _ => Err(SpecError::invalid_value(
                path,
                format!("unknown dtype `{s}`; use float32, float16, bfloat16 or float64"),
            )),
        }
    }
}

/// Activations: as a layer's `activation` attribute or as a standalone parameter-free entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Linear,
    Relu,
    LeakyRelu { negative_slope: f64 },
    Gelu,
    Silu,
    Elu,
    Selu,
    Tanh,
    Sigmoid,
    Softmax,
    Softplus,
    Mish,
}

pub const ACTIVATION_NAMES: &[&str] = &[
    "linear",
    "identity",
    "relu",
    "leaky_relu",
    "gelu",
    "silu",
    "swish",
    "elu",
    "selu",
    "tanh",
    "sigmoid",
    "softmax",
    "softplus",
    "mish",
];

impl Activation {
    pub fn from_name(name: &str, negative_slope: Option<f64>) -> Option<Activation> {
        Some(match name {
            "linear" | "identity" | "none" => Activation::Linear,
            "relu" => Activation::Relu,
            "leaky_relu" => Activation::LeakyRelu {
                negative_slope: negative_slope.unwrap_or(0.01),
            },
            "gelu" => Activation::Gelu,
            "silu" | "swish" => Activation::Silu,
            "elu" => Activation::Elu,
            "selu" => Activation::Selu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "softmax" => Activation::Softmax,
            "softplus" => Activation::Softplus,
            "mish" => Activation::Mish,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Elu => "elu",
            Activation::Selu => "selu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Softmax => "softmax",
            Activation::Softplus => "softplus",
            Activation::Mish => "mish",
        }
    }

    /// The canonical request form: a name, or an object for leaky_relu's slope (hand-written:
    /// the names are the request's, shared with `name`, which a derive would duplicate).
    pub(crate) fn to_json(self) -> Value {
        match self {
            Activation::LeakyRelu { negative_slope } => {
                json!({"name": "leaky_relu", "negative_slope": negative_slope})
            }
            other => json!(other.name()),
        }
    }
}
