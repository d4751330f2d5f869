//! DistilBERT (`modeling_distilbert.py`): `DistilBertModel`, `DistilBertForMaskedLM`,
//! `DistilBertForSequenceClassification` (`pre_classifier` then `classifier`),
//! `DistilBertForTokenClassification` and `DistilBertForQuestionAnswering` (`qa_outputs`,
//! `num_labels` must be 2). `DistilBertPreTrainedModel._init_weights` is the generic rule
//! (Linear and embeddings ~ N(0, σ), the `pad_token_id` row of `word_embeddings` 0, biases 0,
//! LayerNorm 1 and 0) plus sinusoidal position embeddings when `sinusoidal_pos_embds`, which
//! this service does not generate (422). The masked-LM decoder `vocab_projector.weight` is
//! tied to the word embeddings unless `tie_word_embeddings` is false; its bias is always saved.

use super::{
    Arch, BIAS, Cfg, EMBED, Head, HfInit, HfTensor, LINEAR, generic_std, layer_norm, linear,
    linear_head, normal, t,
};
use crate::error::Result;

/// Serialized field by field as the canonical `hf_config` keys (`HfModel::to_json`): the
/// field names are transformers' config keys.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DistilBertConfig {
    pub vocab_size: u64,
    pub max_position_embeddings: u64,
    pub n_layers: u64,
    pub n_heads: u64,
    pub dim: u64,
    pub hidden_dim: u64,
    pub pad_token_id: Option<u64>,
    pub tie_word_embeddings: bool,
    pub initializer_range: Option<f64>,
}

impl DistilBertConfig {
    pub(super) fn parse(c: &Cfg<'_>) -> Result<DistilBertConfig> {
        let dim = c.size(&["dim", "hidden_size"], 768)?;
        let n_heads = c.size(&["n_heads", "num_attention_heads"], 12)?;
        c.divisible(dim, "dim", n_heads, "n_heads")?;
        c.unsupported_if(
            "sinusoidal_pos_embds",
            true,
            "sinusoidal position embeddings (create_sinusoidal_embeddings) are not generated",
        )?;
        let vocab_size = c.size(&["vocab_size"], 30522)?;
        let pad_token_id = match c.map.get("pad_token_id") {
            None => Some(0),
            Some(_) => c.pad_token(vocab_size)?,
        };
        Ok(DistilBertConfig {
            vocab_size,
            max_position_embeddings: c.size(&["max_position_embeddings"], 512)?,
            n_layers: c.size(&["n_layers", "num_hidden_layers"], 6)?,
            n_heads,
            dim,
            hidden_dim: c.size(&["hidden_dim"], 3072)?,
            pad_token_id,
            tie_word_embeddings: c.bool("tie_word_embeddings", true)?,
            initializer_range: c.init_range()?,
        })
    }

    /// `tensors(arch, _).len()` in closed form.
    pub(super) fn tensor_count(&self, arch: Arch) -> u64 {
        let head = match arch.head {
            Head::MaskedLm => 5 + (!self.tie_word_embeddings) as u64,
            Head::SeqCls => 4,
            h => super::head_count(h, false, true),
        };
        4u64.saturating_add(self.n_layers.saturating_mul(16))
            .saturating_add(head)
    }

    pub(super) fn tensors(&self, arch: Arch, num_labels: u64) -> Vec<HfTensor> {
        let std = generic_std(self.initializer_range);
        let w = || normal(std, LINEAR);
        let zero = HfInit::Zeros { why: BIAS };
        let p = if arch.head == Head::Base {
            ""
        } else {
            "distilbert."
        };
        let (d, hd) = (self.dim, self.hidden_dim);
        let mut out = Vec::new();
        let mut we = t(
            format!("{p}embeddings.word_embeddings.weight"),
            vec![self.vocab_size, d],
            normal(std, EMBED),
        );
        we.zero_row = self.pad_token_id;
        out.push(we);
        out.push(t(
            format!("{p}embeddings.position_embeddings.weight"),
            vec![self.max_position_embeddings, d],
            normal(std, EMBED),
        ));
        let ln = |out: &mut Vec<HfTensor>, base: String| layer_norm(out, &base, d);
        let dense = |out: &mut Vec<HfTensor>, base: String, o: u64, i: u64| {
            linear(out, &base, o, i, w(), true)
        };
        ln(&mut out, format!("{p}embeddings.LayerNorm"));
        for l in 0..self.n_layers {
            let b = format!("{p}transformer.layer.{l}");
            for q in ["q_lin", "k_lin", "v_lin", "out_lin"] {
                dense(&mut out, format!("{b}.attention.{q}"), d, d);
            }
            ln(&mut out, format!("{b}.sa_layer_norm"));
            dense(&mut out, format!("{b}.ffn.lin1"), hd, d);
            dense(&mut out, format!("{b}.ffn.lin2"), d, hd);
            ln(&mut out, format!("{b}.output_layer_norm"));
        }
        match arch.head {
            Head::MaskedLm => {
                dense(&mut out, "vocab_transform".into(), d, d);
                ln(&mut out, "vocab_layer_norm".into());
                if !self.tie_word_embeddings {
                    out.push(t(
                        "vocab_projector.weight".into(),
                        vec![self.vocab_size, d],
                        w(),
                    ));
                }
                out.push(t(
                    "vocab_projector.bias".into(),
                    vec![self.vocab_size],
                    zero,
                ));
            }
            Head::SeqCls => {
                dense(&mut out, "pre_classifier".into(), d, d);
                linear_head(&mut out, "classifier", num_labels, d, std, true);
            }
            Head::TokenCls => linear_head(&mut out, "classifier", num_labels, d, std, true),
            Head::Qa => linear_head(&mut out, "qa_outputs", 2, d, std, true),
            _ => {}
        }
        out
    }
}
