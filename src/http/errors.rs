//! The one error envelope of SPEC §5 for every error the HTTP edge returns, and the request
//! body extractor that makes malformed bodies, wrong content types and oversized bodies share it.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::SpecError;
use crate::spec;

/// Codes of errors that come from HTTP rather than from the request's content. Together with
/// `ErrorCode::ALL` they are every `code` the service returns.
pub mod codes {
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const NOT_FOUND: &str = "not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const NOT_ACCEPTABLE: &str = "not_acceptable";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    pub const INVALID_QUERY: &str = "invalid_query";
    pub const BUSY: &str = "busy";
    pub const SHUTTING_DOWN: &str = "shutting_down";
    pub const INTERNAL: &str = "internal";
    pub const RANGE_NOT_SATISFIABLE: &str = "range_not_satisfiable";
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    pub const PRECONDITION_FAILED: &str = "precondition_failed";
    pub const ALL: [&str; 12] = [
        UNAUTHORIZED,
        NOT_FOUND,
        METHOD_NOT_ALLOWED,
        NOT_ACCEPTABLE,
        UNSUPPORTED_MEDIA_TYPE,
        INVALID_QUERY,
        BUSY,
        SHUTTING_DOWN,
        INTERNAL,
        RANGE_NOT_SATISFIABLE,
        REQUEST_TIMEOUT,
        PRECONDITION_FAILED,
    ];
}

/// An error response: status, stable code, message and optional JSON path.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub path: Option<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            path: None,
            retry_after: None,
        }
    }

    pub fn with_path(mut self, path: impl Into<String>) -> ApiError {
        self.path = Some(path.into());
        self
    }

    pub fn envelope(&self) -> serde_json::Value {
        let mut inner = serde_json::Map::new();
        inner.insert("code".into(), self.code.into());
        inner.insert("message".into(), self.message.clone().into());
        if let Some(p) = &self.path {
            inner.insert("path".into(), p.clone().into());
        }
        serde_json::json!({ "error": inner })
    }

    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            "no such route; see GET /openapi.yaml",
        )
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            codes::METHOD_NOT_ALLOWED,
            "this route does not accept that method; see GET /openapi.yaml",
        )
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "internal error; it has been logged",
        )
    }
}

impl From<SpecError> for ApiError {
    fn from(e: SpecError) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(e.code.http_status())
                .unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            code: e.code.as_str(),
            message: e.message,
            path: e.path,
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.envelope()).unwrap_or_default();
        let mut res = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if let Some(s) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res.extensions_mut().insert(Enveloped);
        res
    }
}

/// Marks a response whose body is already an envelope, so the fix-up middleware leaves it.
#[derive(Clone, Copy, Debug)]
pub struct Enveloped;

/// Whether a `Content-Type` value names JSON (`application/json`, `…+json`, any parameters).
pub fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A validated request body: the body is read up to `max_body_bytes` and parsed with
/// `spec::parse_bytes`, so every failure is an `ApiError` envelope.
pub struct SpecBody(pub spec::Request);

impl FromRequest<super::AppState> for SpecBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &super::AppState) -> Result<Self, ApiError> {
        check_content_type(req.headers())?;
        let limit = state.config.max_body_bytes;
        let too_large = |got: Option<u64>| {
            let size = match got {
                Some(n) => format!("is {n} bytes"),
                None => format!("has more than {limit} bytes"),
            };
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                crate::error::ErrorCode::LimitExceeded.as_str(),
                format!(
                    "the request body {size}; the limit is {limit} bytes (PARAMINIT_MAX_BODY_BYTES)"
                ),
            )
        };
        if let Some(len) = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > limit as u64
        {
            return Err(too_large(Some(len)));
        }
        // The bytes this body may take are reserved before it is read (its announced length,
        // else the limit), so bodies being received hold at most
        // PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT at once; past it, 503 like a busy slot.
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let reserve = announced.unwrap_or(limit as u64).clamp(1, limit as u64) as u32;
        let _bytes = state
            .body_bytes
            .clone()
            .try_acquire_many_owned(reserve)
            .map_err(|_| {
                state.metrics.job_rejected();
                let mut e = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::BUSY,
                    format!(
                        "{} bytes of request bodies are being received (PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT); retry in {} s",
                        state.config.max_body_bytes_in_flight,
                        super::RETRY_AFTER_SECS
                    ),
                );
                e.retry_after = Some(super::RETRY_AFTER_SECS);
                e
            })?;
        let timeout = std::time::Duration::from_secs(state.config.body_timeout_secs);
        let read = tokio::time::timeout(timeout, axum::body::to_bytes(req.into_body(), limit));
        let bytes = read
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    codes::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} s (PARAMINIT_BODY_TIMEOUT_SECS)",
                        timeout.as_secs()
                    ),
                )
            })?
            .map_err(|e| {
                let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
                while let Some(s) = src {
                    if s.is::<http_body_util::LengthLimitError>() {
                        return too_large(None);
                    }
                    src = s.source();
                }
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    crate::error::ErrorCode::MalformedJson.as_str(),
                    format!("the request body could not be read: {e}"),
                )
            })?;
        let request = spec::parse_bytes(&bytes).map_err(ApiError::from)?;
        Ok(SpecBody(request))
    }
}

/// 415 for a `Content-Type` that is present and not JSON.
pub fn check_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ok = ct.to_str().map(is_json_media_type).unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            codes::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the request body must be JSON (Content-Type: application/json), got {:?}",
                String::from_utf8_lossy(ct.as_bytes())
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(is_json_media_type("application/problem+json"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type("application/x-www-form-urlencoded"));
        assert!(!is_json_media_type(""));
    }
}
