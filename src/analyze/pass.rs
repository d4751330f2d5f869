//! The measured pass the report and the calibration share: the walk of the stack into stages
//! (with why a layer is skipped), a stage's input (conv patches), the one W·x summation (same
//! order, so same bits), a tensor's values in logical order, and the seeded normal batches.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::generate::{Generator, Scratch};
use crate::plan::{Layout, Plan, TensorPlan};
use crate::rng::{WordReader, stream_id};
use crate::sample::{Kernel, fill};
use crate::spec::{Activation, LayerKind, Request};

/// One analysed layer: the weight (logical `[out, in·rf]`), its bias and its activation.
pub(super) struct Stage {
    pub(super) index: usize,
    /// Position of the last entry folded into this stage (a standalone activation after it).
    pub(super) end: usize,
    pub(super) kind: &'static str,
    pub(super) weight: usize,
    pub(super) bias: Option<usize>,
    pub(super) activation: Activation,
    pub(super) fan_in: usize,
    pub(super) fan_out: usize,
    pub(super) rf: usize,
}

/// Why a layer of the stack is not a stage of the measured pass. `analyze` reports these and
/// goes on; `calibrate` refuses at the first one.
pub(super) enum Skip {
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
pub(super) fn stages(req: &Request, plan: &Plan) -> (Vec<Stage>, Vec<(usize, Skip)>) {
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
pub(super) fn stage_input(h: Vec<f64>, batch: usize, width: Option<usize>, s: &Stage) -> Vec<f64> {
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
pub(super) fn weighted_sums(x: &[f64], w: &[f32], batch: usize, fi: usize, fo: usize) -> Vec<f64> {
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

pub(super) fn logical_values(g: &Generator, t: usize, tp: &TensorPlan) -> Vec<f32> {
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

pub(super) fn normal_matrix(seed: u64, identity: &str, rows: usize, cols: usize) -> Vec<f64> {
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

pub(super) fn std_of(x: &[f64]) -> f64 {
    let n = x.len().max(1) as f64;
    let m = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt()
}
