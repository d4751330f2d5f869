//! The HTTP edge (SPEC §1, §3, §5, §6) around the synchronous core: the routes and their
//! handlers, the accept loop (our own, on hyper-util), the panic hook, signal handling and
//! graceful shutdown, and the `healthcheck` client; negotiation, ranges, streaming, errors,
//! metrics and middleware live in the submodules.

pub mod errors;
pub mod metrics;
pub mod middleware;
pub mod negotiate;
pub mod query;
pub mod range;
pub mod stream;

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::Config;
use crate::error::ErrorCode;
use crate::plan::{self, Format, Plan};
use errors::{ApiError, SpecBody};

/// The OpenAPI document, the repo-root file.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// Seconds a client is asked to wait when every job slot is busy.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Shared state of one router.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub pool: Arc<rayon::ThreadPool>,
    pub jobs: Arc<Semaphore>,
    /// Plan building (all four planning routes) runs under these permits, off the async
    /// workers; past them a request gets 503 + `Retry-After` like a generation would.
    pub planners: Arc<Semaphore>,
    /// Request-body bytes being received at once (`PARAMINIT_MAX_BODY_BYTES_IN_FLIGHT`).
    pub body_bytes: Arc<Semaphore>,
    pub metrics: metrics::Metrics,
    /// Set once shutdown has begun; `/readyz` then answers 503.
    pub draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(config: Config) -> AppState {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads.max(1))
            .thread_name(|i| format!("paraminit-gen-{i}"))
            .build()
            .expect("cannot start the generation threads");
        AppState {
            jobs: Arc::new(Semaphore::new(config.max_jobs.max(1))),
            planners: Arc::new(Semaphore::new(config.max_jobs.max(1))),
            body_bytes: Arc::new(Semaphore::new(
                config
                    .max_body_bytes_in_flight
                    .clamp(1, Semaphore::MAX_PERMITS),
            )),
            metrics: metrics::Metrics::new(config.max_jobs.max(1)),
            pool: Arc::new(pool),
            config: Arc::new(config),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Every route as (method, path); `openapi.yaml` describes exactly these (tested).
pub const ROUTES: [(&str, &str); 10] = [
    ("GET", "/"),
    ("POST", "/v1/init"),
    ("GET", "/v1/init"),
    ("POST", "/v1/analyze"),
    ("POST", "/v1/plan"),
    ("GET", "/v1/initializers"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.yaml"),
];

/// The routes only, without the middleware stack.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/init", post(init).get(init_get))
        .route("/v1/plan", post(plan_route))
        .route("/v1/analyze", post(analyze_route))
        .route("/", get(explorer))
        .route("/v1/initializers", get(initializers))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_route))
        .route("/openapi.yaml", get(openapi))
        .fallback(|| async { errors::not_found() })
        .method_not_allowed_fallback(|| async { errors::method_not_allowed() })
        .with_state(state)
}

/// Adds the middleware stack (panic catching, auth, envelopes, access log, metrics) to a
/// router built on `state`. Public so tests can add routes of their own before it.
pub fn with_middleware(router: Router, state: AppState) -> Router {
    router
        .layer(CatchPanicLayer::custom(on_panic))
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::observe,
        ))
}

/// The service: every route with its middleware.
pub fn router(state: AppState) -> Router {
    with_middleware(routes(state.clone()), state)
}

fn on_panic(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("(non-string panic payload)");
    // The panic itself is logged once by the panic hook (`serve` installs one that writes it as
    // a tracing event); this only records the answer.
    tracing::debug!(panic = msg, "handler panicked; answered 500");
    errors::internal().into_response()
}

/// The 503 of a full semaphore (`what`: the slots that are all busy).
fn busy(state: &AppState, what: &str) -> ApiError {
    state.metrics.job_rejected();
    errors::busy(format!(
        "all {} {what} slots are busy (PARAMINIT_MAX_JOBS); retry in {RETRY_AFTER_SECS} s",
        state.config.max_jobs
    ))
}

async fn build_plan(state: &AppState, request: crate::spec::Request) -> Result<Plan, ApiError> {
    let limits = state.config.limits();
    // Plans are bounded work (the limits are charged as tensors are made) but can take a
    // while: they run on a blocking thread under a planning permit, so at most
    // PARAMINIT_MAX_JOBS are built at once and the async workers stay free for /healthz.
    let permit = state
        .planners
        .clone()
        .try_acquire_owned()
        .map_err(|_| busy(state, "planning"))?;
    let cancel = plan::Cancel::new();
    // Dropping this future (the client went away) cancels the plan at its next tensor.
    let _guard = plan::CancelOnDrop(cancel.clone());
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        plan::build_cancellable(request, &limits, &cancel)
    })
    .await
    .map_err(|e| {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        errors::internal()
    })?
    .map_err(ApiError::from)
}

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

/// The longest `spec` query value accepted by `GET /v1/init` (base64url characters). Longer
/// requests should be POSTed; many proxies refuse URLs beyond a few KiB anyway.
pub const MAX_GET_SPEC_CHARS: usize = 48 * 1024;

/// Cache lifetime of `GET /v1/init` responses: the bytes for a URL never change.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

async fn init(
    State(state): State<AppState>,
    params: query::Params,
    req: Request,
) -> Result<Response, ApiError> {
    let format = negotiate::negotiate(params.format()?, req.headers())?;
    let headers = req.headers().clone();
    let SpecBody(request) = SpecBody::from_request(req, &state).await?;
    respond(&state, &headers, format, request, false, false).await
}

/// `GET /v1/init?spec=<base64url of the request JSON>&format=…`: the same bytes as the POST,
/// cacheable and resumable.
async fn init_get(
    State(state): State<AppState>,
    params: query::Params,
    req: Request,
) -> Result<Response, ApiError> {
    use base64::Engine;
    let format = negotiate::negotiate(params.format()?, req.headers())?;
    let invalid = |msg: String| errors::invalid_query("spec", msg);
    let spec = params
        .spec()
        .ok_or_else(|| invalid("`spec` is required: the request JSON, base64url-encoded".into()))?;
    if spec.len() > MAX_GET_SPEC_CHARS {
        return Err(errors::too_large(format!(
            "`spec` is {} characters; GET accepts at most {MAX_GET_SPEC_CHARS}: POST the request instead",
            spec.len()
        ))
        .with_path("?spec"));
    }
    // `Query` has percent-decoded the value (`%3D` padding, or a client that escapes every
    // byte). It leaves a malformed escape as it is and turns invalid UTF-8 into U+FFFD; neither
    // `%` nor U+FFFD is in the base64url alphabet, so either means a bad escape.
    if spec.contains(['%', '\u{FFFD}']) {
        return Err(invalid("`spec` has a malformed percent-escape".into()));
    }
    // The alphabet is accepted with or without `=` padding.
    let trimmed = spec.trim_end_matches('=');
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .map_err(|e| invalid(format!("`spec` is not base64url: {e}")))?;
    if body.len() > state.config.max_body_bytes {
        return Err(errors::too_large(format!(
            "the decoded request is {} bytes; the limit is {} (PARAMINIT_MAX_BODY_BYTES)",
            body.len(),
            state.config.max_body_bytes
        )));
    }
    let request = crate::spec::parse_bytes(&body).map_err(ApiError::from)?;
    let head = req.method() == axum::http::Method::HEAD;
    respond(&state, req.headers(), format, request, true, head).await
}

/// Everything after the request is parsed: plan, conditional and range handling, a job slot,
/// then the streaming body.
async fn respond(
    state: &AppState,
    headers: &HeaderMap,
    format: Format,
    request: crate::spec::Request,
    cacheable: bool,
    head: bool,
) -> Result<Response, ApiError> {
    let plan = build_plan(state, request).await?;
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
            .map_err(|_| busy(state, "generation"))?;
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

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(value).unwrap_or_default(),
    )
        .into_response()
}

async fn plan_route(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    negotiate::require_json(req.headers())?;
    let SpecBody(request) = SpecBody::from_request(req, &state).await?;
    let plan = build_plan(&state, request).await?;
    Ok(json_response(StatusCode::OK, &plan.to_json()))
}

/// The explorer page: plain HTML, CSS and script, embedded; no external resources.
pub const EXPLORER_HTML: &str = include_str!("explorer.html");

async fn explorer(State(state): State<AppState>) -> Response {
    // With tokens configured the page shows its token field from the start.
    let page = if state.config.api_token.is_some() {
        std::borrow::Cow::Owned(EXPLORER_HTML.replacen(
            "<body>",
            "<body data-auth=\"required\">",
            1,
        ))
    } else {
        std::borrow::Cow::Borrowed(EXPLORER_HTML)
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        page.into_owned(),
    )
        .into_response()
}

/// `POST /v1/analyze[?batch=N]`: the signal-propagation report plus value histograms.
async fn analyze_route(
    State(state): State<AppState>,
    params: query::Params,
    req: Request,
) -> Result<Response, ApiError> {
    negotiate::require_json(req.headers())?;
    let batch = params.batch()?;
    let SpecBody(request) = SpecBody::from_request(req, &state).await?;
    let plan = Arc::new(build_plan(&state, request).await?);
    // The measured pass is bounded (batch × parameters ≤ MAX_WORK) but CPU-heavy: it takes a
    // job slot like a generation and runs off the async workers.
    let permit = state
        .jobs
        .clone()
        .try_acquire_owned()
        .map_err(|_| busy(&state, "generation"))?;
    let pool = state.pool.clone();
    let report = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        pool.install(|| {
            let mut r = crate::analyze::analyze(plan.clone(), batch)?;
            r["histograms"] = crate::analyze::histograms(plan);
            Ok::<_, crate::error::SpecError>(r)
        })
    })
    .await
    .map_err(|e| {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        errors::internal()
    })?
    .map_err(ApiError::from)?;
    Ok(json_response(StatusCode::OK, &report))
}

async fn initializers(headers: HeaderMap) -> Result<Response, ApiError> {
    negotiate::require_json(&headers)?;
    static BODY: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let body = BODY.get_or_init(|| {
        serde_json::to_vec(&crate::init::catalogue::catalogue_json()).unwrap_or_default()
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response())
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.draining.load(Ordering::SeqCst) {
        return errors::shutting_down("the service is shutting down").into_response();
    }
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "status": "ready",
            "jobs_available": state.jobs.available_permits(),
            "jobs_max": state.config.max_jobs,
        }),
    )
}

async fn metrics_route(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI_YAML).into_response()
}

/// Binds `config.addr` and serves until SIGTERM or Ctrl-C, then lets in-flight responses
/// finish for up to `PARAMINIT_SHUTDOWN_GRACE_SECS`.
pub async fn serve(config: Config) -> std::io::Result<()> {
    let listener = TcpListener::bind(&config.addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {} (PARAMINIT_ADDR): {e}", config.addr),
        )
    })?;
    serve_with_shutdown(listener, config, shutdown_signal()).await
}

/// Serves on `listener` until `shutdown` resolves; then stops accepting, waits for in-flight
/// responses up to the grace period, and returns.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    install_panic_hook();
    let state = AppState::new(config);
    let app = router(state.clone());
    let addr = listener.local_addr()?;
    tracing::info!(%addr, config = ?state.config, "paraminit listening");
    if state.config.api_token.is_none() && !state.config.auth_none {
        tracing::warn!(
            "PARAMINIT_API_TOKEN is not set: every route is open to anyone who can connect (set PARAMINIT_AUTH=none to say this is intended)"
        );
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let (builder, overflow_builder) = connection_builders(&state.config);
    let (builder, overflow_builder) = (
        Arc::new((builder, false)),
        Arc::new((overflow_builder, true)),
    );
    let header_timeout = Duration::from_secs(state.config.header_timeout_secs);
    // Open connections are capped; past the cap a few more are served one request each with
    // a short header timeout (so `/healthz` still answers a probe), the rest closed at once.
    let connections = Arc::new(Semaphore::new(state.config.max_connections));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_CONNECTIONS));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (permit, b) = match connections.clone().try_acquire_owned() {
                    Ok(p) => (p, builder.clone()),
                    Err(_) => match overflow.clone().try_acquire_owned() {
                        Ok(p) => (p, overflow_builder.clone()),
                        Err(_) => {
                            state.metrics.connection_refused();
                            drop(stream);
                            continue;
                        }
                    },
                };
                let _ = stream.set_nodelay(true);
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let watcher = graceful.watcher();
                let first_byte = if b.1 { OVERFLOW_HEADER_TIMEOUT.min(header_timeout) } else { header_timeout };
                tokio::spawn(async move {
                    let _permit = permit;
                    // hyper's header timer starts once the protocol is detected, which needs a
                    // first byte: a connection that sends nothing is closed here.
                    let mut probe = [0u8; 1];
                    match tokio::time::timeout(first_byte, stream.peek(&mut probe)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                    let conn = b
                        .0
                        .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                        .into_owned();
                    // Faults that never reach a handler (a header flood answered 431 by hyper,
                    // a malformed request line, a reset mid-stream) are logged here, once.
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::info!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    state.draining.store(true, Ordering::SeqCst);
    tracing::info!(
        grace_secs = grace.as_secs(),
        "shutting down: finishing in-flight responses; new requests get 503 (readiness probes see it)"
    );
    // During the grace period the listener stays open, so a readiness probe sees `/readyz`
    // answer 503 instead of a refused connection; those connections are served one request
    // each, and every route but the probes answers 503 `shutting_down` (middleware).
    let drain_accept = {
        let app = app.clone();
        let b = overflow_builder.clone();
        async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                let b = b.clone();
                tokio::spawn(async move {
                    let conn =
                        b.0.serve_connection_with_upgrades(
                            hyper_util::rt::TokioIo::new(stream),
                            service,
                        )
                        .into_owned();
                    let _ = tokio::time::timeout(OVERFLOW_HEADER_TIMEOUT * 2, conn).await;
                });
            }
        }
    };
    tokio::select! {
        _ = drain_accept => Ok(()),
        _ = graceful.shutdown() => {
            tracing::info!("shut down cleanly");
            Ok(())
        }
        _ = tokio::time::sleep(grace) => {
            let busy = state.config.max_jobs - state.jobs.available_permits();
            tracing::warn!(jobs_cut = busy, "grace period over; closing remaining connections");
            Ok(())
        }
    }
}

/// Connections served past `PARAMINIT_MAX_CONNECTIONS`, one request each.
pub const OVERFLOW_CONNECTIONS: usize = 32;
/// Header timeout of those overflow connections.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// The connection builders: normal connections, and the overflow ones past the cap (HTTP/1
/// only, no keep-alive, a short header timeout). Both have hyper's timer, so the header-read
/// timeout applies: a connection that sends nothing, or one byte a second, is closed after
/// `PARAMINIT_HEADER_TIMEOUT_SECS`, and so is a kept-alive HTTP/1 connection that sends no next
/// request. HTTP/2 connections are pinged and closed when the peer stops answering.
fn connection_builders(
    config: &Config,
) -> (
    hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
) {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    let header = Duration::from_secs(config.header_timeout_secs);
    let mut normal = Builder::new(TokioExecutor::new());
    normal
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header);
    normal
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(10));
    let mut overflow = Builder::new(TokioExecutor::new()).http1_only();
    overflow
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(OVERFLOW_HEADER_TIMEOUT.min(header))
        .keep_alive(false);
    (normal, overflow)
}

/// Logs every panic once, as an error event with its location, in the configured log format.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic payload)");
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            tracing::error!(panic = msg, %location, "panic");
        }));
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

/// The address to probe for a bind address: an unspecified host (`0.0.0.0`, `[::]`) becomes
/// the loopback address.
fn probe_addr(addr: &str) -> Result<SocketAddr, String> {
    let mut a = addr
        .to_socket_addrs()
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {addr:?} resolves to nothing"))?;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(a)
}

/// `GET /healthz` on the local service with a plain blocking socket (for the Docker
/// `HEALTHCHECK`: `paraminit healthcheck`). Ok when it answers 200 within a few seconds.
pub fn healthcheck(addr: &str) -> Result<(), String> {
    let a = probe_addr(addr)?;
    let timeout = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&a, timeout).map_err(|e| format!("connect {a}: {e}"))?;
    s.set_read_timeout(Some(timeout)).ok();
    s.set_write_timeout(Some(timeout)).ok();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\nUser-Agent: paraminit-healthcheck\r\n\r\n"
    )
    .map_err(|e| format!("write to {a}: {e}"))?;
    let mut buf = Vec::new();
    s.take(64 * 1024)
        .read_to_end(&mut buf)
        .map_err(|e| format!("read from {a}: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let status_line = text.lines().next().unwrap_or("");
    if status_line.starts_with("HTTP/1.1 200") || status_line.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!("{a} answered {status_line:?}"))
    }
}
