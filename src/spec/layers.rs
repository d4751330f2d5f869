//! Layer entries of a sequential stack: their fields (with Keras spellings as aliases), size
//! inference from the previous layer, and their canonical JSON form.

use serde_json::{Map, Value, json};

use super::arch_layers::{self, Attention, Cell, Recurrent};
use super::fields::{self, Obj, index, join, wrong_type};
use super::{DType, check_name};
use crate::error::{ErrorCode, Result, SpecError};
use crate::init::{Init, catalogue};
use crate::terms::{ACTIVATION_NAMES, Activation};

fn parse_activation(v: &Value, path: &str) -> Result<Activation> {
    let unknown = |name: &str, p: &str| {
        SpecError::invalid_value(
            p,
            format!(
                "unknown activation `{name}`; use one of {}",
                ACTIVATION_NAMES.join(", ")
            ),
        )
    };
    match v {
        Value::String(s) => Activation::from_name(s, None).ok_or_else(|| unknown(s, path)),
        Value::Object(_) => {
            let o = Obj::new(v, path)?;
            let (name, np) = o.str_any(&["name"])?.ok_or_else(|| {
                SpecError::missing_field(join(path, "name"), "an activation object needs a `name`")
            })?;
            let slope = o.f64_any(&["negative_slope", "alpha"])?.map(|x| x.0);
            o.finish()?;
            if slope.is_some() && name != "leaky_relu" {
                return Err(SpecError::invalid_value(
                    join(path, "negative_slope"),
                    "only leaky_relu takes a negative_slope",
                ));
            }
            Activation::from_name(name, slope).ok_or_else(|| unknown(name, &np))
        }
        other => Err(wrong_type(path, "an activation name", other)),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    Layer,
    Rms,
    Batch,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LayerKind {
    Dense {
        in_features: u64,
        out_features: u64,
        bias: bool,
        kernel_init: Option<Init>,
        bias_init: Option<Init>,
        activation: Option<Activation>,
    },
    Conv {
        /// 1, 2 or 3 spatial dimensions.
        dims: usize,
        in_channels: u64,
        out_channels: u64,
        kernel_size: Vec<u64>,
        groups: u64,
        bias: bool,
        kernel_init: Option<Init>,
        bias_init: Option<Init>,
        activation: Option<Activation>,
    },
    Embedding {
        num_embeddings: u64,
        embedding_dim: u64,
        /// Already normalised to a row index (PyTorch's negative indices count from the end).
        padding_idx: Option<u64>,
        init: Option<Init>,
    },
    Norm {
        kind: NormKind,
        /// `normalized_shape` for layer/RMS norm; `[num_features]` for batch norm.
        shape: Vec<u64>,
        /// Learnable scale (PyTorch `elementwise_affine` / `affine`).
        affine: bool,
        /// Learnable shift (layer norm `bias`; batch norm follows `affine`; RMS norm has none).
        bias: bool,
        /// Batch norm running statistics.
        track_running_stats: bool,
        weight_init: Option<Init>,
        bias_init: Option<Init>,
    },
    /// A standalone parameter-free entry (`{"type": "relu"}`), which takes a position in
    /// PyTorch's `nn.Sequential` numbering.
    Activation(Activation),
    Dropout {
        p: f64,
    },
    /// `rnn`, `lstm`, `gru` (see `arch_layers`).
    Recurrent(Recurrent),
    /// `multihead_attention`.
    Attention(Attention),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub name: Option<String>,
    pub dtype: Option<DType>,
    pub kind: LayerKind,
}

impl Layer {
    /// Number of features this layer hands to the next one (`None`: unchanged).
    fn output_features(&self) -> Option<u64> {
        match &self.kind {
            LayerKind::Dense { out_features, .. } => Some(*out_features),
            LayerKind::Conv { out_channels, .. } => Some(*out_channels),
            LayerKind::Embedding { embedding_dim, .. } => Some(*embedding_dim),
            LayerKind::Norm { shape, .. } => shape.last().copied(),
            LayerKind::Activation(_) | LayerKind::Dropout { .. } => None,
            LayerKind::Recurrent(r) => Some(r.output_features()),
            LayerKind::Attention(a) => Some(a.embed_dim),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            LayerKind::Dense { .. } => "dense",
            LayerKind::Conv { dims: 1, .. } => "conv1d",
            LayerKind::Conv { dims: 2, .. } => "conv2d",
            LayerKind::Conv { .. } => "conv3d",
            LayerKind::Embedding { .. } => "embedding",
            LayerKind::Norm {
                kind: NormKind::Layer,
                ..
            } => "layer_norm",
            LayerKind::Norm {
                kind: NormKind::Rms,
                ..
            } => "rms_norm",
            LayerKind::Norm {
                kind: NormKind::Batch,
                ..
            } => "batch_norm",
            LayerKind::Activation(a) => a.name(),
            LayerKind::Dropout { .. } => "dropout",
            LayerKind::Recurrent(r) => r.cell.type_name(),
            LayerKind::Attention(_) => "multihead_attention",
        }
    }

    /// Canonical form. Hand-written, not derived: the `type` is the request's layer name (a
    /// standalone `linear` is `identity`), absent options are omitted and initializers and
    /// activations take their canonical forms.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        // A standalone linear activation is written `identity`: as a layer type, `linear` is
        // PyTorch's nn.Linear (a dense layer), so the canonical request must not say it.
        let ty = match self.kind {
            LayerKind::Activation(Activation::Linear) => "identity",
            _ => self.type_name(),
        };
        m.insert("type".into(), json!(ty));
        if let Some(n) = &self.name {
            m.insert("name".into(), json!(n));
        }
        if let Some(d) = self.dtype {
            m.insert("dtype".into(), json!(d.as_str()));
        }
        let init = |m: &mut Map<String, Value>, key: &str, i: &Option<Init>| {
            if let Some(i) = i {
                m.insert(key.into(), i.to_json());
            }
        };
        match &self.kind {
            LayerKind::Dense {
                in_features,
                out_features,
                bias,
                kernel_init,
                bias_init,
                activation,
            } => {
                m.insert("in_features".into(), json!(in_features));
                m.insert("out_features".into(), json!(out_features));
                m.insert("bias".into(), json!(bias));
                init(&mut m, "kernel_initializer", kernel_init);
                init(&mut m, "bias_initializer", bias_init);
                if let Some(a) = activation {
                    m.insert("activation".into(), a.to_json());
                }
            }
            LayerKind::Conv {
                in_channels,
                out_channels,
                kernel_size,
                groups,
                bias,
                kernel_init,
                bias_init,
                activation,
                ..
            } => {
                m.insert("in_channels".into(), json!(in_channels));
                m.insert("out_channels".into(), json!(out_channels));
                m.insert("kernel_size".into(), json!(kernel_size));
                m.insert("groups".into(), json!(groups));
                m.insert("bias".into(), json!(bias));
                init(&mut m, "kernel_initializer", kernel_init);
                init(&mut m, "bias_initializer", bias_init);
                if let Some(a) = activation {
                    m.insert("activation".into(), a.to_json());
                }
            }
            LayerKind::Embedding {
                num_embeddings,
                embedding_dim,
                padding_idx,
                init: i,
            } => {
                m.insert("num_embeddings".into(), json!(num_embeddings));
                m.insert("embedding_dim".into(), json!(embedding_dim));
                if let Some(p) = padding_idx {
                    m.insert("padding_idx".into(), json!(p));
                }
                init(&mut m, "embeddings_initializer", i);
            }
            LayerKind::Norm {
                kind,
                shape,
                affine,
                bias,
                track_running_stats,
                weight_init,
                bias_init,
            } => {
                match kind {
                    NormKind::Batch => {
                        m.insert("num_features".into(), json!(shape[0]));
                        m.insert("affine".into(), json!(affine));
                        m.insert("track_running_stats".into(), json!(track_running_stats));
                    }
                    NormKind::Layer => {
                        m.insert("normalized_shape".into(), json!(shape));
                        m.insert("elementwise_affine".into(), json!(affine));
                        m.insert("bias".into(), json!(bias));
                    }
                    NormKind::Rms => {
                        m.insert("normalized_shape".into(), json!(shape));
                        m.insert("elementwise_affine".into(), json!(affine));
                    }
                }
                init(&mut m, "weight_initializer", weight_init);
                init(&mut m, "bias_initializer", bias_init);
            }
            LayerKind::Activation(Activation::LeakyRelu { negative_slope }) => {
                m.insert("negative_slope".into(), json!(negative_slope));
            }
            LayerKind::Activation(_) => {}
            LayerKind::Dropout { p } => {
                m.insert("p".into(), json!(p));
            }
            LayerKind::Recurrent(r) => r.write(&mut m),
            LayerKind::Attention(a) => a.write(&mut m),
        }
        Value::Object(m)
    }
}

pub fn parse_layers(items: &[Value], path: &str) -> Result<Vec<Layer>> {
    let mut out: Vec<Layer> = Vec::with_capacity(items.len());
    // Features flowing out of the previous layer, and the path that fixed them (for messages).
    let mut features: Option<(u64, String)> = None;
    for (i, item) in items.iter().enumerate() {
        let lp = index(path, i);
        let layer = parse_layer(item, &lp, features.as_ref())?;
        if let Some(f) = layer.output_features() {
            features = Some((f, lp.clone()));
        }
        out.push(layer);
    }
    Ok(out)
}

pub(super) fn opt_init(o: &Obj<'_>, keys: &[&'static str]) -> Result<Option<Init>> {
    match o.get_any(keys)? {
        None => Ok(None),
        Some((v, p)) => Ok(Some(catalogue::parse(v, &p)?)),
    }
}

/// An input size: given explicitly (checked against the previous layer) or inferred.
pub(super) fn input_size(
    given: Option<(u64, String)>,
    prev: Option<&(u64, String)>,
    path: &str,
    what: &str,
) -> Result<u64> {
    match (given, prev) {
        (Some((g, gp)), Some((p, pp))) if g != *p => Err(SpecError::inconsistent_sizes(
            gp,
            format!("{what} is {g}, but the previous layer ({pp}) outputs {p}"),
        )),
        (Some((g, _)), _) => Ok(g),
        (None, Some((p, _))) => Ok(*p),
        (None, None) => Err(SpecError::missing_field(
            join(path, what),
            format!(
                "`{what}` is required for the first sized layer (nothing before it to infer it from)"
            ),
        )),
    }
}

/// Keras `input_shape`: the feature/channel count is its last entry (channels-last).
fn input_shape_last(o: &Obj<'_>) -> Result<Option<(u64, String)>> {
    match o.get_any(&["input_shape"])? {
        None => Ok(None),
        Some((v, p)) => {
            let s = fields::shape(v, &p, true)?;
            match s.last() {
                Some(&last) => Ok(Some((last, p))),
                None => Err(SpecError::invalid_value(p, "input_shape must not be empty")),
            }
        }
    }
}

fn one_of(a: Option<(u64, String)>, b: Option<(u64, String)>) -> Result<Option<(u64, String)>> {
    match (a, b) {
        (Some(_), Some((_, bp))) => Err(SpecError::conflicting_fields(
            bp,
            "input_shape and the explicit input size name the same thing; give only one",
        )),
        (a, b) => Ok(a.or(b)),
    }
}

fn parse_layer(v: &Value, path: &str, prev: Option<&(u64, String)>) -> Result<Layer> {
    let o = Obj::new(v, path)?;
    let (ty, ty_path) = o
        .str_any(&["type"])?
        .ok_or_else(|| SpecError::missing_field(join(path, "type"), "a layer needs a `type`"))?;
    let name = match o.str_any(&["name"])? {
        Some((n, p)) => {
            check_name(n, &p)?;
            Some(n.to_string())
        }
        None => None,
    };
    let dtype = match o.get_any(&["dtype"])? {
        Some((v, p)) => Some(DType::parse(v, &p)?),
        None => None,
    };
    let activation_attr = |o: &Obj<'_>| -> Result<Option<Activation>> {
        match o.get_any(&["activation"])? {
            None => Ok(None),
            Some((v, p)) => parse_activation(v, &p).map(Some),
        }
    };
    let kind = match ty {
        "dense" | "linear" => {
            let explicit = o.size_any(&["in_features", "input_dim"])?;
            let given = one_of(explicit, input_shape_last(&o)?)?;
            let in_features = input_size(given, prev, path, "in_features")?;
            let (out_features, _) = o.size_any(&["out_features", "units"])?.ok_or_else(|| {
                SpecError::missing_field(
                    join(path, "out_features"),
                    "a dense layer needs `out_features` (or `units`)",
                )
            })?;
            LayerKind::Dense {
                in_features,
                out_features,
                bias: o.bool_any(&["bias", "use_bias"], true)?,
                kernel_init: opt_init(&o, &["kernel_initializer", "weight_initializer"])?,
                bias_init: opt_init(&o, &["bias_initializer"])?,
                activation: activation_attr(&o)?,
            }
        }
        "conv1d" | "conv2d" | "conv3d" => {
            let dims = (ty.as_bytes()[4] - b'0') as usize;
            let explicit = o.size_any(&["in_channels"])?;
            let given = one_of(explicit, input_shape_last(&o)?)?;
            let in_channels = input_size(given, prev, path, "in_channels")?;
            let (out_channels, out_path) =
                o.size_any(&["out_channels", "filters"])?.ok_or_else(|| {
                    SpecError::missing_field(
                        join(path, "out_channels"),
                        "a conv layer needs `out_channels` (or `filters`)",
                    )
                })?;
            let (ks_v, ks_path) = o.require_any(&["kernel_size"], "")?;
            let mut kernel_size = fields::shape(ks_v, &ks_path, true)?;
            if kernel_size.len() == 1 && dims > 1 {
                kernel_size = vec![kernel_size[0]; dims];
            }
            if kernel_size.len() != dims {
                return Err(SpecError::invalid_value(
                    ks_path,
                    format!("{ty} needs {dims} kernel sizes, got {}", kernel_size.len()),
                ));
            }
            let groups = o.size_any(&["groups"])?;
            let g = groups.as_ref().map(|x| x.0).unwrap_or(1);
            let gp = groups.map(|x| x.1).unwrap_or_else(|| join(path, "groups"));
            if !in_channels.is_multiple_of(g) {
                return Err(SpecError::inconsistent_sizes(
                    gp,
                    format!("in_channels ({in_channels}) must be divisible by groups ({g})"),
                ));
            }
            if !out_channels.is_multiple_of(g) {
                return Err(SpecError::inconsistent_sizes(
                    out_path,
                    format!("out_channels ({out_channels}) must be divisible by groups ({g})"),
                ));
            }
            LayerKind::Conv {
                dims,
                in_channels,
                out_channels,
                kernel_size,
                groups: g,
                bias: o.bool_any(&["bias", "use_bias"], true)?,
                kernel_init: opt_init(&o, &["kernel_initializer", "weight_initializer"])?,
                bias_init: opt_init(&o, &["bias_initializer"])?,
                activation: activation_attr(&o)?,
            }
        }
        "embedding" => {
            let (num_embeddings, _) =
                o.size_any(&["num_embeddings", "input_dim"])?
                    .ok_or_else(|| {
                        SpecError::missing_field(
                            join(path, "num_embeddings"),
                            "an embedding needs `num_embeddings` (or `input_dim`)",
                        )
                    })?;
            let (embedding_dim, _) =
                o.size_any(&["embedding_dim", "output_dim"])?
                    .ok_or_else(|| {
                        SpecError::missing_field(
                            join(path, "embedding_dim"),
                            "an embedding needs `embedding_dim` (or `output_dim`)",
                        )
                    })?;
            let padding_idx = match o.get_any(&["padding_idx"])? {
                None | Some((Value::Null, _)) => None,
                Some((v, p)) => {
                    let raw = fields::integer(v, &p)?;
                    let n = num_embeddings as i64;
                    // PyTorch: a negative padding_idx counts from the end.
                    let idx = if raw < 0 { raw + n } else { raw };
                    if !(0..n).contains(&idx) {
                        return Err(SpecError::invalid_value(
                            p,
                            format!("padding_idx {raw} is outside [-{n}, {n})"),
                        ));
                    }
                    Some(idx as u64)
                }
            };
            LayerKind::Embedding {
                num_embeddings,
                embedding_dim,
                padding_idx,
                init: opt_init(&o, &["embeddings_initializer", "weight_initializer"])?,
            }
        }
        "layer_norm" | "rms_norm" => {
            let kind = if ty == "layer_norm" {
                NormKind::Layer
            } else {
                NormKind::Rms
            };
            let shape = match o.get_any(&["normalized_shape"])? {
                Some((v, p)) => {
                    let s = fields::shape(v, &p, true)?;
                    if s.is_empty() {
                        return Err(SpecError::invalid_value(
                            p,
                            "normalized_shape must not be empty",
                        ));
                    }
                    if let (Some(last), Some((pf, pp))) = (s.last(), prev)
                        && last != pf
                    {
                        return Err(SpecError::inconsistent_sizes(
                            p,
                            format!(
                                "normalized_shape ends in {last}, but the previous layer ({pp}) outputs {pf}"
                            ),
                        ));
                    }
                    s
                }
                None => vec![input_size(None, prev, path, "normalized_shape")?],
            };
            let affine = o.bool_any(&["elementwise_affine"], true)?;
            let bias = kind == NormKind::Layer && affine && o.bool_any(&["bias"], true)?;
            LayerKind::Norm {
                kind,
                shape,
                affine,
                bias,
                track_running_stats: false,
                weight_init: opt_init(&o, &["weight_initializer", "gamma_initializer"])?,
                bias_init: if kind == NormKind::Layer {
                    opt_init(&o, &["bias_initializer", "beta_initializer"])?
                } else {
                    None
                },
            }
        }
        "batch_norm" | "batch_norm1d" | "batch_norm2d" | "batch_norm3d" => {
            let explicit = o.size_any(&["num_features"])?;
            let features = input_size(explicit, prev, path, "num_features")?;
            let affine = o.bool_any(&["affine"], true)?;
            LayerKind::Norm {
                kind: NormKind::Batch,
                shape: vec![features],
                affine,
                bias: affine,
                track_running_stats: o.bool_any(&["track_running_stats"], true)?,
                weight_init: opt_init(&o, &["weight_initializer", "gamma_initializer"])?,
                bias_init: opt_init(&o, &["bias_initializer", "beta_initializer"])?,
            }
        }
        "dropout" => {
            let p = o.f64_any(&["p", "rate"])?;
            if let Some((x, pp)) = &p
                && !(0.0..=1.0).contains(x)
            {
                return Err(SpecError::invalid_value(pp.clone(), "p must be in [0, 1]"));
            }
            LayerKind::Dropout {
                p: p.map(|x| x.0).unwrap_or(0.5),
            }
        }
        "rnn" => LayerKind::Recurrent(arch_layers::parse_recurrent(&o, Cell::Rnn, path, prev)?),
        "lstm" => LayerKind::Recurrent(arch_layers::parse_recurrent(&o, Cell::Lstm, path, prev)?),
        "gru" => LayerKind::Recurrent(arch_layers::parse_recurrent(&o, Cell::Gru, path, prev)?),
        "multihead_attention" => {
            LayerKind::Attention(arch_layers::parse_attention(&o, path, prev)?)
        }
        t => {
            let slope = if t == "leaky_relu" {
                o.f64_any(&["negative_slope", "alpha"])?.map(|x| x.0)
            } else {
                None
            };
            match Activation::from_name(t, slope) {
                Some(a) => LayerKind::Activation(a),
                None => {
                    return Err(SpecError::new(
                        ErrorCode::UnknownLayerType,
                        ty_path,
                        format!(
                            "unknown layer type `{t}`; use dense, conv1d, conv2d, conv3d, embedding, layer_norm, rms_norm, batch_norm, rnn, lstm, gru, multihead_attention, dropout or an activation ({})",
                            ACTIVATION_NAMES.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    o.finish()?;
    Ok(Layer { name, dtype, kind })
}
