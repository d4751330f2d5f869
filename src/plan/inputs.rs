//! The two inputs that are not layer stacks: raw `tensors` (with their `fills`) and
//! `hf_config` (the tensors `save_pretrained` writes).

use super::{Collector, Draft, Layout, PlanFill};
use crate::error::Result;
use crate::init::{self, Init, TensorCtx};
use crate::spec::Request;
use crate::terms::Framework;
use crate::terms::fields::{index, join};

pub(super) fn raw_drafts(req: &Request, drafts: &mut Collector) -> Result<()> {
    for (i, t) in req.tensors.iter().enumerate() {
        let path = index("tensors", i);
        let init_path = join(&path, "init");
        // Structured initializers are defined on PyTorch's [out, in, *k]; a Keras/Flax raw
        // tensor is [*k, in, out], so it is generated as the permuted PyTorch tensor.
        let structured = t.init.on_torch_layout();
        let (logical, layout) =
            if structured && req.framework != Framework::PyTorch && t.shape.len() >= 2 {
                let n = t.shape.len();
                let mut logical = vec![t.shape[n - 1], t.shape[n - 2]];
                logical.extend_from_slice(&t.shape[..n - 2]);
                let mut perm: Vec<usize> = (2..n).collect();
                perm.extend([1, 0]);
                (logical, Layout::Permuted { perm })
            } else {
                (t.shape.clone(), Layout::Identity)
            };
        let ctx = TensorCtx {
            framework: req.framework,
            shape: &t.shape,
            logical_shape: &logical,
            fan_in: t.fan_in,
            fan_out: t.fan_out,
            activation: None,
            path: &init_path,
        };
        let resolved = init::resolve(&t.init, &ctx)?;
        let layout_for_fills = layout.clone();
        drafts.push(Draft {
            name: t.name.clone(),
            name_path: join(&path, "name"),
            dtype: t.dtype.unwrap_or(req.dtype),
            shape: t.shape.clone(),
            logical_shape: logical,
            layout,
            identity: format!("tensor/{}", t.name),
            resolved,
            zero_row: None,
            fills: raw_fills(t, &layout_for_fills),
            origin: path,
            slice: None,
        })?;
    }
    Ok(())
}

/// A raw tensor's fills as boxes of its logical shape: axes left out are whole, and a
/// permuted (Keras/Flax structured) tensor's output axis k is logical axis `perm[k]`.
pub(super) fn raw_fills(t: &crate::spec::RawTensor, layout: &Layout) -> Vec<PlanFill> {
    t.fills
        .iter()
        .map(|f| {
            let out: Vec<(u64, u64)> = (0..t.shape.len())
                .map(|d| f.ranges.get(d).copied().unwrap_or((0, t.shape[d])))
                .collect();
            let ranges = match layout {
                Layout::Identity => out,
                Layout::Permuted { perm } => {
                    let mut logical = out.clone();
                    for (k, &axis) in perm.iter().enumerate() {
                        logical[axis] = out[k];
                    }
                    logical
                }
            };
            PlanFill {
                ranges,
                value: f.value as f32,
            }
        })
        .collect()
}

/// `hf_config`: the tensors `save_pretrained` writes, with stream identity `hf/<name>`.
pub(super) fn hf_drafts(req: &Request, drafts: &mut Collector) -> Result<()> {
    let Some(model) = &req.hf else {
        return Ok(());
    };
    use crate::hf::HfInit;
    // The layer loop runs only once its tensor count is known to fit (closed form), so a
    // config of a billion layers or experts is refused before a single name is formatted.
    let (count, key) = model.tensor_count();
    drafts.reserve(count, &join("hf_config", key))?;
    for t in model.tensors() {
        let (spec, why) = match t.init {
            HfInit::Normal { std, why } => (Init::Normal { mean: 0.0, std }, why),
            HfInit::TruncNormal { std, a, b, why } => (
                Init::TruncatedNormal {
                    mean: 0.0,
                    std,
                    a,
                    b,
                },
                why,
            ),
            HfInit::Zeros { why } => (Init::Zeros, why),
            HfInit::Ones { why } => (Init::Ones, why),
            HfInit::Constant { value, why } => (Init::Constant { value }, why),
        };
        let ctx = TensorCtx {
            framework: Framework::PyTorch,
            shape: &t.shape,
            logical_shape: &t.shape,
            fan_in: None,
            fan_out: None,
            activation: None,
            path: "hf_config",
        };
        let mut resolved = init::resolve(&spec, &ctx)?;
        resolved.info.reason = Some(format!("{} {}", model.arch.name(), why));
        drafts.push(Draft {
            identity: format!("hf/{}", t.name),
            name: t.name,
            name_path: "hf_config".into(),
            dtype: req.dtype,
            logical_shape: t.shape.clone(),
            shape: t.shape,
            layout: Layout::Identity,
            resolved,
            zero_row: t.zero_row,
            fills: Vec::new(),
            origin: "hf_config".into(),
            slice: None,
        })?;
    }
    Ok(())
}
