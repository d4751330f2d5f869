//! Issue 11, "bounded by construction", at the core: limits are charged where tensors are
//! created (requests of a few hundred bytes that used to grow the server to many GB are
//! refused before their loops run), `analyze` has its own work bound, and no name can make a
//! corrupt safetensors file (every file is re-read by the `safetensors` crate).

mod support;

use std::time::Instant;

use paraminit::pipeline;
use paraminit::plan::{self, Limits};
use paraminit::spec;
use serde_json::{Value, json};

const DEFAULT: Limits = Limits {
    max_tensors: 100_000,
    max_elements: 1_000_000_000_000,
    max_response_bytes: 1 << 41,
};

fn refused(req: &Value) -> (String, String, String) {
    let r = spec::parse(req).unwrap_or_else(|e| panic!("parse: {e}"));
    let start = Instant::now();
    let e = pipeline::build(r, &DEFAULT).expect_err("must be refused");
    // Not a timing assertion of speed: a refusal that took seconds means the loop ran.
    assert!(
        start.elapsed().as_secs() < 5,
        "refusal took {:?}",
        start.elapsed()
    );
    (
        e.code.as_str().to_string(),
        e.path.unwrap_or_default(),
        e.message,
    )
}

#[test]
fn huge_hf_layer_count_is_refused_before_the_loop() {
    let (code, path, msg) = refused(&json!({"seed": 1, "hf_config": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 1_000_000_000u64,
        "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 100}}));
    assert_eq!(code, "limit_exceeded");
    assert_eq!(path, "hf_config.num_hidden_layers");
    assert!(msg.contains("PARAMINIT_MAX_TENSORS"), "{msg}");
    for (arch, key) in [
        ("GPT2LMHeadModel", "n_layer"),
        ("BertModel", "num_hidden_layers"),
    ] {
        let (code, path, _) = refused(&json!({"seed": 1, "hf_config": {
            "architectures": [arch], key: 1_000_000_000u64}}));
        assert_eq!(
            (code.as_str(), path.as_str()),
            ("limit_exceeded", format!("hf_config.{key}").as_str())
        );
    }
}

#[test]
fn huge_recurrent_stacks_are_refused_before_the_loop() {
    for fw in ["pytorch", "keras", "flax"] {
        let (code, path, _) = refused(&json!({"seed": 1, "framework": fw, "layers": [
            {"type": "lstm", "input_size": 4, "hidden_size": 4, "num_layers": 1_000_000_000u64}]}));
        assert_eq!(
            (code.as_str(), path.as_str()),
            ("limit_exceeded", "layers[0].num_layers"),
            "{fw}"
        );
        let (code, path, _) = refused(&json!({"seed": 1, "framework": fw, "layers": [
            {"type": "gru", "input_size": 1, "hidden_size": 1, "num_layers": 3_000_000, "bidirectional": true}]}));
        assert_eq!(
            (code.as_str(), path.as_str()),
            ("limit_exceeded", "layers[0].num_layers"),
            "{fw}"
        );
    }
}

#[test]
fn limits_are_charged_as_tensors_are_produced() {
    let limits = Limits {
        max_tensors: 5,
        max_elements: 1000,
        max_response_bytes: 1 << 30,
    };
    // The sixth tensor is refused, and the error points at the layer that produced it.
    let layers: Vec<Value> = (0..10)
        .map(|_| json!({"type": "dense", "in_features": 2, "out_features": 2}))
        .collect();
    let r = spec::parse(&json!({"seed": 1, "layers": layers})).unwrap();
    let e = pipeline::build(r, &limits).unwrap_err();
    assert_eq!(e.code.as_str(), "limit_exceeded");
    assert_eq!(e.path.as_deref(), Some("layers[2]"));
    // Elements: the tensor that crosses the limit is named.
    let r = spec::parse(&json!({"seed": 1, "tensors": [
        {"name": "a", "shape": [600], "init": "zeros"}, {"name": "b", "shape": [600], "init": "zeros"}]})).unwrap();
    let e = pipeline::build(r, &limits).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.path.as_deref()),
        ("limit_exceeded", Some("tensors[1]"))
    );
    assert!(
        e.message.contains("PARAMINIT_MAX_ELEMENTS") && e.message.contains("`b`"),
        "{}",
        e.message
    );
}

#[test]
fn reserved_names_are_refused_with_a_reason() {
    let r = spec::parse(
        &json!({"seed": 1, "tensors": [{"name": "__metadata__", "shape": [2], "init": "zeros"}]}),
    )
    .unwrap();
    let e = pipeline::build(r, &DEFAULT).unwrap_err();
    assert_eq!(e.code.as_str(), "reserved_name");
    assert_eq!(e.path.as_deref(), Some("tensors[0].name"));
    assert!(e.message.contains("safetensors"), "{}", e.message);
    // A layer named so that one of its tensors would be called `__metadata__` cannot exist
    // (layer tensors always have a role suffix), but a Keras one is checked the same way.
    let r = spec::parse(&json!({"seed": 1, "framework": "keras", "tensors": [{"name": "__metadata__", "shape": [2, 2], "init": "orthogonal"}]})).unwrap();
    assert_eq!(
        pipeline::build(r, &DEFAULT).unwrap_err().code.as_str(),
        "reserved_name"
    );
}

#[test]
fn hostile_names_make_files_the_real_reader_reads() {
    let names = [
        "__metadata__x",
        "x__metadata__",
        " __metadata__",
        "__METADATA__",
        "a\"b",
        "back\\slash",
        "ünïcödé/名前",
        "{}",
        "[]",
        ":",
        "\u{2028}",
        "a/b.c",
        "\u{7f}x",
        "emoji 🦀",
        ",",
    ];
    let tensors: Vec<Value> = names
        .iter()
        .map(|n| json!({"name": n, "shape": [3], "init": {"name": "constant", "value": 1.5}}))
        .collect();
    let req = json!({"seed": 1, "tensors": tensors});
    let r = spec::parse(&req);
    // DEL is a control character: names with it are refused at parse time.
    let err = r.expect_err("\\u{7f} is refused");
    assert_eq!(err.code.as_str(), "invalid_value");
    let tensors: Vec<Value> = names
        .iter()
        .filter(|n| !n.contains('\u{7f}'))
        .map(|n| json!({"name": n, "shape": [3], "init": {"name": "constant", "value": 1.5}}))
        .collect();
    let plan = support::plan(&json!({"seed": 1, "tensors": tensors}));
    let bytes = support::safetensors_bytes(&plan);
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("the reference reader reads it");
    let mut got: Vec<String> = st.names().into_iter().map(String::from).collect();
    got.sort();
    let mut want: Vec<String> = names
        .iter()
        .filter(|n| !n.contains('\u{7f}'))
        .map(|n| n.to_string())
        .collect();
    want.sort();
    assert_eq!(got, want);
    for n in &want {
        let t = st.tensor(n).unwrap();
        assert_eq!(t.shape(), &[3]);
        let v: Vec<f32> = t
            .data()
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(v, vec![1.5; 3], "{n}");
    }
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert!(
        meta.metadata()
            .as_ref()
            .unwrap()
            .contains_key("paraminit.request")
    );
}

fn analyze_err(req: Value) -> (String, String, String) {
    let plan = support::plan(&req);
    let e = paraminit::analyze::analyze(plan, 128).expect_err("must be refused");
    (
        e.code.as_str().to_string(),
        e.path.unwrap_or_default(),
        e.message,
    )
}

#[test]
fn analyze_has_its_own_bound_checked_before_allocation() {
    // 10^11 elements: inside the default element limit, far past what analyze may hold.
    let (code, path, msg) = analyze_err(json!({"seed": 1, "layers": [
        {"type": "dense", "in_features": 100_000, "out_features": 1_000_000}]}));
    assert_eq!(
        (code.as_str(), path.as_str()),
        ("limit_exceeded", "layers[0]")
    );
    assert!(
        msg.contains(&paraminit::analyze::MAX_ANALYZED_WEIGHTS.to_string()),
        "{msg}"
    );
    let (code, ..) = analyze_err(json!({"seed": 1, "layers": [
        {"type": "dense", "in_features": 1, "out_features": 1_000_000_000u64}]}));
    assert_eq!(code, "limit_exceeded");
    // Wide activations with few weights: the activation bound.
    let (code, _, msg) = analyze_err(json!({"seed": 1, "layers": [
        {"type": "dense", "in_features": 4_000_000, "out_features": 1, "bias": false}]}));
    assert_eq!(code, "limit_exceeded");
    assert!(msg.contains("activations"), "{msg}");
}

#[test]
fn analyze_with_a_shard_is_an_error_not_a_panic() {
    let (code, path, _) = analyze_err(json!({"seed": 1, "layers": [
        {"type": "dense", "in_features": 4, "out_features": 6}, {"type": "dense", "out_features": 3}],
        "shard": {"world_size": 2, "rank": 1, "dim": 0}}));
    assert_eq!(
        (code.as_str(), path.as_str()),
        ("conflicting_fields", "shard")
    );
}

#[test]
fn analyze_of_many_small_layers_answers() {
    let mut layers = vec![json!({"type": "dense", "in_features": 1, "out_features": 1})];
    layers.extend((1..20_000).map(|_| json!({"type": "dense", "out_features": 1})));
    let plan = support::plan(&json!({"seed": 1, "layers": layers}));
    let r = paraminit::analyze::analyze(plan.clone(), 8).unwrap();
    assert_eq!(r["layers"].as_array().unwrap().len(), 20_000);
    let h = paraminit::analyze::histograms(plan);
    let sampled: u64 = h
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["sampled"].as_u64().unwrap())
        .sum();
    assert!(sampled <= paraminit::analyze::HISTOGRAM_BUDGET as u64);
}

#[test]
fn a_cancelled_plan_stops_at_the_next_tensor() {
    let r =
        spec::parse(&json!({"seed": 1, "tensors": [{"name": "a", "shape": [2], "init": "zeros"}]}))
            .unwrap();
    let cancel = plan::Cancel::new();
    {
        let _guard = plan::CancelOnDrop(cancel.clone());
    }
    assert!(cancel.is_cancelled());
    assert!(pipeline::build_cancellable(r.clone(), &DEFAULT, &cancel).is_err());
    assert!(pipeline::build_cancellable(r, &DEFAULT, &plan::Cancel::new()).is_ok());
}

#[test]
fn glob_patterns_are_bounded_and_compiled_once() {
    let long = "a*".repeat(50_000);
    let e = spec::parse(&json!({"seed": 1, "tensors": [{"name": "a", "shape": [1], "init": "zeros"}], "only": [long]})).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.path.as_deref()),
        ("limit_exceeded", Some("only[0]"))
    );
    assert!(
        e.message.len() < 200,
        "the message must not repeat the pattern"
    );
    let e = spec::parse(
        &json!({"seed": 1, "tensors": [{"name": "a", "shape": [2], "init": "zeros"}],
        "shard": {"world_size": 2, "rank": 0, "dims": {long.clone(): 0}}}),
    )
    .unwrap_err();
    assert_eq!(e.code.as_str(), "limit_exceeded");
    assert!(e.path.unwrap().len() < 100);
    let many: Vec<String> = (0..paraminit::spec::MAX_PATTERNS + 1)
        .map(|i| format!("t{i}"))
        .collect();
    let e = spec::parse(&json!({"seed": 1, "tensors": [{"name": "a", "shape": [1], "init": "zeros"}], "only": many})).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.path.as_deref()),
        ("limit_exceeded", Some("only"))
    );
    // The largest allowed list against many tensors answers, and `only` still means what it
    // meant: every pattern must match, the kept tensors are the matching ones.
    let tensors: Vec<Value> = (0..4096)
        .map(|i| json!({"name": format!("t{i}"), "shape": [1], "init": "zeros"}))
        .collect();
    let mut only: Vec<String> = (0..4095).map(|i| format!("t{i}")).collect();
    only.push("t409?".into());
    let p = support::plan(&json!({"seed": 1, "tensors": tensors.clone(), "only": only}));
    assert_eq!(p.tensors.len(), 4096);
    let r = spec::parse(&json!({"seed": 1, "tensors": tensors, "only": ["t1", "nope*"]})).unwrap();
    let e = pipeline::build(r, &DEFAULT).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.path.as_deref()),
        ("no_match", Some("only[1]"))
    );
}

#[test]
fn duplicate_keys_are_refused() {
    for body in [
        r#"{"seed": 1, "seed": 2}"#,
        r#"{"seed": 1, "tensors": [{"name": "a", "name": "b", "shape": [1], "init": "zeros"}]}"#,
        r#"{"seed": 1, "hf_config": {"model_type": "llama", "model_type": "gpt2"}}"#,
    ] {
        let e = spec::parse_bytes(body.as_bytes()).unwrap_err();
        assert_eq!(e.code.as_str(), "malformed_json", "{body}");
        assert!(e.message.contains("duplicate key"), "{}", e.message);
    }
    // Same key in different objects is fine; numbers parse exactly as before.
    let r = spec::parse_bytes(br#"{"seed": 18446744073709551615, "tensors": [{"name": "a", "shape": [1], "init": {"name": "constant", "value": 0.1}}]}"#).unwrap();
    assert_eq!(r.seed, u64::MAX);
}

#[test]
fn adaptive_of_many_small_layers_answers() {
    // The calibration's layer → tensor lookup is indexed (it scanned every tensor per layer).
    let mut layers = vec![json!({"type": "dense", "in_features": 1, "out_features": 1})];
    layers.extend((1..50_000).map(|_| json!({"type": "dense", "out_features": 1})));
    let r = spec::parse(&json!({"seed": 1, "layers": layers, "recipe": "adaptive"})).unwrap();
    let start = Instant::now();
    let p = pipeline::build(r, &DEFAULT).unwrap();
    assert_eq!(p.tensors.len(), 100_000);
    eprintln!("adaptive over 50,000 layers: {:?}", start.elapsed());
}

#[test]
fn adaptive_activations_are_bounded_before_the_pass() {
    // 2^23 weights pass the work bound (128 × 2^23 = 2^30), but a batch of 128 through a
    // 1 → 2^23 layer would hold 8 GB of activations.
    let (code, path, msg) = refused(&json!({"seed": 1, "recipe": "adaptive", "layers": [
        {"type": "dense", "in_features": 1, "out_features": 8_388_608}]}));
    assert_eq!(
        (code.as_str(), path.as_str()),
        ("limit_exceeded", "layers[0]")
    );
    assert!(msg.contains("activation"), "{msg}");
}
