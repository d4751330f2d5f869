//! Parsing the request's `"recipe"`: a recipe name, or an object with `name` and parameters
//! (each defaulted as its source framework defaults it), into a `Recipe`.

use serde_json::{Value, json};

use super::{NAMES, NeoxMethod, Recipe};
use crate::error::{Result, SpecError};
use crate::terms::fields::{Obj, join, wrong_type};

impl NeoxMethod {
    fn parse(s: &str, path: &str) -> Result<Self> {
        Ok(match s {
            "normal" => NeoxMethod::Normal,
            "scaled_normal" => NeoxMethod::ScaledNormal,
            "small_init" => NeoxMethod::SmallInit,
            "wang_init" => NeoxMethod::WangInit,
            _ => {
                return Err(SpecError::invalid_value(
                    path,
                    format!(
                        "unknown GPT-NeoX init method `{s}`; use normal, scaled_normal, small_init or wang_init"
                    ),
                ));
            }
        })
    }
}

fn positive(o: &Obj<'_>, key: &'static str, default: f64) -> Result<f64> {
    match o.f64_any(&[key])? {
        None => Ok(default),
        Some((x, p)) if x > 0.0 && x.is_finite() => {
            let _ = p;
            Ok(x)
        }
        Some((x, p)) => Err(SpecError::invalid_value(
            p,
            format!("must be a positive number, got {x}"),
        )),
    }
}

fn opt_layers(o: &Obj<'_>) -> Result<Option<u64>> {
    match o.get_any(&["num_layers"])? {
        None | Some((Value::Null, _)) => Ok(None),
        Some(_) => Ok(o.size_any(&["num_layers"])?.map(|x| x.0)),
    }
}

/// Parses `recipe`: a name or `{"name": …, parameters}`.
pub fn parse(v: &Value, path: &str) -> Result<Recipe> {
    let obj_value;
    let v = match v {
        Value::String(s) => {
            obj_value = json!({ "name": s });
            &obj_value
        }
        Value::Object(_) => v,
        other => return Err(wrong_type(path, "a recipe name or object", other)),
    };
    let o = Obj::new(v, path)?;
    let (name, name_path) = o.str_any(&["name"])?.ok_or_else(|| {
        SpecError::missing_field(
            join(path, "name"),
            format!("a recipe needs a `name`: one of {}", NAMES.join(", ")),
        )
    })?;
    let r = match name {
        "megatron_scaled" | "megatron" => Recipe::MegatronScaled {
            sigma: positive(&o, "sigma", 0.02)?,
            num_layers: opt_layers(&o)?,
        },
        "gpt_neox" | "neox" => {
            let m = |key: &'static str, default: NeoxMethod| -> Result<NeoxMethod> {
                match o.str_any(&[key])? {
                    None => Ok(default),
                    Some((s, p)) => NeoxMethod::parse(s, &p),
                }
            };
            Recipe::GptNeox {
                init_method: m("init_method", NeoxMethod::SmallInit)?,
                output_layer_init_method: m("output_layer_init_method", NeoxMethod::WangInit)?,
                sigma: positive(&o, "sigma", 0.02)?,
                num_layers: opt_layers(&o)?,
            }
        }
        "olmo_mitchell" | "mitchell" => Recipe::OlmoMitchell,
        "olmo_full_megatron" | "full_megatron" => Recipe::OlmoFullMegatron {
            init_std: positive(&o, "init_std", 0.02)?,
            cutoff_factor: positive(&o, "cutoff_factor", 3.0)?,
            num_layers: opt_layers(&o)?,
        },
        "torchtitan" | "torchtitan_depth" => Recipe::Torchtitan {
            depth_init: o.bool_any(&["depth_init"], true)?,
            num_layers: opt_layers(&o)?,
        },
        "mup" => {
            let (base_width, _) = o.size_any(&["base_width"])?.ok_or_else(|| {
                SpecError::missing_field(join(path, "base_width"),
                    "μP needs `base_width`: the base model's width (hf_config: its hidden_size; a layer stack: the out_features of its first layer) that the hyperparameters were tuned at",
                )
            })?;
            Recipe::Mup {
                base_width,
                readout_zero_init: o.bool_any(&["readout_zero_init"], true)?,
                query_zero_init: o.bool_any(&["query_zero_init"], true)?,
            }
        }
        "deepnet" => Recipe::DeepNet {
            num_layers: opt_layers(&o)?,
        },
        "adaptive" | "lsuv" => Recipe::Adaptive {
            target_std: positive(&o, "target_std", 1.0)?,
            input_mean: match o.f64_any(&["input_mean"])? {
                None => 0.0,
                Some((x, _)) => x,
            },
            input_std: positive(&o, "input_std", 1.0)?,
        },
        other => {
            return Err(SpecError::invalid_value(
                name_path,
                format!("unknown recipe `{other}`; use one of {}", NAMES.join(", ")),
            ));
        }
    };
    o.finish()?;
    Ok(r)
}
