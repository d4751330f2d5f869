//! Regression corpus of hostile and near-valid inputs (issue 7): each one is answered with an
//! error envelope or a valid plan, never a panic, and within bounded work.

mod common;

use axum::http::StatusCode;
use common::*;
use paraminit::pipeline;
use paraminit::plan::Limits;
use paraminit::spec;
use serde_json::{Value, json};

fn outcome(body: &[u8]) -> Result<usize, (String, Option<String>)> {
    let limits = Limits {
        max_tensors: 100_000,
        max_elements: 1 << 32,
        max_response_bytes: 1 << 36,
    };
    spec::parse_bytes(body)
        .and_then(|r| pipeline::build(r, &limits))
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
        ("{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [2], \"init\": \"zeros\", \"init\": \"ones\"}]}".into(), "malformed_json"),
        // Duplicate keys are refused (issue 11), not resolved by "last wins".
        ("{\"seed\": 1, \"seed\": 2}".into(), "malformed_json"),
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
            pipeline::build(
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

mod http_property {
    use super::common::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn arb_body() -> impl Strategy<Value = Vec<u8>> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e30f64..1e30).prop_map(Value::from),
            prop_oneof![
                Just("dense"),
                Just("conv1d"),
                Just("lstm"),
                Just("he_normal"),
                Just("orthogonal"),
                Just("bfloat16"),
                Just("keras"),
                Just("*")
            ]
            .prop_map(Value::from),
            (0u64..5000).prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(3, 32, 5, |inner| {
            let keys = prop_oneof![
                Just("seed"),
                Just("layers"),
                Just("tensors"),
                Just("type"),
                Just("in_features"),
                Just("out_features"),
                Just("name"),
                Just("shape"),
                Just("init"),
                Just("only"),
                Just("shard"),
                Just("rank"),
                Just("world_size"),
                Just("hidden_size"),
                Just("kernel_size"),
                Just("dtype"),
                Just("framework")
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(keys.prop_map(String::from), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        prop_oneof![
            value.prop_map(|v| serde_json::to_vec(&json!({"seed": 1, "layers": v})).unwrap()),
            prop::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// At the HTTP layer every answer is a valid response or a 4xx envelope, never a 5xx.
        #[test]
        fn http_answers_are_envelopes_or_responses(body in arb_body(), route in prop_oneof![Just("/v1/init"), Just("/v1/plan"), Just("/v1/init?format=safetensors")]) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (status, bytes) = rt.block_on(async {
                let app = app();
                let res = send(&app, post(route, std::str::from_utf8(&body).unwrap_or("\u{fffd}"))).await;
                let status = res.status();
                (status, body_bytes(res).await)
            });
            prop_assert!(!status.is_server_error(), "{status}");
            if status.is_client_error() {
                let v: Value = serde_json::from_slice(&bytes).expect("error bodies are JSON");
                prop_assert!(v["error"]["code"].is_string());
            }
        }
    }
}
