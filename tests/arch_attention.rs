//! `multihead_attention` per framework: PyTorch's packed or separate projections, out_proj and
//! bias_k/bias_v; Keras/Flax per-projection kernels with their fan rules; statistics,
//! Keras↔Flax identity and errors.

mod common;
mod support;

use common::stats;
use serde_json::json;

fn shape(p: &paraminit::plan::Plan, n: &str) -> Vec<u64> {
    p.tensors[support::tensor_index(p, n)].shape.clone()
}

#[test]
fn pytorch_packed_in_proj_and_defaults() {
    let e = 64u64;
    let p = support::plan(
        &json!({"seed": 4, "layers": [{"type": "multihead_attention", "embed_dim": e, "num_heads": 8}]}),
    );
    let mut names: Vec<_> = p.tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "0.in_proj_bias",
            "0.in_proj_weight",
            "0.out_proj.bias",
            "0.out_proj.weight"
        ]
    );
    assert_eq!(shape(&p, "0.in_proj_weight"), [3 * e, e]);
    // xavier_uniform on the packed [3E, E]: limit √(6 / 4E).
    let lim = (6.0 / (4.0 * e as f64)).sqrt();
    let mut w = support::f64s(&support::values(&p, "0.in_proj_weight"));
    assert!(w.iter().all(|x| x.abs() <= lim + 1e-7));
    let d = stats::ks_statistic(&mut w, |x| stats::uniform_cdf(x, -lim, lim));
    assert!(d < stats::ks_critical(w.len(), 1e-3));
    // out_proj: Linear default U(±1/√E); biases zero.
    let b = 1.0 / (e as f64).sqrt();
    let mut o = support::f64s(&support::values(&p, "0.out_proj.weight"));
    let d = stats::ks_statistic(&mut o, |x| stats::uniform_cdf(x, -b, b));
    assert!(d < stats::ks_critical(o.len(), 1e-3));
    assert!(
        support::values(&p, "0.in_proj_bias")
            .iter()
            .all(|&x| x == 0.0)
    );
    assert!(
        support::values(&p, "0.out_proj.bias")
            .iter()
            .all(|&x| x == 0.0)
    );
}

#[test]
fn pytorch_separate_projections_and_bias_kv() {
    let p = support::plan(
        &json!({"seed": 4, "layers": [{"type": "multihead_attention", "embed_dim": 32, "num_heads": 4, "kdim": 20, "vdim": 12, "add_bias_kv": true, "bias": true}]}),
    );
    assert_eq!(shape(&p, "0.q_proj_weight"), [32, 32]);
    assert_eq!(shape(&p, "0.k_proj_weight"), [32, 20]);
    assert_eq!(shape(&p, "0.v_proj_weight"), [32, 12]);
    assert_eq!(shape(&p, "0.in_proj_bias"), [96]);
    assert_eq!(shape(&p, "0.bias_k"), [1, 1, 32]);
    assert_eq!(shape(&p, "0.bias_v"), [1, 1, 32]);
    assert!(p.tensors.iter().all(|t| t.name != "0.in_proj_weight"));
    let k = &p.tensors[support::tensor_index(&p, "0.k_proj_weight")]
        .resolved
        .info;
    assert_eq!((k.fan_in, k.fan_out), (Some(20.0), Some(32.0)));
    let bk = &p.tensors[support::tensor_index(&p, "0.bias_k")]
        .resolved
        .info;
    assert_eq!(bk.std, Some((2.0f64 / 64.0).sqrt()));
    // No bias: no in_proj_bias, no out_proj.bias.
    let p = support::plan(
        &json!({"seed": 4, "layers": [{"type": "multihead_attention", "embed_dim": 8, "num_heads": 2, "bias": false}]}),
    );
    assert_eq!(p.tensors.len(), 2);
}

#[test]
fn keras_and_flax_kernels_and_fans() {
    let req = |fw: &str, init: Option<&str>| {
        let mut l =
            json!({"type": "multihead_attention", "name": "mha", "embed_dim": 64, "num_heads": 4});
        if let Some(i) = init {
            l["kernel_initializer"] = json!(i);
        }
        json!({"seed": 8, "framework": fw, "layers": [{"type": "dense", "in_features": 3, "out_features": 64}, l]})
    };
    let k = support::plan(&req("keras", None));
    assert_eq!(shape(&k, "mha/query/kernel"), [64, 4, 16]);
    assert_eq!(shape(&k, "mha/key/bias"), [4, 16]);
    assert_eq!(shape(&k, "mha/attention_output/kernel"), [4, 16, 64]);
    assert_eq!(shape(&k, "mha/attention_output/bias"), [64]);
    let q = &k.tensors[support::tensor_index(&k, "mha/query/kernel")]
        .resolved
        .info;
    // Keras ≥ 3.15 EinsumDense fans: (E, heads·head_dim), not the conv rule's (4·64, 16·64).
    assert_eq!((q.fan_in, q.fan_out), (Some(64.0), Some(64.0)));
    assert_eq!(q.high, Some((6.0f64 / 128.0).sqrt()));
    let f = support::plan(&req("flax", None));
    assert_eq!(shape(&f, "params/mha/query/kernel"), [64, 4, 16]);
    assert_eq!(shape(&f, "params/mha/out/kernel"), [4, 16, 64]);
    let v = support::f64s(&support::values(&f, "params/mha/out/kernel"));
    let sd = stats::std_dev(&v);
    assert!(
        (sd / (1.0f64 / 64.0).sqrt() - 1.0).abs() < 0.04,
        "lecun_normal on flattened [64, 64]: {sd}"
    );
    // Same initializer: Keras and Flax kernels are the same stream, bit for bit.
    let k = support::plan(&req("keras", Some("he_uniform")));
    let f = support::plan(&req("flax", Some("he_uniform")));
    assert_eq!(
        support::values(&k, "mha/attention_output/kernel"),
        support::values(&f, "params/mha/out/kernel")
    );
    assert_eq!(
        support::values(&k, "mha/value/kernel"),
        support::values(&f, "params/mha/value/kernel")
    );
}

#[test]
fn errors_name_the_field() {
    let e = paraminit::spec::parse(&json!({"seed": 1, "layers": [{"type": "multihead_attention", "embed_dim": 10, "num_heads": 3}]})).unwrap_err();
    assert_eq!(e.path.as_deref(), Some("layers[0].num_heads"));
    let r = paraminit::spec::parse(&json!({"seed": 1, "framework": "keras", "layers": [{"type": "multihead_attention", "embed_dim": 8, "num_heads": 2, "add_bias_kv": true}]})).unwrap();
    let e = paraminit::pipeline::build(r, &paraminit::plan::Limits::UNLIMITED).unwrap_err();
    assert_eq!(e.path.as_deref(), Some("layers[0].add_bias_kv"));
    assert_eq!(e.code.as_str(), "unsupported_layer_type");
}
