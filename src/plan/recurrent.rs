//! Tensors of recurrent layers (`rnn`, `lstm`, `gru`), per framework: names (including the
//! sub-layers a stacked or bidirectional entry expands into), shapes, layouts, default
//! initializers and stream identities. See docs/determinism.md, "Recurrent layers".

use super::layers::{LayerCtx, TailTensor, with_reason};
use crate::error::{Result, SpecError};
use crate::init::{self, Dist, Element, Init, TensorCtx, ValueSource};
use crate::spec::fields::join;
use crate::spec::{Cell, Framework, Recurrent};

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
                cx.put(TailTensor {
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
    cx.put(TailTensor {
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
    cx.put(TailTensor {
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
    cx.put(TailTensor {
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
                SpecError::initializer_mismatch(
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
        last.resolved.info.append_reason(note);
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
        cx.put(TailTensor {
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
            cx.put(TailTensor {
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
