//! The initializer catalogue: every name the service accepts, its parameters with defaults, its
//! formula, whose semantics it follows and the constructor of its typed form
//! (`init::initializer::Init`). Parsing a request's initializer (`parse`, which returns the
//! typed value) and serving `GET /v1/initializers` both read this one table.

use serde_json::{Value, json};

use super::initializer::{FanMode, Init, Nonlinearity, TorchFanMode, VsDistribution, build as b};
use crate::error::{Result, SpecError};
use crate::terms::fields::{Obj, finite_f64, join, wrong_type};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamKind {
    Float,
    /// An integer ≥ 1.
    Count,
    Choice(&'static [&'static str]),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParamDefault {
    Float(f64),
    Count(u64),
    Choice(&'static str),
    Required,
}

#[derive(Debug)]
pub struct ParamDef {
    pub name: &'static str,
    /// Other spellings accepted in requests (the source framework's own argument names).
    pub aliases: &'static [&'static str],
    pub kind: ParamKind,
    pub default: ParamDefault,
}

#[derive(Debug)]
pub struct InitDef {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    /// Whose semantics the name follows: `pytorch`, `keras`, `jax` (Flax uses jax.nn.initializers)
    /// or `all` where the frameworks agree.
    pub semantics: &'static str,
    pub params: &'static [ParamDef],
    pub formula: &'static str,
    /// The framework source the formula is read from.
    pub source: &'static str,
    /// Builds the typed initializer from the parameter values, given in `params` order.
    pub build: fn(&[ParamValue]) -> Option<Init>,
}

const fn p(name: &'static str, kind: ParamKind, default: ParamDefault) -> ParamDef {
    ParamDef {
        name,
        aliases: &[],
        kind,
        default,
    }
}

const fn pa(
    name: &'static str,
    aliases: &'static [&'static str],
    kind: ParamKind,
    default: ParamDefault,
) -> ParamDef {
    ParamDef {
        name,
        aliases,
        kind,
        default,
    }
}

use ParamDefault as D;
use ParamKind as K;

pub const FAN_MODES: &[&str] = FanMode::NAMES;
pub const TORCH_FAN_MODES: &[&str] = TorchFanMode::NAMES;
pub const VS_DISTRIBUTIONS: &[&str] = VsDistribution::NAMES;
/// The names `torch.nn.init.calculate_gain` accepts.
pub const NONLINEARITIES: &[&str] = Nonlinearity::NAMES;

/// `torch.nn.init.kaiming_*_(a=0, mode='fan_in', nonlinearity='leaky_relu')`.
const KAIMING_PARAMS: &[ParamDef] = &[
    p("a", K::Float, D::Float(0.0)),
    p("mode", K::Choice(TORCH_FAN_MODES), D::Choice("fan_in")),
    p(
        "nonlinearity",
        K::Choice(NONLINEARITIES),
        D::Choice("leaky_relu"),
    ),
];

/// The entries, in the order `Init::def` indexes them (its literal indices make a shorter
/// array a compile error).
pub static CATALOGUE: [InitDef; 29] = [
    InitDef {
        name: "zeros",
        aliases: &["zero", "zeros_init"],
        semantics: "all",
        params: &[],
        formula: "0",
        source: "torch/nn/init.py zeros_; keras/src/initializers/constant_initializers.py Zeros; jax/_src/nn/initializers.py zeros",
        build: b::zeros,
    },
    InitDef {
        name: "ones",
        aliases: &["one", "ones_init"],
        semantics: "all",
        params: &[],
        formula: "1",
        source: "torch/nn/init.py ones_; keras Ones; jax ones",
        build: b::ones,
    },
    InitDef {
        name: "constant",
        aliases: &[],
        semantics: "all",
        params: &[pa("value", &["val"], K::Float, D::Float(0.0))],
        formula: "value",
        source: "torch/nn/init.py constant_; keras Constant(value=0.0); jax constant",
        build: b::constant,
    },
    InitDef {
        name: "uniform",
        aliases: &["torch_uniform", "uniform_"],
        semantics: "pytorch",
        params: &[
            pa("low", &["a"], K::Float, D::Float(0.0)),
            pa("high", &["b"], K::Float, D::Float(1.0)),
        ],
        formula: "U(low, high)",
        source: "torch/nn/init.py uniform_(a=0, b=1)",
        build: b::uniform,
    },
    InitDef {
        name: "normal",
        aliases: &["torch_normal", "normal_"],
        semantics: "pytorch",
        params: &[
            p("mean", K::Float, D::Float(0.0)),
            p("std", K::Float, D::Float(1.0)),
        ],
        formula: "N(mean, std²)",
        source: "torch/nn/init.py normal_(mean=0, std=1)",
        build: b::normal,
    },
    InitDef {
        name: "truncated_normal",
        aliases: &["torch_truncated_normal", "trunc_normal", "trunc_normal_"],
        semantics: "pytorch",
        params: &[
            p("mean", K::Float, D::Float(0.0)),
            p("std", K::Float, D::Float(1.0)),
            p("a", K::Float, D::Float(-2.0)),
            p("b", K::Float, D::Float(2.0)),
        ],
        formula: "N(mean, std²) restricted to [a, b]; a and b are absolute bounds, std is not corrected",
        source: "torch/nn/init.py trunc_normal_(mean=0, std=1, a=-2, b=2)",
        build: b::truncated_normal,
    },
    InitDef {
        name: "random_uniform",
        aliases: &["RandomUniform"],
        semantics: "keras",
        params: &[
            p("minval", K::Float, D::Float(-0.05)),
            p("maxval", K::Float, D::Float(0.05)),
        ],
        formula: "U(minval, maxval)",
        source: "keras/src/initializers/random_initializers.py RandomUniform(minval=-0.05, maxval=0.05)",
        build: b::random_uniform,
    },
    InitDef {
        name: "random_normal",
        aliases: &["RandomNormal"],
        semantics: "keras",
        params: &[
            p("mean", K::Float, D::Float(0.0)),
            p("stddev", K::Float, D::Float(0.05)),
        ],
        formula: "N(mean, stddev²)",
        source: "keras/src/initializers/random_initializers.py RandomNormal(mean=0, stddev=0.05)",
        build: b::random_normal,
    },
    InitDef {
        name: "keras_truncated_normal",
        aliases: &["TruncatedNormal"],
        semantics: "keras",
        params: &[
            p("mean", K::Float, D::Float(0.0)),
            p("stddev", K::Float, D::Float(0.05)),
        ],
        formula: "N(mean, stddev²) restricted to mean ± 2·stddev, stddev not corrected",
        source: "keras/src/initializers/random_initializers.py TruncatedNormal(mean=0, stddev=0.05)",
        build: b::keras_truncated_normal,
    },
    InitDef {
        name: "jax_uniform",
        aliases: &[],
        semantics: "jax",
        params: &[p("scale", K::Float, D::Float(0.01))],
        formula: "U(0, scale)",
        source: "jax/_src/nn/initializers.py uniform(scale=1e-2)",
        build: b::jax_uniform,
    },
    InitDef {
        name: "jax_normal",
        aliases: &[],
        semantics: "jax",
        params: &[p("stddev", K::Float, D::Float(0.01))],
        formula: "N(0, stddev²)",
        source: "jax/_src/nn/initializers.py normal(stddev=1e-2)",
        build: b::jax_normal,
    },
    InitDef {
        name: "jax_truncated_normal",
        aliases: &[],
        semantics: "jax",
        params: &[
            p("stddev", K::Float, D::Float(0.01)),
            p("lower", K::Float, D::Float(-2.0)),
            p("upper", K::Float, D::Float(2.0)),
        ],
        formula: "N(0, stddev²) restricted to [lower·stddev, upper·stddev], stddev not corrected",
        source: "jax/_src/nn/initializers.py truncated_normal(stddev=1e-2, lower=-2, upper=2)",
        build: b::jax_truncated_normal,
    },
    InitDef {
        name: "variance_scaling",
        aliases: &["VarianceScaling"],
        semantics: "keras/jax",
        params: &[
            p("scale", K::Float, D::Float(1.0)),
            p("mode", K::Choice(FAN_MODES), D::Choice("fan_in")),
            p(
                "distribution",
                K::Choice(VS_DISTRIBUTIONS),
                D::Choice("truncated_normal"),
            ),
        ],
        formula: "n = fan_in | fan_out | (fan_in+fan_out)/2 | √(fan_in·fan_out); truncated_normal: N(0, (√(scale/n)/0.87962566103423978)²) restricted to ±2 of that std; normal (= untruncated_normal): N(0, scale/n); uniform: U(±√(3·scale/n))",
        source: "keras/src/initializers/random_initializers.py VarianceScaling; jax/_src/nn/initializers.py variance_scaling",
        build: b::variance_scaling,
    },
    InitDef {
        name: "kaiming_uniform",
        aliases: &["kaiming_uniform_", "torch_kaiming_uniform"],
        semantics: "pytorch",
        params: KAIMING_PARAMS,
        formula: "U(±gain·√(3/fan_mode)), gain = calculate_gain(nonlinearity, a)",
        source: "torch/nn/init.py kaiming_uniform_",
        build: b::kaiming_uniform,
    },
    InitDef {
        name: "kaiming_normal",
        aliases: &["kaiming_normal_", "torch_kaiming_normal"],
        semantics: "pytorch",
        params: KAIMING_PARAMS,
        formula: "N(0, (gain/√fan_mode)²), untruncated, gain = calculate_gain(nonlinearity, a)",
        source: "torch/nn/init.py kaiming_normal_",
        build: b::kaiming_normal,
    },
    InitDef {
        name: "xavier_uniform",
        aliases: &["xavier_uniform_", "torch_xavier_uniform"],
        semantics: "pytorch",
        params: &[p("gain", K::Float, D::Float(1.0))],
        formula: "U(±gain·√(6/(fan_in+fan_out)))",
        source: "torch/nn/init.py xavier_uniform_",
        build: b::xavier_uniform,
    },
    InitDef {
        name: "xavier_normal",
        aliases: &["xavier_normal_", "torch_xavier_normal"],
        semantics: "pytorch",
        params: &[p("gain", K::Float, D::Float(1.0))],
        formula: "N(0, gain²·2/(fan_in+fan_out)), untruncated",
        source: "torch/nn/init.py xavier_normal_",
        build: b::xavier_normal,
    },
    InitDef {
        name: "he_uniform",
        aliases: &["HeUniform"],
        semantics: "keras/jax",
        params: &[],
        formula: "variance_scaling(2, fan_in, uniform)",
        source: "keras HeUniform; jax he_uniform",
        build: b::he_uniform,
    },
    InitDef {
        name: "he_normal",
        aliases: &["HeNormal"],
        semantics: "keras/jax",
        params: &[],
        formula: "variance_scaling(2, fan_in, truncated_normal)",
        source: "keras HeNormal; jax he_normal",
        build: b::he_normal,
    },
    InitDef {
        name: "glorot_uniform",
        aliases: &["GlorotUniform"],
        semantics: "keras/jax",
        params: &[],
        formula: "variance_scaling(1, fan_avg, uniform)",
        source: "keras GlorotUniform; jax glorot_uniform",
        build: b::glorot_uniform,
    },
    InitDef {
        name: "glorot_normal",
        aliases: &["GlorotNormal"],
        semantics: "keras/jax",
        params: &[],
        formula: "variance_scaling(1, fan_avg, truncated_normal)",
        source: "keras GlorotNormal; jax glorot_normal",
        build: b::glorot_normal,
    },
    InitDef {
        name: "lecun_uniform",
        aliases: &["LecunUniform"],
        semantics: "keras/jax",
        params: &[],
        formula: "variance_scaling(1, fan_in, uniform)",
        source: "keras LecunUniform; jax lecun_uniform",
        build: b::lecun_uniform,
    },
    InitDef {
        name: "lecun_normal",
        aliases: &["LecunNormal"],
        semantics: "keras/jax",
        params: &[],
        formula: "variance_scaling(1, fan_in, truncated_normal)",
        source: "keras LecunNormal; jax lecun_normal (Flax Dense/Conv default)",
        build: b::lecun_normal,
    },
    InitDef {
        name: "orthogonal",
        aliases: &["Orthogonal", "orthogonal_"],
        semantics: "all",
        params: &[pa("gain", &["scale"], K::Float, D::Float(1.0))],
        formula: "gain·Q, Q from the QR decomposition of a N(0,1) matrix (rows = shape[0], cols = the rest, in PyTorch layout) with Q's columns multiplied by sign(diag R)",
        source: "torch/nn/init.py orthogonal_; keras Orthogonal; jax orthogonal",
        build: b::orthogonal,
    },
    InitDef {
        name: "identity",
        aliases: &["eye", "eye_", "Identity"],
        semantics: "pytorch/keras",
        params: &[p("gain", K::Float, D::Float(1.0))],
        formula: "gain on the diagonal of a 2-D tensor, 0 elsewhere",
        source: "torch/nn/init.py eye_; keras Identity(gain=1)",
        build: b::identity,
    },
    InitDef {
        name: "dirac",
        aliases: &["dirac_"],
        semantics: "pytorch",
        params: &[p("groups", K::Count, D::Count(1))],
        formula: "W[g·(out/groups)+d, d, k//2, …] = 1 for d < min(out/groups, in), 0 elsewhere (3-, 4- or 5-D)",
        source: "torch/nn/init.py dirac_",
        build: b::dirac,
    },
    InitDef {
        name: "delta_orthogonal",
        aliases: &[],
        semantics: "jax",
        params: &[p("scale", K::Float, D::Float(1.0))],
        formula: "0 except the centre tap ((k-1)//2 per spatial axis), which is scale·orthogonal [in, out] (needs out ≥ in)",
        source: "jax/_src/nn/initializers.py delta_orthogonal",
        build: b::delta_orthogonal,
    },
    InitDef {
        name: "sparse",
        aliases: &["sparse_"],
        semantics: "pytorch",
        params: &[
            p("sparsity", K::Float, D::Required),
            p("std", K::Float, D::Float(0.01)),
        ],
        formula: "N(0, std²), then in each column ceil(sparsity·rows) entries set to 0 (2-D only)",
        source: "torch/nn/init.py sparse_",
        build: b::sparse,
    },
    InitDef {
        name: "auto",
        aliases: &[],
        semantics: "paraminit",
        params: &[],
        formula: "chosen from the layer's activation: ReLU family → He normal, tanh/sigmoid → Glorot uniform, SELU → LeCun normal, linear/softmax/none → LeCun normal, in the framework's own flavour",
        source: "He et al. 2015; Glorot & Bengio 2010; Klambauer et al. 2017; LeCun et al. 1998",
        build: b::auto,
    },
];

pub fn find(name: &str) -> Option<&'static InitDef> {
    CATALOGUE
        .iter()
        .find(|d| d.name == name || d.aliases.contains(&name))
}

/// A parameter value after validation, serialized as the bare number or string.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum ParamValue {
    Float(f64),
    Count(u64),
    Choice(&'static str),
}

impl ParamValue {
    pub(super) fn to_json(self) -> Value {
        // A number or a string always serializes (`Null` is never produced; the pinned
        // catalogue and canonical requests cover every parameter).
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// Parses `"he_normal"` or `{"name": "uniform", "low": -0.1, "high": 0.1}`.
pub fn parse(value: &Value, path: &str) -> Result<Init> {
    let (name, obj) = match value {
        Value::String(s) => (s.as_str(), None),
        Value::Object(_) => {
            let obj = Obj::new(value, path)?;
            let (name, _) = obj.str_any(&["name"])?.ok_or_else(|| {
                SpecError::missing_field(join(path, "name"), "an initializer object needs a `name`")
            })?;
            (name, Some(obj))
        }
        other => return Err(wrong_type(path, "an initializer name or object", other)),
    };
    let name_path = if obj.is_some() {
        join(path, "name")
    } else {
        path.to_string()
    };
    let def = find(name).ok_or_else(|| {
        SpecError::unknown_initializer(
            &name_path,
            format!("unknown initializer `{name}`; GET /v1/initializers lists them all"),
        )
    })?;
    let mut params = Vec::with_capacity(def.params.len());
    for pd in def.params {
        let mut keys: Vec<&str> = vec![pd.name];
        keys.extend_from_slice(pd.aliases);
        let given = match &obj {
            Some(o) => o.get_any(&keys)?,
            None => None,
        };
        let v = match given {
            None => match pd.default {
                D::Float(x) => ParamValue::Float(x),
                D::Count(n) => ParamValue::Count(n),
                D::Choice(s) => ParamValue::Choice(s),
                D::Required => {
                    return Err(SpecError::missing_field(
                        join(path, pd.name),
                        format!("initializer `{}` needs `{}`", def.name, pd.name),
                    ));
                }
            },
            Some((v, p)) => match pd.kind {
                K::Float => ParamValue::Float(finite_f64(v, &p)?),
                K::Count => ParamValue::Count(crate::terms::fields::positive_size(v, &p)?),
                K::Choice(options) => match v {
                    Value::String(s) => match options.iter().find(|o| **o == s.as_str()) {
                        Some(o) => ParamValue::Choice(o),
                        None => {
                            return Err(SpecError::invalid_value(
                                p,
                                format!("`{s}` is not one of {}", options.join(", ")),
                            ));
                        }
                    },
                    other => return Err(wrong_type(&p, "a string", other)),
                },
            },
        };
        params.push(v);
    }
    if let Some(o) = obj {
        o.finish()?;
    }
    let init = (def.build)(&params).ok_or_else(|| {
        // The table's parameter kinds and its constructor disagree: a defect of this file
        // (the unit tests build every entry), reported rather than panicking.
        SpecError::unknown_initializer(
            path,
            format!(
                "internal: the catalogue entry `{}` does not build",
                def.name
            ),
        )
    })?;
    init.check(path)?;
    Ok(init)
}

/// The catalogue as served by `GET /v1/initializers`.
pub fn catalogue_json() -> Value {
    let items: Vec<Value> = CATALOGUE
        .iter()
        .map(|d| {
            let params: Vec<Value> = d
                .params
                .iter()
                .map(|p| {
                    let (kind, choices) = match p.kind {
                        K::Float => ("number", None),
                        K::Count => ("integer", None),
                        K::Choice(c) => ("string", Some(c)),
                    };
                    let default = match p.default {
                        D::Float(x) => json!(x),
                        D::Count(n) => json!(n),
                        D::Choice(s) => json!(s),
                        D::Required => Value::Null,
                    };
                    let mut m = json!({"name": p.name, "type": kind, "default": default, "required": p.default == D::Required});
                    if let Some(c) = choices {
                        m["choices"] = json!(c);
                    }
                    if !p.aliases.is_empty() {
                        m["aliases"] = json!(p.aliases);
                    }
                    m
                })
                .collect();
            json!({
                "name": d.name,
                "aliases": d.aliases,
                "semantics": d.semantics,
                "parameters": params,
                "formula": d.formula,
                "source": d.source,
            })
        })
        .collect();
    json!({ "initializers": items, "framework_names": super::scoped::names_table() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_values_serialize_bare() {
        // What the hand-written `to_json` wrote (`json!(x)` of each payload): an f64 keeps its
        // fraction (`1.0`, not `1`), a count is an integer, a choice a string.
        let cases = [
            (ParamValue::Float(1.0), "1.0"),
            (ParamValue::Float(-0.25), "-0.25"),
            (ParamValue::Count(3), "3"),
            (ParamValue::Choice("fan_in"), r#""fan_in""#),
        ];
        for (v, want) in cases {
            assert_eq!(v.to_json().to_string(), want, "{v:?}");
        }
    }
}
