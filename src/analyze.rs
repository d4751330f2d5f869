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
//!
//! This file holds the limits, the forecast entry point and the histograms; the rest is a file
//! per job:
//!
//! - `mean_field`: the activations, their derivatives and the Gaussian expectation the
//!   predictions (report and forecast) are computed with;
//! - `pass`: the measured pass both the report and the calibration run (stages, a stage's
//!   input, the W·x summation, a tensor's logical values, the seeded batches);
//! - `report`: the `/v1/analyze` report (`analyze`): its bounds, forward and backward passes,
//!   predictions beside measurements, verdict and suggestion;
//! - `adaptive`: the adaptive recipe's calibration (`calibrate`);
//! - `forecast`: the mean-field residual-stream forecast of an `hf_config` model.

mod adaptive;
mod forecast;
mod mean_field;
mod pass;
mod report;

pub use adaptive::calibrate;
pub use report::analyze;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::generate::{Generator, Scratch};
use crate::plan::Plan;

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

/// The smallest batch of the measured pass.
pub const MIN_BATCH: usize = 8;

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
