//! Tensors of recurrent (`rnn`, `lstm`, `gru`) and `multihead_attention` layers, per framework:
//! names, shapes, layouts, default initializers and stream identities. See
//! docs/determinism.md, "Recurrent layers" and "Multi-head attention".

use super::{LayerCtx, LayerTensor, weight_default};
use crate::error::{ErrorCode, Result, SpecError};
use crate::init::{self, Dist, Element, Init, TensorCtx, ValueSource, WholeTensor};
use crate::spec::fields::join;
use crate::spec::{Attention, Cell, Framework, Recurrent};

pub(super) fn keras_class(r: &Recurrent) -> &'static str {
    match r.cell {
        Cell::Rnn => "simple_rnn",
        Cell::Lstm => "lstm",
        Cell::Gru => "gru",
    }
}

pub(super) fn flax_class(r: &Recurrent) -> &'static str {
    match r.cell {
        Cell::Rnn => "SimpleCell",
        Cell::Lstm => "LSTMCell",
        Cell::Gru => "GRUCell",
    }
}

/// One tensor of a layer whose names are built at run time.
struct Spec<'a> {
    /// Name after the layer prefix (`weight_ih_l0`, `lstm_cell/kernel`, `ii/kernel`).
    tail: String,
    /// Role in the stream identity `layer/<id>/<role>`.
    role: String,
    logical: Vec<u64>,
    perm: Option<Vec<usize>>,
    requested: Option<&'a Init>,
    requested_key: &'static str,
    default: (Init, String),
    /// Explicit fans (Keras EinsumDense axes, Flax DenseGeneral flattening).
    fans: Option<(u64, u64)>,
    is_bias: bool,
}

impl LayerCtx<'_> {
    /// Adds one tensor of a recurrent or attention layer, named by its tail.
    fn put(&mut self, s: Spec<'_>) -> Result<()> {
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

    fn unsupported(&self, field: &str, msg: String) -> SpecError {
        SpecError::new(
            ErrorCode::UnsupportedLayerType,
            join(&self.path, field),
            msg,
        )
    }
}

fn with_reason(spec: Init, r: &str) -> (Init, String) {
    (spec, r.to_string())
}

/// Name prefixes of the sub-layers a Keras/Flax recurrent entry with `num_layers > 1` or
/// `bidirectional` expands into, one per (layer, direction) in that order — what the framework
/// itself writes (read off Keras 3.15 and Flax 0.12):
/// - Keras: stacked layers are separate layers (`lstm`, `lstm_1`, …); a bidirectional layer is
///   `Bidirectional(LSTM)`: `bidirectional/forward_lstm/…` and `bidirectional/backward_lstm/…`,
///   the wrapped layer taking the next `lstm` name.
/// - Flax: every direction of every layer is its own cell (`LSTMCell_0`, `LSTMCell_1`, …; the
///   `RNN`/`Bidirectional` wrappers add no scope).
///
/// A named entry `n` uses `n` for its first sub-layer (Keras: its first wrapper) and `n_1`,
/// `n_2`, … for the others.
pub(super) fn recurrent_names(
    fw: Framework,
    r: &Recurrent,
    prefix: &str,
    named: bool,
    mut next: impl FnMut(&'static str) -> String,
) -> Vec<String> {
    let dirs = if r.bidirectional { 2 } else { 1 };
    let mut out = Vec::new();
    let user = |i: u64| {
        if i == 0 {
            prefix.to_string()
        } else {
            format!("{prefix}_{i}")
        }
    };
    for k in 0..r.num_layers {
        match fw {
            Framework::Keras => {
                if r.bidirectional {
                    let wrapper = if named {
                        user(k)
                    } else {
                        next("bidirectional")
                    };
                    let inner = if k == 0 && !named {
                        prefix.to_string()
                    } else {
                        next(keras_class(r))
                    };
                    out.push(format!("{wrapper}/forward_{inner}"));
                    out.push(format!("{wrapper}/backward_{inner}"));
                } else {
                    out.push(if k == 0 {
                        prefix.to_string()
                    } else if named {
                        user(k)
                    } else {
                        next(keras_class(r))
                    });
                }
            }
            _ => {
                for d in 0..dirs {
                    let i = k * dirs + d;
                    out.push(if i == 0 {
                        prefix.to_string()
                    } else if named {
                        user(i)
                    } else {
                        next(flax_class(r))
                    });
                }
            }
        }
    }
    out
}

pub(super) fn recurrent(cx: &mut LayerCtx<'_>, r: &Recurrent) -> Result<()> {
    match cx.fw {
        Framework::PyTorch => pytorch_recurrent(cx, r),
        fw => {
            if r.proj_size > 0 {
                let fname = if fw == Framework::Keras {
                    "Keras"
                } else {
                    "Flax"
                };
                return Err(cx.unsupported(
                    "proj_size",
                    format!("proj_size is PyTorch-only; {fname} LSTMs have no projection"),
                ));
            }
            let dirs = if r.bidirectional { 2 } else { 1 };
            let base = cx.prefix.clone();
            for k in 0..r.num_layers {
                for d in 0..dirs {
                    let i = (k * dirs + d) as usize;
                    if let Some(name) = cx.sub_names.get(i) {
                        cx.prefix = name.clone();
                    }
                    let input = if k == 0 {
                        r.input_size
                    } else {
                        r.hidden_size * dirs
                    };
                    // Stream roles follow PyTorch's `_l{k}` / `_reverse` suffixes, so the same
                    // sub-layer has the same identity in every framework.
                    let sub = Sub {
                        layer: k,
                        reverse: d == 1,
                        input,
                    };
                    if fw == Framework::Keras {
                        keras_recurrent(cx, r, &sub)?;
                    } else {
                        flax_recurrent(cx, r, &sub)?;
                    }
                }
            }
            cx.prefix = base;
            Ok(())
        }
    }
}

/// One (layer, direction) of a stacked or bidirectional recurrent entry.
struct Sub {
    layer: u64,
    reverse: bool,
    input: u64,
}

impl Sub {
    /// Suffix of the stream role: none for the first forward layer (as before stacking
    /// existed), else `_l{k}` and `_reverse` as in PyTorch's parameter names.
    fn suffix(&self) -> String {
        if self.layer == 0 && !self.reverse {
            String::new()
        } else {
            format!(
                "_l{}{}",
                self.layer,
                if self.reverse { "_reverse" } else { "" }
            )
        }
    }
    fn torch_suffix(&self) -> String {
        format!(
            "_l{}{}",
            self.layer,
            if self.reverse { "_reverse" } else { "" }
        )
    }
}

fn pytorch_recurrent(cx: &mut LayerCtx<'_>, r: &Recurrent) -> Result<()> {
    if r.unit_forget_bias == Some(true) {
        return Err(cx.unsupported(
            "unit_forget_bias",
            "unit_forget_bias is Keras-only; PyTorch LSTM biases are U(±1/√hidden_size)".into(),
        ));
    }
    if r.reset_after == Some(false) {
        return Err(cx.unsupported(
            "reset_after",
            "PyTorch's GRU always applies the reset gate after the recurrent matmul (reset_after = true)".into(),
        ));
    }
    let h = r.hidden_size;
    let gh = r.cell.gates() * h;
    let p = if r.proj_size > 0 { r.proj_size } else { h };
    let dirs = if r.bidirectional { 2 } else { 1 };
    let bound = 1.0 / libm::sqrt(h as f64);
    let default = || {
        with_reason(
            Init::Uniform {
                low: -bound,
                high: bound,
            },
            &format!(
                "PyTorch RNNBase.reset_parameters: every parameter U(±1/√hidden_size), hidden_size = {h}"
            ),
        )
    };
    for k in 0..r.num_layers {
        for d in 0..dirs {
            let sfx = if d == 1 { "_reverse" } else { "" };
            let input = if k == 0 { r.input_size } else { p * dirs };
            let mut list = vec![
                (
                    format!("weight_ih_l{k}{sfx}"),
                    vec![gh, input],
                    &r.kernel_init,
                    "kernel_initializer",
                    false,
                ),
                (
                    format!("weight_hh_l{k}{sfx}"),
                    vec![gh, p],
                    &r.recurrent_init,
                    "recurrent_initializer",
                    false,
                ),
            ];
            if r.bias {
                list.push((
                    format!("bias_ih_l{k}{sfx}"),
                    vec![gh],
                    &r.bias_init,
                    "bias_initializer",
                    true,
                ));
                list.push((
                    format!("bias_hh_l{k}{sfx}"),
                    vec![gh],
                    &r.bias_init,
                    "bias_initializer",
                    true,
                ));
            }
            if r.proj_size > 0 {
                list.push((
                    format!("weight_hr_l{k}{sfx}"),
                    vec![r.proj_size, h],
                    &r.recurrent_init,
                    "recurrent_initializer",
                    false,
                ));
            }
            for (n, logical, req, key, is_bias) in list {
                cx.put(Spec {
                    role: n.clone(),
                    tail: n,
                    logical,
                    perm: None,
                    requested: req.as_ref(),
                    requested_key: key,
                    default: default(),
                    fans: None,
                    is_bias,
                })?;
            }
        }
    }
    Ok(())
}

fn keras_recurrent(cx: &mut LayerCtx<'_>, r: &Recurrent, sub: &Sub) -> Result<()> {
    if r.reset_after.is_some() && r.cell != Cell::Gru {
        return Err(cx.unsupported("reset_after", "reset_after is a GRU option".into()));
    }
    let h = r.hidden_size;
    let gh = r.cell.gates() * h;
    let cell = format!("{}_cell", keras_class(r));
    // LSTM (i,f,c,o) and SimpleRNN share PyTorch's gate order (i,f,g,o), so their kernels are
    // the transposed PyTorch weight_ih_l0/weight_hh_l0 streams; Keras GRU (z,r,h) differs from
    // PyTorch (r,z,n), so its kernels are streams of their own.
    let (ih, hh) = if r.cell == Cell::Gru {
        (
            format!("kernel{}", sub.suffix()),
            format!("recurrent_kernel{}", sub.suffix()),
        )
    } else {
        (
            format!("weight_ih{}", sub.torch_suffix()),
            format!("weight_hh{}", sub.torch_suffix()),
        )
    };
    cx.put(Spec {
        tail: format!("{cell}/kernel"),
        role: ih,
        logical: vec![gh, sub.input],
        perm: Some(vec![1, 0]),
        requested: r.kernel_init.as_ref(),
        requested_key: "kernel_initializer",
        default: with_reason(Init::Glorot(Dist::Uniform), "Keras recurrent kernel default: glorot_uniform over the whole [input, gates·units] kernel"),
        fans: None,
        is_bias: false,
    })?;
    cx.put(Spec {
        tail: format!("{cell}/recurrent_kernel"),
        role: hh,
        logical: vec![gh, h],
        perm: Some(vec![1, 0]),
        requested: r.recurrent_init.as_ref(),
        requested_key: "recurrent_initializer",
        default: with_reason(Init::Orthogonal { gain: 1.0 }, "Keras recurrent_initializer default: orthogonal over the whole [units, gates·units] matrix (orthonormal rows)"),
        fans: None,
        is_bias: false,
    })?;
    if !r.bias {
        return Ok(());
    }
    let logical = if r.cell == Cell::Gru && r.reset_after.unwrap_or(true) {
        vec![2, gh]
    } else {
        vec![gh]
    };
    cx.put(Spec {
        tail: format!("{cell}/bias"),
        role: format!("bias{}", sub.suffix()),
        logical,
        perm: None,
        requested: r.bias_init.as_ref(),
        requested_key: "bias_initializer",
        default: with_reason(Init::Zeros, "Keras bias default: zeros"),
        fans: None,
        is_bias: true,
    })?;
    if r.cell == Cell::Lstm && r.unit_forget_bias.unwrap_or(true) {
        let bpath = join(&cx.path, "bias_initializer");
        let last = cx.drafts.last_mut().expect("just added");
        let base = std::mem::replace(&mut last.resolved.source, ValueSource::Constant(0.0));
        let element = |src: &ValueSource| {
            Element::of(src).ok_or_else(|| {
                SpecError::new(
                    ErrorCode::InitializerMismatch,
                    &bpath,
                    "with unit_forget_bias the bias initializer must be a constant or a plain distribution",
                )
            })
        };
        let base = element(&base)?;
        // keras/src/layers/rnn/lstm.py: concatenate([init((units,)), ones((units,)),
        // init((2·units,))]). An initializer with fans sees (units,) and (2·units,), so the
        // two parts are drawn with their own fans (same stream, element index as position).
        let fan_based = last.resolved.info.fan_in.is_some();
        let note = if fan_based {
            let spec = last.resolved.info.spec.clone();
            let part = |n: u64| -> Result<crate::init::Resolved> {
                init::resolve(
                    &spec,
                    &TensorCtx {
                        framework: Framework::Keras,
                        shape: &[n],
                        logical_shape: &[n],
                        fan_in: None,
                        fan_out: None,
                        activation: None,
                        path: &bpath,
                    },
                )
            };
            let (first, rest) = (part(h)?, part(2 * h)?);
            last.resolved.source = ValueSource::Pieces(vec![
                (0, h, element(&first.source)?),
                (h, 2 * h, Element::Constant(1.0)),
                (2 * h, 4 * h, element(&rest.source)?),
            ]);
            last.resolved.info.fan_in = first.info.fan_in;
            last.resolved.info.fan_out = first.info.fan_out;
            format!(
                "unit_forget_bias: as Keras, the initializer is called on ({h},) for [0, {h}) (the numbers above) and on ({},) for [{}, {}) (fans {:?}, std {:?}, bounds {:?}..{:?}); elements [{h}, {}) (the forget gate) are 1",
                2 * h,
                2 * h,
                4 * h,
                rest.info.fan_in,
                rest.info.std,
                rest.info.low,
                rest.info.high,
                2 * h
            )
        } else {
            last.resolved.source = ValueSource::WithConstantRange {
                base,
                start: h,
                end: 2 * h,
                value: 1.0,
            };
            format!(
                "unit_forget_bias: elements [{h}, {}) (the forget gate) are 1",
                2 * h
            )
        };
        last.resolved.info.reason = Some(match last.resolved.info.reason.take() {
            Some(x) => format!("{x}; {note}"),
            None => note,
        });
    }
    Ok(())
}

fn flax_recurrent(cx: &mut LayerCtx<'_>, r: &Recurrent, sub: &Sub) -> Result<()> {
    if !r.bias {
        return Err(cx.unsupported("bias", "Flax recurrent cells always have biases".into()));
    }
    if r.unit_forget_bias == Some(true) {
        return Err(cx.unsupported(
            "unit_forget_bias",
            "unit_forget_bias is Keras-only; Flax LSTMCell has no forget bias".into(),
        ));
    }
    if r.reset_after == Some(false) {
        return Err(cx.unsupported(
            "reset_after",
            "Flax GRUCell applies the reset gate after the recurrent matmul (reset_after = true)"
                .into(),
        ));
    }
    let h = r.hidden_size;
    // (gate Dense name, is input side, has bias), in flax/linen/recurrent.py's order.
    let gates: &[(&str, bool, bool)] = match r.cell {
        Cell::Lstm => &[
            ("ii", true, false),
            ("if", true, false),
            ("ig", true, false),
            ("io", true, false),
            ("hi", false, true),
            ("hf", false, true),
            ("hg", false, true),
            ("ho", false, true),
        ],
        Cell::Gru => &[
            ("ir", true, true),
            ("iz", true, true),
            ("in", true, true),
            ("hr", false, false),
            ("hz", false, false),
            ("hn", false, true),
        ],
        Cell::Rnn => &[("i", true, true), ("h", false, false)],
    };
    for &(g, input, bias) in gates {
        let (logical, req, key, default) = if input {
            (
                vec![h, sub.input],
                &r.kernel_init,
                "kernel_initializer",
                with_reason(
                    Init::Lecun(Dist::Normal),
                    "Flax cell kernel_init default: lecun_normal, per gate",
                ),
            )
        } else {
            (
                vec![h, h],
                &r.recurrent_init,
                "recurrent_initializer",
                with_reason(
                    Init::Orthogonal { gain: 1.0 },
                    "Flax cell recurrent_kernel_init default: orthogonal, per gate matrix",
                ),
            )
        };
        cx.put(Spec {
            tail: format!("{g}/kernel"),
            role: format!("{g}/kernel{}", sub.suffix()),
            logical,
            perm: Some(vec![1, 0]),
            requested: req.as_ref(),
            requested_key: key,
            default,
            fans: None,
            is_bias: false,
        })?;
        if bias {
            cx.put(Spec {
                tail: format!("{g}/bias"),
                role: format!("{g}/bias{}", sub.suffix()),
                logical: vec![h],
                perm: None,
                requested: r.bias_init.as_ref(),
                requested_key: "bias_initializer",
                default: with_reason(
                    Init::Zeros,
                    "Flax cell bias_init default: zeros (no forget bias)",
                ),
                fans: None,
                is_bias: true,
            })?;
        }
    }
    Ok(())
}

/// The attention kernel just added: orthogonal flattened with `rows_axes` leading axes as
/// rows; under Flax, `delta_orthogonal` is refused as JAX refuses it (DenseGeneral passes the
/// kernel to `kernel_init` as a 2-D matrix, and delta_orthogonal needs 3 to 5 dimensions).
fn attention_kernel(cx: &mut LayerCtx<'_>, rows_axes: usize) -> Result<()> {
    let fw = cx.fw;
    let path = join(&cx.path, "kernel_initializer");
    let last = cx.drafts.last_mut().expect("just added");
    match &mut last.resolved.source {
        ValueSource::Whole(WholeTensor::Orthogonal { rows_axes: r, .. }) => {
            *r = rows_axes;
            let s = &last.logical_shape;
            let rows: u64 = s[..rows_axes].iter().product();
            let cols: u64 = s[rows_axes..].iter().product();
            let note = format!(
                "orthogonal on the kernel flattened to ({rows}, {cols}), as {} flattens it",
                if fw == Framework::Keras {
                    "Keras (prod(shape[:-1]), shape[-1])"
                } else {
                    "Flax DenseGeneral"
                }
            );
            last.resolved.info.reason = Some(match last.resolved.info.reason.take() {
                Some(x) => format!("{x}; {note}"),
                None => note,
            });
        }
        ValueSource::Whole(WholeTensor::DeltaOrthogonal { .. }) if fw == Framework::Flax => {
            return Err(SpecError::new(
                ErrorCode::InitializerMismatch,
                path,
                "Flax MultiHeadDotProductAttention refuses delta_orthogonal: its DenseGeneral kernels reach kernel_init as 2-D matrices, and jax delta_orthogonal needs a 3-, 4- or 5-D kernel",
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Flax DenseGeneral calls `bias_init` on the bias flattened to `(heads·head_dim,)`, where
/// JAX's fan rule (2 dimensions at least) fails: a fan-based bias initializer is refused.
fn flax_flat_bias(cx: &mut LayerCtx<'_>, flat: u64) -> Result<()> {
    let path = join(&cx.path, "bias_initializer");
    let last = cx.drafts.last_mut().expect("just added");
    if last.resolved.info.fan_in.is_some() {
        return Err(SpecError::new(
            ErrorCode::InitializerMismatch,
            path,
            format!(
                "`{}` needs fans, but Flax DenseGeneral hands the attention bias to bias_init as a vector of {flat} (JAX's fan rule needs 2 dimensions)",
                last.resolved.info.spec.name()
            ),
        ));
    }
    Ok(())
}

/// A PyTorch attention tensor: name, logical shape, default, is a bias.
type PtTensor = (String, Vec<u64>, (Init, String), bool);

pub(super) fn attention(cx: &mut LayerCtx<'_>, a: &Attention) -> Result<()> {
    let e = a.embed_dim;
    if cx.fw == Framework::PyTorch {
        let xavier = |what: &str| {
            with_reason(
                Init::Xavier {
                    dist: Dist::Uniform,
                    gain: 1.0,
                },
                &format!("PyTorch MultiheadAttention._reset_parameters: xavier_uniform_ on {what}"),
            )
        };
        let mut list: Vec<PtTensor> = Vec::new();
        if a.kdim == e && a.vdim == e {
            list.push((
                "in_proj_weight".into(),
                vec![3 * e, e],
                xavier("the packed [3E, E] in_proj_weight"),
                false,
            ));
        } else {
            list.push((
                "q_proj_weight".into(),
                vec![e, e],
                xavier("q_proj_weight"),
                false,
            ));
            list.push((
                "k_proj_weight".into(),
                vec![e, a.kdim],
                xavier("k_proj_weight"),
                false,
            ));
            list.push((
                "v_proj_weight".into(),
                vec![e, a.vdim],
                xavier("v_proj_weight"),
                false,
            ));
        }
        if a.bias {
            list.push((
                "in_proj_bias".into(),
                vec![3 * e],
                with_reason(Init::Zeros, "PyTorch MultiheadAttention: in_proj_bias = 0"),
                true,
            ));
        }
        list.push((
            "out_proj.weight".into(),
            vec![e, e],
            weight_default(
                Framework::PyTorch,
                "out_proj (NonDynamicallyQuantizableLinear)",
            ),
            false,
        ));
        if a.bias {
            list.push((
                "out_proj.bias".into(),
                vec![e],
                with_reason(Init::Zeros, "PyTorch MultiheadAttention: out_proj.bias = 0"),
                true,
            ));
        }
        for (n, logical, default, is_bias) in list {
            cx.put(Spec {
                role: n.clone(),
                tail: n,
                logical,
                perm: None,
                requested: if is_bias {
                    a.bias_init.as_ref()
                } else {
                    a.kernel_init.as_ref()
                },
                requested_key: if is_bias {
                    "bias_initializer"
                } else {
                    "kernel_initializer"
                },
                default,
                fans: None,
                is_bias,
            })?;
        }
        if a.add_bias_kv {
            for n in ["bias_k", "bias_v"] {
                cx.put(Spec {
                    role: n.into(),
                    tail: n.into(),
                    logical: vec![1, 1, e],
                    perm: None,
                    requested: None,
                    requested_key: "bias_initializer",
                    default: with_reason(
                        Init::Xavier {
                            dist: Dist::Normal,
                            gain: 1.0,
                        },
                        "PyTorch MultiheadAttention: bias_k/bias_v xavier_normal_ on [1, 1, E]",
                    ),
                    fans: None,
                    is_bias: false,
                })?;
            }
        }
        return Ok(());
    }
    if a.add_bias_kv {
        return Err(cx.unsupported(
            "add_bias_kv",
            format!(
                "add_bias_kv is PyTorch-only; {} attention has no bias_k/bias_v",
                cx.fw.as_str()
            ),
        ));
    }
    let (h, d) = (a.num_heads, a.head_dim());
    let keras = cx.fw == Framework::Keras;
    let (out, default) = if keras {
        (
            "attention_output",
            with_reason(
                Init::Glorot(Dist::Uniform),
                "Keras MultiHeadAttention kernel default: glorot_uniform with EinsumDense fans (Keras ≥ 3.15)",
            ),
        )
    } else {
        (
            "out",
            with_reason(
                Init::Lecun(Dist::Normal),
                "Flax MultiHeadDotProductAttention kernel_init default: lecun_normal on the flattened DenseGeneral kernel",
            ),
        )
    };
    let zeros = || with_reason(Init::Zeros, "bias default: zeros");
    let projections = [("query", a.embed_dim), ("key", a.kdim), ("value", a.vdim)];
    for (n, input) in projections {
        cx.put(Spec {
            tail: format!("{n}/kernel"),
            role: format!("{n}/kernel"),
            logical: vec![input, h, d],
            perm: None,
            requested: a.kernel_init.as_ref(),
            requested_key: "kernel_initializer",
            default: default.clone(),
            fans: Some((input, h * d)),
            is_bias: false,
        })?;
        // Keras flattens the [E, heads, head_dim] kernel as (E·heads, head_dim) for
        // orthogonal; Flax's DenseGeneral hands it over as (E, heads·head_dim).
        attention_kernel(cx, if keras { 2 } else { 1 })?;
        if a.bias {
            cx.put(Spec {
                tail: format!("{n}/bias"),
                role: format!("{n}/bias"),
                logical: vec![h, d],
                perm: None,
                requested: a.bias_init.as_ref(),
                requested_key: "bias_initializer",
                default: zeros(),
                // Keras calls bias_initializer on the (heads, head_dim) bias, so fans are
                // (heads, head_dim) by its rule (keras/src/layers/core/einsum_dense.py).
                fans: None,
                is_bias: true,
            })?;
            if !keras {
                flax_flat_bias(cx, h * d)?;
            }
        }
    }
    cx.put(Spec {
        tail: format!("{out}/kernel"),
        role: "output/kernel".into(),
        logical: vec![h, d, e],
        perm: None,
        requested: a.kernel_init.as_ref(),
        requested_key: "kernel_initializer",
        default,
        fans: Some((h * d, e)),
        is_bias: false,
    })?;
    // Keras (prod(shape[:-1]), shape[-1]) and Flax DenseGeneral's flattening agree here:
    // the [heads, head_dim, E] kernel is orthogonal as (heads·head_dim, E).
    attention_kernel(cx, 2)?;
    if a.bias {
        cx.put(Spec {
            tail: format!("{out}/bias"),
            role: "output/bias".into(),
            logical: vec![e],
            perm: None,
            requested: a.bias_init.as_ref(),
            requested_key: "bias_initializer",
            default: zeros(),
            fans: None,
            is_bias: true,
        })?;
    }
    Ok(())
}
