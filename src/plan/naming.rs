//! Tensor names: each framework's automatic layer names (`0`, `dense_1`, `Dense_1`) and the
//! variable name of each tensor role (`weight`/`kernel`/`kernel`, …) under each framework.

use std::collections::HashMap;

use super::recurrent;
use crate::spec::{Layer, LayerKind, NormKind};
use crate::terms::Framework;

/// Per-framework automatic layer names (`0`, `dense_1`, `Dense_1`).
pub(super) struct Namer {
    pub(super) framework: Framework,
    pub(super) counts: HashMap<&'static str, u64>,
}

impl Namer {
    /// The next automatic name for a class prefix (`lstm_1`, `LSTMCell_2`): the sub-layers a
    /// Keras/Flax stacked or bidirectional recurrent entry expands into.
    pub(super) fn next(&mut self, base: &'static str) -> String {
        let c = self.counts.entry(base).or_insert(0);
        let name = match self.framework {
            Framework::Flax => format!("{base}_{c}"),
            _ if *c == 0 => base.to_string(),
            _ => format!("{base}_{c}"),
        };
        *c += 1;
        name
    }

    pub(super) fn prefix(&mut self, position: usize, layer: &Layer) -> String {
        if let Some(n) = &layer.name {
            return n.clone();
        }
        match self.framework {
            Framework::PyTorch => position.to_string(),
            Framework::Keras => {
                let base = keras_class(&layer.kind);
                let c = self.counts.entry(base).or_insert(0);
                let name = if *c == 0 {
                    base.to_string()
                } else {
                    format!("{base}_{c}")
                };
                *c += 1;
                name
            }
            Framework::Flax => {
                let base = flax_class(&layer.kind);
                let c = self.counts.entry(base).or_insert(0);
                let name = format!("{base}_{c}");
                *c += 1;
                name
            }
        }
    }
}

/// Keras 3 auto-name prefix: the snake-cased class name (`keras.src.utils.naming`).
pub(super) fn keras_class(k: &LayerKind) -> &'static str {
    match k {
        LayerKind::Dense { .. } => "dense",
        LayerKind::Conv { dims: 1, .. } => "conv1d",
        LayerKind::Conv { dims: 2, .. } => "conv2d",
        LayerKind::Conv { .. } => "conv3d",
        LayerKind::Embedding { .. } => "embedding",
        LayerKind::Norm {
            kind: NormKind::Layer,
            ..
        } => "layer_normalization",
        LayerKind::Norm {
            kind: NormKind::Rms,
            ..
        } => "rms_normalization",
        LayerKind::Norm {
            kind: NormKind::Batch,
            ..
        } => "batch_normalization",
        LayerKind::Activation(_) | LayerKind::Dropout { .. } => "",
        LayerKind::Recurrent(r) => recurrent::keras_class(r),
        LayerKind::Attention(_) => "multi_head_attention",
    }
}

/// Flax linen auto-name prefix: the module class name (`Dense_0`).
pub(super) fn flax_class(k: &LayerKind) -> &'static str {
    match k {
        LayerKind::Dense { .. } => "Dense",
        LayerKind::Conv { .. } => "Conv",
        LayerKind::Embedding { .. } => "Embed",
        LayerKind::Norm {
            kind: NormKind::Layer,
            ..
        } => "LayerNorm",
        LayerKind::Norm {
            kind: NormKind::Rms,
            ..
        } => "RMSNorm",
        LayerKind::Norm {
            kind: NormKind::Batch,
            ..
        } => "BatchNorm",
        LayerKind::Activation(_) | LayerKind::Dropout { .. } => "",
        LayerKind::Recurrent(r) => recurrent::flax_class(r),
        LayerKind::Attention(_) => "MultiHeadDotProductAttention",
    }
}

/// A tensor role: its framework-neutral name and each framework's variable name.
pub(super) struct Role {
    pub(super) neutral: &'static str,
    pub(super) keras: &'static str,
    pub(super) flax: &'static str,
    /// Flax collection (`params` or `batch_stats`).
    pub(super) flax_collection: &'static str,
}

pub(super) const fn role(
    neutral: &'static str,
    keras: &'static str,
    flax: &'static str,
    flax_collection: &'static str,
) -> Role {
    Role {
        neutral,
        keras,
        flax,
        flax_collection,
    }
}

pub(super) const WEIGHT: Role = role("weight", "kernel", "kernel", "params");

pub(super) const BIAS: Role = role("bias", "bias", "bias", "params");

pub(super) const EMBED: Role = role("weight", "embeddings", "embedding", "params");

pub(super) const NORM_W: Role = role("weight", "gamma", "scale", "params");

pub(super) const RMS_W: Role = role("weight", "scale", "scale", "params");

pub(super) const NORM_B: Role = role("bias", "beta", "bias", "params");

pub(super) const RUN_MEAN: Role = role("running_mean", "moving_mean", "mean", "batch_stats");

pub(super) const RUN_VAR: Role = role("running_var", "moving_variance", "var", "batch_stats");

pub(super) const NUM_BATCHES: Role = role("num_batches_tracked", "", "", "");

pub(super) fn tensor_name(fw: Framework, prefix: &str, role: &Role) -> String {
    match fw {
        Framework::PyTorch => format!("{prefix}.{}", role.neutral),
        Framework::Keras => format!("{prefix}/{}", role.keras),
        Framework::Flax => format!("{}/{prefix}/{}", role.flax_collection, role.flax),
    }
}
