//! The feed-forward layers' weights: `Dense`, `EinsumDense`, the convolutions (plain, grouped,
//! depthwise, separable, transposed), `Embedding` and the normalizations (layer, batch, group),
//! each with its output shape.

use serde_json::Value;

use super::Walker;
use super::entry::{Entry, dims, known};
use super::shapes::{self, Dims};
use crate::error::{Result, SpecError};
use crate::terms::fields::{index, positive_size, wrong_type};

impl Walker {
    /// `Dense`: kernel `[in, units]`, bias `[units]`.
    pub(super) fn dense(
        &mut self,
        e: &Entry<'_>,
        prefix: &str,
        inp: &Dims,
        bpath: &str,
    ) -> Result<Option<Dims>> {
        let units = e.size("units")?;
        let fin = known(*inp.last().unwrap_or(&None), bpath, "last (feature) axis")?;
        let k = e.init("kernel_initializer", "glorot_uniform")?;
        self.put(e, format!("{prefix}/kernel"), vec![fin, units], k);
        if e.flag("use_bias", true)? {
            let b = e.init("bias_initializer", "zeros")?;
            self.put(e, format!("{prefix}/bias"), vec![units], b);
        }
        let mut out = inp.clone();
        *out.last_mut().unwrap_or(&mut None) = Some(units);
        Ok(Some(out))
    }

    /// `EinsumDense`: kernel and bias shapes from the equation (`shapes::einsum`).
    pub(super) fn einsum_dense(
        &mut self,
        e: &Entry<'_>,
        prefix: &str,
        inp: &Dims,
    ) -> Result<Option<Dims>> {
        let eq = e.text("equation", "")?;
        let partial = match e.get("output_shape") {
            Some(v @ Value::Array(_)) => dims(v, &e.key("output_shape"))?,
            Some(v) => vec![Some(positive_size(v, &e.key("output_shape"))?)],
            None => {
                return Err(SpecError::missing_field(
                    e.key("output_shape"),
                    "EinsumDense needs `output_shape`",
                ));
            }
        };
        let bias_axes = match e.get("bias_axes") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => return Err(wrong_type(&e.key("bias_axes"), "a string", other)),
        };
        let es = shapes::einsum(eq, bias_axes, inp, &partial, &e.key("equation"))?;
        let k = e.init("kernel_initializer", "glorot_uniform")?;
        let prod = |axes: &[usize]| {
            axes.iter()
                .fold(1u64, |a, &i| a.saturating_mul(es.kernel[i]))
        };
        let fans = (k.0.variance_scaling && k.0.axes.is_none())
            .then(|| (prod(&es.input_axes), prod(&es.output_axes)));
        self.push(
            e,
            format!("{prefix}/kernel"),
            es.kernel.clone(),
            k,
            fans,
            None,
        );
        if let Some(bs) = es.bias {
            let b = e.init("bias_initializer", "zeros")?;
            self.put(e, format!("{prefix}/bias"), bs, b);
        }
        Ok(Some(es.output))
    }

    /// `Embedding`: `embeddings` `[input_dim, output_dim]`.
    pub(super) fn embedding(
        &mut self,
        e: &Entry<'_>,
        prefix: &str,
        inp: &Dims,
    ) -> Result<Option<Dims>> {
        let n = e.size("input_dim")?;
        let d = e.size("output_dim")?;
        let k = e.init("embeddings_initializer", "uniform")?;
        self.put(e, format!("{prefix}/embeddings"), vec![n, d], k);
        let mut out = inp.clone();
        out.push(Some(d));
        Ok(Some(out))
    }

    /// `LayerNormalization`, `BatchNormalization`, `GroupNormalization`: gamma and beta over the
    /// normalized axes, and a batch norm's moving statistics.
    pub(super) fn normalization(
        &mut self,
        e: &Entry<'_>,
        prefix: &str,
        inp: &Dims,
        bpath: &str,
    ) -> Result<Option<Dims>> {
        let rank = inp.len() as i64;
        let axes: Vec<i64> = match e.get("axis") {
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| crate::terms::fields::integer(v, &index(&e.key("axis"), i)))
                .collect::<Result<_>>()?,
            _ => vec![e.int("axis", -1)?],
        };
        let mut shape = Vec::new();
        for a in &axes {
            let ax = if *a < 0 { rank + a } else { *a };
            if !(0..rank).contains(&ax) {
                return Err(SpecError::invalid_value(
                    e.key("axis"),
                    format!("axis {a} is outside the input's rank {rank}"),
                ));
            }
            shape.push(known(inp[ax as usize], bpath, "normalized axis")?);
        }
        if e.class == "GroupNormalization" {
            let g = e.size_or("groups", 32)?;
            if shape.len() != 1 || !shape[0].is_multiple_of(g) {
                return Err(SpecError::invalid_value(
                    e.key("groups"),
                    format!("the channels ({shape:?}) must be a multiple of groups ({g})"),
                ));
            }
        }
        if e.class == "LayerNormalization" && e.flag("rms_scaling", false)? {
            return Err(SpecError::unsupported_layer_type(
                e.key("rms_scaling"),
                "LayerNormalization(rms_scaling=True) is not supported by keras_model",
            ));
        }
        if e.flag("scale", true)? {
            let g = e.init("gamma_initializer", "ones")?;
            self.put(e, format!("{prefix}/gamma"), shape.clone(), g);
        }
        if e.flag("center", true)? {
            let b = e.init("beta_initializer", "zeros")?;
            self.put(e, format!("{prefix}/beta"), shape.clone(), b);
        }
        if e.class == "BatchNormalization" {
            let m = e.init("moving_mean_initializer", "zeros")?;
            self.put(e, format!("{prefix}/moving_mean"), shape.clone(), m);
            let v = e.init("moving_variance_initializer", "ones")?;
            self.put(e, format!("{prefix}/moving_variance"), shape, v);
        }
        Ok(Some(inp.clone()))
    }

    pub(super) fn conv(
        &mut self,
        e: &Entry<'_>,
        prefix: &str,
        inp: &Dims,
        bpath: &str,
    ) -> Result<Option<Dims>> {
        let class = e.class;
        let n = if class.contains("1D") {
            1
        } else if class.contains("2D") {
            2
        } else {
            3
        };
        if inp.len() != n + 2 {
            return Err(SpecError::invalid_value(
                bpath,
                format!("{class} needs an input of rank {}, got {:?}", n + 2, inp),
            ));
        }
        let channels_first = e.text("data_format", "channels_last")? == "channels_first";
        let (cin, spatial): (Option<u64>, Vec<Option<u64>>) = if channels_first {
            (inp[1], inp[2..].to_vec())
        } else {
            (inp[n + 1], inp[1..n + 1].to_vec())
        };
        let cin = known(cin, bpath, "channel axis")?;
        let k = e.tuple("kernel_size", n, None)?;
        let strides = e.tuple("strides", n, Some(1))?;
        let dil = e.tuple("dilation_rate", n, Some(1))?;
        let padding = e.text("padding", "valid")?;
        let use_bias = e.flag("use_bias", true)?;
        let depthwise = class.starts_with("Depthwise");
        let separable = class.starts_with("Separable");
        let transpose = class.ends_with("Transpose");
        let out_c;
        if depthwise || separable {
            let dm = e.size_or("depth_multiplier", 1)?;
            let mut dk = k.clone();
            dk.extend([cin, dm]);
            let di = e.init("depthwise_initializer", "glorot_uniform")?;
            let dname = if depthwise {
                "kernel"
            } else {
                "depthwise_kernel"
            };
            self.put(e, format!("{prefix}/{dname}"), dk, di);
            if depthwise {
                out_c = cin.saturating_mul(dm);
            } else {
                let filters = e.size("filters")?;
                let mut pk = vec![1u64; n];
                pk.extend([cin.saturating_mul(dm), filters]);
                let pi = e.init("pointwise_initializer", "glorot_uniform")?;
                self.put(e, format!("{prefix}/pointwise_kernel"), pk, pi);
                out_c = filters;
            }
        } else {
            let filters = e.size("filters")?;
            let groups = if transpose {
                1
            } else {
                e.size_or("groups", 1)?
            };
            if !cin.is_multiple_of(groups) || !filters.is_multiple_of(groups) {
                return Err(SpecError::invalid_value(
                    e.key("groups"),
                    format!(
                        "input channels ({cin}) and filters ({filters}) must be multiples of groups ({groups})"
                    ),
                ));
            }
            let mut shape = k.clone();
            if transpose {
                shape.extend([filters, cin]);
            } else {
                shape.extend([cin / groups, filters]);
            }
            let ki = e.init("kernel_initializer", "glorot_uniform")?;
            self.put(e, format!("{prefix}/kernel"), shape, ki);
            out_c = filters;
        }
        if use_bias {
            let b = e.init("bias_initializer", "zeros")?;
            self.put(e, format!("{prefix}/bias"), vec![out_c], b);
        }
        let out_pad: Option<Vec<u64>> = match e.get("output_padding") {
            None => None,
            Some(Value::Array(a)) => Some(a.iter().map(|v| v.as_u64().unwrap_or(0)).collect()),
            Some(v) => Some(vec![v.as_u64().unwrap_or(0); n]),
        };
        let out_sp: Vec<Option<u64>> = (0..n)
            .map(|i| {
                if transpose {
                    shapes::deconv_len(
                        spatial[i],
                        k[i],
                        strides[i],
                        dil[i],
                        padding,
                        out_pad.as_ref().and_then(|p| p.get(i).copied()),
                    )
                } else {
                    shapes::conv_len(spatial[i], k[i], strides[i], dil[i], padding)
                }
            })
            .collect();
        let mut out = vec![inp[0]];
        if channels_first {
            out.push(Some(out_c));
            out.extend(out_sp);
        } else {
            out.extend(out_sp);
            out.push(Some(out_c));
        }
        Ok(Some(out))
    }
}
