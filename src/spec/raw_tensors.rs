//! The `tensors` list: a raw tensor's name, shape, initializer, dtype (`int64` holds integer
//! constants only), fans and constant fills.

use serde_json::Value;

use super::fields::{self, Obj, index, join, wrong_type};
use super::{DType, Fill, MAX_FILLS, RawTensor, check_name};
use crate::error::{Result, SpecError};
use crate::init::{Init, catalogue};

pub(super) fn parse_raw_tensor(v: &Value, path: &str) -> Result<RawTensor> {
    let o = Obj::new(v, path)?;
    let (name, name_path) = o
        .str_any(&["name"])?
        .ok_or_else(|| SpecError::missing_field(join(path, "name"), "a tensor needs a `name`"))?;
    check_name(name, &name_path)?;
    let (shape_v, shape_path) =
        o.require_any(&["shape"], " (a list of positive sizes; [] for a scalar)")?;
    let shape = fields::shape(shape_v, &shape_path, false)?;
    let (init_v, init_path) = o.require_any(&["init"], " (an initializer name or object)")?;
    let init = catalogue::parse(init_v, &init_path)?;
    let dtype = match o.get_any(&["dtype"])? {
        Some((Value::String(s), p)) if s == "int64" || s == "i64" => {
            check_integer_init(&init, &p)?;
            Some(DType::I64)
        }
        Some((v, p)) => Some(DType::parse(v, &p)?),
        None => None,
    };
    let fan_in = o.size_any(&["fan_in"])?.map(|x| x.0);
    let fan_out = o.size_any(&["fan_out"])?.map(|x| x.0);
    let fills = match o.get_any(&["fills"])? {
        None => Vec::new(),
        Some((Value::Array(items), p)) => {
            if items.len() > MAX_FILLS {
                return Err(SpecError::limit_exceeded(
                    p,
                    format!(
                        "a tensor takes at most {MAX_FILLS} fills, got {}",
                        items.len()
                    ),
                ));
            }
            let integer = dtype == Some(DType::I64);
            items
                .iter()
                .enumerate()
                .map(|(i, f)| parse_fill(f, &index(&p, i), &shape, integer))
                .collect::<Result<_>>()?
        }
        Some((v, p)) => return Err(wrong_type(&p, "a list of fills", v)),
    };
    o.finish()?;
    Ok(RawTensor {
        name: name.to_string(),
        shape,
        init,
        dtype,
        fan_in,
        fan_out,
        fills,
    })
}

/// An `int64` raw tensor holds integers: only constant initializers with an integral value
/// that f32 (the canonical precision) represents exactly, |v| ≤ 2^24.
fn check_integer_init(init: &Init, path: &str) -> Result<()> {
    let value = match *init {
        Init::Zeros => 0.0,
        Init::Ones => 1.0,
        Init::Constant { value } => value,
        ref other => {
            let other = other.name();
            return Err(SpecError::initializer_mismatch(
                path,
                format!(
                    "an int64 tensor takes a constant initializer (zeros, ones, constant), not `{other}`"
                ),
            ));
        }
    };
    check_integer_value(value, path)
}

fn check_integer_value(value: f64, path: &str) -> Result<()> {
    if value.fract() != 0.0 || value.abs() > (1u64 << 24) as f64 {
        return Err(SpecError::invalid_value(
            path,
            format!("an int64 tensor holds integers up to 2^24 in magnitude, got {value}"),
        ));
    }
    Ok(())
}

fn parse_fill(v: &Value, path: &str, shape: &[u64], integer: bool) -> Result<Fill> {
    let o = Obj::new(v, path)?;
    let (idx_v, idx_path) = o.require_any(
        &["index"],
        " (one entry per leading axis: an index or a [start, stop] range)",
    )?;
    let items = match idx_v {
        Value::Array(items) => items,
        other => return Err(wrong_type(&idx_path, "a list of indices or ranges", other)),
    };
    if items.len() > shape.len() {
        return Err(SpecError::invalid_value(
            &idx_path,
            format!(
                "{} entries for a tensor of rank {}",
                items.len(),
                shape.len()
            ),
        ));
    }
    let mut ranges = Vec::with_capacity(items.len());
    for (d, item) in items.iter().enumerate() {
        let ip = index(&idx_path, d);
        let n = shape[d];
        let (a, b) = match item {
            Value::Array(pair) if pair.len() == 2 => {
                let a = fields::integer(&pair[0], &index(&ip, 0))?;
                let b = fields::integer(&pair[1], &index(&ip, 1))?;
                (a, b)
            }
            Value::Number(_) => {
                let a = fields::integer(item, &ip)?;
                (a, a.saturating_add(1))
            }
            other => return Err(wrong_type(&ip, "an index or a [start, stop] pair", other)),
        };
        if a < 0 || b <= a || b as u64 > n {
            return Err(SpecError::invalid_value(
                ip,
                format!("[{a}, {b}) is not a non-empty range of axis {d} (size {n})"),
            ));
        }
        ranges.push((a as u64, b as u64));
    }
    let (val_v, val_path) = o.require_any(&["value"], " (the constant to write)")?;
    let value = fields::finite_f64(val_v, &val_path)?;
    if integer {
        check_integer_value(value, &val_path)?;
    }
    o.finish()?;
    Ok(Fill { ranges, value })
}
