//! Faults (issue 7): a request body that never completes gets 408 and frees nothing it did not
//! take; a client that stops reading its response is cut off after the idle timeout and its job
//! slot frees; while all slots are busy, /v1/plan, /healthz and /metrics still answer.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use paraminit::config::Config;

/// A body that sends its first bytes and then never ends.
struct Stalled(bool);
impl http_body::Body for Stalled {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.0 {
            std::task::Poll::Pending
        } else {
            self.0 = true;
            std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
                b"{\"seed\": 1, ",
            )))))
        }
    }
}

#[tokio::test]
async fn a_body_that_never_completes_gets_408() {
    let (app, _) = app_with(Config {
        body_timeout_secs: 1,
        ..test_config()
    });
    let req = Request::post("/v1/init")
        .header("content-type", "application/json")
        .body(Body::new(Stalled(false)))
        .unwrap();
    let started = Instant::now();
    let v = json_of(&app, req, StatusCode::REQUEST_TIMEOUT).await;
    assert_envelope(&v, "request_timeout", None);
    assert!(started.elapsed() < Duration::from_secs(5));
    json_of(&app, get("/healthz"), StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_and_other_routes_stay_fast() {
    let (app, _) = app_with(Config {
        max_jobs: 1,
        idle_timeout_secs: 1,
        ..test_config()
    });
    let big = raw_request(200_000_000, "\"normal\"");
    let held = send(&app, post("/v1/init?format=safetensors", &big)).await;
    assert_eq!(held.status(), StatusCode::OK);
    // All slots taken: generation is refused, everything else answers promptly.
    let res = send(&app, post("/v1/init", SEED_MLP)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_some());
    for req in [post("/v1/plan", SEED_MLP), get("/healthz"), get("/metrics")] {
        let t = Instant::now();
        assert_eq!(send(&app, req).await.status(), StatusCode::OK);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
    // The unread response is cut off after the idle timeout and the slot frees.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if metric(&app, "paraminit_jobs_in_flight").await == Some(0.0) {
            break;
        }
        assert!(Instant::now() < deadline, "slot still held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
    assert_eq!(
        send(&app, post("/v1/init", SEED_MLP)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_is_bounded_like_generation() {
    let (app, state) = app_with(Config {
        max_jobs: 1,
        ..test_config()
    });
    // Every planning permit taken (as by a long plan): the four planning routes answer 503 with
    // Retry-After at once; health, readiness and metrics stay fast.
    let held = state.planners.clone().acquire_owned().await.unwrap();
    let spec = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SEED_MLP)
    };
    for req in [
        post("/v1/plan", SEED_MLP),
        post("/v1/init", SEED_MLP),
        post("/v1/analyze", SEED_MLP),
        get(&format!("/v1/init?spec={spec}")),
    ] {
        let res = send(&app, req).await;
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()["retry-after"], "1");
        let v: serde_json::Value = serde_json::from_slice(&body_bytes(res).await).unwrap();
        assert_envelope(&v, "busy", None);
        assert!(v["error"]["message"].as_str().unwrap().contains("planning"));
    }
    for req in [get("/healthz"), get("/readyz"), get("/metrics")] {
        let t = Instant::now();
        assert_eq!(send(&app, req).await.status(), StatusCode::OK);
        assert!(t.elapsed() < Duration::from_millis(500));
    }
    drop(held);
    json_of(&app, post("/v1/plan", SEED_MLP), StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_cut_by_the_idle_timeout_ends_as_an_error() {
    use http_body_util::BodyExt;
    let (app, _) = app_with(Config {
        idle_timeout_secs: 1,
        ..test_config()
    });
    let res = send(
        &app,
        post("/v1/init", &raw_request(50_000_000, "\"normal\"")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    // Read nothing until the job has been cut off…
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&app, "paraminit_jobs_in_flight").await != Some(0.0) {
        assert!(Instant::now() < deadline, "never cut off");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // …then the body gives the buffered chunks and an error, never a clean end.
    let mut body = res.into_body();
    let mut ended_with_error = false;
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            ended_with_error = true;
            break;
        }
    }
    assert!(ended_with_error, "a truncated JSON document ended cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_computes_nothing() {
    use base64::Engine;
    let (app, state) = app_with(test_config());
    let req =
        r#"{"seed": 1, "tensors": [{"name": "q", "shape": [4096, 4096], "init": "orthogonal"}]}"#;
    let spec = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(req);
    let expected = {
        let r = paraminit::spec::parse_bytes(req.as_bytes()).unwrap();
        paraminit::pipeline::build(r, &paraminit::plan::Limits::UNLIMITED)
            .unwrap()
            .file_bytes
    };
    let head = Request::head(format!("/v1/init?spec={spec}&format=safetensors"))
        .body(Body::empty())
        .unwrap();
    let res = send(&app, head).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-length"],
        expected.to_string().as_str()
    );
    assert!(res.headers().get("etag").is_some());
    assert!(body_bytes(res).await.is_empty());
    // No job slot was taken and nothing was generated.
    assert_eq!(state.jobs.available_permits(), state.config.max_jobs);
    let text = String::from_utf8(body_bytes(send(&app, get("/metrics")).await).await).unwrap();
    assert!(!text.contains("paraminit_generated_bytes_total{"), "{text}");
}
