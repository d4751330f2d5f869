//! The rules: for each recipe and tensor role, the initializer the recipe's source framework
//! gives that tensor (`rule_for` → `Action`), with the formula and its inputs written into the
//! rule text the plan records.
//!
//! Sources (formulas copied into each rule's text):
//! - Megatron-LM `megatron/core/utils.py` (`init_method_normal`, `scaled_init_method_normal`:
//!   σ/√(2·num_layers)) and `megatron/core/transformer/transformer_config.py`
//!   (`output_layer_init_method` for the attention and MLP output projections).
//! - GPT-NeoX `megatron/model/init_functions.py` (`small_init_init_method`: √(2/(5d));
//!   `wang_init_method`: 2/(n_layers·√d); `scaled_init_method_normal`).
//! - OLMo `olmo/initialization.py` (`init_weights`: `mitchell` truncated normal σ = 1/√d cut at
//!   ±3σ, divided by √(2·(layer_id+1)) for output projections; `full_megatron`: init_std, output
//!   projections init_std/√(2·n_layers), final output d_model^-0.5, cut at ±cutoff·σ).
//! - torchtitan `torchtitan/models/llama3/model/model.py` (`TransformerBlock`:
//!   `weight_init_std = 0.02/√(2·(layer_id+1))` with `depth_init`, else 0.02/√(2·n_layers);
//!   wq/wk/wv/w1 `trunc_normal_(std=0.02)`, wo/w2/w3 `trunc_normal_(std=weight_init_std)` with
//!   PyTorch's default absolute bounds ±2; embeddings N(0, 1); output d^-0.5 cut at ±3σ).
//! - μP, microsoft/mup `mup/init.py` (matrix-like weights: std/√width_mult), `mup/layer.py`
//!   (`MuReadout(readout_zero_init=True)`), `examples/Transformer/model.py` (`query_zero_init`).
//! - DeepNet (Wang et al. 2022, arXiv:2203.00555, Fig. 2): β = (8N)^(-1/4);
//!   `xavier_normal_(w, gain=β)` for FFN, value and output projections, gain 1 for query and key.

use super::roles::{ModelDims, Role, Target};
use super::{NeoxMethod, Recipe};
use crate::error::{Result, SpecError};
use crate::init::Init;
use crate::terms::fields::join;

impl NeoxMethod {
    /// (std, formula) for hidden size d and n layers.
    fn std(self, sigma: f64, d: f64, n: f64) -> (f64, String) {
        match self {
            NeoxMethod::Normal => (sigma, format!("normal: σ = {sigma}")),
            NeoxMethod::ScaledNormal => (
                sigma / libm::sqrt(2.0 * n),
                format!("scaled_normal: σ/√(2·num_layers) = {sigma}/√(2·{n})"),
            ),
            NeoxMethod::SmallInit => (
                libm::sqrt(2.0 / (5.0 * d)),
                format!("small_init: √(2/(5d)), d = {d}"),
            ),
            NeoxMethod::WangInit => (
                2.0 / n / libm::sqrt(d),
                format!("wang_init: 2/(num_layers·√d), num_layers = {n}, d = {d}"),
            ),
        }
    }
}

/// A rewritten initializer and the text the plan records.
pub struct Rule {
    pub spec: Init,
    pub rule: String,
}

fn normal(std: f64, rule: String) -> Option<Rule> {
    Some(Rule {
        spec: Init::Normal { mean: 0.0, std },
        rule,
    })
}

fn trunc(std: f64, a: f64, b: f64, rule: String) -> Option<Rule> {
    Some(Rule {
        spec: Init::TruncatedNormal {
            mean: 0.0,
            std,
            a,
            b,
        },
        rule,
    })
}

fn zeros(rule: String) -> Option<Rule> {
    Some(Rule {
        spec: Init::Zeros,
        rule,
    })
}

/// How a recipe treats a tensor: a new initializer, a scale of the existing one (μP), or
/// nothing (`None`: the tensor keeps its initializer).
pub enum Action {
    Replace(Rule),
    Scale { factor: f64, rule: String },
    Keep,
}

/// The rule of `recipe` for one tensor, or an error where the recipe cannot be applied
/// faithfully (it is never silently approximated).
pub fn rule_for(recipe: &Recipe, t: &Target<'_>, dims: &ModelDims, path: &str) -> Result<Action> {
    let n_layers = |o: &Option<u64>| o.unwrap_or(dims.num_layers).max(1) as f64;
    let d = dims.hidden.map(|h| h as f64).unwrap_or(t.fan_in).max(1.0);
    let l1 = t.layer.map(|l| l + 1).unwrap_or(1) as f64;
    let bias =
        || zeros("bias = 0 (every recipe's framework zeroes linear biases: `bias.zero_()`)".into());
    let a = match recipe {
        Recipe::MegatronScaled { sigma, num_layers } => {
            let n = n_layers(num_layers);
            match t.role {
                Role::Untouched => None,
                Role::Bias => bias(),
                Role::OutProj => normal(
                    sigma / libm::sqrt(2.0 * n),
                    format!(
                        "Megatron output_layer_init_method = scaled_init_method_normal: N(0, σ/√(2·num_layers)), σ = {sigma}, num_layers = {n}"
                    ),
                ),
                _ => normal(
                    *sigma,
                    format!("Megatron init_method = init_method_normal: N(0, σ), σ = {sigma}"),
                ),
            }
        }
        Recipe::GptNeox {
            init_method,
            output_layer_init_method,
            sigma,
            num_layers,
        } => {
            let n = n_layers(num_layers);
            match t.role {
                Role::Untouched => None,
                Role::Bias => bias(),
                Role::OutProj => {
                    let (s, f) = output_layer_init_method.std(*sigma, d, n);
                    normal(s, format!("GPT-NeoX output_layer_init_method {f}"))
                }
                _ => {
                    let (s, f) = init_method.std(*sigma, d, n);
                    normal(s, format!("GPT-NeoX init_method {f}"))
                }
            }
        }
        Recipe::OlmoMitchell => {
            let cut = |s: f64, why: String| trunc(s, -3.0 * s, 3.0 * s, why);
            match t.role {
                Role::Untouched => None,
                Role::Bias => bias(),
                Role::Embedding | Role::Readout => cut(
                    1.0 / libm::sqrt(d),
                    format!(
                        "OLMo mitchell: trunc_normal σ = 1/√d_model, d_model = {d}, cut at ±3σ"
                    ),
                ),
                Role::OutProj => cut(
                    1.0 / libm::sqrt(2.0 * t.fan_in * l1),
                    format!(
                        "OLMo mitchell output projection: σ = 1/√(2·d_in·(layer_id+1)), d_in = {}, layer_id = {}, cut at ±3σ",
                        t.fan_in,
                        l1 - 1.0
                    ),
                ),
                _ => cut(
                    1.0 / libm::sqrt(t.fan_in),
                    format!(
                        "OLMo mitchell: trunc_normal σ = 1/√d_in, d_in = {}, cut at ±3σ",
                        t.fan_in
                    ),
                ),
            }
        }
        Recipe::OlmoFullMegatron {
            init_std,
            cutoff_factor: c,
            num_layers,
        } => {
            let n = n_layers(num_layers);
            let cut = |s: f64, why: String| trunc(s, -c * s, c * s, why);
            match t.role {
                Role::Untouched => None,
                Role::Bias => bias(),
                Role::OutProj => cut(
                    init_std / libm::sqrt(2.0 * n),
                    format!(
                        "OLMo full_megatron out_module: init_std/√(2·n_layers) = {init_std}/√(2·{n}), cut at ±{c}σ"
                    ),
                ),
                Role::Readout => cut(
                    1.0 / libm::sqrt(d),
                    format!(
                        "OLMo full_megatron final_out: d_model^-0.5, d_model = {d}, cut at ±{c}σ"
                    ),
                ),
                _ => cut(
                    *init_std,
                    format!(
                        "OLMo full_megatron in_module/emb: init_std = {init_std}, cut at ±{c}σ"
                    ),
                ),
            }
        }
        Recipe::Torchtitan {
            depth_init,
            num_layers,
        } => {
            let block = if *depth_init {
                (
                    0.02 / libm::sqrt(2.0 * l1),
                    format!("0.02/√(2·(layer_id+1)), layer_id = {}", l1 - 1.0),
                )
            } else {
                let n = n_layers(num_layers);
                (
                    0.02 / libm::sqrt(2.0 * n),
                    format!("0.02/√(2·n_layers), n_layers = {n}"),
                )
            };
            match t.role {
                Role::Untouched => None,
                Role::Bias => bias(),
                Role::Embedding => normal(
                    1.0,
                    "torchtitan tok_embeddings: nn.init.normal_ ⇒ N(0, 1)".into(),
                ),
                Role::Readout => {
                    let s = 1.0 / libm::sqrt(d);
                    trunc(
                        s,
                        -3.0 * s,
                        3.0 * s,
                        format!("torchtitan output: trunc_normal σ = dim^-0.5, dim = {d}, cut at ±3σ"),
                    )
                }
                Role::OutProj | Role::UpProj => trunc(
                    block.0,
                    -2.0,
                    2.0,
                    format!(
                        "torchtitan wo/w2/w3: trunc_normal_(std = weight_init_std) with PyTorch's default absolute bounds ±2, weight_init_std = {}",
                        block.1
                    ),
                ),
                _ => trunc(
                    0.02,
                    -2.0,
                    2.0,
                    "torchtitan wq/wk/wv/w1: trunc_normal_(std = 0.02) with PyTorch's default absolute bounds ±2".into(),
                ),
            }
        }
        Recipe::Mup {
            base_width,
            readout_zero_init,
            query_zero_init,
        } => {
            let width = dims.hidden.unwrap_or(*base_width) as f64;
            let m = width / *base_width as f64;
            let scale = Action::Scale {
                factor: 1.0 / libm::sqrt(m),
                rule: format!(
                    "μP matrix-like weight (mup.init): the model's std / √width_mult, width_mult = {width}/{base_width} = {m}"
                ),
            };
            match t.role {
                Role::Untouched | Role::Bias | Role::Embedding | Role::Input => {
                    return Ok(Action::Keep);
                }
                Role::Readout if *readout_zero_init => zeros(
                    "μP MuReadout(readout_zero_init=True): the readout starts at 0".into(),
                ),
                Role::Readout => {
                    return Ok(Action::Keep);
                }
                Role::Query if *query_zero_init => zeros(
                    "μP query_zero_init: the query projection starts at 0 (mup examples/Transformer)"
                        .into(),
                ),
                Role::PackedQkv {
                    query_first_rows: false,
                } if *query_zero_init => {
                    return Err(SpecError::invalid_value(join(path, "query_zero_init"),
                        format!(
                            "`{}` packs query, key and value column-wise (GPT-2 Conv1D); the query part is not contiguous, so query_zero_init cannot be applied to it — set `query_zero_init: false`",
                            t.name
                        ),
                    ));
                }
                _ => return Ok(scale),
            }
        }
        Recipe::DeepNet { num_layers } => {
            let n = n_layers(num_layers);
            let beta = libm::pow(8.0 * n, -0.25);
            let xavier = |gain: f64, why: &str| {
                normal(
                    gain * libm::sqrt(2.0 / (t.fan_in + t.fan_out)),
                    format!(
                        "DeepNet {why}: xavier_normal_(gain = {gain}) ⇒ std = gain·√(2/(fan_in+fan_out)), fans {} / {}",
                        t.fan_in, t.fan_out
                    ),
                )
            };
            match t.role {
                Role::Untouched | Role::Embedding | Role::Readout | Role::Input => None,
                Role::Bias => bias(),
                Role::Query | Role::Key => xavier(1.0, "query/key"),
                Role::PackedQkv { .. } => {
                    return Err(SpecError::invalid_value(
                        path,
                        format!(
                            "DeepNet initializes the value projection with gain β and query/key with gain 1, but `{}` packs all three in one tensor; use separate projections",
                            t.name
                        ),
                    ));
                }
                _ => xavier(
                    beta,
                    &format!("FFN/value/output projection, β = (8N)^(-1/4), N = {n}"),
                ),
            }
        }
        // Calibrated from the measured pass in `pipeline::build`, not by a per-tensor rule.
        Recipe::Adaptive { .. } => None,
    };
    Ok(match a {
        Some(r) => Action::Replace(r),
        None => Action::Keep,
    })
}
