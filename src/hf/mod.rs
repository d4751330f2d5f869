//! Hugging Face `config.json` → the exact tensors `save_pretrained` writes for that model class,
//! with the initialization rule of the class's `_init_weights` (transformers 5.x; the rules are
//! the same in 4.5x). Supported families: Llama and the Llama-shaped Mistral and Qwen2, GPT-2
//! and BERT, each with its language-model head class and its base model.
//!
//! The config is read leniently, as `from_pretrained` reads it: unknown keys are ignored, a key
//! that is `null` takes the model type's default. A value of the wrong type, a contradictory
//! size or a feature that changes the weights and is not supported is an error naming the key
//! (`hf_config.num_attention_heads`). The parsed model keeps only the resolved values of the
//! keys it honours, and `to_json` writes exactly those back, so the canonical request is a
//! fixed point of parsing.

mod bert;
mod gpt2;
mod llama;

use serde_json::{Map, Value, json};

use crate::error::{ErrorCode, Result, SpecError};
use crate::spec::fields::join;

/// How a tensor is initialized: HF's untruncated normal, or a constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HfInit {
    /// `normal_(mean=0, std)`; `why` says which rule chose it.
    Normal {
        std: f64,
        why: &'static str,
    },
    Zeros {
        why: &'static str,
    },
    Ones {
        why: &'static str,
    },
}

/// One tensor of the file, named as `save_pretrained` names it; shape in PyTorch layout (GPT-2's
/// Conv1D weights are `[in, out]`, as stored).
#[derive(Clone, Debug, PartialEq)]
pub struct HfTensor {
    pub name: String,
    pub shape: Vec<u64>,
    pub init: HfInit,
    /// An embedding's `padding_idx` row, which is exactly zero.
    pub zero_row: Option<u64>,
}

/// The supported model classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    LlamaForCausalLM,
    LlamaModel,
    MistralForCausalLM,
    MistralModel,
    Qwen2ForCausalLM,
    Qwen2Model,
    GPT2LMHeadModel,
    GPT2Model,
    BertForMaskedLM,
    BertModel,
}

pub const ARCHITECTURES: &[(&str, Arch, &str)] = &[
    ("LlamaForCausalLM", Arch::LlamaForCausalLM, "llama"),
    ("LlamaModel", Arch::LlamaModel, "llama"),
    ("MistralForCausalLM", Arch::MistralForCausalLM, "mistral"),
    ("MistralModel", Arch::MistralModel, "mistral"),
    ("Qwen2ForCausalLM", Arch::Qwen2ForCausalLM, "qwen2"),
    ("Qwen2Model", Arch::Qwen2Model, "qwen2"),
    ("GPT2LMHeadModel", Arch::GPT2LMHeadModel, "gpt2"),
    ("GPT2Model", Arch::GPT2Model, "gpt2"),
    ("BertForMaskedLM", Arch::BertForMaskedLM, "bert"),
    ("BertModel", Arch::BertModel, "bert"),
];

impl Arch {
    pub fn name(self) -> &'static str {
        ARCHITECTURES
            .iter()
            .find(|(_, a, _)| *a == self)
            .map(|(n, ..)| *n)
            .unwrap_or("")
    }
    pub fn model_type(self) -> &'static str {
        ARCHITECTURES
            .iter()
            .find(|(_, a, _)| *a == self)
            .map(|(.., t)| *t)
            .unwrap_or("")
    }
    /// The class `AutoModelForCausalLM`/`AutoModelForMaskedLM` would build from a `model_type`
    /// alone (a config without `architectures`).
    fn for_model_type(t: &str) -> Option<Arch> {
        Some(match t {
            "llama" => Arch::LlamaForCausalLM,
            "mistral" => Arch::MistralForCausalLM,
            "qwen2" => Arch::Qwen2ForCausalLM,
            "gpt2" => Arch::GPT2LMHeadModel,
            "bert" => Arch::BertForMaskedLM,
            _ => return None,
        })
    }
}

/// The family-specific resolved configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum Family {
    Llama(llama::LlamaConfig),
    Gpt2(gpt2::Gpt2Config),
    Bert(bert::BertConfig),
}

/// A parsed `hf_config`: the class and the resolved values of every honoured key.
#[derive(Clone, Debug, PartialEq)]
pub struct HfModel {
    pub arch: Arch,
    pub family: Family,
}

impl HfModel {
    /// The tensors `save_pretrained` writes, in `state_dict` order.
    pub fn tensors(&self) -> Vec<HfTensor> {
        match &self.family {
            Family::Llama(c) => c.tensors(self.arch),
            Family::Gpt2(c) => c.tensors(self.arch),
            Family::Bert(c) => c.tensors(self.arch),
        }
    }

    /// The layer loop in closed form, checked against the tensor limit before `tensors` runs:
    /// (config key, number of layers, tensors every layer writes at least). A new family adds
    /// its arm here (the match is exhaustive); `tests/arch_hf.rs` checks the minimum per layer
    /// against the tensors each family actually writes.
    pub fn layer_loop(&self) -> (&'static str, u64, u64) {
        match &self.family {
            // q/k/v/o, gate/up/down, two RMSNorms.
            Family::Llama(c) => ("num_hidden_layers", c.num_hidden_layers, 9),
            // ln_1, c_attn, c_proj, ln_2, c_fc, mlp c_proj: weight and bias each.
            Family::Gpt2(c) => ("n_layer", c.n_layer, 12),
            // q/k/v, attention output dense + LayerNorm, intermediate, output dense + LayerNorm.
            Family::Bert(c) => ("num_hidden_layers", c.num_hidden_layers, 16),
        }
    }

    /// (blocks, hidden size, weight std) for recipes and the residual-stream forecast.
    pub fn dims(&self) -> (u64, u64, f64) {
        match &self.family {
            Family::Llama(c) => (
                c.num_hidden_layers,
                c.hidden_size,
                generic_std(c.initializer_range),
            ),
            Family::Gpt2(c) => (c.n_layer, c.n_embd, generic_std(c.initializer_range)),
            Family::Bert(c) => (
                c.num_hidden_layers,
                c.hidden_size,
                generic_std(c.initializer_range),
            ),
        }
    }

    /// Canonical form: `architectures`, `model_type` and every honoured key, resolved.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("architectures".into(), json!([self.arch.name()]));
        m.insert("model_type".into(), json!(self.arch.model_type()));
        match &self.family {
            Family::Llama(c) => c.write(&mut m),
            Family::Gpt2(c) => c.write(&mut m),
            Family::Bert(c) => c.write(&mut m),
        }
        Value::Object(m)
    }
}

/// Parses the body's `hf_config` (at `path`).
pub fn parse(v: &Value, path: &str) -> Result<HfModel> {
    let map = match v {
        Value::Object(m) => m,
        other => {
            return Err(crate::spec::fields::wrong_type(
                path,
                "a Hugging Face config object (config.json or config.to_dict())",
                other,
            ));
        }
    };
    let cfg = Cfg { map, path };
    let model_type = cfg.str("model_type")?;
    let arch = match map.get("architectures") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) if a.is_empty() => None,
        Some(Value::Array(a)) => {
            let p = format!("{}[0]", join(path, "architectures"));
            match &a[0] {
                Value::String(s) => Some(
                    ARCHITECTURES
                        .iter()
                        .find(|(n, ..)| n == s)
                        .map(|(_, a, _)| *a)
                        .ok_or_else(|| {
                            SpecError::new(
                                ErrorCode::UnsupportedLayerType,
                                p,
                                format!(
                                    "architecture `{s}` is not supported; use one of {}",
                                    ARCHITECTURES
                                        .iter()
                                        .map(|(n, ..)| *n)
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            )
                        })?,
                ),
                other => return Err(crate::spec::fields::wrong_type(&p, "a class name", other)),
            }
        }
        Some(other) => {
            return Err(crate::spec::fields::wrong_type(
                &join(path, "architectures"),
                "a list of class names",
                other,
            ));
        }
    };
    let arch = match (arch, model_type) {
        (Some(a), Some(t)) if t != a.model_type() => {
            return Err(SpecError::new(
                ErrorCode::ConflictingFields,
                join(path, "model_type"),
                format!(
                    "model_type `{t}` contradicts architectures[0] `{}` (model_type `{}`)",
                    a.name(),
                    a.model_type()
                ),
            ));
        }
        (Some(a), _) => a,
        (None, Some(t)) => Arch::for_model_type(t).ok_or_else(|| {
            SpecError::new(
                ErrorCode::UnsupportedLayerType,
                join(path, "model_type"),
                format!(
                    "model_type `{t}` is not supported; use llama, mistral, qwen2, gpt2 or bert"
                ),
            )
        })?,
        (None, None) => {
            return Err(SpecError::new(
                ErrorCode::MissingField,
                join(path, "architectures"),
                "a Hugging Face config needs `architectures` or `model_type` to pick the model class",
            ));
        }
    };
    let family = match arch {
        Arch::GPT2LMHeadModel | Arch::GPT2Model => Family::Gpt2(gpt2::Gpt2Config::parse(&cfg)?),
        Arch::BertForMaskedLM | Arch::BertModel => Family::Bert(bert::BertConfig::parse(&cfg)?),
        _ => Family::Llama(llama::LlamaConfig::parse(&cfg, arch)?),
    };
    Ok(HfModel { arch, family })
}

/// Lenient, typed access to config keys; `null` means "not given".
pub(crate) struct Cfg<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
}

impl<'a> Cfg<'a> {
    pub fn path(&self, key: &str) -> String {
        join(self.path, key)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// The first of `keys` present (HF `attribute_map` aliases, e.g. `n_embd`/`hidden_size`).
    fn first(&self, keys: &[&'static str]) -> Result<Option<(&'a Value, &'static str)>> {
        let mut found: Option<(&'a Value, &'static str)> = None;
        for &k in keys {
            if let Some(v) = self.get(k) {
                if let Some((fv, fk)) = found {
                    if fv != v {
                        return Err(SpecError::new(
                            ErrorCode::ConflictingFields,
                            self.path(k),
                            format!("`{k}` ({v}) and `{fk}` ({fv}) name the same setting"),
                        ));
                    }
                } else {
                    found = Some((v, k));
                }
            }
        }
        Ok(found)
    }

    pub fn str(&self, key: &'static str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(crate::spec::fields::wrong_type(
                &self.path(key),
                "a string",
                v,
            )),
        }
    }

    /// A positive size under any of `keys`, else `default`.
    pub fn size(&self, keys: &[&'static str], default: u64) -> Result<u64> {
        match self.first(keys)? {
            None => Ok(default),
            Some((v, k)) => crate::spec::fields::positive_size(v, &self.path(k)),
        }
    }

    pub fn opt_size(&self, keys: &[&'static str]) -> Result<Option<u64>> {
        match self.first(keys)? {
            None => Ok(None),
            Some((v, k)) => crate::spec::fields::positive_size(v, &self.path(k)).map(Some),
        }
    }

    pub fn bool(&self, key: &'static str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(crate::spec::fields::wrong_type(
                &self.path(key),
                "true or false",
                v,
            )),
        }
    }

    /// `initializer_range`: a finite number ≥ 0 (`None` when absent or null).
    pub fn init_range(&self) -> Result<Option<f64>> {
        let key = "initializer_range";
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
                _ => Err(SpecError::new(
                    ErrorCode::InvalidValue,
                    self.path(key),
                    "initializer_range must be a finite number ≥ 0",
                )),
            },
            Some(v) => Err(crate::spec::fields::wrong_type(
                &self.path(key),
                "a number",
                v,
            )),
        }
    }

    /// `pad_token_id`: a row of an embedding with `vocab` rows, or none.
    pub fn pad_token(&self, vocab: u64) -> Result<Option<u64>> {
        let key = "pad_token_id";
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(p) if p < vocab => Ok(Some(p)),
                _ => Err(SpecError::new(
                    ErrorCode::InconsistentSizes,
                    self.path(key),
                    format!("pad_token_id {n} is not a row of the {vocab}-row embedding"),
                )),
            },
            Some(v) => Err(crate::spec::fields::wrong_type(
                &self.path(key),
                "an integer or null",
                v,
            )),
        }
    }

    /// A boolean that must keep its default because the other value changes the weights in a
    /// way this release does not produce.
    pub fn unsupported_if(&self, key: &'static str, bad: bool, what: &str) -> Result<()> {
        if self.bool(key, !bad)? == bad {
            return Err(SpecError::new(
                ErrorCode::UnsupportedLayerType,
                self.path(key),
                format!("`{key}: {bad}` is not supported: {what}"),
            ));
        }
        Ok(())
    }

    /// `a` must be divisible by `b` (sizes of the keys `ka` and `kb`).
    pub fn divisible(&self, a: u64, ka: &str, b: u64, kb: &'static str) -> Result<()> {
        if !a.is_multiple_of(b) {
            return Err(SpecError::new(
                ErrorCode::InconsistentSizes,
                self.path(kb),
                format!("{ka} ({a}) is not divisible by {kb} ({b})"),
            ));
        }
        Ok(())
    }
}

/// HF's generic std: `initializer_range or 0.02` (0 and null fall back to 0.02).
pub(crate) fn generic_std(r: Option<f64>) -> f64 {
    match r {
        Some(x) if x != 0.0 => x,
        _ => 0.02,
    }
}

pub(crate) const LINEAR: &str =
    "nn.Linear weight ~ N(0, initializer_range) (PreTrainedModel._init_weights)";
pub(crate) const EMBED: &str = "nn.Embedding weight ~ N(0, initializer_range), padding_idx row zeroed (PreTrainedModel._init_weights)";
pub(crate) const BIAS: &str = "bias = 0 (PreTrainedModel._init_weights)";
pub(crate) const NORM_W: &str = "LayerNorm/RMSNorm weight = 1";
pub(crate) const NORM_B: &str = "LayerNorm bias = 0";

pub(crate) fn t(name: String, shape: Vec<u64>, init: HfInit) -> HfTensor {
    HfTensor {
        name,
        shape,
        init,
        zero_row: None,
    }
}

pub(crate) fn normal(std: f64, why: &'static str) -> HfInit {
    HfInit::Normal { std, why }
}
