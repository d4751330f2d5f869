//! Applying a rule to one tensor: its resolved initializer replaced (re-resolved for the
//! tensor's framework and shape) or scaled in place (`scale_resolved`), with the rule recorded
//! on it.

use serde_json::json;

use super::Recipe;
use super::roles::{ModelDims, Target};
use super::rules::{Action, rule_for};
use crate::error::{Result, SpecError};
use crate::init::{self, Element, Resolved, TensorCtx, ValueSource, WholeTensor};
use crate::sample::{Kernel, TruncParams};
use crate::terms::Framework;

/// A resolved initializer multiplied by `f` (μP, adaptive): every value of the new source is
/// `f ×` the old one's distribution. Structured sources without a scale (dirac) are refused.
pub fn scale_resolved(r: &Resolved, f: f64) -> Option<Resolved> {
    fn src(s: &ValueSource, f: f64) -> Option<ValueSource> {
        let m = |x: f32| (x as f64 * f) as f32;
        Some(match s {
            ValueSource::Constant(c) => ValueSource::Constant(m(*c)),
            ValueSource::Random(Kernel::Uniform { low, scale }) => {
                let (lo, hi) = (*low as f64 * f, (*low as f64 + *scale as f64) * f);
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                ValueSource::Random(Kernel::Uniform {
                    low: lo as f32,
                    scale: (hi - lo) as f32,
                })
            }
            ValueSource::Random(Kernel::Normal { mean, std }) => {
                ValueSource::Random(Kernel::Normal {
                    mean: m(*mean),
                    std: m(*std),
                })
            }
            ValueSource::Random(Kernel::TruncNormal(p)) if f > 0.0 => {
                ValueSource::Random(Kernel::TruncNormal(TruncParams::new(
                    p.mean as f64 * f,
                    p.std as f64 * f,
                    p.a as f64 * f,
                    p.b as f64 * f,
                )))
            }
            ValueSource::Eye { gain } => ValueSource::Eye { gain: m(*gain) },
            ValueSource::Whole(WholeTensor::Orthogonal { gain, rows_axes }) => {
                ValueSource::Whole(WholeTensor::Orthogonal {
                    gain: gain * f,
                    rows_axes: *rows_axes,
                })
            }
            ValueSource::Whole(WholeTensor::DeltaOrthogonal { scale }) => {
                ValueSource::Whole(WholeTensor::DeltaOrthogonal { scale: scale * f })
            }
            ValueSource::Whole(WholeTensor::Sparse { sparsity, std }) => {
                ValueSource::Whole(WholeTensor::Sparse {
                    sparsity: *sparsity,
                    std: m(*std),
                })
            }
            ValueSource::WithConstantRange {
                base,
                start,
                end,
                value,
            } => ValueSource::WithConstantRange {
                base: Element::of(&src(&(*base).into(), f)?)?,
                start: *start,
                end: *end,
                value: m(*value),
            },
            _ => return None,
        })
    }
    let source = src(&r.source, f)?;
    let mut info = r.info.clone();
    for x in [
        &mut info.std,
        &mut info.mean,
        &mut info.low,
        &mut info.high,
        &mut info.gain,
    ] {
        if let Some(v) = x.as_mut() {
            *v *= f;
        }
    }
    Some(Resolved { source, info })
}

/// Applies a recipe's action to one tensor's resolved initializer.
#[allow(clippy::too_many_arguments)]
pub fn apply_one(
    recipe: &Recipe,
    t: &Target<'_>,
    dims: &ModelDims,
    framework: Framework,
    shape: &[u64],
    logical: &[u64],
    resolved: &mut Resolved,
) -> Result<()> {
    let path = "recipe";
    let note = |rule: String, what: &str| json!({"name": recipe.name(), "role": t.role.as_str(), "layer": t.layer, "rule": rule, "replaced": what});
    match rule_for(recipe, t, dims, path)? {
        Action::Keep => {}
        Action::Replace(rule) => {
            let before = resolved.info.spec.name();
            let ctx = TensorCtx {
                framework,
                shape,
                logical_shape: logical,
                fan_in: None,
                fan_out: None,
                activation: None,
                path,
            };
            let mut r = init::resolve(&rule.spec, &ctx)?;
            r.info.recipe = Some(note(rule.rule, before));
            *resolved = r;
        }
        Action::Scale { factor, rule } => {
            let before = resolved.info.spec.name();
            let mut r = scale_resolved(resolved, factor).ok_or_else(|| {
                SpecError::initializer_mismatch(path,
                    format!(
                        "`{}` uses {before}, which has no scale to multiply; give it a scaled initializer",
                        t.name
                    ),
                )
            })?;
            r.info.recipe = Some(note(format!("{rule}; factor {factor}"), before));
            *resolved = r;
        }
    }
    Ok(())
}
