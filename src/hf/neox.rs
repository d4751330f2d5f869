//! GPT-NeoX (`modeling_gpt_neox.py`): `GPTNeoXModel`, `GPTNeoXForCausalLM` (its head is saved as
//! `embed_out.weight`, untied by default), `GPTNeoXForSequenceClassification` (`score`, no
//! bias), `GPTNeoXForTokenClassification` (`classifier`) and `GPTNeoXForQuestionAnswering`
//! (`qa_outputs`, 2 wide). No `_init_weights` override: the generic rule, Linear and
//! `embed_in` ~ N(0, σ) (no padding row: `embed_in` has no `padding_idx`), biases 0,
//! LayerNorm 1 and 0.

use super::{
    Arch, Cfg, EMBED, Head, HfTensor, LINEAR, generic_std, layer_norm, linear, linear_head, normal,
    t,
};
use crate::error::Result;

/// Serialized field by field as the canonical `hf_config` keys (`HfModel::to_json`): the
/// field names are transformers' config keys.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NeoXConfig {
    pub vocab_size: u64,
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub num_hidden_layers: u64,
    pub num_attention_heads: u64,
    pub attention_bias: bool,
    pub tie_word_embeddings: bool,
    pub initializer_range: Option<f64>,
}

impl NeoXConfig {
    pub(super) fn parse(c: &Cfg<'_>) -> Result<NeoXConfig> {
        let hidden_size = c.size(&["hidden_size"], 6144)?;
        let num_attention_heads = c.size(&["num_attention_heads"], 64)?;
        c.divisible(
            hidden_size,
            "hidden_size",
            num_attention_heads,
            "num_attention_heads",
        )?;
        Ok(NeoXConfig {
            vocab_size: c.size(&["vocab_size"], 50432)?,
            hidden_size,
            intermediate_size: c.size(&["intermediate_size"], 24576)?,
            num_hidden_layers: c.size(&["num_hidden_layers"], 44)?,
            num_attention_heads,
            attention_bias: c.bool("attention_bias", true)?,
            tie_word_embeddings: c.bool("tie_word_embeddings", false)?,
            initializer_range: c.init_range()?,
        })
    }

    /// `tensors(arch, _).len()` in closed form.
    pub(super) fn tensor_count(&self, arch: Arch) -> u64 {
        let per_layer = 10 + 2 * self.attention_bias as u64;
        3u64.saturating_add(self.num_hidden_layers.saturating_mul(per_layer))
            .saturating_add(super::head_count(
                arch.head,
                !self.tie_word_embeddings,
                false,
            ))
    }

    pub(super) fn tensors(&self, arch: Arch, num_labels: u64) -> Vec<HfTensor> {
        let std = generic_std(self.initializer_range);
        let w = || normal(std, LINEAR);
        let p = if arch.head == Head::Base {
            ""
        } else {
            "gpt_neox."
        };
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let mut out = vec![t(
            format!("{p}embed_in.weight"),
            vec![self.vocab_size, h],
            normal(std, EMBED),
        )];
        let ln = |out: &mut Vec<HfTensor>, base: String| layer_norm(out, &base, h);
        let lin = |out: &mut Vec<HfTensor>, base: String, o: u64, i: u64, bias: bool| {
            linear(out, &base, o, i, w(), bias)
        };
        for l in 0..self.num_hidden_layers {
            let b = format!("{p}layers.{l}");
            ln(&mut out, format!("{b}.input_layernorm"));
            ln(&mut out, format!("{b}.post_attention_layernorm"));
            let qkv = h.saturating_mul(3);
            let ab = self.attention_bias;
            lin(
                &mut out,
                format!("{b}.attention.query_key_value"),
                qkv,
                h,
                ab,
            );
            lin(&mut out, format!("{b}.attention.dense"), h, h, ab);
            lin(&mut out, format!("{b}.mlp.dense_h_to_4h"), i, h, true);
            lin(&mut out, format!("{b}.mlp.dense_4h_to_h"), h, i, true);
        }
        ln(&mut out, format!("{p}final_layer_norm"));
        match arch.head {
            Head::CausalLm if !self.tie_word_embeddings => {
                out.push(t("embed_out.weight".into(), vec![self.vocab_size, h], w()));
            }
            Head::SeqCls => linear_head(&mut out, "score", num_labels, h, std, false),
            Head::TokenCls => linear_head(&mut out, "classifier", num_labels, h, std, true),
            Head::Qa => linear_head(&mut out, "qa_outputs", 2, h, std, true),
            _ => {}
        }
        out
    }
}
