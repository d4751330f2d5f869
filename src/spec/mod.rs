//! The request model (SPEC §2): parse the posted JSON, then validate it into typed values in
//! which a bad state cannot be represented. Everything after this module works on `Request`
//! and cannot fail on input.

mod arch_layers;
mod layers;

use serde_json::{Map, Value, json};

use crate::error::{ErrorCode, Result, SpecError};
use crate::init::{Init, catalogue};
pub use arch_layers::{Attention, Cell, Recurrent};
use fields::{Obj, index, join, wrong_type};
pub use layers::{Layer, LayerKind, NormKind};
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

/// Parses JSON like `serde_json::from_slice::<Value>`, except that an object with the same key
/// twice is an error: RFC 8259 leaves its meaning open and "last wins" silently drops what the
/// client wrote first.
pub fn json_without_duplicates(body: &[u8]) -> Result<Value> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = NoDuplicates
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|_| v))
        .map_err(|e| {
            SpecError::new(
                ErrorCode::MalformedJson,
                "",
                format!("the body is not valid JSON: {e}"),
            )
        })?;
    Ok(value)
}

#[derive(Clone, Copy)]
struct NoDuplicates;

impl<'de> serde::de::DeserializeSeed<'de> for NoDuplicates {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicates {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(NoDuplicates)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                let shown: String = k.chars().take(64).collect();
                return Err(serde::de::Error::custom(format!(
                    "duplicate key `{shown}` in an object (each key may appear once)"
                )));
            }
            let v = map.next_value_seed(NoDuplicates)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
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

/// Compiles a glob as `plan` will (`*` and `?` match any character, `.` and `/` included).
/// One glob pattern, parsed (no regex is compiled here; `glob_set` compiles all of a list
/// into one set, fallibly).
pub fn glob(pattern: &str) -> std::result::Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
}

/// Bounds on `only` and `shard.dims` patterns: each is parsed, and all of a list are compiled
/// into one set matched once per tensor, so the cost is bounded by these.
pub const MAX_PATTERNS: usize = 4096;
pub const MAX_PATTERN_BYTES: usize = 1024;

/// Compiles `patterns` into one set (the fallible build: a pattern whose regex passes the
/// regex size limit is an error, not a panic). `path` is the list's JSON path.
pub fn glob_set<'a>(
    patterns: impl IntoIterator<Item = &'a str>,
    path: &str,
) -> Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        b.add(glob(p).map_err(|e| {
            SpecError::invalid_value(path, format!("not a valid glob pattern: {}", e.kind()))
        })?);
    }
    b.build().map_err(|e| {
        SpecError::invalid_value(
            path,
            format!(
                "the patterns are too complex to compile together: {}",
                e.kind()
            ),
        )
    })
}

fn check_glob(pattern: &str, path: &str) -> Result<()> {
    if pattern.is_empty() {
        return Err(SpecError::invalid_value(
            path,
            "a pattern must not be empty",
        ));
    }
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(SpecError::limit_exceeded(
            path,
            format!(
                "a pattern may be at most {MAX_PATTERN_BYTES} bytes; this one has {}",
                pattern.len()
            ),
        ));
    }
    // The error's kind only: its Display repeats the whole pattern.
    glob(pattern).map(|_| ()).map_err(|e| {
        SpecError::invalid_value(path, format!("not a valid glob pattern: {}", e.kind()))
    })
}

fn too_many_patterns(n: usize, path: &str) -> Result<()> {
    if n > MAX_PATTERNS {
        return Err(SpecError::limit_exceeded(
            path,
            format!("at most {MAX_PATTERNS} patterns; this list has {n}"),
        ));
    }
    Ok(())
}

fn shard_dim(v: &Value, path: &str) -> Result<Option<i64>> {
    match v {
        Value::Null => Ok(None),
        other => {
            let d = fields::integer(other, path)?;
            if !(-64..64).contains(&d) {
                return Err(SpecError::invalid_value(
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
        SpecError::missing_field(join(path, "world_size"), "a shard needs `world_size`")
    })?;
    let (rank_v, rank_path) = o.require_any(&["rank"], " (0 ≤ rank < world_size)")?;
    let rank = match rank_v {
        Value::Number(n) => n.as_u64().filter(|&r| r < ws).ok_or_else(|| {
            SpecError::invalid_value(
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
        too_many_patterns(m.len(), &dp)?;
        for (pat, d) in m {
            if pat.len() > MAX_PATTERN_BYTES {
                // Checked before the pattern goes into a path.
                return Err(SpecError::limit_exceeded(
                    dp,
                    format!(
                        "a pattern may be at most {MAX_PATTERN_BYTES} bytes; one has {}",
                        pat.len()
                    ),
                ));
            }
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

fn parse_raw_tensor(v: &Value, path: &str) -> Result<RawTensor> {
    let o = Obj::new(v, path)?;
    let (name, name_path) = o
        .str_any(&["name"])?
        .ok_or_else(|| SpecError::missing_field(join(path, "name"), "a tensor needs a `name`"))?;
    check_name(name, &name_path)?;
    let (shape_v, shape_path) =
        o.require_any(&["shape"], " (a list of positive sizes; [] for a scalar)")?;
    let shape = fields::shape(shape_v, &shape_path, false)?;
    let (init_v, init_path) = o.require_any(&["init"], " (an initializer name or object)")?;
    let init = catalogue::parse(init_v, &init_path)?;
    let dtype = match o.get_any(&["dtype"])? {
        Some((Value::String(s), p)) if s == "int64" || s == "i64" => {
            check_integer_init(&init, &p)?;
            Some(DType::I64)
        }
        Some((v, p)) => Some(DType::parse(v, &p)?),
        None => None,
    };
    let fan_in = o.size_any(&["fan_in"])?.map(|x| x.0);
    let fan_out = o.size_any(&["fan_out"])?.map(|x| x.0);
    let fills = match o.get_any(&["fills"])? {
        None => Vec::new(),
        Some((Value::Array(items), p)) => {
            if items.len() > MAX_FILLS {
                return Err(SpecError::limit_exceeded(
                    p,
                    format!(
                        "a tensor takes at most {MAX_FILLS} fills, got {}",
                        items.len()
                    ),
                ));
            }
            let integer = dtype == Some(DType::I64);
            items
                .iter()
                .enumerate()
                .map(|(i, f)| parse_fill(f, &index(&p, i), &shape, integer))
                .collect::<Result<_>>()?
        }
        Some((v, p)) => return Err(wrong_type(&p, "a list of fills", v)),
    };
    o.finish()?;
    Ok(RawTensor {
        name: name.to_string(),
        shape,
        init,
        dtype,
        fan_in,
        fan_out,
        fills,
    })
}

/// An `int64` raw tensor holds integers: only constant initializers with an integral value
/// that f32 (the canonical precision) represents exactly, |v| ≤ 2^24.
fn check_integer_init(init: &Init, path: &str) -> Result<()> {
    let value = match *init {
        Init::Zeros => 0.0,
        Init::Ones => 1.0,
        Init::Constant { value } => value,
        ref other => {
            let other = other.name();
            return Err(SpecError::initializer_mismatch(
                path,
                format!(
                    "an int64 tensor takes a constant initializer (zeros, ones, constant), not `{other}`"
                ),
            ));
        }
    };
    check_integer_value(value, path)
}

fn check_integer_value(value: f64, path: &str) -> Result<()> {
    if value.fract() != 0.0 || value.abs() > (1u64 << 24) as f64 {
        return Err(SpecError::invalid_value(
            path,
            format!("an int64 tensor holds integers up to 2^24 in magnitude, got {value}"),
        ));
    }
    Ok(())
}

fn parse_fill(v: &Value, path: &str, shape: &[u64], integer: bool) -> Result<Fill> {
    let o = Obj::new(v, path)?;
    let (idx_v, idx_path) = o.require_any(
        &["index"],
        " (one entry per leading axis: an index or a [start, stop] range)",
    )?;
    let items = match idx_v {
        Value::Array(items) => items,
        other => return Err(wrong_type(&idx_path, "a list of indices or ranges", other)),
    };
    if items.len() > shape.len() {
        return Err(SpecError::invalid_value(
            &idx_path,
            format!(
                "{} entries for a tensor of rank {}",
                items.len(),
                shape.len()
            ),
        ));
    }
    let mut ranges = Vec::with_capacity(items.len());
    for (d, item) in items.iter().enumerate() {
        let ip = index(&idx_path, d);
        let n = shape[d];
        let (a, b) = match item {
            Value::Array(pair) if pair.len() == 2 => {
                let a = fields::integer(&pair[0], &index(&ip, 0))?;
                let b = fields::integer(&pair[1], &index(&ip, 1))?;
                (a, b)
            }
            Value::Number(_) => {
                let a = fields::integer(item, &ip)?;
                (a, a.saturating_add(1))
            }
            other => return Err(wrong_type(&ip, "an index or a [start, stop] pair", other)),
        };
        if a < 0 || b <= a || b as u64 > n {
            return Err(SpecError::invalid_value(
                ip,
                format!("[{a}, {b}) is not a non-empty range of axis {d} (size {n})"),
            ));
        }
        ranges.push((a as u64, b as u64));
    }
    let (val_v, val_path) = o.require_any(&["value"], " (the constant to write)")?;
    let value = fields::finite_f64(val_v, &val_path)?;
    if integer {
        check_integer_value(value, &val_path)?;
    }
    o.finish()?;
    Ok(Fill { ranges, value })
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
