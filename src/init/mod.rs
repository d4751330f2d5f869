//! Initializer math: fan rules of each framework, `auto`, and the resolution of a typed
//! initializer (`initializer::Init`, what validation produced) on a concrete tensor into the
//! numbers (bounds, std, fans) that drive the sampler. The framework layer defaults are
//! `defaults`.
//!
//! Formulas follow `torch/nn/init.py` (PyTorch 2.11), `keras/src/initializers/*.py` (Keras 3)
//! and `jax/_src/nn/initializers.py` (used by Flax); see `../shared/reference/initializers.md`.

pub mod catalogue;
pub mod defaults;
pub mod initializer;
pub mod keras;
pub mod scoped;

use serde_json::{Map, Value, json};

use crate::error::{Result, SpecError};
use crate::sample::{Kernel, TruncParams};
use crate::terms::{Activation, Framework};
pub use initializer::{Dist, FanMode, FansUsed, Init, Nonlinearity, TorchFanMode, VsDistribution};

/// Standard deviation of a standard normal truncated to (−2, 2); Keras and JAX divide by it so
/// that a truncated variance-scaling draw keeps the target variance.
pub const TRUNC_STD_CORRECTION: f64 = 0.879_625_661_034_239_8;

/// How fans are read off a shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanRule {
    /// `torch.nn.init._calculate_fan_in_and_fan_out`: `[out, in, *k]`, at least 2-D.
    Torch,
    /// `keras.src.initializers.random_initializers.compute_fans`: `[*k, in, out]`; 0-D → 1, 1-D → n.
    Keras,
    /// `jax._src.nn.initializers._compute_fans` with the default axes (-2, -1): at least 2-D.
    Jax,
}

impl FanRule {
    pub fn of(framework: Framework) -> FanRule {
        match framework {
            Framework::PyTorch => FanRule::Torch,
            Framework::Keras => FanRule::Keras,
            Framework::Flax => FanRule::Jax,
        }
    }

    /// (fan_in, fan_out), or `None` where the framework refuses the shape.
    pub fn fans(self, shape: &[u64]) -> Option<(f64, f64)> {
        let prod = |s: &[u64]| s.iter().map(|&d| d as f64).product::<f64>();
        match (self, shape.len()) {
            (FanRule::Keras, 0) => Some((1.0, 1.0)),
            (FanRule::Keras, 1) => Some((shape[0] as f64, shape[0] as f64)),
            (_, 0 | 1) => None,
            (FanRule::Torch, _) => {
                let rf = prod(&shape[2..]);
                Some((shape[1] as f64 * rf, shape[0] as f64 * rf))
            }
            (FanRule::Keras | FanRule::Jax, n) => {
                let rf = prod(&shape[..n - 2]);
                Some((shape[n - 2] as f64 * rf, shape[n - 1] as f64 * rf))
            }
        }
    }
}

/// Where the values of a tensor come from, after resolution. Numbers are already in the
/// canonical f32 precision where the sampler uses them.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueSource {
    Constant(f32),
    Random(Kernel),
    /// `gain` on the diagonal of the 2-D logical tensor.
    Eye {
        gain: f32,
    },
    /// PyTorch `dirac_` on the logical `[out, in, *k]` tensor.
    Dirac {
        groups: u64,
    },
    /// Values that need the whole tensor at once (`structured`).
    Whole(WholeTensor),
    /// `base` with logical elements `[start, end)` replaced by `value`: Keras LSTM
    /// `unit_forget_bias` (the forget-gate quarter of the bias is 1), μP's zeroed query rows.
    WithConstantRange {
        base: Element,
        start: u64,
        end: u64,
        value: f32,
    },
    /// Consecutive logical ranges `[start, end)`, each from its own constant or random kernel
    /// reading the tensor's one stream at the element's own index: Keras LSTM
    /// `unit_forget_bias` with an initializer that depends on the shape, which Keras calls
    /// on `(units,)` and `(2·units,)` separately (`keras/src/layers/rnn/lstm.py`).
    Pieces(Vec<(u64, u64, Element)>),
}

/// A source computed element by element at any index: what `WithConstantRange` and `Pieces`
/// are built from (a whole-tensor or structured source cannot be split by ranges).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Element {
    Constant(f32),
    Random(Kernel),
}

impl Element {
    /// The element-wise source `src` is, or `None` for one that is not.
    pub fn of(src: &ValueSource) -> Option<Element> {
        match *src {
            ValueSource::Constant(v) => Some(Element::Constant(v)),
            ValueSource::Random(k) => Some(Element::Random(k)),
            _ => None,
        }
    }
}

impl From<Element> for ValueSource {
    fn from(e: Element) -> ValueSource {
        match e {
            Element::Constant(v) => ValueSource::Constant(v),
            Element::Random(k) => ValueSource::Random(k),
        }
    }
}

impl ValueSource {
    /// Whether values need the whole tensor at once (no per-element seeking).
    pub fn is_whole_tensor(&self) -> bool {
        matches!(self, ValueSource::Whole(_))
    }
}

/// The whole-tensor initializers after resolution (what `Init::is_whole_tensor` names):
/// computed once per generator by `structured` and then read like a buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum WholeTensor {
    /// Whole-tensor QR; see `structured`. The matrix is the logical tensor flattened to
    /// `(prod(logical[..rows_axes]), prod(logical[rows_axes..]))`: 1 for PyTorch's
    /// `(shape[0], rest)`; 2 for attention kernels, which Keras flattens as
    /// `(prod(shape[:-1]), shape[-1])` and Flax's DenseGeneral `out` as `(heads·head_dim, E)`.
    Orthogonal {
        gain: f64,
        rows_axes: usize,
    },
    DeltaOrthogonal {
        scale: f64,
    },
    Sparse {
        sparsity: f64,
        std: f32,
    },
}

/// What the plan reports about an initializer on a tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct InitInfo {
    pub requested: String,
    pub spec: Init,
    pub distribution: &'static str,
    pub fan_in: Option<f64>,
    pub fan_out: Option<f64>,
    pub gain: Option<f64>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub reason: Option<String>,
    /// Set when a request `recipe` chose this initializer: `{name, role, layer, rule, replaced}`.
    pub recipe: Option<Value>,
}

impl InitInfo {
    fn new(spec: &Init, distribution: &'static str) -> InitInfo {
        InitInfo {
            requested: spec.name().to_string(),
            spec: spec.clone(),
            distribution,
            fan_in: None,
            fan_out: None,
            gain: None,
            mean: None,
            std: None,
            low: None,
            high: None,
            reason: None,
            recipe: None,
        }
    }

    /// Adds `note` after the reason already given (`"{old}; {note}"`), or makes it the reason.
    pub fn append_reason(&mut self, note: String) {
        self.reason = Some(match self.reason.take() {
            Some(x) => format!("{x}; {note}"),
            None => note,
        });
    }

    /// Adds `note` before the reason already given (`"{note}; {old}"`): why this initializer
    /// was chosen comes before what resolving it found.
    pub fn prepend_reason(&mut self, note: String) {
        self.reason = Some(match self.reason.take() {
            Some(x) => format!("{note}; {x}"),
            None => note,
        });
    }

    /// The plan's `init` object. Hand-written, not derived: `name`, `semantics` and `params`
    /// come from the catalogue entry, `requested` appears only when it differs from `name`, and
    /// numbers not set are omitted.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let def = self.spec.def();
        m.insert("name".into(), json!(def.name));
        if self.requested != def.name {
            m.insert("requested".into(), json!(self.requested));
        }
        let params = self.spec.to_json();
        if let Value::Object(mut p) = params {
            p.remove("name");
            if !p.is_empty() {
                m.insert("params".into(), Value::Object(p));
            }
        }
        m.insert("distribution".into(), json!(self.distribution));
        m.insert("semantics".into(), json!(def.semantics));
        for (k, v) in [
            ("fan_in", self.fan_in),
            ("fan_out", self.fan_out),
            ("gain", self.gain),
            ("mean", self.mean),
            ("std", self.std),
            ("low", self.low),
            ("high", self.high),
        ] {
            if let Some(x) = v {
                m.insert(k.into(), json!(x));
            }
        }
        if let Some(r) = &self.reason {
            m.insert("reason".into(), json!(r));
        }
        if let Some(r) = &self.recipe {
            m.insert("recipe".into(), r.clone());
        }
        Value::Object(m)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub source: ValueSource,
    pub info: InitInfo,
}

/// Everything resolution needs to know about the tensor.
pub struct TensorCtx<'a> {
    pub framework: Framework,
    /// The shape in the framework's own layout; the fan rule reads this.
    pub shape: &'a [u64],
    /// The shape in PyTorch layout, on which structured initializers are defined.
    pub logical_shape: &'a [u64],
    pub fan_in: Option<u64>,
    pub fan_out: Option<u64>,
    /// The activation `auto` chooses by.
    pub activation: Option<Activation>,
    /// JSON path of the initializer (or of the layer, for a default) for error messages.
    pub path: &'a str,
}

fn f32_of(x: f64, what: &str, path: &str) -> Result<f32> {
    let y = x as f32;
    if y.is_finite() {
        Ok(y)
    } else {
        Err(SpecError::invalid_value(
            path,
            format!("{what} {x} is outside the float32 range"),
        ))
    }
}

fn shape_str(s: &[u64]) -> String {
    format!("{s:?}")
}

/// A structured initializer on a tensor of the wrong rank.
fn wrong_rank(ctx: &TensorCtx<'_>, init: &str, what: &str) -> SpecError {
    SpecError::initializer_mismatch(
        ctx.path,
        format!("{init} needs {what}, got shape {}", shape_str(ctx.shape)),
    )
}

impl TensorCtx<'_> {
    /// (fan_in, fan_out) for `init`: explicit fans override the framework's fan rule. Where
    /// the rule refuses the shape (PyTorch and JAX need 2 dimensions), only the fans the
    /// initializer reads (`Init::fans_used`) must be given; one it does not read and nobody
    /// gave is `None` (and is not reported).
    fn fans(&self, init: &Init) -> Result<(Option<f64>, Option<f64>)> {
        let rule_fans = FanRule::of(self.framework).fans(self.shape);
        let given = |f: Option<u64>| f.map(|x| x as f64);
        match (self.fan_in, self.fan_out, rule_fans) {
            (Some(i), Some(o), _) => Ok((Some(i as f64), Some(o as f64))),
            (i, o, Some((ri, ro))) => {
                Ok((Some(given(i).unwrap_or(ri)), Some(given(o).unwrap_or(ro))))
            }
            (i, o, None) => {
                let used = init.fans_used();
                let need_in = matches!(used, FansUsed::In | FansUsed::Both);
                let need_out = matches!(used, FansUsed::Out | FansUsed::Both);
                let missing = match (need_in && i.is_none(), need_out && o.is_none()) {
                    (false, false) => return Ok((given(i), given(o))),
                    (true, false) => "`fan_in`",
                    (false, true) => "`fan_out`",
                    (true, true) => "`fan_in` and `fan_out`",
                };
                let reads = match used {
                    FansUsed::In => "fan_in",
                    FansUsed::Out => "fan_out",
                    FansUsed::Both | FansUsed::None => "fan_in and fan_out",
                };
                Err(SpecError::initializer_mismatch(
                    self.path,
                    format!(
                        "`{}` reads {reads}, and the {} fan rule needs at least 2 dimensions (shape {}); give {missing} explicitly or choose an initializer without fans",
                        init.name(),
                        self.framework.as_str(),
                        shape_str(self.shape)
                    ),
                ))
            }
        }
    }
}

fn uniform(spec: &Init, low: f64, high: f64, path: &str) -> Result<Resolved> {
    let lo = f32_of(low, "low bound", path)?;
    let scale = f32_of(high - low, "range", path)?;
    let mut info = InitInfo::new(spec, "uniform");
    info.low = Some(low);
    info.high = Some(high);
    Ok(Resolved {
        source: ValueSource::Random(Kernel::Uniform { low: lo, scale }),
        info,
    })
}

fn normal(spec: &Init, mean: f64, std: f64, path: &str) -> Result<Resolved> {
    let source = ValueSource::Random(Kernel::Normal {
        mean: f32_of(mean, "mean", path)?,
        std: f32_of(std, "std", path)?,
    });
    let mut info = InitInfo::new(spec, "normal");
    info.mean = Some(mean);
    info.std = Some(std);
    Ok(Resolved { source, info })
}

fn truncated(spec: &Init, mean: f64, std: f64, a: f64, b: f64, path: &str) -> Result<Resolved> {
    for (x, w) in [
        (mean, "mean"),
        (std, "std"),
        (a, "lower bound"),
        (b, "upper bound"),
    ] {
        f32_of(x, w, path)?;
    }
    let params = TruncParams::new(mean, std, a, b);
    if !params.representable() {
        return Err(SpecError::invalid_value(
            path,
            format!(
                "truncated normal on [{a}, {b}] with mean {mean} and std {std} (bounds at {}σ and {}σ) cannot be sampled: the float32 inverse-CDF sampler would give one value for all or the lowest of its draws (the window is too far in the tail, or too narrow where it lies); move the bounds closer to the mean or widen them",
                (a - mean) / std,
                (b - mean) / std,
            ),
        ));
    }
    let mut info = InitInfo::new(spec, "truncated_normal");
    info.mean = Some(mean);
    info.std = Some(std);
    info.low = Some(a);
    info.high = Some(b);
    Ok(Resolved {
        source: ValueSource::Random(Kernel::TruncNormal(params)),
        info,
    })
}

/// How a variance-scaling draw samples: Keras's/JAX's corrected truncated normal, the
/// untruncated normal, or the uniform.
#[derive(Clone, Copy)]
enum VsDraw {
    Truncated,
    Normal,
    Uniform,
}

impl VsDraw {
    fn of(d: VsDistribution) -> VsDraw {
        match d {
            VsDistribution::TruncatedNormal => VsDraw::Truncated,
            VsDistribution::Normal | VsDistribution::UntruncatedNormal => VsDraw::Normal,
            VsDistribution::Uniform => VsDraw::Uniform,
        }
    }

    /// The draw of the `he_*`/`glorot_*`/`lecun_*` presets: uniform or truncated.
    fn preset(d: Dist) -> VsDraw {
        match d {
            Dist::Uniform => VsDraw::Uniform,
            Dist::Normal => VsDraw::Truncated,
        }
    }
}

/// Keras/JAX variance scaling; also returns `n` (the mode's fan, floored at 1).
fn variance_scaling(
    spec: &Init,
    ctx: &TensorCtx<'_>,
    scale: f64,
    mode: FanMode,
    draw: VsDraw,
) -> Result<(Resolved, f64)> {
    let (fi, fo) = ctx.fans(spec)?;
    // `fans` returns every fan the mode reads; 1.0 stands for one it does not.
    let n = mode.n(fi.unwrap_or(1.0), fo.unwrap_or(1.0));
    let mut r = match draw {
        VsDraw::Truncated => {
            let std = libm::sqrt(scale / n) / TRUNC_STD_CORRECTION;
            truncated(spec, 0.0, std, -2.0 * std, 2.0 * std, ctx.path)?
        }
        VsDraw::Uniform => {
            let limit = libm::sqrt(3.0 * scale / n);
            uniform(spec, -limit, limit, ctx.path)?
        }
        VsDraw::Normal => normal(spec, 0.0, libm::sqrt(scale / n), ctx.path)?,
    };
    r.info.fan_in = fi;
    r.info.fan_out = fo;
    r.info.gain = Some(libm::sqrt(scale));
    Ok((r, n))
}

fn std_of_target(r: &mut Resolved, target: f64) {
    // For truncated variance scaling the reported `std` is the pre-truncation σ' (that is what
    // the sampler uses); the resulting std is the target. Report both.
    if r.info.distribution == "truncated_normal" {
        let note = format!(
            "pre-truncation std {}; the truncated distribution has std {}",
            r.info.std.unwrap_or(0.0),
            target
        );
        r.info.append_reason(note);
    }
}

/// `he_*`, `glorot_*`, `lecun_*`: variance scaling with a fixed scale and mode.
fn vs_preset(
    spec: &Init,
    ctx: &TensorCtx<'_>,
    scale: f64,
    mode: FanMode,
    d: Dist,
) -> Result<Resolved> {
    let (mut r, n) = variance_scaling(spec, ctx, scale, mode, VsDraw::preset(d))?;
    let target = libm::sqrt(scale / n);
    std_of_target(&mut r, target);
    Ok(r)
}

/// Resolves `spec` on the tensor described by `ctx`.
pub fn resolve(spec: &Init, ctx: &TensorCtx<'_>) -> Result<Resolved> {
    let path = ctx.path;
    let logical = ctx.logical_shape;
    match *spec {
        Init::Zeros | Init::Ones | Init::Constant { .. } => {
            let v = match *spec {
                Init::Constant { value } => value,
                Init::Ones => 1.0,
                _ => 0.0,
            };
            let mut info = InitInfo::new(spec, "constant");
            info.mean = Some(v);
            Ok(Resolved {
                source: ValueSource::Constant(f32_of(v, "value", path)?),
                info,
            })
        }
        Init::Uniform { low, high } => uniform(spec, low, high, path),
        Init::RandomUniform { minval, maxval } => uniform(spec, minval, maxval, path),
        Init::JaxUniform { scale } => uniform(spec, 0.0, scale, path),
        Init::Normal { mean, std } => normal(spec, mean, std, path),
        Init::RandomNormal { mean, stddev } => normal(spec, mean, stddev, path),
        Init::JaxNormal { stddev } => normal(spec, 0.0, stddev, path),
        Init::TruncatedNormal { mean, std, a, b } => truncated(spec, mean, std, a, b, path),
        Init::KerasTruncatedNormal { mean, stddev: s } => {
            truncated(spec, mean, s, mean - 2.0 * s, mean + 2.0 * s, path)
        }
        Init::JaxTruncatedNormal {
            stddev: s,
            lower,
            upper,
        } => truncated(spec, 0.0, s, lower * s, upper * s, path),
        Init::VarianceScaling {
            scale,
            mode,
            distribution,
        } => {
            let (mut r, n) = variance_scaling(spec, ctx, scale, mode, VsDraw::of(distribution))?;
            let target = r.info.gain.unwrap_or(1.0) / libm::sqrt(n);
            std_of_target(&mut r, target);
            Ok(r)
        }
        Init::He(d) => vs_preset(spec, ctx, 2.0, FanMode::FanIn, d),
        Init::Glorot(d) => vs_preset(spec, ctx, 1.0, FanMode::FanAvg, d),
        Init::Lecun(d) => vs_preset(spec, ctx, 1.0, FanMode::FanIn, d),
        Init::Kaiming {
            dist,
            a,
            mode,
            nonlinearity,
        } => {
            let (fi, fo) = ctx.fans(spec)?;
            // `fans` returns the fan the mode reads; 1.0 stands for one it does not.
            let fan = match mode {
                TorchFanMode::FanIn => fi,
                TorchFanMode::FanOut => fo,
            }
            .unwrap_or(1.0);
            let gain = nonlinearity.gain(a);
            // Same operation order as torch/nn/init.py: std = gain / sqrt(fan), bound = sqrt(3) * std.
            let std = gain / libm::sqrt(fan);
            let mut r = match dist {
                Dist::Uniform => {
                    let bound = libm::sqrt(3.0) * std;
                    uniform(spec, -bound, bound, path)?
                }
                Dist::Normal => normal(spec, 0.0, std, path)?,
            };
            r.info.fan_in = fi;
            r.info.fan_out = fo;
            r.info.gain = Some(gain);
            r.info.std = Some(std);
            Ok(r)
        }
        Init::Xavier { dist, gain } => {
            let (fi, fo) = ctx.fans(spec)?;
            // Xavier reads both fans, so `fans` returns both.
            let std = gain * libm::sqrt(2.0 / (fi.unwrap_or(1.0) + fo.unwrap_or(1.0)));
            let mut r = match dist {
                Dist::Uniform => {
                    let a = libm::sqrt(3.0) * std;
                    uniform(spec, -a, a, path)?
                }
                Dist::Normal => normal(spec, 0.0, std, path)?,
            };
            r.info.fan_in = fi;
            r.info.fan_out = fo;
            r.info.gain = Some(gain);
            r.info.std = Some(std);
            Ok(r)
        }
        Init::Orthogonal { gain } => {
            if logical.len() < 2 {
                return Err(wrong_rank(
                    ctx,
                    "orthogonal",
                    "a tensor of at least 2 dimensions",
                ));
            }
            let mut info = InitInfo::new(spec, "orthogonal");
            info.gain = Some(gain);
            Ok(Resolved {
                source: ValueSource::Whole(WholeTensor::Orthogonal { gain, rows_axes: 1 }),
                info,
            })
        }
        Init::Identity { gain } => {
            if logical.len() != 2 {
                return Err(wrong_rank(ctx, "identity/eye", "a 2-D tensor"));
            }
            let mut info = InitInfo::new(spec, "identity");
            info.gain = Some(gain);
            Ok(Resolved {
                source: ValueSource::Eye {
                    gain: f32_of(gain, "gain", path)?,
                },
                info,
            })
        }
        Init::Dirac { groups } => {
            if !(3..=5).contains(&logical.len()) {
                return Err(wrong_rank(
                    ctx,
                    "dirac",
                    "a 3-, 4- or 5-D convolution weight",
                ));
            }
            if !logical[0].is_multiple_of(groups) {
                return Err(SpecError::initializer_mismatch(
                    path,
                    format!(
                        "dirac: the output channels ({}) must be divisible by groups ({groups})",
                        logical[0]
                    ),
                ));
            }
            Ok(Resolved {
                source: ValueSource::Dirac { groups },
                info: InitInfo::new(spec, "dirac"),
            })
        }
        Init::DeltaOrthogonal { scale } => {
            if !(3..=5).contains(&logical.len()) {
                return Err(wrong_rank(
                    ctx,
                    "delta_orthogonal",
                    "a 3-, 4- or 5-D convolution kernel",
                ));
            }
            if logical[0] < logical[1] {
                return Err(SpecError::initializer_mismatch(
                    path,
                    format!(
                        "delta_orthogonal needs output channels ≥ input channels, got {} < {}",
                        logical[0], logical[1]
                    ),
                ));
            }
            let mut info = InitInfo::new(spec, "delta_orthogonal");
            info.gain = Some(scale);
            Ok(Resolved {
                source: ValueSource::Whole(WholeTensor::DeltaOrthogonal { scale }),
                info,
            })
        }
        Init::Sparse { sparsity, std } => {
            if logical.len() != 2 {
                return Err(wrong_rank(ctx, "sparse", "a 2-D tensor"));
            }
            let mut info = InitInfo::new(spec, "sparse");
            info.std = Some(std);
            Ok(Resolved {
                source: ValueSource::Whole(WholeTensor::Sparse {
                    sparsity,
                    std: f32_of(std, "std", path)?,
                }),
                info,
            })
        }
        Init::Auto => {
            let (choice, reason) = auto_choice(ctx.framework, ctx.activation);
            let mut r = resolve(&choice, ctx)?;
            r.info.requested = "auto".into();
            r.info.prepend_reason(reason);
            Ok(r)
        }
    }
}

/// `auto`: the initializer the literature pairs with the activation, in the framework's flavour
/// (PyTorch's are untruncated, Keras's and Flax's truncated).
pub fn auto_choice(framework: Framework, activation: Option<Activation>) -> (Init, String) {
    let torch = framework == Framework::PyTorch;
    let act = activation.unwrap_or(Activation::Linear);
    let an = act.name();
    let kaiming = |nonlinearity: Nonlinearity, a: f64| Init::Kaiming {
        dist: Dist::Normal,
        a,
        mode: TorchFanMode::FanIn,
        nonlinearity,
    };
    match act {
        Activation::Relu
        | Activation::Gelu
        | Activation::Silu
        | Activation::Elu
        | Activation::Mish
        | Activation::Softplus => {
            let why = if act == Activation::Relu {
                "activation relu → He initialization (He et al. 2015): variance 2/fan_in keeps the forward signal".to_string()
            } else {
                format!("activation {an} is ReLU-like → He initialization (He et al. 2015)")
            };
            (
                if torch {
                    kaiming(Nonlinearity::Relu, 0.0)
                } else {
                    Init::He(Dist::Normal)
                },
                why,
            )
        }
        Activation::LeakyRelu { negative_slope } => {
            let why = format!(
                "activation leaky_relu({negative_slope}) → He initialization with gain √(2/(1+slope²)) (He et al. 2015)"
            );
            if torch {
                (kaiming(Nonlinearity::LeakyRelu, negative_slope), why)
            } else {
                let scale = 2.0 / (1.0 + negative_slope * negative_slope);
                (
                    Init::VarianceScaling {
                        scale,
                        mode: FanMode::FanIn,
                        distribution: VsDistribution::TruncatedNormal,
                    },
                    why,
                )
            }
        }
        Activation::Tanh | Activation::Sigmoid => (
            if torch {
                Init::Xavier {
                    dist: Dist::Uniform,
                    gain: 1.0,
                }
            } else {
                Init::Glorot(Dist::Uniform)
            },
            format!("activation {an} → Glorot initialization (Glorot & Bengio 2010)"),
        ),
        Activation::Selu => (
            if torch {
                kaiming(Nonlinearity::Linear, 0.0)
            } else {
                Init::Lecun(Dist::Normal)
            },
            "activation selu → LeCun normal, the self-normalizing setting (Klambauer et al. 2017)"
                .to_string(),
        ),
        Activation::Linear | Activation::Softmax => (
            if torch {
                kaiming(Nonlinearity::Linear, 0.0)
            } else {
                Init::Lecun(Dist::Normal)
            },
            format!("activation {an} → LeCun normal, variance 1/fan_in (LeCun et al. 1998)"),
        ),
    }
}
