//! Model-level rewrites of resolved initializers, on the whole model before `only` and
//! `shard`: the named depth/width recipes (`recipe`) and the scales of `recipe: adaptive`
//! (measured by `analyze::calibrate`, which `pipeline::build` runs above `plan`).

use super::{Draft, Scale};
use crate::error::{Result, SpecError};
use crate::init::{self, ValueSource};
use crate::recipe::ModelDims;
use crate::spec::{LayerKind, Request};
use serde_json::{Value, json};

/// `recipe`: the one place a recipe rewrites resolved initializers, on the whole model (before
/// `only` and `shard`), so depth and fans are the full model's and a shard is a slice of it.
/// Raw `tensors` keep the initializer they name; layers the recipe does not cover (norms,
/// recurrent cells) keep theirs, and the rewritten ones carry `init.recipe` in the plan.
pub(super) fn apply_recipe(req: &Request, drafts: &mut [Draft]) -> Result<()> {
    use crate::recipe::{self, Role, Target};
    let Some(rc) = &req.recipe else {
        return Ok(());
    };
    if let Some(hf) = &req.hf {
        let t = hf.arch.model_type();
        if !recipe::HF_RECIPE_MODEL_TYPES.contains(&t) {
            return Err(SpecError::unsupported_layer_type(
                "recipe",
                format!(
                    "recipes are defined for the hf_config model types {}; `{t}` is not one of them",
                    recipe::HF_RECIPE_MODEL_TYPES.join(", ")
                ),
            ));
        }
    }
    let dims = model_dims(req);
    // Weight layers of a stack, in order: a layer's ordinal is its depth for the recipe.
    let weight_layers: Vec<usize> = req
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            matches!(
                l.kind,
                LayerKind::Dense { .. } | LayerKind::Conv { .. } | LayerKind::Attention(_)
            )
        })
        .map(|(i, _)| i)
        .collect();
    for d in drafts.iter_mut() {
        let (role, layer, fans) = if d.origin == "hf_config" {
            (
                recipe::hf_role(&d.name),
                recipe::hf_layer(&d.name),
                recipe::hf_fans(&d.name, &d.logical_shape),
            )
        } else if let Some(k) = d
            .origin
            .strip_prefix("layers[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|r| r.parse::<usize>().ok())
        {
            let tensor_role = d.identity.rsplit_once("layer/").map(|x| x.1).unwrap_or("");
            let tensor_role = tensor_role.split_once('/').map(|x| x.1).unwrap_or("");
            let ordinal = weight_layers.iter().position(|&i| i == k);
            let ls = &d.logical_shape;
            let torch_fans = FanRuleFans::torch(ls);
            let is_bias = tensor_role.ends_with("bias");
            let role = match &req.layers[k].kind {
                LayerKind::Attention(_) if tensor_role == "bias_k" || tensor_role == "bias_v" => {
                    Role::Untouched
                }
                LayerKind::Dense { .. } | LayerKind::Conv { .. } | LayerKind::Attention(_)
                    if is_bias =>
                {
                    Role::Bias
                }
                LayerKind::Embedding { .. } => Role::Embedding,
                LayerKind::Dense { .. } | LayerKind::Conv { .. } => {
                    if ordinal.map(|o| o + 1) == Some(weight_layers.len()) {
                        Role::Readout
                    } else if ordinal == Some(0) {
                        Role::Input
                    } else {
                        Role::InProj
                    }
                }
                LayerKind::Attention(_) => match tensor_role {
                    "in_proj_weight" => Role::PackedQkv {
                        query_first_rows: true,
                    },
                    "q_proj_weight" | "query/kernel" => Role::Query,
                    "k_proj_weight" | "key/kernel" => Role::Key,
                    "v_proj_weight" | "value/kernel" => Role::Value,
                    "out_proj.weight" | "output/kernel" => Role::OutProj,
                    _ => Role::Untouched,
                },
                _ => Role::Untouched,
            };
            let fans = match (tensor_role, ls.as_slice()) {
                ("query/kernel" | "key/kernel" | "value/kernel", [a, b, c]) => {
                    (*a as f64, (*b * *c) as f64)
                }
                ("output/kernel", [a, b, c]) => ((*a * *b) as f64, *c as f64),
                _ => torch_fans,
            };
            (role, ordinal.map(|o| o as u64), fans)
        } else {
            continue;
        };
        let t = Target {
            name: &d.name,
            role,
            layer,
            fan_in: fans.0,
            fan_out: fans.1,
        };
        recipe::apply_one(
            rc,
            &t,
            &dims,
            req.framework,
            &d.shape,
            &d.logical_shape,
            &mut d.resolved,
        )?;
        // μP zeroes the query third of a PyTorch packed in_proj_weight [3E, E] (contiguous rows).
        if let (
            crate::recipe::Recipe::Mup {
                query_zero_init: true,
                ..
            },
            Role::PackedQkv {
                query_first_rows: true,
            },
        ) = (rc, role)
        {
            let rows = d.logical_shape[0] / 3;
            let end = rows.saturating_mul(d.logical_shape.get(1).copied().unwrap_or(1));
            let base = init::Element::of(&d.resolved.source).ok_or_else(|| {
                SpecError::initializer_mismatch(
                    "recipe.query_zero_init",
                    format!(
                        "query_zero_init zeroes rows of `{}`, which uses {}: rows of a whole-tensor or structured initializer cannot be replaced; give it a constant or a random distribution",
                        d.name,
                        d.resolved.info.spec.name()
                    ),
                )
            })?;
            d.resolved.source = ValueSource::WithConstantRange {
                base,
                start: 0,
                end,
                value: 0.0,
            };
            if let Some(Value::Object(m)) = d.resolved.info.recipe.as_mut() {
                m.insert(
                    "query_zero_init".into(),
                    json!(format!(
                        "logical elements [0, {end}) (the query rows) are 0"
                    )),
                );
            }
        }
    }
    Ok(())
}

/// Fans of a PyTorch-layout logical shape `[out, in, *k]` (1-D: n, n).
pub(super) struct FanRuleFans;

impl FanRuleFans {
    fn torch(ls: &[u64]) -> (f64, f64) {
        match ls.len() {
            0 => (1.0, 1.0),
            1 => (ls[0] as f64, ls[0] as f64),
            _ => init::FanRule::Torch.fans(ls).unwrap_or((1.0, 1.0)),
        }
    }
}

/// `recipe: adaptive`, the half inside `plan`: scales each named weight by its measured factor
/// and records the calibration's note as its `init.recipe`. The measuring is
/// `analyze::calibrate`, on the whole model (before `only`/`shard`), run by `pipeline::build`
/// between `plan::draft` and this.
pub(super) fn apply_scales(drafts: &mut [Draft], scales: Vec<Scale>) -> Result<()> {
    // Names are unique (checked by `plan::draft`): an index instead of a scan per scale, which
    // made 50,000 layers take 24 s.
    let by_name: std::collections::HashMap<String, usize> = drafts
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.clone(), i))
        .collect();
    for Scale {
        tensor,
        factor,
        note,
    } in scales
    {
        let Some(d) = by_name.get(&tensor).map(|&i| &mut drafts[i]) else {
            continue;
        };
        let mut r = crate::recipe::scale_resolved(&d.resolved, factor).ok_or_else(|| {
            SpecError::initializer_mismatch(
                d.origin.clone(),
                format!(
                    "`{}` uses {}, which has no scale to calibrate; give it a scaled initializer",
                    d.name,
                    d.resolved.info.spec.name()
                ),
            )
        })?;
        r.info.recipe = Some(note);
        d.resolved = r;
    }
    Ok(())
}

/// The model-level numbers a recipe takes from the request: an `hf_config`'s own (blocks, d_model,
/// `initializer_range`), else the stack's weight layers and the first one's width.
fn model_dims(req: &Request) -> ModelDims {
    if let Some(hf) = &req.hf {
        let (l, h, r) = hf.dims();
        return ModelDims {
            num_layers: l,
            hidden: Some(h),
            init_range: Some(r),
        };
    }
    let weights: Vec<&LayerKind> = req
        .layers
        .iter()
        .map(|l| &l.kind)
        .filter(|k| {
            matches!(
                k,
                LayerKind::Dense { .. } | LayerKind::Conv { .. } | LayerKind::Attention(_)
            )
        })
        .collect();
    let hidden = weights.first().and_then(|k| match k {
        LayerKind::Dense { out_features, .. } => Some(*out_features),
        LayerKind::Conv { out_channels, .. } => Some(*out_channels),
        LayerKind::Attention(a) => Some(a.embed_dim),
        _ => None,
    });
    ModelDims {
        num_layers: weights.len() as u64,
        hidden,
        init_range: None,
    }
}
