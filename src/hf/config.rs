//! Lenient, typed access to a config's keys, read as `from_pretrained` reads them: `null` is
//! "not given", `attribute_map` aliases must agree, and every error names the key's JSON path.

use serde_json::{Map, Value};

use crate::error::{Result, SpecError};
use crate::terms::DType;
use crate::terms::fields::join;

/// Lenient, typed access to config keys; `null` means "not given".
pub(crate) struct Cfg<'a> {
    pub(super) map: &'a Map<String, Value>,
    pub(super) path: &'a str,
}

impl<'a> Cfg<'a> {
    pub fn path(&self, key: &str) -> String {
        join(self.path, key)
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// The first of `keys` present (HF `attribute_map` aliases, e.g. `n_embd`/`hidden_size`).
    pub(super) fn first(&self, keys: &[&'static str]) -> Result<Option<(&'a Value, &'static str)>> {
        let mut found: Option<(&'a Value, &'static str)> = None;
        for &k in keys {
            if let Some(v) = self.get(k) {
                if let Some((fv, fk)) = found {
                    if fv != v {
                        return Err(SpecError::conflicting_fields(
                            self.path(k),
                            format!("`{k}` ({v}) and `{fk}` ({fv}) name the same setting"),
                        ));
                    }
                } else {
                    found = Some((v, k));
                }
            }
        }
        Ok(found)
    }

    pub fn str(&self, key: &'static str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(crate::terms::fields::wrong_type(
                &self.path(key),
                "a string",
                v,
            )),
        }
    }

    /// A positive size under any of `keys`, else `default`.
    pub fn size(&self, keys: &[&'static str], default: u64) -> Result<u64> {
        match self.first(keys)? {
            None => Ok(default),
            Some((v, k)) => crate::terms::fields::positive_size(v, &self.path(k)),
        }
    }

    pub fn opt_size(&self, keys: &[&'static str]) -> Result<Option<u64>> {
        match self.first(keys)? {
            None => Ok(None),
            Some((v, k)) => crate::terms::fields::positive_size(v, &self.path(k)).map(Some),
        }
    }

    pub fn bool(&self, key: &'static str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(crate::terms::fields::wrong_type(
                &self.path(key),
                "true or false",
                v,
            )),
        }
    }

    /// `initializer_range`: a finite number ≥ 0 (`None` when absent or null).
    pub fn init_range(&self) -> Result<Option<f64>> {
        let key = "initializer_range";
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
                _ => Err(SpecError::invalid_value(
                    self.path(key),
                    "initializer_range must be a finite number ≥ 0",
                )),
            },
            Some(v) => Err(crate::terms::fields::wrong_type(
                &self.path(key),
                "a number",
                v,
            )),
        }
    }

    /// A list of layer indices (`mlp_only_layers`); absent or null is empty.
    pub fn index_list(&self, key: &'static str) -> Result<Vec<u64>> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_u64().ok_or_else(|| {
                        crate::terms::fields::wrong_type(
                            &format!("{}[{i}]", self.path(key)),
                            "a layer index",
                            v,
                        )
                    })
                })
                .collect(),
            Some(v) => Err(crate::terms::fields::wrong_type(
                &self.path(key),
                "a list of layer indices",
                v,
            )),
        }
    }

    /// A finite number (`None` when absent or null).
    pub fn float(&self, key: &'static str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(SpecError::invalid_value(
                    self.path(key),
                    format!("{key} must be a finite number"),
                )),
            },
            Some(v) => Err(crate::terms::fields::wrong_type(
                &self.path(key),
                "a number",
                v,
            )),
        }
    }

    /// `num_labels`: `len(id2label)` when the config has `id2label` (what `PretrainedConfig`
    /// does), else `num_labels`, else 2. Both given and different is a conflict (transformers
    /// only warns and keeps `id2label`).
    pub fn num_labels(&self) -> Result<u64> {
        let from_map = match self.get("id2label") {
            None => None,
            Some(Value::Object(m)) if !m.is_empty() => Some(m.len() as u64),
            Some(v) => {
                return Err(crate::terms::fields::wrong_type(
                    &self.path("id2label"),
                    "a non-empty object of label names",
                    v,
                ));
            }
        };
        let given = self.opt_size(&["num_labels"])?;
        match (from_map, given) {
            (Some(m), Some(n)) if m != n => Err(SpecError::conflicting_fields(
                self.path("num_labels"),
                format!("num_labels {n} contradicts id2label, which has {m} labels"),
            )),
            (Some(m), _) => Ok(m),
            (None, Some(n)) => Ok(n),
            (None, None) => Ok(2),
        }
    }

    /// The config's `dtype` (transformers 5) or `torch_dtype` (4.x); `dtype` wins when both
    /// are set, as in `PretrainedConfig.__init__`.
    pub fn dtype(&self) -> Result<Option<DType>> {
        for key in ["dtype", "torch_dtype"] {
            match self.get(key) {
                None => continue,
                Some(Value::String(s)) => {
                    let d = match s.strip_prefix("torch.").unwrap_or(s) {
                        "float32" | "float" => DType::F32,
                        "float16" | "half" => DType::F16,
                        "bfloat16" => DType::BF16,
                        "float64" | "double" => DType::F64,
                        _ => {
                            return Err(SpecError::invalid_value(
                                self.path(key),
                                format!(
                                    "{key} `{s}` is not a weight dtype; use float32, float16, bfloat16 or float64"
                                ),
                            ));
                        }
                    };
                    return Ok(Some(d));
                }
                Some(v) => {
                    return Err(crate::terms::fields::wrong_type(
                        &self.path(key),
                        "a dtype name such as \"bfloat16\"",
                        v,
                    ));
                }
            }
        }
        Ok(None)
    }

    /// `pad_token_id`: a row of an embedding with `vocab` rows, or none.
    pub fn pad_token(&self, vocab: u64) -> Result<Option<u64>> {
        let key = "pad_token_id";
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(p) if p < vocab => Ok(Some(p)),
                _ => Err(SpecError::inconsistent_sizes(
                    self.path(key),
                    format!("pad_token_id {n} is not a row of the {vocab}-row embedding"),
                )),
            },
            Some(v) => Err(crate::terms::fields::wrong_type(
                &self.path(key),
                "an integer or null",
                v,
            )),
        }
    }

    /// A boolean that must keep its default because the other value changes the weights in a
    /// way this release does not produce.
    pub fn unsupported_if(&self, key: &'static str, bad: bool, what: &str) -> Result<()> {
        if self.bool(key, !bad)? == bad {
            return Err(SpecError::unsupported_layer_type(
                self.path(key),
                format!("`{key}: {bad}` is not supported: {what}"),
            ));
        }
        Ok(())
    }

    /// `a` must be divisible by `b` (sizes of the keys `ka` and `kb`).
    pub fn divisible(&self, a: u64, ka: &str, b: u64, kb: &'static str) -> Result<()> {
        if !a.is_multiple_of(b) {
            return Err(SpecError::inconsistent_sizes(
                self.path(kb),
                format!("{ka} ({a}) is not divisible by {kb} ({b})"),
            ));
        }
        Ok(())
    }
}
