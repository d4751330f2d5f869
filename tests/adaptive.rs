//! `recipe: adaptive` (data-free LSUV): every layer's forward signal is calibrated to the
//! target std by the measured pass, the scales are in the plan, they reproduce bit for bit
//! across thread counts, and what it cannot calibrate is refused.

mod support;

use paraminit::analyze::analyze;
use serde_json::{Value, json};

fn mlp(init: Value, recipe: Value) -> Value {
    let mut layers = vec![
        json!({"type": "dense", "in_features": 128, "out_features": 256, "activation": "relu", "kernel_initializer": init.clone(), "bias_initializer": "zeros"}),
    ];
    for _ in 0..10 {
        layers.push(json!({"type": "dense", "out_features": 256, "activation": "relu", "kernel_initializer": init.clone(), "bias_initializer": "zeros"}));
    }
    layers.push(json!({"type": "dense", "out_features": 10}));
    json!({"seed": 5, "layers": layers, "recipe": recipe})
}

fn scales(plan: &paraminit::plan::Plan) -> Vec<(String, f64)> {
    let pj = plan.to_json();
    pj["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["init"]["recipe"]["name"] == "adaptive")
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["init"]["recipe"]["scale"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn adaptive_rescues_a_badly_scaled_stack() {
    let bad = json!({"name": "normal", "std": 0.3});
    let before = analyze(support::plan(&mlp(bad.clone(), Value::Null)), 256).expect("analyze");
    assert_eq!(before["verdict"], "exploding");
    let plan = support::plan(&mlp(bad, json!("adaptive")));
    let s = scales(&plan);
    assert_eq!(s.len(), 12, "every weight is calibrated: {s:?}");
    // The measured pass of /v1/analyze (a different seeded batch) sees unit pre-activations.
    let after = analyze(plan, 256).expect("analyze");
    assert_eq!(after["verdict"], "stable", "{}", after["cumulative"]);
    for l in after["layers"].as_array().unwrap() {
        let m = l["forward"]["measured_std"].as_f64().unwrap();
        assert!((0.85..1.15).contains(&m), "layer {}: std {m}", l["layer"]);
    }
}

#[test]
fn scales_follow_the_input_statistics_and_target() {
    let plan1 = support::plan(&mlp(json!("kaiming_normal"), json!("adaptive")));
    let plan2 = support::plan(&mlp(
        json!("kaiming_normal"),
        json!({"name": "adaptive", "input_std": 2.0, "target_std": 0.5}),
    ));
    let (a, b) = (scales(&plan1), scales(&plan2));
    // W·(2x) is exactly 2·W·x in binary floating point: the first scale is exactly a quarter.
    assert_eq!(b[0].1, a[0].1 / 4.0);
    // The plan values are the base init's times the scale.
    let base = support::plan(&mlp(json!("kaiming_normal"), Value::Null));
    let w0 = support::values(&base, &a[1].0);
    let w1 = support::values(&plan1, &a[1].0);
    for (x, y) in w0.iter().zip(&w1).take(1000) {
        assert!((*y as f64 - *x as f64 * a[1].1).abs() <= 1e-6 * (x.abs() as f64 * a[1].1) + 1e-12);
    }
}

#[test]
fn scales_are_bit_identical_across_thread_counts() {
    let req = mlp(json!("glorot_uniform"), json!("adaptive"));
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let p = support::plan(&req);
                (p.to_json(), support::safetensors_bytes(&p))
            })
    };
    let (p1, f1) = run(1);
    for t in [2, 3] {
        let (p, f) = run(t);
        assert_eq!(p, p1, "{t} threads");
        assert!(f == f1, "{t} threads: file differs");
    }
    // Sharded and `only` requests are slices of the full calibration.
    let mut sh = req.clone();
    sh["shard"] = json!({"rank": 1, "world_size": 2});
    let part = support::plan(&sh);
    let full = support::plan(&req);
    let name = "3.weight";
    let t = &part.tensors[support::tensor_index(&part, name)];
    let cols = t.shape[1] as usize;
    let start = t.slice.as_ref().unwrap().start as usize;
    assert_eq!(
        support::values(&part, name),
        &support::values(&full, name)[start * cols..(start + t.shape[0] as usize) * cols]
    );
}

#[test]
fn adaptive_refuses_what_it_cannot_calibrate() {
    let err = |req: Value| {
        let r = paraminit::spec::parse(&req).unwrap();
        paraminit::pipeline::build(r, &paraminit::plan::Limits::UNLIMITED).unwrap_err()
    };
    let e = err(json!({"seed": 1, "layers": [
        {"type": "dense", "in_features": 8, "out_features": 8},
        {"type": "lstm", "hidden_size": 8}], "recipe": "adaptive"}));
    assert_eq!(e.path.as_deref(), Some("layers[1]"));
    let e = err(
        json!({"seed": 1, "hf_config": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 50}, "recipe": "adaptive"}),
    );
    assert_eq!(e.path.as_deref(), Some("recipe"));
    // The work bound is checked before the pass: 128 × 2^24 weights is over it.
    let e = err(
        json!({"seed": 1, "layers": [{"type": "dense", "in_features": 4096, "out_features": 4096},
        {"type": "dense", "out_features": 4096}], "recipe": "adaptive"}),
    );
    assert_eq!(e.code.as_str(), "limit_exceeded");
}
