//! Hugging Face `config.json` → the exact tensors `save_pretrained` writes for that model class,
//! with the initialization rule of the class's `_init_weights` (transformers 5.x). Families:
//! the Llama-shaped decoders (Llama, Mistral, Qwen2, Qwen3, Gemma 1/2/3-text, Mixtral,
//! Qwen2-MoE, Qwen3-MoE, Phi-3, OLMo 2; `llama.rs`), GPT-NeoX, GPT-2, BERT and RoBERTa,
//! DistilBERT, T5 and ViT, each with its base model, its LM class and the classification/QA
//! heads transformers has for it (`ARCHITECTURES`). Without `architectures`, `model_type` picks
//! the class `AutoModel.from_config` builds (the base model). The config's `dtype`/`torch_dtype`
//! is kept as the request's default output dtype.
//!
//! The config is read leniently, as `from_pretrained` reads it: unknown keys are ignored, a key
//! that is `null` takes the model type's default. A value of the wrong type, a contradictory
//! size or a feature that changes the weights and is not supported is an error naming the key
//! (`hf_config.num_attention_heads`). The parsed model keeps only the resolved values of the
//! keys it honours, and `to_json` writes exactly those back, so the canonical request is a
//! fixed point of parsing.

mod bert;
mod distilbert;
mod gpt2;
mod llama;
mod neox;
mod t5;
mod vit;
// The class table, config access and the shared expansion helpers, each in its own file.
mod architectures;
mod config;
mod tensors;

pub use architectures::{ARCHITECTURES, Arch, Fam, Head};
use architectures::{a, reads_num_labels};
pub(crate) use config::Cfg;
pub(crate) use tensors::*;

use serde_json::{Map, Value, json};

use crate::error::{Result, SpecError};
use crate::terms::DType;
use crate::terms::fields::join;

/// How a tensor is initialized: HF's untruncated normal, `trunc_normal_`, or a constant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HfInit {
    /// `normal_(mean=0, std)`; `why` says which rule chose it.
    Normal {
        std: f64,
        why: &'static str,
    },
    /// `trunc_normal_(mean=0, std, a, b)` with absolute bounds (ViT's embeddings).
    TruncNormal {
        std: f64,
        a: f64,
        b: f64,
        why: &'static str,
    },
    Zeros {
        why: &'static str,
    },
    Ones {
        why: &'static str,
    },
    /// `constant_(value)` (T5's `initializer_factor`-scaled LayerNorm).
    Constant {
        value: f64,
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

/// The family-specific resolved configuration.
#[derive(Clone, Debug, PartialEq)]
pub enum Family {
    Llama(llama::LlamaConfig),
    Gpt2(gpt2::Gpt2Config),
    Bert(bert::BertConfig),
    NeoX(neox::NeoXConfig),
    DistilBert(distilbert::DistilBertConfig),
    T5(t5::T5Config),
    ViT(vit::ViTConfig),
}

/// A parsed `hf_config`: the class, the resolved values of every honoured key, the number of
/// labels of a classification/QA head and the config's own `dtype`.
#[derive(Clone, Debug, PartialEq)]
pub struct HfModel {
    pub arch: Arch,
    pub family: Family,
    /// `num_labels` (`len(id2label)`), for heads that read it.
    pub num_labels: Option<u64>,
    /// The config's `dtype` (or legacy `torch_dtype`): the default output dtype.
    pub dtype: Option<DType>,
}

impl HfModel {
    /// The tensors `save_pretrained` writes, in `state_dict` order.
    pub fn tensors(&self) -> Vec<HfTensor> {
        let labels = self.num_labels.unwrap_or(2);
        match &self.family {
            Family::Llama(c) => c.tensors(self.arch, labels),
            Family::Gpt2(c) => c.tensors(self.arch, labels),
            Family::Bert(c) => c.tensors(self.arch, labels),
            Family::NeoX(c) => c.tensors(self.arch, labels),
            Family::DistilBert(c) => c.tensors(self.arch, labels),
            Family::T5(c) => c.tensors(self.arch, labels),
            Family::ViT(c) => c.tensors(self.arch, labels),
        }
    }

    /// How many tensors `tensors` returns, in closed form (saturating), and the config key
    /// that drives it, so a limit can refuse a config before a single name is formatted.
    /// `tests/arch_hf_families.rs` checks it equals `tensors().len()` for every fixture.
    pub fn tensor_count(&self) -> (u64, &'static str) {
        match &self.family {
            Family::Llama(c) => c.tensor_count(self.arch),
            Family::Gpt2(c) => (c.tensor_count(self.arch), "n_layer"),
            Family::Bert(c) => (c.tensor_count(self.arch), "num_hidden_layers"),
            Family::NeoX(c) => (c.tensor_count(self.arch), "num_hidden_layers"),
            Family::DistilBert(c) => (c.tensor_count(self.arch), "n_layers"),
            Family::T5(c) => (c.tensor_count(self.arch), "num_layers"),
            Family::ViT(c) => (c.tensor_count(self.arch), "num_hidden_layers"),
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
            Family::NeoX(c) => (
                c.num_hidden_layers,
                c.hidden_size,
                generic_std(c.initializer_range),
            ),
            Family::DistilBert(c) => (c.n_layers, c.dim, generic_std(c.initializer_range)),
            // T5 has no initializer_range: its projections are N(0, f·d_model^-0.5).
            Family::T5(c) => (
                c.num_layers,
                c.d_model,
                c.initializer_factor / (c.d_model as f64).sqrt(),
            ),
            Family::ViT(c) => (c.num_hidden_layers, c.hidden_size, c.initializer_range),
        }
    }

    /// Canonical form: `architectures`, `model_type` and every honoured key, resolved.
    /// Hand-written around the derived family fields: the class and `model_type` come from the
    /// architecture table and Llama-family keys depend on the family (`LlamaConfig::write`).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("architectures".into(), json!([self.arch.name()]));
        m.insert("model_type".into(), json!(self.arch.model_type()));
        if let Some(d) = self.dtype {
            m.insert("dtype".into(), json!(d.as_str()));
        }
        if let Some(n) = self.num_labels {
            m.insert("num_labels".into(), json!(n));
        }
        match &self.family {
            Family::Llama(c) => c.write(self.arch.fam, &mut m),
            Family::Gpt2(c) => write_fields(c, &mut m),
            Family::Bert(c) => write_fields(c, &mut m),
            Family::NeoX(c) => write_fields(c, &mut m),
            Family::DistilBert(c) => write_fields(c, &mut m),
            Family::T5(c) => write_fields(c, &mut m),
            Family::ViT(c) => write_fields(c, &mut m),
        }
        Value::Object(m)
    }
}

/// A family config's fields into the canonical map (its field names are the config keys; the
/// map is sorted, so the order of the fields does not matter).
fn write_fields(config: &impl serde::Serialize, m: &mut Map<String, Value>) {
    // A struct of numbers, booleans, strings and arrays always serializes to an object.
    if let Ok(Value::Object(fields)) = serde_json::to_value(config) {
        m.extend(fields);
    }
}

/// Parses the body's `hf_config` (at `path`).
pub fn parse(v: &Value, path: &str) -> Result<HfModel> {
    let map = match v {
        Value::Object(m) => m,
        other => {
            return Err(crate::terms::fields::wrong_type(
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
                            SpecError::unsupported_layer_type(
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
                other => return Err(crate::terms::fields::wrong_type(&p, "a class name", other)),
            }
        }
        Some(other) => {
            return Err(crate::terms::fields::wrong_type(
                &join(path, "architectures"),
                "a list of class names",
                other,
            ));
        }
    };
    let arch = match (arch, model_type) {
        (Some(a), Some(t)) if t != a.model_type() => {
            return Err(SpecError::conflicting_fields(
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
            let mut types: Vec<&str> = ARCHITECTURES.iter().map(|(.., t)| *t).collect();
            types.dedup();
            SpecError::unsupported_layer_type(
                join(path, "model_type"),
                format!(
                    "model_type `{t}` is not supported; use one of {}",
                    types.join(", ")
                ),
            )
        })?,
        (None, None) => {
            return Err(SpecError::missing_field(
                join(path, "architectures"),
                "a Hugging Face config needs `architectures` or `model_type` to pick the model class",
            ));
        }
    };
    let family = match arch.fam {
        Fam::Gpt2 => Family::Gpt2(gpt2::Gpt2Config::parse(&cfg)?),
        Fam::Bert | Fam::Roberta => Family::Bert(bert::BertConfig::parse(&cfg, arch)?),
        Fam::GptNeoX => Family::NeoX(neox::NeoXConfig::parse(&cfg)?),
        Fam::DistilBert => Family::DistilBert(distilbert::DistilBertConfig::parse(&cfg)?),
        Fam::T5 => Family::T5(t5::T5Config::parse(&cfg)?),
        Fam::ViT => Family::ViT(vit::ViTConfig::parse(&cfg)?),
        _ => Family::Llama(llama::LlamaConfig::parse(&cfg, arch)?),
    };
    let num_labels = if reads_num_labels(arch) {
        Some(cfg.num_labels()?)
    } else {
        None
    };
    if arch == a(Fam::DistilBert, Head::Qa) && num_labels != Some(2) {
        return Err(SpecError::invalid_value(
            join(path, "num_labels"),
            "DistilBertForQuestionAnswering requires num_labels 2 (modeling_distilbert.py)",
        ));
    }
    Ok(HfModel {
        arch,
        family,
        num_labels,
        dtype: cfg.dtype()?,
    })
}
