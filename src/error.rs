//! The one error model: every stable `code` the service or the CLI can answer (`ErrorCode`,
//! with its wire string and HTTP status), the error value (`SpecError`: code, message, JSON
//! path) and the one renderer of the SPEC §5 envelope (`SpecError::to_envelope`). The core
//! returns `SpecError`s; the CLI prints their envelope; the HTTP edge wraps them in
//! `http::errors::ApiError`, which only adds what HTTP needs around the same envelope (the
//! status line, `Retry-After`, `WWW-Authenticate`).

use std::fmt;

/// Stable error codes. Clients match on these strings, so a variant's string never changes.
/// The first group comes from a request's content (the core); the second from HTTP itself
/// (routing, negotiation, auth, transport limits, load), which only the edge produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The body is not JSON at all (syntax error, truncated, wrong encoding).
    MalformedJson,
    /// A field has the wrong JSON type.
    InvalidType,
    /// A field the schema does not know.
    UnknownField,
    /// A required field is absent.
    MissingField,
    /// Two spellings of the same field (an alias and its canonical name) were both given.
    ConflictingFields,
    /// A value of the right type that is not allowed (zero size, NaN, an unknown enum value…).
    InvalidValue,
    /// The seed is not an unsigned 64-bit integer.
    SeedOutOfRange,
    /// A `type` that is not a layer type.
    UnknownLayerType,
    /// A layer type that exists in the specification but is not implemented by this release.
    UnsupportedLayerType,
    /// An initializer name that is not in the catalogue.
    UnknownInitializer,
    /// An initializer that cannot be applied to its tensor (orthogonal of a vector, zero fan…).
    InitializerMismatch,
    /// Layer sizes that do not chain (an input size that contradicts the previous output).
    InconsistentSizes,
    /// Two tensors with the same name.
    DuplicateName,
    /// Element counts or byte sizes that overflow 64 bits.
    SizeOverflow,
    /// A configured limit (tensors, elements, bytes) is exceeded.
    LimitExceeded,
    /// An `only` pattern that matches no tensor.
    NoMatch,
    /// A tensor name the output format reserves (`__metadata__` in safetensors).
    ReservedName,
    // --- The HTTP edge's own codes.
    /// A route that needs a bearer token was called without a valid one.
    Unauthorized,
    /// No such route.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// `Accept` allows none of the route's media types.
    NotAcceptable,
    /// A request body whose `Content-Type` is not JSON.
    UnsupportedMediaType,
    /// A query parameter with a bad value (or a missing required one).
    InvalidQuery,
    /// Every slot of some kind (jobs, planners, body bytes) is taken; retry later.
    Busy,
    /// The service is draining before it stops.
    ShuttingDown,
    /// A bug (a panic or a failed internal step), logged on the server.
    Internal,
    /// A `Range` entirely past the end of the file.
    RangeNotSatisfiable,
    /// The request body did not arrive in time.
    RequestTimeout,
    /// `If-None-Match` matched on a method that cannot answer 304.
    PreconditionFailed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidType => "invalid_type",
            ErrorCode::UnknownField => "unknown_field",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::ConflictingFields => "conflicting_fields",
            ErrorCode::InvalidValue => "invalid_value",
            ErrorCode::SeedOutOfRange => "seed_out_of_range",
            ErrorCode::UnknownLayerType => "unknown_layer_type",
            ErrorCode::UnsupportedLayerType => "unsupported_layer_type",
            ErrorCode::UnknownInitializer => "unknown_initializer",
            ErrorCode::InitializerMismatch => "initializer_mismatch",
            ErrorCode::InconsistentSizes => "inconsistent_sizes",
            ErrorCode::DuplicateName => "duplicate_name",
            ErrorCode::SizeOverflow => "size_overflow",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::NoMatch => "no_match",
            ErrorCode::ReservedName => "reserved_name",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::NotAcceptable => "not_acceptable",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::Busy => "busy",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
            ErrorCode::RangeNotSatisfiable => "range_not_satisfiable",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::PreconditionFailed => "precondition_failed",
        }
    }

    /// The HTTP status of this code: for the content codes 400 for bytes that are not a JSON
    /// request at all, 413 for limits, 422 for a well-formed request that cannot be honoured;
    /// the edge codes each have the status they are named after. A number, not an
    /// `http::StatusCode`, so that the core does not depend on the HTTP stack.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedJson | ErrorCode::InvalidQuery => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::NotAcceptable => 406,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::PreconditionFailed => 412,
            ErrorCode::LimitExceeded => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RangeNotSatisfiable => 416,
            ErrorCode::Internal => 500,
            ErrorCode::Busy | ErrorCode::ShuttingDown => 503,
            ErrorCode::InvalidType
            | ErrorCode::UnknownField
            | ErrorCode::MissingField
            | ErrorCode::ConflictingFields
            | ErrorCode::InvalidValue
            | ErrorCode::SeedOutOfRange
            | ErrorCode::UnknownLayerType
            | ErrorCode::UnsupportedLayerType
            | ErrorCode::UnknownInitializer
            | ErrorCode::InitializerMismatch
            | ErrorCode::InconsistentSizes
            | ErrorCode::DuplicateName
            | ErrorCode::SizeOverflow
            | ErrorCode::NoMatch
            | ErrorCode::ReservedName => 422,
        }
    }

    /// Every code, for documentation and for the test that keeps openapi.yaml in step.
    pub const ALL: [ErrorCode; 29] = [
        ErrorCode::MalformedJson,
        ErrorCode::InvalidType,
        ErrorCode::UnknownField,
        ErrorCode::MissingField,
        ErrorCode::ConflictingFields,
        ErrorCode::InvalidValue,
        ErrorCode::SeedOutOfRange,
        ErrorCode::UnknownLayerType,
        ErrorCode::UnsupportedLayerType,
        ErrorCode::UnknownInitializer,
        ErrorCode::InitializerMismatch,
        ErrorCode::InconsistentSizes,
        ErrorCode::DuplicateName,
        ErrorCode::SizeOverflow,
        ErrorCode::LimitExceeded,
        ErrorCode::NoMatch,
        ErrorCode::ReservedName,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::NotAcceptable,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::InvalidQuery,
        ErrorCode::Busy,
        ErrorCode::ShuttingDown,
        ErrorCode::Internal,
        ErrorCode::RangeNotSatisfiable,
        ErrorCode::RequestTimeout,
        ErrorCode::PreconditionFailed,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request that cannot be honoured, with where and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code}: {message}{}", path.as_deref().map(|p| format!(" (at {p})")).unwrap_or_default())]
pub struct SpecError {
    pub code: ErrorCode,
    pub message: String,
    /// JSON path of the offending field, e.g. `layers[2].out_features`; `None` for the body.
    pub path: Option<String>,
}

impl SpecError {
    pub fn new(code: ErrorCode, path: impl Into<String>, message: impl Into<String>) -> Self {
        let path = path.into();
        SpecError {
            code,
            message: message.into(),
            path: if path.is_empty() { None } else { Some(path) },
        }
    }

    // The common content errors, one constructor each (as crates.io's `util/errors.rs` has
    // `bad_request`, `not_found`…), so a call site names the error and not the code plumbing.

    /// `InvalidValue`: A value of the right type that is not allowed (zero size, NaN, an unknown choice).
    pub fn invalid_value(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidValue, path, message)
    }

    /// `MissingField`: A required field is absent.
    pub fn missing_field(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::MissingField, path, message)
    }

    /// `ConflictingFields`: Two fields (or two spellings of one) that contradict each other.
    pub fn conflicting_fields(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ConflictingFields, path, message)
    }

    /// `UnsupportedLayerType`: A layer, model class or feature this release does not produce.
    pub fn unsupported_layer_type(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedLayerType, path, message)
    }

    /// `UnknownInitializer`: An initializer name that is not in the catalogue.
    pub fn unknown_initializer(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnknownInitializer, path, message)
    }

    /// `InitializerMismatch`: An initializer that cannot be applied to its tensor.
    pub fn initializer_mismatch(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InitializerMismatch, path, message)
    }

    /// `InconsistentSizes`: Sizes that do not chain or divide as they must.
    pub fn inconsistent_sizes(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InconsistentSizes, path, message)
    }

    /// `SizeOverflow`: An element count or byte size past 64 bits.
    pub fn size_overflow(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::SizeOverflow, path, message)
    }

    /// `LimitExceeded`: A configured limit (tensors, elements, bytes, work) is exceeded (413).
    pub fn limit_exceeded(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LimitExceeded, path, message)
    }

    /// The JSON envelope of SPEC §5: `{"error": {"code", "message", "path"}}`, `path` only when
    /// there is one. The only renderer of it: the CLI prints it, the HTTP edge sends it.
    pub fn to_envelope(&self) -> serde_json::Value {
        let mut inner = serde_json::Map::new();
        inner.insert("code".into(), self.code.as_str().into());
        inner.insert("message".into(), self.message.clone().into());
        if let Some(p) = &self.path {
            inner.insert("path".into(), p.clone().into());
        }
        serde_json::json!({ "error": inner })
    }
}

pub type Result<T, E = SpecError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_with_a_distinct_string() {
        let strings: std::collections::BTreeSet<&str> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(strings.len(), ErrorCode::ALL.len());
        for c in ErrorCode::ALL {
            assert!((400..600).contains(&c.http_status()), "{c}");
        }
    }

    #[test]
    fn envelope_omits_an_empty_path() {
        let e = SpecError::new(ErrorCode::NotFound, "", "no such route");
        assert_eq!(
            e.to_envelope().to_string(),
            r#"{"error":{"code":"not_found","message":"no such route"}}"#
        );
        let e = SpecError::new(ErrorCode::InvalidQuery, "?batch", "bad");
        assert_eq!(
            e.to_envelope().to_string(),
            r#"{"error":{"code":"invalid_query","message":"bad","path":"?batch"}}"#
        );
    }
}
