//! `MultiHeadAttention`'s weights: its `query`, `key`, `value` and `attention_output`
//! EinsumDense sub-layers, shapes from `build_config.shapes_dict` (or the inbound shapes),
//! variance-scaling fans over the einsum's input and output axes.

use serde_json::Value;

use super::Walker;
use super::entry::{Entry, dims, known};
use super::shapes::Dims;
use crate::error::{Result, SpecError};
use crate::terms::fields::{index, join, positive_size, wrong_type};

impl Walker {
    /// `keras/src/layers/attention/multi_head_attention.py` `build`: query/key/value
    /// EinsumDense kernels `[dim, heads, key_dim|value_dim]`, biases `[heads, key_dim|value_dim]`,
    /// output kernel `[heads, value_dim, *output_shape]`, output bias `output_shape`.
    pub(super) fn attention(
        &mut self,
        e: &Entry<'_>,
        prefix: &str,
        inputs: Option<Vec<Dims>>,
    ) -> Result<Option<Dims>> {
        let sd = match e.raw.get("build_config") {
            Some(Value::Object(b)) => b.get("shapes_dict").filter(|v| !v.is_null()),
            _ => None,
        };
        let sd_path = join(&e.path, "build_config.shapes_dict");
        let (q, v, k) = match sd {
            Some(Value::Object(m)) => {
                let get = |key: &str| -> Result<Option<Dims>> {
                    match m.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(s) => Ok(Some(dims(s, &join(&sd_path, key))?)),
                    }
                };
                (get("query_shape")?, get("value_shape")?, get("key_shape")?)
            }
            Some(other) => return Err(wrong_type(&sd_path, "an object", other)),
            None => {
                let mut it = inputs.unwrap_or_default().into_iter();
                (it.next(), it.next(), it.next())
            }
        };
        let q = q.ok_or_else(|| {
            SpecError::invalid_value(
                &sd_path,
                "MultiHeadAttention's query shape is unknown; build the model before to_json()",
            )
        })?;
        let v = v.unwrap_or_else(|| q.clone());
        let k = k.unwrap_or_else(|| v.clone());
        if e.flag("use_gate", false)? {
            return Err(SpecError::unsupported_layer_type(
                e.key("use_gate"),
                "MultiHeadAttention(use_gate=True) is not supported by keras_model",
            ));
        }
        let heads = e.size("num_heads")?;
        let kd = e.size("key_dim")?;
        let vd = e.size_or("value_dim", kd)?;
        let last = |d: &Dims, what: &str| known(*d.last().unwrap_or(&None), &sd_path, what);
        let (qd, kdim, vdim) = (
            last(&q, "query feature axis")?,
            last(&k, "key feature axis")?,
            last(&v, "value feature axis")?,
        );
        let out_shape: Vec<u64> = match e.get("output_shape") {
            None => vec![qd],
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, x)| positive_size(x, &index(&e.key("output_shape"), i)))
                .collect::<Result<_>>()?,
            Some(x) => vec![positive_size(x, &e.key("output_shape"))?],
        };
        let bias = e.flag("use_bias", true)?;
        for (n, dim, hd) in [("query", qd, kd), ("key", kdim, kd), ("value", vdim, vd)] {
            let ki = e.init("kernel_initializer", "glorot_uniform")?;
            let fans =
                ki.0.variance_scaling
                    .then(|| (dim, heads.saturating_mul(hd)));
            self.push(
                e,
                format!("{prefix}/{n}/kernel"),
                vec![dim, heads, hd],
                ki,
                fans,
                None,
            );
            if bias {
                let bi = e.init("bias_initializer", "zeros")?;
                self.put(e, format!("{prefix}/{n}/bias"), vec![heads, hd], bi);
            }
        }
        let mut ok = vec![heads, vd];
        ok.extend(&out_shape);
        let ki = e.init("kernel_initializer", "glorot_uniform")?;
        let fans = ki.0.variance_scaling.then(|| {
            (
                heads.saturating_mul(vd),
                out_shape.iter().fold(1u64, |a, &x| a.saturating_mul(x)),
            )
        });
        self.push(
            e,
            format!("{prefix}/attention_output/kernel"),
            ok,
            ki,
            fans,
            None,
        );
        if bias {
            let bi = e.init("bias_initializer", "zeros")?;
            self.put(
                e,
                format!("{prefix}/attention_output/bias"),
                out_shape.clone(),
                bi,
            );
        }
        let mut out = q[..q.len().saturating_sub(1)].to_vec();
        out.extend(out_shape.iter().map(|&x| Some(x)));
        Ok(Some(out))
    }
}
