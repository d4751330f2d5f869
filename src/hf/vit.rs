//! ViT (`modeling_vit.py`): `ViTModel` (with its pooler) and `ViTForImageClassification` (no
//! pooler, `classifier` Linear(hidden, num_labels)). `ViTPreTrainedModel._init_weights`: the
//! generic rule for Linear and the patch Conv2d (~ N(0, σ), biases 0) and LayerNorm (1, 0),
//! then `trunc_normal_(std=σ)` for `position_embeddings` and `cls_token`, with torch's
//! default absolute bounds a = -2, b = 2. The `mask_token` of masked image modelling is not
//! part of these classes.

use serde_json::Value;

use super::{
    Arch, BIAS, Cfg, Head, HfInit, HfTensor, LINEAR, layer_norm, linear, linear_head, normal, t,
};
use crate::error::{Result, SpecError};

/// Serialized field by field as the canonical `hf_config` keys (`HfModel::to_json`): the
/// field names are transformers' config keys.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ViTConfig {
    pub hidden_size: u64,
    pub num_hidden_layers: u64,
    pub num_attention_heads: u64,
    pub intermediate_size: u64,
    pub image_size: [u64; 2],
    pub patch_size: [u64; 2],
    pub num_channels: u64,
    pub qkv_bias: bool,
    pub pooler_output_size: u64,
    pub initializer_range: f64,
}

const TRUNC: &str =
    "trunc_normal_(std=initializer_range, a=-2, b=2) (ViTPreTrainedModel._init_weights)";

impl ViTConfig {
    pub(super) fn parse(c: &Cfg<'_>) -> Result<ViTConfig> {
        let hidden_size = c.size(&["hidden_size"], 768)?;
        let num_attention_heads = c.size(&["num_attention_heads"], 12)?;
        c.divisible(
            hidden_size,
            "hidden_size",
            num_attention_heads,
            "num_attention_heads",
        )?;
        let image_size = pair(c, "image_size", 224)?;
        let patch_size = pair(c, "patch_size", 16)?;
        for k in 0..2 {
            if patch_size[k] > image_size[k] {
                return Err(SpecError::inconsistent_sizes(
                    c.path("patch_size"),
                    format!(
                        "patch_size {:?} is larger than image_size {:?}",
                        patch_size, image_size
                    ),
                ));
            }
        }
        c.unsupported_if(
            "use_mask_token",
            true,
            "the mask_token of ViTForMaskedImageModeling is not generated",
        )?;
        // ViT's trunc_normal_ embeddings read config.initializer_range as is; at 0 torch's
        // trunc_normal_ divides by zero (ZeroDivisionError in transformers 5.24), so there is
        // no file to match.
        let initializer_range = c.init_range()?.unwrap_or(0.02);
        if initializer_range == 0.0 {
            return Err(SpecError::invalid_value(
                c.path("initializer_range"),
                "ViT needs initializer_range > 0: its trunc_normal_(std=initializer_range) embeddings fail at 0 in transformers",
            ));
        }
        Ok(ViTConfig {
            hidden_size,
            num_hidden_layers: c.size(&["num_hidden_layers"], 12)?,
            num_attention_heads,
            intermediate_size: c.size(&["intermediate_size"], 3072)?,
            image_size,
            patch_size,
            num_channels: c.size(&["num_channels"], 3)?,
            qkv_bias: c.bool("qkv_bias", true)?,
            pooler_output_size: c.size(&["pooler_output_size"], hidden_size)?,
            initializer_range,
        })
    }

    /// `tensors(arch, _).len()` in closed form.
    pub(super) fn tensor_count(&self, arch: Arch) -> u64 {
        let per_layer = 3 * (1 + self.qkv_bias as u64) + 10;
        let head = match arch.head {
            Head::Base | Head::ImageCls => 2,
            _ => 0,
        };
        6u64.saturating_add(self.num_hidden_layers.saturating_mul(per_layer))
            .saturating_add(head)
    }

    pub(super) fn tensors(&self, arch: Arch, num_labels: u64) -> Vec<HfTensor> {
        let r = self.initializer_range;
        let std = r;
        let w = || normal(std, LINEAR);
        let zero = HfInit::Zeros { why: BIAS };
        let trunc = HfInit::TruncNormal {
            std: r,
            a: -2.0,
            b: 2.0,
            why: TRUNC,
        };
        let p = if arch.head == Head::Base { "" } else { "vit." };
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let patches = (self.image_size[0] / self.patch_size[0])
            .saturating_mul(self.image_size[1] / self.patch_size[1]);
        let mut out = vec![
            t(format!("{p}embeddings.cls_token"), vec![1, 1, h], trunc),
            t(
                format!("{p}embeddings.position_embeddings"),
                vec![1, patches.saturating_add(1), h],
                trunc,
            ),
            t(
                format!("{p}embeddings.patch_embeddings.projection.weight"),
                vec![h, self.num_channels, self.patch_size[0], self.patch_size[1]],
                w(),
            ),
            t(
                format!("{p}embeddings.patch_embeddings.projection.bias"),
                vec![h],
                zero,
            ),
        ];
        let ln = |out: &mut Vec<HfTensor>, base: String| layer_norm(out, &base, h);
        let lin = |out: &mut Vec<HfTensor>, base: String, o: u64, i: u64, bias: bool| {
            linear(out, &base, o, i, w(), bias)
        };
        for l in 0..self.num_hidden_layers {
            let b = format!("{p}encoder.layer.{l}");
            for q in ["query", "key", "value"] {
                lin(
                    &mut out,
                    format!("{b}.attention.attention.{q}"),
                    h,
                    h,
                    self.qkv_bias,
                );
            }
            lin(&mut out, format!("{b}.attention.output.dense"), h, h, true);
            lin(&mut out, format!("{b}.intermediate.dense"), i, h, true);
            lin(&mut out, format!("{b}.output.dense"), h, i, true);
            ln(&mut out, format!("{b}.layernorm_before"));
            ln(&mut out, format!("{b}.layernorm_after"));
        }
        ln(&mut out, format!("{p}layernorm"));
        match arch.head {
            Head::Base => lin(
                &mut out,
                "pooler.dense".into(),
                self.pooler_output_size,
                h,
                true,
            ),
            Head::ImageCls => linear_head(&mut out, "classifier", num_labels, h, std, true),
            _ => {}
        }
        out
    }
}

/// `image_size`/`patch_size`: an int or a `[height, width]` pair (`ViTPatchEmbeddings`).
fn pair(c: &Cfg<'_>, key: &'static str, default: u64) -> Result<[u64; 2]> {
    match c.get(key) {
        None => Ok([default, default]),
        Some(Value::Array(a)) if a.len() == 2 => {
            let p = c.path(key);
            Ok([
                crate::terms::fields::positive_size(&a[0], &format!("{p}[0]"))?,
                crate::terms::fields::positive_size(&a[1], &format!("{p}[1]"))?,
            ])
        }
        Some(Value::Array(_)) => Err(SpecError::invalid_value(
            c.path(key),
            format!("{key} must be an integer or a [height, width] pair"),
        )),
        Some(_) => {
            let s = c.size(&[key], default)?;
            Ok([s, s])
        }
    }
}
