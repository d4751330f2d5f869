//! HTTP byte ranges on the safetensors response (RFC 9110 §14): one `bytes=` range is served
//! as 206 by seeking into the virtual file; several ranges are answered with the whole file
//! (200), which RFC 9110 allows; a range past the end is 416. `If-Range` with a different
//! validator turns the request back into a plain 200.

use axum::http::{HeaderMap, header};

/// What to send for a safetensors response of `total` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole file, 200.
    Full,
    /// Bytes `[start, end)`, 206.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */total`.
    Unsatisfiable,
}

/// Decides from `Range` and `If-Range`. Malformed headers are ignored, as RFC 9110 says.
pub fn decide(headers: &HeaderMap, etag: &str, total: u64) -> RangeAnswer {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeAnswer::Full;
    };
    if let Some(cond) = headers.get(header::IF_RANGE) {
        // Only a strong entity tag can validate a range; a date or another tag means "changed".
        if cond.to_str().ok().map(str::trim) != Some(etag) {
            return RangeAnswer::Full;
        }
    }
    // The range unit is case-insensitive (RFC 9110 §14.1).
    let spec = match range.trim().split_once('=') {
        Some((unit, spec)) if unit.trim().eq_ignore_ascii_case("bytes") => spec,
        _ => return RangeAnswer::Full,
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    // Digits past u64 saturate: a position beyond 2^64 is past the end like any other large
    // one (416), not a malformed header (which would be ignored with a 200).
    let parse = |s: &str| {
        if s.bytes().all(|c| c.is_ascii_digit()) && !s.is_empty() {
            Some(s.bytes().fold(0u64, |acc, c| {
                acc.saturating_mul(10).saturating_add(u64::from(c - b'0'))
            }))
        } else {
            None
        }
    };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match parse(b) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(n) if total > 0 => RangeAnswer::Partial {
                start: total.saturating_sub(n),
                end: total,
            },
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Full,
        },
        // bytes=a-: from a to the end.
        (false, true) => match parse(a) {
            Some(first) if first < total => RangeAnswer::Partial {
                start: first,
                end: total,
            },
            Some(_) => RangeAnswer::Unsatisfiable,
            None => RangeAnswer::Full,
        },
        (false, false) => match (parse(a), parse(b)) {
            (Some(first), Some(last)) if first <= last => {
                if first >= total {
                    RangeAnswer::Unsatisfiable
                } else {
                    RangeAnswer::Partial {
                        start: first,
                        end: last.saturating_add(1).min(total),
                    }
                }
            }
            _ => RangeAnswer::Full,
        },
        (true, true) => RangeAnswer::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn d(range: &str, if_range: Option<&str>) -> RangeAnswer {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        if let Some(v) = if_range {
            h.insert(header::IF_RANGE, HeaderValue::from_str(v).unwrap());
        }
        decide(&h, "\"abc\"", 1000)
    }

    #[test]
    fn huge_positions_and_unit_case() {
        use RangeAnswer::*;
        assert_eq!(d("bytes=18446744073709551615-", None), Unsatisfiable);
        assert_eq!(d("bytes=18446744073709551616-", None), Unsatisfiable);
        assert_eq!(d("bytes=99999999999999999999999-", None), Unsatisfiable);
        assert_eq!(
            d("bytes=0-99999999999999999999999", None),
            Partial {
                start: 0,
                end: 1000
            }
        );
        assert_eq!(
            d("bytes=-99999999999999999999999", None),
            Partial {
                start: 0,
                end: 1000
            }
        );
        assert_eq!(d("BYTES=0-1", None), Partial { start: 0, end: 2 });
        assert_eq!(
            d("Bytes=10-", None),
            Partial {
                start: 10,
                end: 1000
            }
        );
        assert_eq!(d("items=0-1", None), Full);
    }

    #[test]
    fn forms() {
        use RangeAnswer::*;
        assert_eq!(d("bytes=0-99", None), Partial { start: 0, end: 100 });
        assert_eq!(
            d("bytes=990-5000", None),
            Partial {
                start: 990,
                end: 1000
            }
        );
        assert_eq!(
            d("bytes=900-", None),
            Partial {
                start: 900,
                end: 1000
            }
        );
        assert_eq!(
            d("bytes=-10", None),
            Partial {
                start: 990,
                end: 1000
            }
        );
        assert_eq!(
            d("bytes=-5000", None),
            Partial {
                start: 0,
                end: 1000
            }
        );
        assert_eq!(d("bytes=1000-", None), Unsatisfiable);
        assert_eq!(d("bytes=1000-1001", None), Unsatisfiable);
        assert_eq!(d("bytes=-0", None), Unsatisfiable);
        assert_eq!(d("bytes=0-1,5-6", None), Full);
        assert_eq!(d("bytes=5-1", None), Full);
        assert_eq!(d("items=0-1", None), Full);
        assert_eq!(d("bytes=x-1", None), Full);
        assert_eq!(
            d("bytes=0-9", Some("\"abc\"")),
            Partial { start: 0, end: 10 }
        );
        assert_eq!(d("bytes=0-9", Some("\"other\"")), Full);
        assert_eq!(d("bytes=0-9", Some("Wed, 21 Oct 2015 07:28:00 GMT")), Full);
    }
}
