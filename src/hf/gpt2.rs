//! GPT-2 (`GPT2Model`, `GPT2LMHeadModel`, `GPT2ForSequenceClassification` (`score`, no bias),
//! `GPT2ForTokenClassification` (`classifier`), `GPT2ForQuestionAnswering` (`qa_outputs`, 2
//! wide); `modeling_gpt2.py`; the heads are nn.Linear ~ N(0, σ), bias 0). `GPT2PreTrainedModel._init_weights`
//! (children first, then the parent, so the parent's rule wins): Conv1D weights (`[in, out]`)
//! ~ N(0, initializer_range), except `attn.c_proj.weight` and `mlp.c_proj.weight` ~
//! N(0, initializer_range/√(2·n_layer)); `wte`/`wpe` ~ N(0, σ); biases 0; LayerNorm 1 and 0.
//! `lm_head.weight` is tied to `wte` (left out of the file) unless `tie_word_embeddings` is false.

use super::{
    Arch, BIAS, Cfg, EMBED, Head, HfInit, HfTensor, NORM_B, NORM_W, generic_std, linear_head,
    normal, t,
};
use crate::error::Result;

/// Serialized field by field as the canonical `hf_config` keys (`HfModel::to_json`): the
/// field names are transformers' config keys.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Gpt2Config {
    pub vocab_size: u64,
    pub n_positions: u64,
    pub n_embd: u64,
    pub n_layer: u64,
    pub n_head: u64,
    pub n_inner: u64,
    pub tie_word_embeddings: bool,
    pub initializer_range: Option<f64>,
}

const CONV1D: &str =
    "Conv1D weight [in, out] ~ N(0, initializer_range) (GPT2PreTrainedModel._init_weights)";
const C_PROJ: &str = "c_proj.weight ~ N(0, initializer_range / sqrt(2 * n_layer)) (GPT2PreTrainedModel._init_weights)";

impl Gpt2Config {
    pub(super) fn parse(c: &Cfg<'_>) -> Result<Gpt2Config> {
        let n_embd = c.size(&["n_embd", "hidden_size"], 768)?;
        let n_head = c.size(&["n_head", "num_attention_heads"], 12)?;
        let n_head_key = if c.opt_size(&["n_head"])?.is_some() {
            "n_head"
        } else {
            "num_attention_heads"
        };
        c.divisible(n_embd, "n_embd", n_head, n_head_key)?;
        c.unsupported_if(
            "add_cross_attention",
            true,
            "cross-attention weights (crossattention.*, ln_cross_attn) are not generated",
        )?;
        Ok(Gpt2Config {
            vocab_size: c.size(&["vocab_size"], 50257)?,
            n_positions: c.size(&["n_positions", "max_position_embeddings"], 1024)?,
            n_embd,
            n_layer: c.size(&["n_layer", "num_hidden_layers"], 12)?,
            n_head,
            n_inner: c.size(&["n_inner"], 4 * n_embd)?,
            tie_word_embeddings: c.bool("tie_word_embeddings", true)?,
            initializer_range: c.init_range()?,
        })
    }

    /// `tensors(arch, _).len()` in closed form.
    pub(super) fn tensor_count(&self, arch: Arch) -> u64 {
        4u64.saturating_add(self.n_layer.saturating_mul(12))
            .saturating_add(super::head_count(
                arch.head,
                !self.tie_word_embeddings,
                false,
            ))
    }

    pub(super) fn tensors(&self, arch: Arch, num_labels: u64) -> Vec<HfTensor> {
        // Conv1D and c_proj read config.initializer_range as is (null → the 0.02 default);
        // embeddings and LayerNorm go through the generic rule (0 or null → 0.02).
        let raw = self.initializer_range.unwrap_or(0.02);
        let std = generic_std(self.initializer_range);
        let proj_std = raw / libm::sqrt(2.0 * self.n_layer as f64);
        let head = arch.head == Head::CausalLm;
        let p = if arch.head == Head::Base {
            ""
        } else {
            "transformer."
        };
        let (e, inner) = (self.n_embd, self.n_inner);
        let zero = HfInit::Zeros { why: BIAS };
        let one = HfInit::Ones { why: NORM_W };
        let nb = HfInit::Zeros { why: NORM_B };
        let mut out = vec![
            t(
                format!("{p}wte.weight"),
                vec![self.vocab_size, e],
                normal(std, EMBED),
            ),
            t(
                format!("{p}wpe.weight"),
                vec![self.n_positions, e],
                normal(std, EMBED),
            ),
        ];
        for l in 0..self.n_layer {
            let b = format!("{p}h.{l}");
            out.push(t(format!("{b}.ln_1.weight"), vec![e], one));
            out.push(t(format!("{b}.ln_1.bias"), vec![e], nb));
            out.push(t(
                format!("{b}.attn.c_attn.weight"),
                vec![e, 3 * e],
                normal(raw, CONV1D),
            ));
            out.push(t(format!("{b}.attn.c_attn.bias"), vec![3 * e], zero));
            out.push(t(
                format!("{b}.attn.c_proj.weight"),
                vec![e, e],
                normal(proj_std, C_PROJ),
            ));
            out.push(t(format!("{b}.attn.c_proj.bias"), vec![e], zero));
            out.push(t(format!("{b}.ln_2.weight"), vec![e], one));
            out.push(t(format!("{b}.ln_2.bias"), vec![e], nb));
            out.push(t(
                format!("{b}.mlp.c_fc.weight"),
                vec![e, inner],
                normal(raw, CONV1D),
            ));
            out.push(t(format!("{b}.mlp.c_fc.bias"), vec![inner], zero));
            out.push(t(
                format!("{b}.mlp.c_proj.weight"),
                vec![inner, e],
                normal(proj_std, C_PROJ),
            ));
            out.push(t(format!("{b}.mlp.c_proj.bias"), vec![e], zero));
        }
        out.push(t(format!("{p}ln_f.weight"), vec![e], one));
        out.push(t(format!("{p}ln_f.bias"), vec![e], nb));
        if head && !self.tie_word_embeddings {
            out.push(t(
                "lm_head.weight".into(),
                vec![self.vocab_size, e],
                normal(std, super::LINEAR),
            ));
        }
        match arch.head {
            Head::SeqCls => linear_head(&mut out, "score", num_labels, e, std, false),
            Head::TokenCls => linear_head(&mut out, "classifier", num_labels, e, std, true),
            Head::Qa => linear_head(&mut out, "qa_outputs", 2, e, std, true),
            _ => {}
        }
        out
    }
}
