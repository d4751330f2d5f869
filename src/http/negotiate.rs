//! Output format negotiation (SPEC §1): `?format=json|safetensors` wins; otherwise the
//! `Accept` header picks by quality, JSON on a tie or without a header; an `Accept` that
//! allows neither is a 406.

use axum::http::{HeaderMap, header};

use super::errors::{self, ApiError};
use crate::plan::Format;

/// One media range of an `Accept` header with its quality.
struct Range<'a> {
    main: &'a str,
    sub: &'a str,
    q: f32,
}

fn ranges(accept: &str) -> Vec<Range<'_>> {
    accept
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let mt = parts.next()?.trim();
            let (main, sub) = mt.split_once('/')?;
            let mut q = 1.0f32;
            for p in parts {
                if let Some((k, v)) = p.split_once('=')
                    && k.trim().eq_ignore_ascii_case("q")
                {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            Some(Range {
                main: main.trim(),
                sub: sub.trim(),
                q: q.clamp(0.0, 1.0),
            })
        })
        .collect()
}

/// Quality of `main/sub` under the ranges: the most specific matching range decides.
fn quality(ranges: &[Range<'_>], main: &str, sub: &str) -> f32 {
    let mut best: Option<(u8, f32)> = None;
    for r in ranges {
        let spec = if r.main.eq_ignore_ascii_case(main) && r.sub.eq_ignore_ascii_case(sub) {
            2
        } else if r.main.eq_ignore_ascii_case(main) && r.sub == "*" {
            1
        } else if r.main == "*" && r.sub == "*" {
            0
        } else {
            continue;
        };
        if best.is_none_or(|(s, _)| spec > s) {
            best = Some((spec, r.q));
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

fn accept_values(headers: &HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = values.join(",");
    if joined.trim().is_empty() {
        None
    } else {
        Some(joined)
    }
}

fn not_acceptable(accept: &str, what: &str) -> ApiError {
    errors::not_acceptable(format!("Accept: {accept:?} allows none of {what}"))
}

/// The format for `/v1/init`: `?format=` (`query::Params::format`) when given, else `Accept`.
pub fn negotiate(query_format: Option<Format>, headers: &HeaderMap) -> Result<Format, ApiError> {
    if let Some(f) = query_format {
        return Ok(f);
    }
    let Some(accept) = accept_values(headers) else {
        return Ok(Format::Json);
    };
    let rs = ranges(&accept);
    let json = quality(&rs, "application", "json");
    let st = quality(&rs, "application", "octet-stream").max(quality(
        &rs,
        "application",
        "vnd.safetensors",
    ));
    if json <= 0.0 && st <= 0.0 {
        return Err(not_acceptable(
            &accept,
            "application/json, application/octet-stream, application/vnd.safetensors",
        ));
    }
    Ok(if st > json {
        Format::Safetensors
    } else {
        Format::Json
    })
}

/// For routes that only answer JSON (`/v1/plan`): 406 when `Accept` excludes it.
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(accept) = accept_values(headers) else {
        return Ok(());
    };
    if quality(&ranges(&accept), "application", "json") > 0.0 {
        Ok(())
    } else {
        Err(not_acceptable(&accept, "application/json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, StatusCode};

    fn with_accept(a: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(a).unwrap());
        h
    }

    #[test]
    fn accept_cases() {
        let j = Format::Json;
        let s = Format::Safetensors;
        assert_eq!(negotiate(None, &HeaderMap::new()).unwrap(), j);
        for (a, f) in [
            ("application/json", j),
            ("*/*", j),
            ("application/*", j),
            ("application/octet-stream", s),
            ("application/vnd.safetensors", s),
            ("application/json;q=0.5, application/octet-stream", s),
            ("application/json, application/octet-stream;q=0.9", j),
            ("*/*;q=0.1, application/vnd.safetensors", s),
            ("text/html, */*;q=0.8", j),
            ("application/*, application/json;q=0", s),
        ] {
            assert_eq!(negotiate(None, &with_accept(a)).unwrap(), f, "{a}");
        }
        for a in ["text/html", "application/json;q=0", "image/*"] {
            let e = negotiate(None, &with_accept(a)).unwrap_err();
            assert_eq!(e.status, StatusCode::NOT_ACCEPTABLE, "{a}");
        }
    }

    #[test]
    fn query_wins() {
        let h = with_accept("text/html");
        for f in [Format::Safetensors, Format::Json] {
            assert_eq!(negotiate(Some(f), &h).unwrap(), f);
        }
    }
}
