//! Keras 3 initializers as `model.to_json()` writes them (`{"class_name": "HeNormal", "config":
//! {...}}`) or as `keras.initializers.get` reads a string (`"glorot_uniform"`, `"uniform"`), turned
//! into catalogue entries with every parameter explicit. The table is
//! `keras/src/initializers/__init__.py` (`ALL_OBJECTS_DICT`: class names, their snake_case
//! names and the aliases `normal`, `uniform`, `one`, `zero`, `IdentityInitializer`,
//! `OrthogonalInitializer`); parameters and defaults are those of the classes'
//! `__init__` in `random_initializers.py` and `constant_initializers.py` (Keras 3.15).

use serde_json::{Map, Value, json};

use super::{Init, catalogue};
use crate::error::{ErrorCode, Result, SpecError};
use crate::terms::fields::{finite_f64, join, wrong_type};

/// A Keras initializer: the catalogue entry and, for the variance-scaling family, the
/// `input_axes`/`output_axes` of its config (Keras ≥ 3.15 reads fans off those axes).
#[derive(Clone, Debug, PartialEq)]
pub struct KerasInit {
    pub spec: Init,
    pub axes: Option<(Vec<i64>, Vec<i64>)>,
    /// The variance-scaling family (`EinsumDense` gives those its einsum axes).
    pub variance_scaling: bool,
}

/// The Keras class a string or `class_name` names, or `None` if Keras does not know it.
fn class_of(name: &str) -> Option<&'static str> {
    const CLASSES: &[&str] = &[
        "Constant",
        "Identity",
        "Ones",
        "Zeros",
        "GlorotNormal",
        "GlorotUniform",
        "HeNormal",
        "HeUniform",
        "LecunNormal",
        "LecunUniform",
        "Orthogonal",
        "RandomNormal",
        "RandomUniform",
        "TruncatedNormal",
        "VarianceScaling",
        "STFT",
    ];
    if let Some(c) = CLASSES.iter().find(|c| **c == name) {
        return Some(c);
    }
    Some(match name {
        "constant" => "Constant",
        "identity" | "IdentityInitializer" => "Identity",
        "ones" | "one" => "Ones",
        "zeros" | "zero" => "Zeros",
        "glorot_normal" => "GlorotNormal",
        "glorot_uniform" => "GlorotUniform",
        "he_normal" => "HeNormal",
        "he_uniform" => "HeUniform",
        "lecun_normal" => "LecunNormal",
        "lecun_uniform" => "LecunUniform",
        "orthogonal" | "OrthogonalInitializer" => "Orthogonal",
        "random_normal" | "normal" => "RandomNormal",
        "random_uniform" | "uniform" => "RandomUniform",
        "truncated_normal" => "TruncatedNormal",
        "variance_scaling" => "VarianceScaling",
        "stft" | "STFTInitializer" => "STFT",
        _ => return None,
    })
}

/// Whether `name` is a name Keras resolves (`keras.initializers.get`).
pub fn is_keras_name(name: &str) -> bool {
    class_of(name).is_some()
}

fn num(cfg: &Map<String, Value>, key: &str, default: f64, path: &str) -> Result<f64> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => finite_f64(v, &join(path, key)),
    }
}

fn axes(cfg: &Map<String, Value>, key: &str, path: &str) -> Result<Option<Vec<i64>>> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| crate::terms::fields::integer(v, &format!("{}[{i}]", join(path, key))))
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(Value::Number(_)) => {
            let v = crate::terms::fields::integer(&cfg[key], &join(path, key))?;
            Ok(Some(vec![v]))
        }
        Some(other) => Err(wrong_type(&join(path, key), "a list of axes", other)),
    }
}

/// The arguments each class's `__init__` takes (others are a TypeError in Keras).
fn allowed(class: &str) -> &'static [&'static str] {
    match class {
        "Constant" => &["value"],
        "Identity" => &["gain"],
        "Ones" | "Zeros" => &[],
        "Orthogonal" => &["gain", "seed"],
        "RandomNormal" | "TruncatedNormal" => &["mean", "stddev", "seed"],
        "RandomUniform" => &["minval", "maxval", "seed"],
        "VarianceScaling" => &[
            "scale",
            "mode",
            "distribution",
            "seed",
            "input_axes",
            "output_axes",
        ],
        _ => &["seed", "input_axes", "output_axes"],
    }
}

/// Parses a Keras initializer: a string, `{"class_name", "config"}` (to_json's form, also
/// with `module`/`registered_name`), or paraminit's `{"name": <Keras name>, <Keras args>}`.
/// Seeds are accepted and ignored: the request's seed decides the values.
pub fn parse(v: &Value, path: &str) -> Result<KerasInit> {
    let empty = Map::new();
    let name_form = matches!(v, Value::Object(m) if !m.contains_key("class_name"));
    let (name, cfg, name_path, cfg_path) = match v {
        Value::String(s) => (s.as_str(), &empty, path.to_string(), path.to_string()),
        Value::Object(m) if m.contains_key("class_name") => {
            let name = match &m["class_name"] {
                Value::String(s) => s.as_str(),
                other => return Err(wrong_type(&join(path, "class_name"), "a string", other)),
            };
            let cfg = match m.get("config") {
                None | Some(Value::Null) => &empty,
                Some(Value::Object(c)) => c,
                Some(other) => return Err(wrong_type(&join(path, "config"), "an object", other)),
            };
            (name, cfg, join(path, "class_name"), join(path, "config"))
        }
        Value::Object(m) => {
            let name = match m.get("name") {
                Some(Value::String(s)) => s.as_str(),
                Some(other) => return Err(wrong_type(&join(path, "name"), "a string", other)),
                None => {
                    return Err(SpecError::missing_field(
                        join(path, "name"),
                        "an initializer object needs a `name` (or Keras's `class_name`)",
                    ));
                }
            };
            (name, m, join(path, "name"), path.to_string())
        }
        other => return Err(wrong_type(path, "a Keras initializer", other)),
    };
    let class = class_of(name).ok_or_else(|| {
        SpecError::unknown_initializer(&name_path,
            format!(
                "`{name}` is not a Keras 3 initializer (keras.initializers: Zeros, Ones, Constant, Identity, RandomUniform, RandomNormal, TruncatedNormal, VarianceScaling, Glorot/He/Lecun Uniform/Normal, Orthogonal)"
            ),
        )
    })?;
    let allowed = allowed(class);
    for k in cfg.keys() {
        if name_form && k == "name" {
            continue;
        }
        if !allowed.contains(&k.as_str()) {
            return Err(SpecError::new(
                ErrorCode::UnknownField,
                join(&cfg_path, k),
                format!("Keras {class} takes no argument `{k}`"),
            ));
        }
    }
    let p = &cfg_path;
    let mut variance_scaling = false;
    let mut ax = None;
    let spec_json = match class {
        "Zeros" => json!({"name": "zeros"}),
        "Ones" => json!({"name": "ones"}),
        "Constant" => json!({"name": "constant", "value": num(cfg, "value", 0.0, p)?}),
        "Identity" => json!({"name": "identity", "gain": num(cfg, "gain", 1.0, p)?}),
        "Orthogonal" => json!({"name": "orthogonal", "gain": num(cfg, "gain", 1.0, p)?}),
        "RandomNormal" => json!({"name": "random_normal", "mean": num(cfg, "mean", 0.0, p)?,
                                 "stddev": num(cfg, "stddev", 0.05, p)?}),
        "TruncatedNormal" => json!({"name": "keras_truncated_normal",
                                    "mean": num(cfg, "mean", 0.0, p)?,
                                    "stddev": num(cfg, "stddev", 0.05, p)?}),
        "RandomUniform" => {
            json!({"name": "random_uniform", "minval": num(cfg, "minval", -0.05, p)?,
                                  "maxval": num(cfg, "maxval", 0.05, p)?})
        }
        "STFT" => {
            return Err(SpecError::unsupported_layer_type(
                &name_path,
                "Keras STFT (a fixed Fourier basis for STFT layers) is not supported",
            ));
        }
        vs => {
            variance_scaling = true;
            let (scale, mode, dist) = match vs {
                "VarianceScaling" => {
                    let scale = num(cfg, "scale", 1.0, p)?;
                    if scale <= 0.0 {
                        return Err(SpecError::invalid_value(
                            join(p, "scale"),
                            format!("Keras VarianceScaling: `scale` must be positive, got {scale}"),
                        ));
                    }
                    let s = |k: &str, d: &'static str| -> Result<String> {
                        match cfg.get(k) {
                            None | Some(Value::Null) => Ok(d.to_string()),
                            Some(Value::String(s)) => Ok(s.clone()),
                            Some(o) => Err(wrong_type(&join(p, k), "a string", o)),
                        }
                    };
                    let mode = s("mode", "fan_in")?;
                    if !["fan_in", "fan_out", "fan_avg"].contains(&mode.as_str()) {
                        return Err(SpecError::invalid_value(
                            join(p, "mode"),
                            format!(
                                "Keras VarianceScaling refuses mode `{mode}`: use fan_in, fan_out or fan_avg (fan_geo_avg is JAX-only)"
                            ),
                        ));
                    }
                    // random_initializers.py: distribution.lower(); "normal" → "truncated_normal".
                    let mut dist = s("distribution", "truncated_normal")?.to_lowercase();
                    if dist == "normal" {
                        dist = "truncated_normal".into();
                    }
                    if !["uniform", "truncated_normal", "untruncated_normal"]
                        .contains(&dist.as_str())
                    {
                        return Err(SpecError::invalid_value(
                            join(p, "distribution"),
                            format!(
                                "Keras VarianceScaling refuses distribution `{dist}`: use uniform, truncated_normal (or normal) or untruncated_normal"
                            ),
                        ));
                    }
                    (scale, mode, dist)
                }
                named => {
                    let (scale, mode) = match named {
                        "HeNormal" | "HeUniform" => (2.0, "fan_in"),
                        "GlorotNormal" | "GlorotUniform" => (1.0, "fan_avg"),
                        _ => (1.0, "fan_in"),
                    };
                    let dist = if named.ends_with("Uniform") {
                        "uniform"
                    } else {
                        "truncated_normal"
                    };
                    (scale, mode.to_string(), dist.to_string())
                }
            };
            let ia = axes(cfg, "input_axes", p)?;
            let oa = axes(cfg, "output_axes", p)?;
            if let (Some(i), Some(o)) = (ia, oa) {
                ax = Some((i, o));
            }
            match vs {
                "HeNormal" => json!({"name": "he_normal"}),
                "HeUniform" => json!({"name": "he_uniform"}),
                "GlorotNormal" => json!({"name": "glorot_normal"}),
                "GlorotUniform" => json!({"name": "glorot_uniform"}),
                "LecunNormal" => json!({"name": "lecun_normal"}),
                "LecunUniform" => json!({"name": "lecun_uniform"}),
                _ => {
                    json!({"name": "variance_scaling", "scale": scale, "mode": mode, "distribution": dist})
                }
            }
        }
    };
    let spec = catalogue::parse(&spec_json, path)?;
    Ok(KerasInit {
        spec,
        axes: ax,
        variance_scaling,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_strings_mean_keras_classes() {
        let p = |v: Value| parse(&v, "x").unwrap().spec.to_json();
        assert_eq!(
            p(json!("uniform")),
            json!({"name": "random_uniform", "minval": -0.05, "maxval": 0.05})
        );
        assert_eq!(
            p(json!("normal")),
            json!({"name": "random_normal", "mean": 0.0, "stddev": 0.05})
        );
        assert_eq!(
            p(json!("truncated_normal")),
            json!({"name": "keras_truncated_normal", "mean": 0.0, "stddev": 0.05})
        );
        assert_eq!(
            p(
                json!({"class_name": "VarianceScaling", "config": {"distribution": "normal", "seed": 3}})
            ),
            json!({"name": "variance_scaling", "scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"})
        );
        let e = parse(
            &json!({"class_name": "VarianceScaling", "config": {"mode": "fan_geo_avg"}}),
            "x",
        )
        .unwrap_err();
        assert_eq!(e.path.as_deref(), Some("x.config.mode"));
        assert!(parse(&json!("kaiming_normal"), "x").is_err());
    }
}
