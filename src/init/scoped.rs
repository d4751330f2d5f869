//! Framework-scoped initializer names (issue 13): a name means what the request's framework
//! means by it. Before the request is validated, every initializer under `keras` or `flax` is
//! rewritten into the catalogue entry (a framework-independent name with every parameter
//! explicit) that the framework's own spelling denotes:
//!
//! - `keras`: every name `keras.initializers.get` resolves (class names, snake_case names,
//!   `uniform`, `normal`, `one`, `zero`, …) and `{"class_name", "config"}` objects mean the
//!   Keras 3 class with its defaults (`init::keras`): `"uniform"` is
//!   `RandomUniform(-0.05, 0.05)`, `VarianceScaling(distribution="normal")` is truncated,
//!   `mode="fan_geo_avg"` is refused as Keras refuses it.
//! - `flax`: the `flax.linen.initializers` / `jax.nn.initializers` names `uniform`, `normal`,
//!   `truncated_normal` mean `jax_uniform` (U(0, 0.01)), `jax_normal`, `jax_truncated_normal`,
//!   and JAX's aliases `kaiming_*` / `xavier_*` mean `he_*` / `glorot_*` (truncated where JAX
//!   truncates); the others (`variance_scaling`, `glorot_*`, `he_*`, `lecun_*`, `orthogonal`,
//!   `delta_orthogonal`, `constant`, `zeros`, `ones`) already have JAX's meaning.
//! - `pytorch`: unchanged (`uniform` is `torch.nn.init.uniform_`, …).
//!
//! Names the framework does not define keep their catalogue meaning (explicit cross-framework
//! names: `kaiming_normal` under keras, `jax_uniform`, `random_uniform`, `torch_uniform`,
//! `torch_kaiming_normal`, … everywhere).
//!
//! PyTorch's `uniform`, `normal` and `truncated_normal` keep their names in the catalogue and in
//! canonical requests, always with their PyTorch parameters explicit (`{"name": "uniform",
//! "low": …, "high": …}`, `normal` with `std`, `truncated_normal` with `std`, `a`, `b`); those
//! parameters are PyTorch's and neither Keras nor JAX takes them, so an object carrying one of
//! them means PyTorch's initializer under every framework. That makes canonical requests
//! framework-independent, and files written before this change (which store exactly those
//! forms) reproduce byte for byte. `torch_uniform`, `torch_normal`, `torch_truncated_normal`
//! are explicit aliases.

use serde_json::{Map, Value, json};

use super::keras as kinit;
use crate::error::{Result, SpecError};
use crate::terms::Framework;
use crate::terms::fields::{index, join};

/// The PyTorch-only parameters of the names Keras and JAX spell the same way.
fn torch_only_keys(name: &str) -> &'static [&'static str] {
    match name {
        "uniform" => &["low", "high", "a", "b"],
        "normal" => &["std"],
        "truncated_normal" | "trunc_normal" => &["std", "a", "b"],
        "kaiming_uniform" | "kaiming_normal" => &["a", "mode", "nonlinearity"],
        "xavier_uniform" | "xavier_normal" => &["gain"],
        _ => &[],
    }
}

fn keeps_torch_meaning(name: &str, obj: Option<&Map<String, Value>>) -> bool {
    let keys = torch_only_keys(name);
    obj.is_some_and(|o| keys.iter().any(|k| o.contains_key(*k)))
}

/// The initializer `v` (at `path`) rewritten for `fw`, or `None` to keep it as it is.
pub fn translate(v: &Value, fw: Framework, path: &str) -> Result<Option<Value>> {
    let (name, obj) = match v {
        Value::String(s) => (s.as_str(), None),
        Value::Object(m) => match (m.get("class_name"), m.get("name")) {
            (Some(_), _) if fw == Framework::Keras => {
                return Ok(Some(keras_form(v, path)?));
            }
            (_, Some(Value::String(s))) => (s.as_str(), Some(m)),
            _ => return Ok(None),
        },
        _ => return Ok(None),
    };
    if keeps_torch_meaning(name, obj) {
        return Ok(None);
    }
    match fw {
        Framework::PyTorch => Ok(None),
        Framework::Keras if kinit::is_keras_name(name) => Ok(Some(keras_form(v, path)?)),
        Framework::Keras => Ok(None),
        Framework::Flax => {
            let jax = match name {
                "uniform" => "jax_uniform",
                "normal" => "jax_normal",
                "truncated_normal" => "jax_truncated_normal",
                // jax/_src/nn/initializers.py: kaiming_* = he_*, xavier_* = glorot_*.
                "kaiming_uniform" => "he_uniform",
                "kaiming_normal" => "he_normal",
                "xavier_uniform" => "glorot_uniform",
                "xavier_normal" => "glorot_normal",
                _ => return Ok(None),
            };
            Ok(Some(match obj {
                None => json!(jax),
                Some(m) => {
                    let mut m = m.clone();
                    m.insert("name".into(), json!(jax));
                    Value::Object(m)
                }
            }))
        }
    }
}

fn keras_form(v: &Value, path: &str) -> Result<Value> {
    let k = kinit::parse(v, path)?;
    if k.axes.is_some() {
        return Err(SpecError::unsupported_layer_type(
            path,
            "`input_axes`/`output_axes` are honoured in `keras_model` requests (EinsumDense); in `layers` give the tensor's fans instead",
        ));
    }
    Ok(k.spec.to_json())
}

/// Keys of a layer entry that hold an initializer.
const LAYER_INIT_KEYS: &[&str] = &[
    "kernel_initializer",
    "weight_initializer",
    "bias_initializer",
    "embeddings_initializer",
    "gamma_initializer",
    "beta_initializer",
    "recurrent_initializer",
];

/// The request with every initializer of `layers` and `tensors` rewritten for `fw`; `None`
/// when nothing changes.
pub fn apply(root: &Value, fw: Framework) -> Result<Option<Value>> {
    if fw == Framework::PyTorch {
        return Ok(None);
    }
    let mut out = root.clone();
    let mut changed = false;
    for (list, keys) in [("layers", LAYER_INIT_KEYS), ("tensors", &["init"][..])] {
        let Some(Value::Array(items)) = out.get_mut(list) else {
            continue;
        };
        for (i, item) in items.iter_mut().enumerate() {
            let Value::Object(m) = item else { continue };
            for &k in keys {
                if let Some(v) = m.get(k)
                    && let Some(new) = translate(v, fw, &join(&index(list, i), k))?
                {
                    m.insert(k.to_string(), new);
                    changed = true;
                }
            }
        }
    }
    Ok(changed.then_some(out))
}

/// The names each framework's users write and what they mean here (served by
/// `GET /v1/initializers` as `framework_names`; computed by `translate`, so it is what the
/// service does).
pub fn names_table() -> Value {
    const KERAS: &[&str] = &[
        "zeros",
        "Zeros",
        "zero",
        "ones",
        "Ones",
        "one",
        "constant",
        "Constant",
        "identity",
        "Identity",
        "orthogonal",
        "Orthogonal",
        "uniform",
        "random_uniform",
        "RandomUniform",
        "normal",
        "random_normal",
        "RandomNormal",
        "truncated_normal",
        "TruncatedNormal",
        "variance_scaling",
        "VarianceScaling",
        "glorot_uniform",
        "GlorotUniform",
        "glorot_normal",
        "GlorotNormal",
        "he_uniform",
        "HeUniform",
        "he_normal",
        "HeNormal",
        "lecun_uniform",
        "LecunUniform",
        "lecun_normal",
        "LecunNormal",
    ];
    const FLAX: &[&str] = &[
        "zeros",
        "ones",
        "constant",
        "uniform",
        "normal",
        "truncated_normal",
        "variance_scaling",
        "glorot_uniform",
        "glorot_normal",
        "xavier_uniform",
        "xavier_normal",
        "he_uniform",
        "he_normal",
        "kaiming_uniform",
        "kaiming_normal",
        "lecun_uniform",
        "lecun_normal",
        "orthogonal",
        "delta_orthogonal",
    ];
    const TORCH: &[&str] = &[
        "zeros",
        "ones",
        "constant",
        "uniform",
        "normal",
        "truncated_normal",
        "trunc_normal",
        "kaiming_uniform",
        "kaiming_normal",
        "xavier_uniform",
        "xavier_normal",
        "orthogonal",
        "eye",
        "dirac",
        "sparse",
    ];
    let mut out = Map::new();
    for (fw, names) in [
        (Framework::PyTorch, TORCH),
        (Framework::Keras, KERAS),
        (Framework::Flax, FLAX),
    ] {
        let mut m = Map::new();
        for &n in names {
            let v = Value::String(n.into());
            let t = translate(&v, fw, "").ok().flatten().unwrap_or(v);
            // Required parameters (sparse's sparsity) have no default to show.
            let shown = crate::init::catalogue::parse(&t, "")
                .map(|s| s.to_json())
                .unwrap_or(t);
            m.insert(n.into(), shown);
        }
        out.insert(fw.as_str().into(), Value::Object(m));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_framework_reads_its_own_names() {
        let t = names_table();
        assert_eq!(
            t["keras"]["uniform"],
            json!({"name": "random_uniform", "minval": -0.05, "maxval": 0.05})
        );
        assert_eq!(
            t["flax"]["uniform"],
            json!({"name": "jax_uniform", "scale": 0.01})
        );
        assert_eq!(
            t["pytorch"]["uniform"],
            json!({"name": "uniform", "low": 0.0, "high": 1.0})
        );
        assert_eq!(t["flax"]["kaiming_normal"], json!({"name": "he_normal"}));
        assert_eq!(
            t["keras"]["TruncatedNormal"]["name"],
            "keras_truncated_normal"
        );
        // kaiming_normal is not a Keras name: the explicit PyTorch one.
        let k = translate(&json!("kaiming_normal"), Framework::Keras, "x").unwrap();
        assert_eq!(k, None);
        // An old file's canonical form keeps PyTorch's meaning under every framework.
        let old = json!({"name": "uniform", "low": 0.0, "high": 1.0});
        assert_eq!(translate(&old, Framework::Keras, "x").unwrap(), None);
        assert_eq!(translate(&old, Framework::Flax, "x").unwrap(), None);
    }
}
