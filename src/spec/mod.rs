//! The request model (SPEC §2): parse the posted JSON, then validate it into typed values in
//! which a bad state cannot be represented. Everything after this module works on `Request`
//! and cannot fail on input.
//!
//! This file holds the request's types, the top-level parse and the canonical form; the rest
//! is a file per job:
//!
//! - `json`: the body read as JSON with duplicate keys refused;
//! - `layers` (dense, conv, embedding, norm, activations, …) and `arch_layers` (recurrent and
//!   attention): the `layers` list;
//! - `raw_tensors`: the `tensors` list (name, shape, initializer, dtype, fans, fills);
//! - `patterns`: `only` and `shard.dims` glob patterns, their bounds and compilation;
//! - `shard`: the `shard` object.

mod arch_layers;
mod json;
mod layers;
mod patterns;
mod raw_tensors;
mod shard;

use serde_json::{Map, Value, json};

use crate::error::{ErrorCode, Result, SpecError};
use crate::init::Init;
pub use arch_layers::{Attention, Cell, Recurrent};
use fields::{Obj, index, wrong_type};
pub use json::json_without_duplicates;
pub use layers::{Layer, LayerKind, NormKind};
pub use patterns::{MAX_PATTERN_BYTES, MAX_PATTERNS, glob, glob_set};
use patterns::{check_glob, too_many_patterns};
use raw_tensors::parse_raw_tensor;
use shard::parse_shard;
// The shared vocabulary lives in the leaf `terms`; these names are where the rest of the crate
// has always found it.
pub use crate::terms::fields;
pub use crate::terms::{Activation, DType, Framework};

/// A tensor given directly by name and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub init: Init,
    pub dtype: Option<DType>,
    pub fan_in: Option<u64>,
    pub fan_out: Option<u64>,
    /// Constant fills applied, in order, after the initializer (rows, columns, any box).
    pub fills: Vec<Fill>,
}

/// Most fills one raw tensor may carry (each costs work on every generated chunk it touches).
pub const MAX_FILLS: usize = 1024;

/// A constant written over a box of a raw tensor after its initializer: `ranges[d]` is the
/// half-open index range along axis `d` (row-major, the tensor's own layout); axes past the
/// given ones are whole. PyTorch's `weight[idx].fill_(v)` / `zero_()` on a view.
/// Serialized as the canonical request writes it: `{"index": [[start, end], …], "value"}`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Fill {
    #[serde(rename = "index")]
    pub ranges: Vec<(u64, u64)>,
    pub value: f64,
}

impl Fill {
    pub fn to_json(&self) -> Value {
        // Integers and a number always serialize (`Null` is never produced; the unit test
        // pins the bytes).
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
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
    /// A deep-network initialization recipe (`crate::recipe`), applied by the plan.
    pub recipe: Option<crate::recipe::Recipe>,
}

/// Seeds above 2^53 are echoed as strings: many JSON readers parse numbers as doubles.
pub fn seed_json(seed: u64) -> Value {
    if seed > (1u64 << 53) {
        json!(seed.to_string())
    } else {
        json!(seed)
    }
}

/// A body that is itself a Hugging Face config (`model_type` or `architectures` at the top,
/// no `seed`): a 422 that shows the wrapped form instead of a bare "seed is required".
fn bare_hf_config(value: &Value) -> Result<()> {
    let Value::Object(m) = value else {
        return Ok(());
    };
    if m.contains_key("seed") || !(m.contains_key("model_type") || m.contains_key("architectures"))
    {
        return Ok(());
    }
    Err(SpecError::missing_field(
        "seed",
        "this body looks like a Hugging Face config.json; wrap it as \
         {\"seed\": 0, \"hf_config\": { ...config.json... }} (optionally with \"dtype\")",
    ))
}

/// Parses and validates a request body.
pub fn parse_bytes(body: &[u8]) -> Result<Request> {
    let value = json_without_duplicates(body)?;
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
    bare_hf_config(value)?;
    let (seed_v, seed_path) = root.require_any(&["seed"], "")?;
    let seed = parse_seed(seed_v, &seed_path)?;
    let keras_given = root.has("keras_model");
    let framework = match root.str_any(&["framework"])? {
        Some((s, p)) => {
            let f = Framework::parse(s, &p)?;
            if keras_given && f != Framework::Keras {
                return Err(SpecError::invalid_value(
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
        Some((v, p)) => Some(DType::parse(v, &p)?),
        None => None,
    };
    let hf = match root.get_any(&["hf_config"])? {
        Some((v, p)) => {
            if framework != Framework::PyTorch {
                return Err(SpecError::invalid_value(
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
            too_many_patterns(items.len(), &p)?;
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
                return Err(SpecError::invalid_value(
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
    let recipe = match root.get_any(&["recipe"])? {
        None | Some((Value::Null, _)) => None,
        Some((v, p)) => Some(crate::recipe::parse(v, &p)?),
    };
    root.finish()?;
    if hf.is_some() && !layers.is_empty() {
        return Err(SpecError::conflicting_fields(
            "layers",
            "`hf_config` describes the whole model; give either `hf_config` or `layers`",
        ));
    }
    if keras.is_some() && !layers.is_empty() {
        return Err(SpecError::conflicting_fields(
            "layers",
            "`keras_model` describes the whole model; give either `keras_model` or `layers`",
        ));
    }
    // The request's dtype wins; else a Hugging Face config's own `dtype`/`torch_dtype` (what
    // `save_pretrained` would write); else float32.
    let dtype = dtype
        .or_else(|| hf.as_ref().and_then(|m| m.dtype))
        .unwrap_or(DType::F32);
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
        recipe,
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
                return Err(SpecError::invalid_value(
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

pub(crate) fn check_name(name: &str, path: &str) -> Result<()> {
    if name.is_empty() {
        return Err(SpecError::invalid_value(path, "a name must not be empty"));
    }
    if name.len() > 1024 {
        return Err(SpecError::invalid_value(
            path,
            "a name must be at most 1024 bytes",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(SpecError::invalid_value(
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
                if !t.fills.is_empty() {
                    o.insert(
                        "fills".into(),
                        Value::Array(t.fills.iter().map(Fill::to_json).collect()),
                    );
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
        if let Some(r) = &self.recipe {
            m.insert("recipe".into(), r.to_json());
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_canonical_json_is_unchanged() {
        // Recorded from the hand-written `Fill::to_json` the derive replaced (the canonical
        // request of a raw tensor with fills is in the safetensors header and the ETag).
        let cases = [
            (
                Fill {
                    ranges: vec![(0, 1)],
                    value: 0.0,
                },
                r#"{"index":[[0,1]],"value":0.0}"#,
            ),
            (
                Fill {
                    ranges: vec![(2, 5), (0, 18446744073709551615)],
                    value: -1.5,
                },
                r#"{"index":[[2,5],[0,18446744073709551615]],"value":-1.5}"#,
            ),
            (
                Fill {
                    ranges: vec![],
                    value: 3.0,
                },
                r#"{"index":[],"value":3.0}"#,
            ),
        ];
        for (fill, want) in cases {
            assert_eq!(fill.to_json().to_string(), want, "{fill:?}");
        }
    }
}
