//! Regression corpus of hostile and near-valid inputs (issue 7): each one is answered with an
//! error envelope or a valid plan, never a panic, and within bounded work.

mod common;

use axum::http::StatusCode;
use common::*;
use paraminit::plan::{self, Limits};
use paraminit::spec;
use serde_json::{Value, json};

fn outcome(body: &[u8]) -> Result<usize, (String, Option<String>)> {
    let limits = Limits {
        max_tensors: 100_000,
        max_elements: 1 << 32,
        max_response_bytes: 1 << 36,
    };
    spec::parse_bytes(body)
        .and_then(|r| plan::build(r, &limits))
        .map(|p| p.tensors.len())
        .map_err(|e| (e.code.as_str().to_string(), e.path))
}

#[test]
fn nasty_cases() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_obj = format!(
        "{{\"seed\": 1, \"layers\": {}1{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let cases: Vec<(String, &str)> = vec![
        (deep, "malformed_json"),
        (deep_obj, "malformed_json"),
        ("{\"seed\": 1e400}".into(), "malformed_json"),
        ("{\"seed\": 123456789012345678901234567890}".into(), "seed_out_of_range"),
        ("{\"seed\": NaN}".into(), "malformed_json"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [2], \"init\": {\"name\": \"constant\", \"value\": Infinity}}]}".into(), "malformed_json"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [2], \"init\": {\"name\": \"normal\", \"std\": 1e308}}]}".into(), "invalid_value"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [2], \"init\": {\"name\": \"uniform\", \"low\": -1e308, \"high\": 1e308}}]}".into(), "invalid_value"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"\", \"shape\": [2], \"init\": \"zeros\"}]}".into(), "invalid_value"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\\u0000b\", \"shape\": [2], \"init\": \"zeros\"}]}".into(), "invalid_value"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [4294967296, 4294967296, 4294967296], \"init\": \"zeros\"}]}".into(), "size_overflow"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [2199023255552], \"init\": \"zeros\"}]}".into(), "invalid_value"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [1099511627776, 1099511627776], \"init\": \"zeros\"}]}".into(), "size_overflow"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [1099511627776, 1024], \"init\": \"zeros\"}]}".into(), "limit_exceeded"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [2.5], \"init\": \"zeros\"}]}".into(), "invalid_value"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [-2], \"init\": \"zeros\"}]}".into(), "invalid_value"),
        ("{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 1e3, \"out_features\": 2}]}".into(), "invalid_value"),
        // Names that collide only after framework renaming: a named layer `0` and layer 0.
        ("{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 2, \"out_features\": 2}, {\"type\": \"dense\", \"name\": \"0\", \"out_features\": 2}]}".into(), "duplicate_name"),
        ("{\"seed\": 1, \"framework\": \"keras\", \"layers\": [{\"type\": \"dense\", \"in_features\": 2, \"out_features\": 2}, {\"type\": \"dense\", \"name\": \"dense\", \"out_features\": 2}]}".into(), "duplicate_name"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [2], \"init\": \"zeros\", \"init\": \"ones\"}]}".into(), "ok"),
        ("{\"seed\": 1, \"seed\": 2}".into(), "ok"),
        ("\u{feff}{\"seed\": 1}".into(), "malformed_json"),
        ("".into(), "malformed_json"),
        ("null".into(), "invalid_type"),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"παράμετρος/日本語/🙂\", \"shape\": [3], \"init\": \"ones\"}]}".into(), "ok"),
        ("{\"seed\": 1, \"layers\": [{\"type\": \"conv3d\", \"in_channels\": 1099511627776, \"out_channels\": 1099511627776, \"kernel_size\": 1099511627776}]}".into(), "size_overflow"),
        ("{\"seed\": 1, \"hf_config\": {\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 1099511627776, \"num_key_value_heads\": 1099511627776, \"head_dim\": 1099511627776, \"num_hidden_layers\": 1, \"vocab_size\": 10, \"intermediate_size\": 8}}".into(), "size_overflow"),
    ];
    for (body, want) in cases {
        let got = outcome(body.as_bytes());
        let code = match &got {
            Ok(_) => "ok".to_string(),
            Err((c, _)) => c.clone(),
        };
        assert_eq!(code, want, "{}", &body[..body.len().min(120)]);
    }
}

#[test]
fn many_tiny_tensors_are_refused_by_the_limit_before_work() {
    let tensors: Vec<Value> = (0..200_000)
        .map(|i| json!({"name": format!("t{i}"), "shape": [1], "init": "zeros"}))
        .collect();
    let body = serde_json::to_vec(&json!({"seed": 1, "tensors": tensors})).unwrap();
    let err = spec::parse_bytes(&body)
        .and_then(|r| {
            plan::build(
                r,
                &Limits {
                    max_tensors: 100_000,
                    ..Limits::UNLIMITED
                },
            )
        })
        .unwrap_err();
    assert_eq!(err.code.as_str(), "limit_exceeded");
}

#[tokio::test]
async fn hostile_bodies_over_http_are_envelopes() {
    let app = app();
    for (body, status) in [
        ("{\"seed\": 1, \"layers\": [".to_string(), StatusCode::BAD_REQUEST),
        (format!("{}{}", "[".repeat(20_000), "]".repeat(20_000)), StatusCode::BAD_REQUEST),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [1099511627776, 1099511627776], \"init\": \"normal\"}]}".into(), StatusCode::UNPROCESSABLE_ENTITY),
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [1099511627776, 1024], \"init\": \"normal\"}]}".into(), StatusCode::PAYLOAD_TOO_LARGE),
        ("{\"seed\": \"-1\"}".into(), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let v = json_of(&app, post("/v1/init", &body), status).await;
        assert!(v["error"]["code"].is_string(), "{v}");
    }
}
