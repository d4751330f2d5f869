//! BERT and RoBERTa (`modeling_bert.py`, `modeling_roberta.py`): the base model, the
//! masked-LM class and the sequence/token classification and QA heads.
//! `BertPreTrainedModel._init_weights` / `RobertaPreTrainedModel._init_weights`: Linear weights
//! and the three embeddings ~ N(0, σ), the `pad_token_id` row of `word_embeddings` 0 (RoBERTa:
//! of `position_embeddings` too, whose `padding_idx` is also `pad_token_id`), biases (with
//! `cls.predictions.bias` / `lm_head.bias`) 0, LayerNorm 1 and 0.
//! The masked-LM classes have no pooler; the decoder weight is tied to the word embeddings
//! (left out) unless `tie_word_embeddings` is false, and the decoder bias is the same tensor
//! as the head's `bias`: left out when tied, written (zeros) when untied, as `save_pretrained`
//! does. Only `BertModel`, `RobertaModel` and `BertForSequenceClassification` have a pooler.

use super::{
    Arch, BIAS, Cfg, EMBED, Fam, Head, HfInit, HfTensor, LINEAR, generic_std, layer_norm, linear,
    linear_head, normal, t,
};
use crate::error::{Result, SpecError};

/// Serialized field by field as the canonical `hf_config` keys (`HfModel::to_json`): the
/// field names are transformers' config keys.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BertConfig {
    pub vocab_size: u64,
    pub hidden_size: u64,
    pub num_hidden_layers: u64,
    pub num_attention_heads: u64,
    pub intermediate_size: u64,
    pub max_position_embeddings: u64,
    pub type_vocab_size: u64,
    pub pad_token_id: Option<u64>,
    pub tie_word_embeddings: bool,
    pub initializer_range: Option<f64>,
}

impl BertConfig {
    pub(super) fn parse(c: &Cfg<'_>, arch: Arch) -> Result<BertConfig> {
        let roberta = arch.fam == Fam::Roberta;
        let vocab_size = c.size(&["vocab_size"], if roberta { 50265 } else { 30522 })?;
        let hidden_size = c.size(&["hidden_size"], 768)?;
        let num_attention_heads = c.size(&["num_attention_heads"], 12)?;
        c.divisible(
            hidden_size,
            "hidden_size",
            num_attention_heads,
            "num_attention_heads",
        )?;
        c.unsupported_if(
            "add_cross_attention",
            true,
            "cross-attention weights (crossattention.*) are not generated",
        )?;
        // BertConfig's pad_token_id defaults to 0 (RobertaConfig's to 1); an explicit null
        // means no padding row.
        let pad_token_id = match c.map.get("pad_token_id") {
            None => Some(if roberta { 1 } else { 0 }),
            Some(_) => c.pad_token(vocab_size)?,
        };
        let max_position_embeddings = c.size(&["max_position_embeddings"], 512)?;
        if roberta
            && let Some(p) = pad_token_id
            && p >= max_position_embeddings
        {
            return Err(SpecError::inconsistent_sizes(
                c.path("pad_token_id"),
                format!(
                    "RoBERTa's position embeddings use pad_token_id {p} as padding_idx; it must be below max_position_embeddings ({max_position_embeddings})"
                ),
            ));
        }
        Ok(BertConfig {
            vocab_size,
            hidden_size,
            num_hidden_layers: c.size(&["num_hidden_layers"], 12)?,
            num_attention_heads,
            intermediate_size: c.size(&["intermediate_size"], 3072)?,
            max_position_embeddings,
            type_vocab_size: c.size(&["type_vocab_size"], 2)?,
            pad_token_id,
            tie_word_embeddings: c.bool("tie_word_embeddings", true)?,
            initializer_range: c.init_range()?,
        })
    }

    /// `tensors(arch, _).len()` in closed form.
    pub(super) fn tensor_count(&self, arch: Arch) -> u64 {
        let roberta = arch.fam == Fam::Roberta;
        let pooler = matches!(arch.head, Head::Base) || (arch.head == Head::SeqCls && !roberta);
        let head = match arch.head {
            Head::MaskedLm => 5 + 2 * (!self.tie_word_embeddings) as u64,
            Head::SeqCls if roberta => 4,
            h => super::head_count(h, false, true),
        };
        5u64.saturating_add(self.num_hidden_layers.saturating_mul(16))
            .saturating_add(2 * pooler as u64 + head)
    }

    pub(super) fn tensors(&self, arch: Arch, num_labels: u64) -> Vec<HfTensor> {
        let std = generic_std(self.initializer_range);
        let w = || normal(std, LINEAR);
        let zero = HfInit::Zeros { why: BIAS };
        let roberta = arch.fam == Fam::Roberta;
        let p = match (arch.head, roberta) {
            (Head::Base, _) => "",
            (_, true) => "roberta.",
            (_, false) => "bert.",
        };
        let pooler = matches!(arch.head, Head::Base) || (arch.head == Head::SeqCls && !roberta);
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let mut out = Vec::new();
        let mut we = t(
            format!("{p}embeddings.word_embeddings.weight"),
            vec![self.vocab_size, h],
            normal(std, EMBED),
        );
        we.zero_row = self.pad_token_id;
        out.push(we);
        let mut pe = t(
            format!("{p}embeddings.position_embeddings.weight"),
            vec![self.max_position_embeddings, h],
            normal(std, EMBED),
        );
        if roberta {
            pe.zero_row = self.pad_token_id;
        }
        out.push(pe);
        out.push(t(
            format!("{p}embeddings.token_type_embeddings.weight"),
            vec![self.type_vocab_size, h],
            normal(std, EMBED),
        ));
        let ln = |out: &mut Vec<HfTensor>, base: String, name: &str| {
            layer_norm(out, &format!("{base}.{name}"), h)
        };
        let dense = |out: &mut Vec<HfTensor>, base: String, o: u64, i: u64| {
            linear(out, &base, o, i, w(), true)
        };
        ln(&mut out, format!("{p}embeddings"), "LayerNorm");
        for l in 0..self.num_hidden_layers {
            let b = format!("{p}encoder.layer.{l}");
            for q in ["query", "key", "value"] {
                dense(&mut out, format!("{b}.attention.self.{q}"), h, h);
            }
            dense(&mut out, format!("{b}.attention.output.dense"), h, h);
            ln(&mut out, format!("{b}.attention.output"), "LayerNorm");
            dense(&mut out, format!("{b}.intermediate.dense"), i, h);
            dense(&mut out, format!("{b}.output.dense"), h, i);
            ln(&mut out, format!("{b}.output"), "LayerNorm");
        }
        if pooler {
            dense(&mut out, format!("{p}pooler.dense"), h, h);
        }
        match arch.head {
            Head::MaskedLm => {
                let (bias, transform, norm, decoder) = if roberta {
                    (
                        "lm_head.bias",
                        "lm_head.dense",
                        ("lm_head", "layer_norm"),
                        "lm_head.decoder",
                    )
                } else {
                    (
                        "cls.predictions.bias",
                        "cls.predictions.transform.dense",
                        ("cls.predictions.transform", "LayerNorm"),
                        "cls.predictions.decoder",
                    )
                };
                out.push(t(bias.into(), vec![self.vocab_size], zero));
                dense(&mut out, transform.into(), h, h);
                ln(&mut out, norm.0.into(), norm.1);
                if !self.tie_word_embeddings {
                    out.push(t(
                        format!("{decoder}.weight"),
                        vec![self.vocab_size, h],
                        w(),
                    ));
                    // Untied, the decoder bias is saved under its own name too (it is the
                    // same zero tensor as the head's `bias`).
                    out.push(t(format!("{decoder}.bias"), vec![self.vocab_size], zero));
                }
            }
            Head::SeqCls if roberta => {
                dense(&mut out, "classifier.dense".into(), h, h);
                linear_head(&mut out, "classifier.out_proj", num_labels, h, std, true);
            }
            Head::SeqCls | Head::TokenCls => {
                linear_head(&mut out, "classifier", num_labels, h, std, true)
            }
            Head::Qa => linear_head(&mut out, "qa_outputs", num_labels, h, std, true),
            _ => {}
        }
        out
    }
}
