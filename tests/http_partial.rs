//! HTTP ranges, conditional requests and the cacheable GET (SPEC §1, §3): 206 with exactly the
//! requested bytes, 416 past the end, If-Range, 304, and `GET /v1/init?spec=` byte-identical
//! to the POST.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use common::*;

const MIXED: &str = r#"{"seed": 9, "layers": [{"type": "dense", "in_features": 40, "out_features": 30}],
  "tensors": [{"name": "t", "shape": [1000], "init": "normal", "dtype": "bfloat16"}]}"#;

fn st_post(body: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri("/v1/init?format=safetensors")
        .header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

async fn full_file(app: &axum::Router) -> (Vec<u8>, String) {
    let res = send(app, st_post(MIXED, &[])).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::ACCEPT_RANGES], "bytes");
    let etag = res.headers()[header::ETAG].to_str().unwrap().to_string();
    (body_bytes(res).await, etag)
}

#[tokio::test]
async fn single_ranges_give_206_with_exactly_those_bytes() {
    let app = app();
    let (file, etag) = full_file(&app).await;
    let n = file.len();
    for (range, a, b) in [
        ("bytes=0-99".to_string(), 0, 100),
        ("bytes=7-7".to_string(), 7, 8),
        (format!("bytes={}-", n - 333), n - 333, n),
        ("bytes=-10".to_string(), n - 10, n),
        (format!("bytes=100-{}", n + 50), 100, n),
    ] {
        let res = send(&app, st_post(MIXED, &[("range", &range)])).await;
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        let h = res.headers().clone();
        assert_eq!(
            h[header::CONTENT_RANGE],
            format!("bytes {a}-{}/{n}", b - 1),
            "{range}"
        );
        assert_eq!(h[header::CONTENT_LENGTH], (b - a).to_string());
        assert_eq!(h[header::ETAG], etag.as_str());
        assert_eq!(body_bytes(res).await, &file[a..b], "{range}");
    }
    // If-Range with the current tag keeps the range; another tag sends the whole file.
    let res = send(
        &app,
        st_post(MIXED, &[("range", "bytes=0-9"), ("if-range", &etag)]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    let res = send(
        &app,
        st_post(MIXED, &[("range", "bytes=0-9"), ("if-range", "\"stale\"")]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_bytes(res).await, file);
    // Several ranges: the whole file.
    let res = send(&app, st_post(MIXED, &[("range", "bytes=0-1,5-9")])).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_bytes(res).await.len(), n);
}

#[tokio::test]
async fn ranges_past_the_end_are_416_and_json_ignores_ranges() {
    let app = app();
    let (file, _) = full_file(&app).await;
    let n = file.len();
    let res = send(&app, st_post(MIXED, &[("range", &format!("bytes={n}-"))])).await;
    assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(res.headers()[header::CONTENT_RANGE], format!("bytes */{n}"));
    let v: serde_json::Value = serde_json::from_slice(&body_bytes(res).await).unwrap();
    assert_envelope(&v, "range_not_satisfiable", None);
    let res = send(&app, post("/v1/init", MIXED)).await;
    assert!(res.headers().get(header::ACCEPT_RANGES).is_none());
    let mut req = post("/v1/init", MIXED);
    req.headers_mut()
        .insert(header::RANGE, "bytes=0-9".parse().unwrap());
    let res = send(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body_bytes(res).await).unwrap();
    assert_eq!(v["tensors"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn get_with_spec_equals_post_and_is_cacheable() {
    let app = app();
    let (file, etag) = full_file(&app).await;
    let spec = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(MIXED);
    let res = send(
        &app,
        get(&format!("/v1/init?spec={spec}&format=safetensors")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::ETAG], etag.as_str());
    assert_eq!(
        res.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(body_bytes(res).await, file);
    // Padded base64 is accepted too; JSON by default, equal to the POST's JSON.
    let padded = base64::engine::general_purpose::URL_SAFE.encode(MIXED);
    let res = send(&app, get(&format!("/v1/init?spec={padded}"))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let get_json = body_bytes(res).await;
    let post_json = body_bytes(send(&app, post("/v1/init", MIXED)).await).await;
    assert_eq!(get_json, post_json);
    // Resume: a range of the GET.
    let mut req = get(&format!("/v1/init?spec={spec}&format=safetensors"));
    req.headers_mut()
        .insert(header::RANGE, "bytes=100-".parse().unwrap());
    let res = send(&app, req).await;
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body_bytes(res).await, &file[100..]);
    // Conditional GET.
    let mut req = get(&format!("/v1/init?spec={spec}&format=safetensors"));
    req.headers_mut()
        .insert(header::IF_NONE_MATCH, etag.parse().unwrap());
    let res = send(&app, req).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        res.headers()[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(body_bytes(res).await.is_empty());
    // Errors.
    let v = json_of(&app, get("/v1/init"), StatusCode::BAD_REQUEST).await;
    assert_envelope(&v, "invalid_query", Some("?spec"));
    let v = json_of(&app, get("/v1/init?spec=***"), StatusCode::BAD_REQUEST).await;
    assert_envelope(&v, "invalid_query", Some("?spec"));
    let bad = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(r#"{"seed": 1, "layers": [{"type": "dense", "in_features": 0}]}"#);
    let v = json_of(
        &app,
        get(&format!("/v1/init?spec={bad}")),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_envelope(&v, "invalid_value", Some("layers[0].in_features"));
    let long = "A".repeat(paraminit::http::MAX_GET_SPEC_CHARS + 4);
    let v = json_of(
        &app,
        get(&format!("/v1/init?spec={long}")),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_envelope(&v, "limit_exceeded", Some("?spec"));
}

#[tokio::test]
async fn shards_and_subsets_over_http() {
    let app = app();
    let body = r#"{"seed": 9, "layers": [{"type": "dense", "in_features": 40, "out_features": 30}], "only": ["0.weight"], "shard": {"rank": 1, "world_size": 4}}"#;
    let v = json_of(&app, post("/v1/plan", body), StatusCode::OK).await;
    let t = &v["tensors"][0];
    assert_eq!(t["name"], "0.weight");
    assert_eq!(t["shape"], serde_json::json!([8, 40]));
    assert_eq!(
        t["slice"],
        serde_json::json!({"dim": 0, "start": 8, "length": 8, "full_shape": [30, 40]})
    );
    let res = send(&app, post("/v1/init", body)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let bad = r#"{"seed": 9, "layers": [{"type": "dense", "in_features": 40, "out_features": 30}], "only": ["1.*"]}"#;
    let v = json_of(
        &app,
        post("/v1/init", bad),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_envelope(&v, "no_match", Some("only[0]"));
}
