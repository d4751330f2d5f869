//! Building the answer for a planned request: ETag, `Vary`, `Cache-Control`, 304 and 412 for
//! `If-None-Match`, 206 and 416 for `Range`, the content headers of each format, and the
//! streaming body (or none, for HEAD).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::errors::{self, ApiError};
use super::{AppState, range, stream};
use crate::error::ErrorCode;
use crate::plan::{Format, Plan};

/// Cache lifetime of `GET /v1/init` responses: the bytes for a URL never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Whether an `If-None-Match` header matches `etag` (weak comparison, `*` matches).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let want = strip(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || strip(t) == want)
}

/// Everything after the plan is built: ETag, conditional and range handling, a job slot, then
/// the streaming body.
pub(super) async fn respond(
    state: &AppState,
    headers: &HeaderMap,
    format: Format,
    plan: Plan,
    cacheable: bool,
    head: bool,
) -> Result<Response, ApiError> {
    let etag = plan.etag(format);
    let etag_value = HeaderValue::from_str(&etag).map_err(|_| errors::internal())?;
    let common = |h: &mut HeaderMap| {
        h.insert(header::ETAG, etag_value.clone());
        h.insert(header::VARY, HeaderValue::from_static("accept"));
        if cacheable {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
        }
        if format == Format::Safetensors {
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
    };
    if if_none_match(headers, &etag) {
        // RFC 9110 §13.1.2: 304 only for GET and HEAD; any other method gets 412.
        let mut res = if cacheable {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            ApiError::new(
                ErrorCode::PreconditionFailed,
                "If-None-Match matched this response's ETag; a POST answers 412 (RFC 9110 §13.1.2)",
            )
            .into_response()
        };
        common(res.headers_mut());
        return Ok(res);
    }
    let total = plan.file_bytes;
    let answer = match format {
        Format::Safetensors => range::decide(headers, &etag, total),
        Format::Json => range::RangeAnswer::Full,
    };
    let byte_range = match answer {
        range::RangeAnswer::Full => None,
        range::RangeAnswer::Partial { start, end } => Some((start, end)),
        range::RangeAnswer::Unsatisfiable => {
            let mut res = ApiError::new(
                ErrorCode::RangeNotSatisfiable,
                format!("the requested range is outside the {total}-byte file"),
            )
            .into_response();
            common(res.headers_mut());
            let cr = HeaderValue::from_str(&format!("bytes */{total}"))
                .map_err(|_| errors::internal())?;
            res.headers_mut().insert(header::CONTENT_RANGE, cr);
            return Ok(res);
        }
    };
    let mut res = if head {
        // HEAD: the headers only; nothing is generated (a whole-tensor initializer would
        // otherwise be computed in full for a body nobody reads).
        let mut res = Response::new(Body::empty());
        if format == Format::Safetensors {
            let (start, end) = byte_range.unwrap_or((0, total));
            res.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
        }
        res
    } else {
        let permit = state
            .jobs
            .clone()
            .try_acquire_owned()
            .map_err(|_| state.all_busy("generation"))?;
        let slot = stream::JobSlot::new(permit, state.metrics.clone());
        let body = stream::spawn_generation(state, Arc::new(plan), format, slot, byte_range);
        Response::new(Body::new(body))
    };
    let h = res.headers_mut();
    common(h);
    match format {
        Format::Json => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        Format::Safetensors => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"model.safetensors\""),
            );
        }
    }
    if let Some((start, end)) = byte_range {
        *res.status_mut() = StatusCode::PARTIAL_CONTENT;
        let cr = HeaderValue::from_str(&format!("bytes {start}-{}/{total}", end - 1))
            .map_err(|_| errors::internal())?;
        res.headers_mut().insert(header::CONTENT_RANGE, cr);
    }
    Ok(res)
}

/// A JSON body with its content type.
pub(super) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    json_bytes_response(status, serde_json::to_vec(value).unwrap_or_default())
}

/// A JSON document already written out (`Plan::to_json_bytes`).
pub(super) fn json_bytes_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}
