//! The safetensors header of a plan: `__metadata__` (canonical request, algorithm, version,
//! slices) and each tensor's dtype, shape and offsets, padded to 8 bytes. It lives with the
//! plan rather than in `encode` because the plan's limits (header and file size) need its
//! length before any byte is encoded.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{MAX_HEADER_BYTES, SERVICE_VERSION, TensorPlan};
use crate::error::{Result, SpecError};
use crate::rng::ALGORITHM_ID;
use crate::spec::Request;

/// `__metadata__` of every file, keys sorted.
pub fn file_metadata(req: &Request, canonical: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("format", "pt".to_string()),
        ("paraminit.algorithm", ALGORITHM_ID.to_string()),
        ("paraminit.framework", req.framework.as_str().to_string()),
        ("paraminit.request", canonical.to_string()),
        ("paraminit.seed", req.seed.to_string()),
        ("paraminit.version", SERVICE_VERSION.to_string()),
    ])
}

/// The safetensors prefix: u64 LE header length, then the compact JSON header padded with
/// spaces to a multiple of 8 (the length counts the padding).
pub(super) fn safetensors_header(
    req: &Request,
    canonical: &str,
    tensors: &[TensorPlan],
) -> Result<Vec<u8>> {
    let js = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut h = String::with_capacity(256 + canonical.len() + tensors.len() * 96);
    h.push_str("{\"__metadata__\":{");
    let mut metadata = file_metadata(req, canonical);
    let slices: serde_json::Map<String, Value> = tensors
        .iter()
        .filter_map(|t| t.slice_json().map(|j| (t.name.clone(), j)))
        .collect();
    if !slices.is_empty() {
        // A shard file describes itself: each sliced tensor's full shape and offsets.
        metadata.insert("paraminit.slices", Value::Object(slices).to_string());
    }
    for (i, (k, v)) in metadata.iter().enumerate() {
        if i > 0 {
            h.push(',');
        }
        h.push_str(&js(k));
        h.push(':');
        h.push_str(&js(v));
    }
    h.push('}');
    for t in tensors {
        h.push(',');
        h.push_str(&js(&t.name));
        h.push_str(":{\"dtype\":\"");
        h.push_str(t.dtype.safetensors());
        h.push_str("\",\"shape\":[");
        for (i, d) in t.shape.iter().enumerate() {
            if i > 0 {
                h.push(',');
            }
            h.push_str(&d.to_string());
        }
        h.push_str(&format!("],\"data_offsets\":[{},{}]}}", t.begin, t.end));
    }
    h.push('}');
    let padded = h.len().next_multiple_of(8);
    if padded as u64 > MAX_HEADER_BYTES {
        return Err(SpecError::limit_exceeded(
            "",
            format!(
                "the safetensors header would be {padded} bytes; readers refuse more than {MAX_HEADER_BYTES}"
            ),
        ));
    }
    let mut out = Vec::with_capacity(8 + padded);
    out.extend_from_slice(&(padded as u64).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.resize(8 + padded, b' ');
    Ok(out)
}
