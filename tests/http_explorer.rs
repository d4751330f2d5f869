//! The explorer page and `/v1/analyze` over HTTP.

mod common;

use axum::http::StatusCode;
use common::*;

#[tokio::test]
async fn explorer_page_is_self_contained() {
    let app = app();
    let res = send(&app, get("/")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = String::from_utf8(body_bytes(res).await).unwrap();
    for id in [
        "id=\"plan-table\"",
        "id=\"chart\"",
        "id=\"histograms\"",
        "id=\"download\"",
        "/v1/analyze",
    ] {
        assert!(html.contains(id), "{id}");
    }
    // No external resources: everything is embedded.
    // No external resources: the only URL is the SVG namespace.
    assert!(
        !html
            .replace("http://www.w3.org/2000/svg", "")
            .contains("://")
    );
}

#[tokio::test]
async fn analyze_reports_the_seed_mlp() {
    let app = app();
    let v = json_of(&app, post("/v1/analyze?batch=64", SEED_MLP), StatusCode::OK).await;
    assert_eq!(v["batch_size"], 64);
    assert_eq!(v["layers"].as_array().unwrap().len(), 3);
    assert!(["stable", "vanishing", "exploding"].contains(&v["verdict"].as_str().unwrap()));
    assert_eq!(v["histograms"].as_array().unwrap().len(), 7);
    let v = json_of(
        &app,
        post("/v1/analyze?batch=0", SEED_MLP),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_envelope(&v, "invalid_query", Some("?batch"));
    let v = json_of(
        &app,
        post("/v1/analyze", "{\"seed\": 1, \"layers\": 3}"),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_envelope(&v, "invalid_type", Some("layers"));
}

#[tokio::test]
async fn explorer_page_is_open_and_asks_for_the_token_when_the_service_has_one() {
    let (app, _) = app_with(paraminit::config::Config {
        api_token: Some("s3cret".into()),
        ..test_config()
    });
    let res = send(&app, get("/")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = String::from_utf8(body_bytes(res).await).unwrap();
    assert!(html.contains("<body data-auth=\"required\">"));
    assert!(html.contains("id=\"token\""));
    // Everything else still needs the token.
    assert_eq!(
        send(&app, post("/v1/analyze", SEED_MLP)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Without tokens the page does not ask for one.
    let html =
        String::from_utf8(body_bytes(send(&app_with(test_config()).0, get("/")).await).await)
            .unwrap();
    assert!(html.contains("<body>") && !html.contains("data-auth"));
}
