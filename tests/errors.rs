//! Bad input (SPEC §5): every class of error gives its stable code and JSON path, and no input
//! panics the parser, validator, planner or encoders.

mod support;

use paraminit::error::ErrorCode;
use paraminit::pipeline;
use paraminit::plan::Limits;
use paraminit::spec;
use proptest::prelude::*;
use serde_json::{Value, json};

fn err(body: &str) -> (ErrorCode, Option<String>) {
    let e = spec::parse_bytes(body.as_bytes())
        .and_then(|r| {
            pipeline::build(
                r,
                &Limits {
                    max_tensors: 1000,
                    max_elements: 1 << 30,
                    max_response_bytes: 1 << 33,
                },
            )
        })
        .expect_err(body);
    (e.code, e.path)
}

#[test]
fn each_error_class_has_its_code_and_path() {
    use ErrorCode::*;
    let cases: &[(&str, ErrorCode, Option<&str>)] = &[
        ("{\"seed\": 1,", MalformedJson, None),
        ("[1, 2]", InvalidType, None),
        ("{}", MissingField, Some("seed")),
        ("{\"seed\": -1}", SeedOutOfRange, Some("seed")),
        (
            "{\"seed\": 18446744073709551616}",
            SeedOutOfRange,
            Some("seed"),
        ),
        (
            "{\"seed\": \"18446744073709551616\"}",
            SeedOutOfRange,
            Some("seed"),
        ),
        ("{\"seed\": \"12a\"}", InvalidValue, Some("seed")),
        ("{\"seed\": 1.5}", SeedOutOfRange, Some("seed")),
        ("{\"seed\": true}", InvalidType, Some("seed")),
        ("{\"seed\": 1, \"colour\": 3}", UnknownField, Some("colour")),
        (
            "{\"seed\": 1, \"framework\": \"caffe\"}",
            InvalidValue,
            Some("framework"),
        ),
        (
            "{\"seed\": 1, \"dtype\": \"int8\"}",
            InvalidValue,
            Some("dtype"),
        ),
        ("{\"seed\": 1, \"layers\": {}}", InvalidType, Some("layers")),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 3, \"out_features\": 0}]}",
            InvalidValue,
            Some("layers[0].out_features"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 3, \"out_features\": -4}]}",
            InvalidValue,
            Some("layers[0].out_features"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 3, \"out_features\": \"4\"}]}",
            InvalidType,
            Some("layers[0].out_features"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"out_features\": 4}]}",
            MissingField,
            Some("layers[0].in_features"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 3, \"out_features\": 4, \"units\": 4}]}",
            ConflictingFields,
            Some("layers[0].units"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 3, \"out_features\": 4, \"activaton\": \"relu\"}]}",
            UnknownField,
            Some("layers[0].activaton"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 3, \"out_features\": 4}, {\"type\": \"dense\", \"in_features\": 5, \"out_features\": 2}]}",
            InconsistentSizes,
            Some("layers[1].in_features"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"transformer\"}]}",
            UnknownLayerType,
            Some("layers[0].type"),
        ),
        (
            "{\"seed\": 1, \"framework\": \"keras\", \"layers\": [{\"type\": \"lstm\", \"input_size\": 2, \"hidden_size\": 3, \"proj_size\": 2}]}",
            UnsupportedLayerType,
            Some("layers[0].proj_size"),
        ),
        (
            "{\"seed\": 1, \"hf_config\": {\"architectures\": [\"BartModel\"]}}",
            UnsupportedLayerType,
            Some("hf_config.architectures[0]"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 3, \"out_features\": 4, \"kernel_initializer\": \"he_nromal\"}]}",
            UnknownInitializer,
            Some("layers[0].kernel_initializer"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 3, \"out_features\": 4, \"kernel_initializer\": {\"name\": \"normal\", \"sdt\": 1}}]}",
            UnknownField,
            Some("layers[0].kernel_initializer.sdt"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 3, \"out_features\": 4, \"kernel_initializer\": {\"name\": \"uniform\", \"low\": 1, \"high\": 0}}]}",
            InvalidValue,
            Some("layers[0].kernel_initializer.high"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 3, \"out_features\": 4, \"kernel_initializer\": \"dirac\"}]}",
            InitializerMismatch,
            Some("layers[0].kernel_initializer"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 3, \"out_features\": 4, \"bias_initializer\": \"he_normal\"}]}",
            InitializerMismatch,
            Some("layers[0].bias_initializer"),
        ),
        (
            "{\"seed\": 1, \"tensors\": [{\"name\": \"v\", \"shape\": [7], \"init\": \"orthogonal\"}]}",
            InitializerMismatch,
            Some("tensors[0].init"),
        ),
        (
            "{\"seed\": 1, \"tensors\": [{\"name\": \"v\", \"shape\": [7], \"init\": \"xavier_uniform\"}]}",
            InitializerMismatch,
            Some("tensors[0].init"),
        ),
        (
            "{\"seed\": 1, \"tensors\": [{\"name\": \"v\", \"shape\": [7], \"init\": {\"name\": \"sparse\"}}]}",
            MissingField,
            Some("tensors[0].init.sparsity"),
        ),
        (
            "{\"seed\": 1, \"tensors\": [{\"name\": \"\", \"shape\": [7], \"init\": \"zeros\"}]}",
            InvalidValue,
            Some("tensors[0].name"),
        ),
        (
            "{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [7, 0], \"init\": \"zeros\"}]}",
            InvalidValue,
            Some("tensors[0].shape[1]"),
        ),
        (
            "{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [1099511627776, 1099511627776, 1099511627776], \"init\": \"zeros\"}]}",
            SizeOverflow,
            Some("tensors[0]"),
        ),
        (
            "{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [7], \"init\": \"zeros\"}, {\"name\": \"a\", \"shape\": [7], \"init\": \"ones\"}]}",
            DuplicateName,
            Some("tensors[1].name"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 3, \"out_features\": 4}], \"tensors\": [{\"name\": \"0.weight\", \"shape\": [7], \"init\": \"zeros\"}]}",
            DuplicateName,
            Some("tensors[0].name"),
        ),
        (
            "{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [7], \"init\": {\"name\": \"normal\", \"std\": 1e39}}]}",
            InvalidValue,
            Some("tensors[0].init"),
        ),
        (
            "{\"seed\": 1, \"dtype\": \"float16\", \"tensors\": [{\"name\": \"a\", \"shape\": [7], \"init\": {\"name\": \"constant\", \"value\": 70000}}]}",
            InvalidValue,
            Some("tensors[0]"),
        ),
        (
            "{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [40000, 40000], \"init\": \"zeros\"}]}",
            LimitExceeded,
            // Charged where the tensor is produced, so the error names it.
            Some("tensors[0]"),
        ),
        (
            "{\"seed\": 1, \"tensors\": [{\"name\": \"a\", \"shape\": [8192, 8192], \"init\": \"orthogonal\"}]}",
            LimitExceeded,
            Some("tensors[0]"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"conv2d\", \"in_channels\": 3, \"out_channels\": 4, \"kernel_size\": 3, \"groups\": 2}]}",
            InconsistentSizes,
            Some("layers[0].groups"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"conv2d\", \"in_channels\": 4, \"out_channels\": 4, \"kernel_size\": [3, 3, 3]}]}",
            InvalidValue,
            Some("layers[0].kernel_size"),
        ),
        (
            "{\"seed\": 1, \"layers\": [{\"type\": \"embedding\", \"num_embeddings\": 4, \"embedding_dim\": 2, \"padding_idx\": 4}]}",
            InvalidValue,
            Some("layers[0].padding_idx"),
        ),
    ];
    for (body, code, path) in cases {
        let (c, p) = err(body);
        assert_eq!((c, p.as_deref()), (*code, *path), "{body}");
        assert!(c.http_status() == 400 || c.http_status() == 422 || c.http_status() == 413);
    }
    // A 10^5-tensor request is refused by the tensor limit before any work.
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"name": format!("t{i}"), "shape": [1], "init": "zeros"}))
        .collect();
    assert_eq!(
        err(&json!({"seed": 1, "tensors": many}).to_string()).0,
        LimitExceeded
    );
}

#[test]
fn envelope_has_code_message_and_path() {
    let e = spec::parse_bytes(
        b"{\"seed\": 1, \"layers\": [{\"type\": \"dense\", \"in_features\": 0}]}",
    )
    .unwrap_err();
    let v = e.to_envelope();
    assert_eq!(v["error"]["code"], "invalid_value");
    assert_eq!(v["error"]["path"], "layers[0].in_features");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at least 1")
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e40f64..1e40).prop_map(Value::from),
        prop_oneof![
            Just("dense"),
            Just("conv2d"),
            Just("embedding"),
            Just("relu"),
            Just("he_normal"),
            Just("orthogonal"),
            Just("sparse"),
            Just("batch_norm"),
            Just("float16"),
            Just("keras"),
            Just("flax"),
            Just("dirac"),
            Just("x")
        ]
        .prop_map(Value::from),
        (0u64..70000).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("seed"),
            Just("layers"),
            Just("tensors"),
            Just("type"),
            Just("in_features"),
            Just("out_features"),
            Just("units"),
            Just("kernel_size"),
            Just("name"),
            Just("shape"),
            Just("init"),
            Just("kernel_initializer"),
            Just("groups"),
            Just("padding_idx"),
            Just("dtype"),
            Just("framework"),
            Just("sparsity"),
            Just("std"),
            Just("in_channels"),
            Just("out_channels"),
            Just("num_embeddings"),
            Just("embedding_dim"),
            Just("activation")
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(keys.prop_map(String::from), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Arbitrary, near-valid JSON never panics; whatever validates also plans and encodes.
    #[test]
    fn no_panic_from_input(mut v in arb_json(), seed in any::<u64>()) {
        if let Value::Object(m) = &mut v
            && (m.contains_key("layers") || m.contains_key("tensors"))
        {
            m.insert("seed".into(), json!(seed));
        }
        let limits = Limits { max_tensors: 100, max_elements: 1 << 16, max_response_bytes: 1 << 22 };
        if let Ok(req) = spec::parse(&v) && let Ok(p) = pipeline::build(req, &limits) {
            let p = std::sync::Arc::new(p);
            let file = support::safetensors_bytes(&p);
            prop_assert_eq!(file.len() as u64, p.file_bytes);
            let body: Value = serde_json::from_slice(&support::json_body(&p, 4096)).expect("valid JSON");
            prop_assert!(body["tensors"].is_array());
        }
    }
}

fn try_plan(req: &Value) -> Result<paraminit::plan::Plan, paraminit::error::SpecError> {
    spec::parse(req).and_then(|r| pipeline::build(r, &Limits::UNLIMITED))
}

fn raw(fw: &str, tensor: Value) -> Value {
    json!({"seed": 3, "framework": fw, "tensors": [tensor]})
}

/// Issue 11: where the fan rule refuses the shape (PyTorch and JAX need 2 dimensions), a raw
/// tensor needs only the fans its initializer reads; a missing one is named in the error.
#[test]
fn raw_tensor_needs_only_the_fans_its_initializer_reads() {
    use ErrorCode::InitializerMismatch;
    let ok = |fw: &str, t: Value| {
        try_plan(&raw(fw, t.clone())).unwrap_or_else(|e| panic!("{fw} {t}: {e}"))
    };
    let refused = |fw: &str, t: Value, missing: &str| {
        let e = try_plan(&raw(fw, t.clone())).expect_err(&t.to_string());
        assert_eq!(e.code, InitializerMismatch, "{t}");
        assert_eq!(e.path.as_deref(), Some("tensors[0].init"), "{t}");
        assert!(
            e.message.contains(&format!("give {missing} explicitly")),
            "{t}: {}",
            e.message
        );
    };
    let he = json!({"name": "w", "shape": [1000], "init": "he_normal", "fan_in": 10});
    for fw in ["pytorch", "flax"] {
        let p = ok(fw, he.clone());
        let info = p.tensors[0].resolved.info.to_json();
        assert_eq!(info["fan_in"], json!(10.0));
        // The unused fan nobody gave is not reported, nor invented in the canonical request.
        assert!(info.get("fan_out").is_none(), "{info}");
        let std = (2.0f64 / 10.0).sqrt() / paraminit::init::TRUNC_STD_CORRECTION;
        assert_eq!(info["std"], json!(std));
        let echoed: Value = serde_json::from_str(&p.canonical).unwrap();
        assert_eq!(echoed["tensors"][0]["fan_in"], json!(10));
        assert!(echoed["tensors"][0].get("fan_out").is_none());
        // An unused fan, when given, changes no value.
        let mut both = he.clone();
        both["fan_out"] = json!(999);
        let pb = support::plan(&raw(fw, both));
        let pa = std::sync::Arc::new(p);
        assert_eq!(support::values(&pa, "w"), support::values(&pb, "w"));
    }
    refused(
        "pytorch",
        json!({"name": "w", "shape": [1000], "init": "he_normal"}),
        "`fan_in`",
    );
    refused(
        "pytorch",
        json!({"name": "w", "shape": [1000], "init": "he_normal", "fan_out": 10}),
        "`fan_in`",
    );
    // PyTorch kaiming reads the fan of its mode.
    let kaiming_out = json!({"name": "kaiming_normal", "mode": "fan_out"});
    ok(
        "pytorch",
        json!({"name": "w", "shape": [64], "init": kaiming_out, "fan_out": 8}),
    );
    refused(
        "pytorch",
        json!({"name": "w", "shape": [64], "init": kaiming_out, "fan_in": 8}),
        "`fan_out`",
    );
    ok(
        "pytorch",
        json!({"name": "w", "shape": [64], "init": "kaiming_uniform", "fan_in": 8}),
    );
    // Xavier/Glorot and fan_avg read both.
    refused(
        "pytorch",
        json!({"name": "w", "shape": [64], "init": "xavier_uniform", "fan_in": 8}),
        "`fan_out`",
    );
    refused(
        "flax",
        json!({"name": "w", "shape": [64], "init": "glorot_uniform"}),
        "`fan_in` and `fan_out`",
    );
    refused(
        "flax",
        json!({"name": "w", "shape": [64], "init": {"name": "variance_scaling", "mode": "fan_avg"}, "fan_out": 8}),
        "`fan_in`",
    );
    ok(
        "flax",
        json!({"name": "w", "shape": [64], "init": {"name": "variance_scaling", "mode": "fan_out"}, "fan_out": 8}),
    );
    ok(
        "pytorch",
        json!({"name": "w", "shape": [64], "init": "xavier_normal", "fan_in": 8, "fan_out": 4}),
    );
    // `auto` (LeCun / kaiming linear) reads fan_in only.
    ok(
        "pytorch",
        json!({"name": "w", "shape": [64], "init": "auto", "fan_in": 8}),
    );
}

/// Issue 11: a truncated normal the float32 inverse-CDF sampler cannot represent (the lowest
/// draws' `u` below TRUNC_U_MIN, or one `u` for every draw) is refused; the rest is sampled.
#[test]
fn truncated_normal_far_in_the_tail_is_refused_or_right() {
    let tn = |init: Value| {
        raw(
            "pytorch",
            json!({"name": "w", "shape": [4000], "init": init}),
        )
    };
    let refused = |init: Value| {
        let e = try_plan(&tn(init.clone())).expect_err(&init.to_string());
        assert_eq!(e.code, ErrorCode::InvalidValue, "{init}");
        assert_eq!(e.path.as_deref(), Some("tensors[0].init"), "{init}");
        assert!(e.message.contains("cannot be sampled"), "{}", e.message);
    };
    // The case: every value was exactly 50.
    refused(json!({"name": "truncated_normal", "a": 50, "b": 60}));
    refused(json!({"name": "truncated_normal", "a": -60, "b": -50}));
    refused(json!({"name": "truncated_normal", "mean": 1, "std": 0.5, "a": 7.5, "b": 1000}));
    refused(json!({"name": "jax_truncated_normal", "stddev": 1, "lower": 20, "upper": 30}));
    // Narrower than one f32 step of the CDF where it lies: one value for every draw.
    refused(json!({"name": "truncated_normal", "a": 0, "b": 1e-10}));
    // Accepted windows come out right: at 4σ the lowest draw's u (2^-38.9) is above the fold.
    let p = support::plan(&tn(json!({"name": "truncated_normal", "a": 4, "b": 1000})));
    let v = support::values(&p, "w");
    assert!(v.iter().all(|&x| x >= 4.0), "below a");
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    // E[X | X > 4] = φ(4) / (1 − Φ(4)) ≈ 4.2256, sd ≈ 0.21 (standard error ≈ 0.0033).
    assert!((mean - 4.2256).abs() < 0.02, "mean {mean}");
    // At 6σ the lowest draws' u (2^-54) is below it: refused.
    refused(json!({"name": "truncated_normal", "a": 6, "b": 1000}));
    // The ordinary windows stay accepted.
    for init in [
        json!("truncated_normal"),
        json!({"name": "truncated_normal", "std": 0.02, "a": -2, "b": 2}),
        json!({"name": "jax_truncated_normal", "stddev": 1, "lower": -1, "upper": 5}),
    ] {
        try_plan(&tn(init.clone())).unwrap_or_else(|e| panic!("{init}: {e}"));
    }
}

/// μP's query_zero_init on a packed in_proj_weight whose initializer is whole-tensor
/// (orthogonal) used to plan and then panic in the generator (`unreachable!`); the ranges of
/// `WithConstantRange`/`Pieces` are typed element-wise sources now, so it is a 422.
#[test]
fn query_zero_init_on_a_whole_tensor_initializer_is_refused() {
    let req = json!({"seed": 1, "layers": [{"type": "multihead_attention", "embed_dim": 8,
        "num_heads": 2, "kernel_initializer": "orthogonal"}],
        "recipe": {"name": "mup", "base_width": 4}});
    let e = try_plan(&req).expect_err("planned");
    assert_eq!(e.code, ErrorCode::InitializerMismatch);
    assert_eq!(e.path.as_deref(), Some("recipe.query_zero_init"));
    // With a random initializer it still plans, and the query rows are zero.
    let mut ok = req.clone();
    ok["layers"][0]["kernel_initializer"] = json!("xavier_uniform");
    let p = support::plan(&ok);
    let v = support::values(&p, "0.in_proj_weight");
    assert!(v[..64].iter().all(|&x| x == 0.0));
    assert!(v[64..].iter().any(|&x| x != 0.0));
}
