//! Initializer math: fan rules of each framework, PyTorch's gain table, `auto`, and the
//! resolution of a requested initializer on a concrete tensor into the numbers (bounds, std,
//! fans) that drive the sampler. (The framework layer defaults live in `plan` for now.)
//!
//! Formulas follow `torch/nn/init.py` (PyTorch 2.11), `keras/src/initializers/*.py` (Keras 3)
//! and `jax/_src/nn/initializers.py` (used by Flax); see `../shared/reference/initializers.md`.

pub mod catalogue;
pub mod scoped;

use serde_json::{Map, Value, json};

use crate::error::{ErrorCode, Result, SpecError};
use crate::sample::{Kernel, TruncParams};
use crate::terms::{Activation, Framework};
use catalogue::{InitSpec, ParamValue};

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

/// `torch.nn.init.calculate_gain(nonlinearity, param)`.
pub fn calculate_gain(nonlinearity: &str, param: Option<f64>) -> f64 {
    match nonlinearity {
        "tanh" => 5.0 / 3.0,
        "relu" => libm::sqrt(2.0),
        "leaky_relu" => {
            let slope = param.unwrap_or(0.01);
            libm::sqrt(2.0 / (1.0 + slope * slope))
        }
        "selu" => 3.0 / 4.0,
        // linear, conv*, conv_transpose*, sigmoid
        _ => 1.0,
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
    /// `base` (a constant or a random kernel) with logical elements `[start, end)` replaced by
    /// `value`: Keras LSTM `unit_forget_bias` (the forget-gate quarter of the bias is 1).
    WithConstantRange {
        base: Box<ValueSource>,
        start: u64,
        end: u64,
        value: f32,
    },
    /// Consecutive logical ranges `[start, end)`, each from its own constant or random kernel
    /// reading the tensor's one stream at the element's own index: Keras LSTM
    /// `unit_forget_bias` with an initializer that depends on the shape, which Keras calls
    /// on `(units,)` and `(2·units,)` separately (`keras/src/layers/rnn/lstm.py`).
    Pieces(Vec<(u64, u64, ValueSource)>),
}

impl ValueSource {
    /// Whether values need the whole tensor at once (no per-element seeking).
    pub fn is_whole_tensor(&self) -> bool {
        matches!(
            self,
            ValueSource::Orthogonal { .. }
                | ValueSource::DeltaOrthogonal { .. }
                | ValueSource::Sparse { .. }
        )
    }
}

/// What the plan reports about an initializer on a tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct InitInfo {
    pub requested: String,
    pub spec: InitSpec,
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
    fn new(spec: &InitSpec, distribution: &'static str) -> InitInfo {
        InitInfo {
            requested: spec.def.name.to_string(),
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

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.spec.def.name));
        if self.requested != self.spec.def.name {
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
        m.insert("semantics".into(), json!(self.spec.def.semantics));
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
        Err(SpecError::new(
            ErrorCode::InvalidValue,
            path,
            format!("{what} {x} is outside the float32 range"),
        ))
    }
}

fn mismatch(path: &str, msg: String) -> SpecError {
    SpecError::new(ErrorCode::InitializerMismatch, path, msg)
}

fn shape_str(s: &[u64]) -> String {
    format!("{s:?}")
}

/// A structured initializer on a tensor of the wrong rank.
fn wrong_rank(ctx: &TensorCtx<'_>, init: &str, what: &str) -> SpecError {
    mismatch(
        ctx.path,
        format!("{init} needs {what}, got shape {}", shape_str(ctx.shape)),
    )
}

impl TensorCtx<'_> {
    fn fans(&self, init: &str) -> Result<(f64, f64)> {
        let rule_fans = FanRule::of(self.framework).fans(self.shape);
        match (self.fan_in, self.fan_out, rule_fans) {
            (Some(i), Some(o), _) => Ok((i as f64, o as f64)),
            (i, o, Some((ri, ro))) => Ok((
                i.map(|x| x as f64).unwrap_or(ri),
                o.map(|x| x as f64).unwrap_or(ro),
            )),
            (_, _, None) => Err(mismatch(
                self.path,
                format!(
                    "`{init}` needs fan_in and fan_out, and the {} fan rule needs at least 2 dimensions (shape {}); give `fan_in` and `fan_out` explicitly or choose an initializer without fans",
                    self.framework.as_str(),
                    shape_str(self.shape)
                ),
            )),
        }
    }
}

fn uniform(spec: &InitSpec, low: f64, high: f64, path: &str) -> Result<Resolved> {
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

fn normal(spec: &InitSpec, mean: f64, std: f64, path: &str) -> Result<Resolved> {
    let source = ValueSource::Random(Kernel::Normal {
        mean: f32_of(mean, "mean", path)?,
        std: f32_of(std, "std", path)?,
    });
    let mut info = InitInfo::new(spec, "normal");
    info.mean = Some(mean);
    info.std = Some(std);
    Ok(Resolved { source, info })
}

fn truncated(spec: &InitSpec, mean: f64, std: f64, a: f64, b: f64, path: &str) -> Result<Resolved> {
    for (x, w) in [
        (mean, "mean"),
        (std, "std"),
        (a, "lower bound"),
        (b, "upper bound"),
    ] {
        f32_of(x, w, path)?;
    }
    let mut info = InitInfo::new(spec, "truncated_normal");
    info.mean = Some(mean);
    info.std = Some(std);
    info.low = Some(a);
    info.high = Some(b);
    Ok(Resolved {
        source: ValueSource::Random(Kernel::TruncNormal(TruncParams::new(mean, std, a, b))),
        info,
    })
}

/// Keras/JAX variance scaling.
fn variance_scaling(
    spec: &InitSpec,
    ctx: &TensorCtx<'_>,
    scale: f64,
    mode: &str,
    dist: &str,
) -> Result<Resolved> {
    let (fi, fo) = ctx.fans(spec.def.name)?;
    let n = match mode {
        "fan_in" => fi,
        "fan_out" => fo,
        "fan_avg" => (fi + fo) / 2.0,
        _ => libm::sqrt(fi * fo),
    };
    // Keras floors n at 1 (random_initializers.py); with sizes ≥ 1 it never binds, but keep it.
    let n = n.max(1.0);
    let mut r = match dist {
        "truncated_normal" => {
            let std = libm::sqrt(scale / n) / TRUNC_STD_CORRECTION;
            truncated(spec, 0.0, std, -2.0 * std, 2.0 * std, ctx.path)?
        }
        "uniform" => {
            let limit = libm::sqrt(3.0 * scale / n);
            uniform(spec, -limit, limit, ctx.path)?
        }
        _ => normal(spec, 0.0, libm::sqrt(scale / n), ctx.path)?,
    };
    r.info.fan_in = Some(fi);
    r.info.fan_out = Some(fo);
    r.info.gain = Some(libm::sqrt(scale));
    Ok(r)
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
        r.info.reason = Some(match r.info.reason.take() {
            Some(x) => format!("{x}; {note}"),
            None => note,
        });
    }
}

/// Resolves `spec` on the tensor described by `ctx`.
pub fn resolve(spec: &InitSpec, ctx: &TensorCtx<'_>) -> Result<Resolved> {
    let path = ctx.path;
    let name = spec.def.name;
    let logical = ctx.logical_shape;
    match name {
        "zeros" | "ones" | "constant" => {
            let v = match name {
                "zeros" => 0.0,
                "ones" => 1.0,
                _ => spec.f("value"),
            };
            let mut info = InitInfo::new(spec, "constant");
            info.mean = Some(v);
            Ok(Resolved {
                source: ValueSource::Constant(f32_of(v, "value", path)?),
                info,
            })
        }
        "uniform" => uniform(spec, spec.f("low"), spec.f("high"), path),
        "random_uniform" => uniform(spec, spec.f("minval"), spec.f("maxval"), path),
        "jax_uniform" => uniform(spec, 0.0, spec.f("scale"), path),
        "normal" => normal(spec, spec.f("mean"), spec.f("std"), path),
        "random_normal" => normal(spec, spec.f("mean"), spec.f("stddev"), path),
        "jax_normal" => normal(spec, 0.0, spec.f("stddev"), path),
        "truncated_normal" => truncated(
            spec,
            spec.f("mean"),
            spec.f("std"),
            spec.f("a"),
            spec.f("b"),
            path,
        ),
        "keras_truncated_normal" => {
            let (m, s) = (spec.f("mean"), spec.f("stddev"));
            truncated(spec, m, s, m - 2.0 * s, m + 2.0 * s, path)
        }
        "jax_truncated_normal" => {
            let s = spec.f("stddev");
            truncated(spec, 0.0, s, spec.f("lower") * s, spec.f("upper") * s, path)
        }
        "variance_scaling" => {
            let mut r = variance_scaling(
                spec,
                ctx,
                spec.f("scale"),
                spec.choice("mode"),
                spec.choice("distribution"),
            )?;
            let target =
                r.info.gain.unwrap_or(1.0) / libm::sqrt(pick_n(&r.info, spec.choice("mode")));
            std_of_target(&mut r, target);
            Ok(r)
        }
        "he_uniform" | "he_normal" | "glorot_uniform" | "glorot_normal" | "lecun_uniform"
        | "lecun_normal" => {
            let (scale, mode) = match &name[..name.find('_').unwrap_or(0)] {
                "he" => (2.0, "fan_in"),
                "glorot" => (1.0, "fan_avg"),
                _ => (1.0, "fan_in"),
            };
            let dist = if name.ends_with("uniform") {
                "uniform"
            } else {
                "truncated_normal"
            };
            let mut r = variance_scaling(spec, ctx, scale, mode, dist)?;
            let target = libm::sqrt(scale / pick_n(&r.info, mode));
            std_of_target(&mut r, target);
            Ok(r)
        }
        "kaiming_uniform" | "kaiming_normal" => {
            let (fi, fo) = ctx.fans(name)?;
            let mode = spec.choice("mode");
            let fan = if mode == "fan_in" { fi } else { fo };
            let nl = spec.choice("nonlinearity");
            let gain = calculate_gain(nl, Some(spec.f("a")));
            // Same operation order as torch/nn/init.py: std = gain / sqrt(fan), bound = sqrt(3) * std.
            let std = gain / libm::sqrt(fan);
            let mut r = if name == "kaiming_uniform" {
                let bound = libm::sqrt(3.0) * std;
                uniform(spec, -bound, bound, path)?
            } else {
                normal(spec, 0.0, std, path)?
            };
            r.info.fan_in = Some(fi);
            r.info.fan_out = Some(fo);
            r.info.gain = Some(gain);
            r.info.std = Some(std);
            Ok(r)
        }
        "xavier_uniform" | "xavier_normal" => {
            let (fi, fo) = ctx.fans(name)?;
            let gain = spec.f("gain");
            let std = gain * libm::sqrt(2.0 / (fi + fo));
            let mut r = if name == "xavier_uniform" {
                let a = libm::sqrt(3.0) * std;
                uniform(spec, -a, a, path)?
            } else {
                normal(spec, 0.0, std, path)?
            };
            r.info.fan_in = Some(fi);
            r.info.fan_out = Some(fo);
            r.info.gain = Some(gain);
            r.info.std = Some(std);
            Ok(r)
        }
        "orthogonal" => {
            if logical.len() < 2 {
                return Err(wrong_rank(
                    ctx,
                    "orthogonal",
                    "a tensor of at least 2 dimensions",
                ));
            }
            let mut info = InitInfo::new(spec, "orthogonal");
            info.gain = Some(spec.f("gain"));
            Ok(Resolved {
                source: ValueSource::Orthogonal {
                    gain: spec.f("gain"),
                    rows_axes: 1,
                },
                info,
            })
        }
        "identity" => {
            if logical.len() != 2 {
                return Err(wrong_rank(ctx, "identity/eye", "a 2-D tensor"));
            }
            let mut info = InitInfo::new(spec, "identity");
            info.gain = Some(spec.f("gain"));
            Ok(Resolved {
                source: ValueSource::Eye {
                    gain: f32_of(spec.f("gain"), "gain", path)?,
                },
                info,
            })
        }
        "dirac" => {
            let groups = spec.count("groups");
            if !(3..=5).contains(&logical.len()) {
                return Err(wrong_rank(
                    ctx,
                    "dirac",
                    "a 3-, 4- or 5-D convolution weight",
                ));
            }
            if !logical[0].is_multiple_of(groups) {
                return Err(mismatch(
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
        "delta_orthogonal" => {
            if !(3..=5).contains(&logical.len()) {
                return Err(wrong_rank(
                    ctx,
                    "delta_orthogonal",
                    "a 3-, 4- or 5-D convolution kernel",
                ));
            }
            if logical[0] < logical[1] {
                return Err(mismatch(
                    path,
                    format!(
                        "delta_orthogonal needs output channels ≥ input channels, got {} < {}",
                        logical[0], logical[1]
                    ),
                ));
            }
            let mut info = InitInfo::new(spec, "delta_orthogonal");
            info.gain = Some(spec.f("scale"));
            Ok(Resolved {
                source: ValueSource::DeltaOrthogonal {
                    scale: spec.f("scale"),
                },
                info,
            })
        }
        "sparse" => {
            if logical.len() != 2 {
                return Err(wrong_rank(ctx, "sparse", "a 2-D tensor"));
            }
            let mut info = InitInfo::new(spec, "sparse");
            info.std = Some(spec.f("std"));
            Ok(Resolved {
                source: ValueSource::Sparse {
                    sparsity: spec.f("sparsity"),
                    std: f32_of(spec.f("std"), "std", path)?,
                },
                info,
            })
        }
        "auto" => {
            let (choice, reason) = auto_choice(ctx.framework, ctx.activation);
            let mut r = resolve(&choice, ctx)?;
            r.info.requested = "auto".into();
            r.info.reason = Some(match r.info.reason.take() {
                Some(x) => format!("{reason}; {x}"),
                None => reason,
            });
            Ok(r)
        }
        other => Err(SpecError::new(
            ErrorCode::UnknownInitializer,
            path,
            format!("initializer `{other}` has no resolver"),
        )),
    }
}

fn pick_n(info: &InitInfo, mode: &str) -> f64 {
    let (fi, fo) = (info.fan_in.unwrap_or(1.0), info.fan_out.unwrap_or(1.0));
    match mode {
        "fan_in" => fi,
        "fan_out" => fo,
        "fan_avg" => (fi + fo) / 2.0,
        _ => libm::sqrt(fi * fo),
    }
    .max(1.0)
}

/// `auto`: the initializer the literature pairs with the activation, in the framework's flavour
/// (PyTorch's are untruncated, Keras's and Flax's truncated).
pub fn auto_choice(framework: Framework, activation: Option<Activation>) -> (InitSpec, String) {
    let torch = framework == Framework::PyTorch;
    let act = activation.unwrap_or(Activation::Linear);
    let an = act.name();
    let kaiming = |nl: &str, a: f64| {
        InitSpec::named("kaiming_normal")
            .with("nonlinearity", ParamValue::Choice(nl_static(nl)))
            .with("a", ParamValue::Float(a))
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
                    kaiming("relu", 0.0)
                } else {
                    InitSpec::named("he_normal")
                },
                why,
            )
        }
        Activation::LeakyRelu { negative_slope } => {
            let why = format!(
                "activation leaky_relu({negative_slope}) → He initialization with gain √(2/(1+slope²)) (He et al. 2015)"
            );
            if torch {
                (kaiming("leaky_relu", negative_slope), why)
            } else {
                let scale = 2.0 / (1.0 + negative_slope * negative_slope);
                (
                    InitSpec::named("variance_scaling").with("scale", ParamValue::Float(scale)),
                    why,
                )
            }
        }
        Activation::Tanh | Activation::Sigmoid => (
            InitSpec::named(if torch {
                "xavier_uniform"
            } else {
                "glorot_uniform"
            }),
            format!("activation {an} → Glorot initialization (Glorot & Bengio 2010)"),
        ),
        Activation::Selu => (
            if torch {
                kaiming("linear", 0.0)
            } else {
                InitSpec::named("lecun_normal")
            },
            "activation selu → LeCun normal, the self-normalizing setting (Klambauer et al. 2017)"
                .to_string(),
        ),
        Activation::Linear | Activation::Softmax => (
            if torch {
                kaiming("linear", 0.0)
            } else {
                InitSpec::named("lecun_normal")
            },
            format!("activation {an} → LeCun normal, variance 1/fan_in (LeCun et al. 1998)"),
        ),
    }
}

fn nl_static(nl: &str) -> &'static str {
    catalogue::NONLINEARITIES
        .iter()
        .find(|n| **n == nl)
        .copied()
        .unwrap_or("linear")
}
