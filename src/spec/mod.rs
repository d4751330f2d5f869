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

/// Tensor-parallel sharding: this rank's slice of every tensor (SPEC §2 "Partial requests").
#[derive(Clone, Debug, PartialEq)]
pub struct Shard {
    pub rank: u64,
    pub world_size: u64,
    /// Default split axis (negative counts from the end); `None` replicates by default.
    pub dim: Option<i64>,
    /// Per-tensor overrides: glob → axis, or `None` to replicate. The most specific matching
    /// pattern wins: an exact name, else the longest pattern (ties: the first in byte order).
    pub dims: Vec<(String, Option<i64>)>,
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
    /// A Keras model (`keras_model`, `model.to_json()`), instead of `layers`.
    pub keras: Option<crate::keras::KerasModel>,
    /// Tensor names or glob patterns; the response holds only the matching tensors.
    pub only: Option<Vec<String>>,
    pub shard: Option<Shard>,
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
    // Initializer names are framework-scoped (`init::scoped`): under keras/flax they are first
    // rewritten into catalogue entries. An invalid `framework` is reported by `parse_request`.
    let fw = match value.get("framework") {
        Some(Value::String(s)) => Framework::parse(s, "framework").ok(),
        None if value.get("keras_model").is_some() => Some(Framework::Keras),
        _ => None,
    };
    if let Some(fw) = fw
        && let Some(scoped) = crate::init::scoped::apply(value, fw)?
    {
        return parse_request(&scoped);
    }
    parse_request(value)
}

fn parse_request(value: &Value) -> Result<Request> {
    let root = Obj::new(value, "")?;
    let (seed_v, seed_path) = root.require_any(&["seed"], "")?;
    let seed = parse_seed(seed_v, &seed_path)?;
    let keras_given = root.has("keras_model");
    let framework = match root.str_any(&["framework"])? {
        Some((s, p)) => {
            let f = Framework::parse(s, &p)?;
            if keras_given && f != Framework::Keras {
                return Err(SpecError::new(
                    ErrorCode::InvalidValue,
                    p,
                    "`keras_model` is a Keras model; leave `framework` out or use `keras`",
                ));
            }
            f
        }
        None if keras_given => Framework::Keras,
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
    let keras = match root.get_any(&["keras_model"])? {
        Some((v, p)) => Some(crate::keras::parse(v, &p)?),
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
    let only = match root.get_any(&["only"])? {
        None => None,
        Some((Value::Array(items), p)) => {
            let mut pats = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let ip = index(&p, i);
                match item {
                    Value::String(s) => {
                        check_glob(s, &ip)?;
                        pats.push(s.clone());
                    }
                    other => return Err(wrong_type(&ip, "a tensor name or glob pattern", other)),
                }
            }
            if pats.is_empty() {
                return Err(SpecError::new(
                    ErrorCode::InvalidValue,
                    p,
                    "`only` must list at least one name or pattern",
                ));
            }
            Some(pats)
        }
        Some((v, p)) => return Err(wrong_type(&p, "a list of tensor names or glob patterns", v)),
    };
    let shard = match root.get_any(&["shard"])? {
        None => None,
        Some((v, p)) => Some(parse_shard(v, &p)?),
    };
    root.finish()?;
    if hf.is_some() && !layers.is_empty() {
        return Err(SpecError::new(
            ErrorCode::ConflictingFields,
            "layers",
            "`hf_config` describes the whole model; give either `hf_config` or `layers`",
        ));
    }
    if keras.is_some() && !layers.is_empty() {
        return Err(SpecError::new(
            ErrorCode::ConflictingFields,
            "layers",
            "`keras_model` describes the whole model; give either `keras_model` or `layers`",
        ));
    }
    Ok(Request {
        seed,
        framework,
        dtype,
        layers,
        tensors,
        hf,
        keras,
        only,
        shard,
    })
}

/// Compiles a glob as `plan` will (`*` and `?` match any character, `.` and `/` included).
pub fn glob(pattern: &str) -> std::result::Result<globset::GlobMatcher, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
}

fn check_glob(pattern: &str, path: &str) -> Result<()> {
    if pattern.is_empty() {
        return Err(SpecError::new(
            ErrorCode::InvalidValue,
            path,
            "a pattern must not be empty",
        ));
    }
    glob(pattern).map(|_| ()).map_err(|e| {
        SpecError::new(
            ErrorCode::InvalidValue,
            path,
            format!("not a valid glob pattern: {e}"),
        )
    })
}

fn shard_dim(v: &Value, path: &str) -> Result<Option<i64>> {
    match v {
        Value::Null => Ok(None),
        other => {
            let d = fields::integer(other, path)?;
            if !(-64..64).contains(&d) {
                return Err(SpecError::new(
                    ErrorCode::InvalidValue,
                    path,
                    format!("{d} is not a tensor axis"),
                ));
            }
            Ok(Some(d))
        }
    }
}

fn parse_shard(v: &Value, path: &str) -> Result<Shard> {
    let o = Obj::new(v, path)?;
    let (ws, _) = o.size_any(&["world_size"])?.ok_or_else(|| {
        SpecError::new(
            ErrorCode::MissingField,
            join(path, "world_size"),
            "a shard needs `world_size`",
        )
    })?;
    let (rank_v, rank_path) = o.require_any(&["rank"], " (0 ≤ rank < world_size)")?;
    let rank = match rank_v {
        Value::Number(n) => n.as_u64().filter(|&r| r < ws).ok_or_else(|| {
            SpecError::new(
                ErrorCode::InvalidValue,
                &rank_path,
                format!("rank must be an integer in [0, {ws}), got {n}"),
            )
        })?,
        other => return Err(wrong_type(&rank_path, "an integer", other)),
    };
    let dim = match o.get_any(&["dim"])? {
        None => Some(0),
        Some((v, p)) => shard_dim(v, &p)?,
    };
    let mut dims = Vec::new();
    if let Some((dv, dp)) = o.get_any(&["dims"])? {
        let m = match dv {
            Value::Object(m) => m,
            other => {
                return Err(wrong_type(
                    &dp,
                    "an object mapping name patterns to an axis or null",
                    other,
                ));
            }
        };
        for (pat, d) in m {
            let pp = format!("{dp}[{}]", serde_json::to_string(pat).unwrap_or_default());
            check_glob(pat, &pp)?;
            dims.push((pat.clone(), shard_dim(d, &pp)?));
        }
    }
    o.finish()?;
    Ok(Shard {
        rank,
        world_size: ws,
        dim,
        dims,
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
        if let Some(k) = &self.keras {
            m.insert("keras_model".into(), k.to_json());
        }
        if let Some(only) = &self.only {
            m.insert("only".into(), json!(only));
        }
        if let Some(sh) = &self.shard {
            let dims: Map<String, Value> =
                sh.dims.iter().map(|(p, d)| (p.clone(), json!(d))).collect();
            m.insert(
                "shard".into(),
                json!({"rank": sh.rank, "world_size": sh.world_size, "dim": sh.dim, "dims": dims}),
            );
        }
        Value::Object(m)
    }
}
