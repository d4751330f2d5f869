//! `openapi.yaml` describes exactly the routes the router serves, every error code the service
//! returns, and every request example in it is accepted.

mod common;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use yaml_rust2::{Yaml, YamlLoader};

fn doc() -> Yaml {
    YamlLoader::load_from_str(paraminit::http::OPENAPI_YAML)
        .unwrap()
        .remove(0)
}

fn to_json(y: &Yaml) -> serde_json::Value {
    use serde_json::{Value, json};
    match y {
        Yaml::Real(s) => json!(s.parse::<f64>().unwrap()),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => json!(s),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_string(), to_json(v)))
                .collect(),
        ),
        Yaml::Null => Value::Null,
        other => panic!("unexpected YAML node {other:?}"),
    }
}

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

#[test]
fn document_is_openapi_3_1() {
    let d = doc();
    assert!(d["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(d["info"]["title"].as_str().is_some());
}

#[tokio::test]
async fn paths_match_the_router() {
    let d = doc();
    let mut documented = BTreeSet::new();
    for (path, item) in d["paths"].as_hash().unwrap() {
        for (m, _) in item.as_hash().unwrap() {
            let m = m.as_str().unwrap();
            assert!(METHODS.contains(&m), "{m}");
            documented.insert((m.to_uppercase(), path.as_str().unwrap().to_string()));
        }
    }
    let served: BTreeSet<(String, String)> = paraminit::http::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);

    // Every listed route is served by the router (neither 404 nor 405), and other methods on
    // those paths are 405.
    let app = app();
    for (m, p) in &served {
        // GET /v1/init carries the request in the query.
        let uri = if m == "GET" && p == "/v1/init" {
            use base64::Engine;
            format!(
                "{p}?spec={}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SEED_MLP)
            )
        } else {
            p.clone()
        };
        let req = Request::builder()
            .method(m.as_str())
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(SEED_MLP))
            .unwrap();
        let res = send(&app, req).await;
        assert_eq!(res.status(), StatusCode::OK, "{m} {p}");
        let _ = body_bytes(res).await;
        for other in ["PUT", "DELETE", "PATCH"] {
            let req = Request::builder()
                .method(other)
                .uri(p)
                .body(Body::empty())
                .unwrap();
            assert_eq!(
                send(&app, req).await.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{other} {p}"
            );
        }
    }
}

#[test]
fn every_error_code_is_documented() {
    let d = doc();
    let codes: BTreeSet<String> =
        d["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
    let want: BTreeSet<String> = paraminit::error::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    assert_eq!(codes, want);
}

#[tokio::test]
async fn every_request_example_is_accepted() {
    let d = doc();
    let examples =
        d["components"]["requestBodies"]["InitRequest"]["content"]["application/json"]["examples"]
            .as_hash()
            .unwrap()
            .clone();
    assert!(examples.len() >= 3);
    let app = app();
    for (name, ex) in &examples {
        let body = to_json(&ex["value"]).to_string();
        for route in ["/v1/plan", "/v1/init", "/v1/init?format=safetensors"] {
            let res = send(&app, post(route, &body)).await;
            let status = res.status();
            let bytes = body_bytes(res).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "example {:?} on {route}: {}",
                name.as_str(),
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}
