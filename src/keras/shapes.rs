//! Shape arithmetic of Keras 3 layers, read off `keras/src/ops/operation_utils.py`
//! (`compute_conv_output_shape`, `compute_pooling_output_shape`), `keras/src/utils/
//! conv_utils.py` (`deconv_output_length`) and `keras/src/layers/core/einsum_dense.py`
//! (`_analyze_split_string`). Only needed where a layer of a `Sequential` has no
//! `build_config` of its own (a model built with `model.build(shape)`), and for EinsumDense's
//! weight shapes.

use crate::error::{Result, SpecError};

/// A Keras shape: `None` for the batch axis and other unknown sizes.
pub type Dims = Vec<Option<u64>>;

/// `compute_conv_output_shape` along one spatial axis.
pub fn conv_len(
    len: Option<u64>,
    k: u64,
    stride: u64,
    dilation: u64,
    padding: &str,
) -> Option<u64> {
    let len = len?;
    let eff = dilation
        .saturating_mul(k.saturating_sub(1))
        .saturating_add(1);
    match padding {
        "same" | "causal" => Some(len.div_ceil(stride.max(1))),
        _ => (len >= eff).then(|| (len - eff) / stride.max(1) + 1),
    }
}

/// `compute_pooling_output_shape` along one spatial axis.
pub fn pool_len(len: Option<u64>, pool: u64, stride: u64, padding: &str) -> Option<u64> {
    let len = len?;
    match padding {
        "same" => Some((len - 1) / stride.max(1) + 1),
        _ => (len >= pool).then(|| (len - pool) / stride.max(1) + 1),
    }
}

/// `deconv_output_length` along one spatial axis.
pub fn deconv_len(
    len: Option<u64>,
    k: u64,
    stride: u64,
    dilation: u64,
    padding: &str,
    output_padding: Option<u64>,
) -> Option<u64> {
    let len = len?;
    let k = k.saturating_add(
        k.saturating_sub(1)
            .saturating_mul(dilation.saturating_sub(1)),
    );
    match output_padding {
        None => Some(match padding {
            "same" => len.saturating_mul(stride),
            _ => len
                .saturating_mul(stride)
                .saturating_add(k.saturating_sub(stride)),
        }),
        Some(op) => {
            let pad = if padding == "same" { k / 2 } else { 0 };
            (len.saturating_sub(1).saturating_mul(stride))
                .saturating_add(k)
                .saturating_add(op)
                .checked_sub(2 * pad)
        }
    }
}

/// What `_analyze_split_string` computes for an EinsumDense layer.
#[derive(Debug, PartialEq)]
pub struct Einsum {
    pub kernel: Vec<u64>,
    pub bias: Option<Vec<u64>>,
    pub output: Dims,
    pub input_axes: Vec<usize>,
    pub output_axes: Vec<usize>,
}

/// `_analyze_einsum_string`: `[X],[Y]->[Z]`, `...[X],[Y]->...[Z]` or `[X]...,[Y]->[Z]...`.
pub fn einsum(
    equation: &str,
    bias_axes: Option<&str>,
    input: &Dims,
    partial_output: &Dims,
    path: &str,
) -> Result<Einsum> {
    let eq = equation.replace("...", "0");
    let invalid = || {
        SpecError::invalid_value(
            path,
            format!(
                "invalid einsum equation '{equation}': equations must be in the form [X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]..."
            ),
        )
    };
    let (lhs, out_spec) = eq.split_once("->").ok_or_else(invalid)?;
    let (in_spec, w_spec) = lhs.split_once(',').ok_or_else(invalid)?;
    let letters = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic());
    let (in_spec, out_spec, left) = if letters(in_spec) && letters(out_spec) {
        (in_spec, out_spec, false)
    } else if let (Some(i), Some(o)) = (in_spec.strip_prefix('0'), out_spec.strip_prefix('0')) {
        (i, o, true)
    } else if let (Some(i), Some(o)) = (in_spec.strip_suffix('0'), out_spec.strip_suffix('0')) {
        if i.len() < 2 {
            return Err(invalid());
        }
        (i, o, false)
    } else {
        return Err(invalid());
    };
    if !letters(in_spec) || !letters(out_spec) || !letters(w_spec) {
        return Err(invalid());
    }
    let in_spec: Vec<char> = in_spec.chars().collect();
    let w_spec: Vec<char> = w_spec.chars().collect();
    let out_spec: Vec<char> = out_spec.chars().collect();
    if input.len() < in_spec.len() {
        return Err(SpecError::invalid_value(
            path,
            format!(
                "the input has rank {}, the equation needs {}",
                input.len(),
                in_spec.len()
            ),
        ));
    }
    let elided = input.len() - in_spec.len();
    let mut output: Dims = partial_output.clone();
    output.insert(0, input[0]);
    if elided > 0 && left {
        for d in &input[1..elided] {
            output.insert(1, *d);
        }
    } else if elided > 0 {
        for d in &input[input.len() - elided..] {
            output.push(*d);
        }
    }
    let in_pos = |c: char| -> Option<usize> {
        in_spec
            .iter()
            .position(|&x| x == c)
            .map(|i| if left { i + elided } else { i })
    };
    let out_pos = |c: char| -> Option<usize> {
        out_spec
            .iter()
            .position(|&x| x == c)
            .map(|i| if left { i + elided } else { i })
    };
    for &c in &in_spec {
        if let (Some(ip), Some(op)) = (in_pos(c), out_pos(c))
            && let (Some(Some(o)), Some(i)) = (output.get(op), input.get(ip))
            && Some(*o) != *i
        {
            return Err(SpecError::invalid_value(
                path,
                format!("input and output shapes disagree at shared dimension '{c}'"),
            ));
        }
    }
    let mut kernel = Vec::new();
    let (mut input_axes, mut output_axes) = (Vec::new(), Vec::new());
    for (i, &c) in w_spec.iter().enumerate() {
        let d = if let Some(op) = out_pos(c) {
            output_axes.push(i);
            output.get(op).copied().flatten()
        } else if let Some(ip) = in_pos(c) {
            input_axes.push(i);
            input.get(ip).copied().flatten()
        } else {
            return Err(SpecError::invalid_value(
                path,
                format!("weight dimension '{c}' matches neither the input nor the output spec"),
            ));
        };
        kernel.push(d.ok_or_else(|| {
            SpecError::invalid_value(
                path,
                format!("the size of weight dimension '{c}' is unknown"),
            )
        })?);
    }
    let bias = match bias_axes {
        None => None,
        Some(b) => {
            let first = b
                .chars()
                .map(|c| out_spec.iter().position(|&x| x == c))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    SpecError::invalid_value(
                        path,
                        format!("bias axes '{b}' are not all in the output spec"),
                    )
                })?
                .into_iter()
                .min()
                .ok_or_else(|| SpecError::invalid_value(path, "bias_axes must not be empty"))?;
            let off = if left { elided } else { 0 };
            let mut shape = Vec::new();
            for (i, &c) in out_spec.iter().enumerate().skip(first) {
                if b.contains(c) {
                    shape.push(output.get(i + off).copied().flatten().ok_or_else(|| {
                        SpecError::invalid_value(
                            path,
                            format!("the size of bias dimension '{c}' is unknown"),
                        )
                    })?);
                } else {
                    shape.push(1);
                }
            }
            if !left {
                shape.extend(std::iter::repeat_n(1, elided));
            }
            Some(shape)
        }
    };
    Ok(Einsum {
        kernel,
        bias,
        output,
        input_axes,
        output_axes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn einsum_shapes_as_keras() {
        let e = einsum(
            "abc,cd->abd",
            Some("d"),
            &vec![None, Some(4), Some(6)],
            &vec![None, Some(5)],
            "p",
        )
        .unwrap();
        assert_eq!(e.kernel, vec![6, 5]);
        assert_eq!(e.bias, Some(vec![5]));
        assert_eq!(e.input_axes, vec![0]);
        assert_eq!(e.output_axes, vec![1]);
        let e = einsum(
            "abc,cde->abde",
            Some("de"),
            &vec![None, Some(4), Some(5)],
            &vec![None, Some(2), Some(3)],
            "p",
        )
        .unwrap();
        assert_eq!(e.kernel, vec![5, 2, 3]);
        assert_eq!(e.bias, Some(vec![2, 3]));
        let e = einsum(
            "...b,bc->...c",
            None,
            &vec![None, Some(7), Some(3)],
            &vec![Some(4)],
            "p",
        )
        .unwrap();
        assert_eq!(e.kernel, vec![3, 4]);
        assert_eq!(e.output, vec![None, Some(7), Some(4)]);
    }

    #[test]
    fn conv_lengths() {
        assert_eq!(conv_len(Some(16), 3, 1, 1, "same"), Some(16));
        assert_eq!(conv_len(Some(16), 3, 1, 1, "valid"), Some(14));
        assert_eq!(conv_len(Some(2), 3, 1, 1, "valid"), None);
        assert_eq!(pool_len(Some(16), 2, 2, "valid"), Some(8));
        assert_eq!(deconv_len(Some(5), 2, 2, 1, "valid", None), Some(10));
    }
}
