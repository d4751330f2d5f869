//! Typed access to a JSON object with JSON paths in every error and detection of unknown
//! fields: the small toolkit the request validator (`spec`) and the readers of nested inputs
//! (`hf`, `keras`, `recipe`, `init::catalogue`) are written with.

use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::BTreeSet;

use crate::error::{ErrorCode, Result, SpecError};

/// Largest size accepted for one dimension or count. Far beyond any real model, small enough
/// that products of a few of them are caught by checked arithmetic rather than wrapping.
pub const MAX_DIM: u64 = 1 << 40;

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn wrong_type(path: &str, expected: &str, got: &Value) -> SpecError {
    SpecError::new(
        ErrorCode::InvalidType,
        path,
        format!("expected {expected}, got {}", type_name(got)),
    )
}

/// A JSON object being validated. Every key read is remembered, so `finish` can reject the
/// keys nobody asked for.
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    pub path: String,
    used: RefCell<BTreeSet<&'a str>>,
}

impl<'a> Obj<'a> {
    pub fn new(value: &'a Value, path: &str) -> Result<Self> {
        match value {
            Value::Object(map) => Ok(Obj {
                map,
                path: path.to_string(),
                used: RefCell::new(BTreeSet::new()),
            }),
            other => Err(wrong_type(path, "an object", other)),
        }
    }

    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value under the first of `keys` present (an alias list, canonical name first);
    /// two spellings at once is an error rather than a silent choice.
    pub fn get_any(&self, keys: &[&'a str]) -> Result<Option<(&'a Value, String)>> {
        let mut found: Option<(&'a str, &'a Value)> = None;
        for &k in keys {
            if let Some((key, v)) = self.map.get_key_value(k) {
                self.used.borrow_mut().insert(key.as_str());
                if let Some((first, _)) = found {
                    return Err(SpecError::conflicting_fields(
                        self.path_of(k),
                        format!("`{k}` and `{first}` name the same field; give only one"),
                    ));
                }
                found = Some((k, v));
            }
        }
        Ok(found.map(|(k, v)| (v, self.path_of(k))))
    }

    pub fn get(&self, key: &'a str) -> Result<Option<(&'a Value, String)>> {
        self.get_any(&[key])
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn require_any(&self, keys: &[&'a str], what: &str) -> Result<(&'a Value, String)> {
        self.get_any(keys)?.ok_or_else(|| {
            SpecError::missing_field(
                self.path_of(keys[0]),
                format!("`{}` is required{what}", keys[0]),
            )
        })
    }

    pub fn str_any(&self, keys: &[&'a str]) -> Result<Option<(&'a str, String)>> {
        match self.get_any(keys)? {
            None => Ok(None),
            Some((Value::String(s), p)) => Ok(Some((s.as_str(), p))),
            Some((v, p)) => Err(wrong_type(&p, "a string", v)),
        }
    }

    pub fn bool_any(&self, keys: &[&'a str], default: bool) -> Result<bool> {
        match self.get_any(keys)? {
            None => Ok(default),
            Some((Value::Bool(b), _)) => Ok(*b),
            Some((v, p)) => Err(wrong_type(&p, "true or false", v)),
        }
    }

    /// A positive size (≥ 1, ≤ `MAX_DIM`).
    pub fn size_any(&self, keys: &[&'a str]) -> Result<Option<(u64, String)>> {
        match self.get_any(keys)? {
            None => Ok(None),
            Some((v, p)) => Ok(Some((positive_size(v, &p)?, p))),
        }
    }

    pub fn f64_any(&self, keys: &[&'a str]) -> Result<Option<(f64, String)>> {
        match self.get_any(keys)? {
            None => Ok(None),
            Some((v, p)) => Ok(Some((finite_f64(v, &p)?, p))),
        }
    }

    /// Rejects the fields that were never read.
    pub fn finish(self) -> Result<()> {
        let used = self.used.borrow();
        if let Some(k) = self.map.keys().find(|k| !used.contains(k.as_str())) {
            return Err(SpecError::new(
                ErrorCode::UnknownField,
                self.path_of(k),
                format!("unknown field `{k}`"),
            ));
        }
        Ok(())
    }
}

pub fn positive_size(v: &Value, path: &str) -> Result<u64> {
    match v {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                if u == 0 {
                    return Err(SpecError::invalid_value(path, "must be at least 1, got 0"));
                }
                if u > MAX_DIM {
                    return Err(SpecError::invalid_value(
                        path,
                        format!("{u} is larger than the largest accepted size {MAX_DIM}"),
                    ));
                }
                Ok(u)
            } else if n.as_i64().is_some() {
                Err(SpecError::invalid_value(
                    path,
                    format!("must be at least 1, got {n}"),
                ))
            } else {
                Err(SpecError::invalid_value(
                    path,
                    format!("must be a whole number, got {n}"),
                ))
            }
        }
        other => Err(wrong_type(path, "a positive integer", other)),
    }
}

pub fn finite_f64(v: &Value, path: &str) -> Result<f64> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(SpecError::invalid_value(
                path,
                format!("{n} is not a finite number"),
            )),
        },
        other => Err(wrong_type(path, "a number", other)),
    }
}

/// An integer that may be negative (PyTorch's `padding_idx` counts from the end when < 0).
pub fn integer(v: &Value, path: &str) -> Result<i64> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            SpecError::invalid_value(path, format!("must be an integer in 64-bit range, got {n}"))
        }),
        other => Err(wrong_type(path, "an integer", other)),
    }
}

/// A shape: a list of positive sizes (or a single size, as Keras and PyTorch both accept).
pub fn shape(v: &Value, path: &str, allow_scalar_int: bool) -> Result<Vec<u64>> {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| positive_size(x, &index(path, i)))
            .collect(),
        Value::Number(_) if allow_scalar_int => Ok(vec![positive_size(v, path)?]),
        other => Err(wrong_type(path, "a list of positive integers", other)),
    }
}
