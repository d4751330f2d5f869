//! Signal-propagation analysis (`POST /v1/analyze`, `paraminit analyze`): for a sequential stack
//! of dense and conv layers, the mean-field prediction of each layer's forward and backward
//! variance ratio and the same quantities measured by pushing a seeded standard-normal batch
//! through the actually generated weights, with a verdict and a suggestion.
//!
//! Mean field (Poole et al. 2016; He et al. 2015 for ReLU; Glorot & Bengio 2010; Klambauer et
//! al. 2017 for SELU): with pre-activation variance q, a layer of weight variance σ² and fan-in
//! n gives the next pre-activation variance q' = n·σ²·E[φ(z)²] + σ_b² (z ~ N(0, q)); the
//! gradient with respect to its input scales by n_out·σ²·E[φ'(z)²]. Expectations are computed by
//! Simpson quadrature over ±12√q.
//!
//! The measured pass is shared with `adaptive::calibrate` (the adaptive recipe): the walk of
//! the stack into stages (`stages`, with what each skips), a stage's input (`stage_input`, conv
//! patches) and the one W·x summation (`weighted_sums`). What stays apart is what differs in
//! arithmetic or policy: the report adds the bias to each sum and keeps every activation for
//! its backward pass; the calibration scales W·x before adding the bias, uses a fixed batch
//! with its own bounds, and refuses what the report lists as not analysed.

use std::collections::HashMap;
mod adaptive;
mod forecast;

pub use adaptive::calibrate;

use std::sync::Arc;

use rayon::prelude::*;
use serde_json::{Value, json};

use crate::error::{Result, SpecError};
use crate::generate::{Generator, Scratch};
use crate::init::{ValueSource, WholeTensor};
use crate::plan::{Layout, Plan, TensorPlan};
use crate::rng::{WordReader, stream_id};
use crate::sample::{Kernel, fill};
use crate::spec::{Activation, LayerKind, Request};

/// Default and largest batch of the measured pass.
pub const DEFAULT_BATCH: usize = 128;
pub const MAX_BATCH: usize = 1024;
/// Bound on batch × (sum of weight elements): the measured pass costs about this many
/// multiply-adds forward and again backward.
pub const MAX_WORK: u64 = 1 << 30;
/// A model whose cumulative forward or backward std ratio leaves [1/THRESHOLD, THRESHOLD]
/// is called vanishing or exploding.
pub const THRESHOLD: f64 = 100.0;
/// Values kept per tensor for the histograms.
pub const HISTOGRAM_SAMPLE: usize = 65536;
/// Values sampled for the histograms over all tensors: a request of many tensors gets fewer
/// per tensor (each tensor's `sampled` says how many).
pub const HISTOGRAM_BUDGET: usize = 1 << 22;
/// Weight and bias elements the measured pass holds (as f32) for all analysed layers at once:
/// 2^24 elements, 64 MiB.
pub const MAX_ANALYZED_WEIGHTS: u64 = 1 << 24;
/// Activation values (batch × Σ (fan_in + fan_out) over the analysed layers, f64) kept for the
/// backward pass: 2^23 values, 64 MiB, plus the same again transiently.
pub const MAX_ANALYZED_ACTIVATIONS: u64 = 1 << 23;
pub const HISTOGRAM_BINS: usize = 40;

fn act_value(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Linear | Activation::Softmax => x,
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu { negative_slope } => {
            if x >= 0.0 {
                x
            } else {
                negative_slope * x
            }
        }
        Activation::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        Activation::Silu => x / (1.0 + libm::exp(-x)),
        Activation::Elu => {
            if x >= 0.0 {
                x
            } else {
                libm::expm1(x)
            }
        }
        Activation::Selu => {
            const L: f64 = 1.050_700_987_355_480_5;
            const A: f64 = 1.673_263_242_354_377_3;
            if x >= 0.0 {
                L * x
            } else {
                L * A * libm::expm1(x)
            }
        }
        Activation::Tanh => libm::tanh(x),
        Activation::Sigmoid => 1.0 / (1.0 + libm::exp(-x)),
        Activation::Softplus => {
            if x > 30.0 {
                x
            } else {
                libm::log1p(libm::exp(x))
            }
        }
        Activation::Mish => {
            x * libm::tanh(if x > 30.0 {
                x
            } else {
                libm::log1p(libm::exp(x))
            })
        }
    }
}

/// Derivative by a central difference for the smooth ones, exactly for the piecewise ones.
fn act_grad(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Linear | Activation::Softmax => 1.0,
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::LeakyRelu { negative_slope } => {
            if x > 0.0 {
                1.0
            } else {
                negative_slope
            }
        }
        _ => {
            let h = 1e-5 * (1.0 + x.abs());
            (act_value(a, x + h) - act_value(a, x - h)) / (2.0 * h)
        }
    }
}

/// E[f(z)] for z ~ N(0, q), Simpson's rule on ±12σ with 2400 intervals.
fn gauss_expect(q: f64, f: impl Fn(f64) -> f64) -> f64 {
    if q <= 0.0 {
        return f(0.0);
    }
    let s = q.sqrt();
    let n = 2400;
    let (a, b) = (-12.0, 12.0);
    let h = (b - a) / n as f64;
    let mut sum = 0.0;
    for i in 0..=n {
        let t = a + i as f64 * h;
        let w = if i == 0 || i == n {
            1.0
        } else if i % 2 == 1 {
            4.0
        } else {
            2.0
        };
        sum += w * f(s * t) * libm::exp(-0.5 * t * t);
    }
    sum * h / 3.0 / (2.0 * std::f64::consts::PI).sqrt()
}

/// One analysed layer: the weight (logical `[out, in·rf]`), its bias and its activation.
struct Stage {
    index: usize,
    /// Position of the last entry folded into this stage (a standalone activation after it).
    end: usize,
    kind: &'static str,
    weight: usize,
    bias: Option<usize>,
    activation: Activation,
    fan_in: usize,
    fan_out: usize,
    rf: usize,
}

/// Why a layer of the stack is not a stage of the measured pass. `analyze` reports these and
/// goes on; `calibrate` refuses at the first one.
enum Skip {
    /// A dense or conv layer without a weight in the plan (`only` left it out).
    NoWeight,
    Grouped,
    /// An activation that does not directly follow a dense/conv layer with a linear output.
    LoneActivation,
    /// Any other layer type.
    NotCovered,
}

/// The stack of `req` (whose tensors are `plan`'s) as stages of the measured pass, and the
/// skipped layers with why, both in layer order. A standalone activation right after a
/// dense/conv layer without its own is folded into it; dropout (identity at initialization)
/// keeps the stage adjacent for the next activation.
fn stages(req: &Request, plan: &Plan) -> (Vec<Stage>, Vec<(usize, Skip)>) {
    // (origin, role) → the first tensor with them, built once: a lookup per layer instead of a
    // scan of every tensor (50,000 layers took 24 s). Every identity is `<kind>/.../<role>`.
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
    let mut skipped = Vec::new();
    for (k, layer) in req.layers.iter().enumerate() {
        match &layer.kind {
            LayerKind::Dense {
                in_features,
                out_features,
                activation,
                ..
            } => match find(k, "weight") {
                Some(w) => stages.push(Stage {
                    index: k,
                    end: k,
                    kind: "dense",
                    weight: w,
                    bias: find(k, "bias"),
                    activation: activation.unwrap_or(Activation::Linear),
                    fan_in: *in_features as usize,
                    fan_out: *out_features as usize,
                    rf: 1,
                }),
                None => skipped.push((k, Skip::NoWeight)),
            },
            LayerKind::Conv {
                in_channels,
                out_channels,
                kernel_size,
                groups,
                activation,
                ..
            } => {
                let rf: u64 = kernel_size.iter().product();
                match (*groups, find(k, "weight")) {
                    (1, Some(w)) => stages.push(Stage {
                        index: k,
                        end: k,
                        kind: layer.type_name(),
                        weight: w,
                        bias: find(k, "bias"),
                        activation: activation.unwrap_or(Activation::Linear),
                        fan_in: (in_channels * rf) as usize,
                        fan_out: *out_channels as usize,
                        rf: rf as usize,
                    }),
                    (1, None) => skipped.push((k, Skip::NoWeight)),
                    _ => skipped.push((k, Skip::Grouped)),
                }
            }
            LayerKind::Activation(a) => {
                if let Some(last) = stages.last_mut()
                    && last.activation == Activation::Linear
                    && last.end + 1 == k
                {
                    last.activation = *a;
                    last.end = k;
                } else {
                    skipped.push((k, Skip::LoneActivation));
                }
            }
            LayerKind::Dropout { .. } => {
                if let Some(last) = stages.last_mut()
                    && last.end + 1 == k
                {
                    last.end = k;
                }
            }
            _ => skipped.push((k, Skip::NotCovered)),
        }
    }
    (stages, skipped)
}

/// The input of a stage from the previous stage's output `h` (`batch` rows of `width`): `h`
/// itself, or for a conv that chains from it, patches of `rf` positions whose entries are
/// independent (mean field), taken as `rf` differently rotated copies of the batch:
/// patch[b, c·rf + t] = h[(b + t) mod batch, c]. Only copies: no arithmetic.
fn stage_input(h: Vec<f64>, batch: usize, width: Option<usize>, s: &Stage) -> Vec<f64> {
    let Some(width) = width else { return h };
    if s.rf == 1 || s.fan_in != width * s.rf {
        return h;
    }
    let mut patch = vec![0f64; batch * s.fan_in];
    for b in 0..batch {
        for c in 0..width {
            for t in 0..s.rf {
                patch[b * s.fan_in + c * s.rf + t] = h[((b + t) % batch) * width + c];
            }
        }
    }
    patch
}

/// W·x for each of the `batch` rows of `x` (`[batch, fi]`) with the logical weight `w`
/// (`[fo, fi]`): out[b·fo + o] = Σ_i w[o·fi + i]·x[b·fi + i] in f64, summed in i order from 0,
/// one thread per row, so the bits are the same for any thread count. The one summation both
/// the report and the calibration measure with.
fn weighted_sums(x: &[f64], w: &[f32], batch: usize, fi: usize, fo: usize) -> Vec<f64> {
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
    u
}

fn logical_values(g: &Generator, t: usize, tp: &TensorPlan) -> Vec<f32> {
    let mut out = vec![0f32; tp.numel as usize];
    g.fill(t, 0, &mut out, &mut Scratch::default());
    match &tp.layout {
        Layout::Identity => out,
        Layout::Permuted { perm } => {
            // Output axis k is logical axis perm[k]: scatter back to PyTorch order.
            let lshape = &tp.logical_shape;
            let mut lstrides = vec![1u64; lshape.len()];
            for i in (0..lshape.len().saturating_sub(1)).rev() {
                lstrides[i] = lstrides[i + 1] * lshape[i + 1];
            }
            let mut logical = vec![0f32; out.len()];
            for (i, v) in out.iter().enumerate() {
                let mut rem = i as u64;
                let mut off = 0u64;
                for k in (0..tp.shape.len()).rev() {
                    off += (rem % tp.shape[k]) * lstrides[perm[k]];
                    rem /= tp.shape[k];
                }
                logical[off as usize] = *v;
            }
            logical
        }
    }
}

fn normal_matrix(seed: u64, identity: &str, rows: usize, cols: usize) -> Vec<f64> {
    let mut r = WordReader::new(seed, stream_id(identity));
    let mut v = vec![0f32; rows * cols];
    fill(
        &mut r,
        &Kernel::Normal {
            mean: 0.0,
            std: 1.0,
        },
        0,
        &mut v,
    );
    v.into_iter().map(f64::from).collect()
}

fn std_of(x: &[f64]) -> f64 {
    let n = x.len().max(1) as f64;
    let m = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt()
}

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

/// The smallest batch of the measured pass.
pub const MIN_BATCH: usize = 8;

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

/// The residual-stream forecast of an `hf_config` request, on the whole model (a request with
/// `only` or `shard` is forecast as the full model it is part of).
fn forecast_for(plan: &Plan) -> Option<Value> {
    plan.request.hf.as_ref()?;
    if plan.request.only.is_none() && plan.request.shard.is_none() {
        return forecast::forecast(plan);
    }
    let mut r = plan.request.clone();
    r.only = None;
    r.shard = None;
    // `pipeline::build` without the calibration step (`pipeline` sits above `analyze`): an
    // adaptive request has no full-model plan here because the calibration refuses
    // `hf_config` models, so it forecasts nothing, as a refused plan always has.
    let limits = crate::plan::Limits::UNLIMITED;
    match crate::plan::draft(r, &limits, &crate::plan::Cancel::new()).ok()? {
        crate::plan::Drafted::Ready(d) => forecast::forecast(&d.finish().ok()?),
        crate::plan::Drafted::Uncalibrated(_) => None,
    }
}

/// The forecast alone, for comparing recipes (`POST /v1/analyze` includes it for hf_config).
pub fn forecast(plan: &Plan) -> Option<Value> {
    forecast_for(plan)
}

/// Histograms of each tensor's values (its first `HISTOGRAM_SAMPLE` elements), for the explorer.
pub fn histograms(plan: Arc<Plan>) -> Value {
    let g = Generator::new(plan.clone());
    let per_tensor = (HISTOGRAM_BUDGET / plan.tensors.len().max(1)).clamp(1, HISTOGRAM_SAMPLE);
    let items: Vec<Value> = plan
        .tensors
        .iter()
        .enumerate()
        .map(|(t, tp)| {
            let n = (tp.numel.min(per_tensor as u64)) as usize;
            let mut v = vec![0f32; n];
            g.fill(t, 0, &mut v, &mut Scratch::default());
            let (lo, hi) = v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            let mut counts = vec![0u64; HISTOGRAM_BINS];
            if n > 0 && hi > lo {
                let w = (hi - lo) as f64 / HISTOGRAM_BINS as f64;
                for &x in &v {
                    let i = (((x - lo) as f64 / w) as usize).min(HISTOGRAM_BINS - 1);
                    counts[i] += 1;
                }
            } else if n > 0 {
                counts[HISTOGRAM_BINS / 2] = n as u64;
            }
            json!({"name": tp.name, "sampled": n, "min": if n > 0 { lo } else { 0.0 }, "max": if n > 0 { hi } else { 0.0 }, "counts": counts})
        })
        .collect();
    json!(items)
}
