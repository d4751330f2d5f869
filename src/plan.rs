//! The plan: a validated request turned into the list of tensors in file order, each with its
//! name, shape, dtype, byte range, stream identity, layout and resolved initializer, plus the
//! safetensors header bytes and totals. It currently holds several jobs (issue 14 splits them):
//! per-framework layer naming, the framework layer defaults, the tensors of dense, conv,
//! embedding and norm layers (`arch`: recurrent and attention), `only` and `shard`, offsets and
//! limits, the safetensors header, the ETag and `Format`. Every layer tensor goes through one
//! `LayerCtx::push` (`add` names it by its `Role`, `arch`'s `put` by its tail). All size
//! arithmetic here is checked.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

use crate::error::{ErrorCode, Result, SpecError};
use crate::init::{
    self, Dist, FanMode, Init, Nonlinearity, Resolved, TensorCtx, TorchFanMode, ValueSource,
    VsDistribution, WholeTensor,
};
use crate::rng::{ALGORITHM_ID, stream_id};
use crate::spec::fields::{index, join};
use crate::spec::{Activation, DType, Framework, Layer, LayerKind, NormKind, Request};

mod arch;
mod collect;
mod keras;

use collect::Collector;
pub use collect::{Cancel, CancelOnDrop, RESERVED_NAMES};

/// The service version written into every file.
pub const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The safetensors reference reader refuses headers above this many bytes.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Whole-tensor initializers (orthogonal, delta_orthogonal, sparse) hold the tensor in memory
/// and orthogonal costs O(rows·cols·min(rows, cols)); these bound both.
pub const MAX_WHOLE_TENSOR_ELEMENTS: u64 = 1 << 24;
pub const MAX_ORTHOGONAL_SMALL_DIM: u64 = 4096;

/// Per-request limits, checked before any value is generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_tensors: u64,
    pub max_elements: u64,
    pub max_response_bytes: u64,
}

impl Limits {
    pub const UNLIMITED: Limits = Limits {
        max_tensors: u64::MAX,
        max_elements: u64::MAX,
        max_response_bytes: u64::MAX,
    };
}

/// How the tensor's output layout relates to its logical (PyTorch-layout) element order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Output element i is logical element i.
    Identity,
    /// Output axis k is logical axis `perm[k]`. The last output axis is always logical axis 0.
    Permuted { perm: Vec<usize> },
}

/// A constant over a box of the logical shape: `ranges[d]` is the half-open range of axis d
/// (one per axis).
#[derive(Clone, Debug, PartialEq)]
pub struct PlanFill {
    pub ranges: Vec<(u64, u64)>,
    pub value: f32,
}

/// This rank's part of a tensor-parallel tensor: `shape[dim]` elements starting at `start`
/// along axis `dim` of `full_shape` (output layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub dim: usize,
    pub start: u64,
    pub full_shape: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    pub dtype: DType,
    /// Shape in the output (framework) layout.
    pub shape: Vec<u64>,
    /// Shape in PyTorch layout; element indices of the random stream count in this order.
    pub logical_shape: Vec<u64>,
    pub layout: Layout,
    pub numel: u64,
    /// Byte range in the safetensors data section (relative to its start).
    pub begin: u64,
    pub end: u64,
    /// The framework-neutral identity the random stream is derived from.
    pub identity: String,
    pub stream: u64,
    pub resolved: Resolved,
    /// Embedding `padding_idx`: this logical row is zero.
    pub zero_row: Option<u64>,
    /// Raw tensors' `fills`, in order, as boxes of the logical shape (applied after `zero_row`).
    pub fills: Vec<PlanFill>,
    /// JSON path of the layer or tensor entry this tensor comes from.
    pub origin: String,
    /// Set when the request shards this tensor; `shape` and `numel` are then the slice's.
    pub slice: Option<Slice>,
}

impl TensorPlan {
    /// The whole tensor's shape in the output layout (before any sharding).
    pub fn full_shape(&self) -> &[u64] {
        match &self.slice {
            Some(s) => &s.full_shape,
            None => &self.shape,
        }
    }

    /// The slice as JSON (`{"dim", "start", "length", "full_shape"}`), if any.
    pub fn slice_json(&self) -> Option<Value> {
        self.slice.as_ref().map(|s| {
            json!({"dim": s.dim, "start": s.start, "length": self.shape[s.dim], "full_shape": s.full_shape})
        })
    }
}

impl TensorPlan {
    pub fn to_json(&self, data_start: u64) -> Value {
        let mut v = json!({
            "name": self.name,
            "dtype": self.dtype.as_str(),
            "shape": self.shape,
            "elements": self.numel,
            "data_offsets": [self.begin, self.end],
            "file_offsets": [data_start + self.begin, data_start + self.end],
            "stream_identity": self.identity,
            "init": self.resolved.info.to_json(),
            "origin": self.origin,
        });
        if self.logical_shape != self.shape {
            v["pytorch_shape"] = json!(self.logical_shape);
        }
        if let Some(r) = self.zero_row {
            v["zero_row"] = json!(r);
        }
        if !self.fills.is_empty() {
            let fills: Vec<Value> = self
                .fills
                .iter()
                .map(|f| {
                    let idx: Vec<Value> = f.ranges.iter().map(|(a, b)| json!([a, b])).collect();
                    json!({"index": idx, "value": f.value})
                })
                .collect();
            v["fills"] = json!(fills);
        }
        if let Some(sl) = self.slice_json() {
            v["slice"] = sl;
        }
        v
    }
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub request: Request,
    /// Tensors in file order: dtype (safetensors enum order, descending), then name bytes.
    pub tensors: Vec<TensorPlan>,
    /// The 8-byte length prefix plus the space-padded JSON header.
    pub header: Vec<u8>,
    /// The canonical resolved request, compact JSON.
    pub canonical: String,
    pub total_elements: u64,
    pub data_bytes: u64,
    pub file_bytes: u64,
}

/// Output formats; the ETag differs per format because the bytes do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Safetensors,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Safetensors => "safetensors",
        }
    }
}

impl Plan {
    pub fn seed(&self) -> u64 {
        self.request.seed
    }

    pub fn data_start(&self) -> u64 {
        self.header.len() as u64
    }

    /// Strong ETag: SHA-256 over the algorithm id, the service version (it is written into
    /// the file), the format and the canonical request.
    pub fn etag(&self, format: Format) -> String {
        let mut h = Sha256::new();
        h.update(ALGORITHM_ID.as_bytes());
        h.update(b"\n");
        h.update(SERVICE_VERSION.as_bytes());
        h.update(b"\n");
        h.update(format.as_str().as_bytes());
        h.update(b"\n");
        h.update(self.canonical.as_bytes());
        let digest = h.finalize();
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    }

    /// The `/v1/plan` document.
    pub fn to_json(&self) -> Value {
        let ds = self.data_start();
        json!({
            "seed": crate::spec::seed_json(self.request.seed),
            "framework": self.request.framework.as_str(),
            "algorithm": ALGORITHM_ID,
            "service_version": SERVICE_VERSION,
            "tensors": self.tensors.iter().map(|t| t.to_json(ds)).collect::<Vec<_>>(),
            "totals": {
                "tensors": self.tensors.len(),
                "parameters": self.total_elements,
                "data_bytes": self.data_bytes,
                "header_bytes": ds,
                "safetensors_bytes": self.file_bytes,
            },
            "etag": { "json": self.etag(Format::Json), "safetensors": self.etag(Format::Safetensors) },
            "request": self.request.to_canonical_json(),
        })
    }
}

/// A tensor before it has a place in the file.
#[derive(Clone)]
struct Draft {
    name: String,
    name_path: String,
    dtype: DType,
    shape: Vec<u64>,
    logical_shape: Vec<u64>,
    layout: Layout,
    identity: String,
    resolved: Resolved,
    zero_row: Option<u64>,
    fills: Vec<PlanFill>,
    origin: String,
    slice: Option<Slice>,
}

fn checked_numel(shape: &[u64], path: &str) -> Result<u64> {
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            SpecError::new(
                ErrorCode::SizeOverflow,
                path,
                format!("the element count of shape {shape:?} overflows 64 bits"),
            )
        })
}

/// Per-framework automatic layer names (`0`, `dense_1`, `Dense_1`).
struct Namer {
    framework: Framework,
    counts: HashMap<&'static str, u64>,
}

impl Namer {
    /// The next automatic name for a class prefix (`lstm_1`, `LSTMCell_2`): the sub-layers a
    /// Keras/Flax stacked or bidirectional recurrent entry expands into.
    fn next(&mut self, base: &'static str) -> String {
        let c = self.counts.entry(base).or_insert(0);
        let name = match self.framework {
            Framework::Flax => format!("{base}_{c}"),
            _ if *c == 0 => base.to_string(),
            _ => format!("{base}_{c}"),
        };
        *c += 1;
        name
    }

    fn prefix(&mut self, position: usize, layer: &Layer) -> String {
        if let Some(n) = &layer.name {
            return n.clone();
        }
        match self.framework {
            Framework::PyTorch => position.to_string(),
            Framework::Keras => {
                let base = keras_class(&layer.kind);
                let c = self.counts.entry(base).or_insert(0);
                let name = if *c == 0 {
                    base.to_string()
                } else {
                    format!("{base}_{c}")
                };
                *c += 1;
                name
            }
            Framework::Flax => {
                let base = flax_class(&layer.kind);
                let c = self.counts.entry(base).or_insert(0);
                let name = format!("{base}_{c}");
                *c += 1;
                name
            }
        }
    }
}

/// Keras 3 auto-name prefix: the snake-cased class name (`keras.src.utils.naming`).
fn keras_class(k: &LayerKind) -> &'static str {
    match k {
        LayerKind::Dense { .. } => "dense",
        LayerKind::Conv { dims: 1, .. } => "conv1d",
        LayerKind::Conv { dims: 2, .. } => "conv2d",
        LayerKind::Conv { .. } => "conv3d",
        LayerKind::Embedding { .. } => "embedding",
        LayerKind::Norm {
            kind: NormKind::Layer,
            ..
        } => "layer_normalization",
        LayerKind::Norm {
            kind: NormKind::Rms,
            ..
        } => "rms_normalization",
        LayerKind::Norm {
            kind: NormKind::Batch,
            ..
        } => "batch_normalization",
        LayerKind::Activation(_) | LayerKind::Dropout { .. } => "",
        LayerKind::Recurrent(r) => arch::keras_class(r),
        LayerKind::Attention(_) => "multi_head_attention",
    }
}

/// Flax linen auto-name prefix: the module class name (`Dense_0`).
fn flax_class(k: &LayerKind) -> &'static str {
    match k {
        LayerKind::Dense { .. } => "Dense",
        LayerKind::Conv { .. } => "Conv",
        LayerKind::Embedding { .. } => "Embed",
        LayerKind::Norm {
            kind: NormKind::Layer,
            ..
        } => "LayerNorm",
        LayerKind::Norm {
            kind: NormKind::Rms,
            ..
        } => "RMSNorm",
        LayerKind::Norm {
            kind: NormKind::Batch,
            ..
        } => "BatchNorm",
        LayerKind::Activation(_) | LayerKind::Dropout { .. } => "",
        LayerKind::Recurrent(r) => arch::flax_class(r),
        LayerKind::Attention(_) => "MultiHeadDotProductAttention",
    }
}

/// A tensor role: its framework-neutral name and each framework's variable name.
struct Role {
    neutral: &'static str,
    keras: &'static str,
    flax: &'static str,
    /// Flax collection (`params` or `batch_stats`).
    flax_collection: &'static str,
}

const fn role(
    neutral: &'static str,
    keras: &'static str,
    flax: &'static str,
    flax_collection: &'static str,
) -> Role {
    Role {
        neutral,
        keras,
        flax,
        flax_collection,
    }
}

const WEIGHT: Role = role("weight", "kernel", "kernel", "params");
const BIAS: Role = role("bias", "bias", "bias", "params");
const EMBED: Role = role("weight", "embeddings", "embedding", "params");
const NORM_W: Role = role("weight", "gamma", "scale", "params");
const RMS_W: Role = role("weight", "scale", "scale", "params");
const NORM_B: Role = role("bias", "beta", "bias", "params");
const RUN_MEAN: Role = role("running_mean", "moving_mean", "mean", "batch_stats");
const RUN_VAR: Role = role("running_var", "moving_variance", "var", "batch_stats");
const NUM_BATCHES: Role = role("num_batches_tracked", "", "", "");

fn tensor_name(fw: Framework, prefix: &str, role: &Role) -> String {
    match fw {
        Framework::PyTorch => format!("{prefix}.{}", role.neutral),
        Framework::Keras => format!("{prefix}/{}", role.keras),
        Framework::Flax => format!("{}/{prefix}/{}", role.flax_collection, role.flax),
    }
}

/// The activation `auto` looks at: the layer's own, else a standalone activation entry that
/// follows it (skipping dropout).
fn activation_for(layers: &[Layer], i: usize) -> Option<Activation> {
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

struct LayerCtx<'a> {
    fw: Framework,
    prefix: String,
    /// Keras/Flax stacked or bidirectional recurrent entries: the name prefix of every
    /// (layer, direction) sub-layer, in that order.
    sub_names: Vec<String>,
    layer_id: String,
    path: String,
    dtype: DType,
    activation: Option<Activation>,
    drafts: &'a mut Collector,
}

/// One tensor of a layer, however the layer names it: what `LayerCtx::push` (the one way a
/// layer adds a tensor) needs.
struct LayerTensor<'a> {
    name: String,
    /// Role in the stream identity `layer/<id>/<role>`.
    role: String,
    /// The PyTorch-layout shape; `perm` maps output axes to logical axes when the framework
    /// stores the tensor transposed.
    logical: Vec<u64>,
    perm: Option<Vec<usize>>,
    requested: Option<&'a Init>,
    requested_path: String,
    default: (Init, String),
    /// Fans that replace the rule's; `fans_for_requested` says whether they hold for a
    /// requested initializer too (fans fixed by the layer: Keras EinsumDense axes, Flax
    /// DenseGeneral flattening) or only for the default (the Flax embedding's fan_in).
    fans: (Option<u64>, Option<u64>),
    fans_for_requested: bool,
    /// `auto` on a bias or statistic: zeros, with this reason (`None`: a weight, where `auto`
    /// chooses by the activation).
    auto_neutral: Option<&'static str>,
    dtype: DType,
}

impl LayerCtx<'_> {
    /// Resolves and collects one tensor of the layer.
    fn push(&mut self, t: LayerTensor<'_>) -> Result<()> {
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
            resolved.info.reason = Some(match resolved.info.reason.take() {
                Some(x) => format!("{r}; {x}"),
                None => r,
            });
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
    fn add(
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

fn weight_default(fw: Framework, what: &str) -> (Init, String) {
    match fw {
        Framework::PyTorch => (
            Init::Kaiming {
                dist: Dist::Uniform,
                a: libm::sqrt(5.0),
                mode: TorchFanMode::FanIn,
                nonlinearity: Nonlinearity::LeakyRelu,
            },
            format!(
                "PyTorch {what} default: kaiming_uniform_(a=√5) ⇒ U(±1/√fan_in) (torch/nn/modules reset_parameters)"
            ),
        ),
        Framework::Keras => (
            Init::Glorot(Dist::Uniform),
            format!("Keras {what} default kernel_initializer"),
        ),
        Framework::Flax => (
            Init::Lecun(Dist::Normal),
            format!("Flax {what} default kernel_init"),
        ),
    }
}

fn bias_default(fw: Framework, fan_in: f64) -> (Init, String) {
    match fw {
        Framework::PyTorch => {
            // torch/nn/modules/linear.py: bound = 1 / sqrt(fan_in) if fan_in > 0 else 0
            let bound = if fan_in > 0.0 {
                1.0 / libm::sqrt(fan_in)
            } else {
                0.0
            };
            (
                Init::Uniform {
                    low: -bound,
                    high: bound,
                },
                format!(
                    "PyTorch bias default: U(±1/√fan_in), fan_in = {fan_in} (torch/nn/modules reset_parameters)"
                ),
            )
        }
        _ => (
            Init::Zeros,
            format!(
                "{} bias default",
                if fw == Framework::Keras {
                    "Keras"
                } else {
                    "Flax"
                }
            ),
        ),
    }
}

fn constant_default(init: Init, what: &str) -> (Init, String) {
    (init, what.to_string())
}

fn layer_drafts(req: &Request, drafts: &mut Collector) -> Result<()> {
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
                arch::recurrent_names(fw, r, &prefix, layer.name.is_some(), |base| {
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
                    return Err(SpecError::new(
                        ErrorCode::UnsupportedLayerType,
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
                    return Err(SpecError::new(
                        ErrorCode::UnsupportedLayerType,
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
            LayerKind::Recurrent(r) => arch::recurrent(&mut cx, r)?,
            LayerKind::Attention(a) => arch::attention(&mut cx, a)?,
        }
    }
    Ok(())
}

fn raw_drafts(req: &Request, drafts: &mut Collector) -> Result<()> {
    for (i, t) in req.tensors.iter().enumerate() {
        let path = index("tensors", i);
        let init_path = join(&path, "init");
        // Structured initializers are defined on PyTorch's [out, in, *k]; a Keras/Flax raw
        // tensor is [*k, in, out], so it is generated as the permuted PyTorch tensor.
        let structured = t.init.on_torch_layout();
        let (logical, layout) =
            if structured && req.framework != Framework::PyTorch && t.shape.len() >= 2 {
                let n = t.shape.len();
                let mut logical = vec![t.shape[n - 1], t.shape[n - 2]];
                logical.extend_from_slice(&t.shape[..n - 2]);
                let mut perm: Vec<usize> = (2..n).collect();
                perm.extend([1, 0]);
                (logical, Layout::Permuted { perm })
            } else {
                (t.shape.clone(), Layout::Identity)
            };
        let ctx = TensorCtx {
            framework: req.framework,
            shape: &t.shape,
            logical_shape: &logical,
            fan_in: t.fan_in,
            fan_out: t.fan_out,
            activation: None,
            path: &init_path,
        };
        let resolved = init::resolve(&t.init, &ctx)?;
        let layout_for_fills = layout.clone();
        drafts.push(Draft {
            name: t.name.clone(),
            name_path: join(&path, "name"),
            dtype: t.dtype.unwrap_or(req.dtype),
            shape: t.shape.clone(),
            logical_shape: logical,
            layout,
            identity: format!("tensor/{}", t.name),
            resolved,
            zero_row: None,
            fills: raw_fills(t, &layout_for_fills),
            origin: path,
            slice: None,
        })?;
    }
    Ok(())
}

/// A raw tensor's fills as boxes of its logical shape: axes left out are whole, and a
/// permuted (Keras/Flax structured) tensor's output axis k is logical axis `perm[k]`.
fn raw_fills(t: &crate::spec::RawTensor, layout: &Layout) -> Vec<PlanFill> {
    t.fills
        .iter()
        .map(|f| {
            let out: Vec<(u64, u64)> = (0..t.shape.len())
                .map(|d| f.ranges.get(d).copied().unwrap_or((0, t.shape[d])))
                .collect();
            let ranges = match layout {
                Layout::Identity => out,
                Layout::Permuted { perm } => {
                    let mut logical = out.clone();
                    for (k, &axis) in perm.iter().enumerate() {
                        logical[axis] = out[k];
                    }
                    logical
                }
            };
            PlanFill {
                ranges,
                value: f.value as f32,
            }
        })
        .collect()
}

/// `hf_config`: the tensors `save_pretrained` writes, with stream identity `hf/<name>`.
fn hf_drafts(req: &Request, drafts: &mut Collector) -> Result<()> {
    let Some(model) = &req.hf else {
        return Ok(());
    };
    use crate::hf::HfInit;
    // The layer loop runs only once its tensor count is known to fit (closed form), so a
    // config of a billion layers or experts is refused before a single name is formatted.
    let (count, key) = model.tensor_count();
    drafts.reserve(count, &join("hf_config", key))?;
    for t in model.tensors() {
        let (spec, why) = match t.init {
            HfInit::Normal { std, why } => (Init::Normal { mean: 0.0, std }, why),
            HfInit::TruncNormal { std, a, b, why } => (
                Init::TruncatedNormal {
                    mean: 0.0,
                    std,
                    a,
                    b,
                },
                why,
            ),
            HfInit::Zeros { why } => (Init::Zeros, why),
            HfInit::Ones { why } => (Init::Ones, why),
            HfInit::Constant { value, why } => (Init::Constant { value }, why),
        };
        let ctx = TensorCtx {
            framework: Framework::PyTorch,
            shape: &t.shape,
            logical_shape: &t.shape,
            fan_in: None,
            fan_out: None,
            activation: None,
            path: "hf_config",
        };
        let mut resolved = init::resolve(&spec, &ctx)?;
        resolved.info.reason = Some(format!("{} {}", model.arch.name(), why));
        drafts.push(Draft {
            identity: format!("hf/{}", t.name),
            name: t.name,
            name_path: "hf_config".into(),
            dtype: req.dtype,
            logical_shape: t.shape.clone(),
            shape: t.shape,
            layout: Layout::Identity,
            resolved,
            zero_row: t.zero_row,
            fills: Vec::new(),
            origin: "hf_config".into(),
            slice: None,
        })?;
    }
    Ok(())
}

/// `recipe`: the one place a recipe rewrites resolved initializers, on the whole model (before
/// `only` and `shard`), so depth and fans are the full model's and a shard is a slice of it.
/// Raw `tensors` keep the initializer they name; layers the recipe does not cover (norms,
/// recurrent cells) keep theirs, and the rewritten ones carry `init.recipe` in the plan.
fn apply_recipe(req: &Request, drafts: &mut [Draft]) -> Result<()> {
    use crate::recipe::{self, Role, Target};
    let Some(rc) = &req.recipe else {
        return Ok(());
    };
    if let Some(hf) = &req.hf {
        let t = hf.arch.model_type();
        if !recipe::HF_RECIPE_MODEL_TYPES.contains(&t) {
            return Err(SpecError::new(
                ErrorCode::UnsupportedLayerType,
                "recipe",
                format!(
                    "recipes are defined for the hf_config model types {}; `{t}` is not one of them",
                    recipe::HF_RECIPE_MODEL_TYPES.join(", ")
                ),
            ));
        }
    }
    let dims = recipe::model_dims(req);
    // Weight layers of a stack, in order: a layer's ordinal is its depth for the recipe.
    let weight_layers: Vec<usize> = req
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            matches!(
                l.kind,
                LayerKind::Dense { .. } | LayerKind::Conv { .. } | LayerKind::Attention(_)
            )
        })
        .map(|(i, _)| i)
        .collect();
    for d in drafts.iter_mut() {
        let (role, layer, fans) = if d.origin == "hf_config" {
            (
                recipe::hf_role(&d.name),
                recipe::hf_layer(&d.name),
                recipe::hf_fans(&d.name, &d.logical_shape),
            )
        } else if let Some(k) = d
            .origin
            .strip_prefix("layers[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|r| r.parse::<usize>().ok())
        {
            let tensor_role = d.identity.rsplit_once("layer/").map(|x| x.1).unwrap_or("");
            let tensor_role = tensor_role.split_once('/').map(|x| x.1).unwrap_or("");
            let ordinal = weight_layers.iter().position(|&i| i == k);
            let ls = &d.logical_shape;
            let torch_fans = FanRuleFans::torch(ls);
            let is_bias = tensor_role.ends_with("bias");
            let role = match &req.layers[k].kind {
                LayerKind::Attention(_) if tensor_role == "bias_k" || tensor_role == "bias_v" => {
                    Role::Untouched
                }
                LayerKind::Dense { .. } | LayerKind::Conv { .. } | LayerKind::Attention(_)
                    if is_bias =>
                {
                    Role::Bias
                }
                LayerKind::Embedding { .. } => Role::Embedding,
                LayerKind::Dense { .. } | LayerKind::Conv { .. } => {
                    if ordinal.map(|o| o + 1) == Some(weight_layers.len()) {
                        Role::Readout
                    } else if ordinal == Some(0) {
                        Role::Input
                    } else {
                        Role::InProj
                    }
                }
                LayerKind::Attention(_) => match tensor_role {
                    "in_proj_weight" => Role::PackedQkv {
                        query_first_rows: true,
                    },
                    "q_proj_weight" | "query/kernel" => Role::Query,
                    "k_proj_weight" | "key/kernel" => Role::Key,
                    "v_proj_weight" | "value/kernel" => Role::Value,
                    "out_proj.weight" | "output/kernel" => Role::OutProj,
                    _ => Role::Untouched,
                },
                _ => Role::Untouched,
            };
            let fans = match (tensor_role, ls.as_slice()) {
                ("query/kernel" | "key/kernel" | "value/kernel", [a, b, c]) => {
                    (*a as f64, (*b * *c) as f64)
                }
                ("output/kernel", [a, b, c]) => ((*a * *b) as f64, *c as f64),
                _ => torch_fans,
            };
            (role, ordinal.map(|o| o as u64), fans)
        } else {
            continue;
        };
        let t = Target {
            name: &d.name,
            role,
            layer,
            fan_in: fans.0,
            fan_out: fans.1,
        };
        recipe::apply_one(
            rc,
            &t,
            &dims,
            req.framework,
            &d.shape,
            &d.logical_shape,
            &mut d.resolved,
        )?;
        // μP zeroes the query third of a PyTorch packed in_proj_weight [3E, E] (contiguous rows).
        if let (
            crate::recipe::Recipe::Mup {
                query_zero_init: true,
                ..
            },
            Role::PackedQkv {
                query_first_rows: true,
            },
        ) = (rc, role)
        {
            let rows = d.logical_shape[0] / 3;
            let end = rows.saturating_mul(d.logical_shape.get(1).copied().unwrap_or(1));
            let base = init::Element::of(&d.resolved.source).ok_or_else(|| {
                SpecError::new(
                    ErrorCode::InitializerMismatch,
                    "recipe.query_zero_init",
                    format!(
                        "query_zero_init zeroes rows of `{}`, which uses {}: rows of a whole-tensor or structured initializer cannot be replaced; give it a constant or a random distribution",
                        d.name,
                        d.resolved.info.spec.name()
                    ),
                )
            })?;
            d.resolved.source = ValueSource::WithConstantRange {
                base,
                start: 0,
                end,
                value: 0.0,
            };
            if let Some(Value::Object(m)) = d.resolved.info.recipe.as_mut() {
                m.insert(
                    "query_zero_init".into(),
                    json!(format!(
                        "logical elements [0, {end}) (the query rows) are 0"
                    )),
                );
            }
        }
    }
    Ok(())
}

/// Fans of a PyTorch-layout logical shape `[out, in, *k]` (1-D: n, n).
struct FanRuleFans;

impl FanRuleFans {
    fn torch(ls: &[u64]) -> (f64, f64) {
        match ls.len() {
            0 => (1.0, 1.0),
            1 => (ls[0] as f64, ls[0] as f64),
            _ => init::FanRule::Torch.fans(ls).unwrap_or((1.0, 1.0)),
        }
    }
}

/// The largest absolute value a source can produce (Box–Muller with 24-bit inputs never
/// exceeds |z| = √(2·24·ln 2) < 5.8).
fn max_abs(src: &ValueSource) -> f64 {
    use crate::sample::Kernel;
    match src {
        ValueSource::Constant(v) => v.abs() as f64,
        ValueSource::Random(Kernel::Uniform { low, scale }) => {
            (*low as f64).abs().max((*low as f64 + *scale as f64).abs())
        }
        ValueSource::Random(Kernel::Normal { mean, std }) => {
            (*mean as f64).abs() + 5.8 * (*std as f64).abs()
        }
        ValueSource::Random(Kernel::TruncNormal(t)) => (t.a as f64).abs().max((t.b as f64).abs()),
        ValueSource::Eye { gain } => gain.abs() as f64,
        ValueSource::Dirac { .. } => 1.0,
        ValueSource::Whole(WholeTensor::Orthogonal { gain, .. }) => gain.abs(),
        ValueSource::Whole(WholeTensor::DeltaOrthogonal { scale }) => scale.abs(),
        ValueSource::Whole(WholeTensor::Sparse { std, .. }) => 5.8 * (*std as f64).abs(),
        ValueSource::WithConstantRange { base, value, .. } => {
            max_abs(&(*base).into()).max(value.abs() as f64)
        }
        ValueSource::Pieces(parts) => parts
            .iter()
            .map(|p| max_abs(&p.2.into()))
            .fold(0.0, f64::max),
    }
}

fn dtype_max(d: DType) -> f64 {
    match d {
        DType::F16 => 65504.0,
        DType::BF16 | DType::F32 | DType::F64 => f32::MAX as f64 * (1.0 - 1e-7),
        DType::I64 => f64::MAX,
    }
}

/// `only`: keeps the tensors whose name matches one of the patterns; a pattern that matches
/// nothing is an error (it is almost certainly a typo).
fn select(req: &Request, drafts: Vec<Draft>) -> Result<Vec<Draft>> {
    let Some(patterns) = &req.only else {
        return Ok(drafts);
    };
    // One compiled set, matched once per tensor: O(tensors) set lookups, not
    // O(tensors × patterns) regex runs.
    let set = crate::spec::glob_set(patterns.iter().map(String::as_str), "only")?;
    let mut used = vec![false; patterns.len()];
    let mut hits = Vec::new();
    let kept: Vec<Draft> = drafts
        .into_iter()
        .filter(|d| {
            set.matches_into(&d.name, &mut hits);
            for &i in &hits {
                used[i] = true;
            }
            !hits.is_empty()
        })
        .collect();
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(SpecError::new(
            ErrorCode::NoMatch,
            index("only", i),
            format!(
                "`{}` matches no tensor of this request (POST /v1/plan lists them)",
                patterns[i]
            ),
        ));
    }
    Ok(kept)
}

/// Splits `size` like `numpy.array_split`: the first `size % n` parts get one more.
pub fn split_range(size: u64, world_size: u64, rank: u64) -> (u64, u64) {
    let (base, rem) = (size / world_size, size % world_size);
    let start = rank * base + rank.min(rem);
    let len = base + u64::from(rank < rem);
    (start, len)
}

/// `shard`: replaces each tensor's shape by this rank's slice along its axis.
fn shard(req: &Request, mut drafts: Vec<Draft>) -> Result<Vec<Draft>> {
    let Some(sh) = &req.shard else {
        return Ok(drafts);
    };
    let rules: Vec<(&str, Option<i64>, String)> = sh
        .dims
        .iter()
        .map(|(p, d)| {
            let path = format!(
                "shard.dims[{}]",
                serde_json::to_string(p).unwrap_or_default()
            );
            (p.as_str(), *d, path)
        })
        .collect();
    let set = crate::spec::glob_set(rules.iter().map(|r| r.0), "shard.dims")?;
    let mut hits = Vec::new();
    for d in &mut drafts {
        // The most specific matching pattern wins: an exact name, else the longest pattern;
        // ties go to the first in byte order.
        let literal = |p: &str| !p.contains(['*', '?', '[', '{', '\\']);
        set.matches_into(&d.name, &mut hits);
        let rule = hits.iter().map(|&i| &rules[i]).max_by(|a, b| {
            (literal(a.0), a.0.len())
                .cmp(&(literal(b.0), b.0.len()))
                .then_with(|| b.0.cmp(a.0))
        });
        let (axis, path) = match rule {
            Some((_, axis, path)) => (*axis, path.clone()),
            None => (sh.dim, "shard.dim".to_string()),
        };
        let Some(axis) = axis else { continue };
        let rank = d.shape.len() as i64;
        if rank == 0 {
            continue; // scalars are always replicated
        }
        let a = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&a) {
            return Err(SpecError::new(
                ErrorCode::InvalidValue,
                path,
                format!(
                    "tensor `{}` has shape {:?}, which has no axis {axis}; map it in `shard.dims` (null replicates it)",
                    d.name, d.shape
                ),
            ));
        }
        let a = a as usize;
        let (start, len) = split_range(d.shape[a], sh.world_size, sh.rank);
        let full_shape = d.shape.clone();
        d.shape[a] = len;
        d.slice = Some(Slice {
            dim: a,
            start,
            full_shape,
        });
    }
    Ok(drafts)
}

pub fn build(req: Request, limits: &Limits) -> Result<Plan> {
    build_cancellable(req, limits, &Cancel::new())
}

/// Like [`build`]; stops at the next tensor once `cancel` is set (the client went away).
pub fn build_cancellable(req: Request, limits: &Limits, cancel: &Cancel) -> Result<Plan> {
    let mut collector = Collector::new(limits, cancel);
    layer_drafts(&req, &mut collector)?;
    hf_drafts(&req, &mut collector)?;
    keras::keras_drafts(&req, &mut collector)?;
    raw_drafts(&req, &mut collector)?;
    let mut drafts = collector.into_drafts();

    let mut seen: HashMap<&str, &str> = HashMap::new();
    for d in &drafts {
        if let Some(first) = seen.insert(&d.name, &d.origin) {
            return Err(SpecError::new(
                ErrorCode::DuplicateName,
                d.name_path.clone(),
                format!("tensor name `{}` is already used by {first}", d.name),
            ));
        }
    }

    apply_recipe(&req, &mut drafts)?;
    if let Some(crate::recipe::Recipe::Adaptive { .. }) = &req.recipe {
        adaptive(&req, &mut drafts, limits)?;
    }
    let drafts = select(&req, drafts)?;
    let drafts = shard(&req, drafts)?;
    finish(req, drafts, limits)
}

/// `recipe: adaptive`: calibrates the whole model (before `only`/`shard`) by the measured pass
/// of `/v1/analyze` on a provisional plan of the unscaled tensors, then scales each weight.
fn adaptive(req: &Request, drafts: &mut [Draft], limits: &Limits) -> Result<()> {
    let mut provisional = req.clone();
    provisional.recipe = None;
    provisional.only = None;
    provisional.shard = None;
    let plan = finish(provisional, drafts.to_vec(), limits)?;
    let scales = crate::analyze::calibrate(std::sync::Arc::new(plan), req)?;
    // Names are unique (checked above): an index instead of a scan per scale, which made
    // 50,000 layers take 24 s.
    let by_name: std::collections::HashMap<String, usize> = drafts
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.clone(), i))
        .collect();
    for (name, factor, note) in scales {
        let Some(d) = by_name.get(&name).map(|&i| &mut drafts[i]) else {
            continue;
        };
        let mut r = crate::recipe::scale_resolved(&d.resolved, factor).ok_or_else(|| {
            SpecError::new(
                ErrorCode::InitializerMismatch,
                d.origin.clone(),
                format!(
                    "`{}` uses {}, which has no scale to calibrate; give it a scaled initializer",
                    d.name,
                    d.resolved.info.spec.name()
                ),
            )
        })?;
        r.info.recipe = Some(note);
        d.resolved = r;
    }
    Ok(())
}

/// Sizes, orders and lays out the tensors, and checks the request limits.
fn finish(req: Request, drafts: Vec<Draft>, limits: &Limits) -> Result<Plan> {
    let mut total_elements: u64 = 0;
    let mut sized = Vec::with_capacity(drafts.len());
    for d in drafts {
        let numel = checked_numel(&d.shape, &d.origin)?;
        let bytes = numel.checked_mul(d.dtype.size()).ok_or_else(|| {
            SpecError::new(
                ErrorCode::SizeOverflow,
                d.origin.clone(),
                format!("tensor `{}` has more bytes than 64 bits count", d.name),
            )
        })?;
        total_elements = total_elements.checked_add(numel).ok_or_else(|| {
            SpecError::new(
                ErrorCode::SizeOverflow,
                "",
                "the total element count overflows 64 bits",
            )
        })?;
        let full_numel = match &d.slice {
            Some(sl) => checked_numel(&sl.full_shape, &d.origin)?,
            None => numel,
        };
        if let ValueSource::Whole(whole) = &d.resolved.source {
            let logical = &d.logical_shape;
            let rows_axes = match *whole {
                WholeTensor::Orthogonal { rows_axes, .. } => {
                    rows_axes.clamp(1, logical.len().max(1))
                }
                _ => 1,
            };
            let rows = logical[..rows_axes.min(logical.len())]
                .iter()
                .fold(1u64, |a, &x| a.saturating_mul(x));
            let small = rows.min(full_numel / rows.max(1));
            if full_numel > MAX_WHOLE_TENSOR_ELEMENTS
                || (matches!(whole, WholeTensor::Orthogonal { .. })
                    && small > MAX_ORTHOGONAL_SMALL_DIM)
            {
                return Err(SpecError::new(
                    ErrorCode::LimitExceeded,
                    d.origin.clone(),
                    format!(
                        "`{}` needs the whole tensor in memory; it is limited to {MAX_WHOLE_TENSOR_ELEMENTS} elements (and orthogonal to a smaller side of {MAX_ORTHOGONAL_SMALL_DIM}), this tensor has {full_numel}",
                        d.resolved.info.spec.name()
                    ),
                ));
            }
        }
        let m = d.fills.iter().fold(max_abs(&d.resolved.source), |m, f| {
            m.max(f.value.abs() as f64)
        });
        if m > dtype_max(d.dtype) {
            return Err(SpecError::new(
                ErrorCode::InvalidValue,
                d.origin.clone(),
                format!(
                    "values of `{}` reach about {m:e}, beyond the largest finite {} ({:e})",
                    d.name,
                    d.dtype.as_str(),
                    dtype_max(d.dtype)
                ),
            ));
        }
        sized.push((d, numel, bytes));
    }
    if total_elements > limits.max_elements {
        return Err(SpecError::new(
            ErrorCode::LimitExceeded,
            "",
            format!(
                "the request has {total_elements} elements; the limit is {} (PARAMINIT_MAX_ELEMENTS)",
                limits.max_elements
            ),
        ));
    }

    sized.sort_by(|(a, ..), (b, ..)| {
        b.dtype
            .safetensors_rank()
            .cmp(&a.dtype.safetensors_rank())
            .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
    });

    let mut offset: u64 = 0;
    let mut tensors = Vec::with_capacity(sized.len());
    for (d, numel, bytes) in sized {
        let begin = offset;
        offset = offset.checked_add(bytes).ok_or_else(|| {
            SpecError::new(
                ErrorCode::SizeOverflow,
                "",
                "the total byte count overflows 64 bits",
            )
        })?;
        tensors.push(TensorPlan {
            stream: stream_id(&d.identity),
            name: d.name,
            dtype: d.dtype,
            shape: d.shape,
            logical_shape: d.logical_shape,
            layout: d.layout,
            numel,
            begin,
            end: offset,
            identity: d.identity,
            resolved: d.resolved,
            zero_row: d.zero_row,
            fills: d.fills,
            origin: d.origin,
            slice: d.slice,
        });
    }
    let data_bytes = offset;
    let canonical = req.to_canonical_json().to_string();
    let header = safetensors_header(&req, &canonical, &tensors)?;
    let file_bytes = (header.len() as u64)
        .checked_add(data_bytes)
        .ok_or_else(|| {
            SpecError::new(
                ErrorCode::SizeOverflow,
                "",
                "the file size overflows 64 bits",
            )
        })?;
    if file_bytes > limits.max_response_bytes {
        return Err(SpecError::new(
            ErrorCode::LimitExceeded,
            "",
            format!(
                "the response would be {file_bytes} bytes; the limit is {} (PARAMINIT_MAX_RESPONSE_BYTES)",
                limits.max_response_bytes
            ),
        ));
    }
    Ok(Plan {
        request: req,
        tensors,
        header,
        canonical,
        total_elements,
        data_bytes,
        file_bytes,
    })
}

/// `__metadata__` of every file, keys sorted.
pub fn file_metadata(req: &Request, canonical: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("format", "pt".to_string()),
        ("paraminit.algorithm", ALGORITHM_ID.to_string()),
        ("paraminit.framework", req.framework.as_str().to_string()),
        ("paraminit.request", canonical.to_string()),
        ("paraminit.seed", req.seed.to_string()),
        ("paraminit.version", SERVICE_VERSION.to_string()),
    ])
}

/// The safetensors prefix: u64 LE header length, then the compact JSON header padded with
/// spaces to a multiple of 8 (the length counts the padding).
fn safetensors_header(req: &Request, canonical: &str, tensors: &[TensorPlan]) -> Result<Vec<u8>> {
    let js = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut h = String::with_capacity(256 + canonical.len() + tensors.len() * 96);
    h.push_str("{\"__metadata__\":{");
    let mut metadata = file_metadata(req, canonical);
    let slices: serde_json::Map<String, Value> = tensors
        .iter()
        .filter_map(|t| t.slice_json().map(|j| (t.name.clone(), j)))
        .collect();
    if !slices.is_empty() {
        // A shard file describes itself: each sliced tensor's full shape and offsets.
        metadata.insert("paraminit.slices", Value::Object(slices).to_string());
    }
    for (i, (k, v)) in metadata.iter().enumerate() {
        if i > 0 {
            h.push(',');
        }
        h.push_str(&js(k));
        h.push(':');
        h.push_str(&js(v));
    }
    h.push('}');
    for t in tensors {
        h.push(',');
        h.push_str(&js(&t.name));
        h.push_str(":{\"dtype\":\"");
        h.push_str(t.dtype.safetensors());
        h.push_str("\",\"shape\":[");
        for (i, d) in t.shape.iter().enumerate() {
            if i > 0 {
                h.push(',');
            }
            h.push_str(&d.to_string());
        }
        h.push_str(&format!("],\"data_offsets\":[{},{}]}}", t.begin, t.end));
    }
    h.push('}');
    let padded = h.len().next_multiple_of(8);
    if padded as u64 > MAX_HEADER_BYTES {
        return Err(SpecError::new(
            ErrorCode::LimitExceeded,
            "",
            format!(
                "the safetensors header would be {padded} bytes; readers refuse more than {MAX_HEADER_BYTES}"
            ),
        ));
    }
    let mut out = Vec::with_capacity(8 + padded);
    out.extend_from_slice(&(padded as u64).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.resize(8 + padded, b' ');
    Ok(out)
}
