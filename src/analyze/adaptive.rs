//! `recipe: adaptive`: data-free LSUV (Mishkin & Matas 2016, "All you need is a good init"),
//! computed by the measured pass `/v1/analyze` uses. A seeded normal batch (mean and std from
//! the request, default standard normal) is pushed through the stack layer by layer; each
//! dense/conv weight W is scaled by s = target_std / std(W·x) on the batch that reaches it
//! (already calibrated below it), so every layer's pre-activation starts with the target
//! variance; biases keep their initializer and are added after scaling. One pass, no
//! iteration: W·x is linear in the scale. Every sum runs in a fixed order on one thread per
//! output row, so the scales are bit-identical for any thread count, and they are recorded per
//! tensor in the plan (`init.recipe.scale`).

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::json;

use super::{
    DEFAULT_BATCH, MAX_ANALYZED_ACTIVATIONS, MAX_WORK, act_value, logical_values, normal_matrix,
    std_of,
};
use crate::error::{ErrorCode, Result, SpecError};
use crate::generate::Generator;
use crate::plan::{Plan, Scale};
use crate::recipe::Recipe;
use crate::spec::{Activation, LayerKind, Request};

struct Stage {
    index: usize,
    weight: usize,
    bias: Option<usize>,
    activation: Activation,
    fan_in: usize,
    fan_out: usize,
    rf: usize,
}

/// The scale and plan note of every weight of the stack, in order, measured on `plan` (the
/// provisional plan of `req`'s unscaled tensors; `req` carries the recipe's parameters).
pub fn calibrate(plan: Arc<Plan>, req: &Request) -> Result<Vec<Scale>> {
    let Some(Recipe::Adaptive {
        target_std,
        input_mean,
        input_std,
    }) = &req.recipe
    else {
        return Ok(Vec::new());
    };
    if req.hf.is_some() {
        return Err(SpecError::new(
            ErrorCode::InvalidValue,
            "recipe",
            "`adaptive` calibrates a layer stack of dense and conv layers; for an hf_config model use a recipe such as torchtitan or olmo_mitchell (compare them with the forecast of /v1/analyze)",
        ));
    }
    // (origin, role) → the first tensor with them, built once: a lookup per layer instead of a
    // scan of every tensor (50,000 layers took 24 s).
    let mut by_role: HashMap<(&str, &str), usize> = HashMap::with_capacity(plan.tensors.len());
    for (i, t) in plan.tensors.iter().enumerate() {
        if let Some((_, role)) = t.identity.rsplit_once('/') {
            by_role.entry((t.origin.as_str(), role)).or_insert(i);
        }
    }
    let find = |k: usize, role: &str| {
        let origin = format!("layers[{k}]");
        by_role.get(&(origin.as_str(), role)).copied()
    };
    let mut stages: Vec<Stage> = Vec::new();
    let mut last_end = usize::MAX;
    for (k, layer) in req.layers.iter().enumerate() {
        let refuse = |why: &str| {
            SpecError::new(
                ErrorCode::InvalidValue,
                format!("layers[{k}]"),
                format!(
                    "`adaptive` calibrates stacks of dense and conv layers (with activations and dropout); {why}"
                ),
            )
        };
        match &layer.kind {
            LayerKind::Dense {
                in_features,
                out_features,
                activation,
                ..
            } => {
                let w = find(k, "weight").ok_or_else(|| refuse("this layer has no weight"))?;
                stages.push(Stage {
                    index: k,
                    weight: w,
                    bias: find(k, "bias"),
                    activation: activation.unwrap_or(Activation::Linear),
                    fan_in: *in_features as usize,
                    fan_out: *out_features as usize,
                    rf: 1,
                });
                last_end = k;
            }
            LayerKind::Conv {
                in_channels,
                out_channels,
                kernel_size,
                groups,
                activation,
                ..
            } => {
                if *groups != 1 {
                    return Err(refuse("a grouped convolution is not covered"));
                }
                let rf: u64 = kernel_size.iter().product();
                let w = find(k, "weight").ok_or_else(|| refuse("this layer has no weight"))?;
                stages.push(Stage {
                    index: k,
                    weight: w,
                    bias: find(k, "bias"),
                    activation: activation.unwrap_or(Activation::Linear),
                    fan_in: (in_channels * rf) as usize,
                    fan_out: *out_channels as usize,
                    rf: rf as usize,
                });
                last_end = k;
            }
            LayerKind::Activation(a) => match stages.last_mut() {
                Some(s) if s.activation == Activation::Linear && last_end + 1 == k => {
                    s.activation = *a;
                    last_end = k;
                }
                _ => return Err(refuse("an activation must follow a dense or conv layer")),
            },
            LayerKind::Dropout { .. } => {
                if last_end.wrapping_add(1) == k {
                    last_end = k;
                }
            }
            other => {
                let _ = other;
                return Err(refuse(&format!(
                    "a `{}` layer is not covered",
                    layer.type_name()
                )));
            }
        }
    }
    if stages.is_empty() {
        return Err(SpecError::new(
            ErrorCode::InvalidValue,
            "recipe",
            "`adaptive` needs at least one dense or conv layer",
        ));
    }
    // The pass costs batch × (weight elements) multiply-adds: bounded before any work.
    let params: u64 = stages
        .iter()
        .map(|s| plan.tensors[s.weight].numel)
        .fold(0u64, |a, b| a.saturating_add(b));
    let batch = DEFAULT_BATCH;
    if params.saturating_mul(batch as u64) > MAX_WORK {
        return Err(SpecError::new(
            ErrorCode::LimitExceeded,
            "recipe",
            format!(
                "`adaptive` pushes a batch of {batch} through {params} weights ({} multiply-adds); the limit is {MAX_WORK}",
                params.saturating_mul(batch as u64)
            ),
        ));
    }
    // The activations live at once for one stage: its input (or patches) and its output, batch
    // × (fan_in + fan_out) f64. Checked for every stage before anything is allocated: a dense
    // 1 → 2^23 layer passes the work bound but would hold 8 GB.
    for s in &stages {
        let live =
            (batch as u64).saturating_mul((s.fan_in as u64).saturating_add(s.fan_out as u64));
        if live > MAX_ANALYZED_ACTIVATIONS {
            return Err(SpecError::new(
                ErrorCode::LimitExceeded,
                format!("layers[{}]", s.index),
                format!(
                    "`adaptive` pushes a batch of {batch} through this layer: {live} activation values (batch × (fan_in + fan_out)); the limit is {MAX_ANALYZED_ACTIVATIONS}"
                ),
            ));
        }
    }
    let g = Generator::new(plan.clone());
    let first = &stages[0];
    let mut h: Vec<f64> = normal_matrix(req.seed, "adaptive/input", batch, first.fan_in)
        .into_iter()
        .map(|v| input_mean + input_std * v)
        .collect();
    let mut out = Vec::new();
    let mut prev_width = first.fan_in;
    for (si, s) in stages.iter().enumerate() {
        let tp = &plan.tensors[s.weight];
        let w = logical_values(&g, s.weight, tp);
        let bias: Vec<f32> = s
            .bias
            .map(|b| logical_values(&g, b, &plan.tensors[b]))
            .unwrap_or_default();
        // A conv sees patches of rf positions, taken (mean field) as rf rotated copies of the batch.
        let x = if si == 0 || s.rf == 1 || s.fan_in != prev_width * s.rf {
            h
        } else {
            let mut patch = vec![0f64; batch * s.fan_in];
            for b in 0..batch {
                for c in 0..prev_width {
                    for t in 0..s.rf {
                        patch[b * s.fan_in + c * s.rf + t] = h[((b + t) % batch) * prev_width + c];
                    }
                }
            }
            patch
        };
        let (fi, fo) = (s.fan_in, s.fan_out);
        if x.len() != batch * fi {
            return Err(SpecError::new(
                ErrorCode::InconsistentSizes,
                format!("layers[{}]", s.index),
                "the layer's input width does not chain from the previous layer's output",
            ));
        }
        let mut u = vec![0f64; batch * fo];
        u.par_chunks_mut(fo).enumerate().for_each(|(b, row)| {
            let xrow = &x[b * fi..(b + 1) * fi];
            for (o, uo) in row.iter_mut().enumerate() {
                let wrow = &w[o * fi..(o + 1) * fi];
                let mut acc = 0f64;
                for (wi, xi) in wrow.iter().zip(xrow) {
                    acc += *wi as f64 * xi;
                }
                *uo = acc;
            }
        });
        let before = std_of(&u);
        let scale = if before > 0.0 && before.is_finite() {
            target_std / before
        } else {
            1.0
        };
        out.push(Scale {
            tensor: tp.name.clone(),
            factor: scale,
            note: json!({
                "name": "adaptive",
                "role": "calibrated weight",
                "layer": s.index,
                "rule": format!(
                    "data-free LSUV (Mishkin & Matas 2016): scale = target_std / std(W·x) = {target_std} / {before} on a seeded N({input_mean}, {input_std}²) batch of {batch} pushed through the calibrated layers below"
                ),
                "scale": scale,
                "std_before": before,
                "replaced": tp.resolved.info.spec.name(),
            }),
        });
        h = u
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let b = bias.get(i % fo).copied().unwrap_or(0.0) as f64;
                act_value(s.activation, scale * v + b)
            })
            .collect();
        prev_width = fo;
    }
    Ok(out)
}
