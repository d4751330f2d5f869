//! T5 (`modeling_t5.py`): `T5Model`, `T5ForConditionalGeneration`, `T5EncoderModel`,
//! `T5ForSequenceClassification` (`transformer` = T5Model + `classification_head`),
//! `T5ForTokenClassification` (`transformer` = T5EncoderModel + `classifier`) and
//! `T5ForQuestionAnswering` (`qa_outputs`, `num_labels` wide).
//!
//! `T5PreTrainedModel._init_weights` scales everything by `initializer_factor` (f, default 1)
//! instead of using `initializer_range`: `shared` (and an untied `lm_head`) ~ N(0, f);
//! attention `q` ~ N(0, f·(d_model·d_kv)^-½), `k`/`v` ~ N(0, f·d_model^-½), `o` ~
//! N(0, f·(num_heads·d_kv)^-½), `relative_attention_bias` (first block of each stack) ~
//! N(0, f·d_model^-½); `wi`/`wi_0`/`wi_1` ~ N(0, f·d_model^-½), `wo` ~ N(0, f·d_ff^-½);
//! T5LayerNorm weight = f; the classification head's `dense`/`out_proj` and `qa_outputs` ~
//! N(0, f·d_model^-½), the token classifier ~ N(0, f); their biases 0. The encoder's and
//! decoder's `embed_tokens` are `shared` (not saved), as is a tied `lm_head`.

use super::{Arch, BIAS, Cfg, Head, HfInit, HfTensor, normal, t};
use crate::error::{Result, SpecError};

/// Serialized field by field as the canonical `hf_config` keys (`HfModel::to_json`): the
/// field names are transformers' config keys.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct T5Config {
    pub vocab_size: u64,
    pub d_model: u64,
    pub d_kv: u64,
    pub d_ff: u64,
    pub num_layers: u64,
    pub num_decoder_layers: u64,
    pub num_heads: u64,
    pub relative_attention_num_buckets: u64,
    /// `feed_forward_proj` starts with `gated-` (wi_0/wi_1 instead of wi); derived from it,
    /// so not a key of its own.
    #[serde(skip)]
    pub gated: bool,
    pub feed_forward_proj: String,
    pub tie_word_embeddings: bool,
    pub initializer_factor: f64,
}

const T5: &str = "T5PreTrainedModel._init_weights (initializer_factor-scaled)";
const T5_NORM: &str = "T5LayerNorm weight = initializer_factor (T5PreTrainedModel._init_weights)";

impl T5Config {
    pub(super) fn parse(c: &Cfg<'_>) -> Result<T5Config> {
        let num_layers = c.size(&["num_layers", "num_hidden_layers"], 6)?;
        let ffp = c.str("feed_forward_proj")?.unwrap_or("relu");
        // T5Config.__init__: "gated-{act}" or "{act}"; anything with more parts is an error.
        let parts: Vec<&str> = ffp.split('-').collect();
        let gated = match parts.as_slice() {
            [_] => false,
            ["gated", _] => true,
            _ => {
                return Err(SpecError::invalid_value(
                    c.path("feed_forward_proj"),
                    format!(
                        "`{ffp}` is not a valid activation; use \"gated-{{act}}\" or \"{{act}}\", e.g. \"gated-gelu\" or \"relu\""
                    ),
                ));
            }
        };
        let initializer_factor = c.float("initializer_factor")?.unwrap_or(1.0);
        if initializer_factor < 0.0 {
            return Err(SpecError::invalid_value(
                c.path("initializer_factor"),
                "initializer_factor must be ≥ 0",
            ));
        }
        Ok(T5Config {
            vocab_size: c.size(&["vocab_size"], 32128)?,
            d_model: c.size(&["d_model", "hidden_size"], 512)?,
            d_kv: c.size(&["d_kv", "head_dim"], 64)?,
            d_ff: c.size(&["d_ff"], 2048)?,
            num_layers,
            num_decoder_layers: c.size(&["num_decoder_layers"], num_layers)?,
            num_heads: c.size(&["num_heads", "num_attention_heads"], 8)?,
            relative_attention_num_buckets: c.size(&["relative_attention_num_buckets"], 32)?,
            gated,
            feed_forward_proj: ffp.to_string(),
            tie_word_embeddings: c.bool("tie_word_embeddings", true)?,
            initializer_factor,
        })
    }

    /// `tensors(arch, _).len()` in closed form.
    pub(super) fn tensor_count(&self, arch: Arch) -> u64 {
        let ff = 2 + self.gated as u64;
        // Self-attention q/k/v/o + norm, feed-forward + norm; the first block adds the
        // relative attention bias; each stack ends with a final norm.
        let encoder = self.num_layers.saturating_mul(6 + ff).saturating_add(2);
        let decoder = self
            .num_decoder_layers
            .saturating_mul(11 + ff)
            .saturating_add(2);
        let with_decoder = !matches!(arch.head, Head::Encoder | Head::TokenCls);
        let head = match arch.head {
            Head::SeqCls => 4,
            h => super::head_count(h, !self.tie_word_embeddings, true),
        };
        1u64.saturating_add(encoder)
            .saturating_add(if with_decoder { decoder } else { 0 })
            .saturating_add(head)
    }

    pub(super) fn tensors(&self, arch: Arch, num_labels: u64) -> Vec<HfTensor> {
        let f = self.initializer_factor;
        let d = self.d_model as f64;
        let init = |std: f64| {
            if std == 0.0 {
                HfInit::Zeros { why: T5 }
            } else {
                normal(std, T5)
            }
        };
        let norm = if f == 1.0 {
            HfInit::Ones { why: T5_NORM }
        } else {
            HfInit::Constant {
                value: f,
                why: T5_NORM,
            }
        };
        let inner = self.num_heads.saturating_mul(self.d_kv);
        let q_std = f / libm::sqrt(d * self.d_kv as f64);
        let kv_std = f / libm::sqrt(d);
        let o_std = f / libm::sqrt(inner as f64);
        let wo_std = f / libm::sqrt(self.d_ff as f64);
        let p = match arch.head {
            Head::SeqCls | Head::TokenCls => "transformer.",
            _ => "",
        };
        let dm = self.d_model;
        let mut out = vec![t(
            format!("{p}shared.weight"),
            vec![self.vocab_size, dm],
            init(f),
        )];
        let attn = |out: &mut Vec<HfTensor>, b: String, relative: bool| {
            out.push(t(format!("{b}.q.weight"), vec![inner, dm], init(q_std)));
            out.push(t(format!("{b}.k.weight"), vec![inner, dm], init(kv_std)));
            out.push(t(format!("{b}.v.weight"), vec![inner, dm], init(kv_std)));
            out.push(t(format!("{b}.o.weight"), vec![dm, inner], init(o_std)));
            if relative {
                out.push(t(
                    format!("{b}.relative_attention_bias.weight"),
                    vec![self.relative_attention_num_buckets, self.num_heads],
                    init(kv_std),
                ));
            }
        };
        let ff = |out: &mut Vec<HfTensor>, b: String| {
            let b = format!("{b}.DenseReluDense");
            if self.gated {
                out.push(t(
                    format!("{b}.wi_0.weight"),
                    vec![self.d_ff, dm],
                    init(kv_std),
                ));
                out.push(t(
                    format!("{b}.wi_1.weight"),
                    vec![self.d_ff, dm],
                    init(kv_std),
                ));
            } else {
                out.push(t(
                    format!("{b}.wi.weight"),
                    vec![self.d_ff, dm],
                    init(kv_std),
                ));
            }
            out.push(t(
                format!("{b}.wo.weight"),
                vec![dm, self.d_ff],
                init(wo_std),
            ));
        };
        for l in 0..self.num_layers {
            let b = format!("{p}encoder.block.{l}.layer");
            attn(&mut out, format!("{b}.0.SelfAttention"), l == 0);
            out.push(t(format!("{b}.0.layer_norm.weight"), vec![dm], norm));
            ff(&mut out, format!("{b}.1"));
            out.push(t(format!("{b}.1.layer_norm.weight"), vec![dm], norm));
        }
        out.push(t(
            format!("{p}encoder.final_layer_norm.weight"),
            vec![dm],
            norm,
        ));
        let decoder = !matches!(arch.head, Head::Encoder | Head::TokenCls);
        if decoder {
            for l in 0..self.num_decoder_layers {
                let b = format!("{p}decoder.block.{l}.layer");
                attn(&mut out, format!("{b}.0.SelfAttention"), l == 0);
                out.push(t(format!("{b}.0.layer_norm.weight"), vec![dm], norm));
                attn(&mut out, format!("{b}.1.EncDecAttention"), false);
                out.push(t(format!("{b}.1.layer_norm.weight"), vec![dm], norm));
                ff(&mut out, format!("{b}.2"));
                out.push(t(format!("{b}.2.layer_norm.weight"), vec![dm], norm));
            }
            out.push(t(
                format!("{p}decoder.final_layer_norm.weight"),
                vec![dm],
                norm,
            ));
        }
        let zero = HfInit::Zeros { why: BIAS };
        let mut head = |name: &str, o: u64, std: f64| {
            out.push(t(format!("{name}.weight"), vec![o, dm], init(std)));
            out.push(t(format!("{name}.bias"), vec![o], zero));
        };
        match arch.head {
            Head::SeqCls => {
                head("classification_head.dense", dm, kv_std);
                head("classification_head.out_proj", num_labels, kv_std);
            }
            Head::TokenCls => head("classifier", num_labels, f),
            Head::Qa => head("qa_outputs", num_labels, kv_std),
            Head::Seq2SeqLm if !self.tie_word_embeddings => {
                out.push(t(
                    "lm_head.weight".into(),
                    vec![self.vocab_size, dm],
                    init(f),
                ));
            }
            _ => {}
        }
        out
    }
}
