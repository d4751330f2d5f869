//! The request model (SPEC §2): parse the posted JSON, then validate it into typed values in
//! which a bad state cannot be represented. Everything after this module works on `Request`
//! and cannot fail on input.

mod arch_layers;
pub mod fields;
mod layers;

use serde_json::{Map, Value, json};

use crate::error::{ErrorCode, Result, SpecError};
use crate::init::catalogue::{self, InitSpec};
pub use arch_layers::{Attention, Cell, Recurrent};
use fields::{Obj, index, join, wrong_type};
pub use layers::{Activation, Layer, LayerKind, NormKind};

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
    fn parse(s: &str, path: &str) -> Result<Self> {
        match s {
            "pytorch" | "torch" => Ok(Framework::PyTorch),
            "keras" => Ok(Framework::Keras),
            "flax" | "jax" => Ok(Framework::Flax),
            _ => Err(SpecError::new(
                ErrorCode::InvalidValue,
                path,
                format!("unknown framework `{s}`; use pytorch, keras or flax"),
            )),
        }
    }
}

/// Output element types. `I64` is only used for PyTorch's `num_batches_tracked` buffer.
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
    fn parse(v: &Value, path: &str) -> Result<Self> {
        let s = match v {
            Value::String(s) => s.as_str(),
            other => return Err(wrong_type(path, "a dtype name", other)),
        };
        match s {
            "float32" | "f32" | "fp32" => Ok(DType::F32),
            "float16" | "f16" | "fp16" | "half" => Ok(DType::F16),
            "bfloat16" | "bf16" => Ok(DType::BF16),
            "float64" | "f64" | "fp64" | "double" => Ok(DType::F64),
            _ => Err(SpecError::new(
                ErrorCode::InvalidValue,
                path,
                format!("unknown dtype `{s}`; use float32, float16, bfloat16 or float64"),
            )),
        }
    }
}

/// A tensor given directly by name and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub init: InitSpec,
    pub dtype: Option<DType>,
    pub fan_in: Option<u64>,
    pub fan_out: Option<u64>,
}

/// A validated request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub seed: u64,
    pub framework: Framework,
    pub dtype: DType,
    pub layers: Vec<Layer>,
    pub tensors: Vec<RawTensor>,
    /// A Hugging Face model (`hf_config`), instead of `layers`.
    pub hf: Option<crate::hf::HfModel>,
}

/// Seeds above 2^53 are echoed as strings: many JSON readers parse numbers as doubles.
pub fn seed_json(seed: u64) -> Value {
    if seed > (1u64 << 53) {
        json!(seed.to_string())
    } else {
        json!(seed)
    }
}

/// Parses and validates a request body.
pub fn parse_bytes(body: &[u8]) -> Result<Request> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        SpecError::new(
            ErrorCode::MalformedJson,
            "",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    parse(&value)
}

pub fn parse(value: &Value) -> Result<Request> {
    let root = Obj::new(value, "")?;
    let (seed_v, seed_path) = root.require_any(&["seed"], "")?;
    let seed = parse_seed(seed_v, &seed_path)?;
    let framework = match root.str_any(&["framework"])? {
        Some((s, p)) => Framework::parse(s, &p)?,
        None => Framework::PyTorch,
    };
    let dtype = match root.get_any(&["dtype"])? {
        Some((v, p)) => DType::parse(v, &p)?,
        None => DType::F32,
    };
    let hf = match root.get_any(&["hf_config"])? {
        Some((v, p)) => {
            if framework != Framework::PyTorch {
                return Err(SpecError::new(
                    ErrorCode::InvalidValue,
                    "framework",
                    "`hf_config` describes a PyTorch (transformers) model; use framework `pytorch`",
                ));
            }
            Some(crate::hf::parse(v, &p)?)
        }
        None => None,
    };
    let layers = match root.get_any(&["layers"])? {
        None => Vec::new(),
        Some((Value::Array(items), p)) => layers::parse_layers(items, &p)?,
        Some((v, p)) => return Err(wrong_type(&p, "a list of layers", v)),
    };
    let tensors = match root.get_any(&["tensors"])? {
        None => Vec::new(),
        Some((Value::Array(items), p)) => items
            .iter()
            .enumerate()
            .map(|(i, t)| parse_raw_tensor(t, &index(&p, i)))
            .collect::<Result<_>>()?,
        Some((v, p)) => return Err(wrong_type(&p, "a list of tensors", v)),
    };
    root.finish()?;
    if hf.is_some() && !layers.is_empty() {
        return Err(SpecError::new(
            ErrorCode::ConflictingFields,
            "layers",
            "`hf_config` describes the whole model; give either `hf_config` or `layers`",
        ));
    }
    Ok(Request {
        seed,
        framework,
        dtype,
        layers,
        tensors,
        hf,
    })
}

fn parse_seed(v: &Value, path: &str) -> Result<u64> {
    let range = || {
        SpecError::new(
            ErrorCode::SeedOutOfRange,
            path,
            "the seed must be an integer from 0 to 18446744073709551615",
        )
    };
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(range),
        Value::String(s) => {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SpecError::new(
                    ErrorCode::InvalidValue,
                    path,
                    format!("a seed string must hold decimal digits only, got {s:?}"),
                ));
            }
            s.parse::<u64>().map_err(|_| range())
        }
        other => Err(wrong_type(
            path,
            "an unsigned integer (or a decimal string)",
            other,
        )),
    }
}

fn parse_raw_tensor(v: &Value, path: &str) -> Result<RawTensor> {
    let o = Obj::new(v, path)?;
    let (name, name_path) = o.str_any(&["name"])?.ok_or_else(|| {
        SpecError::new(
            ErrorCode::MissingField,
            join(path, "name"),
            "a tensor needs a `name`",
        )
    })?;
    check_name(name, &name_path)?;
    let (shape_v, shape_path) =
        o.require_any(&["shape"], " (a list of positive sizes; [] for a scalar)")?;
    let shape = fields::shape(shape_v, &shape_path, false)?;
    let (init_v, init_path) = o.require_any(&["init"], " (an initializer name or object)")?;
    let init = catalogue::parse(init_v, &init_path)?;
    let dtype = match o.get_any(&["dtype"])? {
        Some((v, p)) => Some(DType::parse(v, &p)?),
        None => None,
    };
    let fan_in = o.size_any(&["fan_in"])?.map(|x| x.0);
    let fan_out = o.size_any(&["fan_out"])?.map(|x| x.0);
    o.finish()?;
    Ok(RawTensor {
        name: name.to_string(),
        shape,
        init,
        dtype,
        fan_in,
        fan_out,
    })
}

pub(crate) fn check_name(name: &str, path: &str) -> Result<()> {
    if name.is_empty() {
        return Err(SpecError::new(
            ErrorCode::InvalidValue,
            path,
            "a name must not be empty",
        ));
    }
    if name.len() > 1024 {
        return Err(SpecError::new(
            ErrorCode::InvalidValue,
            path,
            "a name must be at most 1024 bytes",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(SpecError::new(
            ErrorCode::InvalidValue,
            path,
            "a name must not contain control characters",
        ));
    }
    Ok(())
}

impl Request {
    /// The canonical resolved request: every default explicit, aliases replaced by canonical
    /// names, inferred sizes filled in. Parsing it gives back an equal `Request`, so posting it
    /// reproduces the response byte for byte.
    pub fn to_canonical_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("seed".into(), seed_json(self.seed));
        m.insert("framework".into(), json!(self.framework.as_str()));
        m.insert("dtype".into(), json!(self.dtype.as_str()));
        m.insert(
            "layers".into(),
            Value::Array(self.layers.iter().map(Layer::to_json).collect()),
        );
        let tensors = self
            .tensors
            .iter()
            .map(|t| {
                let mut o = Map::new();
                o.insert("name".into(), json!(t.name));
                o.insert("shape".into(), json!(t.shape));
                o.insert("init".into(), t.init.to_json());
                if let Some(d) = t.dtype {
                    o.insert("dtype".into(), json!(d.as_str()));
                }
                if let Some(f) = t.fan_in {
                    o.insert("fan_in".into(), json!(f));
                }
                if let Some(f) = t.fan_out {
                    o.insert("fan_out".into(), json!(f));
                }
                Value::Object(o)
            })
            .collect();
        m.insert("tensors".into(), Value::Array(tensors));
        if let Some(hf) = &self.hf {
            m.insert("hf_config".into(), hf.to_json());
        }
        Value::Object(m)
    }
}
