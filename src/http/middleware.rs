//! Per-request middleware: bearer-token check, envelope fix-up for responses that axum or
//! tower produce themselves, and the access log line plus request metrics, written when the
//! response body has been sent (or dropped), so streamed responses report their real size.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::AppState;
use super::errors::{self, ApiError, Enveloped};
use super::metrics::Metrics;
use crate::error::ErrorCode;

/// Routes that stay open when `PARAMINIT_API_TOKEN` is set. The explorer page (`/`) is static
/// and holds no data; it asks for the token and sends it with every request it makes.
const OPEN_ROUTES: [&str; 3] = ["/", "/healthz", "/readyz"];

pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!(
        "request",
        method = super::metrics::method_label(method.as_str()),
        route = super::metrics::route_label(&route)
    );

    let draining = state.draining.load(std::sync::atomic::Ordering::SeqCst)
        && !matches!(route.as_str(), "/healthz" | "/readyz" | "/metrics");
    let res = if draining {
        // Shutting down: only the probes and metrics are answered; `/readyz` says 503 itself.
        errors::shutting_down("the service is shutting down; retry on another replica")
            .into_response()
    } else if let Some(e) = check_token(&state, &route, &req) {
        e.into_response()
    } else {
        use tracing::Instrument;
        next.run(req).instrument(span.clone()).await
    };
    let res = ensure_envelope(res);

    let status = res.status();
    let (parts, body) = res.into_parts();
    let logged = LoggedBody {
        expected: http_body::Body::size_hint(&body).exact(),
        inner: body,
        bytes: 0,
        done: false,
        log: Some(AccessLog {
            metrics: state.metrics.clone(),
            method,
            route,
            status,
            started,
        }),
    };
    Response::from_parts(parts, Body::new(logged))
}

fn check_token(state: &AppState, route: &str, req: &Request) -> Option<ApiError> {
    let tokens = state.config.api_token.as_deref()?;
    if OPEN_ROUTES.contains(&route) || (route == "/metrics" && state.config.metrics_public) {
        return None;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    // Every configured token is compared, in constant time, whatever matched before.
    let ok = given.is_some_and(|g| {
        tokens
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .fold(false, |acc, t| {
                constant_time_eq(g.as_bytes(), t.as_bytes()) | acc
            })
    });
    if ok {
        None
    } else {
        Some(errors::unauthorized())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Any error response that is not already an envelope (axum's 405, a layer's 413…) gets one.
fn ensure_envelope(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error())
        || res.extensions().get::<Enveloped>().is_some()
    {
        return res;
    }
    let e = match status {
        StatusCode::NOT_FOUND => errors::not_found(),
        StatusCode::METHOD_NOT_ALLOWED => errors::method_not_allowed(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            errors::too_large("the request body is larger than PARAMINIT_MAX_BODY_BYTES")
        }
        s if s.is_server_error() => errors::internal(),
        s => ApiError::new(
            ErrorCode::InvalidQuery,
            s.canonical_reason().unwrap_or("bad request"),
        ),
    };
    let allow = res.headers().get(header::ALLOW).cloned();
    let mut out = e.with_status(status).into_response();
    if let Some(a) = allow {
        out.headers_mut().insert(header::ALLOW, a);
    }
    out
}

struct AccessLog {
    metrics: Metrics,
    method: Method,
    route: String,
    status: StatusCode,
    started: Instant,
}

impl AccessLog {
    fn emit(self, bytes: u64, complete: bool) {
        let duration: Duration = self.started.elapsed();
        self.metrics.request(
            self.method.as_str(),
            &self.route,
            self.status.as_u16(),
            bytes,
            duration,
        );
        // The method as sent may be long and is the client's: the log gets at most 16 bytes.
        let method = self.method.as_str();
        let method = &method[..method.floor_char_boundary(16)];
        tracing::info!(
            target: "paraminit::access",
            method = %method,
            route = %self.route,
            status = self.status.as_u16(),
            bytes,
            duration_ms = (duration.as_secs_f64() * 1e6).round() / 1e3,
            complete,
            "request"
        );
    }
}

/// Counts the bytes of a response body and writes the access log when it ends or is dropped.
struct LoggedBody {
    inner: Body,
    expected: Option<u64>,
    bytes: u64,
    done: bool,
    log: Option<AccessLog>,
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.len() as u64;
                }
            }
            Poll::Ready(None) => this.done = true,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            let complete = self.done || self.expected == Some(self.bytes);
            log.emit(self.bytes, complete);
        }
    }
}
