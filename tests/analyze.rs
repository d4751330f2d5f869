//! Signal-propagation analysis on known cases (issue 8): deep ReLU MLPs are stable with He,
//! vanishing with Glorot or a small normal, exploding with a large normal; tanh with Glorot is
//! stable; SELU with LeCun normal stays near 1; predicted and measured ratios agree.

mod support;

use paraminit::analyze::analyze;
use serde_json::{Value, json};

fn mlp(depth: usize, width: u64, act: &str, init: Value) -> Value {
    let mut layers = vec![
        json!({"type": "dense", "in_features": width, "out_features": width, "activation": act, "kernel_initializer": init.clone(), "bias_initializer": "zeros"}),
    ];
    for _ in 1..depth {
        layers.push(json!({"type": "dense", "out_features": width, "activation": act, "kernel_initializer": init.clone(), "bias_initializer": "zeros"}));
    }
    json!({"seed": 1, "layers": layers})
}

fn run(req: &Value) -> Value {
    analyze(support::plan(req), 256).unwrap()
}

#[test]
fn verdicts_for_known_cases() {
    let he = run(&mlp(20, 256, "relu", json!("kaiming_normal")));
    assert_eq!(he["verdict"], "stable", "{}", he["cumulative"]);
    let glorot = run(&mlp(20, 256, "relu", json!("glorot_uniform")));
    assert_eq!(glorot["verdict"], "vanishing", "{}", glorot["cumulative"]);
    let s = glorot["suggestion"].as_str().unwrap();
    assert!(
        s.contains("glorot_uniform before relu") && s.contains("auto"),
        "{s}"
    );
    let small = run(&mlp(
        20,
        256,
        "relu",
        json!({"name": "normal", "std": 0.01}),
    ));
    assert_eq!(small["verdict"], "vanishing");
    let large = run(&mlp(20, 256, "relu", json!({"name": "normal", "std": 0.2})));
    assert_eq!(large["verdict"], "exploding");
    let tanh = run(&mlp(20, 256, "tanh", json!("xavier_uniform")));
    assert_eq!(tanh["verdict"], "stable", "{}", tanh["cumulative"]);
    let selu = run(&mlp(20, 256, "selu", json!("lecun_normal")));
    assert_eq!(selu["verdict"], "stable");
    let f = selu["cumulative"]["forward"].as_f64().unwrap();
    assert!((0.5..2.0).contains(&f), "selu cumulative forward {f}");
}

#[test]
fn predicted_and_measured_agree_for_wide_layers() {
    for (act, init) in [
        ("relu", json!("kaiming_normal")),
        ("tanh", json!("xavier_normal")),
        ("linear", json!("lecun_uniform")),
        ("gelu", json!("he_uniform")),
    ] {
        let r = run(&mlp(6, 1024, act, init.clone()));
        for l in r["layers"].as_array().unwrap() {
            for dir in ["forward", "backward"] {
                let p = l[dir]["predicted_ratio"].as_f64().unwrap();
                let m = l[dir]["measured_ratio"].as_f64().unwrap();
                assert!(
                    (m / p - 1.0).abs() < 0.1,
                    "{act} {init} layer {} {dir}: predicted {p}, measured {m}",
                    l["layer"]
                );
            }
        }
    }
}

#[test]
fn standalone_activations_conv_and_unsupported_layers() {
    let r = run(&json!({"seed": 2, "layers": [
        {"type": "conv2d", "in_channels": 16, "out_channels": 64, "kernel_size": 3, "kernel_initializer": "kaiming_normal"},
        {"type": "relu"},
        {"type": "conv2d", "out_channels": 64, "kernel_size": 3, "kernel_initializer": "kaiming_normal"},
        {"type": "relu"},
        {"type": "layer_norm"},
        {"type": "dense", "out_features": 10}
    ]}));
    let layers = r["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    assert_eq!(layers[0]["activation"], "relu");
    assert_eq!(layers[0]["layer"], 0);
    assert_eq!(r["not_analysed"][0]["type"], "layer_norm");
    let ratio = layers[1]["forward"]["measured_ratio"].as_f64().unwrap();
    assert!((0.8..1.25).contains(&ratio), "conv relu he ratio {ratio}");
}
