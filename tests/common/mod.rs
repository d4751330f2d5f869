//! Helpers shared by the integration tests: statistics (`stats`) and the HTTP app.
#![allow(dead_code)]

pub mod stats;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use paraminit::config::Config;
use paraminit::http::{AppState, router};
use serde_json::Value;
use tower::ServiceExt;

pub const SEED_MLP: &str = r#"{"seed": 42, "framework": "pytorch", "dtype": "float32", "layers": [{"type": "dense", "in_features": 100, "out_features": 64, "activation": "relu", "kernel_initializer": "he_normal"}, {"type": "dense", "out_features": 32, "activation": "relu", "kernel_initializer": "he_normal"}, {"type": "dense", "out_features": 10, "activation": "softmax"}], "tensors": [{"name": "extra.scale", "shape": [10], "init": {"name": "constant", "value": 0.5}}]}"#;

pub fn test_config() -> Config {
    Config {
        addr: "127.0.0.1:0".into(),
        threads: 2,
        max_jobs: 4,
        ..Config::default()
    }
}

pub fn app_with(config: Config) -> (Router, AppState) {
    let state = AppState::new(config);
    (router(state.clone()), state)
}

/// The real server (`serve_with_shutdown`: our accept loop, limits and timeouts) on a loopback
/// port, never shut down; its address.
pub async fn serve_on_loopback(config: Config) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(paraminit::http::serve_with_shutdown(
        listener,
        config,
        std::future::pending(),
    ));
    addr
}

pub fn app() -> Router {
    app_with(test_config()).0
}

/// A raw tensor request of `n` elements with initializer `init` (JSON).
pub fn raw_request(n: u64, init: &str) -> String {
    format!(r#"{{"seed": 7, "tensors": [{{"name": "big", "shape": [{n}], "init": {init}}}]}}"#)
}

pub fn post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub async fn send(app: &Router, req: Request<Body>) -> Response<Body> {
    app.clone().oneshot(req).await.unwrap()
}

pub async fn body_bytes(res: Response<Body>) -> Vec<u8> {
    axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}

/// Sends, expects `status`, returns the parsed JSON body.
pub async fn json_of(app: &Router, req: Request<Body>, status: StatusCode) -> Value {
    let res = send(app, req).await;
    let got = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = body_bytes(res).await;
    assert_eq!(got, status, "body: {}", String::from_utf8_lossy(&bytes));
    assert_eq!(ct.as_deref(), Some("application/json"));
    serde_json::from_slice(&bytes).unwrap()
}

/// Asserts an error envelope with `code` and (optionally) `path`.
pub fn assert_envelope(v: &Value, code: &str, path: Option<&str>) {
    let e = &v["error"];
    assert_eq!(e["code"], code, "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(e["path"].as_str(), path, "{v}");
}

/// The value of an unlabelled gauge (or the first sample of a metric) in `/metrics`.
pub async fn metric(app: &Router, name: &str) -> Option<f64> {
    let res = send(app, get("/metrics")).await;
    let text = String::from_utf8(body_bytes(res).await).unwrap();
    gauge_value(&text, name)
}

/// The value of an unlabelled gauge in rendered Prometheus text.
pub fn gauge_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}
