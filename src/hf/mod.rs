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

use serde_json::{Map, Value, json};

use crate::error::{ErrorCode, Result, SpecError};
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

/// A model family: one `modeling_<family>.py`, one config class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fam {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Gemma,
    Gemma2,
    Gemma3Text,
    Mixtral,
    Qwen2Moe,
    Qwen3Moe,
    Phi3,
    Olmo2,
    GptNeoX,
    Gpt2,
    Bert,
    Roberta,
    DistilBert,
    T5,
    ViT,
}

/// What sits on top of the family's base model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// The bare base model (`LlamaModel`, `BertModel`, `T5Model`, `ViTModel`).
    Base,
    CausalLm,
    MaskedLm,
    /// `T5ForConditionalGeneration`.
    Seq2SeqLm,
    /// `T5EncoderModel`.
    Encoder,
    SeqCls,
    TokenCls,
    Qa,
    ImageCls,
}

/// A supported model class: its family and head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    pub fam: Fam,
    pub head: Head,
}

const fn a(fam: Fam, head: Head) -> Arch {
    Arch { fam, head }
}

use Fam as F;
use Head as H;

/// Every supported class: (class name, arch, `model_type`). The first entry of a `model_type`
/// is the class `AutoModel.from_config` builds for it (transformers'
/// `MODEL_MAPPING_NAMES`), used when a config has no `architectures`.
pub const ARCHITECTURES: &[(&str, Arch, &str)] = &[
    ("LlamaModel", a(F::Llama, H::Base), "llama"),
    ("LlamaForCausalLM", a(F::Llama, H::CausalLm), "llama"),
    (
        "LlamaForSequenceClassification",
        a(F::Llama, H::SeqCls),
        "llama",
    ),
    (
        "LlamaForTokenClassification",
        a(F::Llama, H::TokenCls),
        "llama",
    ),
    ("LlamaForQuestionAnswering", a(F::Llama, H::Qa), "llama"),
    ("MistralModel", a(F::Mistral, H::Base), "mistral"),
    ("MistralForCausalLM", a(F::Mistral, H::CausalLm), "mistral"),
    (
        "MistralForSequenceClassification",
        a(F::Mistral, H::SeqCls),
        "mistral",
    ),
    (
        "MistralForTokenClassification",
        a(F::Mistral, H::TokenCls),
        "mistral",
    ),
    (
        "MistralForQuestionAnswering",
        a(F::Mistral, H::Qa),
        "mistral",
    ),
    ("Qwen2Model", a(F::Qwen2, H::Base), "qwen2"),
    ("Qwen2ForCausalLM", a(F::Qwen2, H::CausalLm), "qwen2"),
    (
        "Qwen2ForSequenceClassification",
        a(F::Qwen2, H::SeqCls),
        "qwen2",
    ),
    (
        "Qwen2ForTokenClassification",
        a(F::Qwen2, H::TokenCls),
        "qwen2",
    ),
    ("Qwen2ForQuestionAnswering", a(F::Qwen2, H::Qa), "qwen2"),
    ("Qwen3Model", a(F::Qwen3, H::Base), "qwen3"),
    ("Qwen3ForCausalLM", a(F::Qwen3, H::CausalLm), "qwen3"),
    (
        "Qwen3ForSequenceClassification",
        a(F::Qwen3, H::SeqCls),
        "qwen3",
    ),
    (
        "Qwen3ForTokenClassification",
        a(F::Qwen3, H::TokenCls),
        "qwen3",
    ),
    ("Qwen3ForQuestionAnswering", a(F::Qwen3, H::Qa), "qwen3"),
    ("GemmaModel", a(F::Gemma, H::Base), "gemma"),
    ("GemmaForCausalLM", a(F::Gemma, H::CausalLm), "gemma"),
    (
        "GemmaForSequenceClassification",
        a(F::Gemma, H::SeqCls),
        "gemma",
    ),
    (
        "GemmaForTokenClassification",
        a(F::Gemma, H::TokenCls),
        "gemma",
    ),
    ("Gemma2Model", a(F::Gemma2, H::Base), "gemma2"),
    ("Gemma2ForCausalLM", a(F::Gemma2, H::CausalLm), "gemma2"),
    (
        "Gemma2ForSequenceClassification",
        a(F::Gemma2, H::SeqCls),
        "gemma2",
    ),
    (
        "Gemma2ForTokenClassification",
        a(F::Gemma2, H::TokenCls),
        "gemma2",
    ),
    ("Gemma3TextModel", a(F::Gemma3Text, H::Base), "gemma3_text"),
    (
        "Gemma3ForCausalLM",
        a(F::Gemma3Text, H::CausalLm),
        "gemma3_text",
    ),
    (
        "Gemma3TextForSequenceClassification",
        a(F::Gemma3Text, H::SeqCls),
        "gemma3_text",
    ),
    ("MixtralModel", a(F::Mixtral, H::Base), "mixtral"),
    ("MixtralForCausalLM", a(F::Mixtral, H::CausalLm), "mixtral"),
    (
        "MixtralForSequenceClassification",
        a(F::Mixtral, H::SeqCls),
        "mixtral",
    ),
    (
        "MixtralForTokenClassification",
        a(F::Mixtral, H::TokenCls),
        "mixtral",
    ),
    (
        "MixtralForQuestionAnswering",
        a(F::Mixtral, H::Qa),
        "mixtral",
    ),
    ("Qwen2MoeModel", a(F::Qwen2Moe, H::Base), "qwen2_moe"),
    (
        "Qwen2MoeForCausalLM",
        a(F::Qwen2Moe, H::CausalLm),
        "qwen2_moe",
    ),
    (
        "Qwen2MoeForSequenceClassification",
        a(F::Qwen2Moe, H::SeqCls),
        "qwen2_moe",
    ),
    (
        "Qwen2MoeForTokenClassification",
        a(F::Qwen2Moe, H::TokenCls),
        "qwen2_moe",
    ),
    (
        "Qwen2MoeForQuestionAnswering",
        a(F::Qwen2Moe, H::Qa),
        "qwen2_moe",
    ),
    ("Qwen3MoeModel", a(F::Qwen3Moe, H::Base), "qwen3_moe"),
    (
        "Qwen3MoeForCausalLM",
        a(F::Qwen3Moe, H::CausalLm),
        "qwen3_moe",
    ),
    (
        "Qwen3MoeForSequenceClassification",
        a(F::Qwen3Moe, H::SeqCls),
        "qwen3_moe",
    ),
    (
        "Qwen3MoeForTokenClassification",
        a(F::Qwen3Moe, H::TokenCls),
        "qwen3_moe",
    ),
    (
        "Qwen3MoeForQuestionAnswering",
        a(F::Qwen3Moe, H::Qa),
        "qwen3_moe",
    ),
    ("Phi3Model", a(F::Phi3, H::Base), "phi3"),
    ("Phi3ForCausalLM", a(F::Phi3, H::CausalLm), "phi3"),
    (
        "Phi3ForSequenceClassification",
        a(F::Phi3, H::SeqCls),
        "phi3",
    ),
    (
        "Phi3ForTokenClassification",
        a(F::Phi3, H::TokenCls),
        "phi3",
    ),
    ("Olmo2Model", a(F::Olmo2, H::Base), "olmo2"),
    ("Olmo2ForCausalLM", a(F::Olmo2, H::CausalLm), "olmo2"),
    (
        "Olmo2ForSequenceClassification",
        a(F::Olmo2, H::SeqCls),
        "olmo2",
    ),
    ("GPTNeoXModel", a(F::GptNeoX, H::Base), "gpt_neox"),
    ("GPTNeoXForCausalLM", a(F::GptNeoX, H::CausalLm), "gpt_neox"),
    (
        "GPTNeoXForSequenceClassification",
        a(F::GptNeoX, H::SeqCls),
        "gpt_neox",
    ),
    (
        "GPTNeoXForTokenClassification",
        a(F::GptNeoX, H::TokenCls),
        "gpt_neox",
    ),
    (
        "GPTNeoXForQuestionAnswering",
        a(F::GptNeoX, H::Qa),
        "gpt_neox",
    ),
    ("GPT2Model", a(F::Gpt2, H::Base), "gpt2"),
    ("GPT2LMHeadModel", a(F::Gpt2, H::CausalLm), "gpt2"),
    (
        "GPT2ForSequenceClassification",
        a(F::Gpt2, H::SeqCls),
        "gpt2",
    ),
    (
        "GPT2ForTokenClassification",
        a(F::Gpt2, H::TokenCls),
        "gpt2",
    ),
    ("GPT2ForQuestionAnswering", a(F::Gpt2, H::Qa), "gpt2"),
    ("BertModel", a(F::Bert, H::Base), "bert"),
    ("BertForMaskedLM", a(F::Bert, H::MaskedLm), "bert"),
    (
        "BertForSequenceClassification",
        a(F::Bert, H::SeqCls),
        "bert",
    ),
    (
        "BertForTokenClassification",
        a(F::Bert, H::TokenCls),
        "bert",
    ),
    ("BertForQuestionAnswering", a(F::Bert, H::Qa), "bert"),
    ("RobertaModel", a(F::Roberta, H::Base), "roberta"),
    ("RobertaForMaskedLM", a(F::Roberta, H::MaskedLm), "roberta"),
    (
        "RobertaForSequenceClassification",
        a(F::Roberta, H::SeqCls),
        "roberta",
    ),
    (
        "RobertaForTokenClassification",
        a(F::Roberta, H::TokenCls),
        "roberta",
    ),
    (
        "RobertaForQuestionAnswering",
        a(F::Roberta, H::Qa),
        "roberta",
    ),
    ("DistilBertModel", a(F::DistilBert, H::Base), "distilbert"),
    (
        "DistilBertForMaskedLM",
        a(F::DistilBert, H::MaskedLm),
        "distilbert",
    ),
    (
        "DistilBertForSequenceClassification",
        a(F::DistilBert, H::SeqCls),
        "distilbert",
    ),
    (
        "DistilBertForTokenClassification",
        a(F::DistilBert, H::TokenCls),
        "distilbert",
    ),
    (
        "DistilBertForQuestionAnswering",
        a(F::DistilBert, H::Qa),
        "distilbert",
    ),
    ("T5Model", a(F::T5, H::Base), "t5"),
    ("T5ForConditionalGeneration", a(F::T5, H::Seq2SeqLm), "t5"),
    ("T5EncoderModel", a(F::T5, H::Encoder), "t5"),
    ("T5ForSequenceClassification", a(F::T5, H::SeqCls), "t5"),
    ("T5ForTokenClassification", a(F::T5, H::TokenCls), "t5"),
    ("T5ForQuestionAnswering", a(F::T5, H::Qa), "t5"),
    ("ViTModel", a(F::ViT, H::Base), "vit"),
    ("ViTForImageClassification", a(F::ViT, H::ImageCls), "vit"),
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
    /// The class `AutoModel.from_config` builds from a `model_type` alone (a config without
    /// `architectures`): the family's base model.
    fn for_model_type(t: &str) -> Option<Arch> {
        ARCHITECTURES
            .iter()
            .find(|(.., mt)| *mt == t)
            .map(|(_, a, _)| *a)
    }
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

/// Which heads read `num_labels` (the others ignore it, as transformers does).
fn reads_num_labels(arch: Arch) -> bool {
    match arch.head {
        Head::SeqCls | Head::TokenCls | Head::ImageCls => true,
        // BERT-style QA heads are `Linear(hidden, num_labels)`, and T5's `Linear(d_model, num_labels)`; the decoder QA heads are always 2 wide,
        // DistilBERT's must be 2.
        Head::Qa => matches!(
            arch.fam,
            Fam::Bert | Fam::Roberta | Fam::DistilBert | Fam::T5
        ),
        _ => false,
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
            let mut types: Vec<&str> = ARCHITECTURES.iter().map(|(.., t)| *t).collect();
            types.dedup();
            SpecError::new(
                ErrorCode::UnsupportedLayerType,
                join(path, "model_type"),
                format!(
                    "model_type `{t}` is not supported; use one of {}",
                    types.join(", ")
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
        return Err(SpecError::new(
            ErrorCode::InvalidValue,
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
            Some(v) => Err(crate::terms::fields::wrong_type(
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
            Some((v, k)) => crate::terms::fields::positive_size(v, &self.path(k)),
        }
    }

    pub fn opt_size(&self, keys: &[&'static str]) -> Result<Option<u64>> {
        match self.first(keys)? {
            None => Ok(None),
            Some((v, k)) => crate::terms::fields::positive_size(v, &self.path(k)).map(Some),
        }
    }

    pub fn bool(&self, key: &'static str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(crate::terms::fields::wrong_type(
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
            Some(v) => Err(crate::terms::fields::wrong_type(
                &self.path(key),
                "a number",
                v,
            )),
        }
    }

    /// A list of layer indices (`mlp_only_layers`); absent or null is empty.
    pub fn index_list(&self, key: &'static str) -> Result<Vec<u64>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_u64().ok_or_else(|| {
                        crate::terms::fields::wrong_type(
                            &format!("{}[{i}]", self.path(key)),
                            "a layer index",
                            v,
                        )
                    })
                })
                .collect(),
            Some(v) => Err(crate::terms::fields::wrong_type(
                &self.path(key),
                "a list of layer indices",
                v,
            )),
        }
    }

    /// A finite number (`None` when absent or null).
    pub fn float(&self, key: &'static str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(SpecError::new(
                    ErrorCode::InvalidValue,
                    self.path(key),
                    format!("{key} must be a finite number"),
                )),
            },
            Some(v) => Err(crate::terms::fields::wrong_type(
                &self.path(key),
                "a number",
                v,
            )),
        }
    }

    /// `num_labels`: `len(id2label)` when the config has `id2label` (what `PretrainedConfig`
    /// does), else `num_labels`, else 2. Both given and different is a conflict (transformers
    /// only warns and keeps `id2label`).
    pub fn num_labels(&self) -> Result<u64> {
        let from_map = match self.get("id2label") {
            None => None,
            Some(Value::Object(m)) if !m.is_empty() => Some(m.len() as u64),
            Some(v) => {
                return Err(crate::terms::fields::wrong_type(
                    &self.path("id2label"),
                    "a non-empty object of label names",
                    v,
                ));
            }
        };
        let given = self.opt_size(&["num_labels"])?;
        match (from_map, given) {
            (Some(m), Some(n)) if m != n => Err(SpecError::new(
                ErrorCode::ConflictingFields,
                self.path("num_labels"),
                format!("num_labels {n} contradicts id2label, which has {m} labels"),
            )),
            (Some(m), _) => Ok(m),
            (None, Some(n)) => Ok(n),
            (None, None) => Ok(2),
        }
    }

    /// The config's `dtype` (transformers 5) or `torch_dtype` (4.x); `dtype` wins when both
    /// are set, as in `PretrainedConfig.__init__`.
    pub fn dtype(&self) -> Result<Option<DType>> {
        for key in ["dtype", "torch_dtype"] {
            match self.get(key) {
                None => continue,
                Some(Value::String(s)) => {
                    let d = match s.strip_prefix("torch.").unwrap_or(s) {
                        "float32" | "float" => DType::F32,
                        "float16" | "half" => DType::F16,
                        "bfloat16" => DType::BF16,
                        "float64" | "double" => DType::F64,
                        _ => {
                            return Err(SpecError::new(
                                ErrorCode::InvalidValue,
                                self.path(key),
                                format!(
                                    "{key} `{s}` is not a weight dtype; use float32, float16, bfloat16 or float64"
                                ),
                            ));
                        }
                    };
                    return Ok(Some(d));
                }
                Some(v) => {
                    return Err(crate::terms::fields::wrong_type(
                        &self.path(key),
                        "a dtype name such as \"bfloat16\"",
                        v,
                    ));
                }
            }
        }
        Ok(None)
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
            Some(v) => Err(crate::terms::fields::wrong_type(
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

/// Tensors a head adds on top of the base model: `Linear` weight (+ bias).
pub(crate) fn head_count(head: Head, untied_lm: bool, seq_cls_bias: bool) -> u64 {
    match head {
        Head::CausalLm | Head::Seq2SeqLm => untied_lm as u64,
        Head::SeqCls => 1 + seq_cls_bias as u64,
        Head::TokenCls | Head::Qa | Head::ImageCls => 2,
        Head::Base | Head::MaskedLm | Head::Encoder => 0,
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

/// A `LayerNorm(h)` at `base`: `{base}.weight` one, `{base}.bias` zero (the generic
/// `_init_weights` rule every LayerNorm family shares).
pub(crate) fn layer_norm(out: &mut Vec<HfTensor>, base: &str, h: u64) {
    out.push(t(
        format!("{base}.weight"),
        vec![h],
        HfInit::Ones { why: NORM_W },
    ));
    out.push(t(
        format!("{base}.bias"),
        vec![h],
        HfInit::Zeros { why: NORM_B },
    ));
}

/// An `nn.Linear(i, o)` at `base`: `{base}.weight` `[o, i]` drawn by `weight`, and a zero
/// `{base}.bias` `[o]` when it has one.
pub(crate) fn linear(
    out: &mut Vec<HfTensor>,
    base: &str,
    o: u64,
    i: u64,
    weight: HfInit,
    bias: bool,
) {
    out.push(t(format!("{base}.weight"), vec![o, i], weight));
    if bias {
        out.push(t(
            format!("{base}.bias"),
            vec![o],
            HfInit::Zeros { why: BIAS },
        ));
    }
}

pub(crate) const HEAD: &str = "classification/QA head nn.Linear weight ~ N(0, initializer_range) (PreTrainedModel._init_weights)";

/// A `Linear(h, n)` head: `{name}.weight` ~ N(0, std) and, with `bias`, `{name}.bias` = 0.
pub(crate) fn linear_head(
    out: &mut Vec<HfTensor>,
    name: &str,
    n: u64,
    h: u64,
    std: f64,
    bias: bool,
) {
    out.push(t(format!("{name}.weight"), vec![n, h], normal(std, HEAD)));
    if bias {
        out.push(t(
            format!("{name}.bias"),
            vec![n],
            HfInit::Zeros { why: BIAS },
        ));
    }
}
