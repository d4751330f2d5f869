//! Deep-network initialization recipes (`"recipe"` in the request): the schemes large models
//! are trained with, each as its source framework writes it, applied to `hf_config` models and
//! layer stacks. A recipe rewrites each covered tensor's resolved initializer in one place
//! (`apply`, called by `pipeline::build` (through `plan`) before `only`/`shard`, so fans and depth always come from
//! the whole model and a shard is the slice of the full tensor), and records on the tensor which
//! rule applied and why. Stream identities are unchanged: a recipe changes the transform of the
//! same random words, never which words.
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

use serde_json::{Value, json};

use crate::error::{Result, SpecError};
use crate::init::{self, Element, Init, Resolved, TensorCtx, ValueSource, WholeTensor};
use crate::sample::{Kernel, TruncParams};
use crate::terms::Framework;
use crate::terms::fields::{Obj, join, wrong_type};

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

/// What a tensor is to a recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Token, position or token-type embeddings.
    Embedding,
    Query,
    Key,
    Value,
    /// Query, key and value packed in one tensor; `query_rows` when the query part is the
    /// contiguous first third of the logical tensor (PyTorch `in_proj_weight [3E, E]`).
    PackedQkv {
        query_first_rows: bool,
    },
    /// An input projection of a block (MLP up/gate, BERT intermediate, pooler, hidden dense).
    InProj,
    /// Llama's `up_proj` (torchtitan's w3, which it initializes like the output projections).
    UpProj,
    /// A projection that writes into the residual stream (attention output, MLP down).
    OutProj,
    /// The first layer of a stack (its fan-in is the data's, not a width).
    Input,
    /// The last layer: the LM head or the classifier.
    Readout,
    Bias,
    /// Norm scales and shifts, statistics, recurrent weights: no recipe rule.
    Untouched,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Embedding => "embedding",
            Role::Query => "query projection",
            Role::Key => "key projection",
            Role::Value => "value projection",
            Role::PackedQkv { .. } => "packed query/key/value projection",
            Role::InProj => "input projection",
            Role::UpProj => "MLP up projection",
            Role::OutProj => "output projection (writes the residual stream)",
            Role::Input => "first layer",
            Role::Readout => "readout / output layer",
            Role::Bias => "bias",
            Role::Untouched => "not covered",
        }
    }
}

/// A tensor as the recipe sees it.
pub struct Target<'a> {
    pub name: &'a str,
    pub role: Role,
    /// Transformer block (or weight layer, in a stack) index, from 0.
    pub layer: Option<u64>,
    pub fan_in: f64,
    pub fan_out: f64,
}

/// The model-level numbers a recipe takes from the model.
#[derive(Clone, Copy, Debug)]
pub struct ModelDims {
    /// Transformer blocks (hf_config) or weight layers (stack).
    pub num_layers: u64,
    /// d_model (hf_config); the width of the first layer's output (stack).
    pub hidden: Option<u64>,
    /// The model's own weight std (HF `initializer_range`), where it has one.
    pub init_range: Option<f64>,
}

/// The `model_type`s whose tensor names [`hf_role`] knows (Llama-style `q_proj … down_proj`,
/// GPT-2's `c_attn`/`c_proj`, BERT's `attention.self.*`). Other families (packed or expert
/// projections under other names: GPT-NeoX, Phi-3, Mixtral, the MoE Qwens, T5, ViT, …) are
/// refused rather than given a recipe whose roles would be guessed.
pub const HF_RECIPE_MODEL_TYPES: &[&str] = &[
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "olmo2",
    "gpt2",
    "bert",
];

/// The block index in an HF tensor name: `….layers.3.…`, `h.3.`, `layer.3.`.
pub fn hf_layer(name: &str) -> Option<u64> {
    let parts: Vec<&str> = name.split('.').collect();
    parts.windows(2).find_map(|w| {
        if matches!(w[0], "layers" | "h" | "layer") {
            w[1].parse().ok()
        } else {
            None
        }
    })
}

/// Role of an HF tensor (Llama/Mistral/Qwen2, GPT-2, BERT names).
pub fn hf_role(name: &str) -> Role {
    let n = name;
    if n.contains("norm") || n.contains("ln_") || n.contains("LayerNorm") {
        return Role::Untouched;
    }
    if n.ends_with(".bias") {
        return Role::Bias;
    }
    let has = |s: &str| n.contains(s);
    if has("embed") || has("wte") || has("wpe") {
        return Role::Embedding;
    }
    if n == "lm_head.weight" || has("cls.predictions.decoder") {
        return Role::Readout;
    }
    if has("q_proj") || has("attention.self.query") {
        Role::Query
    } else if has("k_proj") || has("attention.self.key") {
        Role::Key
    } else if has("v_proj") || has("attention.self.value") {
        Role::Value
    } else if has("attn.c_attn") {
        Role::PackedQkv {
            query_first_rows: false,
        }
    } else if has("o_proj")
        || has("down_proj")
        || has("attn.c_proj")
        || has("mlp.c_proj")
        || has("attention.output.dense")
        || (has("encoder.layer.") && has(".output.dense"))
    {
        Role::OutProj
    } else if has("up_proj") {
        Role::UpProj
    } else {
        // gate_proj, c_fc, intermediate.dense, pooler.dense, cls.predictions.transform.dense
        Role::InProj
    }
}

/// (fan_in, fan_out) of an HF tensor: GPT-2's Conv1D stores `[in, out]`, the rest `[out, in]`.
pub fn hf_fans(name: &str, shape: &[u64]) -> (f64, f64) {
    match shape {
        [a, b] if name.contains(".attn.c_") || name.contains(".mlp.c_") => (*a as f64, *b as f64),
        [o, i] => (*i as f64, *o as f64),
        [n] => (*n as f64, *n as f64),
        _ => (1.0, 1.0),
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

/// A resolved initializer multiplied by `f` (μP, adaptive): every value of the new source is
/// `f ×` the old one's distribution. Structured sources without a scale (dirac) are refused.
pub fn scale_resolved(r: &Resolved, f: f64) -> Option<Resolved> {
    fn src(s: &ValueSource, f: f64) -> Option<ValueSource> {
        let m = |x: f32| (x as f64 * f) as f32;
        Some(match s {
            ValueSource::Constant(c) => ValueSource::Constant(m(*c)),
            ValueSource::Random(Kernel::Uniform { low, scale }) => {
                let (lo, hi) = (*low as f64 * f, (*low as f64 + *scale as f64) * f);
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                ValueSource::Random(Kernel::Uniform {
                    low: lo as f32,
                    scale: (hi - lo) as f32,
                })
            }
            ValueSource::Random(Kernel::Normal { mean, std }) => {
                ValueSource::Random(Kernel::Normal {
                    mean: m(*mean),
                    std: m(*std),
                })
            }
            ValueSource::Random(Kernel::TruncNormal(p)) if f > 0.0 => {
                ValueSource::Random(Kernel::TruncNormal(TruncParams::new(
                    p.mean as f64 * f,
                    p.std as f64 * f,
                    p.a as f64 * f,
                    p.b as f64 * f,
                )))
            }
            ValueSource::Eye { gain } => ValueSource::Eye { gain: m(*gain) },
            ValueSource::Whole(WholeTensor::Orthogonal { gain, rows_axes }) => {
                ValueSource::Whole(WholeTensor::Orthogonal {
                    gain: gain * f,
                    rows_axes: *rows_axes,
                })
            }
            ValueSource::Whole(WholeTensor::DeltaOrthogonal { scale }) => {
                ValueSource::Whole(WholeTensor::DeltaOrthogonal { scale: scale * f })
            }
            ValueSource::Whole(WholeTensor::Sparse { sparsity, std }) => {
                ValueSource::Whole(WholeTensor::Sparse {
                    sparsity: *sparsity,
                    std: m(*std),
                })
            }
            ValueSource::WithConstantRange {
                base,
                start,
                end,
                value,
            } => ValueSource::WithConstantRange {
                base: Element::of(&src(&(*base).into(), f)?)?,
                start: *start,
                end: *end,
                value: m(*value),
            },
            _ => return None,
        })
    }
    let source = src(&r.source, f)?;
    let mut info = r.info.clone();
    for x in [
        &mut info.std,
        &mut info.mean,
        &mut info.low,
        &mut info.high,
        &mut info.gain,
    ] {
        if let Some(v) = x.as_mut() {
            *v *= f;
        }
    }
    Some(Resolved { source, info })
}

/// Applies a recipe's action to one tensor's resolved initializer.
#[allow(clippy::too_many_arguments)]
pub fn apply_one(
    recipe: &Recipe,
    t: &Target<'_>,
    dims: &ModelDims,
    framework: Framework,
    shape: &[u64],
    logical: &[u64],
    resolved: &mut Resolved,
) -> Result<()> {
    let path = "recipe";
    let note = |rule: String, what: &str| json!({"name": recipe.name(), "role": t.role.as_str(), "layer": t.layer, "rule": rule, "replaced": what});
    match rule_for(recipe, t, dims, path)? {
        Action::Keep => {}
        Action::Replace(rule) => {
            let before = resolved.info.spec.name();
            let ctx = TensorCtx {
                framework,
                shape,
                logical_shape: logical,
                fan_in: None,
                fan_out: None,
                activation: None,
                path,
            };
            let mut r = init::resolve(&rule.spec, &ctx)?;
            r.info.recipe = Some(note(rule.rule, before));
            *resolved = r;
        }
        Action::Scale { factor, rule } => {
            let before = resolved.info.spec.name();
            let mut r = scale_resolved(resolved, factor).ok_or_else(|| {
                SpecError::initializer_mismatch(path,
                    format!(
                        "`{}` uses {before}, which has no scale to multiply; give it a scaled initializer",
                        t.name
                    ),
                )
            })?;
            r.info.recipe = Some(note(format!("{rule}; factor {factor}"), before));
            *resolved = r;
        }
    }
    Ok(())
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
