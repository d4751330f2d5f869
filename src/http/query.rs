//! Query parameters, read with axum's `Query` extractor (so they are percent-decoded, `+` as a
//! space, as `application/x-www-form-urlencoded` says) and typed here, one accessor per
//! parameter the service reads. The rules are the service's, not serde's: parameters no route
//! reads are ignored, and a repeated parameter is not an error (`format`: every value is
//! checked and the last wins; `spec` and `batch`: the first wins), so the extraction itself
//! cannot fail on any query string. Handlers call the accessors where the order of checks
//! needs them (a 406 for `Accept` is decided after `format`, before `spec`).

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use super::errors::{self, ApiError};
use crate::error::ErrorCode;
use crate::plan::Format;

/// The decoded `(name, value)` pairs of the query string, in order, duplicates kept.
#[derive(Clone, Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Params, ApiError> {
        // Pairs of strings accept every query string form_urlencoded can split (malformed
        // escapes stay literal, invalid UTF-8 becomes U+FFFD); the mapping below is what a
        // rejection would become, not a path that is taken today.
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))?;
        Ok(Params(pairs))
    }
}

impl Params {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `format=json|safetensors` (any case); `None` when absent.
    pub fn format(&self) -> Result<Option<Format>, ApiError> {
        let mut found = None;
        for v in self.values("format") {
            found = Some(match v.to_ascii_lowercase().as_str() {
                "json" => Format::Json,
                "safetensors" => Format::Safetensors,
                _ => {
                    return Err(errors::invalid_query(
                        "format",
                        format!("unknown format {v:?}; use json or safetensors"),
                    ));
                }
            });
        }
        Ok(found)
    }

    /// `spec=`, as given (decoded from the URL, still base64url); `None` when absent.
    pub fn spec(&self) -> Option<&str> {
        self.values("spec").next()
    }

    /// `batch=N` for `/v1/analyze`, 1 to `analyze::MAX_BATCH`; the default when absent.
    pub fn batch(&self) -> Result<usize, ApiError> {
        let Some(v) = self.values("batch").next() else {
            return Ok(crate::analyze::DEFAULT_BATCH);
        };
        v.parse::<usize>()
            .ok()
            .filter(|b| (1..=crate::analyze::MAX_BATCH).contains(b))
            .ok_or_else(|| {
                errors::invalid_query(
                    "batch",
                    format!(
                        "batch must be an integer from 1 to {}",
                        crate::analyze::MAX_BATCH
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Request, StatusCode};

    fn params(uri: &str) -> Params {
        let (mut parts, ()) = Request::get(uri).body(()).unwrap().into_parts();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(Params::from_request_parts(&mut parts, &()))
            .unwrap()
    }

    #[test]
    fn format_last_wins_and_every_value_is_checked() {
        assert_eq!(params("/x").format().unwrap(), None);
        assert_eq!(
            params("/x?x=1&format=json").format().unwrap(),
            Some(Format::Json)
        );
        assert_eq!(
            params("/x?format=json&format=SafeTensors")
                .format()
                .unwrap(),
            Some(Format::Safetensors)
        );
        // Percent-decoded before it is matched.
        assert_eq!(
            params("/x?format=%6Ason").format().unwrap(),
            Some(Format::Json)
        );
        for q in ["format=xml", "format=xml&format=json", "format"] {
            let e = params(&format!("/x?{q}")).format().unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{q}");
            assert_eq!(e.error.path.as_deref(), Some("?format"), "{q}");
        }
    }

    #[test]
    fn spec_and_batch_first_wins() {
        assert_eq!(params("/x?spec=a%3D&spec=b").spec(), Some("a="));
        assert_eq!(params("/x?specs=a").spec(), None);
        assert_eq!(params("/x").batch().unwrap(), crate::analyze::DEFAULT_BATCH);
        assert_eq!(params("/x?batch=8&batch=0").batch().unwrap(), 8);
        for q in ["batch=0", "batch=x", "batch=", "batch=0&batch=8"] {
            let e = params(&format!("/x?{q}")).batch().unwrap_err();
            assert_eq!(e.error.path.as_deref(), Some("?batch"), "{q}");
        }
    }
}
