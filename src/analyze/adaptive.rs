//! `recipe: adaptive`: data-free LSUV (Mishkin & Matas 2016, "All you need is a good init"),
//! computed with the pieces of the measured pass `/v1/analyze` uses (its stages, their inputs
//! and its W·x summation); `pipeline::build` runs it on a provisional plan. A seeded normal batch (mean and std from
//! the request, default standard normal) is pushed through the stack layer by layer; each
//! dense/conv weight W is scaled by s = target_std / std(W·x) on the batch that reaches it
//! (already calibrated below it), so every layer's pre-activation starts with the target
//! variance; biases keep their initializer and are added after scaling. One pass, no
//! iteration: W·x is linear in the scale. Every sum runs in a fixed order on one thread per
//! output row, so the scales are bit-identical for any thread count, and they are recorded per
//! tensor in the plan (`init.recipe.scale`).

use std::sync::Arc;

use serde_json::json;

use super::mean_field::act_value;
use super::pass::{
    Skip, logical_values, normal_matrix, stage_input, stages, std_of, weighted_sums,
};
use super::{DEFAULT_BATCH, MAX_ANALYZED_ACTIVATIONS, MAX_WORK};
use crate::error::{Result, SpecError};
use crate::generate::Generator;
use crate::plan::{Plan, Scale};
use crate::recipe::Recipe;
use crate::spec::Request;

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
        return Err(SpecError::invalid_value(
            "recipe",
            "`adaptive` calibrates a layer stack of dense and conv layers; for an hf_config model use a recipe such as torchtitan or olmo_mitchell (compare them with the forecast of /v1/analyze)",
        ));
    }
    let (stages, skipped) = stages(req, &plan);
    // The first layer the pass cannot take, in layer order, is refused.
    if let Some((k, why)) = skipped.first() {
        let why = match why {
            Skip::NoWeight => "this layer has no weight".to_string(),
            Skip::Grouped => "a grouped convolution is not covered".to_string(),
            Skip::LoneActivation => "an activation must follow a dense or conv layer".to_string(),
            Skip::NotCovered => format!("a `{}` layer is not covered", req.layers[*k].type_name()),
        };
        return Err(SpecError::invalid_value(
            format!("layers[{k}]"),
            format!(
                "`adaptive` calibrates stacks of dense and conv layers (with activations and dropout); {why}"
            ),
        ));
    }
    if stages.is_empty() {
        return Err(SpecError::invalid_value(
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
        return Err(SpecError::limit_exceeded(
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
            return Err(SpecError::limit_exceeded(
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
    for (si, s) in stages.iter().enumerate() {
        let tp = &plan.tensors[s.weight];
        let w = logical_values(&g, s.weight, tp);
        let bias: Vec<f32> = s
            .bias
            .map(|b| logical_values(&g, b, &plan.tensors[b]))
            .unwrap_or_default();
        // A conv sees patches of rf positions, as in the report's pass.
        let x = stage_input(h, batch, si.checked_sub(1).map(|p| stages[p].fan_out), s);
        let (fi, fo) = (s.fan_in, s.fan_out);
        if x.len() != batch * fi {
            return Err(SpecError::inconsistent_sizes(
                format!("layers[{}]", s.index),
                "the layer's input width does not chain from the previous layer's output",
            ));
        }
        // W·x without the bias: the bias is added after scaling, so it keeps its initializer.
        let u = weighted_sums(&x, &w, batch, fi, fo);
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
    }
    Ok(out)
}
