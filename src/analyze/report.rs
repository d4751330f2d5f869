//! The `/v1/analyze` report: the work bound, then the seeded batch pushed forward through the
//! generated weights and a gradient backward, each layer's measured std ratios beside the
//! mean-field prediction, the cumulative gains, the verdict, and a suggestion naming the
//! initializer `auto` would pick.

use std::sync::Arc;

use rayon::prelude::*;
use serde_json::{Value, json};

use super::mean_field::{act_grad, act_value, gauss_expect};
use super::pass::{
    Skip, Stage, logical_values, normal_matrix, stage_input, stages, std_of, weighted_sums,
};
use super::{
    MAX_ANALYZED_ACTIVATIONS, MAX_ANALYZED_WEIGHTS, MAX_BATCH, MAX_WORK, MIN_BATCH, THRESHOLD,
    forecast_for,
};
use crate::error::{Result, SpecError};
use crate::generate::Generator;
use crate::init::{ValueSource, WholeTensor};
use crate::plan::{Plan, TensorPlan};
use crate::sample::Kernel;
use crate::spec::{Activation, LayerKind};

fn variance_of_source(src: &ValueSource) -> Option<f64> {
    match src {
        ValueSource::Constant(v) => Some((*v as f64) * (*v as f64)),
        ValueSource::Random(Kernel::Uniform { low, scale }) => {
            let (l, s) = (*low as f64, *scale as f64);
            let m = l + s / 2.0;
            Some(s * s / 12.0 + m * m)
        }
        ValueSource::Random(Kernel::Normal { mean, std }) => {
            Some((*std as f64).powi(2) + (*mean as f64).powi(2))
        }
        _ => None,
    }
}

/// Second moment of the weights: from the resolved distribution where it is closed-form,
/// otherwise (truncated, structured) from the generated values.
fn weight_second_moment(tp: &TensorPlan, w: &[f32]) -> f64 {
    match &tp.resolved.source {
        ValueSource::Random(Kernel::TruncNormal(_))
        | ValueSource::Whole(WholeTensor::Orthogonal { .. }) => {}
        s => {
            if let Some(v) = variance_of_source(s) {
                return v;
            }
        }
    }
    w.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() / w.len().max(1) as f64
}

fn too_much(path: String, msg: String) -> SpecError {
    SpecError::limit_exceeded(path, msg)
}

/// The work bound, in closed form and before any allocation: the weights held, the activations
/// kept and batch × parameters. Returns the batch to use (`batch` clamped to
/// [MIN_BATCH, MAX_BATCH] and lowered to fit the work and activation bounds), or a
/// `limit_exceeded` error naming the bound when even the smallest batch does not fit.
fn bounds(plan: &Plan, stages: &[Stage], batch: usize) -> Result<usize> {
    if plan.request.shard.is_some() {
        return Err(SpecError::conflicting_fields(
            "shard",
            "analyze measures whole layers; a shard holds only a slice of each weight: drop `shard`",
        ));
    }
    let mut weights = 0u64;
    let mut params = 0u64;
    let mut widths = 0u64;
    for s in stages {
        let w = plan.tensors[s.weight].numel;
        let b = s.bias.map(|b| plan.tensors[b].numel).unwrap_or(0);
        params = params.saturating_add(w);
        weights = weights.saturating_add(w).saturating_add(b);
        widths = widths
            .saturating_add(s.fan_in as u64)
            .saturating_add(s.fan_out as u64);
        if weights > MAX_ANALYZED_WEIGHTS {
            return Err(too_much(
                format!("layers[{}]", s.index),
                format!(
                    "analyze holds every analysed weight: up to this layer {weights} elements, more than its limit of {MAX_ANALYZED_WEIGHTS}; analyze a narrower model"
                ),
            ));
        }
    }
    let by_work = MAX_WORK / params.max(1);
    let by_activations = MAX_ANALYZED_ACTIVATIONS / widths.max(1);
    let batch = (batch.clamp(MIN_BATCH, MAX_BATCH) as u64)
        .min(by_work)
        .min(by_activations);
    if batch < MIN_BATCH as u64 {
        return Err(too_much(
            "layers".into(),
            format!(
                "the measured pass needs a batch of at least {MIN_BATCH}; with {params} parameters and {widths} activations per sample that passes its limits ({MAX_WORK} batch × parameters, {MAX_ANALYZED_ACTIVATIONS} activations)"
            ),
        ));
    }
    Ok(batch as usize)
}

/// Runs the analysis. `batch` is clamped to [MIN_BATCH, MAX_BATCH] and to the work bounds;
/// a model past them is refused before anything is allocated.
pub fn analyze(plan: Arc<Plan>, batch: usize) -> Result<Value> {
    let req = &plan.request;
    let generator = Generator::new(plan.clone());
    // Walk the layers: analysed stages, and what is not analysed.
    let (stages, skipped) = stages(req, &plan);
    let mut not_analysed = Vec::new();
    for (k, why) in skipped {
        let layer = &req.layers[k];
        let why = match why {
            // A dense layer whose weight `only` left out has never been listed.
            Skip::NoWeight if matches!(layer.kind, LayerKind::Dense { .. }) => continue,
            // A conv whose weight `only` left out is listed as this too: the report has said so
            // from the start, and its text is pinned (rewording it is an output change).
            Skip::NoWeight | Skip::Grouped => "grouped convolution",
            Skip::LoneActivation => "activation without a preceding dense/conv layer",
            Skip::NotCovered => "only dense and conv stacks are analysed",
        };
        not_analysed.push(json!({"layer": k, "type": layer.type_name(), "why": why}));
    }
    if req.hf.is_some() {
        not_analysed.push(json!({"layer": null, "type": "hf_config", "why": "no measured pass for Hugging Face models: see `forecast` (mean-field residual stream)"}));
    }
    let batch = bounds(&plan, &stages, batch)?;

    // Forward: pre-activation z_l and activation h_l; predicted q_l alongside.
    let width0 = stages.first().map(|s| s.fan_in / s.rf).unwrap_or(0);
    let mut h: Vec<f64> = normal_matrix(
        req.seed,
        "analyze/input",
        batch,
        width0.max(1) * stages.first().map(|s| s.rf).unwrap_or(1),
    );
    let mut q_pred = 1.0f64; // variance of the network input
    let mut prev_act: Option<Activation> = None;
    let mut layers_out = Vec::new();
    let mut zs: Vec<Vec<f64>> = Vec::new();
    let mut inputs: Vec<Vec<f64>> = Vec::new();
    let mut weights: Vec<Vec<f32>> = Vec::new();
    let mut second_moments = Vec::new();
    let input_std = std_of(&h);
    for (si, s) in stages.iter().enumerate() {
        let tp = &plan.tensors[s.weight];
        let w = logical_values(&generator, s.weight, tp);
        let bias: Vec<f32> = s
            .bias
            .map(|b| logical_values(&generator, b, &plan.tensors[b]))
            .unwrap_or_default();
        let sw2 = weight_second_moment(tp, &w);
        let sb2 = s.bias.map(|b| {
            let tb = &plan.tensors[b];
            variance_of_source(&tb.resolved.source).unwrap_or_else(|| {
                let v = &bias;
                v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / v.len().max(1) as f64
            })
        });
        // Input of this stage: the previous activations (patches of them for a conv).
        let width = si.checked_sub(1).map(|p| stages[p].fan_out);
        let x = stage_input(std::mem::take(&mut h), batch, width, s);
        let (fi, fo) = (s.fan_in, s.fan_out);
        if x.len() != batch * fi || w.len() != fi * fo || (!bias.is_empty() && bias.len() != fo) {
            not_analysed.push(
                json!({"layer": s.index, "type": s.kind, "why": "input width does not chain"}),
            );
            break;
        }
        // The pre-activation: W·x, then the bias added to each sum (0 where there is none), the
        // same two roundings as adding it at the end of the sum.
        let mut z = weighted_sums(&x, &w, batch, fi, fo);
        for (i, zi) in z.iter_mut().enumerate() {
            *zi += bias.get(i % fo).copied().unwrap_or(0.0) as f64;
        }
        // Predicted: q_l = fan_in·σ_w²·E[φ_prev(z)²] + σ_b².
        let e_phi2 = match prev_act {
            None => q_pred,
            Some(a) => gauss_expect(q_pred, |v| act_value(a, v).powi(2)),
        };
        let q_next = fi as f64 * sw2 * e_phi2 + sb2.unwrap_or(0.0);
        let fwd_ratio_pred = if q_pred > 0.0 {
            (q_next / q_pred).sqrt()
        } else {
            0.0
        };
        let z_std = std_of(&z);
        let prev_std = if si == 0 {
            input_std
        } else {
            std_of(zs.last().map(|v| v.as_slice()).unwrap_or(&[]))
        };
        layers_out.push(json!({
            "layer": s.index,
            "type": s.kind,
            "tensor": tp.name,
            "initializer": tp.resolved.info.spec.name(),
            "activation": s.activation.name(),
            "fan_in": fi,
            "fan_out": fo,
            "weight_std": sw2.sqrt(),
            "forward": {"predicted_ratio": fwd_ratio_pred, "measured_ratio": if prev_std > 0.0 { z_std / prev_std } else { 0.0 },
                        "predicted_std": q_next.sqrt(), "measured_std": z_std},
        }));
        second_moments.push(sw2);
        inputs.push(x);
        h = z.iter().map(|&v| act_value(s.activation, v)).collect();
        zs.push(z);
        weights.push(w);
        q_pred = q_next;
        prev_act = Some(s.activation);
    }
    // Backward: a standard-normal gradient at the output, through φ' and Wᵀ.
    let n = layers_out.len();
    let mut grad_std = vec![0f64; n];
    let mut grad_pred = vec![0f64; n];
    if n > 0 {
        let last = &stages[n - 1];
        let mut g = normal_matrix(req.seed, "analyze/output-gradient", batch, last.fan_out);
        let mut gq = 1.0f64; // predicted variance of the gradient at the output of stage n-1
        let q_inputs: Vec<f64> = layers_out
            .iter()
            .map(|l| {
                l["forward"]["predicted_std"]
                    .as_f64()
                    .unwrap_or(0.0)
                    .powi(2)
            })
            .collect();
        for l in (0..n).rev() {
            let s = &stages[l];
            let (fi, fo) = (s.fan_in, s.fan_out);
            let dz: Vec<f64> = g
                .iter()
                .zip(&zs[l])
                .map(|(gv, zv)| gv * act_grad(s.activation, *zv))
                .collect();
            let w = &weights[l];
            let mut gx = vec![0f64; batch * fi];
            gx.par_chunks_mut(fi).enumerate().for_each(|(b, grow)| {
                let drow = &dz[b * fo..(b + 1) * fo];
                for (o, d) in drow.iter().enumerate() {
                    let wrow = &w[o * fi..(o + 1) * fi];
                    for (gi, wi) in grow.iter_mut().zip(wrow) {
                        *gi += d * *wi as f64;
                    }
                }
            });
            let e_dphi2 = gauss_expect(q_inputs[l], |v| act_grad(s.activation, v).powi(2));
            let gq_next = gq * e_dphi2 * fo as f64 * second_moments[l];
            grad_pred[l] = (gq_next / gq).sqrt();
            let gstd_out = std_of(&g);
            grad_std[l] = std_of(&gx);
            layers_out[l]["backward"] = json!({
                "predicted_ratio": grad_pred[l],
                "measured_ratio": if gstd_out > 0.0 { grad_std[l] / gstd_out } else { 0.0 },
                "measured_std": grad_std[l],
            });
            gq = gq_next;
            // Fold conv patches back onto channels (mean over taps) for the layer below.
            g = if s.rf > 1 && l > 0 && fi == stages[l - 1].fan_out * s.rf {
                let width = stages[l - 1].fan_out;
                let mut folded = vec![0f64; batch * width];
                for b in 0..batch {
                    for c in 0..width {
                        let mut acc = 0.0;
                        for t in 0..s.rf {
                            acc += gx[b * fi + c * s.rf + t];
                        }
                        folded[b * width + c] = acc / (s.rf as f64).sqrt();
                    }
                }
                folded
            } else {
                gx
            };
        }
    }
    // Cumulative gains and the verdict.
    let mut cum_f = 1.0;
    let mut first_bad: Option<(usize, &'static str)> = None;
    for (l, layer) in layers_out.iter_mut().enumerate() {
        cum_f *= layer["forward"]["measured_ratio"].as_f64().unwrap_or(1.0);
        layer["forward"]["cumulative"] = json!(cum_f);
        if first_bad.is_none() {
            if cum_f < 1.0 / THRESHOLD {
                first_bad = Some((l, "vanishing"));
            } else if cum_f > THRESHOLD {
                first_bad = Some((l, "exploding"));
            }
        }
    }
    let mut cum_b = 1.0;
    for l in (0..n).rev() {
        cum_b *= layers_out[l]["backward"]["measured_ratio"]
            .as_f64()
            .unwrap_or(1.0);
        layers_out[l]["backward"]["cumulative"] = json!(cum_b);
    }
    if first_bad.is_none() && n > 0 {
        if cum_b < 1.0 / THRESHOLD {
            first_bad = Some((0, "vanishing"));
        } else if cum_b > THRESHOLD {
            first_bad = Some((0, "exploding"));
        }
    }
    let (mut verdict, layer, suggestion) = match first_bad {
        _ if n == 0 => (Value::Null, Value::Null, Value::Null),
        None => (json!("stable"), Value::Null, Value::Null),
        Some((l, v)) => {
            let s = &stages[l];
            let tp = &plan.tensors[s.weight];
            let init = tp.resolved.info.spec.name();
            let (auto, _) = crate::init::auto_choice(req.framework, Some(s.activation));
            let good = auto.name();
            let text = if init == good {
                format!(
                    "layer {} ({}) already uses {init} for {}; the signal is {v} because of the stack's depth or its other layers — check the layers before it, or add normalization",
                    s.index,
                    tp.name,
                    s.activation.name()
                )
            } else {
                format!(
                    "layer {} uses {init} before {}: {good} keeps the variance; `auto` would pick it",
                    s.index,
                    s.activation.name()
                )
            };
            (json!(v), json!(s.index), json!(text))
        }
    };
    // What the verdict is about: the analysed layers out of all of the request's layers, so a
    // "stable" over one dense layer of a bigger model is never read as the whole model's.
    let total_layers = req.layers.len();
    let analysed: Vec<usize> = stages[..n].iter().map(|s| s.index).collect();
    let mut covers = json!({
        "basis": if n > 0 { "measured" } else { "none" },
        "layers": analysed,
        "of_layers": total_layers,
        "complete": n > 0 && not_analysed.is_empty(),
    });
    let forecast = forecast_for(&plan);
    if let Some(f) = &forecast
        && n == 0
    {
        verdict = f["verdict"].clone();
        covers = json!({"basis": "forecast", "layers": "all blocks", "of_layers": f["layers"].as_array().map(|a| a.len()).unwrap_or(0), "complete": true});
    }
    let verdict_note = if verdict.is_null() {
        json!("no verdict: nothing in this model could be analysed (see not_analysed)")
    } else if covers["complete"] == json!(true) {
        Value::Null
    } else {
        json!(format!(
            "the verdict covers only layers {:?} of {total_layers}; the others are listed in not_analysed",
            covers["layers"]
        ))
    };
    let mut out = json!({
        "verdict": verdict,
        "covers": covers,
        "verdict_note": verdict_note,
        "threshold": {"vanishing_below": 1.0 / THRESHOLD, "exploding_above": THRESHOLD,
                       "on": "cumulative std ratio from the input (forward) or from the output (backward)"},
        "first_layer": layer,
        "suggestion": suggestion,
        "batch_size": batch,
        "input": {"distribution": "standard normal", "std": input_std},
        "layers": layers_out,
        "cumulative": {"forward": cum_f, "backward": cum_b},
        "not_analysed": not_analysed,
    });
    if let Some(f) = forecast {
        out["forecast"] = f;
    }
    Ok(out)
}
