//! Recurrent layers (`rnn`, `lstm`, `gru`) per framework: names, shapes, default
//! initializers (statistics), gate order, Keras unit_forget_bias and GRU reset_after bias,
//! cross-framework identity where it is defined, and the options each framework rejects.

mod common;
mod support;

use common::stats;
use paraminit::spec;
use serde_json::{Value, json};

fn names_shapes(p: &paraminit::plan::Plan) -> Vec<(String, Vec<u64>)> {
    let mut v: Vec<_> = p
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect();
    v.sort();
    v
}

fn s(n: &str, shape: &[u64]) -> (String, Vec<u64>) {
    (n.to_string(), shape.to_vec())
}

fn sorted(mut v: Vec<(String, Vec<u64>)>) -> Vec<(String, Vec<u64>)> {
    v.sort();
    v
}

#[test]
fn pytorch_lstm_names_shapes_bidirectional_multilayer_proj() {
    let p = support::plan(&json!({"seed": 1, "layers": [
        {"type": "lstm", "input_size": 10, "hidden_size": 8, "num_layers": 2, "bidirectional": true, "proj_size": 3},
        {"type": "dense", "out_features": 2}
    ]}));
    let mut want = vec![];
    for k in 0..2 {
        for sfx in ["", "_reverse"] {
            let input = if k == 0 { 10 } else { 6 };
            want.push(s(&format!("0.weight_ih_l{k}{sfx}"), &[32, input]));
            want.push(s(&format!("0.weight_hh_l{k}{sfx}"), &[32, 3]));
            want.push(s(&format!("0.bias_ih_l{k}{sfx}"), &[32]));
            want.push(s(&format!("0.bias_hh_l{k}{sfx}"), &[32]));
            want.push(s(&format!("0.weight_hr_l{k}{sfx}"), &[3, 8]));
        }
    }
    // The next layer's input is proj_size · 2 directions.
    want.push(s("1.weight", &[2, 6]));
    want.push(s("1.bias", &[2]));
    assert_eq!(names_shapes(&p), sorted(want));
}

#[test]
fn pytorch_defaults_are_uniform_over_inverse_sqrt_hidden() {
    for ty in ["rnn", "lstm", "gru"] {
        let p = support::plan(
            &json!({"seed": 5, "layers": [{"type": ty, "input_size": 64, "hidden_size": 100}]}),
        );
        let bound = 0.1;
        for n in [
            "0.weight_ih_l0",
            "0.weight_hh_l0",
            "0.bias_ih_l0",
            "0.bias_hh_l0",
        ] {
            let mut v = support::f64s(&support::values(&p, n));
            assert!(v.iter().all(|x| x.abs() <= bound + 1e-7), "{ty} {n}");
            if v.len() >= 1000 {
                let d = stats::ks_statistic(&mut v, |x| stats::uniform_cdf(x, -bound, bound));
                assert!(d < stats::ks_critical(v.len(), 1e-3), "{ty} {n}: D = {d}");
            }
        }
        let g = match ty {
            "rnn" => 1,
            "lstm" => 4,
            _ => 3,
        };
        assert_eq!(
            p.tensors[support::tensor_index(&p, "0.weight_ih_l0")].shape,
            [g * 100, 64]
        );
    }
}

#[test]
fn keras_lstm_paths_defaults_and_unit_forget_bias() {
    let p = support::plan(&json!({"seed": 2, "framework": "keras", "layers": [
        {"type": "lstm", "input_dim": 30, "units": 20},
        {"type": "lstm", "units": 20, "bias_initializer": {"name": "constant", "value": 0.5}},
        {"type": "lstm", "units": 20, "unit_forget_bias": false, "use_bias": true}
    ]}));
    assert!(names_shapes(&p).starts_with(&[
        s("lstm/lstm_cell/bias", &[80]),
        s("lstm/lstm_cell/kernel", &[30, 80]),
        s("lstm/lstm_cell/recurrent_kernel", &[20, 80]),
    ]));
    let b = support::values(&p, "lstm/lstm_cell/bias");
    assert!(b[..20].iter().all(|&x| x == 0.0));
    assert!(
        b[20..40].iter().all(|&x| x == 1.0),
        "forget gate is i,f,c,o's second quarter"
    );
    assert!(b[40..].iter().all(|&x| x == 0.0));
    let b = support::values(&p, "lstm_1/lstm_cell/bias");
    assert!(b[..20].iter().chain(&b[40..]).all(|&x| x == 0.5));
    assert!(b[20..40].iter().all(|&x| x == 1.0));
    assert!(
        support::values(&p, "lstm_2/lstm_cell/bias")
            .iter()
            .all(|&x| x == 0.0)
    );
    // glorot_uniform over [in, 4H]: limit √(6 / (30 + 80)).
    let lim = (6.0f64 / 110.0).sqrt();
    let mut k = support::f64s(&support::values(&p, "lstm/lstm_cell/kernel"));
    assert!(k.iter().all(|x| x.abs() <= lim + 1e-6));
    let d = stats::ks_statistic(&mut k, |x| stats::uniform_cdf(x, -lim, lim));
    assert!(d < stats::ks_critical(2400, 1e-3));
    // orthogonal over the whole [H, 4H]: orthonormal rows.
    let r = support::values(&p, "lstm/lstm_cell/recurrent_kernel");
    for i in 0..20 {
        for j in 0..20 {
            let dot: f64 = (0..80)
                .map(|c| r[i * 80 + c] as f64 * r[j * 80 + c] as f64)
                .sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((dot - want).abs() < 1e-5, "rows {i},{j}: {dot}");
        }
    }
}

#[test]
fn keras_gru_reset_after_bias_and_simple_rnn() {
    let p = support::plan(&json!({"seed": 2, "framework": "keras", "layers": [
        {"type": "gru", "input_size": 6, "units": 4},
        {"type": "gru", "units": 4, "reset_after": false},
        {"type": "rnn", "units": 5, "use_bias": false}
    ]}));
    assert_eq!(
        names_shapes(&p),
        sorted(vec![
            s("gru/gru_cell/kernel", &[6, 12]),
            s("gru/gru_cell/recurrent_kernel", &[4, 12]),
            s("gru/gru_cell/bias", &[2, 12]),
            s("gru_1/gru_cell/kernel", &[4, 12]),
            s("gru_1/gru_cell/recurrent_kernel", &[4, 12]),
            s("gru_1/gru_cell/bias", &[12]),
            s("simple_rnn/simple_rnn_cell/kernel", &[4, 5]),
            s("simple_rnn/simple_rnn_cell/recurrent_kernel", &[5, 5]),
        ])
    );
}

#[test]
fn flax_cells_have_per_gate_dense_kernels() {
    let p = support::plan(&json!({"seed": 3, "framework": "flax", "layers": [
        {"type": "lstm", "input_size": 6, "hidden_size": 16},
        {"type": "gru", "hidden_size": 16},
        {"type": "rnn", "hidden_size": 16}
    ]}));
    let mut want = vec![];
    for g in ["ii", "if", "ig", "io"] {
        want.push(s(&format!("params/LSTMCell_0/{g}/kernel"), &[6, 16]));
    }
    for g in ["hi", "hf", "hg", "ho"] {
        want.push(s(&format!("params/LSTMCell_0/{g}/kernel"), &[16, 16]));
        want.push(s(&format!("params/LSTMCell_0/{g}/bias"), &[16]));
    }
    for g in ["ir", "iz", "in"] {
        want.push(s(&format!("params/GRUCell_0/{g}/kernel"), &[16, 16]));
        want.push(s(&format!("params/GRUCell_0/{g}/bias"), &[16]));
    }
    for g in ["hr", "hz", "hn"] {
        want.push(s(&format!("params/GRUCell_0/{g}/kernel"), &[16, 16]));
    }
    want.push(s("params/GRUCell_0/hn/bias", &[16]));
    want.push(s("params/SimpleCell_0/i/kernel", &[16, 16]));
    want.push(s("params/SimpleCell_0/i/bias", &[16]));
    want.push(s("params/SimpleCell_0/h/kernel", &[16, 16]));
    assert_eq!(names_shapes(&p), sorted(want));
    // No forget bias: every bias is zero. Each recurrent gate matrix is orthogonal on its own.
    for t in &p.tensors {
        if t.name.ends_with("/bias") {
            assert!(support::values(&p, &t.name).iter().all(|&x| x == 0.0));
        }
    }
    let hf = support::values(&p, "params/LSTMCell_0/hf/kernel");
    for i in 0..16 {
        for j in 0..16 {
            let dot: f64 = (0..16)
                .map(|c| hf[i * 16 + c] as f64 * hf[j * 16 + c] as f64)
                .sum();
            assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-5);
        }
    }
    assert_ne!(
        support::values(&p, "params/LSTMCell_0/hi/kernel"),
        hf,
        "gates are independent streams"
    );
    // Input kernels: lecun_normal (truncated, variance 1/fan_in) with fan_in = 6.
    let p = support::plan(&json!({"seed": 3, "framework": "flax", "layers": [
        {"type": "lstm", "input_size": 200, "hidden_size": 256}]}));
    let v = support::f64s(&support::values(&p, "params/LSTMCell_0/ii/kernel"));
    let sd = stats::std_dev(&v);
    assert!((sd / (1.0f64 / 200.0).sqrt() - 1.0).abs() < 0.03, "{sd}");
}

#[test]
fn keras_lstm_kernels_are_the_transposed_pytorch_weights() {
    // With the same initializers, the Keras LSTM kernels are the PyTorch weight_ih_l0 and
    // weight_hh_l0 transposed, element for element (gate orders i,f,c,o = i,f,g,o).
    let req = |fw: &str| {
        json!({"seed": 9, "framework": fw, "layers": [{"type": "lstm", "name": "enc", "input_size": 5, "hidden_size": 3,
            "kernel_initializer": {"name": "uniform", "low": -0.2, "high": 0.2},
            "recurrent_initializer": "orthogonal"}]})
    };
    let pt = support::plan(&req("pytorch"));
    let k = support::plan(&req("keras"));
    for (a, b, rows, cols) in [
        ("enc.weight_ih_l0", "enc/lstm_cell/kernel", 12, 5),
        ("enc.weight_hh_l0", "enc/lstm_cell/recurrent_kernel", 12, 3),
    ] {
        let w = support::values(&pt, a);
        let kk = support::values(&k, b);
        for o in 0..rows {
            for i in 0..cols {
                assert_eq!(kk[i * rows + o], w[o * cols + i], "{b}");
            }
        }
    }
    // GRU gate orders differ (r,z,n vs z,r,h): independent streams.
    let g = |fw: &str| json!({"seed": 9, "framework": fw, "layers": [{"type": "gru", "input_size": 5, "hidden_size": 3, "kernel_initializer": "glorot_uniform"}]});
    let pt = support::plan(&g("pytorch"));
    let k = support::plan(&g("keras"));
    assert_eq!(
        pt.tensors[support::tensor_index(&pt, "0.weight_ih_l0")].identity,
        "layer/layers[0]/weight_ih_l0"
    );
    assert_eq!(
        k.tensors[support::tensor_index(&k, "gru/gru_cell/kernel")].identity,
        "layer/layers[0]/kernel"
    );
}

fn err(r: &Value) -> (String, Option<String>) {
    let p = spec::parse(r).map_err(|e| e.clone()).and_then(|r| {
        paraminit::pipeline::build(r, &paraminit::plan::Limits::UNLIMITED).map(|_| ())
    });
    let e = p.expect_err("must be rejected");
    (e.code.as_str().to_string(), e.path)
}

#[test]
fn options_a_framework_lacks_are_named_errors() {
    let l = |fw: &str, extra: Value| {
        let mut layer = json!({"type": "lstm", "input_size": 4, "hidden_size": 3});
        for (k, v) in extra.as_object().unwrap() {
            layer[k] = v.clone();
        }
        json!({"seed": 1, "framework": fw, "layers": [layer]})
    };
    for fw in ["keras", "flax"] {
        assert_eq!(
            err(&l(fw, json!({"proj_size": 1}))),
            (
                "unsupported_layer_type".into(),
                Some("layers[0].proj_size".into())
            )
        );
    }
    assert_eq!(
        err(&l("pytorch", json!({"unit_forget_bias": true})))
            .1
            .as_deref(),
        Some("layers[0].unit_forget_bias")
    );
    assert_eq!(
        err(&l("flax", json!({"bias": false}))).1.as_deref(),
        Some("layers[0].bias")
    );
    assert_eq!(
        err(&l("pytorch", json!({"proj_size": 3}))).1.as_deref(),
        Some("layers[0].proj_size")
    );
    assert_eq!(
        err(&json!({"seed": 1, "layers": [{"type": "gru", "hidden_size": 3}]}))
            .1
            .as_deref(),
        Some("layers[0].input_size")
    );
}

#[test]
fn canonical_form_is_a_fixed_point() {
    let r = spec::parse(&json!({"seed": 1, "framework": "keras", "layers": [
        {"type": "lstm", "input_dim": 4, "units": 3, "unit_forget_bias": false},
        {"type": "gru", "units": 2, "reset_after": false, "kernel_initializer": "he_uniform"},
        {"type": "rnn", "units": 2}]}))
    .unwrap();
    let c = r.to_canonical_json();
    assert_eq!(spec::parse(&c).unwrap(), r);
}

/// Stacked and bidirectional layers under Keras and Flax take the names those frameworks write
/// (read off Keras 3.15.1 and Flax 0.12.8), and their kernels are the same streams as PyTorch's
/// `weight_ih_l{k}[_reverse]`.
#[test]
fn keras_and_flax_stacked_and_bidirectional_names() {
    let req = |fw: &str| {
        json!({"seed": 4, "framework": fw, "layers": [
            {"type": "lstm", "input_size": 6, "hidden_size": 4, "num_layers": 2, "bidirectional": true, "kernel_initializer": "glorot_uniform"},
            {"type": "lstm", "hidden_size": 3, "num_layers": 2}
        ]})
    };
    let k = support::plan(&req("keras"));
    let names: std::collections::BTreeSet<String> =
        k.tensors.iter().map(|t| t.name.clone()).collect();
    for n in [
        "bidirectional/forward_lstm/lstm_cell/kernel",
        "bidirectional/backward_lstm/lstm_cell/recurrent_kernel",
        "bidirectional_1/forward_lstm_1/lstm_cell/bias",
        "bidirectional_1/backward_lstm_1/lstm_cell/kernel",
        "lstm_2/lstm_cell/kernel",
        "lstm_3/lstm_cell/kernel",
    ] {
        assert!(names.contains(n), "{n} not in {names:?}");
    }
    let shape =
        |p: &paraminit::plan::Plan, n: &str| p.tensors[support::tensor_index(p, n)].shape.clone();
    assert_eq!(
        shape(&k, "bidirectional/forward_lstm/lstm_cell/kernel"),
        vec![6, 16]
    );
    assert_eq!(
        shape(&k, "bidirectional_1/forward_lstm_1/lstm_cell/kernel"),
        vec![8, 16]
    );
    assert_eq!(shape(&k, "lstm_2/lstm_cell/kernel"), vec![8, 12]);
    assert_eq!(shape(&k, "lstm_3/lstm_cell/kernel"), vec![3, 12]);

    let f = support::plan(&req("flax"));
    let fnames: std::collections::BTreeSet<String> =
        f.tensors.iter().map(|t| t.name.clone()).collect();
    for cell in [
        "LSTMCell_0",
        "LSTMCell_1",
        "LSTMCell_2",
        "LSTMCell_3",
        "LSTMCell_4",
        "LSTMCell_5",
    ] {
        assert!(
            fnames.contains(&format!("params/{cell}/ii/kernel")),
            "{cell}"
        );
    }
    assert_eq!(shape(&f, "params/LSTMCell_2/ii/kernel"), vec![8, 4]);
    assert_eq!(shape(&f, "params/LSTMCell_4/ii/kernel"), vec![8, 3]);

    // Same streams as PyTorch: the Keras kernel of layer 1, reverse direction, is the transposed
    // weight_ih_l1_reverse.
    let pt = support::plan(&req("pytorch"));
    let w = support::values(&pt, "0.weight_ih_l1_reverse");
    let kk = support::values(&k, "bidirectional_1/backward_lstm_1/lstm_cell/kernel");
    for o in 0..16 {
        for i in 0..8 {
            assert_eq!(kk[i * 16 + o], w[o * 8 + i]);
        }
    }
    // Named entries: `enc`, then `enc_1`, …
    let named = support::plan(&json!({"seed": 4, "framework": "keras", "layers": [
        {"type": "gru", "name": "enc", "input_size": 5, "hidden_size": 2, "num_layers": 2}]}));
    let nn: Vec<&str> = named.tensors.iter().map(|t| t.name.as_str()).collect();
    assert!(
        nn.contains(&"enc/gru_cell/kernel") && nn.contains(&"enc_1/gru_cell/kernel"),
        "{nn:?}"
    );
}
