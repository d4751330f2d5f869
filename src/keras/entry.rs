//! A layer entry of `model.to_json()` (`class_name`, `config`, `build_config`, inbound nodes)
//! and typed access to its config keys, each error naming the key's JSON path; Keras shapes
//! (`[null, 8]`) read into `Dims`.

use serde_json::{Map, Value};

use super::initializers::{self, KerasInit};
use super::shapes::Dims;
use crate::error::{Result, SpecError};
use crate::terms::fields::{index, join, positive_size, wrong_type};

/// A layer entry: `{"class_name", "config", "build_config"?, "inbound_nodes"?, …}`.
pub(super) struct Entry<'a> {
    pub(super) class: &'a str,
    pub(super) cfg: &'a Map<String, Value>,
    pub(super) raw: &'a Map<String, Value>,
    pub(super) path: String,
    pub(super) cfg_path: String,
}

impl<'a> Entry<'a> {
    pub(super) fn new(v: &'a Value, path: &str) -> Result<Entry<'a>> {
        let raw = match v {
            Value::Object(m) => m,
            other => return Err(wrong_type(path, "a Keras layer object", other)),
        };
        let class = match raw.get("class_name") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => return Err(wrong_type(&join(path, "class_name"), "a string", other)),
            None => {
                return Err(SpecError::missing_field(
                    join(path, "class_name"),
                    "a Keras layer needs `class_name` (as model.to_json() writes it)",
                ));
            }
        };
        let cfg = match raw.get("config") {
            Some(Value::Object(m)) => m,
            Some(other) => return Err(wrong_type(&join(path, "config"), "an object", other)),
            None => {
                return Err(SpecError::missing_field(
                    join(path, "config"),
                    "a Keras layer needs `config`",
                ));
            }
        };
        Ok(Entry {
            class,
            cfg,
            raw,
            path: path.to_string(),
            cfg_path: join(path, "config"),
        })
    }

    pub(super) fn key(&self, k: &str) -> String {
        join(&self.cfg_path, k)
    }

    pub(super) fn get(&self, k: &str) -> Option<&'a Value> {
        self.cfg.get(k).filter(|v| !v.is_null())
    }

    pub(super) fn name(&self) -> Result<&'a str> {
        match self.cfg.get("name") {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(other) if !other.is_string() && !other.is_null() => {
                Err(wrong_type(&self.key("name"), "a string", other))
            }
            _ => Err(SpecError::missing_field(
                self.key("name"),
                format!(
                    "the {} layer has no `name`; post model.to_json() as it is",
                    self.class
                ),
            )),
        }
    }

    pub(super) fn size(&self, k: &str) -> Result<u64> {
        match self.get(k) {
            Some(v) => positive_size(v, &self.key(k)),
            None => Err(SpecError::missing_field(
                self.key(k),
                format!("the {} layer needs `{k}`", self.class),
            )),
        }
    }

    pub(super) fn size_or(&self, k: &str, d: u64) -> Result<u64> {
        match self.get(k) {
            Some(v) => positive_size(v, &self.key(k)),
            None => Ok(d),
        }
    }

    pub(super) fn flag(&self, k: &str, d: bool) -> Result<bool> {
        match self.get(k) {
            None => Ok(d),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(wrong_type(&self.key(k), "true or false", other)),
        }
    }

    pub(super) fn text(&self, k: &str, d: &'a str) -> Result<&'a str> {
        match self.get(k) {
            None => Ok(d),
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(wrong_type(&self.key(k), "a string", other)),
        }
    }

    pub(super) fn int(&self, k: &str, d: i64) -> Result<i64> {
        match self.get(k) {
            None => Ok(d),
            Some(v) => crate::terms::fields::integer(v, &self.key(k)),
        }
    }

    /// An int or a tuple of `n` ints (`kernel_size`, `strides`, …).
    pub(super) fn tuple(&self, k: &str, n: usize, d: Option<u64>) -> Result<Vec<u64>> {
        match self.get(k) {
            None => match d {
                Some(d) => Ok(vec![d; n]),
                None => Err(SpecError::missing_field(
                    self.key(k),
                    format!("the {} layer needs `{k}`", self.class),
                )),
            },
            Some(Value::Array(a)) => {
                if a.len() != n {
                    return Err(SpecError::invalid_value(
                        self.key(k),
                        format!("expected {n} values, got {}", a.len()),
                    ));
                }
                a.iter()
                    .enumerate()
                    .map(|(i, v)| positive_size(v, &index(&self.key(k), i)))
                    .collect()
            }
            Some(v) => Ok(vec![positive_size(v, &self.key(k))?; n]),
        }
    }

    pub(super) fn init(
        &self,
        k: &str,
        default: &str,
    ) -> Result<(KerasInit, String, Option<String>)> {
        match self.get(k) {
            Some(v) => Ok((initializers::parse(v, &self.key(k))?, self.key(k), None)),
            None => Ok((
                initializers::parse(&Value::String(default.into()), &self.key(k))?,
                self.cfg_path.clone(),
                Some(format!("Keras {} default {k}: {default}", self.class)),
            )),
        }
    }

    /// The input shape(s) Keras built the layer with: `build_config.input_shape`.
    pub(super) fn build_shape(&self) -> Result<Option<&'a Value>> {
        match self.raw.get("build_config") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(b)) => Ok(b.get("input_shape").filter(|v| !v.is_null())),
            Some(other) => Err(wrong_type(
                &join(&self.path, "build_config"),
                "an object",
                other,
            )),
        }
    }
}

pub(super) fn dims(v: &Value, path: &str) -> Result<Dims> {
    match v {
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Value::Null => Ok(None),
                d => positive_size(d, &index(path, i)).map(Some),
            })
            .collect(),
        other => Err(wrong_type(path, "a shape (a list of sizes or null)", other)),
    }
}

/// A shape or a list of shapes (a merging layer's `input_shape`).
pub(super) fn shape_list(v: &Value, path: &str) -> Result<Vec<Dims>> {
    match v {
        Value::Array(a) if a.first().is_some_and(Value::is_array) => a
            .iter()
            .enumerate()
            .map(|(i, s)| dims(s, &index(path, i)))
            .collect(),
        v => Ok(vec![dims(v, path)?]),
    }
}

pub(super) fn known(d: Option<u64>, path: &str, what: &str) -> Result<u64> {
    d.ok_or_else(|| {
        SpecError::invalid_value(
            path,
            format!("the {what} is unknown (None) in the input shape"),
        )
    })
}
