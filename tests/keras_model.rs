//! `keras_model`: real Keras 3.15 `model.to_json()` output (tests/fixtures/keras, written by
//! scripts/keras_fixtures.py with the real keras) gives exactly the `model.weights` paths and
//! shapes Keras reported for that model, with each weight's initializer from its config.

mod support;

use paraminit::spec;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let p = format!(
        "{}/tests/fixtures/keras/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

const FIXTURES: &[&str] = &[
    "mlp",
    "cnn",
    "conv1d3d",
    "text",
    "rnns",
    "einsum",
    "nested",
    "mha_cross",
];

#[test]
fn names_and_shapes_are_the_model_weights_keras_reports() {
    for f in FIXTURES {
        let fx = fixture(f);
        let p = support::plan(&json!({"seed": 5, "keras_model": fx["model"]}));
        let mut got: Vec<(String, Vec<u64>)> = p
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        got.sort();
        let mut want: Vec<(String, Vec<u64>)> = fx["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["path"].as_str().unwrap().to_string(),
                    w["shape"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_u64().unwrap())
                        .collect(),
                )
            })
            .collect();
        want.sort();
        assert_eq!(got, want, "fixture {f}");
        assert_eq!(p.request.framework, spec::Framework::Keras);
    }
}

fn init_of(p: &paraminit::plan::Plan, name: &str) -> Value {
    let t = &p.tensors[support::tensor_index(p, name)];
    t.resolved.info.to_json()
}

#[test]
fn initializers_come_from_the_layer_configs() {
    let p = support::plan(&json!({"seed": 5, "keras_model": fixture("mlp")["model"]}));
    // Dense(8, kernel_initializer="he_normal"): truncated, std √(2/10)/0.8796…
    let k = init_of(&p, "sequential/dense/kernel");
    assert_eq!(k["name"], "he_normal");
    assert_eq!(k["fan_in"], 10.0);
    // Default kernel: GlorotUniform, bias Zeros.
    assert_eq!(
        init_of(&p, "sequential/dense_1/kernel")["name"],
        "glorot_uniform"
    );
    assert_eq!(init_of(&p, "sequential/dense_1/bias")["name"], "zeros");
    let p = support::plan(&json!({"seed": 5, "keras_model": fixture("cnn")["model"]}));
    let k = init_of(&p, "sequential/dense/kernel");
    assert_eq!(k["params"]["mode"], "fan_out");
    assert_eq!(k["params"]["distribution"], "uniform");
    assert_eq!(
        init_of(&p, "sequential/batch_normalization/moving_variance")["name"],
        "ones"
    );
    let p = support::plan(&json!({"seed": 5, "keras_model": fixture("text")["model"]}));
    // Embedding default "uniform" = RandomUniform(-0.05, 0.05).
    let e = init_of(&p, "embedding/embeddings");
    assert_eq!(e["name"], "random_uniform");
    assert_eq!(e["low"], -0.05);
    // MHA kernels: GlorotUniform with the einsum axes' fans (16 in, 2·8 out).
    let q = init_of(&p, "multi_head_attention/query/kernel");
    assert_eq!(
        (q["fan_in"].as_f64(), q["fan_out"].as_f64()),
        (Some(16.0), Some(16.0))
    );
    let o = init_of(&p, "multi_head_attention/attention_output/kernel");
    assert_eq!(
        (o["fan_in"].as_f64(), o["fan_out"].as_f64()),
        (Some(16.0), Some(16.0))
    );
    let p = support::plan(&json!({"seed": 5, "keras_model": fixture("einsum")["model"]}));
    // EinsumDense "abc,cde->abde" kernel [5, 2, 3] with lecun_normal: fan_in 5 (axis c).
    let k = init_of(&p, "einsum_dense_1/kernel");
    assert_eq!(
        (k["fan_in"].as_f64(), k["fan_out"].as_f64()),
        (Some(5.0), Some(6.0))
    );
}

#[test]
fn seeds_in_configs_are_ignored_and_the_request_seed_decides() {
    let mut m = fixture("mlp")["model"].clone();
    let a = support::plan(&json!({"seed": 5, "keras_model": m.clone()}));
    m["config"]["layers"][1]["config"]["kernel_initializer"]["config"]["seed"] = json!(1234);
    let b = support::plan(&json!({"seed": 5, "keras_model": m.clone()}));
    let c = support::plan(&json!({"seed": 6, "keras_model": m}));
    let (va, vb, vc) = (
        support::values(&a, "sequential/dense/kernel"),
        support::values(&b, "sequential/dense/kernel"),
        support::values(&c, "sequential/dense/kernel"),
    );
    assert_eq!(va, vb);
    assert_ne!(va, vc);
}

#[test]
fn the_canonical_request_reproduces_the_file() {
    for f in FIXTURES {
        let p = support::plan(&json!({"seed": 9, "keras_model": fixture(f)["model"]}));
        let canonical: Value = serde_json::from_str(&p.canonical).unwrap();
        assert_eq!(canonical["framework"], "keras");
        let q = support::plan(&canonical);
        assert_eq!(
            support::safetensors_bytes(&p),
            support::safetensors_bytes(&q),
            "{f}"
        );
    }
}

#[test]
fn orthogonal_is_keras_orthogonal_on_prod_shape_minus_last_by_last() {
    // Keras Orthogonal flattens to (prod(shape[:-1]), shape[-1]): a Conv1D kernel [3, 4, 6]
    // is a 12×6 matrix with orthonormal columns.
    let p = support::plan(&json!({"seed": 5, "keras_model": fixture("conv1d3d")["model"]}));
    let v = support::values(&p, "conv1d/kernel");
    let (rows, cols) = (12usize, 6usize);
    for a in 0..cols {
        for b in 0..cols {
            let dot: f64 = (0..rows)
                .map(|r| v[r * cols + a] as f64 * v[r * cols + b] as f64)
                .sum();
            let want = if a == b { 1.0 } else { 0.0 };
            assert!((dot - want).abs() < 1e-5, "columns {a},{b}: {dot}");
        }
    }
}

#[test]
fn errors_name_the_path() {
    let mut m = fixture("mlp")["model"].clone();
    m["config"]["layers"][1]["class_name"] = json!("Frobnicate");
    let e = spec::parse(&json!({"seed": 1, "keras_model": m})).unwrap_err();
    assert_eq!(e.code.as_str(), "unsupported_layer_type");
    assert_eq!(
        e.path.as_deref(),
        Some("keras_model.config.layers[1].class_name")
    );
    let e = spec::parse(
        &json!({"seed": 1, "framework": "flax", "keras_model": fixture("mlp")["model"]}),
    )
    .unwrap_err();
    assert_eq!(e.path.as_deref(), Some("framework"));
    let e = spec::parse(
        &json!({"seed": 1, "keras_model": fixture("mlp")["model"], "layers": [{"type": "relu"}]}),
    )
    .unwrap_err();
    assert_eq!(e.code.as_str(), "conflicting_fields");
    // An unbuilt model: no build_config and no Input.
    let unbuilt = json!({"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Dense", "config": {"name": "d", "units": 3}}]}});
    let e = spec::parse(&json!({"seed": 1, "keras_model": unbuilt})).unwrap_err();
    assert_eq!(
        e.path.as_deref(),
        Some("keras_model.config.layers[0].build_config")
    );
    let mut m = fixture("mlp")["model"].clone();
    m["config"]["layers"][1]["config"]["kernel_initializer"] =
        json!({"class_name": "VarianceScaling", "config": {"mode": "fan_geo_avg"}});
    let e = spec::parse(&json!({"seed": 1, "keras_model": m})).unwrap_err();
    assert_eq!(
        e.path.as_deref(),
        Some("keras_model.config.layers[1].config.kernel_initializer.config.mode")
    );
}

#[test]
fn a_sequential_built_with_build_shape_propagates_shapes() {
    // keras.Sequential([Dense(3), LSTM(2)]).build((None, 5, 4)) writes no per-layer
    // build_config, only build_input_shape; Keras names it sequential/dense/…,
    // sequential/lstm/lstm_cell/… (checked with keras 3.15).
    let m = json!({"class_name": "Sequential", "config": {"name": "sequential", "build_input_shape": [null, 5, 4], "layers": [
        {"class_name": "Dense", "config": {"name": "dense", "units": 3}},
        {"class_name": "LSTM", "config": {"name": "lstm", "units": 2}}]}});
    let p = support::plan(&json!({"seed": 1, "keras_model": m}));
    let mut got: Vec<(String, Vec<u64>)> = p
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("sequential/dense/bias".to_string(), vec![3]),
            ("sequential/dense/kernel".to_string(), vec![4, 3]),
            ("sequential/lstm/lstm_cell/bias".to_string(), vec![8]),
            ("sequential/lstm/lstm_cell/kernel".to_string(), vec![3, 8]),
            (
                "sequential/lstm/lstm_cell/recurrent_kernel".to_string(),
                vec![2, 8]
            ),
        ]
    );
}
