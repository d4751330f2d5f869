//! Deep-network initialization recipes (`"recipe"` in the request): the schemes large models
//! are trained with, each as its source framework writes it, applied to `hf_config` models and
//! layer stacks. A recipe rewrites each covered tensor's resolved initializer in one place
//! (`apply_one`, called by `plan`'s `recipes` stage before `only`/`shard`, so fans and depth
//! always come from the whole model and a shard is the slice of the full tensor), and records on
//! the tensor which rule applied and why. Stream identities are unchanged: a recipe changes the
//! transform of the same random words, never which words.
//!
//! This file holds the recipe types (`Recipe`, `NeoxMethod`) and their canonical form; the rest
//! is a file per job:
//!
//! - `parse`: the request's `"recipe"` (a name or an object) into a `Recipe`;
//! - `roles`: what a tensor is to a recipe (`Role`, `Target`, `ModelDims`) and the HF names'
//!   roles, block indices and fans;
//! - `rules`: each recipe's rule for one tensor (`rule_for` → `Action`), formulas and sources;
//! - `apply`: an `Action` applied to a resolved initializer (`apply_one`, `scale_resolved`).

use serde_json::Value;

mod apply;
mod parse;
mod roles;
mod rules;

pub use apply::{apply_one, scale_resolved};
pub use parse::parse;
pub use roles::{HF_RECIPE_MODEL_TYPES, ModelDims, Role, Target, hf_fans, hf_layer, hf_role};
pub use rules::{Action, Rule, rule_for};

/// The recipes, with their resolved parameters (`None`: taken from the model). Serialized as
/// the canonical request's `recipe`: `name` and every parameter, `num_layers: null` = from the
/// model (the map is sorted, so field order does not matter).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Recipe {
    MegatronScaled {
        sigma: f64,
        num_layers: Option<u64>,
    },
    GptNeox {
        init_method: NeoxMethod,
        output_layer_init_method: NeoxMethod,
        sigma: f64,
        num_layers: Option<u64>,
    },
    OlmoMitchell,
    OlmoFullMegatron {
        init_std: f64,
        cutoff_factor: f64,
        num_layers: Option<u64>,
    },
    Torchtitan {
        depth_init: bool,
        num_layers: Option<u64>,
    },
    Mup {
        base_width: u64,
        readout_zero_init: bool,
        query_zero_init: bool,
    },
    #[serde(rename = "deepnet")]
    DeepNet {
        num_layers: Option<u64>,
    },
    /// Data-free LSUV (`analyze::calibrate`): each dense/conv weight of a stack scaled so the
    /// seeded batch's pre-activation (its `W·x` part) has std `target_std`, layer by layer.
    Adaptive {
        target_std: f64,
        input_mean: f64,
        input_std: f64,
    },
}

/// GPT-NeoX's `init_method` / `output_layer_init_method` choices (`get_init_methods`),
/// serialized as the names `parse` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NeoxMethod {
    Normal,
    ScaledNormal,
    SmallInit,
    WangInit,
}

pub const NAMES: &[&str] = &[
    "megatron_scaled",
    "gpt_neox",
    "olmo_mitchell",
    "olmo_full_megatron",
    "torchtitan",
    "mup",
    "deepnet",
    "adaptive",
];

impl Recipe {
    pub fn name(&self) -> &'static str {
        match self {
            Recipe::MegatronScaled { .. } => "megatron_scaled",
            Recipe::GptNeox { .. } => "gpt_neox",
            Recipe::OlmoMitchell => "olmo_mitchell",
            Recipe::OlmoFullMegatron { .. } => "olmo_full_megatron",
            Recipe::Torchtitan { .. } => "torchtitan",
            Recipe::Mup { .. } => "mup",
            Recipe::DeepNet { .. } => "deepnet",
            Recipe::Adaptive { .. } => "adaptive",
        }
    }

    /// Canonical form: every parameter explicit (`num_layers: null` = from the model).
    pub fn to_json(&self) -> Value {
        // An enum of numbers, booleans and strings always serializes to an object; `Null` is
        // never produced (the unit test pins every variant's bytes).
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant, with parameters that exercise each JSON type (f64 with and without a
    /// fraction, `None` and `Some` layer counts, booleans, a u64).
    fn every_variant() -> Vec<Recipe> {
        vec![
            Recipe::MegatronScaled {
                sigma: 0.02,
                num_layers: None,
            },
            Recipe::MegatronScaled {
                sigma: 1.0,
                num_layers: Some(24),
            },
            Recipe::GptNeox {
                init_method: NeoxMethod::SmallInit,
                output_layer_init_method: NeoxMethod::WangInit,
                sigma: 0.02,
                num_layers: Some(12),
            },
            Recipe::GptNeox {
                init_method: NeoxMethod::Normal,
                output_layer_init_method: NeoxMethod::ScaledNormal,
                sigma: 0.5,
                num_layers: None,
            },
            Recipe::OlmoMitchell,
            Recipe::OlmoFullMegatron {
                init_std: 0.02,
                cutoff_factor: 3.0,
                num_layers: None,
            },
            Recipe::Torchtitan {
                depth_init: true,
                num_layers: Some(8),
            },
            Recipe::Torchtitan {
                depth_init: false,
                num_layers: None,
            },
            Recipe::Mup {
                base_width: 256,
                readout_zero_init: true,
                query_zero_init: false,
            },
            Recipe::DeepNet { num_layers: None },
            Recipe::DeepNet {
                num_layers: Some(100),
            },
            Recipe::Adaptive {
                target_std: 1.0,
                input_mean: 0.0,
                input_std: 0.1,
            },
        ]
    }

    /// Recorded from the hand-written `to_json` this derive replaced: the canonical request (and
    /// so the safetensors header and the ETag) of a request with a recipe must not move.
    const CANONICAL: [&str; 12] = [
        r#"{"name":"megatron_scaled","num_layers":null,"sigma":0.02}"#,
        r#"{"name":"megatron_scaled","num_layers":24,"sigma":1.0}"#,
        r#"{"init_method":"small_init","name":"gpt_neox","num_layers":12,"output_layer_init_method":"wang_init","sigma":0.02}"#,
        r#"{"init_method":"normal","name":"gpt_neox","num_layers":null,"output_layer_init_method":"scaled_normal","sigma":0.5}"#,
        r#"{"name":"olmo_mitchell"}"#,
        r#"{"cutoff_factor":3.0,"init_std":0.02,"name":"olmo_full_megatron","num_layers":null}"#,
        r#"{"depth_init":true,"name":"torchtitan","num_layers":8}"#,
        r#"{"depth_init":false,"name":"torchtitan","num_layers":null}"#,
        r#"{"base_width":256,"name":"mup","query_zero_init":false,"readout_zero_init":true}"#,
        r#"{"name":"deepnet","num_layers":null}"#,
        r#"{"name":"deepnet","num_layers":100}"#,
        r#"{"input_mean":0.0,"input_std":0.1,"name":"adaptive","target_std":1.0}"#,
    ];

    #[test]
    fn canonical_json_of_every_variant_is_unchanged() {
        let variants = every_variant();
        assert_eq!(variants.len(), CANONICAL.len());
        for (r, want) in variants.iter().zip(CANONICAL) {
            assert_eq!(r.to_json().to_string(), want, "{r:?}");
            // `name` is the same string `Recipe::name` reports (plans and reasons use it).
            assert_eq!(r.to_json()["name"], r.name(), "{r:?}");
        }
    }
}
