//! The Llama-shaped decoders: Llama, Mistral, Qwen2, Qwen3, Gemma, Gemma 2, Gemma 3 (text),
//! Mixtral, Qwen2-MoE, Qwen3-MoE, Phi-3 and OLMo 2 (`modeling_<family>.py` of each), with their
//! base model, causal-LM, sequence/token classification and QA classes.
//!
//! Initialization (`PreTrainedModel._init_weights`, children first, then each family's
//! override): every `nn.Linear` weight, the router weights (`*TopKRouter.weight`) and the
//! fused expert tensors (`*Experts.gate_up_proj`/`down_proj`, split per expert on save) ~
//! N(0, σ) with no depth scaling; `embed_tokens` ~ N(0, σ) with the `pad_token_id` row 0;
//! biases 0; RMSNorm weights 1, except Gemma's, which are 0 because its RMSNorm computes
//! `x · (1 + weight)` (`GemmaPreTrainedModel._init_weights`: `init.zeros_(module.weight)`).
//! The MoE overrides (`MixtralPreTrainedModel`, `Qwen2MoePreTrainedModel`,
//! `Qwen3MoePreTrainedModel`) read `config.initializer_range` as is, without the `or 0.02`
//! fallback, so σ = 0 there gives zeros.

use serde_json::{Map, Value, json};

use super::{
    Arch, BIAS, Cfg, EMBED, Fam, Head, HfInit, HfTensor, LINEAR, NORM_W, generic_std, linear_head,
    normal, t,
};
use crate::error::{Result, SpecError};

/// The MoE layout of a layer stack.
#[derive(Clone, Debug, PartialEq)]
pub struct Moe {
    pub num_experts: u64,
    /// Width of each expert's MLP (`moe_intermediate_size`; Mixtral: `intermediate_size`).
    pub expert_size: u64,
    /// Qwen2-MoE's shared expert width (0: none).
    pub shared_expert_size: u64,
    /// Layers `l` with `(l + 1) % decoder_sparse_step == 0` and not in `mlp_only_layers` are
    /// sparse; the others have a dense MLP of `intermediate_size` (Qwen MoE only).
    pub decoder_sparse_step: u64,
    pub mlp_only_layers: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: u64,
    pub hidden_size: u64,
    pub intermediate_size: u64,
    pub num_hidden_layers: u64,
    pub num_attention_heads: u64,
    pub num_key_value_heads: u64,
    pub head_dim: u64,
    /// q/k/v/o biases (Llama, Qwen3, Qwen3-MoE, Gemma*, OLMo 2 `attention_bias`).
    pub attention_bias: bool,
    /// q/k/v biases only (Qwen2 always; Qwen2-MoE `qkv_bias`).
    pub qkv_bias: bool,
    pub mlp_bias: bool,
    pub tie_word_embeddings: bool,
    pub pad_token_id: Option<u64>,
    pub initializer_range: Option<f64>,
    pub moe: Option<Moe>,
}

/// transformers' defaults per family: (vocab, hidden, intermediate, layers, heads, kv heads,
/// head_dim, tie_word_embeddings, pad_token_id), from each `configuration_<family>.py`.
type Defaults = (
    u64,
    u64,
    u64,
    u64,
    u64,
    Option<u64>,
    Option<u64>,
    bool,
    Option<u64>,
);

fn defaults(fam: Fam) -> Defaults {
    match fam {
        Fam::Mistral => (32000, 4096, 14336, 32, 32, Some(8), None, false, None),
        Fam::Qwen2 => (151936, 4096, 22016, 32, 32, Some(32), None, false, None),
        Fam::Qwen3 => (
            151936,
            4096,
            22016,
            32,
            32,
            Some(32),
            Some(128),
            false,
            None,
        ),
        Fam::Gemma => (
            256000,
            3072,
            24576,
            28,
            16,
            Some(16),
            Some(256),
            true,
            Some(0),
        ),
        Fam::Gemma2 => (256000, 2304, 9216, 26, 8, Some(4), Some(256), true, Some(0)),
        Fam::Gemma3Text => (262208, 2304, 9216, 26, 8, Some(4), Some(256), true, Some(0)),
        Fam::Mixtral => (32000, 4096, 14336, 32, 32, Some(8), None, false, None),
        Fam::Qwen2Moe => (151936, 2048, 5632, 24, 16, Some(16), None, false, None),
        Fam::Qwen3Moe => (151936, 2048, 6144, 24, 32, Some(4), None, false, None),
        Fam::Phi3 => (32064, 3072, 8192, 32, 32, None, None, false, Some(32000)),
        Fam::Olmo2 => (50304, 4096, 11008, 32, 32, None, None, false, Some(1)),
        _ => (32000, 4096, 11008, 32, 32, None, None, false, None),
    }
}

fn is_gemma(fam: Fam) -> bool {
    matches!(fam, Fam::Gemma | Fam::Gemma2 | Fam::Gemma3Text)
}

/// Families whose attention has `attention_bias` on all four projections.
fn has_attention_bias_key(fam: Fam) -> bool {
    matches!(
        fam,
        Fam::Llama
            | Fam::Qwen3
            | Fam::Qwen3Moe
            | Fam::Gemma
            | Fam::Gemma2
            | Fam::Gemma3Text
            | Fam::Olmo2
    )
}

const ROUTER: &str =
    "router weight ~ N(0, initializer_range) (*PreTrainedModel._init_weights, TopKRouter)";
const EXPERTS: &str = "expert weights ~ N(0, initializer_range) (*PreTrainedModel._init_weights, Experts.gate_up_proj/down_proj)";
const GEMMA_NORM: &str =
    "Gemma RMSNorm weight = 0, the norm scales by 1 + weight (GemmaPreTrainedModel._init_weights)";

impl LlamaConfig {
    pub(super) fn parse(c: &Cfg<'_>, arch: Arch) -> Result<LlamaConfig> {
        let fam = arch.fam;
        let (dv, dh, di, dl, dn, dkv, dhd, dtie, dpad) = defaults(fam);
        let vocab_size = c.size(&["vocab_size"], dv)?;
        let hidden_size = c.size(&["hidden_size"], dh)?;
        let intermediate_size = c.size(&["intermediate_size"], di)?;
        let num_hidden_layers = c.size(&["num_hidden_layers"], dl)?;
        let num_attention_heads = c.size(&["num_attention_heads"], dn)?;
        let num_key_value_heads = c
            .opt_size(&["num_key_value_heads"])?
            .or(dkv)
            .unwrap_or(num_attention_heads);
        let head_dim = match c.opt_size(&["head_dim"])?.or(dhd) {
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
        // A config key that is absent takes the family default; an explicit null means none.
        let pad_token_id = match (c.map.get("pad_token_id"), dpad) {
            (None, Some(p)) => {
                if p >= vocab_size {
                    return Err(SpecError::inconsistent_sizes(
                        c.path("pad_token_id"),
                        format!(
                            "the default pad_token_id {p} is not a row of the {vocab_size}-row embedding; set pad_token_id"
                        ),
                    ));
                }
                Some(p)
            }
            _ => c.pad_token(vocab_size)?,
        };
        let moe = match fam {
            Fam::Mixtral => Some(Moe {
                num_experts: c.size(&["num_local_experts", "num_experts"], 8)?,
                expert_size: intermediate_size,
                shared_expert_size: 0,
                decoder_sparse_step: 1,
                mlp_only_layers: Vec::new(),
            }),
            Fam::Qwen2Moe | Fam::Qwen3Moe => {
                let q2 = fam == Fam::Qwen2Moe;
                let keys: &[&'static str] = if q2 {
                    &["num_experts"]
                } else {
                    &["num_experts", "num_local_experts"]
                };
                Some(Moe {
                    num_experts: c.size(keys, if q2 { 60 } else { 128 })?,
                    expert_size: c.size(&["moe_intermediate_size"], if q2 { 1408 } else { 768 })?,
                    shared_expert_size: if q2 {
                        c.size(&["shared_expert_intermediate_size"], 5632)?
                    } else {
                        0
                    },
                    decoder_sparse_step: c.size(&["decoder_sparse_step"], 1)?,
                    mlp_only_layers: c.index_list("mlp_only_layers")?,
                })
            }
            _ => None,
        };
        let cfg = LlamaConfig {
            vocab_size,
            hidden_size,
            intermediate_size,
            num_hidden_layers,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            attention_bias: has_attention_bias_key(fam) && c.bool("attention_bias", false)?,
            qkv_bias: match fam {
                Fam::Qwen2 => true,
                Fam::Qwen2Moe => c.bool("qkv_bias", true)?,
                _ => false,
            },
            mlp_bias: fam == Fam::Llama && c.bool("mlp_bias", false)?,
            tie_word_embeddings: c.bool("tie_word_embeddings", dtie)?,
            pad_token_id,
            initializer_range: c.init_range()?,
            moe,
        };
        Ok(cfg)
    }

    pub(super) fn write(&self, fam: Fam, m: &mut Map<String, Value>) {
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
        if let Some(moe) = &self.moe {
            m.insert("num_experts".into(), json!(moe.num_experts));
            m.insert("moe_intermediate_size".into(), json!(moe.expert_size));
            m.insert(
                "shared_expert_intermediate_size".into(),
                json!(moe.shared_expert_size),
            );
            m.insert("decoder_sparse_step".into(), json!(moe.decoder_sparse_step));
            m.insert("mlp_only_layers".into(), json!(moe.mlp_only_layers));
        }
        // `qkv_bias` is a config key of Qwen2-MoE only, as in `parse` (Qwen2 always has the
        // biases, and its canonical form predates the key).
        if fam == Fam::Qwen2Moe {
            m.insert("qkv_bias".into(), json!(self.qkv_bias));
        }
    }

    pub(super) fn tensors(&self, arch: Arch, num_labels: u64) -> Vec<HfTensor> {
        let fam = arch.fam;
        let std = generic_std(self.initializer_range);
        // The MoE overrides use config.initializer_range without the `or 0.02` fallback.
        let moe_std = self.initializer_range.unwrap_or(0.02);
        let moe_init = |why| {
            if moe_std == 0.0 {
                HfInit::Zeros { why }
            } else {
                normal(moe_std, why)
            }
        };
        let w = || normal(std, LINEAR);
        let zero = HfInit::Zeros { why: BIAS };
        let one = if is_gemma(fam) {
            HfInit::Zeros { why: GEMMA_NORM }
        } else {
            HfInit::Ones { why: NORM_W }
        };
        // The QA classes of Llama, Qwen2, Qwen3 and Qwen3-MoE keep their base model as
        // `transformer` (`base_model_prefix` of GenericForQuestionAnswering); the others `model`.
        let p = match arch.head {
            Head::Base => "",
            Head::Qa if matches!(fam, Fam::Llama | Fam::Qwen2 | Fam::Qwen3 | Fam::Qwen3Moe) => {
                "transformer."
            }
            _ => "model.",
        };
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let q_out = self.num_attention_heads.saturating_mul(self.head_dim);
        let kv_out = self.num_key_value_heads.saturating_mul(self.head_dim);
        let qkv_bias = self.attention_bias || self.qkv_bias;
        let mut out = Vec::new();
        let mut emb = t(
            format!("{p}embed_tokens.weight"),
            vec![self.vocab_size, h],
            normal(std, EMBED),
        );
        emb.zero_row = self.pad_token_id;
        out.push(emb);
        let mlp = |out: &mut Vec<HfTensor>, m: &str, i: u64, bias: bool| {
            for (proj, shape, b) in [
                ("gate_proj", vec![i, h], i),
                ("up_proj", vec![i, h], i),
                ("down_proj", vec![h, i], h),
            ] {
                out.push(t(format!("{m}.{proj}.weight"), shape, w()));
                if bias {
                    out.push(t(format!("{m}.{proj}.bias"), vec![b], zero));
                }
            }
        };
        for l in 0..self.num_hidden_layers {
            let a = format!("{p}layers.{l}.self_attn");
            if fam == Fam::Phi3 {
                let qkv = q_out.saturating_add(kv_out.saturating_mul(2));
                out.push(t(format!("{a}.qkv_proj.weight"), vec![qkv, h], w()));
            } else {
                for (proj, rows) in [("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)] {
                    out.push(t(format!("{a}.{proj}.weight"), vec![rows, h], w()));
                    if qkv_bias {
                        out.push(t(format!("{a}.{proj}.bias"), vec![rows], zero));
                    }
                }
            }
            out.push(t(format!("{a}.o_proj.weight"), vec![h, q_out], w()));
            if self.attention_bias {
                out.push(t(format!("{a}.o_proj.bias"), vec![h], zero));
            }
            match fam {
                Fam::Qwen3 | Fam::Qwen3Moe | Fam::Gemma3Text => {
                    out.push(t(format!("{a}.q_norm.weight"), vec![self.head_dim], one));
                    out.push(t(format!("{a}.k_norm.weight"), vec![self.head_dim], one));
                }
                // OLMo 2 normalizes the whole projection, not each head.
                Fam::Olmo2 => {
                    out.push(t(format!("{a}.q_norm.weight"), vec![q_out], one));
                    out.push(t(format!("{a}.k_norm.weight"), vec![kv_out], one));
                }
                _ => {}
            }
            let m = format!("{p}layers.{l}.mlp");
            match &self.moe {
                Some(moe) if moe.sparse(l) => {
                    let e = moe.expert_size;
                    let (block, names) = if fam == Fam::Mixtral {
                        (
                            format!("{p}layers.{l}.block_sparse_moe"),
                            [("w1", [e, h]), ("w2", [h, e]), ("w3", [e, h])],
                        )
                    } else {
                        (
                            m.clone(),
                            [
                                ("gate_proj", [e, h]),
                                ("up_proj", [e, h]),
                                ("down_proj", [h, e]),
                            ],
                        )
                    };
                    out.push(t(
                        format!("{block}.gate.weight"),
                        vec![moe.num_experts, h],
                        moe_init(ROUTER),
                    ));
                    for x in 0..moe.num_experts {
                        for (n, shape) in &names {
                            out.push(t(
                                format!("{block}.experts.{x}.{n}.weight"),
                                shape.to_vec(),
                                moe_init(EXPERTS),
                            ));
                        }
                    }
                    if moe.shared_expert_size > 0 {
                        mlp(
                            &mut out,
                            &format!("{m}.shared_expert"),
                            moe.shared_expert_size,
                            false,
                        );
                        out.push(t(format!("{m}.shared_expert_gate.weight"), vec![1, h], w()));
                    }
                }
                _ if fam == Fam::Phi3 => {
                    out.push(t(
                        format!("{m}.gate_up_proj.weight"),
                        vec![i.saturating_mul(2), h],
                        w(),
                    ));
                    out.push(t(format!("{m}.down_proj.weight"), vec![h, i], w()));
                }
                _ => mlp(&mut out, &m, i, self.mlp_bias),
            }
            let norms: &[&str] = match fam {
                Fam::Olmo2 => &["post_attention_layernorm", "post_feedforward_layernorm"],
                Fam::Gemma2 | Fam::Gemma3Text => &[
                    "input_layernorm",
                    "post_attention_layernorm",
                    "pre_feedforward_layernorm",
                    "post_feedforward_layernorm",
                ],
                _ => &["input_layernorm", "post_attention_layernorm"],
            };
            for n in norms {
                out.push(t(format!("{p}layers.{l}.{n}.weight"), vec![h], one));
            }
        }
        out.push(t(format!("{p}norm.weight"), vec![h], one));
        match arch.head {
            Head::CausalLm if !self.tie_word_embeddings => {
                out.push(t("lm_head.weight".into(), vec![self.vocab_size, h], w()));
            }
            Head::SeqCls => linear_head(&mut out, "score", num_labels, h, std, false),
            Head::TokenCls => linear_head(&mut out, "score", num_labels, h, std, true),
            Head::Qa => linear_head(&mut out, "qa_outputs", 2, h, std, true),
            _ => {}
        }
        out
    }
}

impl LlamaConfig {
    /// `tensors(arch, _).len()` in closed form, with the key that drives it.
    pub(super) fn tensor_count(&self, arch: Arch) -> (u64, &'static str) {
        let fam = arch.fam;
        let projections: u64 = if fam == Fam::Phi3 {
            2
        } else {
            4 + 3 * (self.attention_bias || self.qkv_bias) as u64
        };
        let qk_norms = matches!(
            fam,
            Fam::Qwen3 | Fam::Qwen3Moe | Fam::Gemma3Text | Fam::Olmo2
        ) as u64;
        let attn = projections + self.attention_bias as u64 + 2 * qk_norms;
        let norms: u64 = if matches!(fam, Fam::Gemma2 | Fam::Gemma3Text) {
            4
        } else {
            2
        };
        let dense: u64 = if fam == Fam::Phi3 {
            2
        } else {
            3 + 3 * self.mlp_bias as u64
        };
        let layers = self.num_hidden_layers;
        let (sparse_layers, per_sparse) = match &self.moe {
            Some(moe) => (
                moe.sparse_layers(layers),
                1u64.saturating_add(moe.num_experts.saturating_mul(3))
                    .saturating_add(4 * (moe.shared_expert_size > 0) as u64),
            ),
            None => (0, 0),
        };
        let total = 2u64
            .saturating_add(layers.saturating_mul(attn + norms))
            .saturating_add((layers - sparse_layers).saturating_mul(dense))
            .saturating_add(sparse_layers.saturating_mul(per_sparse))
            .saturating_add(super::head_count(
                arch.head,
                !self.tie_word_embeddings,
                false,
            ));
        let key = if sparse_layers.saturating_mul(per_sparse)
            > layers.saturating_mul(attn + norms + dense)
        {
            if fam == Fam::Mixtral {
                "num_local_experts"
            } else {
                "num_experts"
            }
        } else {
            "num_hidden_layers"
        };
        (total, key)
    }
}

impl Moe {
    /// How many of `layers` layers are sparse (closed form over `mlp_only_layers`).
    fn sparse_layers(&self, layers: u64) -> u64 {
        if self.num_experts == 0 {
            return 0;
        }
        let mut n = layers / self.decoder_sparse_step;
        let mut excluded: Vec<u64> = self
            .mlp_only_layers
            .iter()
            .copied()
            .filter(|&l| l < layers && (l + 1).is_multiple_of(self.decoder_sparse_step))
            .collect();
        excluded.sort_unstable();
        excluded.dedup();
        n -= excluded.len() as u64;
        n
    }

    fn sparse(&self, l: u64) -> bool {
        !self.mlp_only_layers.contains(&l)
            && self.num_experts > 0
            && (l + 1).is_multiple_of(self.decoder_sparse_step)
    }
}
