//! The error type of the core: a stable code, a message for a person and the JSON path of the
//! offending field. The CLI renders it as the envelope; the HTTP edge converts it into its own
//! `http::errors::ApiError` (which adds the edge-only codes: body, media type, limits of the
//! transport, busy, shutdown) and renders that. Both give the same envelope.

use std::fmt;

/// Stable error codes. Clients match on these strings, so a variant's string never changes.
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
        }
    }

    /// The HTTP status this class of error maps to: 400 for bytes that are not a JSON request
    /// at all, 413 for limits, 422 for a well-formed request that cannot be honoured.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedJson => 400,
            ErrorCode::LimitExceeded => 413,
            _ => 422,
        }
    }

    /// Every code, for documentation and for the test that keeps openapi.yaml in step.
    pub const ALL: [ErrorCode; 17] = [
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

    /// The JSON envelope of SPEC §5: `{"error": {"code", "message", "path"}}`.
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
