//! Output shapes of the layers without weights (`Flatten`, `Reshape`, pooling, `Concatenate`,
//! …), computed as Keras computes them where that is simple to state, so that a following
//! layer of a `Sequential` without its own `build_config` still learns its input shape.

use serde_json::Value;

use super::entry::Entry;
use super::shapes::{self, Dims};
use crate::error::Result;

/// Output shape of a parameter-free layer, where it is simple to state.
pub(super) fn free_output(e: &Entry<'_>, inputs: Option<Vec<Dims>>) -> Result<Option<Dims>> {
    let Some(inputs) = inputs else {
        return Ok(None);
    };
    let Some(inp) = inputs.first().cloned() else {
        return Ok(None);
    };
    let c = e.class;
    Ok(match c {
        "Flatten" => Some(vec![
            inp.first().copied().flatten(),
            inp[1..]
                .iter()
                .try_fold(1u64, |a, d| d.map(|d| a.saturating_mul(d))),
        ]),
        "Reshape" => match e.get("target_shape") {
            Some(Value::Array(t)) => {
                let total = inp[1..]
                    .iter()
                    .try_fold(1u64, |a, d| d.map(|d| a.saturating_mul(d)));
                let known_prod: u64 = t
                    .iter()
                    .filter_map(|x| x.as_i64().filter(|&x| x > 0))
                    .fold(1u64, |a, x| a.saturating_mul(x as u64));
                let mut out = vec![inp[0]];
                for x in t {
                    match x.as_i64() {
                        Some(d) if d > 0 => out.push(Some(d as u64)),
                        _ => out.push(total.and_then(|t| t.checked_div(known_prod))),
                    }
                }
                Some(out)
            }
            _ => None,
        },
        "GlobalMaxPooling1D"
        | "GlobalMaxPooling2D"
        | "GlobalMaxPooling3D"
        | "GlobalAveragePooling1D"
        | "GlobalAveragePooling2D"
        | "GlobalAveragePooling3D" => {
            let cf = e.text("data_format", "channels_last")? == "channels_first";
            let ch = if cf { inp.get(1) } else { inp.last() }.copied().flatten();
            if e.flag("keepdims", false)? {
                let mut o = vec![inp[0]];
                for _ in 2..inp.len() {
                    o.push(Some(1));
                }
                if cf {
                    o.insert(1, ch);
                } else {
                    o.push(ch);
                }
                Some(o)
            } else {
                Some(vec![inp[0], ch])
            }
        }
        "MaxPooling1D" | "MaxPooling2D" | "MaxPooling3D" | "AveragePooling1D"
        | "AveragePooling2D" | "AveragePooling3D" => {
            let n = inp.len().saturating_sub(2);
            if n == 0 {
                return Ok(None);
            }
            let pool = e.tuple("pool_size", n, Some(2))?;
            let strides = match e.get("strides") {
                None => pool.clone(),
                Some(_) => e.tuple("strides", n, None)?,
            };
            let padding = e.text("padding", "valid")?;
            let cf = e.text("data_format", "channels_last")? == "channels_first";
            let mut o = inp.clone();
            for i in 0..n {
                let ax = if cf { i + 2 } else { i + 1 };
                o[ax] = shapes::pool_len(inp[ax], pool[i], strides[i], padding);
            }
            Some(o)
        }
        "RepeatVector" => Some(vec![
            inp[0],
            Some(e.size("n")?),
            inp.last().copied().flatten(),
        ]),
        "Permute" => match e.get("dims") {
            Some(Value::Array(d)) => {
                let mut o = vec![inp[0]];
                for x in d {
                    let i = x.as_u64().unwrap_or(0) as usize;
                    o.push(inp.get(i).copied().flatten());
                }
                Some(o)
            }
            _ => None,
        },
        "Concatenate" => {
            let axis = e.int("axis", -1)?;
            let r = inp.len() as i64;
            let ax = if axis < 0 { r + axis } else { axis };
            if !(0..r).contains(&ax) {
                return Ok(None);
            }
            let mut o = inp.clone();
            o[ax as usize] = inputs.iter().try_fold(0u64, |a, s| {
                s.get(ax as usize)
                    .copied()
                    .flatten()
                    .map(|d| a.saturating_add(d))
            });
            Some(o)
        }
        "Dot" | "ZeroPadding1D" | "ZeroPadding2D" | "ZeroPadding3D" | "Cropping1D"
        | "Cropping2D" | "Cropping3D" | "UpSampling1D" | "UpSampling2D" | "UpSampling3D" => None,
        // Element-wise and shape-preserving.
        _ => Some(inp),
    })
}
