//! Tensors of `multihead_attention` layers, per framework: PyTorch's packed `in_proj_weight`,
//! Keras' `MultiHeadAttention` EinsumDense kernels and Flax's `MultiHeadDotProductAttention`
//! DenseGeneral kernels, with their shapes, layouts, default initializers and stream
//! identities. See docs/determinism.md, "Multi-head attention".

use super::layers::{LayerCtx, TailTensor, with_reason};
use crate::error::{Result, SpecError};
use crate::init::defaults::weight_default;
use crate::init::{Dist, Init, ValueSource, WholeTensor};
use crate::spec::{Attention, Framework};
use crate::terms::fields::join;

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
            last.resolved.info.append_reason(note);
        }
        ValueSource::Whole(WholeTensor::DeltaOrthogonal { .. }) if fw == Framework::Flax => {
            return Err(SpecError::initializer_mismatch(
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
        return Err(SpecError::initializer_mismatch(
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
            cx.put(TailTensor {
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
                cx.put(TailTensor {
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
        cx.put(TailTensor {
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
            cx.put(TailTensor {
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
    cx.put(TailTensor {
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
        cx.put(TailTensor {
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
