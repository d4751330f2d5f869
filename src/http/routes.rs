//! The router and its handlers: each route parses what it reads (query, body), builds the plan
//! and hands it to `responses`, or answers itself (probes, metrics, the explorer, the OpenAPI
//! document, the catalogue). The middleware stack is added here too, with the panic answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;

use super::errors::{self, ApiError, SpecBody};
use super::{AppState, middleware, negotiate, query, responses};
use crate::plan::{self, Plan};

/// The OpenAPI document, the repo-root file.
pub const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

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

async fn build_plan(state: &AppState, request: crate::spec::Request) -> Result<Plan, ApiError> {
    let limits = state.config.limits();
    // Plans are bounded work (the limits are charged as tensors are made) but can take a
    // while: they run on a blocking thread under a planning permit, so at most
    // PARAMINIT_MAX_JOBS are built at once and the async workers stay free for /healthz.
    let permit = state
        .planners
        .clone()
        .try_acquire_owned()
        .map_err(|_| state.all_busy("planning"))?;
    let cancel = plan::Cancel::new();
    // Dropping this future (the client went away) cancels the plan at its next tensor.
    let _guard = plan::CancelOnDrop(cancel.clone());
    errors::run_blocking(move || {
        let _permit = permit;
        crate::pipeline::build_cancellable(request, &limits, &cancel)
    })
    .await?
    .map_err(ApiError::from)
}

/// The longest `spec` query value accepted by `GET /v1/init` (base64url characters). Longer
/// requests should be POSTed; many proxies refuse URLs beyond a few KiB anyway.
pub const MAX_GET_SPEC_CHARS: usize = 48 * 1024;

async fn init(
    State(state): State<AppState>,
    params: query::Params,
    req: Request,
) -> Result<Response, ApiError> {
    let format = negotiate::negotiate(params.format()?, req.headers())?;
    let headers = req.headers().clone();
    let SpecBody(request) = SpecBody::from_request(req, &state).await?;
    let plan = build_plan(&state, request).await?;
    responses::respond(&state, &headers, format, plan, false, false).await
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
    let plan = build_plan(&state, request).await?;
    responses::respond(&state, req.headers(), format, plan, true, head).await
}

async fn plan_route(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    negotiate::require_json(req.headers())?;
    let SpecBody(request) = SpecBody::from_request(req, &state).await?;
    let plan = build_plan(&state, request).await?;
    Ok(responses::json_bytes_response(
        StatusCode::OK,
        plan.to_json_bytes(),
    ))
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
        .map_err(|_| state.all_busy("generation"))?;
    let pool = state.pool.clone();
    let report = errors::run_blocking(move || {
        let _permit = permit;
        pool.install(|| {
            let mut r = crate::analyze::analyze(plan.clone(), batch)?;
            r["histograms"] = crate::analyze::histograms(plan);
            Ok::<_, crate::error::SpecError>(r)
        })
    })
    .await?
    .map_err(ApiError::from)?;
    Ok(responses::json_response(StatusCode::OK, &report))
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
    responses::json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.draining.load(Ordering::SeqCst) {
        return errors::shutting_down("the service is shutting down").into_response();
    }
    responses::json_response(
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
