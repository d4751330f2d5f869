//! The HTTP side of the one error model (`crate::error`): `ApiError` (a `SpecError` plus its
//! status and headers), the constructors of the edge's common errors, and the request body
//! extractor that makes malformed bodies, wrong content types and oversized bodies share the
//! envelope.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ErrorCode, SpecError};
use crate::spec;

/// An error on its way out of the HTTP edge: the core's error value (code, message, path:
/// everything the envelope holds) plus what only HTTP has. `status` is the code's own
/// (`ErrorCode::http_status`) except where the fix-up middleware wraps a status that some
/// layer produced by itself.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub error: SpecError,
    pub status: StatusCode,
    /// Seconds for `Retry-After` (503 `busy`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error without a path, with its code's status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        SpecError::new(code, "", message).into()
    }

    pub fn with_path(mut self, path: impl Into<String>) -> ApiError {
        self.error.path = Some(path.into());
        self
    }

    /// Keeps the status a layer already chose (the envelope fix-up of `middleware`).
    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }
}

impl From<SpecError> for ApiError {
    fn from(error: SpecError) -> ApiError {
        // Every code's status is a valid one (unit-tested in `error`); 500 is only the
        // type-level fallback.
        let status = StatusCode::from_u16(error.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            error,
            status,
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.error.to_envelope()).unwrap_or_default();
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

// The common errors of the edge, one constructor each (after crates.io's `util/errors.rs`),
// so a handler names what went wrong and never spells a code, a status or a fixed message.

/// 404 for every path that is not a route.
pub fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route; see GET /openapi.yaml")
}

/// 405 for a route called with a method it does not have.
pub fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method; see GET /openapi.yaml",
    )
}

/// 500; the cause is logged where it happened, never sent.
pub fn internal() -> ApiError {
    ApiError::new(ErrorCode::Internal, "internal error; it has been logged")
}

/// Runs CPU-bound request work (parsing, planning, analysis) on tokio's blocking threads, so
/// the async workers stay free for `/healthz`. A panic in it is re-raised here, on the request's
/// task, where the panic hook and the service's 500 handling see it as any other.
pub async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        internal()
    })
}

/// 400 for the query parameter `param` (the envelope's path is `?param`).
pub fn invalid_query(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidQuery, message).with_path(format!("?{param}"))
}

/// 413 `limit_exceeded`: a request larger than a transport limit.
pub fn too_large(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::LimitExceeded, message)
}

/// 503 `busy` with `Retry-After: RETRY_AFTER_SECS`.
pub fn busy(message: impl Into<String>) -> ApiError {
    let mut e = ApiError::new(ErrorCode::Busy, message);
    e.retry_after = Some(super::RETRY_AFTER_SECS);
    e
}

/// 503 `shutting_down`.
pub fn shutting_down(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::ShuttingDown, message)
}

/// 401 (with `WWW-Authenticate: Bearer`).
pub fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "this route needs `Authorization: Bearer <token>` (PARAMINIT_API_TOKEN)",
    )
}

/// 406.
pub fn not_acceptable(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::NotAcceptable, message)
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
            too_large(format!(
                "the request body {size}; the limit is {limit} bytes (PARAMINIT_MAX_BODY_BYTES)"
            ))
        };
        let announced = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = announced
            && len > limit as u64
        {
            return Err(too_large(Some(len)));
        }
        // The bytes this body may take are reserved before it is read (its announced length,
        // else the limit), so bodies being received hold at most
        // PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT at once; past it, 503 like a busy slot.
        let reserve = announced.unwrap_or(limit as u64).clamp(1, limit as u64) as u32;
        let _bytes = state
            .body_bytes
            .clone()
            .try_acquire_many_owned(reserve)
            .map_err(|_| {
                state.metrics.job_rejected();
                busy(format!(
                    "{} bytes of request bodies are being received (PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT); retry in {} s",
                    state.config.max_body_bytes_in_flight,
                    super::RETRY_AFTER_SECS
                ))
            })?;
        let timeout = std::time::Duration::from_secs(state.config.body_timeout_secs);
        let read = tokio::time::timeout(timeout, axum::body::to_bytes(req.into_body(), limit));
        let bytes = read
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::RequestTimeout,
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
                    ErrorCode::MalformedJson,
                    format!("the request body could not be read: {e}"),
                )
            })?;
        // Parsing and validating a body at the size limit takes 1–2 s of CPU (8 MiB of tiny
        // tensors): it runs on a blocking thread, so the async workers stay free for
        // /healthz, and the body's reserved bytes (`_bytes`) are held until it is done, so at
        // most PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT of bodies are being parsed at once.
        let parsed = run_blocking(move || spec::parse_bytes(&bytes)).await?;
        drop(_bytes);
        Ok(SpecBody(parsed.map_err(ApiError::from)?))
    }
}

/// 415 for a `Content-Type` that is present and not JSON.
fn check_content_type(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ok = ct.to_str().map(is_json_media_type).unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
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
