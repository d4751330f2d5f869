//! Statistics helpers for distribution tests: Kolmogorov–Smirnov, normal and truncated-normal
//! CDFs (via the pinned pure-Rust `libm`), mean and standard deviation.
#![allow(dead_code)]

/// The one-sample Kolmogorov–Smirnov statistic D = sup |F_n(x) − F(x)| of `samples` against the
/// continuous CDF `cdf`. Sorts `samples` in place.
pub fn ks_statistic(samples: &mut [f64], cdf: impl Fn(f64) -> f64) -> f64 {
    assert!(!samples.is_empty());
    samples.sort_by(|a, b| a.partial_cmp(b).expect("NaN sample"));
    let n = samples.len() as f64;
    let mut d = 0.0f64;
    for (i, &x) in samples.iter().enumerate() {
        let f = cdf(x);
        let below = i as f64 / n;
        let above = (i + 1) as f64 / n;
        d = d.max(above - f).max(f - below);
    }
    d
}

/// The asymptotic critical value of D at significance `alpha` for `n` samples:
/// sqrt(−ln(alpha / 2) / 2) / sqrt(n). Reject the hypothesis when D exceeds it.
pub fn ks_critical(n: usize, alpha: f64) -> f64 {
    (-(alpha / 2.0).ln() / 2.0).sqrt() / (n as f64).sqrt()
}

/// Φ(t) = 0.5 · erfc(−t / √2).
pub fn std_normal_cdf(t: f64) -> f64 {
    0.5 * libm::erfc(-t / core::f64::consts::SQRT_2)
}

/// CDF of N(mean, std²).
pub fn normal_cdf(x: f64, mean: f64, std: f64) -> f64 {
    std_normal_cdf((x - mean) / std)
}

/// CDF of N(mean, std²) truncated to [a, b] (absolute bounds).
pub fn trunc_normal_cdf(x: f64, mean: f64, std: f64, a: f64, b: f64) -> f64 {
    if x < a {
        return 0.0;
    }
    if x >= b {
        return 1.0;
    }
    let (alpha, beta, z) = ((a - mean) / std, (b - mean) / std, (x - mean) / std);
    // Work in the lower tail for accuracy (mirror when the window is on the right).
    let f = if alpha + beta > 0.0 {
        let (lo, hi) = (std_normal_cdf(-beta), std_normal_cdf(-alpha));
        1.0 - (std_normal_cdf(-z) - lo) / (hi - lo)
    } else {
        let (lo, hi) = (std_normal_cdf(alpha), std_normal_cdf(beta));
        (std_normal_cdf(z) - lo) / (hi - lo)
    };
    f.clamp(0.0, 1.0)
}

/// CDF of the uniform distribution on [low, high].
pub fn uniform_cdf(x: f64, low: f64, high: f64) -> f64 {
    ((x - low) / (high - low)).clamp(0.0, 1.0)
}

/// Arithmetic mean.
pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Population standard deviation.
pub fn std_dev(xs: &[f64]) -> f64 {
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt()
}

/// Mean and standard deviation of N(mean, std²) truncated to [a, b].
pub fn trunc_normal_moments(mean: f64, std: f64, a: f64, b: f64) -> (f64, f64) {
    let pdf = |t: f64| (-0.5 * t * t).exp() / (2.0 * core::f64::consts::PI).sqrt();
    let (alpha, beta) = ((a - mean) / std, (b - mean) / std);
    let z = std_normal_cdf(beta) - std_normal_cdf(alpha);
    let (pa, pb) = (pdf(alpha), pdf(beta));
    let ta = if alpha.is_finite() { alpha * pa } else { 0.0 };
    let tb = if beta.is_finite() { beta * pb } else { 0.0 };
    let m = (pa - pb) / z;
    let var = 1.0 + (ta - tb) / z - m * m;
    (mean + std * m, std * var.sqrt())
}
