//! Every initializer against its formula: sample mean, std, bounds and a Kolmogorov–Smirnov
//! test against the exact target distribution. The expected numbers are written out here from
//! the frameworks' formulas (not read back from the plan), so a wrong fan rule, a wrong std or
//! a missing truncation fails. `thresholds_catch_mistakes` shows that they do.

mod common;
mod support;

use common::stats::{
    ks_critical, ks_statistic, mean, normal_cdf, std_dev, trunc_normal_cdf, trunc_normal_moments,
    uniform_cdf,
};
use serde_json::{Value, json};

const C: f64 = 0.879_625_661_034_239_8;
/// Raw tensor shape used throughout: PyTorch fans (in 4096, out 256), Keras/Flax (in 256, out 4096).
const SHAPE: [u64; 2] = [256, 4096];

#[derive(Clone, Copy, Debug)]
enum Want {
    Const(f64),
    Uniform(f64, f64),
    Normal(f64, f64),
    Trunc(f64, f64, f64, f64),
}

fn samples(framework: &str, init: Value) -> Vec<f64> {
    let p = support::plan(&json!({
        "seed": 1234,
        "framework": framework,
        "tensors": [{"name": "w", "shape": SHAPE, "init": init}]
    }));
    support::values(&p, "w")
        .into_iter()
        .map(f64::from)
        .collect()
}

fn cdf(want: Want) -> impl Fn(f64) -> f64 {
    move |x| match want {
        Want::Const(v) => {
            if x < v {
                0.0
            } else {
                1.0
            }
        }
        Want::Uniform(l, h) => uniform_cdf(x, l, h),
        Want::Normal(m, s) => normal_cdf(x, m, s),
        Want::Trunc(m, s, a, b) => trunc_normal_cdf(x, m, s, a, b),
    }
}

fn check(label: &str, xs: &[f64], want: Want) {
    let n = xs.len();
    let (m, s) = (mean(xs), std_dev(xs));
    // Relative tolerance on the sample std: 0.5% for the 1M-element tensors, wider for small ones.
    let tol = (4.0 / (n as f64).sqrt()).max(0.005);
    let (lo, hi) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
            (l.min(x), h.max(x))
        });
    match want {
        Want::Const(v) => {
            assert!(
                xs.iter().all(|&x| x == v as f32 as f64),
                "{label}: not all {v}"
            );
            return;
        }
        Want::Uniform(l, h) => {
            let (l32, h32) = (l as f32 as f64, h as f32 as f64);
            assert!(
                lo >= l32 && hi <= h32,
                "{label}: range [{lo}, {hi}] outside [{l}, {h}]"
            );
            // Both ends are approached: the samples fill the interval.
            let w = h - l;
            let slack = w * (20.0 / n as f64).max(1e-4);
            assert!(
                lo < l + slack && hi > h - slack,
                "{label}: [{lo}, {hi}] does not fill [{l}, {h}]"
            );
            let want_std = w / 12f64.sqrt();
            assert!(
                (s / want_std - 1.0).abs() < tol,
                "{label}: std {s} vs {want_std}"
            );
            assert!(
                (m - (l + h) / 2.0).abs() < 5.0 * want_std / (n as f64).sqrt(),
                "{label}: mean {m}"
            );
        }
        Want::Normal(mu, sd) => {
            assert!((s / sd - 1.0).abs() < tol, "{label}: std {s} vs {sd}");
            assert!(
                (m - mu).abs() < 5.0 * sd / (n as f64).sqrt(),
                "{label}: mean {m} vs {mu}"
            );
            // Box–Muller on 24-bit inputs reaches past 5σ but never beyond 5.8σ.
            assert!(
                lo >= mu - 5.8 * sd && hi <= mu + 5.8 * sd,
                "{label}: range [{lo}, {hi}]"
            );
        }
        Want::Trunc(mu, sd, a, b) => {
            assert!(
                lo >= a as f32 as f64 && hi <= b as f32 as f64,
                "{label}: range [{lo}, {hi}] outside [{a}, {b}]"
            );
            let (tm, ts) = trunc_normal_moments(mu, sd, a, b);
            assert!((s / ts - 1.0).abs() < tol, "{label}: std {s} vs {ts}");
            assert!(
                (m - tm).abs() < 5.0 * ts / (n as f64).sqrt(),
                "{label}: mean {m} vs {tm}"
            );
        }
    }
    let mut v = xs.to_vec();
    let d = ks_statistic(&mut v, cdf(want));
    let crit = ks_critical(n, 1e-6);
    assert!(
        d < crit,
        "{label}: KS distance {d} ≥ {crit} against {want:?}"
    );
}

fn cases() -> Vec<(&'static str, Value, Want)> {
    let sq = f64::sqrt;
    let (fi, fo) = (4096.0, 256.0); // PyTorch rule on [256, 4096]
    let avg = (fi + fo) / 2.0;
    vec![
        ("pytorch", json!("zeros"), Want::Const(0.0)),
        ("pytorch", json!("ones"), Want::Const(1.0)),
        (
            "pytorch",
            json!({"name": "constant", "value": 0.5}),
            Want::Const(0.5),
        ),
        (
            "pytorch",
            json!({"name": "uniform", "low": -0.3, "high": 0.7}),
            Want::Uniform(-0.3, 0.7),
        ),
        ("pytorch", json!("uniform"), Want::Uniform(0.0, 1.0)),
        (
            "pytorch",
            json!({"name": "normal", "mean": 0.1, "std": 0.2}),
            Want::Normal(0.1, 0.2),
        ),
        (
            "pytorch",
            json!("truncated_normal"),
            Want::Trunc(0.0, 1.0, -2.0, 2.0),
        ),
        (
            "pytorch",
            json!({"name": "truncated_normal", "std": 0.02}),
            Want::Trunc(0.0, 0.02, -2.0, 2.0),
        ),
        (
            "pytorch",
            json!({"name": "truncated_normal", "mean": 1.0, "std": 1.0, "a": 0.5, "b": 3.0}),
            Want::Trunc(1.0, 1.0, 0.5, 3.0),
        ),
        (
            "pytorch",
            json!({"name": "truncated_normal", "a": 1.0, "b": 4.0}),
            Want::Trunc(0.0, 1.0, 1.0, 4.0),
        ),
        ("keras", json!("random_uniform"), Want::Uniform(-0.05, 0.05)),
        ("keras", json!("random_normal"), Want::Normal(0.0, 0.05)),
        (
            "keras",
            json!("keras_truncated_normal"),
            Want::Trunc(0.0, 0.05, -0.1, 0.1),
        ),
        ("flax", json!("jax_uniform"), Want::Uniform(0.0, 0.01)),
        ("flax", json!("jax_normal"), Want::Normal(0.0, 0.01)),
        (
            "flax",
            json!("jax_truncated_normal"),
            Want::Trunc(0.0, 0.01, -0.02, 0.02),
        ),
        (
            "pytorch",
            json!({"name": "variance_scaling", "scale": 2.0, "mode": "fan_out", "distribution": "normal"}),
            Want::Normal(0.0, sq(2.0 / fo)),
        ),
        ("pytorch", json!("variance_scaling"), {
            let s = sq(1.0 / fi) / C;
            Want::Trunc(0.0, s, -2.0 * s, 2.0 * s)
        }),
        (
            "pytorch",
            json!({"name": "variance_scaling", "mode": "fan_avg", "distribution": "uniform"}),
            Want::Uniform(-sq(3.0 / avg), sq(3.0 / avg)),
        ),
        (
            "flax",
            json!({"name": "variance_scaling", "mode": "fan_geo_avg", "distribution": "normal"}),
            Want::Normal(0.0, sq(1.0 / sq(fi * fo))),
        ),
        (
            "pytorch",
            json!("kaiming_uniform"),
            Want::Uniform(-sq(2.0) * sq(3.0 / fi), sq(2.0) * sq(3.0 / fi)),
        ),
        (
            "pytorch",
            json!({"name": "kaiming_normal", "mode": "fan_out", "nonlinearity": "relu"}),
            Want::Normal(0.0, sq(2.0) / sq(fo)),
        ),
        (
            "pytorch",
            json!({"name": "kaiming_normal", "a": 0.2}),
            Want::Normal(0.0, sq(2.0 / 1.04) / sq(fi)),
        ),
        (
            "pytorch",
            json!({"name": "kaiming_normal", "nonlinearity": "tanh"}),
            Want::Normal(0.0, (5.0 / 3.0) / sq(fi)),
        ),
        (
            "pytorch",
            json!({"name": "xavier_uniform", "gain": 2.0}),
            Want::Uniform(-2.0 * sq(6.0 / (fi + fo)), 2.0 * sq(6.0 / (fi + fo))),
        ),
        (
            "pytorch",
            json!("xavier_normal"),
            Want::Normal(0.0, sq(2.0 / (fi + fo))),
        ),
        // Keras reads the same raw shape as [in, out]: fan_in = 256.
        (
            "keras",
            json!("he_uniform"),
            Want::Uniform(-sq(6.0 / fo), sq(6.0 / fo)),
        ),
        ("keras", json!("he_normal"), {
            let s = sq(2.0 / fo) / C;
            Want::Trunc(0.0, s, -2.0 * s, 2.0 * s)
        }),
        ("pytorch", json!("he_normal"), {
            let s = sq(2.0 / fi) / C;
            Want::Trunc(0.0, s, -2.0 * s, 2.0 * s)
        }),
        (
            "keras",
            json!("glorot_uniform"),
            Want::Uniform(-sq(6.0 / (fi + fo)), sq(6.0 / (fi + fo))),
        ),
        ("keras", json!("glorot_normal"), {
            let s = sq(2.0 / (fi + fo)) / C;
            Want::Trunc(0.0, s, -2.0 * s, 2.0 * s)
        }),
        (
            "flax",
            json!("lecun_uniform"),
            Want::Uniform(-sq(3.0 / fo), sq(3.0 / fo)),
        ),
        ("flax", json!("lecun_normal"), {
            let s = sq(1.0 / fo) / C;
            Want::Trunc(0.0, s, -2.0 * s, 2.0 * s)
        }),
    ]
}

#[test]
fn every_distribution_initializer_matches_its_formula() {
    for (fw, init, want) in cases() {
        let label = format!("{fw} {init}");
        check(&label, &samples(fw, init), want);
    }
}

#[test]
fn thresholds_catch_mistakes() {
    let rejects = |xs: &[f64], want: Want| {
        let mut v = xs.to_vec();
        ks_statistic(&mut v, cdf(want)) >= ks_critical(v.len(), 1e-6)
    };
    // he_normal (PyTorch fan rule: fan_in 4096), truncated at ±2σ'.
    let xs = samples("pytorch", json!("he_normal"));
    let s = (2.0f64 / 4096.0).sqrt() / C;
    assert!(!rejects(&xs, Want::Trunc(0.0, s, -2.0 * s, 2.0 * s)));
    // A 5% wrong std.
    assert!(rejects(&xs, Want::Trunc(0.0, 1.05 * s, -2.1 * s, 2.1 * s)));
    assert!(rejects(&xs, Want::Trunc(0.0, 0.95 * s, -1.9 * s, 1.9 * s)));
    // A missing truncation: the untruncated normal with the same variance.
    assert!(rejects(&xs, Want::Normal(0.0, s * C)));
    // The wrong fan rule (Keras's fan_in = 256 for this shape).
    let s_wrong = (2.0f64 / 256.0).sqrt() / C;
    assert!(rejects(
        &xs,
        Want::Trunc(0.0, s_wrong, -2.0 * s_wrong, 2.0 * s_wrong)
    ));

    // An untruncated normal is not mistaken for a truncated one with the same pre-truncation std.
    let ys = samples("pytorch", json!("xavier_normal"));
    let sd = (2.0f64 / 4352.0).sqrt();
    assert!(!rejects(&ys, Want::Normal(0.0, sd)));
    assert!(rejects(&ys, Want::Normal(0.0, sd * 1.05)));
    assert!(rejects(&ys, Want::Trunc(0.0, sd, -2.0 * sd, 2.0 * sd)));

    // Uniform bounds 5% too wide or narrow are caught too.
    let zs = samples("pytorch", json!("kaiming_uniform"));
    let b = 2f64.sqrt() * (3.0f64 / 4096.0).sqrt();
    assert!(!rejects(&zs, Want::Uniform(-b, b)));
    assert!(rejects(&zs, Want::Uniform(-1.05 * b, 1.05 * b)));
}

#[test]
fn auto_picks_by_activation_and_says_why() {
    let p = support::plan(&json!({
        "seed": 5,
        "layers": [
            {"type": "dense", "in_features": 512, "out_features": 512, "activation": "relu", "kernel_initializer": "auto"},
            {"type": "dense", "out_features": 512, "kernel_initializer": "auto"},
            {"type": "tanh"},
            {"type": "dense", "out_features": 512, "activation": "selu", "kernel_initializer": "auto"},
        ]
    }));
    let info = |name: &str| {
        p.tensors[support::tensor_index(&p, name)]
            .resolved
            .info
            .clone()
    };
    let relu = info("0.weight");
    assert_eq!(relu.spec.name(), "kaiming_normal");
    assert_eq!(relu.requested, "auto");
    assert!(relu.reason.as_deref().unwrap_or("").contains("He"));
    check(
        "auto relu",
        &support::values(&p, "0.weight")
            .into_iter()
            .map(f64::from)
            .collect::<Vec<_>>(),
        Want::Normal(0.0, (2.0f64 / 512.0).sqrt()),
    );
    let tanh = info("1.weight");
    assert_eq!(tanh.spec.name(), "xavier_uniform");
    assert!(tanh.reason.as_deref().unwrap_or("").contains("Glorot"));
    let selu = info("3.weight");
    assert_eq!(selu.spec.name(), "kaiming_normal");
    assert!(selu.reason.as_deref().unwrap_or("").contains("LeCun"));
    check(
        "auto selu",
        &support::values(&p, "3.weight")
            .into_iter()
            .map(f64::from)
            .collect::<Vec<_>>(),
        Want::Normal(0.0, (1.0f64 / 512.0).sqrt()),
    );

    // Keras flavour: truncated He.
    let k = support::plan(&json!({"seed": 5, "framework": "keras", "layers": [
        {"type": "dense", "in_features": 512, "out_features": 512, "activation": "relu", "kernel_initializer": "auto"}]}));
    assert_eq!(
        k.tensors[support::tensor_index(&k, "dense/kernel")]
            .resolved
            .info
            .spec
            .name(),
        "he_normal"
    );
}

#[test]
fn framework_layer_defaults() {
    let req = |fw: &str| {
        json!({"seed": 9, "framework": fw, "layers": [
            {"type": "dense", "in_features": 1024, "out_features": 512},
            {"type": "embedding", "num_embeddings": 2000, "embedding_dim": 512},
        ]})
    };
    let f = |p: &std::sync::Arc<paraminit::plan::Plan>, n: &str| {
        support::values(p, n)
            .into_iter()
            .map(f64::from)
            .collect::<Vec<_>>()
    };
    let pt = support::plan(&req("pytorch"));
    let b = 1.0 / 1024f64.sqrt();
    check(
        "torch Linear weight",
        &f(&pt, "0.weight"),
        Want::Uniform(-b, b),
    );
    check("torch Linear bias", &f(&pt, "0.bias"), Want::Uniform(-b, b));
    check(
        "torch Embedding",
        &f(&pt, "1.weight"),
        Want::Normal(0.0, 1.0),
    );

    let k = support::plan(&req("keras"));
    let g = (6.0f64 / 1536.0).sqrt();
    check(
        "keras Dense kernel",
        &f(&k, "dense/kernel"),
        Want::Uniform(-g, g),
    );
    check("keras Dense bias", &f(&k, "dense/bias"), Want::Const(0.0));
    check(
        "keras Embedding",
        &f(&k, "embedding/embeddings"),
        Want::Uniform(-0.05, 0.05),
    );

    let fl = support::plan(&req("flax"));
    let s = (1.0f64 / 1024.0).sqrt() / C;
    check(
        "flax Dense kernel",
        &f(&fl, "params/Dense_0/kernel"),
        Want::Trunc(0.0, s, -2.0 * s, 2.0 * s),
    );
    check(
        "flax Dense bias",
        &f(&fl, "params/Dense_0/bias"),
        Want::Const(0.0),
    );
    check(
        "flax Embed",
        &f(&fl, "params/Embed_0/embedding"),
        Want::Normal(0.0, (1.0f64 / 512.0).sqrt()),
    );
}
