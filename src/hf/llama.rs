//! Llama (`LlamaForCausalLM`, `LlamaModel`) and the Llama-shaped Mistral and Qwen2
//! (`modeling_llama.py`, `modeling_mistral.py`, `modeling_qwen2.py`). All of them use the
//! generic `PreTrainedModel._init_weights`: every `nn.Linear` weight and `embed_tokens` ~
//! N(0, σ) (no depth scaling), biases 0, RMSNorm weights 1, the `pad_token_id` row 0.

use serde_json::{Map, Value, json};

use super::{Arch, BIAS, Cfg, EMBED, HfInit, HfTensor, LINEAR, NORM_W, generic_std, normal, t};
use crate::error::Result;

#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: u64,
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub num_hidden_layers: u64,
    pub num_attention_heads: u64,
    pub num_key_value_heads: u64,
    pub head_dim: u64,
    /// Llama only (Mistral has no biases; Qwen2 always has q/k/v biases and no others).
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub tie_word_embeddings: bool,
    pub pad_token_id: Option<u64>,
    pub initializer_range: Option<f64>,
}

/// transformers' defaults per model type: (vocab, hidden, intermediate, layers, heads, kv heads).
fn defaults(arch: Arch) -> (u64, u64, u64, u64, u64, Option<u64>) {
    match arch {
        Arch::MistralForCausalLM | Arch::MistralModel => (32000, 4096, 14336, 32, 32, Some(8)),
        Arch::Qwen2ForCausalLM | Arch::Qwen2Model => (151936, 4096, 22016, 32, 32, Some(32)),
        _ => (32000, 4096, 11008, 32, 32, None),
    }
}

fn is_llama(arch: Arch) -> bool {
    matches!(arch, Arch::LlamaForCausalLM | Arch::LlamaModel)
}

fn is_qwen2(arch: Arch) -> bool {
    matches!(arch, Arch::Qwen2ForCausalLM | Arch::Qwen2Model)
}

impl LlamaConfig {
    pub(super) fn parse(c: &Cfg<'_>, arch: Arch) -> Result<LlamaConfig> {
        let (dv, dh, di, dl, dn, dkv) = defaults(arch);
        let vocab_size = c.size(&["vocab_size"], dv)?;
        let hidden_size = c.size(&["hidden_size"], dh)?;
        let intermediate_size = c.size(&["intermediate_size"], di)?;
        let num_hidden_layers = c.size(&["num_hidden_layers"], dl)?;
        let num_attention_heads = c.size(&["num_attention_heads"], dn)?;
        let num_key_value_heads = c
            .opt_size(&["num_key_value_heads"])?
            .or(dkv)
            .unwrap_or(num_attention_heads);
        let head_dim = match c.opt_size(&["head_dim"])? {
            Some(d) => d,
            None => {
                c.divisible(
                    hidden_size,
                    "hidden_size",
                    num_attention_heads,
                    "num_attention_heads",
                )?;
                hidden_size / num_attention_heads
            }
        };
        c.divisible(
            num_attention_heads,
            "num_attention_heads",
            num_key_value_heads,
            "num_key_value_heads",
        )?;
        let llama = is_llama(arch);
        let cfg = LlamaConfig {
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            attention_bias: llama && c.bool("attention_bias", false)?,
            mlp_bias: llama && c.bool("mlp_bias", false)?,
            tie_word_embeddings: c.bool("tie_word_embeddings", false)?,
            pad_token_id: c.pad_token(vocab_size)?,
            initializer_range: c.init_range()?,
        };
        Ok(cfg)
    }

    pub(super) fn write(&self, m: &mut Map<String, Value>) {
        m.insert("vocab_size".into(), json!(self.vocab_size));
        m.insert("hidden_size".into(), json!(self.hidden_size));
        m.insert("intermediate_size".into(), json!(self.intermediate_size));
        m.insert("num_hidden_layers".into(), json!(self.num_hidden_layers));
        m.insert(
            "num_attention_heads".into(),
            json!(self.num_attention_heads),
        );
        m.insert(
            "num_key_value_heads".into(),
            json!(self.num_key_value_heads),
        );
        m.insert("head_dim".into(), json!(self.head_dim));
        m.insert("attention_bias".into(), json!(self.attention_bias));
        m.insert("mlp_bias".into(), json!(self.mlp_bias));
        m.insert(
            "tie_word_embeddings".into(),
            json!(self.tie_word_embeddings),
        );
        m.insert("pad_token_id".into(), json!(self.pad_token_id));
        m.insert("initializer_range".into(), json!(self.initializer_range));
    }

    pub(super) fn tensors(&self, arch: Arch) -> Vec<HfTensor> {
        let std = generic_std(self.initializer_range);
        let w = || normal(std, LINEAR);
        let zero = HfInit::Zeros { why: BIAS };
        let one = HfInit::Ones { why: NORM_W };
        let head = matches!(
            arch,
            Arch::LlamaForCausalLM | Arch::MistralForCausalLM | Arch::Qwen2ForCausalLM
        );
        let p = if head { "model." } else { "" };
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let q_out = self.num_attention_heads.saturating_mul(self.head_dim);
        let kv_out = self.num_key_value_heads.saturating_mul(self.head_dim);
        let qkv_bias = self.attention_bias || is_qwen2(arch);
        let mut out = Vec::new();
        let mut emb = t(
            format!("{p}embed_tokens.weight"),
            vec![self.vocab_size, h],
            normal(std, EMBED),
        );
        emb.zero_row = self.pad_token_id;
        out.push(emb);
        for l in 0..self.num_hidden_layers {
            let a = format!("{p}layers.{l}.self_attn");
            for (proj, rows) in [("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)] {
                out.push(t(format!("{a}.{proj}.weight"), vec![rows, h], w()));
                if qkv_bias {
                    out.push(t(format!("{a}.{proj}.bias"), vec![rows], zero));
                }
            }
            out.push(t(format!("{a}.o_proj.weight"), vec![h, q_out], w()));
            if self.attention_bias {
                out.push(t(format!("{a}.o_proj.bias"), vec![h], zero));
            }
            let m = format!("{p}layers.{l}.mlp");
            for (proj, shape, b) in [
                ("gate_proj", vec![i, h], i),
                ("up_proj", vec![i, h], i),
                ("down_proj", vec![h, i], h),
            ] {
                out.push(t(format!("{m}.{proj}.weight"), shape, w()));
                if self.mlp_bias {
                    out.push(t(format!("{m}.{proj}.bias"), vec![b], zero));
                }
            }
            out.push(t(
                format!("{p}layers.{l}.input_layernorm.weight"),
                vec![h],
                one,
            ));
            out.push(t(
                format!("{p}layers.{l}.post_attention_layernorm.weight"),
                vec![h],
                one,
            ));
        }
        out.push(t(format!("{p}norm.weight"), vec![h], one));
        if head && !self.tie_word_embeddings {
            out.push(t("lm_head.weight".into(), vec![self.vocab_size, h], w()));
        }
        out
    }
}
