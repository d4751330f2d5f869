//! The containers and the scopes they build in: a `Sequential` (its layers in its own scope,
//! each fed the previous one's output shape), a `Functional` (its layers outside any scope,
//! fed the shapes of their inbound nodes), the per-layer dispatch, and the wrappers
//! (`Bidirectional`, `TimeDistributed`) that build the wrapped layer inside their own scope.

use serde_json::{Map, Value};

use super::entry::{Entry, dims, shape_list};
use super::parameter_free::free_output;
use super::shapes::Dims;
use super::{MODELS, PARAMETER_FREE, WITH_WEIGHTS, Walker, supported_classes};
use crate::error::{Result, SpecError};
use crate::terms::fields::{index, join, wrong_type};

impl Walker {
    /// A nested or top-level model; `scope` is where its caller builds it, `input` the shape
    /// its caller feeds it. Returns its output shape, when known.
    pub(super) fn model(
        &mut self,
        e: &Entry<'_>,
        scope: &str,
        input: Option<Dims>,
    ) -> Result<Option<Dims>> {
        let layers = match e.get("layers") {
            Some(Value::Array(a)) => a,
            Some(other) => return Err(wrong_type(&e.key("layers"), "a list of layers", other)),
            None => {
                return Err(SpecError::missing_field(
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
    pub(super) fn layer(
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
            return Err(SpecError::unsupported_layer_type(
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
            SpecError::invalid_value(
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
        match e.class {
            "Dense" => self.dense(e, &prefix, &inp, &bpath),
            "EinsumDense" => self.einsum_dense(e, &prefix, &inp),
            "Conv1D" | "Conv2D" | "Conv3D" | "DepthwiseConv1D" | "DepthwiseConv2D"
            | "SeparableConv1D" | "SeparableConv2D" | "Conv1DTranspose" | "Conv2DTranspose"
            | "Conv3DTranspose" => self.conv(e, &prefix, &inp, &bpath),
            "Embedding" => self.embedding(e, &prefix, &inp),
            "LayerNormalization" | "BatchNormalization" | "GroupNormalization" => {
                self.normalization(e, &prefix, &inp, &bpath)
            }
            "SimpleRNN" | "LSTM" | "GRU" => self.rnn(e, &prefix, &inp, &bpath),
            "Bidirectional" => {
                let fwd_v = e.get("layer").ok_or_else(|| {
                    SpecError::missing_field(e.key("layer"), "Bidirectional needs `layer`")
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
                    SpecError::missing_field(e.key("layer"), "TimeDistributed needs `layer`")
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
            other => Err(SpecError::unsupported_layer_type(
                join(&e.path, "class_name"),
                format!("Keras layer `{other}` is not supported by keras_model"),
            )),
        }
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
