//! The supported model classes: each family (one `modeling_<family>.py`), each head on top of
//! its base model, and the table of class names and `model_type`s that `architectures` and
//! `model_type` are looked up in.

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

pub(super) const fn a(fam: Fam, head: Head) -> Arch {
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
    pub(super) fn for_model_type(t: &str) -> Option<Arch> {
        ARCHITECTURES
            .iter()
            .find(|(.., mt)| *mt == t)
            .map(|(_, a, _)| *a)
    }
}

/// Which heads read `num_labels` (the others ignore it, as transformers does).
pub(super) fn reads_num_labels(arch: Arch) -> bool {
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
