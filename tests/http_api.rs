//! In-process tests of every route, every negotiation case and every error class.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use paraminit::config::Config;
use serde_json::Value;

#[tokio::test]
async fn health_ready_catalogue_metrics_openapi() {
    let app = app();
    let v = json_of(&app, get("/healthz"), StatusCode::OK).await;
    assert_eq!(v["status"], "ok");
    let v = json_of(&app, get("/readyz"), StatusCode::OK).await;
    assert_eq!(v["status"], "ready");
    let v = json_of(&app, get("/v1/initializers"), StatusCode::OK).await;
    let names: Vec<&str> = v["initializers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"he_normal") && names.contains(&"orthogonal"));

    let res = send(&app, get("/openapi.yaml")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/yaml");
    let text = body_bytes(res).await;
    assert_eq!(text, paraminit::http::OPENAPI_YAML.as_bytes());
    assert_eq!(
        paraminit::http::OPENAPI_YAML,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).unwrap()
    );

    let res = send(&app, get("/metrics")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(body_bytes(res).await).unwrap();
    assert!(text.contains("paraminit_jobs_in_flight 0"), "{text}");
    assert!(
        text.contains(
            r#"paraminit_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{text}"
    );
}

fn init_req(query: &str, accept: Option<&str>) -> Request<Body> {
    let mut b =
        Request::post(format!("/v1/init{query}")).header("content-type", "application/json");
    if let Some(a) = accept {
        b = b.header("accept", a);
    }
    b.body(Body::from(SEED_MLP)).unwrap()
}

/// (tensor name → (shape, f64 values)) from a JSON response body.
fn tensors_of_json(v: &Value) -> Vec<(String, Vec<u64>, Vec<f64>)> {
    v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap())
                    .collect(),
                t["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32 as f64)
                    .collect(),
            )
        })
        .collect()
}

fn tensors_of_safetensors(bytes: &[u8]) -> Vec<(String, Vec<u64>, Vec<f64>)> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let mut out: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32);
            let vals = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                .collect();
            (name, view.shape().iter().map(|&s| s as u64).collect(), vals)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn init_json_and_safetensors_agree() {
    let app = app();
    let res = send(&app, init_req("", None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let etag_json = res.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag_json.starts_with('"') && etag_json.ends_with('"'));
    assert!(res.headers().get("content-disposition").is_none());
    let v: Value = serde_json::from_slice(&body_bytes(res).await).unwrap();
    assert_eq!(v["seed"], 42);
    let mut from_json = tensors_of_json(&v);
    from_json.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = from_json.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.bias",
            "0.weight",
            "1.bias",
            "1.weight",
            "2.bias",
            "2.weight",
            "extra.scale"
        ]
    );

    let res = send(&app, init_req("?format=safetensors", None)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "application/octet-stream");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"model.safetensors\""
    );
    assert_ne!(h["etag"].to_str().unwrap(), etag_json);
    let bytes = body_bytes(res).await;
    let len: usize = h["content-length"].to_str().unwrap().parse().unwrap();
    assert_eq!(len, bytes.len());
    let from_st = tensors_of_safetensors(&bytes);
    assert_eq!(from_json.len(), from_st.len());
    for (a, b) in from_json.iter().zip(&from_st) {
        assert_eq!((&a.0, &a.1), (&b.0, &b.1));
        assert!(a.2 == b.2, "values of {} differ", a.0);
    }
    assert!(from_st[6].2.iter().all(|&x| x == 0.5));

    // The plan announces the same size and ETags.
    let plan = json_of(&app, post("/v1/plan", SEED_MLP), StatusCode::OK).await;
    assert_eq!(plan["totals"]["safetensors_bytes"], len as u64);
    assert_eq!(plan["etag"]["json"], etag_json);
    assert_eq!(plan["etag"]["safetensors"], h["etag"].to_str().unwrap());
    assert_eq!(plan["tensors"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn negotiation_cases() {
    let app = app();
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("", None, "application/json"),
        ("", Some("application/json"), "application/json"),
        ("", Some("*/*"), "application/json"),
        (
            "",
            Some("application/octet-stream"),
            "application/octet-stream",
        ),
        (
            "",
            Some("application/vnd.safetensors"),
            "application/octet-stream",
        ),
        (
            "",
            Some("application/json;q=0.2, application/octet-stream"),
            "application/octet-stream",
        ),
        (
            "?format=json",
            Some("application/octet-stream"),
            "application/json",
        ),
        (
            "?format=safetensors",
            Some("application/json"),
            "application/octet-stream",
        ),
        (
            "?format=safetensors",
            Some("text/html"),
            "application/octet-stream",
        ),
    ];
    for (q, accept, want) in cases {
        let res = send(&app, init_req(q, *accept)).await;
        assert_eq!(res.status(), StatusCode::OK, "{q} {accept:?}");
        assert_eq!(res.headers()["content-type"], *want, "{q} {accept:?}");
        let _ = body_bytes(res).await;
    }
    let v = json_of(
        &app,
        init_req("", Some("text/html")),
        StatusCode::NOT_ACCEPTABLE,
    )
    .await;
    assert_envelope(&v, "not_acceptable", None);
    let v = json_of(
        &app,
        init_req("", Some("application/json;q=0")),
        StatusCode::NOT_ACCEPTABLE,
    )
    .await;
    assert_envelope(&v, "not_acceptable", None);
    let v = json_of(&app, init_req("?format=xml", None), StatusCode::BAD_REQUEST).await;
    assert_envelope(&v, "invalid_query", Some("?format"));
    // /v1/plan and the catalogue only speak JSON.
    let req = Request::post("/v1/plan")
        .header("accept", "application/octet-stream")
        .body(Body::from(SEED_MLP))
        .unwrap();
    let v = json_of(&app, req, StatusCode::NOT_ACCEPTABLE).await;
    assert_envelope(&v, "not_acceptable", None);
}

#[tokio::test]
async fn if_none_match_on_a_post_gives_412() {
    // RFC 9110 §13.1.2: 304 is for GET and HEAD (tests/http_partial.rs); a POST gets 412.
    let app = app();
    for q in ["", "?format=safetensors"] {
        let res = send(&app, init_req(q, None)).await;
        let etag = res.headers()["etag"].clone();
        let _ = body_bytes(res).await;
        for inm in [
            etag.to_str().unwrap().to_string(),
            format!("\"other\", {}", etag.to_str().unwrap()),
            format!("W/{}", etag.to_str().unwrap()),
            "*".to_string(),
        ] {
            let mut req = init_req(q, None);
            req.headers_mut()
                .insert("if-none-match", inm.parse().unwrap());
            let res = send(&app, req).await;
            assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED, "{inm}");
            assert_eq!(res.headers()["etag"], etag);
            let v: Value = serde_json::from_slice(&body_bytes(res).await).unwrap();
            assert_envelope(&v, "precondition_failed", None);
        }
        let mut req = init_req(q, None);
        req.headers_mut()
            .insert("if-none-match", "\"nope\"".parse().unwrap());
        let res = send(&app, req).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn no_content_type_is_accepted() {
    let app = app();
    let req = Request::post("/v1/plan")
        .body(Body::from(SEED_MLP))
        .unwrap();
    json_of(&app, req, StatusCode::OK).await;
}

#[tokio::test]
async fn input_errors_are_envelopes() {
    let app = app();
    for route in ["/v1/init", "/v1/plan"] {
        let v = json_of(&app, post(route, "{\"seed\": 1,"), StatusCode::BAD_REQUEST).await;
        assert_envelope(&v, "malformed_json", None);
        let v = json_of(&app, post(route, ""), StatusCode::BAD_REQUEST).await;
        assert_envelope(&v, "malformed_json", None);
        let v = json_of(
            &app,
            post(route, "[1, 2]"),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(v["error"]["code"], "invalid_type");
        let body = SEED_MLP.replace("\"out_features\": 32", "\"out_features\": 0");
        let v = json_of(&app, post(route, &body), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_envelope(&v, "invalid_value", Some("layers[1].out_features"));
        let body = SEED_MLP.replace("\"seed\": 42", "\"seed\": 42, \"colour\": 1");
        let v = json_of(&app, post(route, &body), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_envelope(&v, "unknown_field", Some("colour"));
        let body = SEED_MLP.replace("\"seed\": 42", "\"seed\": -1");
        let v = json_of(&app, post(route, &body), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_envelope(&v, "seed_out_of_range", Some("seed"));
        let body = SEED_MLP.replace("he_normal\"}, {", "he_nermal\"}, {");
        let v = json_of(&app, post(route, &body), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_envelope(
            &v,
            "unknown_initializer",
            Some("layers[0].kernel_initializer"),
        );
        let body = SEED_MLP.replace(
            "\"type\": \"dense\", \"out_features\": 10",
            "\"type\": \"densse\", \"out_features\": 10",
        );
        let v = json_of(&app, post(route, &body), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_envelope(&v, "unknown_layer_type", Some("layers[2].type"));
        let body = SEED_MLP.replace("extra.scale", "0.weight");
        let v = json_of(&app, post(route, &body), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(v["error"]["code"], "duplicate_name");
        let body = raw_request(1, "\"zeros\"").replace("[1]", "[4294967296, 4294967296, 16]");
        let v = json_of(&app, post(route, &body), StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(v["error"]["code"], "size_overflow", "{v}");
        // 415: a Content-Type that is present and not JSON.
        let req = Request::post(route)
            .header("content-type", "text/plain")
            .body(Body::from(SEED_MLP))
            .unwrap();
        let v = json_of(&app, req, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        assert_envelope(&v, "unsupported_media_type", None);
        let req = Request::post(route)
            .header("content-type", "application/json; charset=utf-8")
            .body(Body::from(SEED_MLP))
            .unwrap();
        assert_eq!(send(&app, req).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn limits_are_413_with_numbers() {
    let (app, _) = app_with(Config {
        max_body_bytes: 1000,
        max_elements: 1000,
        max_tensors: 3,
        max_response_bytes: 5000,
        ..test_config()
    });
    // Body too large, announced by Content-Length.
    let big = format!("{{\"seed\": 1, \"pad\": \"{}\"}}", "x".repeat(1100));
    let v = json_of(&app, post("/v1/init", &big), StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_envelope(&v, "limit_exceeded", None);
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("PARAMINIT_MAX_BODY_BYTES") && m.contains("1000"),
        "{m}"
    );
    // … and streamed without a length.
    let stream = futures_stream(big.clone());
    let req = Request::post("/v1/plan")
        .header("content-type", "application/json")
        .body(stream)
        .unwrap();
    let v = json_of(&app, req, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_envelope(&v, "limit_exceeded", None);

    let v = json_of(
        &app,
        post("/v1/init", &raw_request(1001, "\"zeros\"")),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    let m = v["error"]["message"].as_str().unwrap();
    assert_eq!(v["error"]["code"], "limit_exceeded");
    assert!(
        m.contains("1001") && m.contains("1000") && m.contains("PARAMINIT_MAX_ELEMENTS"),
        "{m}"
    );

    // Limits are charged as tensors are produced: four tiny tensors pass the element limit
    // and the fourth crosses the tensor limit.
    let four = r#"{"seed": 1, "tensors": [{"name": "a", "shape": [1], "init": "zeros"}, {"name": "b", "shape": [1], "init": "zeros"}, {"name": "c", "shape": [1], "init": "zeros"}, {"name": "d", "shape": [1], "init": "zeros"}]}"#;
    let v = json_of(&app, post("/v1/plan", four), StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(v["error"]["path"], "tensors[3]");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("PARAMINIT_MAX_TENSORS") && m.contains('3'),
        "{m}"
    );

    let req = r#"{"seed": 1, "dtype": "float64", "tensors": [{"name": "a", "shape": [999], "init": "zeros"}]}"#;
    let v = json_of(&app, post("/v1/init", req), StatusCode::PAYLOAD_TOO_LARGE).await;
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains("PARAMINIT_MAX_RESPONSE_BYTES") && m.contains("5000"),
        "{m}"
    );
}

/// A body of unknown length (no Content-Length), delivered in small pieces.
fn futures_stream(s: String) -> Body {
    struct Pieces(Vec<bytes::Bytes>);
    impl http_body::Body for Pieces {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
            std::task::Poll::Ready(if self.0.is_empty() {
                None
            } else {
                Some(Ok(http_body::Frame::data(self.0.remove(0))))
            })
        }
    }
    let pieces = s
        .into_bytes()
        .chunks(50)
        .map(bytes::Bytes::copy_from_slice)
        .collect();
    Body::new(Pieces(pieces))
}

#[tokio::test]
async fn not_found_and_method_not_allowed_are_envelopes() {
    let app = app();
    let v = json_of(&app, get("/nope"), StatusCode::NOT_FOUND).await;
    assert_envelope(&v, "not_found", None);
    let v = json_of(&app, post("/v1/nope", "{}"), StatusCode::NOT_FOUND).await;
    assert_envelope(&v, "not_found", None);
    let res = send(&app, get("/v1/plan")).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let v: Value = serde_json::from_slice(&body_bytes(res).await).unwrap();
    assert_envelope(&v, "method_not_allowed", None);
    let v = json_of(&app, post("/healthz", "{}"), StatusCode::METHOD_NOT_ALLOWED).await;
    assert_envelope(&v, "method_not_allowed", None);
}

#[tokio::test]
async fn a_panic_is_a_500_envelope() {
    let state = paraminit::http::AppState::new(test_config());
    let routes = paraminit::http::routes(state.clone()).route(
        "/boom",
        axum::routing::get(|| async {
            if true {
                panic!("boom");
            }
            "unreachable"
        }),
    );
    let app = paraminit::http::with_middleware(routes, state);
    let v = json_of(&app, get("/boom"), StatusCode::INTERNAL_SERVER_ERROR).await;
    assert_envelope(&v, "internal", None);
    // The service is still up.
    json_of(&app, get("/healthz"), StatusCode::OK).await;
}

#[tokio::test]
async fn api_token_guards_all_but_health() {
    let (app, _) = app_with(Config {
        api_token: Some("s3cret".into()),
        ..test_config()
    });
    json_of(&app, get("/healthz"), StatusCode::OK).await;
    json_of(&app, get("/readyz"), StatusCode::OK).await;
    let v = json_of(&app, post("/v1/init", SEED_MLP), StatusCode::UNAUTHORIZED).await;
    assert_envelope(&v, "unauthorized", None);
    let mut req = post("/v1/plan", SEED_MLP);
    req.headers_mut()
        .insert("authorization", "Bearer wrong".parse().unwrap());
    json_of(&app, req, StatusCode::UNAUTHORIZED).await;
    let mut req = post("/v1/plan", SEED_MLP);
    req.headers_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    json_of(&app, req, StatusCode::OK).await;
    // /metrics is guarded too unless PARAMINIT_METRICS_PUBLIC.
    assert_eq!(
        send(&app, get("/metrics")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn several_tokens_and_public_metrics() {
    let (app, _) = app_with(Config {
        api_token: Some("alpha, beta".into()),
        metrics_public: true,
        ..test_config()
    });
    for (token, status) in [
        ("alpha", StatusCode::OK),
        ("beta", StatusCode::OK),
        ("alpha, beta", StatusCode::UNAUTHORIZED),
        ("gamma", StatusCode::UNAUTHORIZED),
    ] {
        let mut req = post("/v1/plan", SEED_MLP);
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        assert_eq!(send(&app, req).await.status(), status, "{token}");
    }
    assert_eq!(send(&app, get("/metrics")).await.status(), StatusCode::OK);
    assert_eq!(
        send(&app, post("/v1/plan", SEED_MLP)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slot_busy_then_free_and_disconnect_frees_it() {
    let (app, state) = app_with(Config {
        max_jobs: 1,
        ..test_config()
    });
    // 400 MB of zeros: far more than the channel holds, so the job stays busy while unread.
    let big = raw_request(100_000_000, "\"zeros\"");
    let first = send(&app, post("/v1/init?format=safetensors", &big)).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(metric(&app, "paraminit_jobs_in_flight").await, Some(1.0));

    let res = send(&app, post("/v1/init", SEED_MLP)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "1");
    let v: Value = serde_json::from_slice(&body_bytes(res).await).unwrap();
    assert_envelope(&v, "busy", None);
    // 304 and plans need no slot.
    json_of(&app, post("/v1/plan", SEED_MLP), StatusCode::OK).await;

    // The client goes away: the slot frees within a chunk.
    drop(first);
    let t0 = std::time::Instant::now();
    while metric(&app, "paraminit_jobs_in_flight").await != Some(0.0) {
        assert!(t0.elapsed().as_secs() < 5, "slot not released");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(state.jobs.available_permits(), 1);
    let res = send(&app, post("/v1/init", SEED_MLP)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let _ = body_bytes(res).await;

    // A finished body frees the slot as well.
    let t0 = std::time::Instant::now();
    while state.jobs.available_permits() != 1 {
        assert!(
            t0.elapsed().as_secs() < 5,
            "slot not released after completion"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let text = {
        let res = send(&app, get("/metrics")).await;
        String::from_utf8(body_bytes(res).await).unwrap()
    };
    assert!(text.contains("paraminit_jobs_rejected_total 1"), "{text}");
    assert!(
        text.contains(
            r#"paraminit_generation_duration_seconds_bucket{format="safetensors",outcome="aborted""#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"paraminit_generated_elements_total{format="json"} 1140"#)
            || text.contains("paraminit_generated_elements_total{format=\"json\"}"),
        "{text}"
    );
    assert!(text.contains(r#"status="503""#), "{text}");
}
