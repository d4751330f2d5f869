//! Initializer names mean what the request's framework means by them (issue 13): each name a
//! Keras 3 or Flax/JAX user writes, under `framework: keras|flax`, gives the distribution the
//! real framework draws. The oracle is tests/fixtures/framework_oracle.json, written by
//! scripts/framework_oracle.py with the real keras 3.15 and jax: 2000 of the framework's values
//! on a [400, 250] tensor and the std and range of 10^6. Checks: two-sample KS (α = 1e-3),
//! std within 2% (a 5% error fails), bounded supports equal within 1%.

mod common;
mod support;

use serde_json::{Value, json};

fn oracle() -> Value {
    let p = format!(
        "{}/tests/fixtures/framework_oracle.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Two-sample Kolmogorov–Smirnov statistic.
fn ks2(a: &mut [f64], b: &mut [f64]) -> f64 {
    a.sort_by(|x, y| x.partial_cmp(y).unwrap());
    b.sort_by(|x, y| x.partial_cmp(y).unwrap());
    let (n, m) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / n - j as f64 / m).abs());
    }
    d
}

fn check(framework: &str, case: &Value) {
    let init = &case["init"];
    let p = support::plan(&json!({"seed": 17, "framework": framework,
        "tensors": [{"name": "w", "shape": [400, 250], "init": init}]}));
    let mut ours: Vec<f64> = support::values(&p, "w").iter().map(|&x| x as f64).collect();
    let mut theirs: Vec<f64> = case["sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let what = format!("{framework} {init}");
    let std = common::stats::std_dev(&ours);
    let (tstd, tmin, tmax) = (
        case["std"].as_f64().unwrap(),
        case["min"].as_f64().unwrap(),
        case["max"].as_f64().unwrap(),
    );
    assert!(
        (std / tstd - 1.0).abs() < 0.02,
        "{what}: std {std} vs the framework's {tstd}"
    );
    let mean = common::stats::mean(&ours);
    let tmean = case["mean"].as_f64().unwrap();
    assert!(
        (mean - tmean).abs() < 0.02 * tstd + 1e-4,
        "{what}: mean {mean} vs {tmean}"
    );
    let (omin, omax) = ours
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let range = tmax - tmin;
    let centre = (tmax + tmin) / 2.0;
    let bounded = (tmax - centre) < 3.0 * tstd;
    if bounded {
        assert!(
            omin >= tmin - 0.01 * range && omax <= tmax + 0.01 * range,
            "{what}: range"
        );
        assert!(
            omin <= tmin + 0.01 * range && omax >= tmax - 0.01 * range,
            "{what}: range"
        );
    } else {
        assert!(
            omax - centre > 3.0 * tstd,
            "{what}: the framework's tails are not truncated"
        );
    }
    let (n, m) = (ours.len() as f64, theirs.len() as f64);
    let crit = (-(1e-3f64 / 2.0).ln() / 2.0).sqrt() * ((n + m) / (n * m)).sqrt();
    let d = ks2(&mut ours, &mut theirs);
    assert!(d < crit, "{what}: KS D = {d} ≥ {crit}");
}

#[test]
fn keras_names_draw_what_keras_draws() {
    let o = oracle();
    for case in o["keras"].as_array().unwrap() {
        check("keras", case);
    }
}

#[test]
fn flax_names_draw_what_flax_draws() {
    let o = oracle();
    for case in o["flax"].as_array().unwrap() {
        check("flax", case);
    }
}

#[test]
fn exact_constants_of_the_keras_and_flax_spellings() {
    let info = |fw: &str, init: Value| {
        let p = support::plan(&json!({"seed": 1, "framework": fw,
            "tensors": [{"name": "w", "shape": [4, 3], "init": init}]}));
        p.tensors[0].resolved.info.to_json()
    };
    // keras/src/initializers/random_initializers.py: RandomUniform(-0.05, 0.05),
    // RandomNormal(0, 0.05), TruncatedNormal(0, 0.05) cut at ±2·stddev.
    let u = info("keras", json!("uniform"));
    assert_eq!(
        (u["low"].as_f64(), u["high"].as_f64()),
        (Some(-0.05), Some(0.05))
    );
    let n = info("keras", json!("normal"));
    assert_eq!(
        (n["mean"].as_f64(), n["std"].as_f64()),
        (Some(0.0), Some(0.05))
    );
    let t = info("keras", json!("truncated_normal"));
    assert_eq!(
        (t["low"].as_f64(), t["high"].as_f64()),
        (Some(-0.1), Some(0.1))
    );
    // VarianceScaling(distribution="normal") is truncated in Keras.
    let v = info(
        "keras",
        json!({"name": "variance_scaling", "distribution": "normal"}),
    );
    assert_eq!(v["distribution"], "truncated_normal");
    // jax/_src/nn/initializers.py: uniform(scale=1e-2) is U(0, 0.01); normal(1e-2).
    let u = info("flax", json!("uniform"));
    assert_eq!(
        (u["low"].as_f64(), u["high"].as_f64()),
        (Some(0.0), Some(0.01))
    );
    let n = info("flax", json!("normal"));
    assert_eq!(n["std"].as_f64(), Some(0.01));
    // PyTorch's names are unchanged under pytorch.
    let u = info("pytorch", json!("uniform"));
    assert_eq!(
        (u["low"].as_f64(), u["high"].as_f64()),
        (Some(0.0), Some(1.0))
    );
    // Explicit cross-framework names work everywhere.
    for fw in ["pytorch", "keras", "flax"] {
        assert_eq!(info(fw, json!("jax_uniform"))["high"].as_f64(), Some(0.01));
        assert_eq!(info(fw, json!("torch_uniform"))["high"].as_f64(), Some(1.0));
        assert_eq!(
            info(fw, json!("torch_kaiming_normal"))["name"],
            "kaiming_normal"
        );
        assert_eq!(info(fw, json!("random_normal"))["std"].as_f64(), Some(0.05));
    }
    assert_eq!(
        info("keras", json!("kaiming_normal"))["name"],
        "kaiming_normal"
    );
}

#[test]
fn what_the_framework_refuses_is_a_422_that_says_so() {
    let e = paraminit::spec::parse(&json!({"seed": 1, "framework": "keras", "tensors": [
        {"name": "w", "shape": [4, 3], "init": {"name": "variance_scaling", "mode": "fan_geo_avg"}}]}))
    .unwrap_err();
    assert_eq!(e.code.as_str(), "invalid_value");
    assert_eq!(e.path.as_deref(), Some("tensors[0].init.mode"));
    assert!(e.message.contains("Keras"), "{}", e.message);
    // Keras's RandomUniform takes minval/maxval, not scale.
    let e = paraminit::spec::parse(&json!({"seed": 1, "framework": "keras", "tensors": [
        {"name": "w", "shape": [4, 3], "init": {"name": "uniform", "scale": 0.1}}]}))
    .unwrap_err();
    assert_eq!(e.code.as_str(), "unknown_field");
    // fan_geo_avg is JAX's: accepted under flax.
    paraminit::spec::parse(&json!({"seed": 1, "framework": "flax", "tensors": [
        {"name": "w", "shape": [4, 3], "init": {"name": "variance_scaling", "mode": "fan_geo_avg"}}]}))
    .unwrap();
}
