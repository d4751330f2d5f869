//! What a tensor is to a recipe: its `Role` (embedding, projections, readout, …), the `Target`
//! a rule reads, the model-level `ModelDims`, and for `hf_config` models the role, block index
//! and fans read from a tensor's Hugging Face name.

/// What a tensor is to a recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Token, position or token-type embeddings.
    Embedding,
    Query,
    Key,
    Value,
    /// Query, key and value packed in one tensor; `query_rows` when the query part is the
    /// contiguous first third of the logical tensor (PyTorch `in_proj_weight [3E, E]`).
    PackedQkv {
        query_first_rows: bool,
    },
    /// An input projection of a block (MLP up/gate, BERT intermediate, pooler, hidden dense).
    InProj,
    /// Llama's `up_proj` (torchtitan's w3, which it initializes like the output projections).
    UpProj,
    /// A projection that writes into the residual stream (attention output, MLP down).
    OutProj,
    /// The first layer of a stack (its fan-in is the data's, not a width).
    Input,
    /// The last layer: the LM head or the classifier.
    Readout,
    Bias,
    /// Norm scales and shifts, statistics, recurrent weights: no recipe rule.
    Untouched,
}

impl Role {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Role::Embedding => "embedding",
            Role::Query => "query projection",
            Role::Key => "key projection",
            Role::Value => "value projection",
            Role::PackedQkv { .. } => "packed query/key/value projection",
            Role::InProj => "input projection",
            Role::UpProj => "MLP up projection",
            Role::OutProj => "output projection (writes the residual stream)",
            Role::Input => "first layer",
            Role::Readout => "readout / output layer",
            Role::Bias => "bias",
            Role::Untouched => "not covered",
        }
    }
}

/// A tensor as the recipe sees it.
pub struct Target<'a> {
    pub name: &'a str,
    pub role: Role,
    /// Transformer block (or weight layer, in a stack) index, from 0.
    pub layer: Option<u64>,
    pub fan_in: f64,
    pub fan_out: f64,
}

/// The model-level numbers a recipe takes from the model.
#[derive(Clone, Copy, Debug)]
pub struct ModelDims {
    /// Transformer blocks (hf_config) or weight layers (stack).
    pub num_layers: u64,
    /// d_model (hf_config); the width of the first layer's output (stack).
    pub hidden: Option<u64>,
    /// The model's own weight std (HF `initializer_range`), where it has one.
    pub init_range: Option<f64>,
}

/// The `model_type`s whose tensor names [`hf_role`] knows (Llama-style `q_proj … down_proj`,
/// GPT-2's `c_attn`/`c_proj`, BERT's `attention.self.*`). Other families (packed or expert
/// projections under other names: GPT-NeoX, Phi-3, Mixtral, the MoE Qwens, T5, ViT, …) are
/// refused rather than given a recipe whose roles would be guessed.
pub const HF_RECIPE_MODEL_TYPES: &[&str] = &[
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "olmo2",
    "gpt2",
    "bert",
];

/// The block index in an HF tensor name: `….layers.3.…`, `h.3.`, `layer.3.`.
pub fn hf_layer(name: &str) -> Option<u64> {
    let parts: Vec<&str> = name.split('.').collect();
    parts.windows(2).find_map(|w| {
        if matches!(w[0], "layers" | "h" | "layer") {
            w[1].parse().ok()
        } else {
            None
        }
    })
}

/// Role of an HF tensor (Llama/Mistral/Qwen2, GPT-2, BERT names).
pub fn hf_role(name: &str) -> Role {
    let n = name;
    if n.contains("norm") || n.contains("ln_") || n.contains("LayerNorm") {
        return Role::Untouched;
    }
    if n.ends_with(".bias") {
        return Role::Bias;
    }
    let has = |s: &str| n.contains(s);
    if has("embed") || has("wte") || has("wpe") {
        return Role::Embedding;
    }
    if n == "lm_head.weight" || has("cls.predictions.decoder") {
        return Role::Readout;
    }
    if has("q_proj") || has("attention.self.query") {
        Role::Query
    } else if has("k_proj") || has("attention.self.key") {
        Role::Key
    } else if has("v_proj") || has("attention.self.value") {
        Role::Value
    } else if has("attn.c_attn") {
        Role::PackedQkv {
            query_first_rows: false,
        }
    } else if has("o_proj")
        || has("down_proj")
        || has("attn.c_proj")
        || has("mlp.c_proj")
        || has("attention.output.dense")
        || (has("encoder.layer.") && has(".output.dense"))
    {
        Role::OutProj
    } else if has("up_proj") {
        Role::UpProj
    } else {
        // gate_proj, c_fc, intermediate.dense, pooler.dense, cls.predictions.transform.dense
        Role::InProj
    }
}

/// (fan_in, fan_out) of an HF tensor: GPT-2's Conv1D stores `[in, out]`, the rest `[out, in]`.
pub fn hf_fans(name: &str, shape: &[u64]) -> (f64, f64) {
    match shape {
        [a, b] if name.contains(".attn.c_") || name.contains(".mlp.c_") => (*a as f64, *b as f64),
        [o, i] => (*i as f64, *o as f64),
        [n] => (*n as f64, *n as f64),
        _ => (1.0, 1.0),
    }
}
