//! The tensors of a `keras_model` request (see `crate::keras`): one per `model.weights` entry,
//! named by its path, with stream identity `keras/<path>`.
//!
//! Layout: a weight of rank ≥ 2 with Keras shape `[s0, …, s(n−1)]` is generated as the logical
//! tensor `[s(n−1), s0, …, s(n−2)]` (last output axis = logical axis 0), so that a structured
//! initializer defined on the logical `[rows, rest]` tensor (orthogonal) comes out as Keras
//! computes it, on `(prod(shape[:-1]), shape[-1])` (`keras/src/initializers/
//! random_initializers.py` `Orthogonal.__call__`): a Dense kernel is still the transposed
//! PyTorch weight, and an attention kernel `[E, heads, head_dim]` is orthogonal as an
//! `(E·heads, head_dim)` matrix. Fans are read off the Keras shape by Keras's rule (or the
//! einsum / config axes).

use super::{Collector, Draft, Layout};
use crate::error::{Result, SpecError};
use crate::init::{self, Element, Resolved, TensorCtx, ValueSource};
use crate::keras::Weight;
use crate::spec::{Framework, Request};

fn layout_of(shape: &[u64]) -> (Vec<u64>, Layout) {
    let n = shape.len();
    if n < 2 {
        return (shape.to_vec(), Layout::Identity);
    }
    let mut logical = vec![shape[n - 1]];
    logical.extend_from_slice(&shape[..n - 1]);
    let mut perm: Vec<usize> = (1..n).collect();
    perm.push(0);
    (logical, Layout::Permuted { perm })
}

/// `compute_fans(shape, input_axes, output_axes)` with Python's negative indices.
fn axes_fans(shape: &[u64], axes: &(Vec<i64>, Vec<i64>), path: &str) -> Result<(u64, u64)> {
    let n = shape.len() as i64;
    let prod = |a: &[i64]| -> Result<u64> {
        a.iter().try_fold(1u64, |acc, &x| {
            let i = if x < 0 { n + x } else { x };
            if !(0..n).contains(&i) {
                return Err(SpecError::initializer_mismatch(
                    path,
                    format!("axis {x} is outside the weight's shape {shape:?}"),
                ));
            }
            Ok(acc.saturating_mul(shape[i as usize]))
        })
    };
    Ok((prod(&axes.0)?, prod(&axes.1)?))
}

fn resolve_on(w: &Weight, shape: &[u64]) -> Result<Resolved> {
    let (logical, _) = layout_of(shape);
    let fans = match (&w.init.axes, w.fans) {
        (Some(ax), _) => Some(axes_fans(shape, ax, &w.init_path)?),
        (None, f) => f,
    };
    let ctx = TensorCtx {
        framework: Framework::Keras,
        shape,
        logical_shape: &logical,
        fan_in: fans.map(|f| f.0),
        fan_out: fans.map(|f| f.1),
        activation: None,
        path: &w.init_path,
    };
    let mut r = init::resolve(&w.init.spec, &ctx)?;
    if let Some(why) = &w.default_reason {
        r.info.prepend_reason(why.clone());
    }
    Ok(r)
}

/// LSTM `unit_forget_bias`: `concatenate([init((units,)), ones((units,)), init((2·units,))])`.
fn forget_bias(w: &Weight, h: u64) -> Result<Resolved> {
    let mut first = resolve_on(w, &[h])?;
    let rest = resolve_on(w, &[h.saturating_mul(2)])?;
    let element = |r: &Resolved| {
        Element::of(&r.source).ok_or_else(|| {
            SpecError::initializer_mismatch(
                &w.init_path,
                "with unit_forget_bias the bias initializer must be a constant or a random distribution",
            )
        })
    };
    let (first_el, rest_el) = (element(&first)?, element(&rest)?);
    let note = if first.source == rest.source {
        first.source = ValueSource::WithConstantRange {
            base: first_el,
            start: h,
            end: 2 * h,
            value: 1.0,
        };
        format!(
            "unit_forget_bias: elements [{h}, {}) (the forget gate) are 1",
            2 * h
        )
    } else {
        let note = format!(
            "unit_forget_bias: Keras calls the initializer on ({h},) for [0, {h}) and on ({},) for [{}, {}) (their own fans), elements [{h}, {}) are 1; the numbers above are those of the first part, the second has std {:?}, bounds {:?}..{:?}",
            2 * h,
            2 * h,
            4 * h,
            2 * h,
            rest.info.std,
            rest.info.low,
            rest.info.high
        );
        first.source = ValueSource::Pieces(vec![
            (0, h, first_el),
            (h, 2 * h, Element::Constant(1.0)),
            (2 * h, 4 * h, rest_el),
        ]);
        note
    };
    first.info.append_reason(note);
    Ok(first)
}

pub(super) fn keras_drafts(req: &Request, drafts: &mut Collector) -> Result<()> {
    let Some(model) = &req.keras else {
        return Ok(());
    };
    for w in &model.weights {
        let (logical, layout) = layout_of(&w.shape);
        let resolved = match w.forget_bias_units {
            Some(h) => forget_bias(w, h)?,
            None => resolve_on(w, &w.shape)?,
        };
        drafts.push(Draft {
            name: w.path.clone(),
            name_path: w.origin.clone(),
            dtype: req.dtype,
            shape: w.shape.clone(),
            logical_shape: logical,
            layout,
            identity: format!("keras/{}", w.path),
            resolved,
            zero_row: None,
            fills: Vec::new(),
            origin: w.origin.clone(),
            slice: None,
        })?;
    }
    Ok(())
}
