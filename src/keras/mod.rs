//! `keras_model`: a Keras 3 architecture as `json.loads(model.to_json())` writes it (Sequential,
//! Functional, nested models) turned into the list of its weights, each named exactly by its
//! `model.weights` path, with its shape and the initializer its layer's config names.
//!
//! Names follow how Keras 3.15 scopes variables when a model is built in code (checked against
//! the real Keras by `tests/keras_model.rs` on the fixtures `scripts/keras_fixtures.py`
//! writes): a layer is built inside `backend.name_scope(layer.name)`; a `Sequential` builds its
//! layers inside its own scope (`sequential/dense/kernel`), at construction when it starts with
//! an `InputLayer` (so its scope is then its name alone), else when its caller builds it (inside
//! the caller's scope); a `Functional` builds its layers when they are called on its inputs,
//! outside any scope (`dense_2/kernel`); RNN layers hold their weights in their cell
//! (`lstm/lstm_cell/kernel`), wrappers (`Bidirectional`, `TimeDistributed`) build the wrapped
//! layers in their own scope, `MultiHeadAttention` its `query`, `key`, `value` and
//! `attention_output` EinsumDense sub-layers.
//!
//! Shapes come from each layer's `build_config` (what Keras itself rebuilds the layer from), else
//! from the previous layer's output shape (an `InputLayer`'s `batch_shape`, a `Sequential`'s
//! `build_input_shape`), computed as Keras computes it. Initializer seeds are ignored.

/// Keras initializer JSON forms live with the other initializer names, in `init::keras`.
pub use crate::init::keras as initializers;
pub mod shapes;

use serde_json::{Map, Value};

use crate::error::{ErrorCode, Result, SpecError};
use crate::terms::fields::{index, join, positive_size, wrong_type};
pub use initializers::KerasInit;
use shapes::Dims;

/// One entry of `model.weights`.
#[derive(Clone, Debug, PartialEq)]
pub struct Weight {
    /// The variable's `path`.
    pub path: String,
    /// Its shape, as Keras stores it.
    pub shape: Vec<u64>,
    pub init: KerasInit,
    /// JSON path of the initializer in the request (or of the layer config, for a default).
    pub init_path: String,
    /// JSON path of the layer.
    pub origin: String,
    /// Explicit (fan_in, fan_out): EinsumDense kernels give their variance-scaling
    /// initializer the einsum's input and output axes (Keras ≥ 3.15).
    pub fans: Option<(u64, u64)>,
    /// LSTM `unit_forget_bias`: the bias is `init((units,))`, ones `(units,)`,
    /// `init((2·units,))`, concatenated (`keras/src/layers/rnn/lstm.py`).
    pub forget_bias_units: Option<u64>,
    /// Why the initializer is what it is, when the config did not name one.
    pub default_reason: Option<String>,
}

/// A validated `keras_model`.
#[derive(Clone, Debug, PartialEq)]
pub struct KerasModel {
    /// The object as posted; the canonical request stores it unchanged.
    pub source: Value,
    /// In `model.weights` order.
    pub weights: Vec<Weight>,
}

impl KerasModel {
    pub fn to_json(&self) -> Value {
        self.source.clone()
    }
}

fn invalid(path: &str, msg: impl Into<String>) -> SpecError {
    SpecError::new(ErrorCode::InvalidValue, path, msg)
}

/// A layer entry: `{"class_name", "config", "build_config"?, "inbound_nodes"?, …}`.
struct Entry<'a> {
    class: &'a str,
    cfg: &'a Map<String, Value>,
    raw: &'a Map<String, Value>,
    path: String,
    cfg_path: String,
}

impl<'a> Entry<'a> {
    fn new(v: &'a Value, path: &str) -> Result<Entry<'a>> {
        let raw = match v {
            Value::Object(m) => m,
            other => return Err(wrong_type(path, "a Keras layer object", other)),
        };
        let class = match raw.get("class_name") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => return Err(wrong_type(&join(path, "class_name"), "a string", other)),
            None => {
                return Err(SpecError::new(
                    ErrorCode::MissingField,
                    join(path, "class_name"),
                    "a Keras layer needs `class_name` (as model.to_json() writes it)",
                ));
            }
        };
        let cfg = match raw.get("config") {
            Some(Value::Object(m)) => m,
            Some(other) => return Err(wrong_type(&join(path, "config"), "an object", other)),
            None => {
                return Err(SpecError::new(
                    ErrorCode::MissingField,
                    join(path, "config"),
                    "a Keras layer needs `config`",
                ));
            }
        };
        Ok(Entry {
            class,
            cfg,
            raw,
            path: path.to_string(),
            cfg_path: join(path, "config"),
        })
    }

    fn key(&self, k: &str) -> String {
        join(&self.cfg_path, k)
    }

    fn get(&self, k: &str) -> Option<&'a Value> {
        self.cfg.get(k).filter(|v| !v.is_null())
    }

    fn name(&self) -> Result<&'a str> {
        match self.cfg.get("name") {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(other) if !other.is_string() && !other.is_null() => {
                Err(wrong_type(&self.key("name"), "a string", other))
            }
            _ => Err(SpecError::new(
                ErrorCode::MissingField,
                self.key("name"),
                format!(
                    "the {} layer has no `name`; post model.to_json() as it is",
                    self.class
                ),
            )),
        }
    }

    fn size(&self, k: &str) -> Result<u64> {
        match self.get(k) {
            Some(v) => positive_size(v, &self.key(k)),
            None => Err(SpecError::new(
                ErrorCode::MissingField,
                self.key(k),
                format!("the {} layer needs `{k}`", self.class),
            )),
        }
    }

    fn size_or(&self, k: &str, d: u64) -> Result<u64> {
        match self.get(k) {
            Some(v) => positive_size(v, &self.key(k)),
            None => Ok(d),
        }
    }

    fn flag(&self, k: &str, d: bool) -> Result<bool> {
        match self.get(k) {
            None => Ok(d),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(wrong_type(&self.key(k), "true or false", other)),
        }
    }

    fn text(&self, k: &str, d: &'a str) -> Result<&'a str> {
        match self.get(k) {
            None => Ok(d),
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(wrong_type(&self.key(k), "a string", other)),
        }
    }

    fn int(&self, k: &str, d: i64) -> Result<i64> {
        match self.get(k) {
            None => Ok(d),
            Some(v) => crate::terms::fields::integer(v, &self.key(k)),
        }
    }

    /// An int or a tuple of `n` ints (`kernel_size`, `strides`, …).
    fn tuple(&self, k: &str, n: usize, d: Option<u64>) -> Result<Vec<u64>> {
        match self.get(k) {
            None => match d {
                Some(d) => Ok(vec![d; n]),
                None => Err(SpecError::new(
                    ErrorCode::MissingField,
                    self.key(k),
                    format!("the {} layer needs `{k}`", self.class),
                )),
            },
            Some(Value::Array(a)) => {
                if a.len() != n {
                    return Err(invalid(
                        &self.key(k),
                        format!("expected {n} values, got {}", a.len()),
                    ));
                }
                a.iter()
                    .enumerate()
                    .map(|(i, v)| positive_size(v, &index(&self.key(k), i)))
                    .collect()
            }
            Some(v) => Ok(vec![positive_size(v, &self.key(k))?; n]),
        }
    }

    fn init(&self, k: &str, default: &str) -> Result<(KerasInit, String, Option<String>)> {
        match self.get(k) {
            Some(v) => Ok((initializers::parse(v, &self.key(k))?, self.key(k), None)),
            None => Ok((
                initializers::parse(&Value::String(default.into()), &self.key(k))?,
                self.cfg_path.clone(),
                Some(format!("Keras {} default {k}: {default}", self.class)),
            )),
        }
    }

    /// The input shape(s) Keras built the layer with: `build_config.input_shape`.
    fn build_shape(&self) -> Result<Option<&'a Value>> {
        match self.raw.get("build_config") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(b)) => Ok(b.get("input_shape").filter(|v| !v.is_null())),
            Some(other) => Err(wrong_type(
                &join(&self.path, "build_config"),
                "an object",
                other,
            )),
        }
    }
}

fn dims(v: &Value, path: &str) -> Result<Dims> {
    match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Value::Null => Ok(None),
                d => positive_size(d, &index(path, i)).map(Some),
            })
            .collect(),
        other => Err(wrong_type(path, "a shape (a list of sizes or null)", other)),
    }
}

/// A shape or a list of shapes (a merging layer's `input_shape`).
fn shape_list(v: &Value, path: &str) -> Result<Vec<Dims>> {
    match v {
        Value::Array(a) if a.first().is_some_and(Value::is_array) => a
            .iter()
            .enumerate()
            .map(|(i, s)| dims(s, &index(path, i)))
            .collect(),
        v => Ok(vec![dims(v, path)?]),
    }
}

fn known(d: Option<u64>, path: &str, what: &str) -> Result<u64> {
    d.ok_or_else(|| {
        invalid(
            path,
            format!("the {what} is unknown (None) in the input shape"),
        )
    })
}

/// Layers without weights, and how they change the shape (`None`: not computed here; a
/// following layer then needs its own `build_config`).
const PARAMETER_FREE: &[&str] = &[
    "InputLayer",
    "Flatten",
    "Reshape",
    "Permute",
    "RepeatVector",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Softmax",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "GlobalMaxPooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalAveragePooling3D",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Dot",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
    "Masking",
    "Identity",
    "UnitNormalization",
];

/// Layers with weights.
const WITH_WEIGHTS: &[&str] = &[
    "Dense",
    "EinsumDense",
    "Conv1D",
    "Conv2D",
    "Conv3D",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "SeparableConv1D",
    "SeparableConv2D",
    "Conv1DTranspose",
    "Conv2DTranspose",
    "Conv3DTranspose",
    "Embedding",
    "LayerNormalization",
    "BatchNormalization",
    "GroupNormalization",
    "SimpleRNN",
    "LSTM",
    "GRU",
    "Bidirectional",
    "TimeDistributed",
    "MultiHeadAttention",
];

const MODELS: &[&str] = &["Sequential", "Functional", "Model"];

/// The class names `keras_model` accepts, for documentation and errors.
pub fn supported_classes() -> impl Iterator<Item = &'static str> {
    WITH_WEIGHTS
        .iter()
        .chain(PARAMETER_FREE)
        .chain(MODELS)
        .copied()
}

struct Walker {
    weights: Vec<Weight>,
}

/// Parses `keras_model`.
pub fn parse(v: &Value, path: &str) -> Result<KerasModel> {
    let mut w = Walker {
        weights: Vec::new(),
    };
    let e = Entry::new(v, path)?;
    if !MODELS.contains(&e.class) {
        return Err(SpecError::new(
            ErrorCode::UnsupportedLayerType,
            join(path, "class_name"),
            format!(
                "keras_model must be a Sequential or Functional model (model.to_json()), got `{}`",
                e.class
            ),
        ));
    }
    w.model(&e, "", None)?;
    Ok(KerasModel {
        source: v.clone(),
        weights: w.weights,
    })
}

fn rnn_gates(class: &str) -> u64 {
    match class {
        "LSTM" => 4,
        "GRU" => 3,
        _ => 1,
    }
}

impl Walker {
    /// A weight with its fans from its shape and no forget-gate constant (most weights).
    fn put(
        &mut self,
        e: &Entry<'_>,
        path: String,
        shape: Vec<u64>,
        init: (KerasInit, String, Option<String>),
    ) {
        self.push(e, path, shape, init, None, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        e: &Entry<'_>,
        path: String,
        shape: Vec<u64>,
        init: (KerasInit, String, Option<String>),
        fans: Option<(u64, u64)>,
        forget_bias_units: Option<u64>,
    ) {
        self.weights.push(Weight {
            path,
            shape,
            init: init.0,
            init_path: init.1,
            origin: e.path.clone(),
            fans,
            forget_bias_units,
            default_reason: init.2,
        });
    }

    /// A nested or top-level model; `scope` is where its caller builds it, `input` the shape
    /// its caller feeds it. Returns its output shape, when known.
    fn model(&mut self, e: &Entry<'_>, scope: &str, input: Option<Dims>) -> Result<Option<Dims>> {
        let layers = match e.get("layers") {
            Some(Value::Array(a)) => a,
            Some(other) => return Err(wrong_type(&e.key("layers"), "a list of layers", other)),
            None => {
                return Err(SpecError::new(
                    ErrorCode::MissingField,
                    e.key("layers"),
                    "a Keras model config needs `layers`",
                ));
            }
        };
        let lpath = e.key("layers");
        if e.class == "Sequential" {
            let name = e.name()?;
            let starts_with_input = layers
                .first()
                .and_then(|l| l.get("class_name"))
                .is_some_and(|c| c == "InputLayer");
            // Built at construction (own scope only) when it has an Input, else by its caller.
            let own = if starts_with_input {
                format!("{name}/")
            } else {
                format!("{scope}{name}/")
            };
            let mut cur: Option<Dims> = match e.get("build_input_shape") {
                Some(v) => Some(dims(v, &e.key("build_input_shape"))?),
                None => match e.build_shape()? {
                    Some(v) => Some(dims(v, &join(&e.path, "build_config.input_shape"))?),
                    None => input,
                },
            };
            for (i, l) in layers.iter().enumerate() {
                let le = Entry::new(l, &index(&lpath, i))?;
                let inputs = cur.take().map(|d| vec![d]);
                cur = self.layer(&le, &own, inputs)?;
            }
            Ok(cur)
        } else {
            // Functional: every layer was called on symbolic tensors at construction, outside
            // any name scope. Its input shapes are in its build_config and its inbound nodes.
            let mut outputs: std::collections::HashMap<String, Option<Dims>> = Default::default();
            for (i, l) in layers.iter().enumerate() {
                let p = index(&lpath, i);
                let le = Entry::new(l, &p)?;
                let inputs = inbound_shapes(le.raw, &p)?;
                let out = self.layer(&le, "", inputs)?;
                if let Ok(n) = le.name() {
                    outputs.insert(n.to_string(), out);
                }
            }
            let out = match e.get("output_layers") {
                Some(Value::Array(a)) if a.first().is_some_and(Value::is_string) => a[0]
                    .as_str()
                    .and_then(|n| outputs.get(n).cloned())
                    .flatten(),
                _ => None,
            };
            Ok(out)
        }
    }

    /// One layer entry built in `scope` with `inputs` (when known). Returns its output shape.
    fn layer(
        &mut self,
        e: &Entry<'_>,
        scope: &str,
        inputs: Option<Vec<Dims>>,
    ) -> Result<Option<Dims>> {
        if MODELS.contains(&e.class) {
            let first = inputs.and_then(|mut v| (!v.is_empty()).then(|| v.remove(0)));
            return self.model(e, scope, first);
        }
        if e.class == "InputLayer" {
            return match e.get("batch_shape").or_else(|| e.get("batch_input_shape")) {
                Some(v) => Ok(Some(dims(v, &e.key("batch_shape"))?)),
                None => Ok(None),
            };
        }
        if !WITH_WEIGHTS.contains(&e.class) && !PARAMETER_FREE.contains(&e.class) {
            return Err(SpecError::new(
                ErrorCode::UnsupportedLayerType,
                join(&e.path, "class_name"),
                format!(
                    "Keras layer `{}` is not supported by keras_model; supported: {}",
                    e.class,
                    supported_classes().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        // The shapes Keras built it with, else those handed over by the previous layer.
        let inputs = match e.build_shape()? {
            Some(v) if e.class != "MultiHeadAttention" => {
                Some(shape_list(v, &join(&e.path, "build_config.input_shape"))?)
            }
            _ => inputs,
        };
        let name = e.name()?;
        let prefix = format!("{scope}{name}");
        if PARAMETER_FREE.contains(&e.class) {
            return free_output(e, inputs);
        }
        if e.class == "MultiHeadAttention" {
            return self.attention(e, &prefix, inputs);
        }
        let need = |what: &str| {
            SpecError::new(
                ErrorCode::InvalidValue,
                join(&e.path, "build_config"),
                format!(
                    "the input shape of {} `{name}` is unknown: it has no build_config and no earlier layer gives it{what}; build the model (keras.Input or model.build) before to_json()",
                    e.class
                ),
            )
        };
        let inp: Dims = inputs
            .and_then(|mut v| (!v.is_empty()).then(|| v.remove(0)))
            .ok_or_else(|| need(""))?;
        if inp.is_empty() {
            return Err(need(" (rank 0)"));
        }
        let bpath = join(&e.path, "build_config.input_shape");
        let last = |inp: &Dims| known(*inp.last().unwrap_or(&None), &bpath, "last (feature) axis");
        match e.class {
            "Dense" => {
                let units = e.size("units")?;
                let fin = last(&inp)?;
                let k = e.init("kernel_initializer", "glorot_uniform")?;
                self.put(e, format!("{prefix}/kernel"), vec![fin, units], k);
                if e.flag("use_bias", true)? {
                    let b = e.init("bias_initializer", "zeros")?;
                    self.put(e, format!("{prefix}/bias"), vec![units], b);
                }
                let mut out = inp.clone();
                *out.last_mut().unwrap_or(&mut None) = Some(units);
                Ok(Some(out))
            }
            "EinsumDense" => {
                let eq = e.text("equation", "")?;
                let partial = match e.get("output_shape") {
                    Some(v @ Value::Array(_)) => dims(v, &e.key("output_shape"))?,
                    Some(v) => vec![Some(positive_size(v, &e.key("output_shape"))?)],
                    None => {
                        return Err(SpecError::new(
                            ErrorCode::MissingField,
                            e.key("output_shape"),
                            "EinsumDense needs `output_shape`",
                        ));
                    }
                };
                let bias_axes = match e.get("bias_axes") {
                    None => None,
                    Some(Value::String(s)) => Some(s.as_str()),
                    Some(other) => return Err(wrong_type(&e.key("bias_axes"), "a string", other)),
                };
                let es = shapes::einsum(eq, bias_axes, &inp, &partial, &e.key("equation"))?;
                let k = e.init("kernel_initializer", "glorot_uniform")?;
                let prod = |axes: &[usize]| {
                    axes.iter()
                        .fold(1u64, |a, &i| a.saturating_mul(es.kernel[i]))
                };
                let fans = (k.0.variance_scaling && k.0.axes.is_none())
                    .then(|| (prod(&es.input_axes), prod(&es.output_axes)));
                self.push(
                    e,
                    format!("{prefix}/kernel"),
                    es.kernel.clone(),
                    k,
                    fans,
                    None,
                );
                if let Some(bs) = es.bias {
                    let b = e.init("bias_initializer", "zeros")?;
                    self.put(e, format!("{prefix}/bias"), bs, b);
                }
                Ok(Some(es.output))
            }
            "Conv1D" | "Conv2D" | "Conv3D" | "DepthwiseConv1D" | "DepthwiseConv2D"
            | "SeparableConv1D" | "SeparableConv2D" | "Conv1DTranspose" | "Conv2DTranspose"
            | "Conv3DTranspose" => self.conv(e, &prefix, &inp, &bpath),
            "Embedding" => {
                let n = e.size("input_dim")?;
                let d = e.size("output_dim")?;
                let k = e.init("embeddings_initializer", "uniform")?;
                self.put(e, format!("{prefix}/embeddings"), vec![n, d], k);
                let mut out = inp.clone();
                out.push(Some(d));
                Ok(Some(out))
            }
            "LayerNormalization" | "BatchNormalization" | "GroupNormalization" => {
                let rank = inp.len() as i64;
                let axes: Vec<i64> = match e.get("axis") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .enumerate()
                        .map(|(i, v)| crate::terms::fields::integer(v, &index(&e.key("axis"), i)))
                        .collect::<Result<_>>()?,
                    _ => vec![e.int("axis", -1)?],
                };
                let mut shape = Vec::new();
                for a in &axes {
                    let ax = if *a < 0 { rank + a } else { *a };
                    if !(0..rank).contains(&ax) {
                        return Err(invalid(
                            &e.key("axis"),
                            format!("axis {a} is outside the input's rank {rank}"),
                        ));
                    }
                    shape.push(known(inp[ax as usize], &bpath, "normalized axis")?);
                }
                if e.class == "GroupNormalization" {
                    let g = e.size_or("groups", 32)?;
                    if shape.len() != 1 || !shape[0].is_multiple_of(g) {
                        return Err(invalid(
                            &e.key("groups"),
                            format!("the channels ({shape:?}) must be a multiple of groups ({g})"),
                        ));
                    }
                }
                if e.class == "LayerNormalization" && e.flag("rms_scaling", false)? {
                    return Err(SpecError::new(
                        ErrorCode::UnsupportedLayerType,
                        e.key("rms_scaling"),
                        "LayerNormalization(rms_scaling=True) is not supported by keras_model",
                    ));
                }
                if e.flag("scale", true)? {
                    let g = e.init("gamma_initializer", "ones")?;
                    self.put(e, format!("{prefix}/gamma"), shape.clone(), g);
                }
                if e.flag("center", true)? {
                    let b = e.init("beta_initializer", "zeros")?;
                    self.put(e, format!("{prefix}/beta"), shape.clone(), b);
                }
                if e.class == "BatchNormalization" {
                    let m = e.init("moving_mean_initializer", "zeros")?;
                    self.put(e, format!("{prefix}/moving_mean"), shape.clone(), m);
                    let v = e.init("moving_variance_initializer", "ones")?;
                    self.put(e, format!("{prefix}/moving_variance"), shape, v);
                }
                Ok(Some(inp))
            }
            "SimpleRNN" | "LSTM" | "GRU" => self.rnn(e, &prefix, &inp, &bpath),
            "Bidirectional" => {
                let fwd_v = e.get("layer").ok_or_else(|| {
                    SpecError::new(
                        ErrorCode::MissingField,
                        e.key("layer"),
                        "Bidirectional needs `layer`",
                    )
                })?;
                let fwd = Entry::new(fwd_v, &e.key("layer"))?;
                let inner = format!("{prefix}/");
                let fo = self.layer(&fwd, &inner, Some(vec![inp.clone()]))?;
                let bo = match e.get("backward_layer") {
                    Some(bv) => {
                        let bwd = Entry::new(bv, &e.key("backward_layer"))?;
                        self.layer(&bwd, &inner, Some(vec![inp.clone()]))?
                    }
                    None => {
                        // Bidirectional.__init__ clones the layer as `backward_<name>`.
                        let fname = fwd.name()?;
                        let base = fname.strip_prefix("forward_").unwrap_or(fname);
                        let mut cfg = fwd.cfg.clone();
                        cfg.insert("name".into(), Value::String(format!("backward_{base}")));
                        let mut raw = fwd.raw.clone();
                        raw.insert("config".into(), Value::Object(cfg));
                        let bv = Value::Object(raw);
                        let bwd = Entry::new(&bv, &e.key("layer"))?;
                        self.layer(&bwd, &inner, Some(vec![inp.clone()]))?
                    }
                };
                Ok(match (e.text("merge_mode", "concat")?, fo, bo) {
                    ("concat", Some(mut f), Some(b)) => {
                        let n = f.len();
                        if n > 0 {
                            f[n - 1] = match (f[n - 1], b[n - 1]) {
                                (Some(x), Some(y)) => Some(x.saturating_add(y)),
                                _ => None,
                            };
                        }
                        Some(f)
                    }
                    ("sum" | "mul" | "ave", Some(f), _) => Some(f),
                    _ => None,
                })
            }
            "TimeDistributed" => {
                let lv = e.get("layer").ok_or_else(|| {
                    SpecError::new(
                        ErrorCode::MissingField,
                        e.key("layer"),
                        "TimeDistributed needs `layer`",
                    )
                })?;
                let le = Entry::new(lv, &e.key("layer"))?;
                if inp.len() < 2 {
                    return Err(need(" (TimeDistributed needs a time axis)"));
                }
                let mut inner_in = inp.clone();
                let t = inner_in.remove(1);
                let out = self.layer(&le, &format!("{prefix}/"), Some(vec![inner_in]))?;
                Ok(out.map(|mut o| {
                    o.insert(1.min(o.len()), t);
                    o
                }))
            }
            other => Err(SpecError::new(
                ErrorCode::UnsupportedLayerType,
                join(&e.path, "class_name"),
                format!("Keras layer `{other}` is not supported by keras_model"),
            )),
        }
    }

    fn conv(
        &mut self,
        e: &Entry<'_>,
        prefix: &str,
        inp: &Dims,
        bpath: &str,
    ) -> Result<Option<Dims>> {
        let class = e.class;
        let n = if class.contains("1D") {
            1
        } else if class.contains("2D") {
            2
        } else {
            3
        };
        if inp.len() != n + 2 {
            return Err(invalid(
                bpath,
                format!("{class} needs an input of rank {}, got {:?}", n + 2, inp),
            ));
        }
        let channels_first = e.text("data_format", "channels_last")? == "channels_first";
        let (cin, spatial): (Option<u64>, Vec<Option<u64>>) = if channels_first {
            (inp[1], inp[2..].to_vec())
        } else {
            (inp[n + 1], inp[1..n + 1].to_vec())
        };
        let cin = known(cin, bpath, "channel axis")?;
        let k = e.tuple("kernel_size", n, None)?;
        let strides = e.tuple("strides", n, Some(1))?;
        let dil = e.tuple("dilation_rate", n, Some(1))?;
        let padding = e.text("padding", "valid")?;
        let use_bias = e.flag("use_bias", true)?;
        let depthwise = class.starts_with("Depthwise");
        let separable = class.starts_with("Separable");
        let transpose = class.ends_with("Transpose");
        let out_c;
        if depthwise || separable {
            let dm = e.size_or("depth_multiplier", 1)?;
            let mut dk = k.clone();
            dk.extend([cin, dm]);
            let di = e.init("depthwise_initializer", "glorot_uniform")?;
            let dname = if depthwise {
                "kernel"
            } else {
                "depthwise_kernel"
            };
            self.put(e, format!("{prefix}/{dname}"), dk, di);
            if depthwise {
                out_c = cin.saturating_mul(dm);
            } else {
                let filters = e.size("filters")?;
                let mut pk = vec![1u64; n];
                pk.extend([cin.saturating_mul(dm), filters]);
                let pi = e.init("pointwise_initializer", "glorot_uniform")?;
                self.put(e, format!("{prefix}/pointwise_kernel"), pk, pi);
                out_c = filters;
            }
        } else {
            let filters = e.size("filters")?;
            let groups = if transpose {
                1
            } else {
                e.size_or("groups", 1)?
            };
            if !cin.is_multiple_of(groups) || !filters.is_multiple_of(groups) {
                return Err(invalid(
                    &e.key("groups"),
                    format!(
                        "input channels ({cin}) and filters ({filters}) must be multiples of groups ({groups})"
                    ),
                ));
            }
            let mut shape = k.clone();
            if transpose {
                shape.extend([filters, cin]);
            } else {
                shape.extend([cin / groups, filters]);
            }
            let ki = e.init("kernel_initializer", "glorot_uniform")?;
            self.put(e, format!("{prefix}/kernel"), shape, ki);
            out_c = filters;
        }
        if use_bias {
            let b = e.init("bias_initializer", "zeros")?;
            self.put(e, format!("{prefix}/bias"), vec![out_c], b);
        }
        let out_pad: Option<Vec<u64>> = match e.get("output_padding") {
            None => None,
            Some(Value::Array(a)) => Some(a.iter().map(|v| v.as_u64().unwrap_or(0)).collect()),
            Some(v) => Some(vec![v.as_u64().unwrap_or(0); n]),
        };
        let out_sp: Vec<Option<u64>> = (0..n)
            .map(|i| {
                if transpose {
                    shapes::deconv_len(
                        spatial[i],
                        k[i],
                        strides[i],
                        dil[i],
                        padding,
                        out_pad.as_ref().and_then(|p| p.get(i).copied()),
                    )
                } else {
                    shapes::conv_len(spatial[i], k[i], strides[i], dil[i], padding)
                }
            })
            .collect();
        let mut out = vec![inp[0]];
        if channels_first {
            out.push(Some(out_c));
            out.extend(out_sp);
        } else {
            out.extend(out_sp);
            out.push(Some(out_c));
        }
        Ok(Some(out))
    }

    fn rnn(
        &mut self,
        e: &Entry<'_>,
        prefix: &str,
        inp: &Dims,
        bpath: &str,
    ) -> Result<Option<Dims>> {
        let units = e.size("units")?;
        let fin = known(*inp.last().unwrap_or(&None), bpath, "last (feature) axis")?;
        let gates = rnn_gates(e.class);
        let gu = units.saturating_mul(gates);
        let cell = match e.class {
            "LSTM" => "lstm_cell",
            "GRU" => "gru_cell",
            _ => "simple_rnn_cell",
        };
        let k = e.init("kernel_initializer", "glorot_uniform")?;
        self.put(e, format!("{prefix}/{cell}/kernel"), vec![fin, gu], k);
        let r = e.init("recurrent_initializer", "orthogonal")?;
        self.put(
            e,
            format!("{prefix}/{cell}/recurrent_kernel"),
            vec![units, gu],
            r,
        );
        if e.flag("use_bias", true)? {
            let b = e.init("bias_initializer", "zeros")?;
            let (shape, forget) = match e.class {
                "GRU" if e.flag("reset_after", true)? => (vec![2, gu], None),
                "LSTM" if e.flag("unit_forget_bias", true)? => (vec![gu], Some(units)),
                _ => (vec![gu], None),
            };
            self.push(e, format!("{prefix}/{cell}/bias"), shape, b, None, forget);
        }
        let mut out = if e.flag("return_sequences", false)? && inp.len() >= 3 {
            inp[..inp.len() - 1].to_vec()
        } else {
            vec![inp[0]]
        };
        out.push(Some(units));
        Ok(Some(out))
    }

    /// `keras/src/layers/attention/multi_head_attention.py` `build`: query/key/value
    /// EinsumDense kernels `[dim, heads, key_dim|value_dim]`, biases `[heads, key_dim|value_dim]`,
    /// output kernel `[heads, value_dim, *output_shape]`, output bias `output_shape`.
    fn attention(
        &mut self,
        e: &Entry<'_>,
        prefix: &str,
        inputs: Option<Vec<Dims>>,
    ) -> Result<Option<Dims>> {
        let sd = match e.raw.get("build_config") {
            Some(Value::Object(b)) => b.get("shapes_dict").filter(|v| !v.is_null()),
            _ => None,
        };
        let sd_path = join(&e.path, "build_config.shapes_dict");
        let (q, v, k) = match sd {
            Some(Value::Object(m)) => {
                let get = |key: &str| -> Result<Option<Dims>> {
                    match m.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(s) => Ok(Some(dims(s, &join(&sd_path, key))?)),
                    }
                };
                (get("query_shape")?, get("value_shape")?, get("key_shape")?)
            }
            Some(other) => return Err(wrong_type(&sd_path, "an object", other)),
            None => {
                let mut it = inputs.unwrap_or_default().into_iter();
                (it.next(), it.next(), it.next())
            }
        };
        let q = q.ok_or_else(|| {
            invalid(
                &sd_path,
                "MultiHeadAttention's query shape is unknown; build the model before to_json()",
            )
        })?;
        let v = v.unwrap_or_else(|| q.clone());
        let k = k.unwrap_or_else(|| v.clone());
        if e.flag("use_gate", false)? {
            return Err(SpecError::new(
                ErrorCode::UnsupportedLayerType,
                e.key("use_gate"),
                "MultiHeadAttention(use_gate=True) is not supported by keras_model",
            ));
        }
        let heads = e.size("num_heads")?;
        let kd = e.size("key_dim")?;
        let vd = e.size_or("value_dim", kd)?;
        let last = |d: &Dims, what: &str| known(*d.last().unwrap_or(&None), &sd_path, what);
        let (qd, kdim, vdim) = (
            last(&q, "query feature axis")?,
            last(&k, "key feature axis")?,
            last(&v, "value feature axis")?,
        );
        let out_shape: Vec<u64> = match e.get("output_shape") {
            None => vec![qd],
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, x)| positive_size(x, &index(&e.key("output_shape"), i)))
                .collect::<Result<_>>()?,
            Some(x) => vec![positive_size(x, &e.key("output_shape"))?],
        };
        let bias = e.flag("use_bias", true)?;
        for (n, dim, hd) in [("query", qd, kd), ("key", kdim, kd), ("value", vdim, vd)] {
            let ki = e.init("kernel_initializer", "glorot_uniform")?;
            let fans =
                ki.0.variance_scaling
                    .then(|| (dim, heads.saturating_mul(hd)));
            self.push(
                e,
                format!("{prefix}/{n}/kernel"),
                vec![dim, heads, hd],
                ki,
                fans,
                None,
            );
            if bias {
                let bi = e.init("bias_initializer", "zeros")?;
                self.put(e, format!("{prefix}/{n}/bias"), vec![heads, hd], bi);
            }
        }
        let mut ok = vec![heads, vd];
        ok.extend(&out_shape);
        let ki = e.init("kernel_initializer", "glorot_uniform")?;
        let fans = ki.0.variance_scaling.then(|| {
            (
                heads.saturating_mul(vd),
                out_shape.iter().fold(1u64, |a, &x| a.saturating_mul(x)),
            )
        });
        self.push(
            e,
            format!("{prefix}/attention_output/kernel"),
            ok,
            ki,
            fans,
            None,
        );
        if bias {
            let bi = e.init("bias_initializer", "zeros")?;
            self.put(
                e,
                format!("{prefix}/attention_output/bias"),
                out_shape.clone(),
                bi,
            );
        }
        let mut out = q[..q.len().saturating_sub(1)].to_vec();
        out.extend(out_shape.iter().map(|&x| Some(x)));
        Ok(Some(out))
    }
}

/// The shapes a Functional layer was called with: its `build_config`, else the
/// `__keras_tensor__` arguments of its first inbound node.
fn inbound_shapes(raw: &Map<String, Value>, path: &str) -> Result<Option<Vec<Dims>>> {
    let Some(Value::Array(nodes)) = raw.get("inbound_nodes") else {
        return Ok(None);
    };
    let Some(node) = nodes.first() else {
        return Ok(None);
    };
    fn collect(v: &Value, path: &str, out: &mut Vec<Dims>) -> Result<()> {
        match v {
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    collect(x, &index(path, i), out)?;
                }
            }
            Value::Object(m) if m.get("class_name").is_some_and(|c| c == "__keras_tensor__") => {
                if let Some(s) = m.get("config").and_then(|c| c.get("shape")) {
                    out.push(dims(s, &join(path, "config.shape"))?);
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut out = Vec::new();
    let np = index(&join(path, "inbound_nodes"), 0);
    if let Some(args) = node.get("args") {
        collect(args, &join(&np, "args"), &mut out)?;
    }
    Ok((!out.is_empty()).then_some(out))
}

/// Output shape of a parameter-free layer, where it is simple to state.
fn free_output(e: &Entry<'_>, inputs: Option<Vec<Dims>>) -> Result<Option<Dims>> {
    let Some(inputs) = inputs else {
        return Ok(None);
    };
    let Some(inp) = inputs.first().cloned() else {
        return Ok(None);
    };
    let c = e.class;
    Ok(match c {
        "Flatten" => Some(vec![
            inp.first().copied().flatten(),
            inp[1..]
                .iter()
                .try_fold(1u64, |a, d| d.map(|d| a.saturating_mul(d))),
        ]),
        "Reshape" => match e.get("target_shape") {
            Some(Value::Array(t)) => {
                let total = inp[1..]
                    .iter()
                    .try_fold(1u64, |a, d| d.map(|d| a.saturating_mul(d)));
                let known_prod: u64 = t
                    .iter()
                    .filter_map(|x| x.as_i64().filter(|&x| x > 0))
                    .fold(1u64, |a, x| a.saturating_mul(x as u64));
                let mut out = vec![inp[0]];
                for x in t {
                    match x.as_i64() {
                        Some(d) if d > 0 => out.push(Some(d as u64)),
                        _ => out.push(total.and_then(|t| t.checked_div(known_prod))),
                    }
                }
                Some(out)
            }
            _ => None,
        },
        "GlobalMaxPooling1D"
        | "GlobalMaxPooling2D"
        | "GlobalMaxPooling3D"
        | "GlobalAveragePooling1D"
        | "GlobalAveragePooling2D"
        | "GlobalAveragePooling3D" => {
            let cf = e.text("data_format", "channels_last")? == "channels_first";
            let ch = if cf { inp.get(1) } else { inp.last() }.copied().flatten();
            if e.flag("keepdims", false)? {
                let mut o = vec![inp[0]];
                for _ in 2..inp.len() {
                    o.push(Some(1));
                }
                if cf {
                    o.insert(1, ch);
                } else {
                    o.push(ch);
                }
                Some(o)
            } else {
                Some(vec![inp[0], ch])
            }
        }
        "MaxPooling1D" | "MaxPooling2D" | "MaxPooling3D" | "AveragePooling1D"
        | "AveragePooling2D" | "AveragePooling3D" => {
            let n = inp.len().saturating_sub(2);
            if n == 0 {
                return Ok(None);
            }
            let pool = e.tuple("pool_size", n, Some(2))?;
            let strides = match e.get("strides") {
                None => pool.clone(),
                Some(_) => e.tuple("strides", n, None)?,
            };
            let padding = e.text("padding", "valid")?;
            let cf = e.text("data_format", "channels_last")? == "channels_first";
            let mut o = inp.clone();
            for i in 0..n {
                let ax = if cf { i + 2 } else { i + 1 };
                o[ax] = shapes::pool_len(inp[ax], pool[i], strides[i], padding);
            }
            Some(o)
        }
        "RepeatVector" => Some(vec![
            inp[0],
            Some(e.size("n")?),
            inp.last().copied().flatten(),
        ]),
        "Permute" => match e.get("dims") {
            Some(Value::Array(d)) => {
                let mut o = vec![inp[0]];
                for x in d {
                    let i = x.as_u64().unwrap_or(0) as usize;
                    o.push(inp.get(i).copied().flatten());
                }
                Some(o)
            }
            _ => None,
        },
        "Concatenate" => {
            let axis = e.int("axis", -1)?;
            let r = inp.len() as i64;
            let ax = if axis < 0 { r + axis } else { axis };
            if !(0..r).contains(&ax) {
                return Ok(None);
            }
            let mut o = inp.clone();
            o[ax as usize] = inputs.iter().try_fold(0u64, |a, s| {
                s.get(ax as usize)
                    .copied()
                    .flatten()
                    .map(|d| a.saturating_add(d))
            });
            Some(o)
        }
        "Dot" | "ZeroPadding1D" | "ZeroPadding2D" | "ZeroPadding3D" | "Cropping1D"
        | "Cropping2D" | "Cropping3D" | "UpSampling1D" | "UpSampling2D" | "UpSampling3D" => None,
        // Element-wise and shape-preserving.
        _ => Some(inp),
    })
}
