//! The tensors of dense, conv, embedding and norm layers (recurrent and attention layers are
//! in `recurrent` and `attention`), and `LayerCtx::push`, the one way a layer adds a tensor: it names the tensor,
//! resolves its initializer (the request's, else `auto`, else the framework default) and
//! charges it to the collector.

use std::collections::HashMap;

use super::naming::{
    BIAS, EMBED, NORM_B, NORM_W, NUM_BATCHES, Namer, RMS_W, RUN_MEAN, RUN_VAR, Role, WEIGHT,
    tensor_name,
};
use super::{Collector, Draft, Layout, attention, recurrent};
use crate::error::{Result, SpecError};
use crate::init::defaults::{bias_default, constant_default, weight_default};
use crate::init::{self, FanMode, Init, TensorCtx, VsDistribution};
use crate::spec::{Layer, LayerKind, NormKind, Request};
use crate::terms::fields::{index, join};
use crate::terms::{Activation, DType, Framework};

/// The activation `auto` looks at: the layer's own, else a standalone activation entry that
/// follows it (skipping dropout).
pub(super) fn activation_for(layers: &[Layer], i: usize) -> Option<Activation> {
    let own = match &layers[i].kind {
        LayerKind::Dense { activation, .. } | LayerKind::Conv { activation, .. } => *activation,
        _ => None,
    };
    own.or_else(|| {
        layers[i + 1..]
            .iter()
            .find(|l| !matches!(l.kind, LayerKind::Dropout { .. }))
            .and_then(|l| {
                if let LayerKind::Activation(a) = l.kind {
                    Some(a)
                } else {
                    None
                }
            })
    })
}

pub(super) struct LayerCtx<'a> {
    pub(super) fw: Framework,
    pub(super) prefix: String,
    /// Keras/Flax stacked or bidirectional recurrent entries: the name prefix of every
    /// (layer, direction) sub-layer, in that order.
    pub(super) sub_names: Vec<String>,
    pub(super) layer_id: String,
    pub(super) path: String,
    pub(super) dtype: DType,
    pub(super) activation: Option<Activation>,
    pub(super) drafts: &'a mut Collector,
}

/// One tensor of a layer, however the layer names it: what `LayerCtx::push` (the one way a
/// layer adds a tensor) needs.
pub(super) struct LayerTensor<'a> {
    pub(super) name: String,
    /// Role in the stream identity `layer/<id>/<role>`.
    pub(super) role: String,
    /// The PyTorch-layout shape; `perm` maps output axes to logical axes when the framework
    /// stores the tensor transposed.
    pub(super) logical: Vec<u64>,
    pub(super) perm: Option<Vec<usize>>,
    pub(super) requested: Option<&'a Init>,
    pub(super) requested_path: String,
    pub(super) default: (Init, String),
    /// Fans that replace the rule's; `fans_for_requested` says whether they hold for a
    /// requested initializer too (fans fixed by the layer: Keras EinsumDense axes, Flax
    /// DenseGeneral flattening) or only for the default (the Flax embedding's fan_in).
    pub(super) fans: (Option<u64>, Option<u64>),
    pub(super) fans_for_requested: bool,
    /// `auto` on a bias or statistic: zeros, with this reason (`None`: a weight, where `auto`
    /// chooses by the activation).
    pub(super) auto_neutral: Option<&'static str>,
    pub(super) dtype: DType,
}

impl LayerCtx<'_> {
    /// Resolves and collects one tensor of the layer.
    pub(super) fn push(&mut self, t: LayerTensor<'_>) -> Result<()> {
        let shape: Vec<u64> = match &t.perm {
            Some(p) => p.iter().map(|&a| t.logical[a]).collect(),
            None => t.logical.clone(),
        };
        let (spec, reason, path) = match (t.requested, t.auto_neutral) {
            (Some(Init::Auto), Some(why)) => (Init::Zeros, Some(why.to_string()), t.requested_path),
            (Some(s), _) => (s.clone(), None, t.requested_path),
            (None, _) => (t.default.0, Some(t.default.1), self.path.clone()),
        };
        let (fan_in, fan_out) = if t.requested.is_none() || t.fans_for_requested {
            t.fans
        } else {
            (None, None)
        };
        let ctx = TensorCtx {
            framework: self.fw,
            shape: &shape,
            logical_shape: &t.logical,
            fan_in,
            fan_out,
            activation: self.activation,
            path: &path,
        };
        let mut resolved = init::resolve(&spec, &ctx)?;
        if let Some(r) = reason {
            resolved.info.prepend_reason(r);
        }
        self.drafts.push(Draft {
            name: t.name,
            name_path: self.path.clone(),
            dtype: t.dtype,
            shape,
            logical_shape: t.logical,
            layout: match t.perm {
                Some(perm) => Layout::Permuted { perm },
                None => Layout::Identity,
            },
            identity: format!("layer/{}/{}", self.layer_id, t.role),
            resolved,
            zero_row: None,
            fills: Vec::new(),
            origin: self.path.clone(),
            slice: None,
        })?;
        Ok(())
    }

    /// Adds one tensor of a dense, conv, embedding or norm layer, named by its `Role`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add(
        &mut self,
        role: &Role,
        logical: Vec<u64>,
        perm: Option<Vec<usize>>,
        requested: Option<&Init>,
        requested_path: &str,
        default: (Init, String),
        fan_in_override: Option<u64>,
        dtype: DType,
    ) -> Result<()> {
        self.push(LayerTensor {
            name: tensor_name(self.fw, &self.prefix, role),
            role: role.neutral.to_string(),
            logical,
            perm,
            requested,
            requested_path: requested_path.to_string(),
            default,
            fans: (fan_in_override, None),
            fans_for_requested: false,
            auto_neutral: (role.neutral != "weight")
                .then_some("auto: biases and statistics start at their neutral value"),
            dtype,
        })
    }
}

pub(super) fn layer_drafts(req: &Request, drafts: &mut Collector) -> Result<()> {
    let fw = req.framework;
    let mut namer = Namer {
        framework: fw,
        counts: HashMap::new(),
    };
    for (i, layer) in req.layers.iter().enumerate() {
        if matches!(
            layer.kind,
            LayerKind::Activation(_) | LayerKind::Dropout { .. }
        ) {
            continue;
        }
        let path = index("layers", i);
        if let LayerKind::Recurrent(r) = &layer.kind {
            // Every (layer, direction) of a stack writes at least an input and a recurrent
            // kernel; checked before the names and loops that multiply.
            let dirs = if r.bidirectional { 2 } else { 1 };
            drafts.reserve(
                r.num_layers.saturating_mul(dirs).saturating_mul(2),
                &join(&path, "num_layers"),
            )?;
        }
        let prefix = namer.prefix(i, layer);
        let sub_names = match &layer.kind {
            LayerKind::Recurrent(r)
                if fw != Framework::PyTorch && (r.num_layers > 1 || r.bidirectional) =>
            {
                recurrent::recurrent_names(fw, r, &prefix, layer.name.is_some(), |base| {
                    namer.next(base)
                })
            }
            _ => Vec::new(),
        };
        let mut cx = LayerCtx {
            fw,
            prefix,
            sub_names,
            layer_id: layer.name.clone().unwrap_or_else(|| index("layers", i)),
            path: path.clone(),
            dtype: layer.dtype.unwrap_or(req.dtype),
            activation: activation_for(&req.layers, i),
            drafts,
        };
        let dt = cx.dtype;
        let kpath = join(&path, "kernel_initializer");
        let bpath = join(&path, "bias_initializer");
        match &layer.kind {
            LayerKind::Dense {
                in_features,
                out_features,
                bias,
                kernel_init,
                bias_init,
                ..
            } => {
                let perm = if fw == Framework::PyTorch {
                    None
                } else {
                    Some(vec![1, 0])
                };
                cx.add(
                    &WEIGHT,
                    vec![*out_features, *in_features],
                    perm,
                    kernel_init.as_ref(),
                    &kpath,
                    weight_default(fw, "nn.Linear/Dense"),
                    None,
                    dt,
                )?;
                if *bias {
                    cx.add(
                        &BIAS,
                        vec![*out_features],
                        None,
                        bias_init.as_ref(),
                        &bpath,
                        bias_default(fw, *in_features as f64),
                        None,
                        dt,
                    )?;
                }
            }
            LayerKind::Conv {
                dims,
                in_channels,
                out_channels,
                kernel_size,
                groups,
                bias,
                kernel_init,
                bias_init,
                ..
            } => {
                let mut logical = vec![*out_channels, in_channels / groups];
                logical.extend_from_slice(kernel_size);
                let rf: u64 = kernel_size.iter().fold(1u64, |a, &k| a.saturating_mul(k));
                let perm = if fw == Framework::PyTorch {
                    None
                } else {
                    // [out, in, *k] → [*k, in, out]
                    let mut p: Vec<usize> = (2..2 + dims).collect();
                    p.extend([1, 0]);
                    Some(p)
                };
                let fan_in = (in_channels / groups).saturating_mul(rf) as f64;
                cx.add(
                    &WEIGHT,
                    logical,
                    perm,
                    kernel_init.as_ref(),
                    &kpath,
                    weight_default(fw, "ConvNd/Conv"),
                    None,
                    dt,
                )?;
                if *bias {
                    cx.add(
                        &BIAS,
                        vec![*out_channels],
                        None,
                        bias_init.as_ref(),
                        &bpath,
                        bias_default(fw, fan_in),
                        None,
                        dt,
                    )?;
                }
            }
            LayerKind::Embedding {
                num_embeddings,
                embedding_dim,
                padding_idx,
                init: ei,
            } => {
                if padding_idx.is_some() && fw != Framework::PyTorch {
                    return Err(SpecError::unsupported_layer_type(
                        join(&path, "padding_idx"),
                        format!(
                            "padding_idx is PyTorch-only: {} has no padding row (Keras masks with mask_zero, which changes no weight)",
                            if fw == Framework::Keras {
                                "Keras Embedding"
                            } else {
                                "Flax Embed"
                            }
                        ),
                    ));
                }
                let (default, fan) = match fw {
                    Framework::PyTorch => (
                        Init::Normal {
                            mean: 0.0,
                            std: 1.0,
                        },
                        None,
                    ),
                    Framework::Keras => (
                        Init::RandomUniform {
                            minval: -0.05,
                            maxval: 0.05,
                        },
                        None,
                    ),
                    // flax/linen/linear.py Embed: variance_scaling(1.0, 'fan_in', 'normal', out_axis=0) ⇒ fan_in = features
                    Framework::Flax => (
                        Init::VarianceScaling {
                            scale: 1.0,
                            mode: FanMode::FanIn,
                            distribution: VsDistribution::Normal,
                        },
                        Some(*embedding_dim),
                    ),
                };
                let why = match fw {
                    Framework::PyTorch => {
                        "PyTorch nn.Embedding default: N(0, 1) (torch/nn/modules/sparse.py)"
                    }
                    Framework::Keras => "Keras Embedding default: RandomUniform(-0.05, 0.05)",
                    Framework::Flax => {
                        "Flax Embed default: variance_scaling(1, fan_in, normal, out_axis=0) ⇒ N(0, 1/features)"
                    }
                };
                cx.add(
                    &EMBED,
                    vec![*num_embeddings, *embedding_dim],
                    None,
                    ei.as_ref(),
                    &join(&path, "embeddings_initializer"),
                    (default, why.into()),
                    fan,
                    dt,
                )?;
                if let Some(last) = cx.drafts.last_mut() {
                    last.zero_row = *padding_idx;
                }
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
                if *kind == NormKind::Batch && !*track_running_stats && fw != Framework::PyTorch {
                    return Err(SpecError::unsupported_layer_type(
                        join(&path, "track_running_stats"),
                        format!(
                            "track_running_stats is PyTorch-only: {} BatchNorm always keeps its statistics ({})",
                            if fw == Framework::Keras {
                                "Keras"
                            } else {
                                "Flax"
                            },
                            if fw == Framework::Keras {
                                "moving_mean, moving_variance"
                            } else {
                                "batch_stats mean, var"
                            }
                        ),
                    ));
                }
                let wrole = if *kind == NormKind::Rms {
                    &RMS_W
                } else {
                    &NORM_W
                };
                let wpath = join(&path, "weight_initializer");
                if *affine {
                    cx.add(
                        wrole,
                        shape.clone(),
                        None,
                        weight_init.as_ref(),
                        &wpath,
                        constant_default(Init::Ones, "norm scale default: ones"),
                        None,
                        dt,
                    )?;
                }
                if *bias {
                    cx.add(
                        &NORM_B,
                        shape.clone(),
                        None,
                        bias_init.as_ref(),
                        &bpath,
                        constant_default(Init::Zeros, "norm shift default: zeros"),
                        None,
                        dt,
                    )?;
                }
                if *kind == NormKind::Batch && *track_running_stats {
                    cx.add(
                        &RUN_MEAN,
                        shape.clone(),
                        None,
                        None,
                        &path,
                        constant_default(Init::Zeros, "running mean starts at 0"),
                        None,
                        dt,
                    )?;
                    cx.add(
                        &RUN_VAR,
                        shape.clone(),
                        None,
                        None,
                        &path,
                        constant_default(Init::Ones, "running variance starts at 1"),
                        None,
                        dt,
                    )?;
                    if fw == Framework::PyTorch {
                        cx.add(
                            &NUM_BATCHES,
                            vec![],
                            None,
                            None,
                            &path,
                            constant_default(
                                Init::Zeros,
                                "PyTorch BatchNorm buffer: an int64 scalar 0",
                            ),
                            None,
                            DType::I64,
                        )?;
                    }
                }
            }
            LayerKind::Activation(_) | LayerKind::Dropout { .. } => {}
            LayerKind::Recurrent(r) => recurrent::recurrent(&mut cx, r)?,
            LayerKind::Attention(a) => attention::attention(&mut cx, a)?,
        }
    }
    Ok(())
}

/// One tensor of a layer whose names are built at run time.
pub(super) struct TailTensor<'a> {
    /// Name after the layer prefix (`weight_ih_l0`, `lstm_cell/kernel`, `ii/kernel`).
    pub(super) tail: String,
    /// Role in the stream identity `layer/<id>/<role>`.
    pub(super) role: String,
    pub(super) logical: Vec<u64>,
    pub(super) perm: Option<Vec<usize>>,
    pub(super) requested: Option<&'a Init>,
    pub(super) requested_key: &'static str,
    pub(super) default: (Init, String),
    /// Explicit fans (Keras EinsumDense axes, Flax DenseGeneral flattening).
    pub(super) fans: Option<(u64, u64)>,
    pub(super) is_bias: bool,
}

impl LayerCtx<'_> {
    /// Adds one tensor of a recurrent or attention layer, named by its tail.
    pub(super) fn put(&mut self, s: TailTensor<'_>) -> Result<()> {
        let name = match self.fw {
            Framework::PyTorch => format!("{}.{}", self.prefix, s.tail),
            Framework::Keras => format!("{}/{}", self.prefix, s.tail),
            Framework::Flax => format!("params/{}/{}", self.prefix, s.tail),
        };
        let requested_path = join(&self.path, s.requested_key);
        let dtype = self.dtype;
        self.push(LayerTensor {
            name,
            role: s.role,
            logical: s.logical,
            perm: s.perm,
            requested: s.requested,
            requested_path,
            default: s.default,
            fans: (s.fans.map(|f| f.0), s.fans.map(|f| f.1)),
            fans_for_requested: true,
            auto_neutral: s.is_bias.then_some("auto: biases start at zero"),
            dtype,
        })
    }

    pub(super) fn unsupported(&self, field: &str, msg: String) -> SpecError {
        SpecError::unsupported_layer_type(join(&self.path, field), msg)
    }
}

pub(super) fn with_reason(spec: Init, r: &str) -> (Init, String) {
    (spec, r.to_string())
}
