//! BERT (`BertForMaskedLM`, `BertModel`; `modeling_bert.py`). `BertPreTrainedModel._init_weights`:
//! Linear weights and the three embeddings ~ N(0, σ), the `pad_token_id` row of
//! `word_embeddings` 0, biases (with `cls.predictions.bias`) 0, LayerNorm 1 and 0.
//! `BertForMaskedLM` has no pooler; its `cls.predictions.decoder.weight` is tied to the word
//! embeddings (left out) unless `tie_word_embeddings` is false, and `decoder.bias` is always
//! the same tensor as `cls.predictions.bias` (left out).

use serde_json::{Map, Value, json};

use super::{
    Arch, BIAS, Cfg, EMBED, HfInit, HfTensor, LINEAR, NORM_B, NORM_W, generic_std, normal, t,
};
use crate::error::Result;

#[derive(Clone, Debug, PartialEq)]
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
    pub(super) fn parse(c: &Cfg<'_>) -> Result<BertConfig> {
        let vocab_size = c.size(&["vocab_size"], 30522)?;
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
        // BertConfig's pad_token_id defaults to 0; an explicit null means no padding row.
        let pad_token_id = match c.map.get("pad_token_id") {
            None => Some(0),
            Some(_) => c.pad_token(vocab_size)?,
        };
        Ok(BertConfig {
            vocab_size,
            hidden_size,
            num_hidden_layers: c.size(&["num_hidden_layers"], 12)?,
            num_attention_heads,
            intermediate_size: c.size(&["intermediate_size"], 3072)?,
            max_position_embeddings: c.size(&["max_position_embeddings"], 512)?,
            type_vocab_size: c.size(&["type_vocab_size"], 2)?,
            pad_token_id,
            tie_word_embeddings: c.bool("tie_word_embeddings", true)?,
            initializer_range: c.init_range()?,
        })
    }

    pub(super) fn write(&self, m: &mut Map<String, Value>) {
        m.insert("vocab_size".into(), json!(self.vocab_size));
        m.insert("hidden_size".into(), json!(self.hidden_size));
        m.insert("num_hidden_layers".into(), json!(self.num_hidden_layers));
        m.insert(
            "num_attention_heads".into(),
            json!(self.num_attention_heads),
        );
        m.insert("intermediate_size".into(), json!(self.intermediate_size));
        m.insert(
            "max_position_embeddings".into(),
            json!(self.max_position_embeddings),
        );
        m.insert("type_vocab_size".into(), json!(self.type_vocab_size));
        m.insert("pad_token_id".into(), json!(self.pad_token_id));
        m.insert(
            "tie_word_embeddings".into(),
            json!(self.tie_word_embeddings),
        );
        m.insert("initializer_range".into(), json!(self.initializer_range));
    }

    pub(super) fn tensors(&self, arch: Arch) -> Vec<HfTensor> {
        let std = generic_std(self.initializer_range);
        let w = || normal(std, LINEAR);
        let zero = HfInit::Zeros { why: BIAS };
        let one = HfInit::Ones { why: NORM_W };
        let nb = HfInit::Zeros { why: NORM_B };
        let mlm = arch == Arch::BertForMaskedLM;
        let p = if mlm { "bert." } else { "" };
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let mut out = Vec::new();
        let mut we = t(
            format!("{p}embeddings.word_embeddings.weight"),
            vec![self.vocab_size, h],
            normal(std, EMBED),
        );
        we.zero_row = self.pad_token_id;
        out.push(we);
        out.push(t(
            format!("{p}embeddings.position_embeddings.weight"),
            vec![self.max_position_embeddings, h],
            normal(std, EMBED),
        ));
        out.push(t(
            format!("{p}embeddings.token_type_embeddings.weight"),
            vec![self.type_vocab_size, h],
            normal(std, EMBED),
        ));
        let ln = |out: &mut Vec<HfTensor>, base: String| {
            out.push(t(format!("{base}.LayerNorm.weight"), vec![h], one));
            out.push(t(format!("{base}.LayerNorm.bias"), vec![h], nb));
        };
        let dense = |out: &mut Vec<HfTensor>, base: String, o: u64, i: u64| {
            out.push(t(format!("{base}.weight"), vec![o, i], w()));
            out.push(t(format!("{base}.bias"), vec![o], zero));
        };
        ln(&mut out, format!("{p}embeddings"));
        for l in 0..self.num_hidden_layers {
            let b = format!("{p}encoder.layer.{l}");
            for q in ["query", "key", "value"] {
                dense(&mut out, format!("{b}.attention.self.{q}"), h, h);
            }
            dense(&mut out, format!("{b}.attention.output.dense"), h, h);
            ln(&mut out, format!("{b}.attention.output"));
            dense(&mut out, format!("{b}.intermediate.dense"), i, h);
            dense(&mut out, format!("{b}.output.dense"), h, i);
            ln(&mut out, format!("{b}.output"));
        }
        if mlm {
            out.push(t(
                "cls.predictions.bias".into(),
                vec![self.vocab_size],
                zero,
            ));
            dense(&mut out, "cls.predictions.transform.dense".into(), h, h);
            ln(&mut out, "cls.predictions.transform".into());
            if !self.tie_word_embeddings {
                out.push(t(
                    "cls.predictions.decoder.weight".into(),
                    vec![self.vocab_size, h],
                    w(),
                ));
            }
        } else {
            dense(&mut out, "pooler.dense".into(), h, h);
        }
        out
    }
}
