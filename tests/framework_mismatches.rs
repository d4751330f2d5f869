//! Issue 13, "Why": every Keras/Flax mismatch listed there, one test each, against the
//! framework's behaviour as its source writes it (checked with Keras 3.15 / Flax 0.12 / JAX):
//! - keras/src/initializers/random_initializers.py `Orthogonal.__call__`: the tensor is
//!   flattened to `(prod(shape[:-1]), shape[-1])`;
//! - flax/linen/linear.py `DenseGeneral`: kernel_init sees the kernel flattened to
//!   `(prod(in axes), prod(out axes))`, bias_init the bias flattened to a vector;
//! - keras/src/layers/rnn/lstm.py `unit_forget_bias`: `init((units,))`, ones, `init((2·units,))`;
//! - keras/src/layers/core/einsum_dense.py: bias_initializer called on the (heads, head_dim)
//!   bias, whose fans by `compute_fans` are (heads, head_dim).

mod support;

use paraminit::spec;
use serde_json::{Value, json};

/// max |MᵀM − I| for the `rows × cols` row-major matrix `m` (columns orthonormal), or of MMᵀ
/// when rows < cols.
fn orthogonality_error(m: &[f32], rows: usize, cols: usize) -> f64 {
    let (n, get): (usize, Box<dyn Fn(usize, usize) -> f64>) = if rows >= cols {
        (
            cols,
            Box::new(|a, b| {
                (0..rows)
                    .map(|r| m[r * cols + a] as f64 * m[r * cols + b] as f64)
                    .sum()
            }),
        )
    } else {
        (
            rows,
            Box::new(|a, b| {
                (0..cols)
                    .map(|c| m[a * cols + c] as f64 * m[b * cols + c] as f64)
                    .sum()
            }),
        )
    };
    let mut e = 0f64;
    for a in 0..n {
        for b in 0..n {
            e = e.max((get(a, b) - if a == b { 1.0 } else { 0.0 }).abs());
        }
    }
    e
}

#[test]
fn keras_mha_orthogonal_is_orthogonal_as_keras_flattens() {
    // The request of the issue.
    let p = support::plan(&json!({"seed": 11, "framework": "keras", "layers": [
        {"type": "multihead_attention", "embed_dim": 64, "num_heads": 4, "kernel_initializer": "orthogonal"}]}));
    for n in ["query", "key", "value"] {
        let v = support::values(&p, &format!("multi_head_attention/{n}/kernel"));
        // [64, 4, 16] as (256, 16): orthonormal columns.
        assert!(orthogonality_error(&v, 256, 16) < 1e-5, "{n}");
    }
    let v = support::values(&p, "multi_head_attention/attention_output/kernel");
    // [4, 16, 64] as (64, 64).
    assert!(orthogonality_error(&v, 64, 64) < 1e-5);
}

#[test]
fn flax_mha_out_kernel_is_orthogonal_as_heads_times_head_dim_by_e() {
    let p = support::plan(&json!({"seed": 11, "framework": "flax", "layers": [
        {"type": "multihead_attention", "embed_dim": 32, "num_heads": 4, "kernel_initializer": "orthogonal"}]}));
    let v = support::values(&p, "params/MultiHeadDotProductAttention_0/out/kernel");
    // (heads, head_dim, E) = (4, 8, 32) as (32, 32).
    assert!(orthogonality_error(&v, 32, 32) < 1e-5);
    // query kernel (E, heads, head_dim) reaches kernel_init as (E, heads·head_dim) = (32, 32).
    let v = support::values(&p, "params/MultiHeadDotProductAttention_0/query/kernel");
    assert!(orthogonality_error(&v, 32, 32) < 1e-5);
}

#[test]
fn keras_variance_scaling_normal_is_truncated_under_keras() {
    let p = support::plan(&json!({"seed": 3, "framework": "keras", "layers": [
        {"type": "dense", "input_dim": 400, "units": 300,
         "kernel_initializer": {"name": "variance_scaling", "distribution": "normal"}}]}));
    let t = &p.tensors[support::tensor_index(&p, "dense/kernel")];
    assert_eq!(t.resolved.info.distribution, "truncated_normal");
    let v = support::values(&p, "dense/kernel");
    let sigma = (1.0f64 / 400.0).sqrt() / 0.879_625_661_034_239_8;
    let max = v.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
    assert!(
        max <= 2.0 * sigma * (1.0 + 1e-6) && max > 1.9 * sigma,
        "{max} vs 2σ' = {}",
        2.0 * sigma
    );
}

#[test]
fn keras_lstm_unit_forget_bias_calls_a_fan_based_initializer_per_part() {
    let h = 50u64;
    let p = support::plan(&json!({"seed": 4, "framework": "keras", "layers": [
        {"type": "lstm", "input_dim": 8, "units": h, "bias_initializer": "he_uniform"}]}));
    let b = support::values(&p, "lstm/lstm_cell/bias");
    let h = h as usize;
    let l1 = (6.0f64 / h as f64).sqrt(); // HeUniform on (units,): fan_in = units
    let l2 = (6.0f64 / (2 * h) as f64).sqrt(); // on (2·units,)
    let m1 = b[..h].iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
    let m2 = b[2 * h..]
        .iter()
        .fold(0f64, |m, &x| m.max((x as f64).abs()));
    assert!(m1 <= l1 && m1 > 0.9 * l1, "{m1} vs {l1}");
    assert!(m2 <= l2 && m2 > 0.9 * l2, "{m2} vs {l2}");
    assert!(b[h..2 * h].iter().all(|&x| x == 1.0));
    // A shape-free initializer is one draw over the whole bias, as before.
    let p = support::plan(&json!({"seed": 4, "framework": "keras", "layers": [
        {"type": "lstm", "input_dim": 8, "units": 50, "bias_initializer": "random_uniform"}]}));
    let b = support::values(&p, "lstm/lstm_cell/bias");
    assert!(b[..50].iter().chain(&b[100..]).all(|&x| x.abs() <= 0.05));
}

#[test]
fn keras_mha_bias_fans_are_those_of_the_heads_by_head_dim_bias() {
    let p = support::plan(&json!({"seed": 5, "framework": "keras", "layers": [
        {"type": "multihead_attention", "embed_dim": 64, "num_heads": 4, "bias_initializer": "he_uniform"}]}));
    for n in ["query", "key", "value"] {
        let t = &p.tensors[support::tensor_index(&p, &format!("multi_head_attention/{n}/bias"))];
        assert_eq!(
            (t.resolved.info.fan_in, t.resolved.info.fan_out),
            (Some(4.0), Some(16.0)),
            "{n}"
        );
        let v = support::values(&p, &format!("multi_head_attention/{n}/bias"));
        let lim = (6.0f64 / 4.0).sqrt();
        assert!(v.iter().all(|&x| (x as f64).abs() <= lim));
        assert!(v.iter().any(|&x| (x as f64).abs() > 0.8 * lim));
    }
    let t = &p.tensors[support::tensor_index(&p, "multi_head_attention/attention_output/bias")];
    assert_eq!(t.resolved.info.fan_in, Some(64.0));
}

#[test]
fn flax_attention_refuses_delta_orthogonal_and_fan_based_biases() {
    let e = spec::parse(&json!({"seed": 1, "framework": "flax", "layers": [
        {"type": "multihead_attention", "embed_dim": 16, "num_heads": 2, "kernel_initializer": "delta_orthogonal"}]}))
        .map(|r| paraminit::pipeline::build(r, &paraminit::plan::Limits::UNLIMITED))
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code.as_str(), "initializer_mismatch");
    assert_eq!(e.path.as_deref(), Some("layers[0].kernel_initializer"));
    assert!(e.message.contains("delta_orthogonal"), "{}", e.message);
    let e = spec::parse(&json!({"seed": 1, "framework": "flax", "layers": [
        {"type": "multihead_attention", "embed_dim": 16, "num_heads": 2, "bias_initializer": "lecun_normal"}]}))
        .map(|r| paraminit::pipeline::build(r, &paraminit::plan::Limits::UNLIMITED))
        .unwrap()
        .unwrap_err();
    assert_eq!(e.code.as_str(), "initializer_mismatch");
    assert_eq!(e.path.as_deref(), Some("layers[0].bias_initializer"));
}

fn plan_err(req: Value) -> paraminit::error::SpecError {
    match spec::parse(&req) {
        Err(e) => e,
        Ok(r) => paraminit::pipeline::build(r, &paraminit::plan::Limits::UNLIMITED).unwrap_err(),
    }
}

#[test]
fn padding_idx_and_track_running_stats_false_have_no_keras_or_flax_meaning() {
    for fw in ["keras", "flax"] {
        let e = plan_err(json!({"seed": 1, "framework": fw, "layers": [
            {"type": "embedding", "num_embeddings": 10, "embedding_dim": 4, "padding_idx": 0}]}));
        assert_eq!(e.code.as_str(), "unsupported_layer_type");
        assert_eq!(e.path.as_deref(), Some("layers[0].padding_idx"));
        let e = plan_err(json!({"seed": 1, "framework": fw, "layers": [
            {"type": "batch_norm", "num_features": 4, "track_running_stats": false}]}));
        assert_eq!(e.code.as_str(), "unsupported_layer_type");
        assert_eq!(e.path.as_deref(), Some("layers[0].track_running_stats"));
    }
    // PyTorch keeps both.
    support::plan(&json!({"seed": 1, "layers": [
        {"type": "embedding", "num_embeddings": 10, "embedding_dim": 4, "padding_idx": 0},
        {"type": "batch_norm", "num_features": 4, "track_running_stats": false}]}));
}
