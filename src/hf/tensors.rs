//! What every family's expansion shares: the generic `_init_weights` rules (the std, the
//! reasons), tensor constructors, `LayerNorm`/`Linear` blocks and the heads' tensor count.

use super::{Head, HfInit, HfTensor};

/// Tensors a head adds on top of the base model: `Linear` weight (+ bias).
pub(crate) fn head_count(head: Head, untied_lm: bool, seq_cls_bias: bool) -> u64 {
    match head {
        Head::CausalLm | Head::Seq2SeqLm => untied_lm as u64,
        Head::SeqCls => 1 + seq_cls_bias as u64,
        Head::TokenCls | Head::Qa | Head::ImageCls => 2,
        Head::Base | Head::MaskedLm | Head::Encoder => 0,
    }
}

/// HF's generic std: `initializer_range or 0.02` (0 and null fall back to 0.02).
pub(crate) fn generic_std(r: Option<f64>) -> f64 {
    match r {
        Some(x) if x != 0.0 => x,
        _ => 0.02,
    }
}

pub(crate) const LINEAR: &str =
    "nn.Linear weight ~ N(0, initializer_range) (PreTrainedModel._init_weights)";
pub(crate) const EMBED: &str = "nn.Embedding weight ~ N(0, initializer_range), padding_idx row zeroed (PreTrainedModel._init_weights)";
pub(crate) const BIAS: &str = "bias = 0 (PreTrainedModel._init_weights)";
pub(crate) const NORM_W: &str = "LayerNorm/RMSNorm weight = 1";
pub(crate) const NORM_B: &str = "LayerNorm bias = 0";

pub(crate) fn t(name: String, shape: Vec<u64>, init: HfInit) -> HfTensor {
    HfTensor {
        name,
        shape,
        init,
        zero_row: None,
    }
}

pub(crate) fn normal(std: f64, why: &'static str) -> HfInit {
    HfInit::Normal { std, why }
}

/// A `LayerNorm(h)` at `base`: `{base}.weight` one, `{base}.bias` zero (the generic
/// `_init_weights` rule every LayerNorm family shares).
pub(crate) fn layer_norm(out: &mut Vec<HfTensor>, base: &str, h: u64) {
    out.push(t(
        format!("{base}.weight"),
        vec![h],
        HfInit::Ones { why: NORM_W },
    ));
    out.push(t(
        format!("{base}.bias"),
        vec![h],
        HfInit::Zeros { why: NORM_B },
    ));
}

/// An `nn.Linear(i, o)` at `base`: `{base}.weight` `[o, i]` drawn by `weight`, and a zero
/// `{base}.bias` `[o]` when it has one.
pub(crate) fn linear(
    out: &mut Vec<HfTensor>,
    base: &str,
    o: u64,
    i: u64,
    weight: HfInit,
    bias: bool,
) {
    out.push(t(format!("{base}.weight"), vec![o, i], weight));
    if bias {
        out.push(t(
            format!("{base}.bias"),
            vec![o],
            HfInit::Zeros { why: BIAS },
        ));
    }
}

pub(crate) const HEAD: &str = "classification/QA head nn.Linear weight ~ N(0, initializer_range) (PreTrainedModel._init_weights)";

/// A `Linear(h, n)` head: `{name}.weight` ~ N(0, std) and, with `bias`, `{name}.bias` = 0.
pub(crate) fn linear_head(
    out: &mut Vec<HfTensor>,
    name: &str,
    n: u64,
    h: u64,
    std: f64,
    bias: bool,
) {
    out.push(t(format!("{name}.weight"), vec![n, h], normal(std, HEAD)));
    if bias {
        out.push(t(
            format!("{name}.bias"),
            vec![n],
            HfInit::Zeros { why: BIAS },
        ));
    }
}
